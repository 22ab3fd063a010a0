"""One run's orders, as the drift report reads them: from a trade log, records or a result.

Every source becomes one table with a row per order the strategy tried (accepted or
refused), its final status and its fills combined: total quantity, volume-weighted
price, total fee, first and last fill time. Several executions of one order (a venue
that splits a fill) are one row, so a run that fills in pieces still matches a run that
filled at once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from simbroker.bars import Bars
from simbroker.errors import DataError, TradeLogError
from simbroker.results.result import BacktestResult
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.tradelog._reader import parse_time

__all__ = ["ORDER_COLUMNS", "Run", "RunSource", "load_run"]

RunSource = Union[str, "os.PathLike[str]", TradeLog, BacktestResult, Iterable[Mapping[str, Any]]]
"""What :func:`simbroker.drift` compares: a trade log file, a saved result folder, a
:class:`~simbroker.tradelog.TradeLog`, a :class:`~simbroker.BacktestResult`, or records."""

ORDER_COLUMNS = ("order_id", "client_order_id", "symbol", "side", "qty", "order_type",
                 "limit_price", "stop_price", "submitted", "status", "reason", "rule",
                 "filled_qty", "price", "fee", "first_fill", "last_fill", "n_fills",
                 "recorded_ref")


@dataclass(frozen=True)
class Run:
    """A run normalised for matching.

    Attributes
    ----------
    name : str
        How the report names it (the file, or ``"a"``/``"b"``).
    orders : DataFrame
        One row per order, columns :data:`ORDER_COLUMNS` (times as UTC Timestamps).
    start_cash : float
        Cash at the first ``start`` record (NaN when the log has none).
    bars : Bars or None
        The bars a saved result replayed, when the source carries them.
    """

    name: str
    orders: pd.DataFrame
    start_cash: float
    bars: Bars | None = None


def _ts(value: Any, key: str) -> Any:
    """A record's time as a UTC Timestamp (NaT when absent)."""
    if value is None or value is pd.NaT:
        return pd.NaT
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC") if value.tzinfo else value.tz_localize("UTC")
    return pd.Timestamp(parse_time(value, key))


def _num(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


class _Builder:
    """Folds trade-log records into the per-order table."""

    def __init__(self, where: str):
        self.where = where
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: dict[str, list[dict[str, Any]]] = {}
        self.seen_fills: set[str] = set()
        self.start_cash = math.nan
        self._refused = 0

    def _order(self, oid: str) -> dict[str, Any]:
        row = self.orders.get(oid)
        if row is None:
            row = {"order_id": oid, "client_order_id": None, "symbol": None, "side": None,
                   "qty": math.nan, "order_type": "market", "limit_price": math.nan,
                   "stop_price": math.nan, "submitted": pd.NaT, "status": None,
                   "reason": None, "rule": None}
            self.orders[oid] = row
        return row

    def add(self, rec: Mapping[str, Any], lineno: int) -> None:
        event = rec.get("event")
        try:
            if event == "start":
                if math.isnan(self.start_cash):
                    self.start_cash = _num(rec.get("cash"))
            elif event == "submitted":
                self._submitted(rec)
            elif event == "rejected":
                self._rejected(rec, lineno)
            elif event in ("canceled", "expired"):
                oid = _text(rec.get("order_id"))
                if oid is not None and oid in self.orders:
                    row = self.orders[oid]
                    row["status"] = event
                    row["reason"] = _text(rec.get("reason")) or row["reason"]
            elif event == "filled":
                self._filled(rec)
        except (ValueError, TypeError) as exc:
            raise TradeLogError(f"{event!r} record: {exc}", path=self.where,
                                line=lineno) from None

    def _submitted(self, rec: Mapping[str, Any]) -> None:
        oid = _text(rec.get("order_id"))
        if oid is None:
            raise ValueError("no 'order_id'")
        row = self._order(oid)
        row.update(client_order_id=_text(rec.get("client_order_id")),
                   symbol=_text(rec.get("symbol")), side=_text(rec.get("side")),
                   qty=_num(rec.get("qty")),
                   order_type=_text(rec.get("order_type")) or "market",
                   limit_price=_num(rec.get("limit_price")),
                   stop_price=_num(rec.get("stop_price")),
                   submitted=_ts(rec.get("ts"), "ts"))
        row["status"] = row["status"] or "open"

    def _rejected(self, rec: Mapping[str, Any], lineno: int) -> None:
        oid = _text(rec.get("order_id"))
        if oid is not None and oid in self.orders:
            row = self.orders[oid]  # accepted, then refused (e.g. at fill time)
        else:
            self._refused += 1
            row = self._order(oid or f"refused-{self._refused}")
            row.update(client_order_id=_text(rec.get("client_order_id")),
                       symbol=_text(rec.get("symbol")), side=_text(rec.get("side")),
                       qty=_num(rec.get("qty")),
                       order_type=_text(rec.get("order_type")) or "market",
                       submitted=_ts(rec.get("ts"), "ts"))
        row["status"] = "rejected"
        row["reason"] = _text(rec.get("reason"))
        row["rule"] = _text(rec.get("rule"))

    def _filled(self, rec: Mapping[str, Any]) -> None:
        fid = _text(rec.get("fill_id"))
        if fid is not None:
            if fid in self.seen_fills:
                return  # a repeated record (replay applies it once, so do we)
            self.seen_fills.add(fid)
        qty, price = _num(rec.get("qty")), _num(rec.get("price"))
        if not (qty > 0 and math.isfinite(price)):
            raise ValueError(f"a fill needs a positive 'qty' and a finite 'price', got "
                             f"qty={rec.get('qty')!r:.40}, price={rec.get('price')!r:.40}")
        oid = _text(rec.get("order_id")) or f"fill-{fid}"
        row = self._order(oid)
        if row["symbol"] is None:  # a fill whose order the log does not hold
            row.update(symbol=_text(rec.get("symbol")), side=_text(rec.get("side")),
                       client_order_id=_text(rec.get("client_order_id")))
        if row["client_order_id"] is None:
            row["client_order_id"] = _text(rec.get("client_order_id"))
        when = rec.get("timestamp", rec.get("ts"))
        self.fills.setdefault(oid, []).append({
            "qty": qty, "price": price, "fee": _num(rec.get("fee")) if rec.get("fee")
            is not None else 0.0, "time": _ts(when, "timestamp"),
            "ref": _num(rec.get("ref_price"))})

    def frame(self) -> pd.DataFrame:
        rows = []
        for oid, row in self.orders.items():
            fills = self.fills.get(oid, [])
            out = dict(row)
            if row["symbol"] is None or row["side"] not in ("buy", "sell"):
                raise TradeLogError(f"order {oid!r} has no symbol or no buy/sell side",
                                    path=self.where)
            if fills:
                q = np.array([f["qty"] for f in fills])
                p = np.array([f["price"] for f in fills])
                ref = np.array([f["ref"] for f in fills])
                total = math.fsum(q.tolist())
                out["filled_qty"] = total
                out["price"] = math.fsum((q * p).tolist()) / total
                out["fee"] = math.fsum(f["fee"] for f in fills)
                out["recorded_ref"] = (math.fsum((q * ref).tolist()) / total
                                       if np.isfinite(ref).all() else math.nan)
                times = [f["time"] for f in fills]
                out["first_fill"], out["last_fill"] = min(times), max(times)
                out["n_fills"] = len(fills)
                if math.isnan(out["qty"]):
                    out["qty"] = total
                if out["status"] in (None, "open") or total >= out["qty"] * (1 - 1e-9):
                    out["status"] = ("filled" if total >= out["qty"] * (1 - 1e-9)
                                     else "partially_filled")
            else:
                out.update(filled_qty=0.0, price=math.nan, fee=0.0, recorded_ref=math.nan,
                           first_fill=pd.NaT, last_fill=pd.NaT, n_fills=0)
            rows.append(out)
        frame = pd.DataFrame(rows, columns=list(ORDER_COLUMNS))
        for col in ("submitted", "first_fill", "last_fill"):
            frame[col] = pd.to_datetime(frame[col], utc=True).dt.as_unit("ns")
        frame["n_fills"] = frame["n_fills"].astype(np.int64)
        out_frame: pd.DataFrame = frame
        return out_frame


def _from_records(records: Iterable[Mapping[str, Any]], name: str, where: str,
                  bars: Bars | None = None) -> Run:
    b = _Builder(where)
    for lineno, rec in enumerate(records, start=1):
        if not isinstance(rec, Mapping):
            raise TradeLogError(f"a record must be a mapping, got {type(rec).__name__}",
                                path=where, line=lineno)
        b.add(rec, lineno)
    return Run(name=name, orders=b.frame(), start_cash=b.start_cash, bars=bars)


def _result_records(result: BacktestResult) -> list[dict[str, Any]]:
    """A result's orders and fills as the trade-log records they came from."""
    recs: list[dict[str, Any]] = [{"event": "start",
                                   "cash": _num(result.stats.get("start_equity"))}]
    for o in result.orders.to_dict("records"):
        when = o.get("submitted_at")
        base = {k: o.get(k) for k in ("order_id", "client_order_id", "symbol", "side", "qty",
                                       "order_type", "limit_price", "stop_price")}
        base = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in base.items()}
        if o.get("status") == "rejected" and not o.get("filled_qty"):
            recs.append({"event": "rejected", "ts": when, **base, "reason": o.get("reason")})
        else:
            recs.append({"event": "submitted", "ts": when, **base})
            if o.get("status") in ("canceled", "expired"):
                recs.append({"event": o["status"], "ts": when, "order_id": o["order_id"],
                             "reason": o.get("reason")})
    for f in result.fills.to_dict("records"):
        recs.append({"event": "filled", "ts": f["timestamp"], **{str(k): v for k, v in f.items()}})
    return recs


def load_run(source: RunSource, name: str) -> Run:
    """Read ``source`` (see :data:`RunSource`) into a :class:`Run` named ``name``.

    A folder is a saved result (:meth:`~simbroker.BacktestResult.save`): its
    ``tradelog.jsonl`` when there is one (refusal reasons and all), else its tables; the
    bars it replayed come along either way. A broken log raises
    :class:`~simbroker.errors.TradeLogError` naming the file and line.
    """
    if isinstance(source, BacktestResult):
        return _from_records(_result_records(source), name, name, bars=source.bars)
    if isinstance(source, TradeLog):
        source = source.path
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            from simbroker.results import load_result

            result = load_result(path) if (path / "result.json").is_file() else None
            log = path / "tradelog.jsonl"
            if log.is_file():
                return _from_records(read_trade_log(log), str(path), str(log),
                                     bars=result.bars if result is not None else None)
            if result is None:
                raise DataError(f"{path} holds neither a trade log (tradelog.jsonl) nor a "
                                f"saved result (result.json)")
            return _from_records(_result_records(result), str(path), str(path),
                                 bars=result.bars)
        return _from_records(read_trade_log(path), str(path), str(path))
    if isinstance(source, (bytes, Mapping)) or not isinstance(source, Iterable):
        raise TypeError(f"drift compares trade logs: give a path, a TradeLog, a "
                        f"BacktestResult or a list of records, not {type(source).__name__}")
    return _from_records(list(source), name, name)

