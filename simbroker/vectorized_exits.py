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
  not flat and no exits rest, exits are submitted. After an entry fill on bar ``t`` this
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
  the limit; a trailing stop's level on bar ``b`` is ``extreme - extreme * pct / 100``
  (a sell; a buy adds), its extreme the last close at submission folded with the highs
  (sell) / lows (buy) of the bars that traded strictly before ``b``, and it fills as a
  stop. Both OCO legs reachable on one bar: a leg the open gaps through fills at the
  open; otherwise the stop leg (``both_legs="stop"``, the broker's default) or the
  take-profit (``"take_profit"``). A bar with no volume fills nothing.
* **Orders** are numbered ``O1``, ``O2``, ... in submission order: close, then symbol
  column, an OCO's limit leg before its stop leg; fills are ``"<order_id>-1"`` and are
  booked per bar in order-id order. Exits canceled by a target order are ``canceled``
  (no reason); an OCO leg whose sibling filled is ``canceled`` with the reason
  ``"sibling O7 filled"``; exits still resting at the end are ``new``; a trailing stop's
  ``stop_price`` is its last level (the one it filled at, or after its last bar).

The kernel loops over orders, not bars, and over all symbols at once: each step moves
every symbol on by one event, its next target order (found in O(1) by skipping runs of
equal targets) or its next exit group, whose fill bar is found by scanning the bars it
rests on in chunks of doubling width (a running extreme for trailing stops). A symbol's
resting spans never overlap, so there are as many numpy steps as the busiest symbol has
orders, O(bars x symbols) gathered cells at most twice over, and O(orders log orders) to
number them. The slippage model is called once per step for the entries (their fill
price sets the exit levels) and once over all fills, the fee model once; cash is the
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

from simbroker._vector_account import RefusalLog
from simbroker.bars import Bars
from simbroker.broker import Broker
from simbroker.engine import History
from simbroker.financing._vector import VectorFinancing
from simbroker.models.fees import FeeModel
from simbroker.models.schedules import fees_at
from simbroker.models.slippage import BarContext, SlippageModel
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
from simbroker.vectorized import (
    _EXPIRED_REASON,
    FrameLike,
    _after,
    _aligned,
    _cash_ledger,
    _check_finite,
    _fill_prices,
    _fills_frame,
    _numbered,
    _pick,
    _RecordsRefusals,
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
    return f"sibling {filled_id} filled"


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
    """(take-profit limit, stop) for a position entered at ``ref``, as the kernel
    computes them (``NaN`` = none)."""
    if long:
        return ref * (1.0 + tp), ref * (1.0 - sl)
    return ref * (1.0 - tp), ref * (1.0 + sl)


def _trail_percent(fraction: Any) -> Any:
    """``trail_percent`` (in percent) for an exit fraction, as the twin submits it."""
    return fraction * 100.0


def _trail_level(extreme: F64, pct: F64, long: npt.NDArray[np.bool_]) -> F64:
    """A trailing stop's level from its extreme, as the paper broker computes it: a sell's
    ``extreme - extreme * pct / 100``, a buy's ``extreme + extreme * pct / 100``."""
    dist = extreme * pct / 100.0
    out: F64 = np.where(long, extreme - dist, extreme + dist)
    return out


# ------------------------------------------------------------------- the kernel
class _Panels:
    """The bar fields flat, as laid out: bar ``t`` of column ``j`` at ``t * N + j``."""

    def __init__(self, bars: Bars):
        self.n_t, self.n = len(bars), bars.n_symbols
        self.o = np.ascontiguousarray(bars.open).ravel()
        self.h = np.ascontiguousarray(bars.high).ravel()
        self.lo = np.ascontiguousarray(bars.low).ravel()
        self.close = bars.close
        self.tradable = (bars.volume > 0 if bars.volume_known
                         else ~np.isnan(bars.close)).ravel()

    def at(self, t: I64, j: I64) -> I64:
        """Flat indexes of bars ``t`` of columns ``j``."""
        out: I64 = t * self.n + j
        return out

    def last_close(self, t: I64, j: I64) -> F64:
        """The latest close at or before bar ``t`` of columns ``j`` (NaN: none yet), as
        the paper broker starts a trailing stop's extreme."""
        out: F64 = self.close[t, j]
        for i in np.flatnonzero(np.isnan(out)).tolist():  # a missing bar: look back
            seen = np.flatnonzero(np.isfinite(self.close[: t[i] + 1, j[i]]))
            if seen.size:
                out[i] = self.close[seen[-1], j[i]]
        return out


class _Records:
    """What the kernel decided, as chunks of parallel arrays (one chunk per step)."""

    FIELDS = ("t", "j", "group", "leg", "kind", "sign", "qty", "limit", "stop", "trail",
              "status", "fill_bar", "ref")

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {f: [] for f in self.FIELDS}
        self.moves: list[tuple[I64, I64, F64]] = []  # (bar, column, position after)
        self.n_groups = 0

    def add(self, **cols: Any) -> None:
        size = len(cols["j"])
        for f in self.FIELDS:
            v = cols.get(f)
            if v is None:
                v = {"group": -1, "leg": 0, "limit": np.nan, "stop": np.nan, "trail": np.nan,
                     "fill_bar": -1, "ref": np.nan}[f]
            self.chunks[f].append(np.broadcast_to(v, (size,)))

    def column(self, name: str, dtype: Any) -> np.ndarray:
        parts = self.chunks[name]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _first_exits(pn: _Panels, j: I64, s: I64, e: I64, long: npt.NDArray[np.bool_],
                 limit: F64, stop: F64, pct: F64, extreme: F64,
                 take_first: bool) -> tuple[I64, I64, F64, F64]:
    """For each resting exit group (symbol ``j[i]``, resting on bars ``s[i]..e[i]``), the
    bar one of its legs fills, that leg's kind and its reference price (``-1, -1, nan``
    when none fills), and a trailing stop's last level (tested on its fill bar, or after
    ``e[i]`` when it did not fill), as the broker reports its ``stop_price``.

    Scans every group at once in chunks of bars that double in width, so the work is the
    bars the exits rest on (at most twice), in O(log(longest rest)) numpy passes per call.
    ``pct`` is the trailing percent (``NaN``: fixed ``stop``), ``extreme`` its starting
    extreme.
    """
    n_t = pn.n_t
    m = len(j)
    bar = np.full(m, -1, np.int64)
    kind = np.full(m, -1, np.int64)
    ref = np.full(m, np.nan)
    level_at = np.full(m, np.nan)
    trailing = ~np.isnan(pct)
    # Trailing extremes run as maxima: a short's (a minimum of lows) is negated.
    carry = np.where(long, extreme, -extreme)
    pos = s.copy()
    todo = np.flatnonzero(s <= e)
    width = 8
    while todo.size:
        r_pos, r_e, r_long = pos[todo], e[todo], long[todo]
        idx = r_pos[:, None] + np.arange(width)
        valid = idx <= r_e[:, None]
        flat = pn.at(np.minimum(idx, n_t - 1), j[todo][:, None])
        o, h, lo = pn.o[flat], pn.h[flat], pn.lo[flat]
        ok = pn.tradable[flat] & valid
        lg = r_long[:, None]
        st = np.broadcast_to(stop[todo][:, None], idx.shape)
        r_trail = trailing[todo]
        if r_trail.any():
            # Extremes move only on bars that traded (NaN: left as they were).
            src = np.where(ok, np.where(lg, h, -lo), np.nan)
            run = np.fmax.accumulate(np.concatenate([carry[todo][:, None], src[:, :-1]],
                                                    axis=1), axis=1)
            ext = np.where(lg, run, -run)
            lvl = _trail_level(ext, pct[todo][:, None], lg)
            st = np.where(r_trail[:, None], lvl, st)
            carry[todo] = np.fmax(run[:, -1], src[:, -1])
        lim = limit[todo][:, None]
        hit_s = np.where(lg, lo <= st, h >= st)  # NaN (no such leg) compares False
        hit_l = np.where(lg, h >= lim, lo <= lim)
        hit = ok & (hit_s | hit_l)
        found = hit.any(axis=1)
        if found.any():
            rows = np.flatnonzero(found)
            col = hit.argmax(axis=1)[rows]
            g = todo[rows]
            op, hs, hl = o[rows, col], hit_s[rows, col], hit_l[rows, col]
            sv, lv, rl = st[rows, col], limit[g], r_long[rows]
            gap_s = np.where(rl, op <= sv, op >= sv)
            gap_l = np.where(rl, op >= lv, op <= lv)
            take = hl & (~hs | gap_l | (~gap_s & take_first))
            bar[g] = r_pos[rows] + col
            kind[g] = np.where(take, _TP, np.where(trailing[g], _TRAIL, _STOP))
            ref[g] = np.where(take, np.where(rl, np.maximum(op, lv), np.minimum(op, lv)),
                              np.where(rl, np.minimum(op, sv), np.maximum(op, sv)))
            level_at[g] = np.where(take, np.nan, sv)
        more = ~found & (r_pos + width <= r_e)
        pos[todo] = r_pos + width
        todo = todo[more]
        width = min(width * 2, 4096)
    rest = trailing & (bar < 0)
    level_at[rest] = _trail_level(np.where(long, carry, -carry)[rest], pct[rest], long[rest])
    return bar, kind, ref, level_at


def _simulate(bars: Bars, tgt: F64, rules: ExitRules, slippage: SlippageModel,
              clip_to_bar: bool) -> _Records:
    """Every order of every symbol (see the module docstring for the rules).

    All symbols advance together, one order (or one exit group) per symbol per step.
    """
    n_t, n = tgt.shape
    pn = _Panels(bars)
    rec = _Records()
    cols, rows = np.nonzero((~np.isnan(tgt)).T)  # symbol by symbol, in time order
    k_n = len(rows)
    gv = tgt[rows, cols]
    gkey = cols.astype(np.int64) * n_t + rows
    hi = np.searchsorted(cols, np.arange(n), side="right")
    # nd[k]: the next given target of the same symbol with another value (or the end of
    # the symbol's targets): runs of equal targets are skipped in one step.
    run_start = np.ones(k_n, np.bool_)
    if k_n > 1:
        run_start[1:] = (gv[1:] != gv[:-1]) | (cols[1:] != cols[:-1])
    starts = np.flatnonzero(run_start)
    nd = np.append(starts[1:], k_n)[np.cumsum(run_start) - 1]
    sl, tp, tr = rules.stop_loss, rules.take_profit, rules.trailing_stop
    has_exits = rules.any
    has_tp = ~np.isnan(tp) & np.isnan(tr)
    has_sl = ~np.isnan(sl) & np.isnan(tr)
    has_tr = ~np.isnan(tr)
    take_first = rules.both_legs == "take_profit"
    c = np.zeros(n, np.int64)   # the next close to decide at
    p = np.zeros(n)             # the position
    entry = np.full(n, np.nan)  # the price of the latest fill that entered
    active = np.arange(n)[c < n_t] if k_n or has_exits.any() else np.zeros(0, np.int64)
    while active.size:
        jj, cj, pj = active, c[active], p[active]
        k = np.searchsorted(gkey, jj * n_t + cj)
        inside = k < hi[jj]
        kc = np.minimum(k, max(k_n - 1, 0))
        same = inside & (gv[kc] == pj) if k_n else inside
        k = np.where(same, nd[kc] if k_n else k, k)
        inside = k < hi[jj]
        kc = np.minimum(k, max(k_n - 1, 0))
        t_o = np.where(inside, rows[kc] if k_n else n_t, n_t)
        hit = np.zeros(len(jj), np.bool_)
        ex = np.flatnonzero(has_exits[jj] & (pj != 0) & (t_o > cj))
        if ex.size:
            hit[ex] = _place_exits(pn, rec, jj[ex], cj[ex], pj[ex], t_o[ex], entry, sl, tp,
                                   tr, has_tp, has_sl, has_tr, take_first, p, c)
        go = np.flatnonzero(~hit & (t_o < n_t))
        if go.size:
            _order_targets(bars, pn, rec, jj[go], t_o[go], gv[kc[go]], p, c, entry,
                           has_exits, slippage, clip_to_bar)
        alive = hit.copy()
        alive[go] = True
        active = jj[alive]
        active = active[c[active] < n_t]
    return rec


def _place_exits(pn: _Panels, rec: _Records, j: I64, c: I64, pos: F64, t_o: I64,
                 entry: F64, sl: F64, tp: F64, tr: F64, has_tp: npt.NDArray[np.bool_],
                 has_sl: npt.NDArray[np.bool_], has_tr: npt.NDArray[np.bool_],
                 take_first: bool, p: F64, c_out: I64) -> npt.NDArray[np.bool_]:
    """Exits placed at closes ``c`` for positions ``pos``; until the close of ``t_o``.

    Records the legs with their fate, updates ``p``/``c_out`` where one filled, and
    returns that mask.
    """
    n_t = pn.n_t
    m = len(j)
    long = pos > 0
    side = np.where(long, -1.0, 1.0)
    qty = np.abs(pos)
    ref = entry[j]
    limit = np.where(has_tp[j], np.where(long, ref * (1.0 + tp[j]), ref * (1.0 - tp[j])),
                     np.nan)
    stop = np.where(has_sl[j], np.where(long, ref * (1.0 - sl[j]), ref * (1.0 + sl[j])),
                    np.nan)
    pct = np.where(has_tr[j], _trail_percent(tr[j]), np.nan)
    start = pn.last_close(c, j)
    bar, kind, fill_ref, trail_level = _first_exits(pn, j, c + 1, np.minimum(t_o, n_t - 1), long,
                                          limit, stop, pct, start, take_first)
    group = rec.n_groups + np.arange(m)
    rec.n_groups += m
    filled = bar >= 0
    # Unfilled legs: canceled by the target order at t_o, or resting at the end ("new").
    left = np.where(t_o < n_t, _CANCELED, _NEW)
    zero = np.zeros(m, np.int64)
    ranks = has_tp[j].astype(np.int64)  # the OCO stop leg comes after the limit leg
    for leg_kind, mask, rank in ((_TP, has_tp[j], zero), (_STOP, has_sl[j], ranks),
                                 (_TRAIL, has_tr[j], zero)):
        i = np.flatnonzero(mask)
        if not i.size:
            continue
        mine = filled[i] & (kind[i] == leg_kind)
        sibling_won = filled[i] & ~mine
        rec.add(t=c[i], j=j[i], group=group[i], leg=rank[i],
                kind=leg_kind, sign=side[i], qty=qty[i],
                limit=limit[i] if leg_kind == _TP else np.nan,
                stop=(stop[i] if leg_kind == _STOP else trail_level[i] if leg_kind == _TRAIL
                      else np.nan),
                trail=pct[i] if leg_kind == _TRAIL else np.nan,
                status=np.where(mine, _FILLED, np.where(sibling_won, _CANCELED, left[i])),
                fill_bar=np.where(filled[i], bar[i], -1),
                ref=np.where(mine, fill_ref[i], np.nan))
    hit = np.flatnonzero(filled)
    if hit.size:
        jh = j[hit]
        p[jh] = 0.0
        entry[jh] = np.nan
        c_out[jh] = bar[hit]
        rec.moves.append((bar[hit], jh, np.zeros(hit.size)))
    return filled


def _order_targets(bars: Bars, pn: _Panels, rec: _Records, j: I64, t_o: I64, target: F64,
                   p: F64, c: I64, entry: F64, has_exits: npt.NDArray[np.bool_],
                   slippage: SlippageModel, clip_to_bar: bool) -> None:
    """Market orders for ``target - p`` at closes ``t_o``; fills on ``t_o + 1``."""
    n_t = pn.n_t
    before = p[j]
    delta = target - before
    sign = np.where(delta > 0, 1.0, -1.0)
    qty = np.abs(delta)
    f = t_o + 1
    f_at = pn.at(np.minimum(f, n_t - 1), j)
    fills = (f < n_t) & pn.tradable[f_at]
    status = np.where(fills, _FILLED, np.where(f < n_t, _CANCELED, _NEW))
    rec.add(t=t_o, j=j, kind=_MARKET, sign=sign, qty=qty, status=status,
            fill_bar=np.where(fills, f, -1), ref=np.where(fills, pn.o[f_at], np.nan))
    c[j] = f
    i = np.flatnonzero(fills)
    if not i.size:
        return
    ji, old = j[i], before[i]
    new = _after(old, target[i])
    entered = (new != 0) & ((old == 0) | ((new > 0) != (old > 0))
                            | (np.abs(new) > np.abs(old)))
    price_of = np.flatnonzero(entered & has_exits[ji])
    if price_of.size:
        fi = i[price_of]
        entry[j[fi]] = _fill_prices(bars, f[fi], j[fi], sign[fi], qty[fi], slippage,
                                    clip_to_bar)
    entry[ji[new == 0]] = np.nan
    p[ji] = new
    rec.moves.append((f[i], ji, new))


def run_with_exits(bars: Bars, tgt: F64, rules: ExitRules, cash0: float,
                   slippage: SlippageModel, fees: FeeModel, clip_to_bar: bool,
                   session_tz: str, fin: VectorFinancing | None = None) -> BacktestResult:
    """The result of share targets ``tgt`` (finite or NaN) with ``rules``' exits, and
    borrow fees and interest ``fin`` (they move cash only, which no exit depends on)."""
    fees.reset()  # this pass prices the fills from the first bar: the ledgers start again
    n_t, n = tgt.shape
    rec = _simulate(bars, tgt, rules, slippage, clip_to_bar)

    # Number the orders in submission order: close, then symbol column, then leg.
    ot, oj, leg = rec.column("t", np.int64), rec.column("j", np.int64), rec.column("leg",
                                                                                  np.int64)
    seq = np.lexsort((leg, oj, ot))
    ot, oj = ot[seq], oj[seq]
    number = np.arange(1, len(seq) + 1)

    def col(name: str, dtype: Any) -> Any:
        return rec.column(name, dtype)[seq]

    kind = col("kind", np.int64)
    sign = col("sign", np.float64)
    qty = col("qty", np.float64)
    limit = col("limit", np.float64)
    stop = col("stop", np.float64)
    trail = col("trail", np.float64)
    status = col("status", np.int8)
    fill_bar = col("fill_bar", np.int64)
    refs = col("ref", np.float64)
    group = col("group", np.int64)
    # Each OCO leg's sibling (by order number): the other order of its group.
    sibling = np.full(len(seq), -1, np.int64)
    grouped = np.flatnonzero(group >= 0)
    if grouped.size:
        by_group = grouped[np.argsort(group[grouped], kind="stable")]
        pair = np.flatnonzero(group[by_group][1:] == group[by_group][:-1])
        a, b = by_group[pair], by_group[pair + 1]
        sibling[a], sibling[b] = number[b], number[a]

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
    fee = np.asarray(fees_at(fees, fsign, fqty, price, bars.ts_ns[ft]), np.float64)
    notional = fqty * price
    moves = rec.moves
    if moves:
        pos = _positions(n_t, n, np.concatenate([m[0] for m in moves]),
                         np.concatenate([m[1] for m in moves]),
                         np.concatenate([m[2] for m in moves]))
    else:
        pos = np.zeros((n_t, n))
    financing = None
    if fin is None:
        ledger_cash = _cash_ledger(cash0, fsign, notional, fee)
        cash = cash_after_bars(ft, ledger_cash, n_t, cash0)
    else:  # the ledger cut at each trading day's end for the accruals
        entry_bar, entry_cash, fin_fees, fin_paid = fin.ledger(cash0, ft, fsign, notional,
                                                               fee, None, pos)
        cash = cash_after_bars(entry_bar, entry_cash, n_t, cash0)
        financing = (fin_fees, fin_paid)
    equity, gross = mark_to_market(pos, marking_closes(bars.close))
    equity += cash

    fills, fill_ns, names = _fills_frame(bars, ft, fj, fsign, fqty, price, fee, notional,
                                         _ids(number[fo]), _ids(number[fo], suffix="-1"))

    frame = _orders_frame(bars, ot, oj, kind, sign, qty, limit, stop, trail, status,
                          fill_bar, sibling, number, fo, notional, session_tz)
    config: dict[str, Any] = {"cash": cash0, "slippage": repr(slippage),
                              "fees": repr(fees), "allow_short": True}
    if fin is not None:
        config.update(borrow=repr(fin.borrow), interest=repr(fin.interest))
    trips = trips_of(fj, names, fsign, fqty, notional, fee, fill_ns, bars,
                     columns=np.arange(len(names)))
    return assemble_result(bars, fills=fills, orders=frame, equity=equity, cash=cash,
                           positions=pos, gross=gross, start_equity=cash0, config=config,
                           trips=trips, financing=financing)


def _ids(numbers: I64, suffix: str = "") -> Any:
    """``f"O{n}{suffix}"`` for distinct positive numbers in any order (Arrow strings)."""
    order = np.argsort(numbers, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return _numbered(numbers[order], suffix=suffix).take(pa.array(inverse))


def _positions(n_t: int, n: int, bar: I64, j: I64, value: F64) -> F64:
    """Positions after each bar from the changes ``(bar, column, position after)``.

    The kernel appends a symbol's changes in time order (a later step never goes back),
    so the append order numbers them: a running maximum of those numbers down each
    column finds each bar's latest change.
    """
    if not len(bar):
        return np.zeros((n_t, n))
    link = np.zeros((n_t, n), np.int32 if len(bar) < 2**31 - 1 else np.int64)
    link.ravel()[bar * n + j] = np.arange(1, len(bar) + 1)
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
        nxt = ot[market_gone] + 1
        # The last bar of the trading day the order could first trade in (the date rule:
        # exits run on bars without calendar sessions).
        ends = date_sessions(bars, session_tz).close_bar(np.minimum(nxt, n_t - 1),
                                                         np.zeros(len(nxt), np.int64))
        day_over = np.zeros(n_o, np.bool_)
        day_over[market_gone] = ends <= nxt
        status[day_over] = _EXPIRED
        reason[day_over] = _EXPIRED_REASON
    # An OCO leg canceled on the bar its sibling filled.
    # (Orders are numbered 1, 2, ... in frame order: order number x is row x - 1.)
    lost = np.flatnonzero((kind != _MARKET) & (status == _CANCELED) & (sibling >= 0)
                          & (end_bar >= 0))
    lost = lost[status[sibling[lost] - 1] == _FILLED]
    for i, s in zip(lost.tolist(), sibling[lost].tolist(), strict=True):
        reason[i] = _sibling_reason(f"O{s}")
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
class TargetExits(_RecordsRefusals):
    """The event-driven twin of ``backtest_vectorized`` with exits: run it with
    :func:`simbroker.backtest`.

    At each close, for every symbol in column order: it cancels its target order left
    from the previous close; when the target (not ``NaN``) differs from the position it
    cancels that symbol's resting exits and orders the difference at market; otherwise,
    when the position is not flat and no exits rest, it submits them (see the module
    docstring for the rules and prices). A starting position (``backtest(...,
    positions=)``, which the vectorized runner does not take) gets exits referenced to
    the last close at the first close.

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
    on_refused : {"skip", "raise"}, default "skip"
        On an account that refuses orders (``backtest(..., account=...)``): ``"skip"``
        records a refused target order or exit in :attr:`refused` and decides again at
        the next close (a symbol whose target order was refused has lost its canceled
        exits, and gets new ones at the next close without an order, like any
        unprotected position); ``"raise"`` stops the run. ``backtest_vectorized`` does
        not take ``account=`` with exits (resting exits and cash couple the symbols):
        run this twin.

    Attributes
    ----------
    refused : DataFrame
        The refusals of the last run, as
        :attr:`simbroker.vectorized.TargetPositions.refused`.
    n_refused : int
        ``len(refused)``.

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
                 trailing_stop: ExitSpec = None, both_legs: str = "stop",
                 on_refused: str = "skip"):
        if (targets is None) == (entries is None and exits is None):
            raise ValueError("give exactly one of targets= or entries=/exits=")
        self._refusals = RefusalLog(on_refused)
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
        self._refusals.start(bars)
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
                try:
                    info = broker.submit_order(sym, "buy" if delta > 0 else "sell",
                                               abs(delta))
                except self._refusals.kinds as exc:
                    self._refusals.refused(history.t, j, delta, exc)
                    continue
                self._pending[j] = info["order_id"]
                self._before[j] = p
            elif (rules is not None and p != 0.0 and j not in self._resting
                  and bool(rules.any[j])):
                try:
                    self._resting[j] = self._submit_exits(broker, sym, j, p, rules,
                                                          float(last_close[j]))
                except self._refusals.kinds as exc:
                    self._refusals.refused(history.t, j, -p, exc)

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
        # A position it did not enter itself (a starting position) is referenced to the
        # last close.
        limit, stop = _levels(self._ref.get(j, close), long, sl, tp)
        if np.isnan(sl):
            return [submit(sym, side, qty, "limit", limit_price=limit, tif="gtc")["order_id"]]
        if np.isnan(tp):
            return [submit(sym, side, qty, "stop", stop_price=stop, tif="gtc")["order_id"]]
        info = submit(sym, side, qty, "limit", limit_price=limit, tif="gtc",
                      order_class="oco", take_profit={"limit_price": limit},
                      stop_loss={"stop_price": stop})
        return [info["order_id"], *info["legs"]]
