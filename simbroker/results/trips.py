"""Round trips: fills grouped flat to flat per symbol, P&L net of fees."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from simbroker.bars import Bars
from simbroker.results.columns import _STR_DTYPE, _bfill, _last_valid

_TRIP_COLUMNS = ["symbol", "direction", "opened", "closed", "qty", "entry_notional", "fees",
                 "pnl", "return", "holding", "bars_held", "is_open"]
_DIRECTIONS: Any = pd.array(["short", "long"], dtype=_STR_DTYPE)


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
    sign, qty, notional, fee, ts = fill_arrays(fills)
    init = {k: float(v) for k, v in (initial_positions or {}).items() if v}
    if not init:
        if len(fills) == 0:
            return _empty_trips()
        # Factorized as the column is (Arrow's dictionary encoding for strings), not
        # through a Python string per fill: the same codes, in order of first appearance.
        fill_codes, found = pd.factorize(fills["symbol"])
        return trips_of(fill_codes, np.asarray(found, object), sign, qty, notional, fee, ts,
                        bars)
    sym = fills["symbol"].to_numpy(object)
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
    codes, uniques = pd.factorize(sym)
    del sym  # the codes say it (the arrays are per fill, and many)
    return trips_of(codes, np.asarray(uniques, object), sign, qty, notional, fee, ts, bars)


def fill_arrays(fills: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """A fills frame's ``sign`` (+1 buy, -1 sell), ``qty``, ``notional``, ``fee`` and
    ``ts`` (int64 ns) as arrays, as :func:`trips_of` takes them."""
    return (np.where((fills["side"] == "buy").to_numpy(np.bool_), 1.0, -1.0),
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
    # The per-fill arrays live only inside _per_trip: ~40 of them, freed before the
    # per-trip columns and the frame are built.
    trip_sym, direction, opened, closed, size, entry, fees, pnl, last_pos, open_idx = \
        _per_trip(codes[order], sign[order], qty[order], notional[order], fee[order],
                  ts[order])
    n_trips = len(open_idx)
    is_open = closed == np.iinfo(np.int64).min
    if is_open.any():
        # Mark what is still held to the last known close.
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
    n_fills = len(order)
    del order, open_idx
    trip_at = np.empty(n_fills, np.int64)
    trip_at[opening_fill] = np.arange(n_trips)
    is_opening = np.zeros(n_fills, np.bool_)
    is_opening[opening_fill] = True
    k = trip_at[is_opening]
    del trip_at, is_opening, opening_fill
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


def _per_trip(c: np.ndarray, s: np.ndarray, q_abs: np.ndarray, nt: np.ndarray,
              fe: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each trip's symbol code, direction, opening and closing time (``int64`` min while
    open), size, entry notional, fees, cash P&L, final position, and its opening fill's
    place in the fills sorted by symbol (``c`` grouped, each symbol in time order)."""
    q = s * q_abs
    # Exact per-symbol running sums (pandas sums each group in order, no cross-symbol drift).
    if c[0] == c[-1]:  # one symbol: a plain running sum
        after = np.cumsum(q)
    else:
        after = pd.Series(q).groupby(c).cumsum().to_numpy(np.float64, copy=True)
    del q  # each array is dropped once read for the last time: they are ~40 per fill
    first = np.empty(len(c), bool)
    first[0] = True
    np.not_equal(c[1:], c[:-1], out=first[1:])
    # Summation dust after a closing fill is ~1e-16 of its size: snap it to flat.
    after[np.abs(after) <= 1e-9 * q_abs] = 0.0
    before = np.empty_like(after)
    before[1:] = after[:-1]
    before[first] = 0.0
    del first
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
    del before, sb, frac
    n_trips = int(tid[-1]) + 1
    cf = -s * nt - fe
    pnl = np.bincount(leg_trip, leg_w * cf[leg_src], minlength=n_trips)
    fees = np.bincount(leg_trip, leg_w * fe[leg_src], minlength=n_trips)
    entry = np.bincount(leg_trip, np.where(grows, leg_w * nt[leg_src], 0.0),
                        minlength=n_trips)
    del leg_trip, leg_w, leg_src, grows, cf
    open_idx = np.flatnonzero(opens)
    # A trip's fills are the run from its opening fill to the next one (tid is sorted).
    size = np.maximum.reduceat(np.abs(after), open_idx)
    trip_sym = c[open_idx]
    direction = sa[open_idx]
    opened = t[open_idx]
    closed = np.full(n_trips, np.iinfo(np.int64).min)  # NaT
    close_idx = np.flatnonzero(closes)
    closed[np.where(flip[close_idx], tid[close_idx] - 1, tid[close_idx])] = t[close_idx]
    # The last fill of a trip leaves its final position (tid is sorted).
    last_pos = after[np.flatnonzero(np.append(tid[1:] != tid[:-1], True))]
    return trip_sym, direction, opened, closed, size, entry, fees, pnl, last_pos, open_idx
