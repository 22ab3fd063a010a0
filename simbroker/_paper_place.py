"""Placing accepted orders into the paper broker's book: first bar, expiry, kind codes.

Also the session lookups that decide those bars, and writing a replaced order's new
fields into its slot.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from simbroker._paper_base import NEVER_BAR, PaperState
from simbroker._paper_kinds import AT_CLOSE, AT_OPEN, TRAIL_AMOUNT, TRAIL_PERCENT
from simbroker._paper_state import OrderState
from simbroker.types import Order, OrderClass, OrderStatus, OrderType, Side, TimeInForce

__all__ = ["Placing"]

# Enum members as globals: ``Enum.MEMBER`` costs a class attribute lookup per read.
_BUY = Side.BUY
_CLS = TimeInForce.CLS
_DAY = TimeInForce.DAY
_GTC = TimeInForce.GTC
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_OPG = TimeInForce.OPG
_STOP = OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_TRAILING_STOP = OrderType.TRAILING_STOP
_NAN = float("nan")


class Placing(PaperState):
    """Book accepted orders: their slots, first and last bars."""

    def _place_legs(self, state: OrderState, legs: list[Order], now: datetime, *,
                    held: bool) -> None:
        """Book a group's legs right after its key order (records already written)."""
        children = [self._place(leg, now, NEVER_BAR, held=held) for leg in legs]
        for child in children:
            child.parent_id = state.order_id
            child.group_class = state.order.order_class.value
        state.legs = [c.order_id for c in children]
        self._groups.link(state.order_id, state.legs,
                          oco=state.order.order_class is OrderClass.OCO, held=held)

    def _place(self, order: Order, now: datetime, trig_bar: int, *, first: int | None = None,
               held: bool = False, extreme: float | None = None,
               col: int | None = None) -> OrderState:
        """Book an accepted order (its record is already written).

        ``first`` is the first bar it may trade on (default: the next bar); a ``held``
        order is only listed (its parent's fill puts it in the book); ``extreme`` is a
        carried-over trailing stop's extreme; ``col`` its symbol's column when the caller
        has looked it up already.
        """
        n = self._n_orders = self._n_orders + 1
        order_id = f"{self._prefix}{n}"
        state = OrderState(order_id, order, now)
        self._orders[order_id] = state
        if order.client_order_id is not None:
            self._by_client_id[order.client_order_id] = order_id
        if held:
            state.status = OrderStatus.HELD
            return state
        self._book_order(state, self._t + 1 if first is None else first, trig_bar, extreme,
                         col)
        return state

    def _place_market(self, order: Order, now: datetime, col: int) -> OrderState:
        """:meth:`_place` of a simple market order in column ``col`` (day or gtc, no client
        order id): the same id, state and book slot, without the kind dispatch."""
        n = self._n_orders = self._n_orders + 1
        order_id = f"{self._prefix}{n}"
        state = OrderState(order_id, order, now)
        self._orders[order_id] = state
        first = self._t + 1
        if order.tif is _DAY and first < self._n_bars:
            close = self._day_close
            if close is not None:  # _day_window's two lookups, made at construction
                t = first if first < self._sessions_bars else self._sessions_bars
                expire = close[t * self._n_calendars + self._calendar_of[col]]
            else:
                first, expire = self._day_window(first, col, False)
        else:
            expire = NEVER_BAR
        book = self._book
        if book.plain and book.n < book.capacity:
            # OpenBook.add_market inline (its plain case, room left): a call less an order
            i = book.n
            sign = 1.0 if order.side is _BUY else -1.0
            book.ids.append(order_id)
            book.syms.append(col)
            book.signs.append(sign)
            book.sym_mv[i], book.sign_mv[i], book.qty_mv[i] = col, sign, order.qty
            book.first_mv[i], book.expire_mv[i] = first, expire
            if first > book.max_first:
                book.max_first = first
            book.n = i + 1
        else:
            book.add_market(order_id, col, 1.0 if order.side is _BUY else -1.0, order.qty,
                            first, expire)
        return state

    def _book_order(self, state: OrderState, first: int, trig_bar: int,
                    extreme: float | None, col: int | None = None) -> None:
        """Put an order into the book from bar ``first`` on, by its kind and tif."""
        order = state.order
        tif = order.tif
        kind = order.order_type  # compared by identity: hashing an Enum member is slow
        code = 0 if kind is _MARKET else 1 if kind is _LIMIT else \
            2 if kind is _STOP else 3 if kind is _STOP_LIMIT else 0
        if col is None:
            col = self.bars.symbol_index(order.symbol)
        if tif is _DAY:  # the common case first
            if first < self._n_bars:
                first, expire = self._day_window(first, col, order.extended_hours)
            else:
                expire = NEVER_BAR
        else:
            if tif is _OPG:
                first, code = self._session_open_bar(self._t + 1, col), AT_OPEN
            elif tif is _CLS and first < self._n_bars:
                first, code = self._session_close_bar(first, col), AT_CLOSE
            # opg, cls: their auction's bar; ioc, fok: the next bar only
            expire = NEVER_BAR if first >= self._n_bars or tif is _GTC else first
        trail = _NAN
        if kind is _TRAILING_STOP:
            code = TRAIL_AMOUNT if order.trail_amount is not None else TRAIL_PERCENT
            trail = order.trail_amount if order.trail_amount is not None else \
                float(order.trail_percent or 0.0)
            if extreme is None:
                extreme = self._last_price(col)
            state.trail_extreme = extreme
            self._trailing = True
        if code >= TRAIL_AMOUNT:
            self._special = True
        limit, stop = order.limit_price, order.stop_price
        self._book.add(
            state.order_id, col, 1.0 if order.side is _BUY else -1.0, order.qty, code,
            _NAN if limit is None else limit, _NAN if stop is None else stop, first, expire,
            trig_bar, trail, _NAN if extreme is None else extreme, order.extended_hours,
        )

    def _day_window(self, first: int, col: int, extended: bool) -> tuple[int, int]:
        """``Sessions.order_window`` of a ``day`` order placed now, cached while the clock
        stands still: it depends only on the time, ``first``, the column's calendar and
        ``extended``, so the orders of one bar share one lookup per calendar.

        Under the date rule (no session closes) the window is ``(first, close_bar(first))``
        whatever the time: the two lookups of ``Sessions.close_bar`` are made here, on
        Python ints (cheaper than the cache, which a new bar empties)."""
        date = self._date_windows
        if date is not None:
            nxt, last = date[1] if extended else date[0]
            g = self._calendar_of[col]
            t = first if first < self._sessions_bars else self._sessions_bars
            n_cal = self._n_calendars
            return first, last[nxt[t * n_cal + g] * n_cal + g]
        ns = self._clock.ns
        cache = self._windows
        if self._windows_ns != ns:
            cache.clear()
            self._windows_ns = ns
        key = (first, self._calendar_of[col], extended)
        hit = cache.get(key)
        if hit is None:
            start, end = self._sessions.order_window(ns, first, col, extended)
            hit = cache[key] = (int(start), int(end))
        return hit

    def _last_price(self, col: int) -> float:
        """The last close the strategy saw for column ``col`` (a trailing stop's start).

        The close of the latest closed bar, else the latest earlier close; before any
        close, the next open.
        """
        closes = self._close[: self._t + 1, col]
        seen = np.flatnonzero(np.isfinite(closes))
        if len(seen):
            return float(closes[seen[-1]])
        opens = self._open_px[self._t + 1:, col]
        ahead = np.flatnonzero(np.isfinite(opens))
        return float(opens[ahead[0]]) if len(ahead) else float("nan")

    def _rebook(self, state: OrderState, old: Order) -> None:
        """Write a replaced order's new fields into its book slot."""
        book = self._book
        book.plain = False  # conservatively: a replace may write prices and a trail
        slot = book.ids.index(state.order_id)
        new = state.order
        book.qty[slot] = new.qty - state.filled_qty
        book.limit[slot] = np.nan if new.limit_price is None else new.limit_price
        book.stop[slot] = np.nan if new.stop_price is None else new.stop_price
        if new.order_type is OrderType.TRAILING_STOP:
            pct = new.trail_percent is not None
            book.otype[slot] = TRAIL_PERCENT if pct else TRAIL_AMOUNT
            book.aux[slot, 0] = new.trail_percent if pct else new.trail_amount
        if new.tif is not old.tif:
            first = max(int(book.first_bar[slot]), self._t + 1)
            book.expire_bar[slot] = NEVER_BAR if new.tif is TimeInForce.GTC or first >= len(
                self._ts) else (first if new.tif in (TimeInForce.IOC, TimeInForce.FOK)
                                else self._session_close_bar(first, int(book.sym[slot]),
                                             new.extended_hours))

    def _session_close_bar(self, t: int, col: int, extended: bool = False) -> int:
        """Last bar an order in column ``col`` that can first trade on bar ``t`` may trade
        on that session: the session's last regular bar (the next session's when ``t`` is
        past the close), or with ``extended`` the trading day's last bar. ``NEVER_BAR`` if
        there is none. Without sessions: the last bar of ``t``'s date in ``session_tz``."""
        return int(self._sessions.close_bar(t, col, extended))

    def _session_open_bar(self, t: int, col: int) -> int:
        """The first bar at or after ``t`` that opens a session's regular hours in column
        ``col`` (an opening auction's bar); ``NEVER_BAR`` if there is none."""
        return int(self._sessions.open_bar(t, col))
