"""MarginAccount: Reg T initial and maintenance margin, pattern-day-trader buying power."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from simbroker.accounts._base import Account, market_values
from simbroker.accounts._liquidation import liquidation_orders
from simbroker.accounts._reserve import (
    Reservations,
    opening_orders,
    opening_qty,
    order_price,
    replaced_group,
    reserved,
    same_side_open,
    same_side_outside,
)
from simbroker.accounts._state import field_of, number_of
from simbroker.errors import PatternDayTrading
from simbroker.types import AccountInfo, Order, OrderType, Side

if TYPE_CHECKING:
    from simbroker.paper import PaperBroker

__all__ = ["MarginAccount"]

_BUY, _MARKET = Side.BUY, OrderType.MARKET  # an enum member read off its class is slow

_SHRINK = 1.0 - 1e-12
"""The margin :meth:`MarginAccount._take` leaves for roundings."""


def _zero_nan(marks: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(marks)`` (a copy), cheaply when every mark is finite."""
    out: np.ndarray = marks.copy() if np.isfinite(marks).all() else np.nan_to_num(marks)
    return out


class MarginAccount(Account):
    """A Reg T margin account, as US brokers keep it.

    - **Buying power (overnight).** ``excess = equity - initial margin of the positions -
      initial margin the open orders reserve``; an order may open notional up to
      ``excess / initial`` (2x excess equity at 50%). Longs and shorts need margin
      alike; an order's part that closes a position needs none (a sell of 150 against
      a long of 100 needs margin for 50). Refused with
      :class:`~simbroker.errors.InsufficientBuyingPower` (``rule="buying_power"``).
    - **Reversals at IBKR.** With ``PaperBroker(venue="ibkr")`` the order being checked
      is also credited with the margin its own closing part frees (the closing shares x
      the mark x the base requirement's rate): TWS weighs an order against the initial
      margin *after* it, and the closing part fills first. So a sell of 150 against a
      long of 100 needs the excess for 50 after the 100's margin is released. Other open
      orders' closing parts free nothing (they may never fill). By default
      (``venue=None``, the strictest venue) and with ``"alpaca"`` (whose closing orders
      "do not replenish your available buying power until they have executed") the
      order is weighed against today's requirement, the 100 included.
    - **Pattern day traders.** When the account is flagged (``pattern_day_trader=True``
      or four day trades seen in five trading days) and its equity is at least
      ``pdt_equity``, an order whose first bar is in the same trading day as the latest
      closed bar uses intraday buying power: ``(equity - maintenance margin of the
      positions - reserved) / day_trade_rate`` (4x maintenance excess at 25%). Orders
      placed after the session's last bar use the overnight (2x) figure.
    - **PDT rule** (``pdt_check=True``): under ``pdt_equity`` an order that would close
      a position opened the same trading day, when three day trades are already counted
      in the last five trading days (or any such order once the account is flagged), is
      refused with :class:`~simbroker.errors.PatternDayTrading` naming the count.
    - **Maintenance.** At each bar close, marked to the close: when ``equity <
      maintenance margin`` a ``margin_call`` trade-log event records equity,
      requirement and deficit (once per breach). With ``liquidate=True`` the broker
      then sends market orders (``client_order_id`` ``"liquidate-<bar>-<symbol>"``)
      that trade on the next bar: the positions with the largest maintenance
      requirement first, whole, and the last one only by the whole shares needed to
      cover the deficit; while they are open no further call is made.
    - **Open orders in a call.** With ``cancel_on_call`` (default: the value of
      ``liquidate``, as IBKR and Alpaca cancel a liquidated account's orders that would
      add to the deficit) the call cancels every open order that would open or grow a
      position (its opening part, counted as buying power counts it, is above zero);
      orders that only close stay. The ``margin_call`` record lists them in
      ``canceled`` and is written before they are canceled.

    Parameters
    ----------
    initial, maintenance
        Default rates, fractions of position value (Reg T: 0.5 and 0.25).
    initial_by_symbol, maintenance_by_symbol
        Per-symbol overrides ``{symbol: rate}`` (e.g. 1.0 for a non-marginable stock).
    pattern_day_trader
        Start flagged as a pattern day trader.
    pdt_check
        Enforce the PDT rule (default True).
    pdt_equity
        The PDT equity threshold (25,000).
    day_trade_rate
        Intraday rate for flagged accounts (0.25: 4x).
    liquidate
        Liquidate on a margin call (default False: the event only).
    cancel_on_call
        Cancel the opening orders on a margin call; ``None`` (default) follows
        ``liquidate``.
    market_buffer
        See :class:`~simbroker.accounts.Account`.
    """

    account_type = "margin"

    lean_check = True
    """Tests set it False to decide every order with the exact figures (see _take)."""

    def __init__(self, *, initial: float = 0.5, maintenance: float = 0.25,
                 initial_by_symbol: Mapping[str, float] | None = None,
                 maintenance_by_symbol: Mapping[str, float] | None = None,
                 pattern_day_trader: bool = False, pdt_check: bool = True,
                 pdt_equity: float = 25_000.0, day_trade_rate: float = 0.25,
                 liquidate: bool = False, cancel_on_call: bool | None = None,
                 market_buffer: float = 0.0) -> None:
        super().__init__(market_buffer=market_buffer)
        for name, rate in (("initial", initial), ("maintenance", maintenance),
                           ("day_trade_rate", day_trade_rate),
                           *((f"initial_by_symbol[{k!r}]", v)
                             for k, v in (initial_by_symbol or {}).items()),
                           *((f"maintenance_by_symbol[{k!r}]", v)
                             for k, v in (maintenance_by_symbol or {}).items())):
            if not (isinstance(rate, (int, float)) and 0 < rate <= 1):
                raise ValueError(f"{name} must be a rate in (0, 1], got {rate!r}")
        if maintenance > initial:
            raise ValueError(f"maintenance ({maintenance}) must not exceed initial "
                             f"({initial})")
        self.initial = float(initial)
        self.maintenance = float(maintenance)
        self.initial_by_symbol = dict(initial_by_symbol or {})
        self.maintenance_by_symbol = dict(maintenance_by_symbol or {})
        self.pattern_day_trader = bool(pattern_day_trader)
        self.pdt_check = bool(pdt_check)
        self.pdt_equity = float(pdt_equity)
        self.day_trade_rate = float(day_trade_rate)
        self.liquidate = bool(liquidate)
        self.cancel_on_call = self.liquidate if cancel_on_call is None else bool(cancel_on_call)
        self._pdt_start = self.pattern_day_trader
        self.calls: list[dict[str, float]] = []  # every margin call: bar, equity, ...
        self._in_call = False
        self._liquidating = False

    def _attach(self, broker: PaperBroker) -> None:
        """Attach to ``broker``; per-symbol rates must name its symbols."""
        super()._attach(broker)
        syms = broker.bars.symbols
        for name, table in (("initial_by_symbol", self.initial_by_symbol),
                            ("maintenance_by_symbol", self.maintenance_by_symbol)):
            unknown = sorted(set(table) - set(syms))
            if unknown:
                raise ValueError(f"{name} names symbols not in the bars: {unknown}")
        self._im = np.array([self.initial_by_symbol.get(s, self.initial) for s in syms])
        self._mm = np.array([self.maintenance_by_symbol.get(s, self.maintenance)
                             for s in syms])
        self._dt = np.maximum(self._mm, self.day_trade_rate)
        self._im_mv = self._im.data.cast("B").cast("d")  # element reads, no numpy scalar
        close = broker._close
        # equity >= maintenance whenever cash >= 0 and no position is short, if no price
        # is negative or infinite and no maintenance rate is above one half: the bar
        # close's test needs no dot product then (see _no_call)
        self._bounded = bool(self._mm.max(initial=0.0) <= 0.5 and not np.isinf(close).any()
                             and not (close < 0).any())
        # each column's highest close (0 without any): no mark is above it (see _floor)
        top = np.fmax.reduce(close, axis=0) if self._bounded and len(close) else \
            np.full(len(syms), np.inf)
        self._top: list[float] = np.where(np.isnan(top), 0.0, top).tolist()
        self._parts: dict[int, float] = {}  # short column -> |position| x its top, rounded up
        self._short_bound = 0.0  # the sum of the parts, rounded up at each step
        self._rows = 0  # ledger rows taken into _parts
        self._start_positions(broker._pos)
        self._floor_rows, self._floor_cash, self._floor_at = -1, math.nan, -math.inf
        self._nd_t, self._nd_row = -(1 << 62), [0]  # _next_days' bar and row
        self._lean_ok = self._bounded and self.lean_check and \
            bool(self._im.max(initial=0.0) <= 0.5) and len(syms) <= 1 << 20
        self._key: tuple[int, int, float] | None = None
        self._m_t = -2
        self._m0 = np.zeros(len(syms))
        self._priced: list[np.ndarray | None] = [None, None]  # marks x initial, x maint.
        self._eq: float | None = None
        self._req: list[float | None] = [None, None]  # initial, maintenance margin
        self._gross: np.ndarray | None = None
        self._reservations = Reservations()
        self._bound: tuple[int, int, int, Order, float] | None = None  # see _held_bound

    # ------------------------------------------------------------- figures
    def requirements(self) -> tuple[float, float, float]:
        """Equity, initial and maintenance margin of the positions, at the marks.

        Cached until the bar, the fills or the cash change (nothing else moves them).
        """
        return self._equity(), self._initial(), self._maintenance()

    def _fresh(self) -> None:
        """Drop the cached figures when the bar, the fills or the cash changed."""
        b = self._b
        key = (b._t, len(b._fill_rows), b._cash)  # one ledger row per fill
        if key != self._key:
            if self._m_t != b._t:
                marks = self._marks.at(b._t)
                # no close missing: the marks hold no NaN, nan_to_num would copy them
                self._m0 = marks if self._marks.dense and b._t >= 0 else _zero_nan(marks)
                self._priced = [None, None]
                self._m_t = b._t
            self._eq = self._gross = None
            self._req = [None, None]
            self._key = key

    def _equity(self) -> float:
        self._fresh()
        eq = self._eq
        if eq is None:
            b = self._b
            eq = self._eq = b._cash + float(b._pos @ self._m0)
        return eq

    def _abs_pos(self) -> np.ndarray:
        gross = self._gross
        if gross is None:
            gross = self._gross = np.abs(self._b._pos)
        return gross

    def _initial(self) -> float:
        """Initial margin of the positions (call :meth:`_fresh` first)."""
        return self._requirement(0, self._im)

    def _maintenance(self) -> float:
        """Maintenance margin of the positions (call :meth:`_fresh` first)."""
        return self._requirement(1, self._mm)

    def _requirement(self, k: int, rates: np.ndarray) -> float:
        """``|positions| @ (marks x rates)``, kept as figure ``k`` (0 initial, 1
        maintenance) until :meth:`_fresh` drops it: each on demand, as a bar close needs
        no initial margin."""
        req = self._req[k]
        if req is None:
            priced = self._priced[k]
            if priced is None:
                priced = self._priced[k] = self._m0 * rates
            req = self._req[k] = float(self._abs_pos() @ priced)
        return req

    def _start_positions(self, pos: np.ndarray) -> None:
        """Take the positions the broker starts with into :meth:`_track`'s figures."""
        b = self._b
        ledger = len(b._ledger_pos)
        for col in np.flatnonzero(pos < 0).tolist():  # the ledger has no row for them
            part = self._parts[col] = math.nextafter(-float(pos[col]) * self._top[col],
                                                     math.inf)
            self._short_bound = math.nextafter(self._short_bound + part, math.inf)
        self._rows = ledger

    def _no_call(self) -> bool:
        """Whether ``equity >= maintenance`` holds for sure, without computing them,
        with no position short (:meth:`_floor` covers shorts too).

        With cash >= 0, no position < 0 and every mark >= 0 (NaN counting 0), equity
        is cash plus the long value ``V`` and maintenance at most ``V / 2``; each dot
        product is off by a relative ``n * 2**-53`` at most, far inside that factor. So
        ``mm > 0 and equity < mm`` (a margin call) is False, as the exact test finds.
        """
        b = self._b
        if not self._bounded or b._cash < 0:
            return False
        self._track()
        return not self._parts  # its keys are the short columns

    def _track(self) -> None:
        """Bring the short columns and the bound of their value (:meth:`_floor`) up to
        the ledger: each change of a position is a ledger row."""
        b = self._b
        positions = b._ledger_pos
        n = len(positions)
        if self._rows < n:
            syms, parts, top = b._ledger_sym, self._parts, self._top
            bound, up, inf = self._short_bound, math.nextafter, math.inf
            rows = self._rows
            for col, p in zip(syms[rows:n], positions[rows:n]):  # noqa: B905
                if p < 0:
                    part = up(-p * top[col], inf)
                    old = parts.get(col)
                    if old == part:
                        continue  # unchanged (a financing row): the bound holds
                    parts[col] = part
                    if old is not None:
                        bound = up(bound - old, inf)
                    bound = up(bound + part, inf)
                else:
                    old = parts.pop(col, None)
                    if old is not None:
                        bound = up(bound - old, inf)
            self._short_bound = bound if parts else 0.0
            self._rows = n

    def _floor(self) -> float:
        """A lower bound of both ``equity - initial margin`` and ``equity - maintenance
        margin`` as :meth:`_equity`, :meth:`_initial` and :meth:`_maintenance` compute
        them (with initial rates <= 1/2: ``_lean_ok``), or ``-inf``.

        With cash >= 0, every mark >= 0 (NaN counting 0) and every rate <= 1/2, each
        long adds at least half its value ``L`` and each short takes at most 1.5 times
        its value ``S``: the difference is at least ``cash - 1.5 S``, and each dot
        product is off by a relative ``n * 2**-53`` of ``L + S`` at most, inside the
        half of ``L`` and the margin left on ``S`` and the cash. ``S`` is at most the
        kept sum of ``|position| x the column's highest close`` (rounded up at each
        step, so never below it), which moves only with the positions.
        """
        b = self._b
        cash = b._cash
        if not self._bounded or cash < 0:
            return -math.inf
        # the bound moves only with the ledger (_track) and the cash: kept between them
        rows = len(b._ledger_pos)
        if rows == self._floor_rows and cash == self._floor_cash:
            return self._floor_at
        self._track()
        floor = self._floor_at = cash * _SHRINK - self._short_bound * 1.5000001
        self._floor_rows, self._floor_cash = rows, cash
        return floor

    def _next_days(self) -> list[int]:
        """:meth:`next_day` of each calendar (index by ``_cals[col]``), kept for the bar."""
        t = self._b._t
        if t != self._nd_t:
            self._nd_row = self._daynum[min(max(t + 1, 0), self._n_days - 1)].tolist()
            self._nd_t = t
        return self._nd_row

    def _intraday(self, equity: float) -> bool:
        if not self.pattern_day_trader:
            return False
        b = self._b
        if equity < self.pdt_equity or b._t < 0:
            return False
        if b._t + 1 >= len(b._ts):
            return False
        return bool((self._daynum[b._t] == self._daynum[b._t + 1]).all())

    def _excess(self, skip: int = -1, group: str | None = None
                ) -> tuple[float, np.ndarray, float, int]:
        """Margin excess for new orders, the rates it is spent at, the base rate and the
        base requirement's figure (0 initial, 1 maintenance: intraday), with book slot
        ``skip`` (an order being replaced) and the live legs of its group ``group`` left
        out."""
        equity, im, mm = self.requirements()
        if self._intraday(equity):
            rates, base, rate, k = self._dt, mm, max(self.day_trade_rate,
                                                     self.maintenance), 1
        else:
            rates, base, rate, k = self._im, im, self.initial, 0
        b = self._b
        marks = self._marks.at(b._t)
        if skip >= 0:
            held = reserved(b, marks, rates, self.market_buffer, skip, group)
        else:
            held = self._reservations.held(b, marks, rates, self.market_buffer)
        return equity - base - held, rates, rate, k

    def check(self, order: Order, col: int) -> None:
        """Refuse ``order`` under the PDT rule or beyond buying power (see the class)."""
        if self._liquidating:
            return
        b = self._b
        buy = order.side is _BUY
        pos = b._pos_mv[col]
        if (pos < 0 if buy else pos > 0) and self.pdt_check \
                and self.day_trades.opened_cells[col] == (
                    self._nd_row if b._t == self._nd_t else self._next_days())[self._cals[col]]:
            self._check(order, col, None)  # closes a position opened that day: PDT rule
            return
        # what _check does for an order that opens or adds, with no order replaced:
        # opening_qty and Account.price, inline (the same operations)
        book = b._book
        empty = book.n == 0
        same = 0.0 if empty or col not in book.syms else \
            same_side_open(book, col, 1.0 if buy else -1.0)
        # max(0.0, x) as conditionals (the same values, NaN and -0.0 included)
        start = -(pos + same) if buy else pos - same
        closing = start if start > 0.0 else 0.0
        opening = order.qty - closing
        if not opening > 0.0:
            return
        t = b._t
        kept = self._marks
        marks = kept.price if kept.t == t else kept.at(t)  # Marks.at's first test
        own = mark = marks.item(col)
        if not math.isfinite(mark):
            mark = b._last_price(col)
        if order.order_type is _MARKET and order.limit_price is None \
                and order.stop_price is None:  # order_price's market shortcut
            if not math.isfinite(mark):
                return  # no price ever: the order can never fill
            px = float(mark * (1.0 + self.market_buffer)) if buy else float(mark)
        else:
            px = order_price(order, mark, self.market_buffer)
            if not math.isfinite(px):
                return
        required = opening * px
        k = 0  # the base requirement's figure: 0 initial, 1 maintenance (intraday)
        if not self.pattern_day_trader:
            rates = self._im
            rate = self._im_mv[col]
            if self._lean_ok:
                bound = 0.0 if empty else self._held_bound(b)
                if bound == bound and self._take(b, order, bound, own, px, rate, required):
                    return  # fits for sure with held <= bound: accepted
            held = 0.0 if empty else self._reservations.held(b, marks, rates,
                                                             self.market_buffer)
            if self._lean_ok and self._take(b, order, held, own, px, rate, required):
                return  # fits for sure (without the credit, which only adds): accepted
            equity, base = self._equity(), self._initial()
        else:
            equity = self._equity()
            if self._intraday(equity):
                rates, base, k = self._dt, self._maintenance(), 1
            else:
                rates, base = self._im, self._initial()
            held = self._reservations.held(b, marks, rates, self.market_buffer)
            rate = rates.item(col)
        excess = equity - base - held
        if closing > 0 and b.venue == "ibkr":
            excess += self._credit(k, col, closing)
        available = (excess if excess > 0.0 else 0.0) / rate
        if required > available * (1 + 1e-12) + 1e-9:
            what = "buying" if buy else "shorting"
            raise self.refuse(order, required, available, "buying_power",
                              f"margin account, {what} {opening:g} at {px:g} needs "
                              f"{rate:.0%} margin")

    def _held_bound(self, b: PaperBroker) -> float:
        """An upper bound of what the open orders reserve at the initial rates
        (``Reservations.held``), kept by :meth:`_take`, or NaN when none is known.

        It holds while the book is the one it was taken over: the same bar and fills
        (positions and marks move only then), no live group, no replace since (which
        :meth:`check_replace` drops it for), and the same orders, which the book's size
        and its last order (the one accepted last, the same object) prove: a cancel
        makes the book smaller, an order placed since is last.
        """
        kept = self._bound
        if kept is None:
            return math.nan
        t, fills, n, last, bound = kept
        book = b._book
        if t != b._t or n != book.n or fills != len(b._fill_rows) or b._groups.live \
                or b._orders[book.ids[n - 1]].order is not last:
            return math.nan
        return bound

    def _credit(self, k: int, col: int, closing: float) -> float:
        """What the closing part (``closing`` shares) of the order being checked frees of
        the base requirement, figure ``k`` (0 initial, 1 maintenance): ``closing`` x the
        term the base prices column ``col`` at (its mark x the base's rate). Credited
        with ``venue="ibkr"`` only: TWS weighs an order against the initial margin after
        it (its what-if), and an order's closing part fills before its opening part.
        Call after the base figure was computed (its priced marks are kept)."""
        priced = self._priced[k]
        if priced is None:  # not reached after _initial/_maintenance; kept for safety
            priced = self._priced[k] = self._m0 * (self._im if k == 0 else self._mm)
        return closing * float(priced.item(col))

    def _take(self, b: PaperBroker, order: Order, held: float, mark: float, px: float,
              rate: float, required: float) -> bool:
        """Whether ``order`` (``required`` = its opening quantity x ``px``, at margin rate
        ``rate``) passes the exact test for sure, with open orders holding ``held`` at
        the initial rates (call only with ``_lean_ok``: initial rates <= 1/2); when it
        does, the bound :meth:`_held_bound` gives for the book with it is kept.

        **The test.** With ``F = _floor() >= 0`` the exact ``equity - initial`` is at
        least ``F``, and ``available >= (F - held) / rate`` up to a few roundings, which
        the factor ``_SHRINK`` (1 - 1e-12) twice covers: ``required * rate <= (F *
        _SHRINK - held) * _SHRINK`` passes. Near or past that bound (False) the exact
        figures decide.

        **The bound kept.** ``Reservations.held`` adds each order's ``opening x price x
        rate`` to a running sum in book order; ``order.qty x price x rate`` is at least
        that term (opening <= qty, every factor >= 0, rounding monotone), so the running
        bound, added to in the same order, stays at least the sum. Only when the price
        is the one the reservation takes (the order's own ``mark``, finite: not a
        fallback) and the reservations are kept (``Reservations.enabled``); otherwise
        nothing is kept.
        """
        floor = self._floor()
        if not (floor >= 0.0 and required * rate <= (floor * _SHRINK - held) * _SHRINK):
            return False
        if mark - mark == 0.0 and px >= 0.0 and Reservations.enabled \
                and not b._groups.live:  # mark - mark == 0.0: the mark is finite
            self._bound = (b._t, len(b._fill_rows), b._book.n + 1, order,
                           held + order.qty * px * rate)
        else:
            self._bound = None
        return True

    def check_replace(self, order_id: str, order: Order, col: int) -> None:
        """Refuse a replace whose order, whole, does not fit the buying power net of the
        old order's reservation; one that reserves no more than the old order passes
        (see :meth:`Account.check_replace`). The PDT rule applies to added quantity."""
        self._bound = None  # the replaced order may reserve more: see _held_bound
        self._check(order, col, order_id)

    def _check(self, order: Order, col: int, replacing: str | None) -> None:
        if self._liquidating:
            return
        b = self._b
        sign = 1.0 if order.side is Side.BUY else -1.0
        pos = float(b._pos.item(col))
        skip, old, old_left = -1, None, 0.0
        if replacing is not None:
            skip, old, old_left = self._replaced(replacing)
        if self.pdt_check and pos * sign < 0 and (old is None or order.qty > old_left) \
                and self.day_trades.would_day_trade(col, self.next_day(col), pos, sign):
            equity = self.equity()
            count = self.day_trades.count(self.next_day(col))
            if equity < self.pdt_equity and (count >= 3 or self.pattern_day_trader):
                raise PatternDayTrading(order.symbol, day_trades=count, equity=equity,
                                        min_equity=self.pdt_equity,
                                        client_order_id=order.client_order_id)
        group = replaced_group(b, replacing)  # a replaced leg is weighed without its siblings
        same = same_side_outside(b, col, sign, skip, group)
        opening = opening_qty(order.side, order.qty, pos, same)
        if opening <= 0:
            return
        px = self.price(order, col)
        if not math.isfinite(px):
            return  # no price ever: the order can never fill
        required = opening * px
        if old is not None:
            before = opening_qty(old.side, old_left, pos, same) * self.price(old, col)
            if required <= before:
                return  # reserves no more than the old order did
        excess, rates, _, k = self._excess(skip, group)
        if b.venue == "ibkr":  # the order's own closing part (opening_qty's closing)
            start = pos + same if sign > 0 else pos - same
            closing = max(0.0, -start) if sign > 0 else max(0.0, start)
            if closing > 0:
                excess += self._credit(k, col, closing)
        available = max(excess, 0.0) / float(rates[col])
        if required > available * (1 + 1e-12) + 1e-9:
            what = "shorting" if order.side is Side.SELL else "buying"
            raise self.refuse(order, required, available, "buying_power",
                              f"margin account, {what} {opening:g} at {px:g} needs "
                              f"{float(rates[col]):.0%} margin")

    def info(self) -> AccountInfo:
        """The account's figures (buying power at the default rate)."""
        b = self.broker
        equity, im, mm = self.requirements()
        excess, _, rate, _ = self._excess()
        lmv, smv = market_values(b._pos, self.marks())
        return AccountInfo(cash=b._cash, equity=equity, buying_power=max(excess, 0.0) / rate,
                           maintenance_margin=mm, initial_margin=im, long_market_value=lmv,
                           short_market_value=smv, settled_cash=None,
                           day_trades=self.day_trades.count(self.today()[0]),
                           pattern_day_trader=self.pattern_day_trader,
                           account_type="margin")

    # ----------------------------------------------------------- bar close
    def _after_bar(self, t: int) -> None:
        if not self.pattern_day_trader and self.day_trades.days \
                and self.day_trades.count(self.today()[0]) >= 4:
            self.pattern_day_trader = True
        if self._floor() >= 0.0:  # no call for sure (_no_call covers no short only)
            self._in_call = False
            return
        equity = self._equity()
        mm = self._maintenance()
        if not (mm > 0 and equity < mm):
            self._in_call = False
            return
        b = self.broker
        pending = any(s.order.client_order_id is not None and
                      s.order.client_order_id.startswith("liquidate-") and s.status.is_open
                      for s in b._orders.values()) if self.liquidate else False
        if pending or (self._in_call and not self.liquidate):
            return
        self._in_call = True
        call = {"bar": float(t), "equity": equity, "maintenance_margin": mm,
                "deficit": mm - equity}
        self.calls.append(call)
        cancel = opening_orders(b) if self.cancel_on_call else []
        fields: dict[str, Any] = {"equity": equity, "maintenance_margin": mm,
                                  "deficit": mm - equity, "liquidate": self.liquidate}
        if self.cancel_on_call:
            fields["canceled"] = cancel
        self._write("margin_call", **fields)
        for order_id in cancel:
            b.cancel_order(order_id)
        if not self.liquidate:
            return
        orders = liquidation_orders(b._pos, np.nan_to_num(self.marks()), self._mm,
                                    mm - equity)
        self._liquidating = True
        try:
            syms = b.bars.symbols
            for col, side, qty in orders:
                b.submit_order(syms[col], side, qty, "market",
                               client_order_id=f"liquidate-{t}-{syms[col]}")
        finally:
            self._liquidating = False

    # ------------------------------------------------------------ restarts
    def _spec(self) -> dict[str, Any]:
        return {"initial": self.initial, "maintenance": self.maintenance,
                "initial_by_symbol": dict(self.initial_by_symbol),
                "maintenance_by_symbol": dict(self.maintenance_by_symbol),
                "pattern_day_trader": self._pdt_start, "pdt_check": self.pdt_check,
                "pdt_equity": self.pdt_equity, "day_trade_rate": self.day_trade_rate,
                "liquidate": self.liquidate, "cancel_on_call": self.cancel_on_call,
                **super()._spec()}

    def snapshot(self) -> dict[str, Any]:
        """Day trades, the pattern-day-trader flag, whether a call is open, the calls."""
        out = super().snapshot()
        out["pattern_day_trader"] = self.pattern_day_trader
        out["in_call"] = self._in_call
        out["calls"] = [dict(c) for c in self.calls]
        return out

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        self._bound = None
        self.pattern_day_trader = field_of(state, "pattern_day_trader", bool,
                                           self.pattern_day_trader)
        self._in_call = field_of(state, "in_call", bool, False)
        calls = []
        for call in field_of(state, "calls", list, []):
            if not isinstance(call, dict):
                raise ValueError(f"account state: a margin call must be a mapping, got "
                                 f"{call!r:.60}")
            calls.append({str(k): number_of(v, f"margin call field {k!r}")
                          for k, v in call.items()})
        self.calls = calls

    def _params(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in (
            ("initial_by_symbol", self.initial_by_symbol),
            ("maintenance_by_symbol", self.maintenance_by_symbol)) if v)
        return (f"initial={self.initial!r}, maintenance={self.maintenance!r}{extra}, "
                f"pattern_day_trader={self.pattern_day_trader!r}, "
                f"pdt_check={self.pdt_check!r}, liquidate={self.liquidate!r}, "
                f"cancel_on_call={self.cancel_on_call!r}, "
                f"{super()._params()}")
