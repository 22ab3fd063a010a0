"""Backtest results: fills, orders, equity, positions over time and statistics.

Equity is marked to each bar's close: ``equity[t] = cash[t] + sum(position[t] * close[t])``,
with a symbol's last known close carried forward over bars where it did not trade.
Cash and positions over time come from the broker's own per-fill ledger, so the last row
equals the broker's state exactly.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd

from simbroker.bars import FIELDS, Bars
from simbroker.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from simbroker.paper import PaperBroker

__all__ = ["BacktestResult", "build_result", "compute_stats", "load_result", "round_trips"]

_YEAR_NS = 365.25 * 86_400e9
_FILL_COLUMNS = ["timestamp", "symbol", "side", "qty", "price", "fee", "notional", "order_id",
                 "client_order_id", "fill_id"]
_ORDER_COLUMNS = ["order_id", "client_order_id", "symbol", "side", "qty", "order_type",
                  "limit_price", "stop_price", "tif", "status", "filled_qty", "avg_fill_price",
                  "submitted_at", "reason"]
_ORDER_STR = ("order_id", "symbol", "side", "order_type", "tif", "status")
_ORDER_FLOAT = ("qty", "limit_price", "stop_price", "filled_qty", "avg_fill_price")
_TRIP_COLUMNS = ["symbol", "direction", "opened", "closed", "qty", "entry_notional", "fees",
                 "pnl", "return", "holding", "bars_held", "is_open"]
# The string dtype pandas infers for Python strings (``str`` from pandas 3, else object),
# so a typed frame compares equal to one pandas built from dicts.
_STR_DTYPE: Any = pd.Series(["a"]).dtype
_RESULT_FORMAT = 1
_DIRECTIONS: Any = pd.array(["short", "long"], dtype=_STR_DTYPE)


def _empty_trips_factory() -> pd.DataFrame:
    return _empty_trips()


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """What a backtest produced.

    Attributes
    ----------
    fills : DataFrame
        One row per execution: ``timestamp, symbol, side, qty, price, fee, notional,
        order_id, client_order_id, fill_id`` (timestamp = the fill bar's open, UTC).
    orders : DataFrame
        Every order with its final status.
    equity : Series
        Account value marked to each bar's close, indexed by bar timestamp.
    cash : Series
        Cash after each bar.
    positions : DataFrame
        Position per symbol after each bar (timestamps x symbols).
    stats : dict
        See :func:`compute_stats`.
    config : dict
        What ran: starting cash, slippage and fee models (their reprs).
    bars : Bars
        The panel that was replayed.
    trades : DataFrame
        Round trips, flat to flat per symbol (see :func:`round_trips`).
    """

    fills: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.Series
    cash: pd.Series
    positions: pd.DataFrame
    stats: dict[str, Any]
    config: dict[str, Any]
    bars: Bars = field(repr=False)
    trades: pd.DataFrame = field(default_factory=_empty_trips_factory, repr=False)

    @property
    def final_positions(self) -> dict[str, float]:
        """Positions after the last bar (flat symbols left out)."""
        last = self.positions.iloc[-1]
        return {str(k): float(v) for k, v in last.items() if v != 0}

    @property
    def final_cash(self) -> float:
        """Cash after the last bar."""
        return float(self.cash.iloc[-1])

    def format_summary(self) -> str:
        """The statistics as a readable two-column table."""
        return format_stats(self.stats, self.config)

    def summary(self, file: TextIO | None = None) -> None:
        """Print the statistics table (to stdout by default)."""
        print(self.format_summary(), file=file if file is not None else sys.stdout)

    def __str__(self) -> str:
        return self.format_summary()

    @property
    def drawdown(self) -> pd.Series:
        """Equity over its running peak, minus one (0 at a new high, negative below)."""
        eq = self.equity.to_numpy(np.float64)
        start = float(self.stats.get("start_equity", eq[0] if len(eq) else 0.0))
        peak = np.maximum.accumulate(np.concatenate([[start], eq]))[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = eq / peak - 1.0
        return pd.Series(dd, index=self.equity.index, name="drawdown")

    def plot(self, path: str | os.PathLike[str] | None = None, *, symbol: str | None = None,
             title: str | None = None) -> Figure:
        """Draw equity, drawdown and fills with matplotlib.

        Three panels share the time axis: equity with buy/sell markers at each fill, the
        drawdown, and one symbol's close with its fills at their prices (``symbol``, by
        default the most traded). Needs ``matplotlib`` (``pip install 'simbroker[plot]'``).

        Parameters
        ----------
        path
            Save the figure there (PNG, or what the suffix says) and close it.
        symbol
            The symbol for the price panel.
        title
            Figure title; default: the strategy's headline numbers.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from simbroker.report import plot_result

        return plot_result(self, path, symbol=symbol, title=title)

    def report(self, path: str | os.PathLike[str], *, title: str = "Backtest report",
               max_rows: int = 1000) -> Path:
        """Write a self-contained HTML report: statistics, plots, round trips and fills.

        The plots are embedded as PNG data; the file opens offline, anywhere. Tables show
        the first ``max_rows`` rows (the count says so when cut).

        Returns
        -------
        Path
            Where the report was written.
        """
        from simbroker.report import write_report

        return write_report(self, path, title=title, max_rows=max_rows)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the result to ``directory``: Parquet tables and a JSON manifest.

        ``fills``, ``orders``, ``trades``, ``equity`` (with ``cash``), ``positions`` and
        the replayed ``bars`` as Parquet; ``stats`` and ``config`` in ``result.json``.
        :meth:`load` reads it back with the same values and dtypes. Files are written
        beside and renamed into place, so a crash never leaves a half-written table.
        """
        return _save(self, Path(directory))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> BacktestResult:
        """Read a result written by :meth:`save`."""
        return _load(Path(directory))

    def __repr__(self) -> str:
        s = self.stats
        return (f"BacktestResult({s['n_bars']} bars x {self.bars.n_symbols} symbols, "
                f"{s['n_fills']} fills, total_return={s['total_return']:.4%}, "
                f"sharpe={s['sharpe']:.3f})")


def build_result(broker: PaperBroker) -> BacktestResult:
    """Assemble a :class:`BacktestResult` from a paper broker that has replayed its bars.

    Bars not yet replayed are left out (the result ends at the broker's current bar).
    """
    bars = broker.bars
    t_end = broker.bar_index + 1
    n = bars.n_symbols

    ledger_bar = np.asarray(broker._ledger_bar, np.int64)
    ledger_sym = np.asarray(broker._ledger_sym, np.int64)
    ledger_cash = np.asarray(broker._ledger_cash, np.float64)
    ledger_pos = np.asarray(broker._ledger_pos, np.float64)

    cash = cash_after_bars(ledger_bar, ledger_cash, t_end, broker.initial_cash)

    # Positions after each bar: row 0 holds the starting positions, then the position
    # after the last fill of each (bar, symbol), carried forward.
    pos = np.full((t_end + 1, n), np.nan)
    init = np.zeros(n)
    for sym, qty in broker.initial_positions.items():
        init[bars.symbol_index(sym)] = qty
    pos[0] = init
    if len(ledger_bar):
        key = ledger_bar * n + ledger_sym
        # The last fill of each (bar, symbol) decides; unique() on the reversed keys finds it.
        _, first_rev = np.unique(key[::-1], return_index=True)
        last = len(key) - 1 - first_rev
        pos[ledger_bar[last] + 1, ledger_sym[last]] = ledger_pos[last]
    pos = _ffill(pos)[1:]

    close = marking_closes(bars.close[:t_end])
    value, gross = mark_to_market(pos, close)
    equity = cash + value
    first_close = close[0] if t_end else np.zeros(n)
    start_equity = broker.initial_cash + float(np.nansum(np.where(init != 0, init * first_close,
                                                                  0.0)))
    config = {"cash": broker.initial_cash, "slippage": repr(broker.slippage),
              "fees": repr(broker.fees), "allow_short": broker.allow_short}
    if broker.initial_positions:
        config["positions"] = broker.initial_positions
    return assemble_result(
        bars.rows(0, t_end) if t_end < len(bars) else bars,
        fills=_fills_frame(broker.get_fills()),
        orders=orders_frame(broker.get_orders()),
        equity=equity, cash=cash, positions=pos, gross=gross,
        start_equity=start_equity, config=config,
        initial_positions=broker.initial_positions)


def cash_after_bars(fill_bar: np.ndarray, cash_after_fill: np.ndarray, n_bars: int,
                    initial: float) -> np.ndarray:
    """Cash after each bar: after that bar's last fill, carried forward (``initial`` before
    the first fill). ``fill_bar`` is each fill's bar, non-decreasing."""
    fill_bar = np.asarray(fill_bar, np.int64)
    if not len(fill_bar):
        return np.full(n_bars, float(initial))
    # Runs of equal cash: `initial` until the first bar with a fill, then from each such
    # bar the cash after its last fill. One np.repeat writes the whole column.
    last = np.flatnonzero(np.append(fill_bar[1:] != fill_bar[:-1], True))
    starts = np.concatenate([[0], fill_bar[last], [n_bars]])
    values = np.concatenate([[float(initial)], cash_after_fill[last]])
    out: np.ndarray = np.repeat(values, np.diff(starts))
    return out


def marking_closes(close: np.ndarray) -> np.ndarray:
    """The closes equity is marked to: the last known close, and before a symbol's first
    bar its first close (``close`` itself when none is missing)."""
    return _bfill(_ffill(close.copy())) if np.isnan(close).any() else close


# Cells per block of rows in mark_to_market: small enough to stay in cache.
_MARK_CELLS = 2**15


def mark_to_market(positions: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bar, ``sum(position * close)`` and ``sum(|position * close|)`` over symbols.

    Symbols held at 0, or with no close at all (``NaN``), count 0. Each row is summed as
    one contiguous row (numpy's pairwise sum), so both runners get the same bits; the rows
    go through a small buffer instead of a ``(bars, symbols)`` temporary.
    """
    n_t, n = positions.shape
    value, gross = np.empty(n_t), np.empty(n_t)
    if n == 1:  # one symbol: no row sums to do (a row sum of one is 0.0 + it)
        np.multiply(positions[:, 0], close[:, 0], out=value)
        value[np.isnan(value)] = 0.0
        value += 0.0
        np.abs(value, out=gross)
        return value, gross
    step = max(1, _MARK_CELLS // max(n, 1))
    buf = np.empty((min(step, n_t), n))
    for lo in range(0, n_t, step):
        hi = min(lo + step, n_t)
        held = buf[: hi - lo]
        np.multiply(positions[lo:hi], close[lo:hi], out=held)
        # NaN only from a missing close: with a zero position or none known, it adds 0.
        nan = np.isnan(held)
        if nan.any():
            held[nan] = 0.0
        np.sum(held, axis=1, out=value[lo:hi])
        np.abs(held, out=held)
        np.sum(held, axis=1, out=gross[lo:hi])
    return value, gross


def assemble_result(bars: Bars, *, fills: pd.DataFrame, orders: pd.DataFrame,
                    equity: np.ndarray, cash: np.ndarray, positions: np.ndarray,
                    gross: np.ndarray, start_equity: float, config: dict[str, Any],
                    initial_positions: Mapping[str, float] | None = None,
                    trips: pd.DataFrame | None = None) -> BacktestResult:
    """Build a :class:`BacktestResult` from per-bar arrays (both runners end here).

    ``trips`` are the round trips when the caller has them (else computed from fills).
    """
    index = bars.index
    # The arrays are the result's own: no copies.
    equity_s = pd.Series(equity, index=index, name="equity", copy=False)
    if trips is None:
        trips = round_trips(fills, bars=bars, initial_positions=initial_positions)
    stats = compute_stats(equity_s, fills, start_equity=start_equity, interval=bars.interval,
                          n_orders=len(orders), gross_exposure=gross, trips=trips)
    return BacktestResult(
        fills=fills,
        orders=orders,
        equity=equity_s,
        cash=pd.Series(cash, index=index, name="cash", copy=False),
        positions=pd.DataFrame(positions, index=index,
                               columns=pd.Index(bars.symbols, name="symbol"), copy=False),
        stats=stats,
        config=config,
        bars=bars,
        trades=trips,
    )


def compute_stats(
    equity: pd.Series,
    fills: pd.DataFrame,
    *,
    start_equity: float,
    interval: np.timedelta64,
    n_orders: int = 0,
    gross_exposure: np.ndarray | None = None,
    trips: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Performance statistics of an equity curve, its fills and round trips.

    Per-bar returns include the step from ``start_equity`` to the first bar's equity.
    Annualization uses the observed bar frequency: bars per year = bars / years spanned
    (about 252 for daily bars of one exchange). Sharpe and Sortino assume a zero
    risk-free rate and target return.

    Parameters
    ----------
    gross_exposure
        Sum of ``|position x close|`` over symbols after each bar; gives ``exposure``
        (share of bars with a position) and ``avg_gross_exposure`` (mean of gross / equity).
    trips
        :func:`round_trips` of the run; gives the per-trip statistics (closed trips only).

    Returns
    -------
    dict
        ``start, end, n_bars, start_equity, final_equity, total_return, cagr,
        ann_volatility, sharpe, sortino, calmar, max_drawdown, max_drawdown_duration``
        (longest time from a peak until equity is back above it, or to the end; a
        Timedelta), ``max_drawdown_bars, exposure, avg_gross_exposure, n_orders, n_fills,
        fees_paid, traded_notional, turnover`` (traded notional / mean equity),
        ``round_trips, win_rate, profit_factor`` (gross profit / gross loss of closed
        trips), ``avg_trip_return, avg_holding`` (a Timedelta) ``, avg_bars_held``.
    """
    eq = equity.to_numpy(np.float64)
    n = len(eq)
    out: dict[str, Any] = {
        "start": equity.index[0] if n else None,
        "end": equity.index[-1] if n else None,
        "n_bars": n,
        "start_equity": float(start_equity),
        "final_equity": float(eq[-1]) if n else float(start_equity),
    }
    nan = float("nan")
    if n == 0:
        out.update(total_return=0.0, cagr=nan, ann_volatility=nan, sharpe=nan, sortino=nan,
                   calmar=nan, max_drawdown=0.0, max_drawdown_duration=pd.Timedelta(0),
                   max_drawdown_bars=0)
    else:
        span_ns = float((equity.index[-1] - equity.index[0]).value) + float(
            interval.astype(np.int64))
        years = span_ns / _YEAR_NS
        # Long runs (500k minute bars) make every temporary array count: one scratch
        # buffer serves returns, downside returns, drawdown and exposure in turn.
        buf = np.empty(n)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.divide(eq[1:], eq[:-1], out=buf[1:])
            buf[0] = eq[0] / start_equity
            buf -= 1.0
            rets = buf
            growth = eq[-1] / start_equity
            total = growth - 1.0
            cagr = (growth ** (1.0 / years) - 1.0 if growth > 0 else -1.0) if years > 0 else nan
            per_year = n / years if years > 0 else nan
            mu = float(np.mean(rets))
            # Sum of squares about the mean without a temporary array (np.std makes one).
            ss = float(np.dot(rets, rets)) - n * mu * mu
            sd = math.sqrt(max(ss, 0.0) / (n - 1)) if n > 1 and math.isfinite(ss) else nan
            vol = sd * math.sqrt(per_year) if per_year == per_year else nan
            sharpe = (mu / sd * math.sqrt(per_year)
                      if sd and sd == sd and per_year == per_year else nan)
            neg = np.minimum(rets, 0.0, out=buf)
            downside = math.sqrt(float(np.dot(neg, neg)) / n)
            sortino = (mu / downside * math.sqrt(per_year)
                       if downside and downside == downside and per_year == per_year
                       else nan)
            peak = np.maximum.accumulate(eq, out=buf)
            np.maximum(peak, start_equity, out=peak)
            dd_bars, dd_time = _drawdown_duration(eq, peak, pd.DatetimeIndex(equity.index),
                                                  interval)
            dd = min(float(np.min(np.divide(eq, peak, out=buf))) - 1.0, 0.0)
            calmar = float(cagr) / -dd if dd < 0 else nan
        out.update(total_return=float(total), cagr=float(cagr), ann_volatility=float(vol),
                   sharpe=float(sharpe), sortino=float(sortino), calmar=float(calmar),
                   max_drawdown=dd, max_drawdown_duration=dd_time, max_drawdown_bars=dd_bars)
        if gross_exposure is not None:
            gross = np.asarray(gross_exposure, np.float64)
            positive = eq > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.divide(gross, eq, out=buf)
            n_pos = int(np.count_nonzero(positive))
            if n_pos < n:
                ratio[~positive] = 0.0
            out.update(exposure=np.count_nonzero(gross) / n,
                       avg_gross_exposure=float(np.sum(ratio)) / n_pos if n_pos else nan)
    traded = float(fills["notional"].sum()) if len(fills) else 0.0
    mean_eq = float(np.mean(eq)) if n else float(start_equity)
    out.update(
        n_orders=int(n_orders),
        n_fills=len(fills),
        fees_paid=float(fills["fee"].sum()) if len(fills) else 0.0,
        traded_notional=traded,
        turnover=traded / mean_eq if mean_eq > 0 else nan,
    )
    if trips is not None:
        out.update(_trip_stats(trips))
    return out


def _trip_stats(trips: pd.DataFrame) -> dict[str, Any]:
    # Columns, not trips[mask]: that would copy the string columns too.
    done = ~trips["is_open"].to_numpy(bool)
    pnl = trips["pnl"].to_numpy(np.float64)[done]
    nan = float("nan")
    if not len(pnl):
        return {"round_trips": 0, "win_rate": nan, "profit_factor": nan,
                "avg_trip_return": nan, "avg_holding": pd.NaT, "avg_bars_held": nan}
    gain, loss = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    factor = gain / loss if loss > 0 else (math.inf if gain > 0 else nan)
    ret = trips["return"].to_numpy(np.float64)[done]
    return {
        "round_trips": len(pnl),
        "win_rate": float(np.mean(pnl > 0)),
        "profit_factor": factor,
        "avg_trip_return": float(np.mean(ret)) if np.isfinite(ret).all() else nan,
        "avg_holding": trips["holding"][done].mean(),
        "avg_bars_held": float(trips["bars_held"][done].mean()),
    }


def _drawdown_duration(eq: np.ndarray, peak: np.ndarray, index: pd.DatetimeIndex,
                       interval: np.timedelta64) -> tuple[int, pd.Timedelta]:
    """Longest stretch under a previous peak, in bars and in time.

    ``peak`` is the running maximum of the starting equity and ``eq``. A drawdown lasts
    from the bar of the peak (the start counts as one bar before the first) until the
    first bar back at or above it, or the last bar.
    """
    under = eq < peak
    if not under.any():
        return 0, pd.Timedelta(0)
    # Point 0 is the start (never under water), then one point per bar: stretches under
    # water start right after a point at its peak and end at the next one back at it.
    under = np.concatenate([[False], under])
    edges = np.diff(under.view(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) + 1
    if under[-1]:
        ends = np.append(ends, len(under) - 1)
    lengths = ends - starts
    k = int(np.argmax(lengths))
    step = int(interval.astype(np.int64))

    def at(point: int) -> int:  # ns since the epoch, whatever the index's unit
        return int(index[point - 1].value) if point else int(index[0].value) - step

    return int(lengths[k]), pd.Timedelta(at(int(ends[k])) - at(int(starts[k])), unit="ns")


_LABELS = [
    ("start", "Start", "{}"),
    ("end", "End", "{}"),
    ("n_bars", "Bars", "{:,}"),
    ("start_equity", "Start equity", "{:,.2f}"),
    ("final_equity", "Final equity", "{:,.2f}"),
    ("total_return", "Total return", "{:.2%}"),
    ("cagr", "CAGR", "{:.2%}"),
    ("ann_volatility", "Volatility (ann.)", "{:.2%}"),
    ("sharpe", "Sharpe", "{:.3f}"),
    ("sortino", "Sortino", "{:.3f}"),
    ("calmar", "Calmar", "{:.3f}"),
    ("max_drawdown", "Max drawdown", "{:.2%}"),
    ("max_drawdown_duration", "Max drawdown duration", "{}"),
    ("max_drawdown_bars", "Max drawdown bars", "{:,}"),
    ("exposure", "Exposure (bars held)", "{:.2%}"),
    ("avg_gross_exposure", "Avg gross exposure", "{:.2%}"),
    ("n_orders", "Orders", "{:,}"),
    ("n_fills", "Fills", "{:,}"),
    ("fees_paid", "Fees paid", "{:,.2f}"),
    ("traded_notional", "Traded notional", "{:,.2f}"),
    ("turnover", "Turnover", "{:.2f}x"),
    ("round_trips", "Round trips (closed)", "{:,}"),
    ("win_rate", "Win rate", "{:.2%}"),
    ("profit_factor", "Profit factor", "{:.3f}"),
    ("avg_trip_return", "Avg trip return", "{:.2%}"),
    ("avg_holding", "Avg holding time", "{}"),
    ("avg_bars_held", "Avg bars held", "{:.1f}"),
]


def format_stats(stats: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """Render statistics (and optionally the run's configuration) as an aligned table."""
    rows = stat_rows(stats, config)
    width = max(len(label) for label, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    rule = "-" * (width + vwidth + 3)
    return "\n".join([rule, *(f"{label:<{width}}   {v:>{vwidth}}" for label, v in rows), rule])


def stat_rows(stats: dict[str, Any], config: dict[str, Any] | None = None
              ) -> list[tuple[str, str]]:
    """Statistics (and the run's cost models) as ``(label, formatted value)`` rows."""
    rows: list[tuple[str, str]] = []
    for key, label, fmt in _LABELS:
        if key in stats:
            value = stats[key]
            if value is None or value is pd.NaT or (isinstance(value, float)
                                                     and math.isnan(value)):
                text = "n/a"
            elif isinstance(value, pd.Timestamp):
                text = value.isoformat()
            elif isinstance(value, pd.Timedelta):
                text = _format_timedelta(value)
            else:
                text = fmt.format(value)
            rows.append((label, text))
    for key in sorted(set(stats) - {k for k, _, _ in _LABELS}):
        rows.append((key, str(stats[key])))
    if config:
        rows.append(("Slippage", str(config.get("slippage"))))
        rows.append(("Fees", str(config.get("fees"))))
    return rows


def round_trips(
    fills: pd.DataFrame,
    *,
    bars: Bars | None = None,
    initial_positions: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Group fills into round trips: flat to flat, per symbol.

    A trip opens when a symbol's position leaves zero and closes when it returns to zero;
    a fill that flips the position closes one trip and opens the next, its quantity and
    fee split between them in proportion. Positions held at the start (``initial_positions``)
    open a trip at the first bar, valued at its close as the start equity is. Trips still
    open after the last fill are marked to the last known close of ``bars`` (``is_open``
    is True); statistics use closed trips.

    Parameters
    ----------
    fills
        A fills frame (``BacktestResult.fills``), in execution order.
    bars
        The replayed panel: gives bar counts and the marks for open trips.
    initial_positions
        Shares held before the first bar.

    Returns
    -------
    DataFrame
        One row per trip, in order of opening (the order of the opening fills):
        ``symbol, direction`` (``"long"`` / ``"short"``), ``opened, closed`` (fill
        timestamps; ``NaT`` while open), ``qty`` (the largest absolute position),
        ``entry_notional`` (what the position cost to build),
        ``fees, pnl`` (net of fees), ``return`` (pnl / entry notional), ``holding``
        (``closed - opened``), ``bars_held`` and ``is_open``.
    """
    sym = fills["symbol"].to_numpy(object)
    sign, qty, notional, fee, ts = fill_arrays(fills)
    init = {k: float(v) for k, v in (initial_positions or {}).items() if v}
    if init:
        if bars is None or not len(bars):
            raise ValueError("round_trips needs bars to price initial_positions")
        close0 = _bfill(bars.close.copy())[0]
        names = sorted(init)
        px = np.array([close0[bars.symbol_index(k)] for k in names])
        q0 = np.array([init[k] for k in names])
        sym = np.concatenate([np.asarray(names, object), sym])
        sign = np.concatenate([np.sign(q0), sign])
        qty = np.concatenate([np.abs(q0), qty])
        notional = np.concatenate([np.abs(q0) * px, notional])
        fee = np.concatenate([np.zeros(len(q0)), fee])
        ts = np.concatenate([np.full(len(q0), int(bars.ts_ns[0])), ts])
    if len(sym) == 0:
        return _empty_trips()
    codes, uniques = pd.factorize(sym)
    return trips_of(codes, np.asarray(uniques, object), sign, qty, notional, fee, ts, bars)


def fill_arrays(fills: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """A fills frame's ``sign`` (+1 buy, -1 sell), ``qty``, ``notional``, ``fee`` and
    ``ts`` (int64 ns) as arrays, as :func:`trips_of` takes them."""
    return (np.where(fills["side"].to_numpy(object) == "buy", 1.0, -1.0),
            fills["qty"].to_numpy(np.float64), fills["notional"].to_numpy(np.float64),
            fills["fee"].to_numpy(np.float64),
            fills["timestamp"].to_numpy("datetime64[ns]").astype(np.int64))


def trips_of(codes: np.ndarray, names: np.ndarray, sign: np.ndarray, qty: np.ndarray,
             notional: np.ndarray, fee: np.ndarray, ts: np.ndarray, bars: Bars | None,
             columns: np.ndarray | None = None) -> pd.DataFrame:
    """:func:`round_trips` of fills given as arrays, in execution order.

    ``names[codes[i]]`` is fill ``i``'s symbol, ``sign`` +1 (buy) or -1, ``ts`` int64
    nanoseconds; ``columns[code]`` is a symbol's column in ``bars`` when the caller knows
    it (else looked up by name).
    """
    if len(codes) == 0:
        return _empty_trips()
    # Stable, so each symbol's fills stay in time order (a radix sort on small codes).
    order = np.argsort(codes.astype(np.int16) if len(names) <= np.iinfo(np.int16).max
                       else codes, kind="stable")
    c, s, q_abs = codes[order], sign[order], qty[order]
    nt, fe, t = notional[order], fee[order], ts[order]
    q = s * q_abs
    # Exact per-symbol running sums (pandas sums each group in order, no cross-symbol drift).
    if c[0] == c[-1]:  # one symbol: a plain running sum
        after = np.cumsum(q)
    else:
        after = pd.Series(q).groupby(c).cumsum().to_numpy(np.float64, copy=True)
    first = np.empty(len(c), bool)
    first[0] = True
    np.not_equal(c[1:], c[:-1], out=first[1:])
    # Summation dust after a closing fill is ~1e-16 of its size: snap it to flat.
    after[np.abs(after) <= 1e-9 * q_abs] = 0.0
    before = np.empty_like(after)
    before[1:] = after[:-1]
    before[first] = 0.0
    sb, sa = np.sign(before), np.sign(after)
    closes = (sb != 0) & (sa != sb)
    opens = (sa != 0) & (sa != sb)
    flip = closes & opens
    tid = np.cumsum(opens) - 1
    frac = np.where(flip, np.abs(before) / q_abs, 0.0)  # share of a flip that closes

    # Each fill becomes one or two legs: (trip, weight).
    leg_trip = np.concatenate([tid, tid[flip] - 1])
    leg_w = np.concatenate([np.where(flip, 1.0 - frac, 1.0), frac[flip]])
    leg_src = np.concatenate([np.arange(len(c)), np.flatnonzero(flip)])
    grows = np.concatenate([opens | ((sa == sb) & (np.abs(after) > np.abs(before))),
                            np.zeros(int(flip.sum()), bool)])
    n_trips = int(tid[-1]) + 1
    cf = -s * nt - fe
    pnl = np.bincount(leg_trip, leg_w * cf[leg_src], minlength=n_trips)
    fees = np.bincount(leg_trip, leg_w * fe[leg_src], minlength=n_trips)
    entry = np.bincount(leg_trip, np.where(grows, leg_w * nt[leg_src], 0.0),
                        minlength=n_trips)
    open_idx = np.flatnonzero(opens)
    # A trip's fills are the run from its opening fill to the next one (tid is sorted).
    size = np.maximum.reduceat(np.abs(after), open_idx)
    trip_sym = c[open_idx]
    direction = sa[open_idx]
    opened = t[open_idx]
    closed = np.full(n_trips, np.iinfo(np.int64).min)  # NaT
    close_idx = np.flatnonzero(closes)
    closed[np.where(flip[close_idx], tid[close_idx] - 1, tid[close_idx])] = t[close_idx]
    is_open = closed == np.iinfo(np.int64).min
    if is_open.any():
        # Mark what is still held to the last known close.
        # The last fill of a trip leaves its final position (tid is sorted).
        last_pos = after[np.flatnonzero(np.append(tid[1:] != tid[:-1], True))]
        if bars is not None and len(bars):
            held = np.unique(trip_sym[is_open])
            cols = (columns[held] if columns is not None else
                    np.array([bars.symbol_index(str(names[k])) for k in held], np.int64))
            mark = np.zeros(len(names))
            last = bars.close[-1, cols]  # usually known; else scan back the few that are not
            for i in np.flatnonzero(np.isnan(last)):
                last[i] = _last_valid(bars.close[:, cols[i]:cols[i] + 1])[0]
            mark[held] = last
            pnl = pnl + np.where(is_open, last_pos * mark[trip_sym], 0.0)
        else:
            pnl = np.where(is_open, np.nan, pnl)
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = pnl / entry
    if bars is not None and len(bars):
        ts_bars = bars.ts_ns
        b_open = np.searchsorted(ts_bars, opened, side="right") - 1
        b_close = np.searchsorted(ts_bars, np.where(is_open, ts_bars[-1], closed),
                                  side="right") - 1
        bars_held = (b_close - b_open).astype(np.int64)
    else:
        bars_held = np.full(n_trips, -1, np.int64)
    # In order of opening, as a person reads a blotter: the order of the opening fills
    # (distinct, so a scatter sorts them).
    opening_fill = order[open_idx]
    trip_at = np.empty(len(order), np.int64)
    trip_at[opening_fill] = np.arange(n_trips)
    is_opening = np.zeros(len(order), np.bool_)
    is_opening[opening_fill] = True
    k = trip_at[is_opening]
    opened_dt = pd.DatetimeIndex(opened[k].view("datetime64[ns]")).tz_localize("UTC")
    closed_dt = pd.DatetimeIndex(closed[k].view("datetime64[ns]")).tz_localize("UTC")
    trips: pd.DataFrame = pd.DataFrame({
        "symbol": pd.array(names, dtype=_STR_DTYPE).take(trip_sym[k]),
        "direction": _DIRECTIONS.take((direction[k] > 0).astype(np.int64)),
        "opened": opened_dt,
        "closed": closed_dt,
        "qty": size[k],
        "entry_notional": entry[k],
        "fees": fees[k],
        "pnl": pnl[k],
        "return": ret[k],
        "holding": closed_dt - opened_dt,
        "bars_held": bars_held[k],
        "is_open": is_open[k],
    }, columns=_TRIP_COLUMNS)
    return trips


def _empty_trips() -> pd.DataFrame:
    empty = np.array([], np.float64)
    nat = pd.to_datetime(np.array([], np.int64), utc=True).as_unit("ns")
    frame: pd.DataFrame = pd.DataFrame({
        "symbol": pd.array([], dtype=_STR_DTYPE), "direction": pd.array([], dtype=_STR_DTYPE),
        "opened": nat, "closed": nat, "qty": empty, "entry_notional": empty, "fees": empty,
        "pnl": empty, "return": empty, "holding": nat - nat,
        "bars_held": np.array([], np.int64), "is_open": np.array([], bool),
    }, columns=_TRIP_COLUMNS)
    return frame


def orders_frame(orders: list[Any]) -> pd.DataFrame:
    """Orders (``OrderInfo`` dicts) as a DataFrame with fixed columns and dtypes.

    Strings as pandas infers them, prices and quantities float64 (``NaN`` = none),
    ``submitted_at`` datetime64[ns, UTC], ``client_order_id``/``reason`` object (``None`` =
    none): the same whether there are no orders, none filled, or many.
    """
    cols: dict[str, Any] = {}
    for c in _ORDER_COLUMNS:
        values = [o[c] for o in orders]
        if c in _ORDER_STR:
            cols[c] = pd.array(values, dtype=_STR_DTYPE)
        elif c in _ORDER_FLOAT:
            cols[c] = np.array([np.nan if v is None else v for v in values], np.float64)
        elif c == "submitted_at":
            cols[c] = pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(
                "datetime64[ns, UTC]")
        else:
            cols[c] = pd.Series(values, dtype=object)
    frame: pd.DataFrame = pd.DataFrame(cols, columns=_ORDER_COLUMNS)
    return frame


def _format_timedelta(value: pd.Timedelta) -> str:
    """``12d 03:00`` / ``03:25:00``: days and clock time, no nanosecond noise."""
    secs = round(value.total_seconds())
    if secs >= 86_400:
        secs = 60 * round(secs / 60)  # minutes are enough beside days
    days, rest = divmod(secs, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")
    if days and not (hours or minutes or seconds):
        return f"{days}d"
    return f"{days}d {clock}" if days else clock


def _fills_frame(fills: list[Any]) -> pd.DataFrame:
    """Fills as a DataFrame with the same columns and dtypes whether empty or not."""
    cols: dict[str, Any] = {c: [f[c] for f in fills] for c in _FILL_COLUMNS}
    frame = pd.DataFrame({
        c: (pd.to_datetime(v, utc=True).as_unit("ns") if c == "timestamp"
            else np.asarray(v, np.float64) if c in ("qty", "price", "fee", "notional")
            else pd.Series(v, dtype=object))
        for c, v in cols.items()
    })
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    out: pd.DataFrame = frame
    return out


def _last_valid(a: np.ndarray) -> np.ndarray:
    """The last non-NaN value of each column (NaN where a column has none)."""
    valid = ~np.isnan(a)
    last = a.shape[0] - 1 - np.argmax(valid[::-1], axis=0)
    out: np.ndarray = np.where(valid.any(axis=0), a[last, np.arange(a.shape[1])], np.nan)
    return out


def _ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN down each column (vectorized)."""
    if a.size == 0:
        return a
    idx = np.where(np.isnan(a), 0, np.arange(a.shape[0])[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    out: np.ndarray = a[idx, np.arange(a.shape[1])]
    return out


def _bfill(a: np.ndarray) -> np.ndarray:
    """Back-fill NaN up each column (vectorized)."""
    return _ffill(a[::-1])[::-1]


# --------------------------------------------------------------------------- save / load
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


def _write_atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(result: BacktestResult, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    equity = pd.DataFrame({"equity": result.equity, "cash": result.cash})
    tables: dict[str, pd.DataFrame] = {
        "fills": result.fills, "orders": result.orders, "trades": result.trades,
        "equity": equity, "positions": result.positions, "bars": _bars_table(result.bars),
    }
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
        "symbols": list(result.bars.symbols),
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
                **{f: raw[f].to_numpy(np.float64).reshape(shape) for f in FIELDS})
    positions = t["positions"]
    positions.columns = pd.Index([str(c) for c in positions.columns], name="symbol")
    equity = t["equity"]
    return BacktestResult(
        fills=t["fills"],
        orders=t["orders"],
        equity=equity["equity"],
        cash=equity["cash"],
        positions=positions,
        stats=_from_json(manifest["stats"]),
        config=_from_json(manifest["config"]),
        bars=bars,
        trades=t["trades"],
    )


def load_result(directory: str | os.PathLike[str]) -> BacktestResult:
    """Read a result written by :meth:`BacktestResult.save`."""
    return _load(Path(directory))
