"""The vectorized runner: target positions (or signals, or weights) in, a result out.

:func:`backtest_vectorized` gives the same :class:`~simbroker.BacktestResult` as
:func:`simbroker.backtest` running :class:`TargetPositions` (its event-driven twin) on a
:class:`~simbroker.PaperBroker`: the same fills (prices, fees, order and fill ids), cash,
positions and equity, bit for bit. It reproduces the paper broker's semantics exactly:

* a target decided at bar ``t``'s close (``NaN`` = keep the position) becomes a market
  order for ``target - position`` (only when that is not zero), which trades on bar
  ``t + 1`` at its open, when that bar has volume ``> 0`` (or, with
  ``Bars.volume_known`` False, a close; and, when the bars carry sessions, is in its
  symbol's regular hours); a missing bar, zero volume or a bar outside regular hours fills
  nothing, and the order is gone by the next close (a ``day`` order whose session closed
  expires; otherwise the twin cancels it), where the target is decided again;
* fill price ``open * (1 + side * slippage.rate(side, qty, open, bar))``, with ``bar``
  the fill bar, optionally clipped into its ``[low, high]``; fee
  ``fees.fees(side, qty, price)`` on the fill notional ``qty * price``;
* cash moves fill by fill (bar, then symbol column), exactly as
  :func:`~simbroker.tradelog.cash_after_fill` does; positions as
  :func:`~simbroker.tradelog.position_after_fill` does (float dust snapped to 0);
* orders are numbered ``"O1"``, ``"O2"``, ... in submission order (bar, then symbol
  column) and each fill is ``"<order_id>-1"``, as the paper broker numbers them;
  orders placed at the last bar never fill and stay ``"new"``.

How: the only path dependence of share targets is float rounding of ``position +
(target - position)`` and the dust snap, so positions are solved for every symbol and bar
at once from the guess "position = last filled target", then re-solved only where that
guess was off (a fixed point reached in one or two array passes in practice). Cash is a
sequential running sum (``np.add.accumulate``, which adds strictly left to right, so it
equals the broker's fill-by-fill arithmetic). Slippage and fee models are called once
over all fills: they must be element-wise, as the model protocol requires. Weight
targets (a fraction of equity) depend on equity, so they loop over bars, with numpy
across symbols.

An ``account=`` that refuses orders, or a ``max_volume_share`` cap, makes the path
depend on cash and fills, so those runs go bar by bar too (:mod:`simbroker._vector_account`,
:mod:`simbroker._vector_volume`), with the same results as the twin. The fills and orders
frames are built in :mod:`simbroker._vector_frames`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker._paper_volume import check_share

# Re-exported: the bar-by-bar runners and vectorized_exits import them from here.
from simbroker._vector_frames import _EXPIRED_REASON as _EXPIRED_REASON
from simbroker._vector_frames import _fills_frame as _fills_frame
from simbroker._vector_frames import _numbered as _numbered
from simbroker._vector_frames import _orders_frame as _orders_frame
from simbroker._vector_frames import _pick as _pick
from simbroker._vector_frames import _str_column as _str_column
from simbroker.accounts import Account
from simbroker.actions import _vector as actions_vec
from simbroker.actions._paper import broker_schedule
from simbroker.bars import Bars
from simbroker.broker import Broker
from simbroker.data import load_bars
from simbroker.engine import History
from simbroker.financing import BorrowModel, InterestModel
from simbroker.financing._vector import VectorFinancing
from simbroker.models.fees import FeeModel, fee_model
from simbroker.models.schedules import fees_at
from simbroker.models.slippage import BarContext, SlippageModel, slippage_model
from simbroker.results.build import (
    assemble_result,
    cash_after_bars,
    mark_to_market,
    marking_closes,
)
from simbroker.results.columns import _ffill
from simbroker.results.result import BacktestResult
from simbroker.results.trips import trips_of
from simbroker.sessions import date_sessions

if TYPE_CHECKING:
    from simbroker._vector_account import RefusalLog
    from simbroker.vectorized_exits import ExitSpec

__all__ = ["TargetPositions", "backtest_vectorized"]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
FrameLike = pd.DataFrame | np.ndarray

def _at(a: np.ndarray, t: np.ndarray, j: np.ndarray) -> Any:
    """``a[t, j]`` for index arrays, through one flat index (a two-array fancy index is
    several times slower)."""
    if a.flags.c_contiguous:
        return a.ravel().take(t * a.shape[1] + j)
    if a.flags.f_contiguous:
        return a.ravel(order="F").take(j * a.shape[0] + t)
    return a[t, j]


# --------------------------------------------------------------------------- inputs
def _aligned(value: Any, bars: Bars, name: str, *, boolean: bool = False,
             any_layout: bool = False) -> np.ndarray:
    """``value`` (DataFrame or array) as a ``(T, N)`` array in the bars' order.

    C-ordered unless ``any_layout``, which keeps a frame's own (column-major) values
    rather than copying them.

    A DataFrame must have the bars' timestamps as its index (tz-aware, or naive meaning
    UTC) and a subset of the bars' symbols as columns, in any order; columns left out are
    ``NaN`` (never traded) or ``False``.
    """
    shape = (len(bars), bars.n_symbols)
    fill: Any = False if boolean else np.nan
    dtype = np.bool_ if boolean else np.float64
    if isinstance(value, pd.Series):
        raise TypeError(f"{name} must be a DataFrame (timestamps x symbols), got a Series; "
                        f"try {name}.to_frame(symbol)")
    if isinstance(value, pd.DataFrame):
        if not isinstance(value.index, pd.DatetimeIndex):
            raise ValueError(f"{name} must be indexed by the bars' timestamps, got an index "
                             f"of type {type(value.index).__name__}")
        idx = value.index
        idx = idx.tz_convert("UTC") if idx.tz is not None else idx.tz_localize("UTC")
        expected = bars.index
        if len(idx) != len(expected) or not bool(
                np.array_equal(idx.as_unit("ns").asi8, expected.asi8)):
            if len(idx) != len(expected):
                detail = f"it has {len(idx)} rows, the bars have {len(expected)}"
            else:
                i = int(np.flatnonzero(idx.as_unit("ns").asi8 != expected.asi8)[0])
                detail = f"row {i} is {idx[i]}, the bar there is {expected[i]}"
            raise ValueError(f"{name} index does not match the bars' timestamps: {detail}; "
                             f"try {name}.reindex(bars.index)")
        cols = [str(c) for c in value.columns]
        if len(set(cols)) != len(cols):
            dup = sorted({c for c in cols if cols.count(c) > 1})
            raise ValueError(f"{name} has duplicate columns: {', '.join(dup)}")
        unknown = [c for c in cols if c not in bars]
        if unknown:
            raise ValueError(f"{name} has symbols that are not in the bars: "
                             f"{', '.join(map(repr, unknown[:10]))}"
                             + (" ..." if len(unknown) > 10 else ""))
        raw = value.to_numpy()
        if boolean:
            if raw.dtype != np.bool_:
                raise TypeError(f"{name} must hold booleans, got dtype {raw.dtype}")
        elif not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype,
                                                                        np.complexfloating):
            raise TypeError(f"{name} must hold real numbers, got dtype {raw.dtype}")
        raw = raw.astype(dtype, copy=False)
        if cols == list(bars.symbols):
            return raw if any_layout else np.ascontiguousarray(raw)
        out = np.full(shape, fill, dtype)
        out[:, [bars.symbol_index(c) for c in cols]] = raw
        return out
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}; expected {shape} (bars x symbols)")
    if boolean and arr.dtype != np.bool_:
        raise TypeError(f"{name} must hold booleans, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _check_finite(a: F64, bars: Bars, name: str) -> None:
    t, j = np.nonzero(np.isinf(a))
    _check_finite_at(a[t, j], t, j, bars, name)


def _check_finite_at(values: F64, t: I64, j: I64, bars: Bars, name: str) -> None:
    """Raise on the first infinite ``values[i]`` (at bar ``t[i]``, column ``j[i]``)."""
    bad = np.flatnonzero(np.isinf(values))
    if bad.size:
        i = int(bad[np.lexsort((j[bad], t[bad]))[0]])  # the first in bar, column order
        raise ValueError(f"{name} must be finite or NaN; {name}[{bars.index[int(t[i])]}, "
                         f"{bars.symbols[int(j[i])]!r}] is {float(values[i])!r}")


def _signal_targets(bars: Bars, entries: Any, exits: Any, size: float | Sequence[float]
                    | np.ndarray) -> F64:
    shape = (len(bars), bars.n_symbols)
    ent = (np.zeros(shape, np.bool_) if entries is None
           else _aligned(entries, bars, "entries", boolean=True))
    ext = (np.zeros(shape, np.bool_) if exits is None
           else _aligned(exits, bars, "exits", boolean=True))
    try:
        sz = np.broadcast_to(np.asarray(size, np.float64), shape)
    except ValueError:
        raise ValueError(f"size must be a number, one per symbol ({shape[1]}) or a (bars x "
                         f"symbols) array {shape}; got shape {np.shape(size)}") from None
    if not bool(np.all(np.isfinite(sz))) or bool(np.any(sz < 0)):
        raise ValueError("size must be finite and >= 0 (shares held after an entry)")
    out: F64 = np.where(ent & ~ext, sz, np.where(ext & ~ent, 0.0, np.nan))
    return out


def _tradable(bars: Bars) -> B:
    """Where a market order can fill: a bar with volume (NaN, no bar, compares False), or
    with a close when the volume is unknown (``Bars.volume_known`` False, as PaperBroker),
    in its symbol's regular hours when the bars carry sessions."""
    tradable: B = bars.volume > 0 if bars.volume_known else ~np.isnan(bars.close)
    if bars.sessions is not None:
        tradable &= bars.sessions.regular_hours()
        tradable &= bars.sessions.reachable(bars.close_ns)
    return tradable


# ------------------------------------------------------------------ arithmetic
def _after(position: F64, target: F64) -> F64:
    """Position after filling ``target - position``: ``position_after_fill``, vectorized.

    ``position + qty`` (buy) or ``position - qty`` (sell), with ``qty = |target -
    position|``, both equal to ``position + delta``; 0 when ``|new| <= 1e-12 *
    max(|position|, qty)``; unchanged where ``delta == 0`` (no order).
    """
    delta = target - position
    new = position + delta
    snap = np.abs(new) <= 1e-12 * np.maximum(np.abs(position), np.abs(delta))
    out: F64 = np.where(delta == 0, position, np.where(snap, 0.0, new))
    return out


# Targets given in under this share of the cells are handled as a list of cells (gathers
# cost per target); denser ones as whole-panel masks (passes cost per cell).
_SPARSE_BELOW = 0.25


class _Given:
    """The targets given (not ``NaN``) as a list: bars ``t``, columns ``j``, values
    ``value``, scanned in memory order (symbol by symbol when ``symbol_major``)."""

    def __init__(self, tgt: F64, given: B):
        n = tgt.shape[1]
        self.symbol_major = n == 1 or (given.flags.f_contiguous
                                       and not given.flags.c_contiguous)
        if self.symbol_major:
            self.j, self.t = np.nonzero(given.T)
        else:
            self.t, self.j = np.nonzero(given)
        self.value: F64 = _at(tgt, self.t, self.j)


def _chains(tgt: F64, given: B | _Given, tradable: B) -> tuple[I64, I64, F64]:
    """Every potential fill as (bar of the target's close, column, target), symbol by
    symbol in time order: a target at bar t's close with volume on bar t + 1."""
    n_t, n = tradable.shape
    if isinstance(given, _Given):
        sel = np.flatnonzero(given.t + 1 < n_t)
        sel = sel[_at(tradable, given.t[sel] + 1, given.j[sel])]
        if not given.symbol_major:  # radix sort on the column when it can
            key = given.j[sel]
            sel = sel[np.argsort(key.astype(np.int16) if n <= np.iinfo(np.int16).max else key,
                                 kind="stable")]
        return given.t[sel], given.j[sel], given.value[sel]
    maybe = np.empty((n, n_t - 1), np.bool_)  # laid out symbol by symbol for the scan
    np.logical_and(given[:-1].T, tradable[1:].T, out=maybe)
    cols, rows = np.nonzero(maybe)
    return rows, cols, _at(tgt, rows, cols)


def _solve_positions(tgt: F64, given: B | _Given, tradable: B) -> F64:
    """Positions after each bar ``(T, N)`` for share targets (see the module docstring).

    ``given`` is the mask ``~isnan(tgt)`` or its list; any memory layout.
    """
    n_t, n = tgt.shape
    if n_t < 2:
        return np.zeros((n_t, n))
    rows, cols, target = _chains(tgt, given, tradable)
    k_n = len(rows)
    if not k_n:
        return np.zeros((n_t, n))
    first = np.ones(k_n, np.bool_)
    first[1:] = cols[1:] != cols[:-1]
    before = np.empty(k_n)
    before[1:] = target[:-1]  # the guess: the previous fill reached its target
    before[first] = 0.0
    # Where the target does not change the guess stands (no order); solve the rest.
    v = target.copy()
    moved = np.flatnonzero(before != target)
    v[moved] = _after(before[moved], target[moved])
    # Re-solve where a predecessor's value was not the guess (rounding or snapping);
    # each pass fixes the next link of every wrong chain.
    todo = np.flatnonzero(v != target) + 1
    while todo.size:
        todo = todo[todo < k_n]
        todo = todo[~first[todo]]
        if not todo.size:
            break
        new = _after(v[todo - 1], target[todo])
        changed = new != v[todo]
        v[todo] = new
        todo = todo[changed] + 1
    # Only fills that change their symbol's position matter from here (dense targets
    # repeat the position on most bars).
    prev = np.empty(k_n)
    prev[1:] = v[:-1]
    prev[first] = 0.0
    keep = np.flatnonzero(v != prev)
    rows, cols, v = rows[keep], cols[keep], v[keep]
    if n == 1:  # one column: runs of each fill's value up to the next fill
        starts = np.concatenate([[0], rows + 1, [n_t]])
        one: F64 = np.repeat(np.concatenate([[0.0], v]), np.diff(starts)).reshape(n_t, 1)
        return one
    # Each bar holds the value of its symbol's latest fill: chain numbers increase with
    # time within a symbol, so a running maximum of them down each column finds it.
    k_n = len(v)
    link = np.zeros((n_t, n), np.int32 if k_n < 2**31 - 1 else np.int64)
    link.ravel()[(rows + 1) * n + cols] = np.arange(1, k_n + 1)  # ravel: a view
    np.maximum.accumulate(link, axis=0, out=link)
    # Fancy indexing casts the int32 links in buffered chunks; np.take would first copy
    # them all to intp (2-5x slower here).
    out: F64 = np.concatenate([[0.0], v])[link]
    return out


def _fill_prices(bars: Bars, t: I64, j: I64, sign: F64, qty: F64, slippage: SlippageModel,
                 clip_to_bar: bool) -> F64:
    """Slipped market fill prices at the opens of bars ``(t, j)`` (as ``PaperBroker``)."""
    ref = _at(bars.open, t, j)
    ctx = BarContext(open=ref, high=_at(bars.high, t, j), low=_at(bars.low, t, j),
                     close=_at(bars.close, t, j), volume=_at(bars.volume, t, j))
    price: F64 = ref * (1.0 + sign * slippage.rate(sign, qty, ref, ctx))
    if clip_to_bar:
        price = np.clip(price, ctx.low, ctx.high)
    return price


def _cash_ledger(cash: float, sign: F64, notional: F64, fee: F64) -> F64:
    """Cash after each fill: ``cash - notional - fee`` (buy) or ``+ notional - fee`` (sell).

    One strictly sequential ``np.add.accumulate`` over ``[cash, -+notional_1, -fee_1,
    ...]``: the same two roundings per fill, in the same order, as ``cash_after_fill``.
    """
    flows = np.empty(2 * len(sign) + 1)
    flows[0] = cash
    flows[1::2] = np.where(sign > 0, -notional, notional)
    flows[2::2] = -fee
    out: F64 = np.add.accumulate(flows)[2::2]
    return out


def _equity_row(cash: float, pos: F64, close: F64) -> float:
    with np.errstate(invalid="ignore"):
        held = np.where(pos != 0, pos * close, 0.0)
    return cash + float(np.nansum(held))


# ------------------------------------------------------------------- weights
def _weight_targets(bars: Bars, weights: F64, cash0: float, slippage: SlippageModel,
                    fees: FeeModel, clip_to_bar: bool, integer: bool,
                    fin: VectorFinancing | None = None) -> F64:
    """Share targets from weights, bar by bar: ``weight * equity_t / close_t``."""
    fees.reset()  # this pass prices the fills from the first bar: the ledgers start again
    n_t, n = weights.shape
    close = _ffill(bars.close.copy())
    tradable = _tradable(bars)
    tgt = np.full((n_t, n), np.nan)
    pos = np.zeros(n)
    cash = cash0
    order: B = np.zeros(n, np.bool_)
    cols = np.arange(n)
    for t in range(n_t):
        if t:
            hit = order & tradable[t]
            if hit.any():
                j = cols[hit]
                delta = tgt[t - 1, j] - pos[j]
                sign = np.where(delta > 0, 1.0, -1.0)
                qty = np.abs(delta)
                price = _fill_prices(bars, np.full(len(j), t), j, sign, qty, slippage,
                                     clip_to_bar)
                fee = fees_at(fees, sign, qty, price, bars.ts_ns[t])
                cash = float(_cash_ledger(cash, sign, qty * price, fee)[-1])
                pos[j] = _after(pos[j], tgt[t - 1, j])
        if fin is not None:  # borrow fees and interest at a trading day's end
            cash = fin.at_close(t, pos, cash)
        equity = _equity_row(cash, pos, close[t])
        with np.errstate(invalid="ignore", divide="ignore"):
            row = weights[t] * equity / close[t]
        row[~np.isfinite(row)] = np.nan  # no price yet, or no weight: keep
        if integer:
            row = np.trunc(row)
        tgt[t] = row
        order = ~np.isnan(row) & (row != pos)
    return tgt


# ------------------------------------------------------------------- the runner
def backtest_vectorized(
    bars: Bars | pd.DataFrame | str | Path,
    *,
    targets: FrameLike | None = None,
    entries: FrameLike | None = None,
    exits: FrameLike | None = None,
    size: float | Sequence[float] | np.ndarray = 100.0,
    weights: FrameLike | None = None,
    integer: bool = False,
    cash: float = 100_000.0,
    slippage: float | SlippageModel | None = 5.0,
    fees: float | str | FeeModel | None = 1.0,
    clip_to_bar: bool = False,
    session_tz: str = "UTC",
    stop_loss: ExitSpec = None,
    take_profit: ExitSpec = None,
    trailing_stop: ExitSpec = None,
    both_legs: str = "stop",
    borrow: BorrowModel | None = None,
    interest: InterestModel | None = None,
    max_volume_share: float | None = None,
    account: str | Account | None = None,
) -> BacktestResult:
    """Backtest target positions, entry/exit signals or target weights, vectorized.

    Gives the same result as ``simbroker.backtest(TargetPositions(...), bars, ...)``:
    identical fills (prices, fees, ids), cash, positions and equity (see the module
    docstring for the exact semantics). Give exactly one of ``targets``,
    ``entries``/``exits`` or ``weights``.

    Parameters
    ----------
    bars
        :class:`~simbroker.Bars`, a long-form DataFrame or a CSV/Parquet path.
    targets : DataFrame or ndarray, shape (bars, symbols)
        Target position in shares (signed; negative = short) decided at each bar's close;
        ``NaN`` keeps the current position. A DataFrame is indexed by ``bars.index``
        (tz-aware UTC, or naive meaning UTC) with a subset of ``bars.symbols`` as columns
        (any order; a symbol left out is never traded). Must be finite or NaN.
    entries, exits : DataFrame or ndarray of bool, shape (bars, symbols)
        Signals at a bar's close: an entry sets the target to ``+size`` shares, an exit to
        0 (flat); both at once, or neither, keeps the position. Either may be omitted.
    size : float or array, default 100
        Shares held after an entry: one number, one per symbol, or a (bars x symbols)
        array; finite and >= 0.
    weights : DataFrame or ndarray, shape (bars, symbols)
        Target fraction of equity per symbol at each close (``NaN`` = keep; negative =
        short): ``shares = weight * equity_t / close_t``, with ``equity_t`` marked to
        ``close_t`` (last known close) exactly as ``result.equity``. Path-dependent, so it
        loops over bars (numpy across symbols): O(bars) Python steps.
    integer : bool, default False
        With ``weights``: round target shares toward zero to whole shares (never more
        than the weight asks for). Fractional shares otherwise.
    cash : float, default 100,000
        Starting cash, account currency.
    slippage : float or SlippageModel, default 5
        Basis points against the trader, or a model (``None`` = none).
    fees : float or FeeModel, default 1
        Basis points of fill notional, or a model (``None`` = none).
    clip_to_bar : bool, default False
        Clip slipped fill prices into the fill bar's ``[low, high]``.
    session_tz : str, default "UTC"
        Only decides whether an unfilled order is reported ``"expired"`` (its trading
                day ended) or ``"canceled"`` (re-decided at the next close) in ``orders``;
        ignored when ``bars.sessions`` is set (calendar sessions decide, as in the paper
        broker, and orders fill only on regular-hours bars).
    stop_loss, take_profit, trailing_stop : float, array or {symbol: float}, optional
        Protective exits on ``targets`` or ``entries``/``exits``, as fractions of the entry
        fill price (``0.05`` = 5%, in ``(0, 1)``): one number, one per symbol (``NaN`` =
        none) or a mapping. Placed at the close of each entry fill as ``gtc`` orders for
        the whole position (a stop, a take-profit limit, both as one OCO pair, or a
        trailing stop, which is not combined with the other two); an exit fill leaves the
        position flat until the next target or entry. The event-driven twin is
        :class:`~simbroker.vectorized_exits.TargetExits`; the exact rules are in
        :mod:`simbroker.vectorized_exits`. Not with ``weights``, nor on bars with
        calendar sessions or corporate actions (run :class:`TargetExits` event-driven).
    both_legs : {"stop", "take_profit"}, default "stop"
        Which OCO leg fills when both could on one bar and the open gaps through neither
        (the paper broker's ``both_legs``).
    borrow, interest : BorrowModel, InterestModel, optional
        Borrow fees on shorts and interest on the cash balance, accrued at each trading
        day's end exactly as the paper broker accrues them
        (:mod:`simbroker.financing`), also with the protective exits. A sell that
        would leave a short in a ``hard_to_borrow`` symbol beyond its ``located`` shares
        is refused as the paper broker refuses it (``HardToBorrow``: not placed, counted
        in ``stats["n_refused"]``, the target decided again at the next close); not with
        exits.
    max_volume_share : float, optional
        Partial fills by volume, as ``PaperBroker(max_volume_share=...)``: an order takes
        at most this share of its fill bar's volume; the rest expires or is canceled at
        that close and the target is decided again (:mod:`simbroker._vector_volume`).
        Runs bar by bar (numpy across symbols), also with weights, borrow/interest,
        splits and dividends and ``account``. Not with exits.
    account : "margin", "cash", MarginAccount or CashAccount, optional
        Buying power, as ``backtest(..., account=...)`` checks it: an order the account
        refuses at submission is not placed (no order id), the position stays and the
        target is decided again at the next close, as :class:`TargetPositions` does with
        ``on_refused="skip"``; ``stats["n_refused"]`` counts the refusals. The object is
        only read (not bound). Bar by bar, numpy across symbols
        (:mod:`simbroker._vector_account`). Not with exits, ``MarginAccount(liquidate=
        True)`` or other :class:`~simbroker.accounts.Account` classes (run the twin
        event-driven); ``None`` or ``"unconstrained"`` (default) never refuses.

    Returns
    -------
    BacktestResult
        The same type, columns and dtypes as :func:`simbroker.backtest` returns.

    Raises
    ------
    ValueError
        Several or none of the inputs given; an index or columns not matching the bars
        (the message names the row or the symbols); a non-finite target or size; a
        combination the vectorized runner does not model (the message says which and
        what to run instead).
    TypeError
        A frame of the wrong dtype or kind.

    Examples
    --------
    >>> import numpy as np, pandas as pd, simbroker
    >>> from simbroker.vectorized import backtest_vectorized
    >>> bars = simbroker.synthetic_bars(n_symbols=2, n_bars=5, seed=1)
    >>> targets = pd.DataFrame(np.nan, index=bars.index, columns=list(bars.symbols))
    >>> targets.iloc[0] = [100, -50]   # at the first close: long 100 and short 50
    >>> targets.iloc[2] = [0, np.nan]  # at the third close: close the long, keep the short
    >>> result = backtest_vectorized(bars, targets=targets)
    >>> print(result.fills[["symbol", "side", "qty", "order_id"]].to_string(index=False))
    symbol side   qty order_id
    SYM000  buy 100.0       O1
    SYM001 sell  50.0       O2
    SYM000 sell 100.0       O3
    >>> result.final_positions
    {'SYM001': -50.0}
    """
    if not isinstance(bars, Bars):
        bars = load_bars(bars)
    given = [name for name, v in (("targets", targets), ("entries", entries), ("exits", exits),
                                  ("weights", weights)) if v is not None]
    kinds = {"entries": "signals", "exits": "signals"}
    if len({kinds.get(g, g) for g in given}) != 1:
        raise ValueError(
            "give exactly one of targets=, entries=/exits= or weights=; got "
            + (", ".join(given) if given else "none of them"))
    cash = float(cash)
    if not np.isfinite(cash):
        raise ValueError(f"cash must be a finite number, got {cash!r}")
    if len(bars) == 0:
        raise ValueError("backtest_vectorized needs at least one bar")
    slip = slippage_model(slippage)
    fee_m = fee_model(fees)
    from simbroker.vectorized_exits import exit_rules, run_with_exits  # it imports this

    rules = exit_rules(bars.symbols, stop_loss=stop_loss, take_profit=take_profit,
                       trailing_stop=trailing_stop, both_legs=both_legs)
    if rules is not None and weights is not None:
        raise ValueError("stop_loss=, take_profit= and trailing_stop= work with targets= or "
                         "entries=/exits=, not weights= (a weight target moves with equity)")
    if rules is not None and (bars.sessions is not None or bars.actions is not None):
        raise ValueError(
            "stop_loss=, take_profit= and trailing_stop= in the vectorized runner take bars "
            "without calendar sessions or corporate actions; run the same rules event-driven "
            "with simbroker.backtest(simbroker.TargetExits(...), bars)")
    from simbroker._vector_account import (
        account_for_vectorized,
        cap_never_binds,
        first_doubtful_close,
        hard_to_borrow_refuses,
        run_account,
    )

    acct = account_for_vectorized(account, bars, exits=rules is not None)
    fin = None
    if borrow is not None or interest is not None:
        sessions = bars.sessions if bars.sessions is not None else date_sessions(
            bars, session_tz)
        fin = VectorFinancing(bars, sessions, borrow, interest)
    share = check_share(max_volume_share, bars.volume_known)
    htb = fin is not None and fin.refuses_shorts
    if htb and rules is not None:
        raise ValueError(
            "a BorrowModel with hard_to_borrow= symbols in the vectorized runner does not "
            "combine with stop_loss=/take_profit=/trailing_stop=; run "
            "simbroker.backtest(simbroker.TargetExits(...), bars, borrow=...)")
    if share is not None and rules is not None:
        raise ValueError(
            "max_volume_share in the vectorized runner takes targets, signals or weights "
            "without exits (an exit's partial fill leaves its sibling and the next target "
            "waiting on each other); run them event-driven with "
            "simbroker.backtest(simbroker.TargetExits(...), bars, max_volume_share=...)")
    if acct is not None or share is not None or htb:
        screened = weights is None and bars.actions is None
        if targets is not None:  # checked for infinities once, where they are read first
            tgt = _aligned(targets, bars, "targets", any_layout=screened)
            if not screened:
                _check_finite(tgt, bars, "targets")
        elif weights is not None:
            tgt = _aligned(weights, bars, "weights")
            _check_finite(tgt, bars, "weights")
        else:
            tgt = _signal_targets(bars, entries, exits, size)
        if screened:
            # Until the account refuses, or the cap binds, neither changes anything: the
            # unconstrained run stands when one screen over all its orders says so.
            got: list[_Orders] = []
            fast = _run_targets(bars, tgt, cash, slip, fee_m, bool(clip_to_bar),
                                session_tz, check="targets" if targets is not None else "",
                                fin=fin, orders_out=got)
            stands = share is None or cap_never_binds(bars, got[0], share)
            if stands and htb and fin is not None:
                stands = not hard_to_borrow_refuses(got[0], fast, fin)
            if stands and acct is not None:
                stands = first_doubtful_close(bars, got[0], fast, acct, fee_m, session_tz,
                                              cash, fin is not None) >= len(bars)
            if stands:
                if share is not None:
                    fast.config["max_volume_share"] = share
                if acct is not None or htb:
                    fast.stats["n_refused"] = 0
                return fast
        # buying power, volume caps, hard-to-borrow refusals: bar by bar in
        # simbroker._vector_account (a row a bar: C order)
        return run_account(bars, np.ascontiguousarray(tgt), weights is not None,
                           bool(integer), cash, slip, fee_m, bool(clip_to_bar), session_tz,
                           acct, share, fin)
    if rules is not None:
        if targets is not None:
            tgt = _aligned(targets, bars, "targets")
            _check_finite(tgt, bars, "targets")
        else:
            tgt = _signal_targets(bars, entries, exits, size)
        return run_with_exits(bars, tgt, rules, cash, slip, fee_m, bool(clip_to_bar),
                              session_tz, fin)
    if targets is not None:
        tgt = _aligned(targets, bars, "targets", any_layout=True)
    elif weights is not None:
        w = _aligned(weights, bars, "weights")
        _check_finite(w, bars, "weights")
        sched = broker_schedule(bars)
        if sched is None:
            tgt = _weight_targets(bars, w, cash, slip, fee_m, bool(clip_to_bar), bool(integer),
                                  fin)
        else:  # splits and dividends move positions and cash: simbroker.actions._vector
            tgt = actions_vec.weight_targets_with_actions(
                bars, sched, w, cash, slip, fee_m, bool(clip_to_bar), bool(integer),
                _fill_prices, _cash_ledger, _ffill,
                at_close=None if fin is None else fin.at_close)
    else:
        tgt = _signal_targets(bars, entries, exits, size)
    return _run_targets(bars, tgt, cash, slip, fee_m, bool(clip_to_bar), session_tz,
                        check="targets" if targets is not None else "", fin=fin)


class _Orders(NamedTuple):
    """A whole-panel run's orders (close bar, column, sign, qty; ``fi`` the filled ones),
    for the screens of :mod:`simbroker._vector_account`."""

    ot: I64
    oj: I64
    sign: F64
    qty: F64
    fi: I64
    value: F64  # per bar: held value and gross exposure (mark_to_market)
    gross: F64


def _run_targets(bars: Bars, tgt: F64, cash0: float, slippage: SlippageModel,
                 fees: FeeModel, clip_to_bar: bool, session_tz: str,
                 check: str = "", fin: VectorFinancing | None = None,
                 orders_out: list[_Orders] | None = None) -> BacktestResult:
    """The result of share targets ``tgt``; ``check`` names them when they still need to be
    checked for infinities; ``orders_out`` gets the orders."""
    fees.reset()  # this pass prices the fills from the first bar: the ledgers start again
    n_t, n = tgt.shape
    mask = np.isnan(tgt)
    np.logical_not(mask, out=mask)
    given: B | _Given = mask
    if np.count_nonzero(mask) < _SPARSE_BELOW * mask.size:
        given = _Given(tgt, mask)
        del mask
        if check:
            _check_finite_at(given.value, given.t, given.j, bars, check)
    elif check:
        _check_finite(tgt, bars, check)
    tradable = _tradable(bars)
    sched = broker_schedule(bars)
    splits = sched is not None and bool(sched.split_mask.any())
    pos = (actions_vec.positions_with_splits(tgt, tradable, sched) if splits and sched
           else _solve_positions(tgt, given, tradable))

    # Orders: wherever a target is given and differs from the position at that close, in
    # submission order (bar, then symbol column).
    if isinstance(given, _Given):
        now = _at(pos, given.t, given.j)
        oi = np.flatnonzero(given.value != now)
        if given.symbol_major and n > 1:
            oi = oi[np.argsort(given.t[oi] * n + given.j[oi])]
        ot, oj = given.t[oi], given.j[oi]
        delta = given.value[oi] - now[oi]
    else:
        ordered = np.empty((n_t, n), np.bool_)
        with np.errstate(invalid="ignore"):
            np.not_equal(tgt, pos, out=ordered)
        ordered &= given
        ot, oj = np.nonzero(ordered)
        del ordered
        delta = _at(tgt, ot, oj) - _at(pos, ot, oj)
    del given
    qty = np.abs(delta)
    if splits and sched:  # a split before the fill bar splits the order too
        qty = actions_vec.split_order_qty(qty, ot, oj, sched, n_t, n)
    sign = np.where(delta > 0, 1.0, -1.0)
    nxt = np.minimum(ot + 1, n_t - 1)
    filled = (ot + 1 < n_t) & _at(tradable, nxt, oj)
    fi = np.flatnonzero(filled)
    ft, fj, fsign, fqty = ot[fi] + 1, oj[fi], sign[fi], qty[fi]
    price = _fill_prices(bars, ft, fj, fsign, fqty, slippage, clip_to_bar)
    fee = np.asarray(fees_at(fees, fsign, fqty, price, bars.ts_ns[ft]), np.float64)
    notional = fqty * price
    divs = actions_vec.dividends_of(sched, pos)
    financing = None
    if fin is not None:  # borrow fees and interest cut the ledger at day ends
        entry_bar, entry_cash, fin_fees, fin_paid = fin.ledger(
            cash0, ft, fsign, notional, fee, divs, pos)
        cash = cash_after_bars(entry_bar, entry_cash, n_t, cash0)
        financing = (fin_fees, fin_paid)
    elif divs is None:
        ledger_cash = _cash_ledger(cash0, fsign, notional, fee)
        cash = cash_after_bars(ft, ledger_cash, n_t, cash0)
    else:  # dividend payments merged into the cash ledger (simbroker.actions._vector)
        cash = cash_after_bars(*actions_vec.ledger_with_dividends(
            cash0, ft, fsign, notional, fee, divs), n_t, cash0)
    # Equity marked to the last known close, exactly as build_result marks it.
    equity, gross = mark_to_market(pos, marking_closes(bars.close))
    if orders_out is not None:
        orders_out.append(_Orders(ot, oj, sign, qty, fi, equity.copy(), gross))
    equity += cash  # cash + held value, as build_result adds them

    order_ids = _numbered(np.arange(1, len(ot) + 1))
    fills, fill_ns, names = _fills_frame(bars, ft, fj, fsign, fqty, price, fee, notional,
                                         _numbered(fi + 1), _numbered(fi + 1, suffix="-1"))

    orders = _orders_frame(bars, ot, oj, sign, qty, filled, fi, notional, order_ids,
                           session_tz)
    config: dict[str, Any] = {"cash": cash0, "slippage": repr(slippage),
                              "fees": repr(fees), "allow_short": True}
    if fin is not None:
        config.update(borrow=repr(fin.borrow), interest=repr(fin.interest))
    # Round trips from the arrays at hand (round_trips would rebuild them from the frame).
    trips = trips_of(fj, names, fsign, fqty, notional, fee, fill_ns, bars,
                     columns=np.arange(len(names)))
    return assemble_result(bars, fills=fills, orders=orders, equity=equity, cash=cash,
                           positions=pos, gross=gross, start_equity=cash0,
                           config=config, trips=trips,
                           dividends=actions_vec.dividends_frame(bars, divs),
                           financing=financing)


# --------------------------------------------------------------- the event twin
class _RecordsRefusals:
    """What a target twin shows of the orders its account refused (``on_refused``)."""

    _refusals: RefusalLog

    @property
    def refused(self) -> pd.DataFrame:
        """The refusals of the last run (see the class docstring)."""
        return self._refusals.frame()

    @property
    def n_refused(self) -> int:
        """How many orders the account refused in the last run."""
        return self._refusals.count


class TargetPositions(_RecordsRefusals):
    """The event-driven twin of :func:`backtest_vectorized`: run it with ``backtest``.

    At each close it cancels its orders still open from the previous close (a no-op on
    daily bars, where they have expired), then for every symbol with a target (not
    ``NaN``) orders ``target - position`` at market when that is not zero, in symbol
    column order. With ``weights``, the target is ``weight * equity / close`` shares
    (``equity = cash + sum(position * last close)``), truncated toward zero when
    ``integer``.

    On an account that refuses orders (``backtest(..., account=...)``), an order the
    account refuses (:class:`~simbroker.errors.InsufficientBuyingPower`,
    :class:`~simbroker.errors.PatternDayTrading`), or a short the borrow model refuses
    (:class:`~simbroker.errors.HardToBorrow`), is not placed: with
    ``on_refused="skip"`` (default) the symbol keeps its position, the refusal is
    recorded in :attr:`refused`, and the target is decided again at the next close, as
    ``backtest_vectorized(..., account=...)`` does (its ``stats["n_refused"]`` counts the
    same refusals). ``on_refused="raise"`` lets the refusal stop the run (a
    :class:`~simbroker.errors.StrategyError`).

    Parameters
    ----------
    targets, weights : DataFrame or ndarray, shape (bars, symbols)
        Exactly one: share targets or equity weights, aligned as for
        :func:`backtest_vectorized`.
    integer : bool, default False
        Whole shares (weights only).
    on_refused : {"skip", "raise"}, default "skip"
        What an order refused for buying power does.

    Attributes
    ----------
    refused : DataFrame
        The refusals of the last run, in submission order: ``timestamp`` (the close
        the order was submitted at), ``symbol, side, qty, rule`` (the account's rule,
        e.g. ``"buying_power"``) and the ``required``/``available`` amounts it named.
    n_refused : int
        ``len(refused)``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, simbroker
    >>> from simbroker.vectorized import TargetPositions, backtest_vectorized
    >>> bars = simbroker.synthetic_bars(n_symbols=3, n_bars=40, seed=2)
    >>> targets = pd.DataFrame(np.where(bars.close > bars.open, 10.0, 0.0),
    ...                        index=bars.index, columns=list(bars.symbols))
    >>> event = simbroker.backtest(TargetPositions(targets), bars)
    >>> fast = backtest_vectorized(bars, targets=targets)
    >>> event.fills.equals(fast.fills) and event.equity.equals(fast.equity)
    True
    """

    #: Indicators on the raw bars even when they carry ``adjust=``: shares and equity
    #: are in the prices orders fill at.
    raw_prices = True

    def __init__(self, targets: FrameLike | None = None, *, weights: FrameLike | None = None,
                 integer: bool = False, on_refused: str = "skip"):
        if (targets is None) == (weights is None):
            raise ValueError("give exactly one of targets= or weights=")
        self._raw = targets if targets is not None else weights
        self._weights = weights is not None
        self._integer = bool(integer)
        from simbroker._vector_account import RefusalLog  # it imports this module

        self._refusals = RefusalLog(on_refused)
        self._open: list[str] = []

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        """The aligned targets (or weights) and the last known close, once."""
        name = "weights" if self._weights else "targets"
        arr = _aligned(self._raw, bars, name)
        _check_finite(arr, bars, name)
        self._open = []
        self._refusals.start(bars)
        return {"target": arr, "last_close": _ffill(bars.close.copy())}

    def on_bar(self, broker: Broker, history: History) -> None:
        """Cancel what is left open, then order ``target - position`` per symbol."""
        for order_id in self._open:
            broker.cancel_order(order_id)
        self._open = []
        row = history.last("target")
        held = broker.get_positions()
        pos = np.array([held.get(s, 0.0) for s in history.symbols], np.float64)
        if self._weights:
            close = history.last("last_close")
            equity = _equity_row(broker.get_cash(), pos, close)
            with np.errstate(invalid="ignore", divide="ignore"):
                row = row * equity / close
            row = np.where(np.isfinite(row), row, np.nan)
            if self._integer:
                row = np.trunc(row)
        for j in np.flatnonzero(~np.isnan(row)).tolist():
            delta = float(row[j]) - float(pos[j])
            if delta != 0:
                try:
                    info = broker.submit_order(history.symbols[j],
                                               "buy" if delta > 0 else "sell", abs(delta))
                except self._refusals.kinds as exc:
                    self._refusals.refused(history.t, j, delta, exc)
                    continue
                self._open.append(info["order_id"])

