"""Matching the paper broker's open book against one bar (the module table of
:mod:`simbroker.paper`): which orders fill, at what reference and fill price, for what fee.
"""

from __future__ import annotations

import numpy as np

from simbroker._paper_booking import Booking
from simbroker._paper_groups import one_leg_per_group
from simbroker._paper_kinds import (
    AT_CLOSE,
    AT_OPEN,
    TRAIL_AMOUNT,
    TRAIL_PERCENT,
    auction_fill,
    trail_fill,
    trail_levels,
)
from simbroker._paper_volume import (
    CapMemo,
    capped_lists,
    capped_quantities,
    fits_whole,
    recalled,
)
from simbroker.models.fees import BpsOfNotional, FeeModel, NoFee
from simbroker.models.schedules import ScheduleFee, fees_at, fill_fees, order_fees_at
from simbroker.models.schedules._scalar import scalar_fees
from simbroker.models.slippage import BarContext, FixedBps, NoSlippage, SlippageModel
from simbroker.types import TimeInForce

__all__ = ["SMALL_BOOK", "Matching"]

SMALL_BOOK = 16
"""Largest book matched order by order in Python (:meth:`Matching._match_small`)."""

ScalarRates = tuple[float | None, bool, float | None, ScheduleFee | None]
""":func:`_scalar_rates`' answer: slippage rate, fee in floats, fee rate, schedule model."""


def _scalar_rates(slippage: SlippageModel, fees: FeeModel) -> ScalarRates:
    """What :meth:`Matching._match_small` may compute in Python floats: the slippage rate
    of the built-in fixed-rate models (exactly those classes; ``None`` for any other), and
    ``(True, fee rate or None for NoFee, None)`` for the built-in fixed-rate fee models,
    ``(False, None, model)`` for a schedule model that :func:`fill_fees` would price from
    lists (see :meth:`Matching._small_fees`), ``(False, None, None)`` for any other."""
    slip: float | None = None
    if type(slippage) is FixedBps:
        slip = slippage.bps / 1e4
    elif type(slippage) is NoSlippage:
        slip = 0.0
    if type(fees) is BpsOfNotional:
        return slip, True, fees.bps / 1e4, None
    if type(fees) is NoFee:
        return slip, True, None, None
    if isinstance(fees, ScheduleFee) and fees._lists_ok:
        return slip, False, None, fees
    return slip, False, None, None


def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN when either is NaN."""
    return a if a > b or a != a else b


def _minimum(a: float, b: float) -> float:
    """``np.minimum`` of two floats: NaN when either is NaN."""
    return a if a < b or a != a else b


class Matching(Booking):
    """Decide a bar's fills across the book (numpy across orders), then book them."""

    _small_book = SMALL_BOOK
    """Books of at most this many orders are matched by :meth:`_match_small` (tests force
    either path by setting it to 0 or to a huge number)."""
    _fast_market = True
    """Whether a small plain market book may go to :meth:`_match_market` instead of
    :meth:`_match_small` (a test sets it False to force the general loops)."""
    _rates: tuple[SlippageModel, FeeModel, ScalarRates] | None = None
    """The models :func:`_scalar_rates` last saw and its answer (the models are frozen)."""

    def _match(self, t: int) -> None:
        book = self._book
        n = book.n
        if n <= self._small_book and not self._special and not self._groups.live \
                and (self._gate is None or self._all_regular[t]):
            if book.plain and book.max_first <= t and self._fast_market and \
                    not self.clip_to_bar and self._flat is not None:
                rates = self._rates  # self._scalar_rates(), without the call
                if rates is None or rates[0] is not self.slippage or rates[1] is not self.fees:
                    self._scalar_rates()
                    rates = self._rates
                slip, fee_scalar, fee_rate, sched = rates[2]  # type: ignore[index]
                share = self.max_volume_share
                if slip is not None:  # else a slippage model priced by its own code
                    if share is None:
                        if fee_scalar:
                            self._match_market(t, n, slip, fee_rate)
                            return
                    elif (fee_scalar or sched is not None) and self._volume_known \
                            and self._part_t != t and (self._cap_memo is None
                                                       or self._cap_memo[0] != t) \
                            and self._match_market_whole(t, n, slip, fee_scalar, fee_rate,
                                                         sched, share):
                        return  # (a bar matched again is decided as the first time: memo)
            self._match_small(t)
            return
        if book.max_first <= t:  # the common case: every order may trade
            elig = np.arange(n)
        else:
            elig = np.flatnonzero(book.first_bar[:n] <= t)
            if len(elig) == 0:
                return
        s = book.sym[elig]
        o = self._open_px[t, s]
        v = self._volume[t, s]
        # NaN volume or close (no bar) compares False
        tradable = v > 0 if self._volume_known else ~np.isnan(self._close[t, s])
        if self._gate is not None and not self._all_regular[t]:
            tradable &= self._in_hours(t, elig, s)
        otype = book.otype[elig]
        market = otype == 0
        newly: np.ndarray | None = None
        if market.all():  # the common case: one comparison decides
            fill = tradable
            ref = o
            lim = None
        else:
            fill, ref, lim, newly = self._match_priced(t, elig, s, o, tradable, otype, market)
            if self._groups.live and fill.any():
                fill = one_leg_per_group(
                    self._groups.live, book.ids, elig, fill, otype, book.sign[elig] > 0, o,
                    book.limit[elig], book.stop[elig], self.both_legs)
        if not fill.any():
            if newly is not None:
                self._book_bar(t, [], [], [], [], newly.tolist())
            return
        fi = np.flatnonzero(fill)
        slot = elig[fi]
        qty = book.qty[slot]
        whole: np.ndarray | None = None
        if self.max_volume_share is not None:
            fi, slot, qty, whole, newly = self._capped(t, fi, slot, qty, s, v, otype, newly)
            if len(fi) == 0:
                if newly is not None:
                    self._book_bar(t, [], [], [], [], newly.tolist())
                return
        sf = s[fi]
        price = self._slipped(t, slot, sf, qty, ref[fi], None if lim is None else lim[fi],
                              o[fi], v[fi])
        sgn = book.sign[slot]
        if self.clip_to_bar:
            price = np.clip(price, self._low[t, sf], self._high[t, sf])
        if whole is None:  # dated schedules (fees_at) price at the bar's date
            fee = fees_at(self.fees, sgn, qty, price, self._ts[t])
        else:
            states = [self._orders[book.ids[i]] for i in slot.tolist()]
            fee = order_fees_at(self.fees, sgn, qty, price,
                                np.array([st.filled_qty for st in states]),
                                np.array([st.filled_notional for st in states]), self._ts[t])
        self._book_bar(t, slot.tolist(), qty.tolist(), price.tolist(), fee.tolist(),
                       None if newly is None else newly.tolist(),
                       None if whole is None else whole.tolist())

    def _slipped(self, t: int, slot: np.ndarray, sf: np.ndarray, qty: np.ndarray,
                 refp: np.ndarray, lf: np.ndarray | None, o: np.ndarray,
                 v: np.ndarray) -> np.ndarray:
        """Fill prices of the orders in ``slot`` (columns ``sf``) at reference ``refp``:
        slipped against the trader, then capped at each limit ``lf`` (NaN: none)."""
        sgn = self._book.sign[slot]
        ctx = BarContext(open=o, high=self._high[t, sf], low=self._low[t, sf],
                         close=self._close[t, sf], volume=v)
        price: np.ndarray = refp * (1.0 + sgn * self.slippage.rate(sgn, qty, refp, ctx))
        if lf is not None:
            limited = ~np.isnan(lf)
            if limited.any():
                capped = np.where(sgn > 0, np.minimum(price, lf), np.maximum(price, lf))
                price = np.where(limited, capped, price)
        return price

    def _match_small(self, t: int) -> None:
        """:meth:`_match` for a small book of plain orders (market, limit, stop,
        stop-limit; no groups or out-of-hours bar), deciding order by order in Python
        floats: numpy's per-call cost dominates a handful of orders.

        Every decision is the one :meth:`_match_priced` and :meth:`_capped` make
        element-wise (the same comparisons, NaN comparing False, ``np.maximum``/
        ``np.minimum`` propagating NaN); the built-in fixed-rate slippage and fee models
        are repeated in Python floats, schedule fees priced by :func:`fill_fees`, any
        other model by the same array code, so both paths give bit-identical fills.
        """
        book = self._book
        n = book.n
        syms, signs = book.syms, book.signs
        # memoryview slices to lists: no numpy slice or scalar (the codes are >= 0, so
        # "none set" is "all market"; any() where max() would parse arguments); a plain
        # book holds market orders only
        plain = book.plain
        otypes: list[int] = []
        if not plain:
            otypes = book.otype_mv[:n].tolist()
            plain = not any(otypes)
        firsts = book.first_mv[:n].tolist() if book.max_first > t else None
        known = self._volume_known
        slots: list[int] = []
        refs: list[float] = []
        newly: list[int] = []
        if plain:  # market orders only (the common case): tradable is all that decides
            flat = self._flat  # the panel as flat memoryviews: no row view, no numpy scalar
            if flat is None:
                opens, vols, base = self._open_px[t].data, (
                    self._volume[t] if known else self._close[t]).data, 0
            else:
                opens, vols = flat
                base = t * self._n_cols
            for i in range(n) if firsts is None else [
                    i for i in range(n) if firsts[i] <= t]:
                c = base + syms[i]
                v = vols[c]
                # NaN volume (no bar) compares False; without volumes, a close is a bar
                if v > 0 if known else v == v:
                    slots.append(i)
                    refs.append(opens[c])
        else:
            self._decide_small(t, n, syms, otypes, firsts, signs, slots, refs, newly)
        triggered = newly or None
        if not slots:
            if triggered is not None:
                self._book_bar(t, [], [], [], [], triggered)
            return
        k = len(slots)  # ascending slots: all n of them when k == n
        qty_mv = book.qty_mv
        qtys: list[float] = qty_mv[:k].tolist() if k == n else [  # type: ignore[assignment]
            qty_mv[i] for i in slots]
        whole: list[bool] | None = None
        if self.max_volume_share is not None:
            slots, refs, qtys, whole, triggered = self._capped_small(
                t, slots, refs, qtys, triggered, self.max_volume_share)
            if not slots:
                if triggered is not None:
                    self._book_bar(t, [], [], [], [], triggered)
                return
        slip, fee_scalar, fee_rate, sched = self._scalar_rates()
        fees: list[float] | None = None
        if slip is not None and not self.clip_to_bar:
            # The built-in fixed-rate slippage in Python floats: the operations of
            # FixedBps.rate / NoSlippage.rate and _slipped in the same order; likewise
            # BpsOfNotional.fees / NoFee.fees (which are also their order_fees).
            prices: list[float] = []
            limits = None if plain else book.limit_mv[:n].tolist()
            # zip without strict=: its keyword costs more than a one-fill loop (the
            # lists are built together, one entry per fill)
            for i, q, ref in zip(slots, qtys, refs):  # noqa: B905
                sgn = signs[i]
                px = ref * (1.0 + sgn * (slip if q > 0 else 0.0))
                if limits is not None:
                    lim = limits[i]
                    if lim == lim:  # a limit caps the slipped price
                        px = _minimum(px, lim) if sgn > 0 else _maximum(px, lim)
                prices.append(px)
            if fee_scalar:
                fees = [0.0] * len(prices) if fee_rate is None else [
                    fee_rate * abs(q) * px for q, px in zip(qtys, prices)]  # noqa: B905
        else:
            slot = np.array(slots, np.int64)
            sf = book.sym[slot]
            price = self._slipped(t, slot, sf, np.array(qtys, np.float64),
                                  np.array(refs, np.float64),
                                  None if plain else book.limit[slot], self._open_px[t, sf],
                                  self._volume[t, sf])
            if self.clip_to_bar:
                price = np.clip(price, self._low[t, sf], self._high[t, sf])
            prices = price.tolist()
        if fees is None:
            fees = self._small_fees(t, slots, qtys, prices, self.max_volume_share is not None,
                                    sched)
        self._book_bar(t, slots, qtys, prices, fees, triggered, whole)

    def _scalar_rates(self) -> ScalarRates:
        """:func:`_scalar_rates` of the broker's models (kept while they stay the same)."""
        rates = self._rates
        if rates is None or rates[0] is not self.slippage or rates[1] is not self.fees:
            rates = self._rates = (self.slippage, self.fees,
                                   _scalar_rates(self.slippage, self.fees))
        return rates[2]

    def _match_market(self, t: int, n: int, slip: float, fee_rate: float | None) -> None:
        """:meth:`_match_small` of a book of market orders only, every one eligible, under
        the built-in fixed-rate models with no cap or clip: deciding, pricing and
        charging each order in one loop, with the same operations as there."""
        book = self._book
        syms, signs, qty_mv = book.syms, book.signs, book.qty_mv
        opens, vols = self._flat  # type: ignore[misc]  # (not None: the caller checked)
        base = t * self._n_cols
        known = self._volume_known
        slots: list[int] = []
        qtys: list[float] = []
        prices: list[float] = []
        fees: list[float] = []
        for i in range(n):
            c = base + syms[i]
            v = vols[c]
            # NaN volume (no bar) compares False; without volumes, a close is a bar
            if v > 0 if known else v == v:
                q = qty_mv[i]
                px = opens[c] * (1.0 + signs[i] * (slip if q > 0 else 0.0))
                slots.append(i)
                qtys.append(q)
                prices.append(px)
                fees.append(0.0 if fee_rate is None else fee_rate * abs(q) * px)
        if slots:
            self._book_bar(t, slots, qtys, prices, fees, None)

    def _match_market_whole(self, t: int, n: int, slip: float, fee_scalar: bool,
                            fee_rate: float | None, sched: ScheduleFee | None,
                            share: float) -> bool:
        """:meth:`_match_small` of a book of market orders only, every one eligible, under
        the built-in fixed-rate slippage, a volume cap ``share`` and a fee model priced
        in floats, when every order fills whole (alone on its symbol, within the cap:
        :func:`fits_whole`, as :meth:`_capped_small` finds first): the same fills, fees
        and memo in one loop. False, with nothing done, when an order does not fit whole
        (then :meth:`_match_small` decides)."""
        book = self._book
        syms, signs, qty_mv = book.syms, book.signs, book.qty_mv
        opens, vols = self._flat  # type: ignore[misc]  # (not None: the caller checked)
        base = t * self._n_cols
        slots: list[int] = []
        qtys: list[float] = []
        prices: list[float] = []
        sides: list[float] = []
        seen: set[int] = set()
        for i in range(n):
            col = syms[i]
            c = base + col
            v = vols[c]
            if v > 0:  # NaN volume (no bar) compares False
                q = qty_mv[i]
                # fits_whole: alone on its symbol, 0 < q <= share x volume
                if col in seen or not (q <= share * v and q > 0.0):
                    return False
                seen.add(col)
                sg = signs[i]
                slots.append(i)
                qtys.append(q)
                sides.append(sg)
                prices.append(opens[c] * (1.0 + sg * slip))
        if not slots:
            return True
        self._cap_memo = (t, book.ids, syms, slots, qtys, slots, qtys, None)
        if fee_scalar:
            fees = [0.0] * len(prices) if fee_rate is None else [
                fee_rate * abs(q) * px for q, px in zip(qtys, prices)]  # noqa: B905
        else:
            fees = self._small_fees(t, slots, qtys, prices, True, sched, sides)
        self._book_bar(t, slots, qtys, prices, fees, None, None)
        return True

    def _small_fees(self, t: int, slots: list[int], qtys: list[float], prices: list[float],
                    capped: bool, sched: ScheduleFee | None,
                    sides: list[float] | None = None) -> list[float]:
        """:meth:`_match_small`'s fees by :func:`fill_fees` (a dated schedule prices at the
        bar's date; under a volume cap, ``capped``, each order's earlier parts count).

        A schedule ``sched`` (what :func:`_scalar_rates` found ``fill_fees`` prices from
        lists) goes straight to :func:`scalar_fees`, the call ``fill_fees`` would make,
        without the earlier parts when there are none (it prices all-zero parts as none).
        """
        book = self._book
        if sides is None:  # the fills' signs (the caller may have them already)
            signs = book.signs
            sides = [signs[i] for i in slots]
        direct = sched is not None and len(qtys) <= sched._scalar_max
        done: list[float] | None = None
        paid: list[float] | None = None
        if capped:
            orders, ids = self._orders, book.ids
            done = [orders[ids[i]].filled_qty for i in slots]
            if direct and not any(done):
                done = None
            else:
                paid = [orders[ids[i]].filled_notional for i in slots]
        if direct:
            assert sched is not None
            return scalar_fees(sched._row_cache.rates(self._ts.item(t)), sides, qtys, prices,
                               done, paid)
        return fill_fees(self.fees, sides, qtys, prices, done, paid, self._ts[t])

    def _capped_small(self, t: int, slots: list[int], refs: list[float], qtys: list[float],
                      triggered: list[int] | None, share: float
                      ) -> tuple[list[int], list[float], list[float], list[bool] | None,
                                 list[int] | None]:
        """:meth:`_capped` on :meth:`_match_small`'s lists: the same fills, parts and
        triggers in the same order (returns the slots, reference prices, quantities,
        whether each fill completes its order, ``None`` when all do, and the triggered
        slots)."""
        book = self._book
        # part-filled by an earlier attempt at this bar (only if a part was booked on it)
        if self._part_t == t and t in book.part_bar[:book.n].tolist():
            part_bar = book.part_bar
            fresh = [j for j, i in enumerate(slots) if part_bar.item(i) != t]
            slots = [slots[j] for j in fresh]
            refs = [refs[j] for j in fresh]
            qtys = [qtys[j] for j in fresh]
        syms = book.syms
        vols = self._volume[t]
        sym = [syms[i] for i in slots]
        vol = [vols.item(c) for c in sym]
        memo = self._cap_memo
        if memo is not None and memo[0] == t:  # matched again: decided as the first time
            q, whole, out = recalled(memo, book.ids, slots, qtys, sym, vol, share,
                                     self._is_fok)
            if any(out):
                slots = [i for i, o in zip(slots, out, strict=True) if not o]
                refs = [r for r, o in zip(refs, out, strict=True) if not o]
                q = [x for x, o in zip(q, out, strict=True) if not o]
                whole = [w for w, o in zip(whole, out, strict=True) if not o]
        elif fits_whole(sym, qtys, vol, share):  # the common case: capped_lists' answer
            self._cap_memo = (t, book.ids, syms, slots, qtys, slots, qtys, None)
            return slots, refs, qtys, None, triggered
        else:
            cand = (slots, qtys)
            q, whole = capped_lists(sym, qtys, vol, share)
            while not all(whole):  # a fok that cannot fill whole leaves the volume
                fok = [not w and self._is_fok(i) for i, w in zip(slots, whole, strict=True)]
                if not any(fok):
                    break
                slots = [i for i, f in zip(slots, fok, strict=True) if not f]
                refs = [r for r, f in zip(refs, fok, strict=True) if not f]
                qtys = [x for x, f in zip(qtys, fok, strict=True) if not f]
                sym = [syms[i] for i in slots]
                q, whole = capped_lists(sym, qtys, [vols.item(c) for c in sym], share)
            self._cap_memo = (t, book.ids, syms, *cand, slots, q, whole)
        if all(whole) and (not q or min(q) > 0):  # the common case: every fill whole
            return slots, refs, q, None, triggered
        keep = [x > 0 for x in q]
        for i, w in zip(slots, whole, strict=True):
            ot = book.otype.item(i)
            if not w and ot >= 2 and ot != AT_OPEN and ot != AT_CLOSE and \
                    book.trig_bar.item(i) > t:
                triggered = [i] if triggered is None else [*triggered, i]
        return ([i for i, k in zip(slots, keep, strict=True) if k],
                [r for r, k in zip(refs, keep, strict=True) if k],
                [x for x, k in zip(q, keep, strict=True) if k],
                [w for w, k in zip(whole, keep, strict=True) if k], triggered)

    def _decide_small(self, t: int, n: int, syms: list[int], otypes: list[int],
                      firsts: list[int] | None, signs: list[float], slots: list[int],
                      refs: list[float], newly: list[int]) -> None:
        """:meth:`_match_small`'s decisions for a book with priced orders (limit, stop,
        stop-limit): appends the filling slots with their reference prices to ``slots``
        and ``refs`` and the stop-limits triggered now without filling to ``newly``."""
        book = self._book
        limits = book.limit_mv[:n].tolist()
        stops = book.stop_mv[:n].tolist()
        trigs = book.trig_mv[:n].tolist()
        opens, vols = self._open_px[t], self._volume[t]
        closes, highs, lows = self._close[t], self._high[t], self._low[t]
        known = self._volume_known
        for i in range(n):
            if firsts is not None and firsts[i] > t:
                continue
            c = syms[i]
            o = opens.item(c)
            if known:
                tradable = vols.item(c) > 0  # NaN volume (no bar) compares False
            else:
                close = closes.item(c)
                tradable = close == close
            ot = otypes[i]
            if ot == 0:
                if tradable:
                    slots.append(i)
                    refs.append(o)
                continue
            buy = signs[i] > 0
            h, lo = highs.item(c), lows.item(c)
            lim, stp = limits[i], stops[i]
            was_triggered = trigs[i] < t
            trig_now = ot >= 2 and not was_triggered and tradable and (
                h >= stp if buy else lo <= stp)
            gapped = o >= stp if buy else o <= stp
            if ot == 2:
                if trig_now:
                    slots.append(i)
                    refs.append(_maximum(o, stp) if buy else _minimum(o, stp))
                continue
            if (ot == 1 or (was_triggered or (trig_now and gapped))) and tradable and (
                    lo <= lim if buy else h >= lim):
                slots.append(i)
                refs.append(_minimum(o, lim) if buy else _maximum(o, lim))
            elif ot == 3 and trig_now and not gapped and (stp <= lim if buy else stp >= lim):
                slots.append(i)
                refs.append(stp)
            elif ot == 3 and trig_now:
                newly.append(i)

    _cap_memo: CapMemo | None = None
    """The latest bar's decision under the cap, for matching that bar again after a
    failed trade-log write (:func:`~simbroker._paper_volume.recalled`)."""

    def _is_fok(self, slot: int) -> bool:
        return self._orders[self._book.ids[slot]].order.tif is TimeInForce.FOK

    def _capped(
        self, t: int, fi: np.ndarray, slot: np.ndarray, qty: np.ndarray, s: np.ndarray,
        v: np.ndarray, otype: np.ndarray, newly: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """The bar's fills under ``max_volume_share`` (see :mod:`simbroker._paper_volume`).

        An order already partly filled on bar ``t`` (an earlier attempt at this bar whose
        write failed) does not fill on it again; a fok order the cap would split does not
        fill at all; a stop-like order that triggered but is left with a remainder
        becomes triggered (a stop or trailing stop rests as a market order, a stop-limit
        as its limit) from the next bar, recorded as ``newly`` triggered.
        """
        book = self._book
        fresh = book.part_bar[slot] != t
        if not fresh.all():
            fi, slot, qty = fi[fresh], slot[fresh], qty[fresh]
        share = self.max_volume_share or 1.0
        memo = self._cap_memo
        if memo is not None and memo[0] == t:  # matched again: decided as the first time
            q_l, w_l, out_l = recalled(memo, book.ids, slot.tolist(), qty.tolist(),
                                       s[fi].tolist(), v[fi].tolist(), share, self._is_fok)
            q, whole = np.array(q_l, np.float64), np.array(w_l, np.bool_)
            if any(out_l):
                kept = ~np.array(out_l, np.bool_)
                fi, slot, q, whole = fi[kept], slot[kept], q[kept], whole[kept]
        else:
            cand = (slot, qty)
            q, whole = capped_quantities(s[fi], qty, v[fi], share)
            while not whole.all():  # a fok that cannot fill whole leaves the volume
                fok = np.array([not w and self._is_fok(i)
                                for i, w in zip(slot.tolist(), whole.tolist(), strict=True)])
                if not fok.any():
                    break
                fi, slot, qty = fi[~fok], slot[~fok], qty[~fok]
                q, whole = capped_quantities(s[fi], qty, v[fi], share)
            self._cap_memo = (t, book.ids, book.syms, *cand, slot, q, whole)
        keep = q > 0
        if whole.all() and keep.all():  # the common case: every fill whole
            return fi, slot, q, whole, newly
        for k in np.flatnonzero(~whole).tolist():
            if otype[fi[k]] >= 2 and otype[fi[k]] != AT_OPEN and \
                    otype[fi[k]] != AT_CLOSE and book.trig_bar[slot[k]] > t:
                newly = slot[k:k + 1] if newly is None else np.append(newly, slot[k])
        return fi[keep], slot[keep], q[keep], whole[keep], newly

    def _match_priced(
        self, t: int, elig: np.ndarray, s: np.ndarray, o: np.ndarray, tradable: np.ndarray,
        otype: np.ndarray, market: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Fill mask, reference prices, limits and the slots of stop-limits triggered now.

        Nothing is changed here: a trigger is booked with the bar's fills, after its
        record. "Triggered" means triggered on an earlier bar, so matching a bar again
        (after a failed write, or a resume) decides exactly as the first time.
        """
        book = self._book
        h = self._high[t, s]
        lo = self._low[t, s]
        buy = book.sign[elig] > 0
        lim = book.limit[elig]
        stp = book.stop[elig]
        was_triggered = book.trig_bar[elig] < t

        stop_like = ((otype == 2) | (otype == 3)) if self._special else otype >= 2
        trig_now = stop_like & ~was_triggered & tradable & np.where(buy, h >= stp, lo <= stp)
        gapped = np.where(buy, o >= stp, o <= stp)
        ref = np.where(market, o, np.nan)
        stop_fill = (otype == 2) & trig_now
        ref = np.where(stop_fill, np.where(buy, np.maximum(o, stp), np.minimum(o, stp)), ref)
        limit_live = (otype == 1) | ((otype == 3) & (was_triggered | (trig_now & gapped)))
        limit_hit = limit_live & tradable & np.where(buy, lo <= lim, h >= lim)
        ref = np.where(limit_hit, np.where(buy, np.minimum(o, lim), np.maximum(o, lim)), ref)
        # Stop-limit hit inside the bar: marketable at the stop when the stop is within
        # the limit; otherwise it must wait (the path after the trigger is unknown).
        sl_inside = (otype == 3) & trig_now & ~gapped & np.where(buy, stp <= lim, stp >= lim)
        ref = np.where(sl_inside, stp, ref)
        fill = (market & tradable) | stop_fill | limit_hit | sl_inside
        if self._special:  # a trailing stop or an auction order was ever booked
            special = otype >= TRAIL_AMOUNT
            if special.any():
                fill, ref = self._match_special(t, elig, s, o, h, lo, tradable, otype, buy,
                                                lim, special, fill, ref)
        # Stop-limits that triggered without filling rest as limits from the next bar.
        newly = trig_now & (otype == 3) & ~fill
        return fill, ref, lim, elig[newly] if newly.any() else None

    def _match_special(
        self, t: int, elig: np.ndarray, s: np.ndarray, o: np.ndarray, h: np.ndarray,
        lo: np.ndarray, tradable: np.ndarray, otype: np.ndarray, buy: np.ndarray,
        lim: np.ndarray, special: np.ndarray, fill: np.ndarray, ref: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``fill`` and ``ref`` with the trailing stops and auction orders matched in."""
        trailing = special & (otype <= TRAIL_PERCENT)
        if trailing.any():
            aux = self._book.aux[elig]
            level = trail_levels(buy, otype == TRAIL_PERCENT, aux[:, 0], aux[:, 1])
            hit, tref = trail_fill(buy, level, o, h, lo, tradable)
            fill = fill | (trailing & hit)
            ref = np.where(trailing, tref, ref)
        auction = special & (otype >= AT_OPEN)
        if auction.any():
            hit, aref = auction_fill(otype, buy, lim, o, self._close[t, s], tradable)
            fill = fill | (auction & hit)
            ref = np.where(auction, aref, ref)
        return fill, ref

    def _in_hours(self, t: int, elig: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Whether each eligible order may trade on bar ``t``: a regular-hours bar of its
        symbol's calendar, or for an extended-hours order any bar of a trading day."""
        assert self._gate is not None
        regular, in_day = self._gate
        g = self._sessions.columns[s]
        out: np.ndarray = np.where(self._book.ext[elig], in_day[t, g], regular[t, g])
        return out
