"""Parameter sweeps and walk-forward analysis, on one machine or a Dask cluster.

- :func:`sweep` runs every combination of a grid through :func:`~simbroker.backtest`, on
  any :class:`concurrent.futures.Executor` (a process pool by default) or a Dask
  ``distributed.Client``. The bars travel to each worker once: locally through shared
  memory (a worker maps the block once, every task reads it without a copy), on Dask
  scattered to every worker once (``broadcast=True``).
- :func:`sweep_vectorized` evaluates many parameter sets of a target strategy as extra
  columns of one :func:`~simbroker.backtest_vectorized` pass.
- :func:`walk_forward` chooses parameters in sample and reports the out-of-sample equity
  stitched together, so overfitting shows.
- :func:`plot_heatmap`, :func:`save_sweep` and :func:`load_sweep` for the results.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simbroker._progress import progress_iter
from simbroker.bars import FIELDS, Bars
from simbroker.data import load_bars
from simbroker.engine import History, StrategyLike, _on_bar_of, _prepare_indicators, backtest
from simbroker.models.fees import FeeModel, fee_model
from simbroker.models.slippage import SlippageModel, slippage_model
from simbroker.results import (
    BacktestResult,
    cash_after_bars,
    compute_stats,
    fill_arrays,
    mark_to_market,
    marking_closes,
    trips_of,
)
from simbroker.vectorized import _cash_ledger, _signal_targets, backtest_vectorized

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["WalkForwardResult", "expand_grid", "load_sweep", "plot_heatmap", "save_sweep",
           "sweep", "sweep_vectorized", "walk_forward"]

Grid = Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]


def expand_grid(grid: Grid) -> list[dict[str, Any]]:
    """The parameter combinations of ``grid``: a dict of lists (every combination, in
    order) or an explicit list of dicts (as given).

    Raises
    ------
    ValueError
        Naming the key whose values are empty or not a list, or the entry that is not a
        dict, or parameter names that are not strings.
    """
    if isinstance(grid, Mapping):
        if not grid:
            raise ValueError("grid is empty: give at least one parameter and its values")
        for key, values in grid.items():
            if not isinstance(key, str):
                raise ValueError(f"grid parameter names must be strings, got {key!r}")
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise ValueError(f"grid[{key!r}] must be a list of values, got {values!r}")
            if len(list(values)) == 0:
                raise ValueError(f"grid[{key!r}] has no values")
        keys = list(grid)
        return [dict(zip(keys, combo, strict=True))
                for combo in itertools.product(*(list(grid[k]) for k in keys))]
    combos = list(grid)
    if not combos:
        raise ValueError("grid is empty: give at least one parameter combination")
    out: list[dict[str, Any]] = []
    for i, combo in enumerate(combos):
        if not isinstance(combo, Mapping):
            raise ValueError(f"grid[{i}] must be a dict of parameters, got {combo!r}")
        bad = [k for k in combo if not isinstance(k, str)]
        if bad:
            raise ValueError(f"grid[{i}] has a parameter name that is not a string: {bad[0]!r}")
        out.append(dict(combo))
    return out


# --------------------------------------------------------------------------- bars transport
@dataclass(frozen=True)
class _SharedBars:
    """Where a panel lies in shared memory: enough for a worker to map it, no data."""

    name: str
    n_bars: int
    symbols: tuple[str, ...]
    interval_ns: int


def _share(bars: Bars) -> tuple[shared_memory.SharedMemory, _SharedBars]:
    t, n = len(bars), bars.n_symbols
    size = 8 * (t + len(FIELDS) * t * n)
    shm = shared_memory.SharedMemory(create=True, size=max(size, 8))
    buf = np.ndarray((size // 8,), np.int64, shm.buf)
    buf[:t] = bars.timestamps.view(np.int64)
    flat = buf.view(np.float64)
    for k, name in enumerate(FIELDS):
        flat[t + k * t * n: t + (k + 1) * t * n] = bars.field(name).reshape(-1)
    del buf, flat
    return shm, _SharedBars(shm.name, t, bars.symbols, int(bars.interval.astype(np.int64)))


# One mapping per worker process (or per process of threads): attached on first use,
# under a lock so that threads of one process share a single mapping.
_ATTACHED: dict[str, tuple[shared_memory.SharedMemory, Bars]] = {}
_ATTACH_LOCK = threading.Lock()
_KEEP_MAPPED = 4
_RETIRED: list[shared_memory.SharedMemory] = []


def _attach(spec: _SharedBars) -> Bars:
    with _ATTACH_LOCK:
        hit = _ATTACHED.get(spec.name)
        if hit is None:
            hit = _map(spec)
            _ATTACHED[spec.name] = hit
            # A long-lived pool serves sweep after sweep: let go of the oldest mappings
            # (their blocks are unlinked once their sweep ends) so memory is returned.
            while len(_ATTACHED) > _KEEP_MAPPED:
                old_shm, _ = _ATTACHED.pop(next(iter(_ATTACHED)))
                try:
                    old_shm.close()
                except BufferError:  # still viewed by a running task: keep it mapped
                    _RETIRED.append(old_shm)
        return hit[1]


def _map(spec: _SharedBars) -> tuple[shared_memory.SharedMemory, Bars]:
    # Workers share the creating process's resource tracker, which unlinks the block
    # when the sweep ends; attaching must not register (3.13+) nor unregister it.
    try:
        shm = shared_memory.SharedMemory(name=spec.name, create=False,
                                         track=False)  # type: ignore[call-arg]
    except TypeError:  # Python < 3.13: attaching registers the same name again (a set)
        shm = shared_memory.SharedMemory(name=spec.name, create=False)
    t, n = spec.n_bars, len(spec.symbols)
    whole = np.ndarray((t + len(FIELDS) * t * n,), np.float64, shm.buf)
    whole.setflags(write=False)
    ts = whole[:t].view(np.int64).view("datetime64[ns]")
    fields = {name: whole[t + k * t * n: t + (k + 1) * t * n].reshape(t, n)
              for k, name in enumerate(FIELDS)}
    # Read-only views: Bars keeps them as they are, no copy.
    bars = Bars(timestamps=ts, symbols=spec.symbols,
                interval=np.timedelta64(spec.interval_ns, "ns"), **fields)
    return shm, bars


# --------------------------------------------------------------------------- one run
def _run_one(bars: Bars | _SharedBars, make_strategy: Callable[..., StrategyLike],
             params: dict[str, Any], bt_kwargs: dict[str, Any]) -> dict[str, Any]:
    """One combination: its stats, or the error it raised (never raises)."""
    t0 = time.perf_counter()
    try:
        panel = _attach(bars) if isinstance(bars, _SharedBars) else bars
        result = backtest(make_strategy(**params), panel, **bt_kwargs)
        row: dict[str, Any] = dict(result.stats)
        row["error"] = None
    except Exception as exc:
        row = {"error": f"{type(exc).__name__}: {exc}",
               "traceback": "".join(traceback.format_exception(exc))[-4000:]}
    row["seconds"] = time.perf_counter() - t0
    return row


def _is_dask_client(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("scatter", "submit", "gather", "get_executor"))


def _dask_client_of(executor: Any) -> Any:
    """The Dask client behind ``executor`` (a Client or its ``get_executor()``), or None."""
    if _is_dask_client(executor):
        return executor
    client = getattr(executor, "_client", None)
    return client if client is not None and _is_dask_client(client) else None


def sweep(
    make_strategy: Callable[..., StrategyLike],
    grid: Grid,
    bars: Bars | pd.DataFrame | str | Path,
    *,
    executor: Executor | Any | str | None = None,
    metric: str = "sharpe",
    ascending: bool = False,
    max_workers: int | None = None,
    progress: bool | None = None,
    **backtest_kwargs: Any,
) -> pd.DataFrame:
    """Backtest every parameter combination of ``grid`` and rank them by ``metric``.

    Parameters
    ----------
    make_strategy
        Called as ``make_strategy(**params)`` for each combination; a strategy class
        works. With a process pool or Dask it must be picklable (defined at module level).
    grid
        A dict of lists (every combination) or a list of dicts (exactly these).
    bars
        The panel, shipped to each worker once.
    executor
        ``None`` (default): a process pool over the machine's cores. ``"serial"``: in this
        process. Any :class:`concurrent.futures.Executor` (threads, processes), or a Dask
        ``distributed.Client`` or its ``get_executor()``: the same call on a cluster.
    metric, ascending
        The statistic to sort by (see :func:`~simbroker.results.compute_stats`); best
        first, ``NaN`` and failed combinations last.
    max_workers
        Size of the default process pool.
    progress
        A progress bar over combinations done (``None``: on a terminal, never in CI).
    backtest_kwargs
        Passed to :func:`~simbroker.backtest` (``cash``, ``slippage``, ``fees``, ...).

    Returns
    -------
    DataFrame
        One row per combination: ``combo`` (its position in the grid), the parameters,
        every statistic, ``error`` (``None``, or the exception of a combination that
        failed; the others still run), ``traceback`` and ``seconds``.
    """
    combos = expand_grid(grid)
    if not isinstance(bars, Bars):
        bars = load_bars(bars)
    clash = sorted({k for c in combos for k in c} & {"combo", "error", "traceback",
                                                      "seconds", metric})
    if clash:
        raise ValueError(f"parameter name {clash[0]!r} clashes with a result column")
    rows: list[dict[str, Any] | None] = [None] * len(combos)
    futures: dict[Future[dict[str, Any]], int] = {}
    client = _dask_client_of(executor) if executor is not None else None
    shm: shared_memory.SharedMemory | None = None
    own: Executor | None = None
    try:
        if executor == "serial":
            for i, combo in progress_iter(enumerate(combos), total=len(combos), desc="sweep",
                                          progress=progress, unit="combo"):
                rows[i] = _run_one(bars, make_strategy, combo, backtest_kwargs)
        else:
            if client is not None:
                payload: Any = client.scatter(bars, broadcast=True, hash=False)
                dask_executor: Any = executor  # a Client or its get_executor()
                submit: Callable[..., Any] = dask_executor.submit
                kw: dict[str, Any] = {"pure": False} if executor is client else {}
            elif isinstance(executor, ThreadPoolExecutor):
                payload = bars  # threads share this process's memory already
                submit, kw = executor.submit, {}
            else:
                shm, payload = _share(bars)
                if executor is None:
                    own = ProcessPoolExecutor(max_workers=max_workers or os.cpu_count())
                pool = own if own is not None else executor
                if not isinstance(pool, Executor):
                    raise TypeError(f"executor must be a concurrent.futures.Executor, a "
                                    f"Dask Client, 'serial' or None; got {executor!r}")
                submit, kw = pool.submit, {}
            for i, combo in enumerate(combos):
                fut = submit(_run_one, payload, make_strategy, combo, backtest_kwargs, **kw)
                futures[fut] = i
            done = (_dask_as_completed(futures) if client is not None and executor is client
                    else as_completed(futures))
            for fut in progress_iter(done, total=len(futures), desc="sweep",
                                     progress=progress, unit="combo"):
                rows[futures[fut]] = fut.result()
    finally:
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)
        if shm is not None:
            shm.close()
            shm.unlink()
    return _table(combos, [r if r is not None else {"error": "not run"} for r in rows],
                  metric, ascending)


def _dask_as_completed(futures: Mapping[Any, int]) -> Iterable[Any]:
    from distributed import as_completed as dask_as_completed

    done: Iterable[Any] = dask_as_completed(list(futures))  # type: ignore[no-untyped-call]
    return done


def _table(combos: list[dict[str, Any]], rows: list[dict[str, Any]], metric: str,
           ascending: bool) -> pd.DataFrame:
    records = [{"combo": i, **combo, **row} for i, (combo, row) in enumerate(zip(combos, rows,
                                                                                strict=True))]
    frame = pd.DataFrame.from_records(records)
    for col in ("error", "traceback"):
        if col not in frame:
            frame[col] = None
    if metric not in frame:
        if frame["error"].notna().all():
            frame[metric] = np.nan
        else:
            raise ValueError(f"metric {metric!r} is not a statistic; choose one of "
                             f"{sorted(c for c in rows[0] if c not in ('error', 'seconds'))}")
    key = pd.to_numeric(frame[metric], errors="coerce")
    order = np.lexsort((frame["combo"].to_numpy(), (-key if not ascending else key)
                        .fillna(np.inf).to_numpy()))
    out: pd.DataFrame = frame.iloc[order].reset_index(drop=True)
    return out


# --------------------------------------------------------------------------- vectorized
def sweep_vectorized(
    make_targets: Callable[..., Any],
    grid: Grid,
    bars: Bars | pd.DataFrame | str | Path,
    *,
    metric: str = "sharpe",
    ascending: bool = False,
    cash: float = 100_000.0,
    slippage: float | SlippageModel | None = 5.0,
    fees: float | str | FeeModel | None = 1.0,
    max_cells: int = 5_000_000,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Evaluate many parameter sets of a target strategy in few vectorized passes.

    ``make_targets(bars, **params)`` returns target positions in shares (a frame or array,
    timestamps x symbols, ``NaN`` = keep) or a dict with ``entries``, ``exits`` and
    ``size``. The parameter sets become extra columns: the panel is repeated once per set
    and :func:`~simbroker.backtest_vectorized` runs over all of them in one pass (several
    passes of at most ``max_cells`` bar-symbol cells, to bound memory). Each set's fills,
    cash, equity and statistics are then exactly those of running it alone.

    Returns
    -------
    DataFrame
        Like :func:`sweep`: one row per combination with its parameters and statistics,
        sorted by ``metric``.
    """
    combos = expand_grid(grid)
    if not isinstance(bars, Bars):
        bars = load_bars(bars)
    slip, fee = slippage_model(slippage), fee_model(fees)
    t_len, n = len(bars), bars.n_symbols
    per_pass = max(1, max_cells // max(1, t_len * n))
    rows: list[dict[str, Any]] = [{} for _ in combos]
    wide: Bars | None = None
    close = marking_closes(bars.close)
    batches = [list(range(i, min(i + per_pass, len(combos))))
               for i in range(0, len(combos), per_pass)]
    for batch in progress_iter(batches, total=len(batches), desc="sweep_vectorized",
                               progress=progress, unit="pass"):
        grids: list[np.ndarray] = []
        for i in batch:
            try:
                grids.append(_targets_of(make_targets(bars, **combos[i]), bars))
                rows[i] = {"error": None}
            except Exception as exc:
                grids.append(np.full((t_len, n), np.nan))
                rows[i] = {"error": f"{type(exc).__name__}: {exc}"}
        if bars.actions is not None:  # splits and dividends: each set runs alone (the
            for k, i in enumerate(batch):  # tiled pass below rebuilds cash from fills only)
                if rows[i]["error"] is None:
                    rows[i].update(backtest_vectorized(bars, targets=grids[k], cash=cash,
                                                       slippage=slip, fees=fee).stats)
            continue
        if wide is None or len(wide.symbols) != len(batch) * n:
            wide = _tile(bars, len(batch))  # every pass but the last has the same width
        combined = backtest_vectorized(wide, targets=np.hstack(grids), cash=cash,
                                       slippage=slip, fees=fee)
        # Each copy's statistics straight from the combined arrays: no per-copy frames.
        fill_rows, col = _by_copy(combined.fills["symbol"], wide, n, len(batch))
        order_rows, _ = _by_copy(combined.orders["symbol"], wide, n, len(batch))
        fills = dict(zip(("sign", "qty", "notional", "fee", "ts"),
                         fill_arrays(combined.fills), strict=True), col=col)
        for k, i in enumerate(batch):
            if rows[i]["error"] is None:
                rows[i].update(_copy_stats(combined, fills, fill_rows[k], len(order_rows[k]),
                                           bars, close, k, cash))
    return _table(combos, rows, metric, ascending)


def _targets_of(value: Any, bars: Bars) -> np.ndarray:
    if isinstance(value, Mapping):
        unknown = set(value) - {"entries", "exits", "size"}
        if unknown:
            raise ValueError(f"make_targets returned unknown keys {sorted(unknown)}; use "
                             f"entries, exits and size")
        return _signal_targets(bars, value.get("entries"), value.get("exits"),
                               value.get("size", 100.0))
    if isinstance(value, pd.DataFrame):
        value = value.reindex(index=bars.index, columns=list(bars.symbols)).to_numpy()
    arr = np.asarray(value, np.float64)
    if arr.shape != (len(bars), bars.n_symbols):
        raise ValueError(f"make_targets returned shape {arr.shape}; expected "
                         f"{(len(bars), bars.n_symbols)} (bars x symbols)")
    return arr


def _tile(bars: Bars, k: int) -> Bars:
    """The panel repeated ``k`` times side by side; copy j's symbols are ``{sym}#{j}``."""
    symbols = tuple(f"{s}#{j}" for j in range(k) for s in bars.symbols)
    fields: dict[str, Any] = {f: np.tile(bars.field(f), (1, k)) for f in FIELDS}
    for arr in fields.values():
        arr.setflags(write=False)  # ours alone: Bars may keep it without a copy
    return Bars(timestamps=bars.timestamps, symbols=symbols, interval=bars.interval,
                actions=None, volume_known=bars.volume_known, **fields)


def _by_copy(symbols: pd.Series, wide: Bars, n: int, k: int) -> tuple[list[np.ndarray],
                                                                      np.ndarray]:
    """Row numbers of each tiled copy (``{sym}#{j}``), in their original order, and each
    row's symbol column in the untiled bars."""
    codes, uniques = pd.factorize(symbols)
    wide_col = np.array([wide.symbol_index(str(u)) for u in uniques], np.int64)
    col = wide_col[codes] if len(codes) else np.array([], np.int64)
    which = col // n
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(k + 1))
    return [order[bounds[j]:bounds[j + 1]] for j in range(k)], col % n


def _copy_stats(combined: BacktestResult, fills: dict[str, np.ndarray], rows: np.ndarray,
                n_orders: int, bars: Bars, close: np.ndarray, k: int,
                cash: float) -> dict[str, Any]:
    """Statistics of copy ``k`` of a tiled run, as if it had run alone.

    ``fills`` holds the combined run's fill columns as arrays (``col``: the symbol's
    column in ``bars``), ``rows`` the copy's fills; ``close`` the last known closes.
    """
    n = bars.n_symbols
    sign, qty = fills["sign"][rows], fills["qty"][rows]
    notional, fee, ts = fills["notional"][rows], fills["fee"][rows], fills["ts"][rows]
    ledger = _cash_ledger(cash, sign, notional, fee)
    fill_bar = np.searchsorted(bars.ts_ns, ts, side="right") - 1
    cash_t = cash_after_bars(fill_bar, ledger, len(bars), cash)
    pos = combined.positions.to_numpy(np.float64)[:, k * n:(k + 1) * n]
    equity, gross = mark_to_market(pos, close)
    equity += cash_t
    trips = trips_of(fills["col"][rows], np.array(bars.symbols, dtype=object), sign, qty,
                     notional, fee, ts, bars, columns=np.arange(n))
    return compute_stats(pd.Series(equity, index=bars.index, name="equity", copy=False),
                         pd.DataFrame({"notional": notional, "fee": fee}),
                         start_equity=cash, interval=bars.interval, n_orders=n_orders,
                         gross_exposure=gross, trips=trips)


# --------------------------------------------------------------------------- walk-forward
@dataclass(frozen=True, eq=False)
class WalkForwardResult:
    """Out-of-sample performance of parameters chosen in sample, window by window.

    Attributes
    ----------
    windows : DataFrame
        One row per window: ``train_start, train_end, test_start, test_end`` (bar
        timestamps; ends exclusive), the chosen parameters, ``in_sample`` (the metric of
        the chosen set in sample) and ``out_of_sample`` (the same metric out of sample).
    equity : Series
        The out-of-sample equity of every window, stitched: each window starts with the
        cash the previous one ended with (positions closed at its last close, no cost).
    stats : dict
        :func:`~simbroker.results.compute_stats` of the stitched equity and fills.
    fills : DataFrame
        Out-of-sample fills of every window.
    sweeps : list of DataFrame
        Each window's in-sample sweep.
    """

    windows: pd.DataFrame
    equity: pd.Series
    stats: dict[str, Any]
    fills: pd.DataFrame
    sweeps: list[pd.DataFrame] = field(repr=False)


class _TradeFrom:
    """Shows every bar to the indicators, lets the strategy act only from bar ``start``."""

    def __init__(self, strategy: StrategyLike, start: int):
        self._strategy = strategy
        self._on_bar = _on_bar_of(strategy)
        self._start = start

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        return _prepare_indicators(self._strategy, bars)

    def on_bar(self, broker: Any, history: History) -> None:
        if history.t >= self._start:
            self._on_bar(broker, history)


def walk_forward(
    make_strategy: Callable[..., StrategyLike],
    grid: Grid,
    bars: Bars | pd.DataFrame | str | Path,
    *,
    train: int,
    test: int,
    anchored: bool = False,
    metric: str = "sharpe",
    ascending: bool = False,
    cash: float = 100_000.0,
    executor: Executor | Any | str | None = "serial",
    progress: bool | None = None,
    **backtest_kwargs: Any,
) -> WalkForwardResult:
    """Walk-forward analysis: choose in sample, trade out of sample, stitch.

    Windows step forward by ``test`` bars. Window ``i`` sweeps ``grid`` over its training
    bars (the ``train`` bars before its test bars, or every bar from the start when
    ``anchored``) and picks the best ``metric``; the chosen strategy then trades the
    ``test`` bars. Its indicators see the training bars before the test (past data, so
    they are warm), but it places orders only from the first test bar on. Parameter
    choice never sees a bar at or after the test start.

    Parameters
    ----------
    train, test
        Window lengths in bars (> 0).
    anchored
        Training windows all start at the first bar (growing) instead of rolling.
    executor
        For the in-sample sweeps (see :func:`sweep`); ``"serial"`` by default.

    Returns
    -------
    WalkForwardResult
    """
    if not isinstance(bars, Bars):
        bars = load_bars(bars)
    if not (isinstance(train, int) and isinstance(test, int)) or train < 1 or test < 1:
        raise ValueError(f"train and test are bar counts > 0, got train={train!r}, "
                         f"test={test!r}")
    if train + test > len(bars):
        raise ValueError(f"train + test = {train + test} bars, but there are only "
                         f"{len(bars)}")
    combos = expand_grid(grid)
    keys = list(dict.fromkeys(k for c in combos for k in c))
    rows: list[dict[str, Any]] = []
    sweeps: list[pd.DataFrame] = []
    equities: list[pd.Series] = []
    fills: list[pd.DataFrame] = []
    capital = float(cash)
    starts = list(range(train, len(bars) - test + 1, test))
    idx = bars.index
    for test_start in progress_iter(starts, total=len(starts), desc="walk_forward",
                                    progress=progress, unit="window"):
        train_start = 0 if anchored else test_start - train
        test_end = test_start + test
        in_sample = bars.rows(train_start, test_start)
        table = sweep(make_strategy, combos, in_sample, executor=executor, metric=metric,
                      ascending=ascending, cash=cash, progress=False, **backtest_kwargs)
        sweeps.append(table)
        ok = table[table["error"].isna()]
        row: dict[str, Any] = {"train_start": idx[train_start], "train_end": idx[test_start],
                               "test_start": idx[test_start],
                               "test_end": idx[test_end] if test_end < len(bars) else None}
        if ok.empty or pd.isna(ok.iloc[0][metric]):
            row.update(dict.fromkeys(keys), in_sample=np.nan, out_of_sample=np.nan,
                       error="no combination gave a usable in-sample metric")
            rows.append(row)
            continue
        best = {k: ok.iloc[0][k] for k in keys if k in ok.columns}
        best = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in best.items()}
        run = bars.rows(train_start, test_end)
        oos = backtest(_TradeFrom(make_strategy(**best), test_start - train_start), run,
                       cash=capital, **backtest_kwargs)
        part = oos.equity.iloc[test_start - train_start:]
        oos_stats = compute_stats(part, oos.fills, start_equity=capital,
                                  interval=bars.interval)
        row.update(best, in_sample=float(ok.iloc[0][metric]),
                   out_of_sample=oos_stats.get(metric, np.nan), error=None)
        rows.append(row)
        equities.append(part)
        fills.append(oos.fills)
        capital = float(part.iloc[-1])
    windows = pd.DataFrame(rows)
    equity = (pd.concat(equities).rename("equity") if equities
              else pd.Series([], dtype=np.float64, name="equity"))
    all_fills = (pd.concat(fills, ignore_index=True) if fills
                 else backtest(lambda b, h: None, bars.rows(0, 1)).fills)
    stats = (compute_stats(equity, all_fills, start_equity=float(cash),
                           interval=bars.interval) if len(equity) else {})
    return WalkForwardResult(windows=windows, equity=equity, stats=stats, fills=all_fills,
                             sweeps=sweeps)


# --------------------------------------------------------------------------- output
def plot_heatmap(table: pd.DataFrame, x: str, y: str, metric: str = "sharpe", *,
                 path: str | os.PathLike[str] | None = None, annotate: bool = True) -> Figure:
    """A heatmap of ``metric`` over two parameters of a sweep (mean over the others).

    Saved to ``path`` (PNG or what the suffix says) when given. Needs matplotlib.
    """
    for col in (x, y, metric):
        if col not in table.columns:
            raise ValueError(f"column {col!r} is not in the sweep table")
    pivot = table.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
    from matplotlib.figure import Figure as _Figure

    fig = _Figure(figsize=(1.2 + 0.9 * max(3, pivot.shape[1]),
                           1.2 + 0.6 * max(3, pivot.shape[0])), layout="constrained")
    ax = fig.subplots()
    data = pivot.to_numpy(np.float64)
    finite = data[np.isfinite(data)]
    image = ax.imshow(data, cmap="RdYlGn", aspect="auto", origin="lower",
                      vmin=float(finite.min()) if finite.size else None,
                      vmax=float(finite.max()) if finite.size else None)
    ax.set_xticks(range(pivot.shape[1]), [str(c) for c in pivot.columns])
    ax.set_yticks(range(pivot.shape[0]), [str(r) for r in pivot.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if annotate and data.size <= 400:
        for (i, j), v in np.ndenumerate(data):
            if math.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label=metric)
    if path is not None:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    return fig


def save_sweep(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a sweep table to Parquet (written beside and renamed: never half a file)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    frame = table.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            # Mixed parameter values (e.g. ints and None) become text, as Parquet needs
            # one type per column; numbers and strings keep theirs.
            kinds = {type(v) for v in frame[col] if v is not None}
            if len(kinds) > 1:
                frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    frame.to_parquet(tmp, engine="pyarrow", index=False)
    os.replace(tmp, out)
    return out


def load_sweep(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a sweep table written by :func:`save_sweep`."""
    return pd.read_parquet(path, engine="pyarrow")
