"""Saving a result as Parquet tables plus a JSON manifest, and reading it back."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from simbroker.actions import CorporateActions
from simbroker.bars import FIELDS, Bars
from simbroker.errors import DataError
from simbroker.results.columns import _STR_DTYPE
from simbroker.results.result import BacktestResult
from simbroker.results.stats import stats_series

_RESULT_FORMAT = 1
_TABLES = ("fills", "orders", "trades", "equity", "positions", "bars")


def _json_value(value: Any) -> Any:
    """A stats/config value as JSON, tagged so :func:`_from_json` restores its type."""
    if isinstance(value, pd.Timestamp):
        return {"$timestamp": value.isoformat()}
    if isinstance(value, pd.Timedelta):
        return {"$timedelta": int(value.value)}
    if value is pd.NaT:
        return {"$nat": True}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return _json_value(value.item())
    if isinstance(value, pd.Series):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "$timestamp" in value:
            return pd.Timestamp(value["$timestamp"])
        if "$timedelta" in value:
            return pd.Timedelta(int(value["$timedelta"]), unit="ns")
        if "$nat" in value:
            return pd.NaT
        if "$float" in value:
            return float(value["$float"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _bars_table(bars: Bars) -> pd.DataFrame:
    """Every (time, symbol) cell, time-major, NaN where a symbol had no bar."""
    t, n = len(bars), bars.n_symbols
    cols: dict[str, Any] = {
        "timestamp": np.repeat(bars.timestamps, n),
        "symbol": pd.array(np.tile(np.asarray(bars.symbols, object), t), dtype=_STR_DTYPE),
    }
    for name in FIELDS:
        cols[name] = bars.field(name).reshape(-1)
    frame: pd.DataFrame = pd.DataFrame(cols)
    return frame


def _umask() -> int:
    # Linux tells the umask without changing it; setting it to read it back races with
    # other threads creating files, so that is the fallback only.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file 0600: give it the mode a plain open() would (0644 under
        # the usual umask), so a teammate can read a shared result.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_result(result: BacktestResult, directory: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``directory`` (see :meth:`BacktestResult.save`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    equity = pd.DataFrame({"equity": result.equity, "cash": result.cash})
    if len(result.borrow_fees) or len(result.interest):  # runs with financing models
        equity["borrow_fees"] = result.borrow_fees
        equity["interest"] = result.interest
    tables: dict[str, pd.DataFrame] = {
        "fills": result.fills, "orders": result.orders, "trades": result.trades,
        "equity": equity, "positions": result.positions, "bars": _bars_table(result.bars),
        "dividends": result.dividends,
    }
    acts = result.bars.actions
    if acts is not None:  # the corporate actions the run applied, to load with the bars
        tables["actions"] = acts.frame()
    for name, frame in tables.items():
        _write_atomic(directory / f"{name}.parquet",
                      lambda p, f=frame: f.to_parquet(p, engine="pyarrow"))
    manifest = {
        "format": _RESULT_FORMAT,
        # Parquet has no "object" column: remember which ones were, to restore them.
        "object_columns": {name: [str(c) for c, d in frame.dtypes.items() if d is np.dtype(object)]
                           for name, frame in tables.items()},
        "stats": _json_value(result.stats),
        "config": _json_value(result.config),
        "interval_ns": int(result.bars.interval.astype(np.int64)),
        "volume_known": bool(result.bars.volume_known),
        "symbols": list(result.bars.symbols),
        **({} if acts is None else {"actions": {"tz": acts.tz, "prices": acts.prices,
                                                "adjust": acts.adjust}}),
    }
    text = json.dumps(manifest, indent=2, allow_nan=False)
    # The manifest goes last: a directory with a manifest has all its tables.
    _write_atomic(directory / "result.json", lambda p: Path(p).write_text(text))
    return directory


def _load(directory: Path) -> BacktestResult:
    manifest_path = directory / "result.json"
    if not manifest_path.is_file():
        raise DataError(f"{directory} holds no saved result (no result.json); "
                        f"write one with BacktestResult.save()")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{manifest_path}: not valid JSON ({exc})") from None
    if manifest.get("format") != _RESULT_FORMAT:
        raise DataError(f"{manifest_path}: result format {manifest.get('format')!r} is not "
                        f"{_RESULT_FORMAT}, the one this simbroker reads")
    missing = [n for n in _TABLES if not (directory / f"{n}.parquet").is_file()]
    if missing:
        raise DataError(f"{directory}: saved result is missing {', '.join(missing)}.parquet")
    t = {n: pd.read_parquet(directory / f"{n}.parquet", engine="pyarrow") for n in _TABLES}
    for name, cols in (manifest.get("object_columns") or {}).items():
        for c in cols if name in t else ():
            col = t[name][c].astype(object)
            t[name][c] = col.where(col.notna(), None)
    symbols = tuple(manifest["symbols"])
    raw = t["bars"]
    n = len(symbols)
    times = raw["timestamp"].to_numpy("datetime64[ns]")[::n] if n else np.array([], "M8[ns]")
    shape = (len(times), n)
    bars = Bars(timestamps=times, symbols=symbols,
                interval=np.timedelta64(int(manifest["interval_ns"]), "ns"),
                actions=_saved_actions(directory, manifest),
                **cast("dict[str, Any]", {f: raw[f].to_numpy(np.float64).reshape(shape)
                                          for f in FIELDS}),
                volume_known=bool(manifest.get("volume_known", True)))
    positions = t["positions"]
    positions.columns = pd.Index([str(c) for c in positions.columns], name="symbol")
    equity = t["equity"]
    return BacktestResult(
        fills=t["fills"],
        orders=t["orders"],
        equity=equity["equity"],
        cash=equity["cash"],
        positions=positions,
        stats=stats_series(_from_json(manifest["stats"])),
        config=_from_json(manifest["config"]),
        bars=bars,
        trades=t["trades"],
        **_saved_dividends(directory),
        **_saved_financing(equity),
    )


def _saved_actions(directory: Path, manifest: dict[str, Any]) -> CorporateActions | None:
    """The corporate actions a saved run applied (results saved before them have none)."""
    meta = manifest.get("actions")
    path = directory / "actions.parquet"
    if not isinstance(meta, dict) or not path.is_file():
        return None
    frame = pd.read_parquet(path, engine="pyarrow")
    table = CorporateActions.from_frame(frame, tz=str(meta.get("tz", "UTC")))
    return dataclasses.replace(table, prices=meta.get("prices"), adjust=meta.get("adjust"))


def _saved_financing(equity: pd.DataFrame) -> dict[str, Any]:
    """The borrow fees and interest of a run with financing models (else none)."""
    if "borrow_fees" not in equity.columns:
        return {}
    return {"borrow_fees": equity["borrow_fees"], "interest": equity["interest"]}


def _saved_dividends(directory: Path) -> dict[str, Any]:
    path = directory / "dividends.parquet"
    if not path.is_file():
        return {}
    frame = pd.read_parquet(path, engine="pyarrow")
    frame["symbol"] = frame["symbol"].astype(object)
    for col in ("ex_date", "pay_date"):
        frame[col] = frame[col].astype("datetime64[ns]")
    frame["paid"] = frame["paid"].astype("datetime64[ns, UTC]")
    return {"dividends": frame}


def load_result(directory: str | os.PathLike[str]) -> BacktestResult:
    """Read a result written by :meth:`BacktestResult.save`."""
    return _load(Path(directory))
