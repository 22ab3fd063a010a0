"""Stop-loss, take-profit and trailing exits for the vectorized runner, and their twin.

``backtest_vectorized(..., stop_loss=, take_profit=, trailing_stop=)`` runs share targets
(``targets=``, or ``entries=``/``exits=`` turned into targets) with protective exits. Its
event-driven twin is :class:`TargetExits`, run with :func:`simbroker.backtest` on a
:class:`~simbroker.PaperBroker`: both give the same fills (prices, fees, order and fill
ids), order statuses, cash, positions and equity, bit for bit.

The rules (per symbol; the twin acts at each bar's close, symbols in column order):

* **Target orders** are those of :class:`~simbroker.vectorized.TargetPositions`: a given
  target (not ``NaN``) that differs from the position becomes a ``day`` market order for
  the difference, trading on the next bar's open (``NaN`` keeps the position).
* **Exits** are fractions of a reference price ``ref`` (``0.05`` = 5%): for a long,
  take-profit ``limit = ref * (1 + take_profit)``, stop ``stop = ref * (1 - stop_loss)``,
  or a trailing stop with ``trail_percent = 100 * trailing_stop``; a short mirrors them
  (``ref * (1 - take_profit)``, ``ref * (1 + stop_loss)``). They are ``gtc`` and sized to
  the whole position. With both ``take_profit`` and ``stop_loss`` they are one OCO pair
  (the limit leg first, then its stop leg); alone, a plain limit or stop order. A
  trailing stop is not combined with the other two (no venue pairs it in an OCO).
* ``ref`` is the price of the latest fill that **entered**: opened a position, increased
  it, or flipped its side. A fill that only reduces the position keeps ``ref``.
* **When exits are placed**: at a close where no target order is placed, the position is
  not flat and no exits rest, exits are submitted. After an entry fill on bar ``t`` that
  is bar ``t``'s close, so exits first trade on bar ``t + 1`` (as a bracket's children
  live from the bar after the parent fills). After a target order that did not fill, or
  a reduction, the remaining position gets new exits at the next close without an order.
* **A target order cancels resting exits first** (both legs, at that close), so an exit
  and a target order are never live on the same bar. A target equal to the position
  places no order and leaves the exits resting (a trailing stop keeps its extreme).
* **An exit fill makes the position flat**; the OCO sibling is canceled by the broker.
  The targets are not changed: ``NaN`` keeps the position flat, the next given target
  that differs from 0 (or the next ``entries`` signal) re-enters, as early as that same
  close.
* **Fills** follow the paper broker: a stop fills when the bar reaches it at
  ``min(open, stop)`` for a sell (gap: the open), ``max(open, stop)`` for a buy; the
  take-profit at ``max(open, limit)`` / ``min(open, limit)``, with slippage capped at
  the limit; a trailing stop's level on bar ``b`` is computed from the extreme of the
  close at submission and the highs (sell) / lows (buy) of the bars strictly before
  ``b``, and it fills as a stop. Both OCO legs reachable on one bar: a leg the open gaps
  through fills at the open; otherwise the stop leg (the broker's default
  ``both_legs="stop"``). A bar with no volume fills nothing.

The kernel loops over orders, not bars: for each symbol it jumps from order to order
(the next target differing from the position is found in O(1) from precomputed runs of
equal targets) and finds the bar an exit triggers with one numpy search over the bars
the exits rest on (a running extreme for trailing stops). The resting spans of one symbol
never overlap, so the work is O(bars x symbols) array operations plus O(orders) Python
steps; slippage and fee models are then called once over all fills, and cash is the
strictly sequential running sum the broker computes, fill by fill in (bar, order id)
order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from simbroker.bars import Bars
from simbroker.broker import Broker
from simbroker.engine import History
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import BarContext, SlippageModel
from simbroker.paper import _session_ends
from simbroker.results.build import (
    assemble_result,
    cash_after_bars,
    mark_to_market,
    marking_closes,
)
from simbroker.results.columns import _FILL_COLUMNS, _ffill
from simbroker.results.result import BacktestResult
from simbroker.results.trips import trips_of
from simbroker.vectorized import (
    _EXPIRED_REASON,
    _INFER_STR,
    FrameLike,
    _after,
    _aligned,
    _cash_ledger,
    _check_finite,
    _numbered,
    _object_column,
    _pick,
    _signal_targets,
    _str_column,
)

__all__ = ["ExitRules", "TargetExits", "exit_rules"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ExitSpec = float | Sequence[float] | np.ndarray | Mapping[str, float] | None

# Order kinds (codes), in the paper broker's words.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MARKET, _TP, _STOP, _TRAIL = 0, 1, 2, 3
_KIND_TYPE = ("market", "limit", "stop", "trailing_stop")
# Final statuses (codes into _STATUS).
_FILLED, _NEW, _EXPIRED, _CANCELED = 0, 1, 2, 3
_STATUS = ("filled", "new", "expired", "canceled")


def _sibling_reason(filled_id: str) -> str:
    """The reason the paper broker gives an OCO leg canceled by its sibling's fill."""
    return f"oco sibling {filled_id} filled"


@dataclass(frozen=True)
class ExitRules:
    """Per-symbol exit fractions (``NaN`` = none), aligned with ``bars.symbols``.

    Attributes
    ----------
    stop_loss, take_profit, trailing_stop : ndarray of float, shape (symbols,)
        Fractions of the entry fill price (``0.05`` = 5%), in ``(0, 1)``.
    both_legs : str
        Which OCO leg fills when both could on one bar and the open gaps through neither:
        ``"stop"`` (default, conservative) or ``"take_profit"``.
    """

    stop_loss: F64
    take_profit: F64
    trailing_stop: F64
    both_legs: str = "stop"

    @property
    def any(self) -> npt.NDArray[np.bool_]:
        """Symbols with at least one exit."""
        out: npt.NDArray[np.bool_] = ~(np.isnan(self.stop_loss) & np.isnan(self.take_profit)
                                       & np.isnan(self.trailing_stop))
        return out


def _per_symbol(value: ExitSpec, name: str, symbols: Sequence[str]) -> F64:
    n = len(symbols)
    if value is None:
        return np.full(n, np.nan)
    if isinstance(value, pd.Series):
        value = {str(k): float(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        unknown = [str(k) for k in value if k not in symbols]
        if unknown:
            raise ValueError(f"{name} has symbols that are not in the bars: "
                             f"{', '.join(map(repr, unknown[:10]))}")
        out = np.full(n, np.nan)
        for k, v in value.items():
            out[list(symbols).index(str(k))] = float(v)
    else:
        try:
            out = np.array(np.broadcast_to(np.asarray(value, np.float64), (n,)))
        except (ValueError, TypeError):
            raise ValueError(f"{name} must be a number, one per symbol ({n}) or a mapping "
                             f"{{symbol: fraction}}; got shape {np.shape(value)}") from None
    bad = np.flatnonzero(~np.isnan(out) & ~((out > 0) & (out < 1)))
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"{name} must be a fraction of the entry price in (0, 1) (0.05 = "
                         f"5%) or NaN (none); for {symbols[j]!r} it is {float(out[j])!r}")
    return out


def exit_rules(symbols: Sequence[str], *, stop_loss: ExitSpec = None,
               take_profit: ExitSpec = None, trailing_stop: ExitSpec = None,
               both_legs: str = "stop") -> ExitRules | None:
    """Validated :class:`ExitRules` for ``symbols``, or ``None`` when no exit is given.

    Each of ``stop_loss``, ``take_profit``, ``trailing_stop`` is a number (every symbol),
    a sequence with one value per symbol (``NaN`` = none), or a mapping
    ``{symbol: fraction}`` (symbols left out have none).

    Raises
    ------
    ValueError
        A fraction outside ``(0, 1)``, a wrong length, an unknown symbol, a symbol given a
        trailing stop together with a stop-loss or take-profit, or a bad ``both_legs``.
    """
    if stop_loss is None and take_profit is None and trailing_stop is None:
        return None
    if both_legs not in ("stop", "take_profit"):
        raise ValueError(f"both_legs must be 'stop' or 'take_profit', got {both_legs!r}")
    rules = ExitRules(_per_symbol(stop_loss, "stop_loss", symbols),
                      _per_symbol(take_profit, "take_profit", symbols),
                      _per_symbol(trailing_stop, "trailing_stop", symbols), both_legs)
    both = ~np.isnan(rules.trailing_stop) & ~(np.isnan(rules.stop_loss)
                                              & np.isnan(rules.take_profit))
    if both.any():
        j = int(np.flatnonzero(both)[0])
        raise ValueError(f"{symbols[j]!r} has a trailing_stop and a stop_loss or "
                         "take_profit: a trailing stop is not paired in an OCO; give it "
                         "alone")
    return rules


def _levels(ref: float, long: bool, sl: float, tp: float) -> tuple[float, float]:
    """(take-profit limit, stop) for a position entered at ``ref`` (``NaN`` = none)."""
    if long:
        return ref * (1.0 + tp), ref * (1.0 - sl)
    return ref * (1.0 - tp), ref * (1.0 + sl)


def _trail_percent(fraction: float) -> float:
    return fraction * 100.0


def _trail_levels(extreme: F64, pct: float, long: bool) -> F64:
    """A trailing stop's level from its extreme, as the paper broker computes it."""
    out: F64 = extreme * (1.0 - pct / 100.0) if long else extreme * (1.0 + pct / 100.0)
    return out


# ------------------------------------------------------------------- the kernel
class _Orders:
    """Orders of every symbol as growing lists (columns), then arrays."""

    def __init__(self) -> None:
        self.t: list[int] = []      # the close it was submitted at
        self.j: list[int] = []
        self.leg: list[int] = []    # rank within (t, j): the OCO stop leg is 1
        self.kind: list[int] = []
        self.sign: list[float] = []
        self.qty: list[float] = []
        self.limit: list[float] = []
        self.stop: list[float] = []
        self.trail: list[float] = []
        self.status: list[int] = []
        self.fill_bar: list[int] = []
        self.ref: list[float] = []  # the fill's reference price (before slippage)
        self.sibling: list[int] = []  # index of the OCO sibling (-1 none)

    def add(self, t: int, j: int, kind: int, sign: float, qty: float, *, leg: int = 0,
            limit: float = np.nan, stop: float = np.nan, trail: float = np.nan) -> int:
        self.t.append(t)
        self.j.append(j)
        self.leg.append(leg)
        self.kind.append(kind)
        self.sign.append(sign)
        self.qty.append(qty)
        self.limit.append(limit)
        self.stop.append(stop)
        self.trail.append(trail)
        self.status.append(_NEW)
        self.fill_bar.append(-1)
        self.ref.append(np.nan)
        self.sibling.append(-1)
        return len(self.t) - 1


class _Symbol:
    """One symbol's columns, as contiguous 1-D arrays."""

    def __init__(self, bars: Bars, j: int, last_close: F64, tt: I64, vv: F64):
        self.o = np.ascontiguousarray(bars.open[:, j])
        self.h = np.ascontiguousarray(bars.high[:, j])
        self.lo = np.ascontiguousarray(bars.low[:, j])
        self.c = np.ascontiguousarray(bars.close[:, j])
        self.v = np.ascontiguousarray(bars.volume[:, j])
        self.tradable = self.v > 0
        self.last_close = np.ascontiguousarray(last_close[:, j])
        self.tt, self.vv = tt, vv
        # nd[k]: the first given target after k with a different value (len if none).
        k_n = len(vv)
        nd = np.full(k_n, k_n, np.int64)
        if k_n > 1:
            change = np.flatnonzero(vv[1:] != vv[:-1]) + 1  # run starts after the first
            run_of = np.searchsorted(change, np.arange(k_n), side="right")
            nd = np.append(change, k_n)[run_of]
        self.nd = nd

    def next_order(self, c: int, p: float) -> int:
        """Index into the given targets of the first order at a close >= ``c`` when the
        position is ``p`` (``len`` when none)."""
        k = int(np.searchsorted(self.tt, c))
        if k < len(self.vv) and self.vv[k] == p:
            k = int(self.nd[k])
        return k


def _entry_price(bars: Bars, sym: _Symbol, b: int, sign: float, qty: float,
                 slippage: SlippageModel, clip_to_bar: bool) -> float:
    """The slipped market fill price at bar ``b``'s open (as the batch computes it)."""
    ref = np.array([sym.o[b]])
    s = np.array([sign])
    q = np.array([qty])
    ctx = BarContext(open=ref, high=sym.h[b:b + 1], low=sym.lo[b:b + 1],
                     close=sym.c[b:b + 1], volume=sym.v[b:b + 1])
    price = ref * (1.0 + s * slippage.rate(s, q, ref, ctx))
    if clip_to_bar:
        price = np.clip(price, ctx.low, ctx.high)
    return float(price[0])


def _exit_hit(sym: _Symbol, s: int, e: int, long: bool, limit: float, stop: float,
              trail_pct: float, placed: int, both_legs: str) -> tuple[int, int, float]:
    """The first bar in ``[s, e]`` an exit fills: (bar, kind, reference price), or
    ``(-1, -1, nan)``. ``placed`` is the close the exits were submitted at."""
    if s > e:
        return -1, -1, np.nan
    sl_ = slice(s, e + 1)
    o, h, lo, ok = sym.o[sl_], sym.h[sl_], sym.lo[sl_], sym.tradable[sl_]
    if not np.isnan(trail_pct):
        start = sym.last_close[placed]
        if long:
            ext = np.fmax.accumulate(np.concatenate([[start], h[:-1]]))
        else:
            ext = np.fmin.accumulate(np.concatenate([[start], lo[:-1]]))
        level = _trail_levels(ext, trail_pct, long)
        hit = ok & ((lo <= level) if long else (h >= level))
        if not hit.any():
            return -1, -1, np.nan
        i = int(hit.argmax())
        ref = min(o[i], level[i]) if long else max(o[i], level[i])
        return s + i, _TRAIL, float(ref)
    with np.errstate(invalid="ignore"):
        if long:
            hit_s, hit_l = lo <= stop, h >= limit
        else:
            hit_s, hit_l = h >= stop, lo <= limit
    hit = ok & (hit_s | hit_l)
    if not hit.any():
        return -1, -1, np.nan
    i = int(hit.argmax())
    b = s + i
    op = float(o[i])
    if bool(hit_s[i]) and bool(hit_l[i]):
        gap_s = op <= stop if long else op >= stop
        gap_l = op >= limit if long else op <= limit
        take = gap_l or (not gap_s and both_legs == "take_profit")
        kind = _TP if take else _STOP
    else:
        kind = _STOP if bool(hit_s[i]) else _TP
    if kind == _STOP:
        return b, _STOP, (min(op, stop) if long else max(op, stop))
    return b, _TP, (max(op, limit) if long else min(op, limit))


def _run_symbol(bars: Bars, sym: _Symbol, j: int, rules: ExitRules, orders: _Orders,
                pos_bar: list[int], pos_j: list[int], pos_val: list[float],
                slippage: SlippageModel, clip_to_bar: bool) -> None:
    """Every order of symbol ``j``, appended to ``orders``; its position changes to
    ``pos_*`` (bar, column, position after the bar)."""
    n_t = len(sym.o)
    sl, tp, tr = (float(rules.stop_loss[j]), float(rules.take_profit[j]),
                  float(rules.trailing_stop[j]))
    has_exits = not (np.isnan(sl) and np.isnan(tp) and np.isnan(tr))
    p, ref_px = 0.0, np.nan
    c = 0  # the next close to decide at
    k_n = len(sym.vv)
    while c < n_t:
        k = sym.next_order(c, p)
        t_o = int(sym.tt[k]) if k < k_n else n_t  # the next target order's close
        if has_exits and p != 0.0 and t_o > c:
            # Exits placed at close c, resting from bar c + 1 until the close of t_o.
            long = p > 0
            side = -1.0 if long else 1.0
            qty = abs(p)
            legs: list[int] = []
            if not np.isnan(tr):
                pct = _trail_percent(tr)
                legs.append(orders.add(c, j, _TRAIL, side, qty, trail=pct))
                limit = stop = np.nan
            else:
                pct = np.nan
                limit, stop = _levels(ref_px, long, sl, tp)
                if not np.isnan(tp):
                    legs.append(orders.add(c, j, _TP, side, qty, limit=limit))
                if not np.isnan(sl):
                    legs.append(orders.add(c, j, _STOP, side, qty, leg=len(legs), stop=stop))
                if len(legs) == 2:
                    orders.sibling[legs[0]], orders.sibling[legs[1]] = legs[1], legs[0]
            b, kind, ref = _exit_hit(sym, c + 1, min(t_o, n_t - 1), long, limit, stop, pct,
                                     c, rules.both_legs)
            if b >= 0:
                i = next(x for x in legs if orders.kind[x] == kind)
                orders.status[i], orders.fill_bar[i], orders.ref[i] = _FILLED, b, ref
                for x in legs:
                    if x != i:
                        orders.status[x] = _CANCELED
                        orders.fill_bar[x] = b  # when it ended (for its reason)
                p, ref_px = 0.0, np.nan
                pos_bar.append(b)
                pos_j.append(j)
                pos_val.append(0.0)
                c = b
                continue
            for x in legs:
                if t_o < n_t:
                    orders.status[x] = _CANCELED  # by the target order at t_o
        if t_o >= n_t:
            break
        target = float(sym.vv[k])
        delta = target - p
        sign = 1.0 if delta > 0 else -1.0
        i = orders.add(t_o, j, _MARKET, sign, abs(delta))
        f = t_o + 1
        if f < n_t and bool(sym.tradable[f]):
            new = float(_after(np.array([p]), np.array([target]))[0])
            orders.status[i], orders.fill_bar[i], orders.ref[i] = _FILLED, f, sym.o[f]
            entered = new != 0.0 and (p == 0.0 or (new > 0) != (p > 0) or abs(new) > abs(p))
            if entered and has_exits:
                ref_px = _entry_price(bars, sym, f, sign, abs(delta), slippage, clip_to_bar)
            elif new == 0.0:
                ref_px = np.nan
            p = new
            pos_bar.append(f)
            pos_j.append(j)
            pos_val.append(p)
        else:
            orders.status[i] = _CANCELED if f < n_t else _NEW
        c = f


def run_with_exits(bars: Bars, tgt: F64, rules: ExitRules, cash0: float,
                   slippage: SlippageModel, fees: FeeModel, clip_to_bar: bool,
                   session_tz: str) -> BacktestResult:
    """The result of share targets ``tgt`` (finite or NaN) with ``rules``' exits."""
    n_t, n = tgt.shape
    given = ~np.isnan(tgt)
    cols, rows = np.nonzero(given.T)  # symbol by symbol, in time order
    bounds = np.searchsorted(cols, np.arange(n + 1))
    last_close = _ffill(bars.close.copy())
    orders = _Orders()
    pos_bar: list[int] = []
    pos_j: list[int] = []
    pos_val: list[float] = []
    for j in range(n):
        tt = rows[bounds[j]:bounds[j + 1]].astype(np.int64)
        vv = np.ascontiguousarray(tgt[tt, j])
        _run_symbol(bars, _Symbol(bars, j, last_close, tt, vv), j, rules, orders,
                    pos_bar, pos_j, pos_val, slippage, clip_to_bar)

    # Number the orders in submission order: close, then symbol column, then leg.
    ot = np.array(orders.t, np.int64)
    oj = np.array(orders.j, np.int64)
    leg = np.array(orders.leg, np.int64)
    seq = np.lexsort((leg, oj, ot))
    number = np.empty(len(seq), np.int64)
    number[seq] = np.arange(1, len(seq) + 1)

    def col(values: list[Any], dtype: Any) -> Any:
        return np.array(values, dtype)[seq]

    ot, oj, number = ot[seq], oj[seq], number[seq]
    kind = col(orders.kind, np.int64)
    sign = col(orders.sign, np.float64)
    qty = col(orders.qty, np.float64)
    limit = col(orders.limit, np.float64)
    stop = col(orders.stop, np.float64)
    trail = col(orders.trail, np.float64)
    status = col(orders.status, np.int8)
    fill_bar = col(orders.fill_bar, np.int64)
    refs = col(orders.ref, np.float64)
    sib_raw = col(orders.sibling, np.int64)
    sibling = np.where(sib_raw >= 0, number[np.argsort(seq)][np.maximum(sib_raw, 0)]
                       if len(seq) else sib_raw, -1)

    # Fills in the broker's booking order: bar, then order id.
    filled = status == _FILLED
    fo = np.flatnonzero(filled)
    fo = fo[np.lexsort((number[fo], fill_bar[fo]))]
    ft, fj, fsign, fqty, ref = fill_bar[fo], oj[fo], sign[fo], qty[fo], refs[fo]
    ctx = BarContext(open=bars.open[ft, fj], high=bars.high[ft, fj], low=bars.low[ft, fj],
                     close=bars.close[ft, fj], volume=bars.volume[ft, fj])
    price: F64 = ref * (1.0 + fsign * slippage.rate(fsign, fqty, ref, ctx))
    lim = limit[fo]
    limited = ~np.isnan(lim)
    if limited.any():
        capped = np.where(fsign > 0, np.minimum(price, lim), np.maximum(price, lim))
        price = np.where(limited, capped, price)
    if clip_to_bar:
        price = np.clip(price, ctx.low, ctx.high)
    fee = np.asarray(fees.fees(fsign, fqty, price), np.float64)
    notional = fqty * price
    ledger_cash = _cash_ledger(cash0, fsign, notional, fee)
    cash = cash_after_bars(ft, ledger_cash, n_t, cash0)

    pos = _positions(n_t, n, np.array(pos_bar, np.int64), np.array(pos_j, np.int64),
                     np.array(pos_val, np.float64))
    equity, gross = mark_to_market(pos, marking_closes(bars.close))
    equity += cash

    fill_ns = bars.ts_ns[ft] // 1000 * 1000
    names = np.array(bars.symbols, dtype=object)
    sides = np.array(["sell", "buy"], dtype=object)
    if _INFER_STR:
        symbol_col: Any = pd.array(names, dtype="str").take(fj)
        side_col: Any = pd.array(sides, dtype="str").take((fsign > 0).view(np.int8))
    else:
        symbol_col, side_col = names[fj], sides[(fsign > 0).view(np.int8)]
    fills = pd.DataFrame({
        "timestamp": pd.DatetimeIndex(fill_ns.view("M8[ns]")).tz_localize("UTC"),
        "symbol": pd.Series(symbol_col, copy=False),
        "side": pd.Series(side_col, copy=False),
        "qty": fqty,
        "price": price,
        "fee": fee,
        "notional": notional,
        "order_id": _object_column(_ids(number[fo])),
        "client_order_id": pd.Series(np.full(len(fo), None, dtype=object), dtype=object),
        "fill_id": _object_column(_ids(number[fo], suffix="-1")),
    }, columns=_FILL_COLUMNS)

    frame = _orders_frame(bars, ot, oj, kind, sign, qty, limit, stop, trail, status,
                          fill_bar, sibling, number, fo, notional, session_tz)
    config = {"cash": cash0, "slippage": repr(slippage), "fees": repr(fees),
              "allow_short": True}
    trips = trips_of(fj, names, fsign, fqty, notional, fee, fill_ns, bars,
                     columns=np.arange(len(names)))
    return assemble_result(bars, fills=fills, orders=frame, equity=equity, cash=cash,
                           positions=pos, gross=gross, start_equity=cash0, config=config,
                           trips=trips)


def _ids(numbers: I64, suffix: str = "") -> Any:
    """``f"O{n}{suffix}"`` for distinct positive numbers in any order (Arrow strings)."""
    order = np.argsort(numbers, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return _numbered(numbers[order], suffix=suffix).take(pa.array(inverse))


def _positions(n_t: int, n: int, bar: I64, j: I64, value: F64) -> F64:
    """Positions after each bar from each symbol's changes (in time order per symbol)."""
    out = np.zeros((n_t, n))
    if not len(bar):
        return out
    order = np.lexsort((bar, j))
    bar, j, value = bar[order], j[order], value[order]
    link = np.zeros((n_t, n), np.int64)
    link[bar, j] = np.arange(1, len(bar) + 1)
    np.maximum.accumulate(link, axis=0, out=link)
    res: F64 = np.concatenate([[0.0], value])[link]
    return res


def _orders_frame(bars: Bars, ot: I64, oj: I64, kind: I64, sign: F64, qty: F64,
                  limit: F64, stop: F64, trail: F64, status: npt.NDArray[np.int8],
                  end_bar: I64, sibling: I64, number: I64, fo: I64, notional: F64,
                  session_tz: str) -> pd.DataFrame:
    """Every order with its final status, as ``PaperBroker.get_orders()`` reports it."""
    n_o, n_t = len(ot), len(bars)
    status = status.copy()
    filled = status == _FILLED
    filled_qty = np.where(filled, qty, 0.0)
    avg = np.full(n_o, np.nan)
    avg[fo] = notional / qty[fo]
    reason = np.full(n_o, None, dtype=object)
    # An unfilled market order either expired with its trading day or was canceled by the
    # twin at the next close; one placed at the last close is still "new".
    market_gone = (kind == _MARKET) & (status == _CANCELED)
    if market_gone.any():
        ends = _session_ends(bars, session_tz)
        nxt = ot[market_gone] + 1
        day_over = np.zeros(n_o, np.bool_)
        day_over[market_gone] = ends[np.minimum(nxt, n_t - 1)] <= nxt
        status[day_over] = _EXPIRED
        reason[day_over] = _EXPIRED_REASON
    # An OCO leg canceled on the bar its sibling filled.
    by_number = {int(x): i for i, x in enumerate(number.tolist())}
    for i in np.flatnonzero((kind != _MARKET) & (status == _CANCELED) & (sibling >= 0)
                            & (end_bar >= 0)).tolist():
        s = by_number[int(sibling[i])]
        if status[s] == _FILLED:
            reason[i] = _sibling_reason(f"O{int(number[s])}")
    close_ns = bars.ts_ns[ot] + int(bars.interval.astype(np.int64))
    submitted = (close_ns // 1000 * 1000).view("M8[ns]")
    tif = (kind != _MARKET).view(np.int8) if n_o else np.zeros(0, np.int8)
    frame: pd.DataFrame = pd.DataFrame({
        "order_id": _str_column(_numbered(number)),
        "client_order_id": pd.Series(np.full(n_o, None, dtype=object), dtype=object),
        "symbol": _str_column(_pick(bars.symbols, oj)),
        "side": _str_column(_pick(("sell", "buy"), (sign > 0).view(np.int8))),
        "qty": qty,
        "order_type": _str_column(_pick(_KIND_TYPE, kind)),
        "limit_price": limit,
        "stop_price": stop,
        "tif": _str_column(_pick(("day", "gtc"), tif)),
        "status": _str_column(_pick(_STATUS, status)),
        "filled_qty": filled_qty,
        "avg_fill_price": avg,
        "submitted_at": pd.DatetimeIndex(submitted).tz_localize("UTC"),
        "reason": pd.Series(reason, dtype=object),
    })
    del trail
    return frame


# --------------------------------------------------------------- the event twin
class TargetExits:
    """The event-driven twin of ``backtest_vectorized`` with exits: run it with
    :func:`simbroker.backtest`.

    At each close, for every symbol in column order: it cancels its target order left
    from the previous close; when the target (not ``NaN``) differs from the position it
    cancels that symbol's resting exits and orders the difference at market; otherwise,
    when the position is not flat and no exits rest, it submits them (see the module
    docstring for the rules and prices).

    Parameters
    ----------
    targets : DataFrame or ndarray, shape (bars, symbols), optional
        Share targets, as for :func:`~simbroker.vectorized.backtest_vectorized`.
    entries, exits, size
        Or signals (turned into targets exactly as ``backtest_vectorized`` does).
    stop_loss, take_profit, trailing_stop
        Fractions of the entry fill price (number, one per symbol, or ``{symbol: x}``).
    both_legs : {"stop", "take_profit"}
        Must match the broker's ``both_legs`` (the paper broker's default is ``"stop"``).

    Examples
    --------
    >>> import numpy as np, pandas as pd, simbroker
    >>> from simbroker.vectorized import backtest_vectorized
    >>> from simbroker.vectorized_exits import TargetExits
    >>> bars = simbroker.synthetic_bars(n_symbols=2, n_bars=60, seed=4)
    >>> entries = pd.DataFrame(bars.close > bars.open, index=bars.index,
    ...                        columns=list(bars.symbols))
    >>> event = simbroker.backtest(TargetExits(entries=entries, stop_loss=0.01), bars)
    >>> fast = backtest_vectorized(bars, entries=entries, stop_loss=0.01)
    >>> event.fills.equals(fast.fills) and event.equity.equals(fast.equity)
    True
    """

    def __init__(self, targets: FrameLike | None = None, *, entries: FrameLike | None = None,
                 exits: FrameLike | None = None,
                 size: float | Sequence[float] | np.ndarray = 100.0,
                 stop_loss: ExitSpec = None, take_profit: ExitSpec = None,
                 trailing_stop: ExitSpec = None, both_legs: str = "stop"):
        if (targets is None) == (entries is None and exits is None):
            raise ValueError("give exactly one of targets= or entries=/exits=")
        self._targets, self._entries, self._exits, self._size = targets, entries, exits, size
        self._exit_args = dict(stop_loss=stop_loss, take_profit=take_profit,
                               trailing_stop=trailing_stop, both_legs=both_legs)
        self._rules: ExitRules | None = None
        self._pending: dict[int, str] = {}       # column -> target order id
        self._resting: dict[int, list[str]] = {}  # column -> exit order ids
        self._ref: dict[int, float] = {}
        self._before: dict[int, float] = {}  # column -> position when it was ordered

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        """The aligned share targets and the last known close, once."""
        if self._targets is not None:
            tgt = _aligned(self._targets, bars, "targets")
            _check_finite(tgt, bars, "targets")
        else:
            tgt = _signal_targets(bars, self._entries, self._exits, self._size)
        self._rules = exit_rules(bars.symbols, **self._exit_args)  # type: ignore[arg-type]
        self._pending, self._resting, self._ref, self._before = {}, {}, {}, {}
        return {"target": tgt, "last_close": _ffill(bars.close.copy())}

    def on_bar(self, broker: Broker, history: History) -> None:
        """Book what filled on this bar, then order targets or place exits per symbol."""
        rules = self._rules
        open_ns = int(history.timestamps[-1:].view(np.int64)[0])
        bar_open = _EPOCH + timedelta(microseconds=open_ns // 1000)
        fills = {f["order_id"]: f for f in broker.get_fills(since=bar_open)}
        held = broker.get_positions()
        row = history.last("target")
        last_close = history.last("last_close")
        for j, order_id in list(self._pending.items()):
            fill = fills.get(order_id)
            if fill is None:
                broker.cancel_order(order_id)
            else:
                p_after = held.get(history.symbols[j], 0.0)
                before = self._before.get(j, 0.0)
                entered = p_after != 0.0 and (before == 0.0 or (p_after > 0) != (before > 0)
                                              or abs(p_after) > abs(before))
                if entered:
                    self._ref[j] = float(fill["price"])
                elif p_after == 0.0:
                    self._ref.pop(j, None)
        self._pending = {}
        for j, ids in list(self._resting.items()):
            if any(i in fills for i in ids):
                del self._resting[j]
                self._ref.pop(j, None)
        self._before = {}
        for j, sym in enumerate(history.symbols):
            p = held.get(sym, 0.0)
            target = float(row[j])
            if not np.isnan(target) and target != p:
                for order_id in self._resting.pop(j, []):
                    broker.cancel_order(order_id)
                delta = target - p
                info = broker.submit_order(sym, "buy" if delta > 0 else "sell", abs(delta))
                self._pending[j] = info["order_id"]
                self._before[j] = p
            elif (rules is not None and p != 0.0 and j not in self._resting
                  and bool(rules.any[j])):
                self._resting[j] = self._submit_exits(broker, sym, j, p, rules,
                                                      float(last_close[j]))

    def _submit_exits(self, broker: Broker, sym: str, j: int, p: float, rules: ExitRules,
                      close: float) -> list[str]:
        long = p > 0
        side = "sell" if long else "buy"
        qty = abs(p)
        submit: Any = broker.submit_order
        tr = float(rules.trailing_stop[j])
        if not np.isnan(tr):
            info = submit(sym, side, qty, "trailing_stop", tif="gtc",
                          trail_percent=_trail_percent(tr))
            return [info["order_id"]]
        sl, tp = float(rules.stop_loss[j]), float(rules.take_profit[j])
        limit, stop = _levels(self._ref[j], long, sl, tp)
        if np.isnan(sl):
            return [submit(sym, side, qty, "limit", limit_price=limit, tif="gtc")["order_id"]]
        if np.isnan(tp):
            return [submit(sym, side, qty, "stop", stop_price=stop, tif="gtc")["order_id"]]
        info = submit(sym, side, qty, "limit", limit_price=limit, tif="gtc",
                      order_class="oco", take_profit={"limit_price": limit},
                      stop_loss={"stop_price": stop})
        return [info["order_id"], *info["legs"]]
