"""Per-bar cash, positions and equity from a run's fills: both runners end here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simbroker.actions._paper import dividend_frame
from simbroker.bars import Bars
from simbroker.results._paper_orders import paper_orders_frame
from simbroker.results.columns import _bfill, _ffill, _fills_frame
from simbroker.results.result import BacktestResult
from simbroker.results.stats import compute_stats, stats_series
from simbroker.results.trips import round_trips

if TYPE_CHECKING:
    from simbroker.paper import PaperBroker


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

    init = np.zeros(n)
    for sym, qty in broker.initial_positions.items():
        init[bars.symbol_index(sym)] = qty
    pos = positions_after_bars(ledger_bar, ledger_sym, ledger_pos, t_end, init)

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
    fin = broker._financing
    financing = None
    if fin is not None:
        from simbroker.financing._paper import per_bar

        config.update(borrow=repr(fin.borrow), interest=repr(fin.interest))
        financing = (per_bar(t_end, fin.borrow_bar, fin.borrow_amount),
                     per_bar(t_end, fin.interest_bar, fin.interest_amount))
    if broker.max_volume_share is not None:
        config["max_volume_share"] = broker.max_volume_share
    run_bars = bars.rows(0, t_end) if t_end < len(bars) else bars
    fills = _fills_frame(broker._fills)  # a FillLog's columns, no Fill dicts
    # The round trips before the orders table: the orders' columns then reuse the memory
    # the trips' temporaries left (built last, those were the run's peak)
    trips = round_trips(fills, bars=run_bars, initial_positions=broker.initial_positions)
    result = assemble_result(
        run_bars, fills=fills, orders=paper_orders_frame(broker._orders.values()),
        equity=equity, cash=cash, positions=pos, gross=gross,
        start_equity=start_equity, config=config,
        initial_positions=broker.initial_positions, trips=trips,
        dividends=None if bars.actions is None else dividend_frame(
            bars, None if broker._actions is None else broker._actions.sched,
            [] if broker._actions is None else broker._actions.dividends),
        financing=financing)
    fin_borrow = None if broker._financing is None else broker._financing.borrow
    refuses_shorts = fin_borrow is not None and bool(
        set(fin_borrow.hard_to_borrow) & set(bars.symbols))
    # As backtest_vectorized reports it; venue="alpaca" refuses one-side-at-a-time breaks.
    if broker._account is not None or refuses_shorts or broker.venue == "alpaca":
        result.stats["n_refused"] = broker._n_refused
    return result


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


# Cells per block of rows in positions_after_bars: its only scratch array.
_POSITION_CELLS = 2**16


def positions_after_bars(entry_bar: np.ndarray, entry_sym: np.ndarray,
                         position_after: np.ndarray, n_bars: int,
                         initial: np.ndarray) -> np.ndarray:
    """Positions after each bar, ``(n_bars, len(initial))``, from a ledger in time order.

    Entry ``k`` says symbol ``entry_sym[k]`` held ``position_after[k]`` after a fill (or an
    action) on bar ``entry_bar[k]`` (non-decreasing); a cell holds the latest entry up to
    its bar, else ``initial``. The values are copied, never summed, so the last row is
    the broker's own position exactly. Each block of rows numbers its cells' latest entry
    (a running maximum down the bars, carried from the block before), then one gather
    reads the values: the result is the only ``(n_bars, N)`` array made.
    """
    n = len(initial)
    table = np.concatenate([np.asarray(initial, np.float64),
                            np.asarray(position_after, np.float64)])
    if n == 1 and n_bars:  # one symbol: runs of equal positions, written as cash is
        k = int(np.searchsorted(entry_bar, n_bars))
        column = cash_after_bars(entry_bar[:k], table[1:k + 1], n_bars, table[0])
        return column.reshape(n_bars, 1)
    out = np.empty((n_bars, n))
    if n_bars == 0 or n == 0:
        return out
    # Entries are numbered after the n initial values, in time order, so the largest
    # number in a cell, and then down a column, is the latest entry.
    numbers = n + np.arange(len(entry_bar))
    carry = np.arange(n)  # each column's latest entry before the block: its initial value
    step = max(1, _POSITION_CELLS // n)
    buf = np.empty((min(step, n_bars), n), np.intp)
    for lo in range(0, n_bars, step):
        hi = min(lo + step, n_bars)
        idx = buf[: hi - lo]
        idx[:] = carry
        a, b = np.searchsorted(entry_bar, [lo, hi])
        if b > a:
            np.maximum.at(idx, (entry_bar[a:b] - lo, entry_sym[a:b]), numbers[a:b])
            np.maximum.accumulate(idx, axis=0, out=idx)
        np.take(table, idx, out=out[lo:hi])
        carry = idx[-1].copy()
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
                    trips: pd.DataFrame | None = None,
                    dividends: pd.DataFrame | None = None,
                    financing: tuple[np.ndarray, np.ndarray] | None = None) -> BacktestResult:
    """Build a :class:`BacktestResult` from per-bar arrays (both runners end here).

    ``trips`` are the round trips when the caller has them (else computed from fills).
    ``dividends`` (runs on bars with corporate actions) is the result's dividends table;
    its paid amounts give ``stats["dividends"]``. ``financing`` (runs with a borrow or
    interest model) is the borrow fee and the interest (credits negative) booked at each
    bar; their sums give ``stats["borrow_fees"]`` and ``stats["interest"]``.
    """
    index = bars.index
    # The arrays are the result's own: no copies.
    equity_s = pd.Series(equity, index=index, name="equity", copy=False)
    if trips is None:
        trips = round_trips(fills, bars=bars, initial_positions=initial_positions)
    received = None
    if dividends is not None:
        paid = dividends["paid"].notna().to_numpy()
        received = float(dividends["amount"].to_numpy()[paid].sum())
    stats = compute_stats(equity_s, fills, start_equity=start_equity, interval=bars.interval,
                          n_orders=len(orders), gross_exposure=gross, trips=trips,
                          dividends=received,
                          borrow_fees=None if financing is None else float(financing[0].sum()),
                          interest=None if financing is None else float(financing[1].sum()))
    extra: dict[str, Any] = {} if dividends is None else {"dividends": dividends}
    if financing is not None:
        extra["borrow_fees"] = pd.Series(financing[0], index=index, name="borrow_fees",
                                         copy=False)
        extra["interest"] = pd.Series(financing[1], index=index, name="interest", copy=False)
    return BacktestResult(
        fills=fills,
        orders=orders,
        equity=equity_s,
        cash=pd.Series(cash, index=index, name="cash", copy=False),
        positions=pd.DataFrame(positions, index=index,
                               columns=pd.Index(bars.symbols, name="symbol"), copy=False),
        stats=stats_series(stats),
        config=config,
        bars=bars,
        trades=trips,
        **extra,
    )


