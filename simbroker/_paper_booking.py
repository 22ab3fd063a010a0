"""Booking a bar's outcomes in the paper broker: fills, triggers, expiries, final
statuses, group actions and trailing extremes, each after its trade-log record.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import numpy as np

from simbroker._paper_base import NEVER_BAR
from simbroker._paper_fills import FillLog
from simbroker._paper_kinds import TRAIL_AMOUNT, TRAIL_PERCENT, trail_levels, trailed_extremes
from simbroker._paper_place import Placing
from simbroker._paper_state import OrderState
from simbroker.types import Fill, OrderStatus, Side, TimeInForce

__all__ = ["Booking"]


_BUY, _FILLED = Side.BUY, OrderStatus.FILLED  # globals: cheaper than Enum.MEMBER
_PART_EXPIRED = "day order partially filled; the rest expired at the session end"
_UNFILLED = {TimeInForce.OPG: "opg order not filled in the opening auction",
             TimeInForce.CLS: "cls order not filled in the closing auction",
             TimeInForce.IOC: "ioc order not filled on its bar",
             TimeInForce.FOK: "fok order not filled on its bar"}


class Booking(Placing):
    """Book what a bar decided (write-ahead: the record first, then the change)."""

    _fast_book = True
    """Whether :meth:`_book_bar` may book whole fills by :meth:`_book_whole` (a test
    sets it False to force :meth:`_book_fill` for each)."""
    _part_t = -1
    """The latest bar a partial fill was booked on (``OpenBook.part_bar`` holds no other
    value than ``-1`` and the bars booked here, so a bar other than this one is in none)."""

    def _book_bar(self, t: int, slots: list[int], qty: list[float], price: list[float],
                  fee: list[float], triggered: list[int] | None,
                  whole: list[bool] | None = None) -> None:
        """Book a bar's fills, then its stop-limit triggers, each after its record.

        ``whole`` (under ``max_volume_share``) says which fills complete their order; the
        others leave it open with the rest. A stop or trailing stop among ``triggered``
        (it filled in part) rests as a market order from the next bar.

        If a write fails, what was booked stays booked (and recorded), the rest stays open
        exactly as before the bar, and the error propagates: matching the bar again books
        the rest, never a fill twice.
        """
        book = self._book
        now = self._clock.now()
        ts_ns = self._open_at[t]
        done: list[int] = []  # slots whose order is finished (distinct, ascending)
        try:
            book_fill = self._book_fill
            if whole is None and self._log is None and self._fast_book and self.allow_short \
                    and not self._groups.children and isinstance(self._fills, FillLog):
                self._book_whole(t, slots, qty, price, fee, now, ts_ns, done)
            elif whole is None:
                # zip(strict=True)'s keyword costs more than the loop's body of one fill;
                # the four lists are built together, one entry per fill
                for slot, q, px, f in zip(slots, qty, price, fee):  # noqa: B905
                    if book_fill(t, slot, q, px, f, now, ts_ns):
                        done.append(slot)
            else:
                for slot, q, px, f, w in zip(slots, qty, price, fee, whole, strict=True):
                    if book_fill(t, slot, q, px, f, now, ts_ns, w):
                        done.append(slot)
            if triggered is not None:
                for slot in triggered:
                    if book.trig_bar[slot] == t or slot in done:
                        continue  # recorded by an earlier attempt at this bar
                    if self._log is not None:
                        state = self._orders[book.ids[slot]]
                        self._log.write("triggered", now, order_id=state.order_id,
                                        symbol=state.order.symbol, bar=now)
                    book.trig_bar[slot] = t
                    book.plain = False
                    if book.otype[slot] != 3:  # a stop that traded in part: now a market
                        book.otype[slot] = 0
        finally:
            if done:
                if len(done) == book.n:  # every order left (OpenBook.drop's first case)
                    book.n = 0
                    book.ids = []
                    book.syms = []
                    book.signs = []
                else:
                    book.drop(done)
        if self._groups.pending:
            self._settle(now)

    def _book_whole(self, t: int, slots: list[int], qty: list[float], price: list[float],
                    fee: list[float], now: datetime, ts_ns: int, done: list[int]) -> None:
        """:meth:`_book_fill` of each of a bar's fills when every one completes its order
        and nothing else can intervene (no trade log, no group children, shorting
        allowed, fills kept in a :class:`FillLog`): the same operations in the same
        order, in one loop with the broker's attributes read once. Each booked slot is
        appended to ``done``."""
        book = self._book
        ids, syms = book.ids, book.syms
        orders, pos_mv, add = self._orders, self._pos_mv, self._fills.add
        fill_ns, fill_rows = self._fill_ns, self._fill_rows
        ledger_bar, ledger_sym = self._ledger_bar, self._ledger_sym
        ledger_cash, ledger_pos = self._ledger_cash, self._ledger_pos
        for slot, q, px, f in zip(slots, qty, price, fee):  # noqa: B905 (as in _book_bar)
            order_id = ids[slot]
            state = orders[order_id]
            order = state.order
            col = syms[slot]
            pos = pos_mv[col]
            notional = q * px
            if order.side is _BUY:
                side = "buy"
                cash = self._cash - notional - f
                new_pos = pos + q
            else:
                side = "sell"
                cash = self._cash + notional - f
                new_pos = pos - q
            held = abs(pos)
            if abs(new_pos) <= 1e-12 * (q if q > held else held):  # float dust: flat
                new_pos = 0.0
            self._cash = cash
            pos_mv[col] = new_pos
            symbol = order.symbol
            # _position_moved(col, symbol, new_pos), inline: the call was ~a tenth of a fill
            held_now = self._positions
            if held_now is not None:
                if not new_pos:
                    held_now.pop(symbol, None)
                elif symbol in held_now:
                    held_now[symbol] = new_pos
                elif col > self._held_top:
                    held_now[symbol] = new_pos
                    self._held_top = col
                else:
                    self._positions = None
            state.filled_qty += q
            state.filled_notional += notional
            number = state.n_fills + 1
            state.n_fills = number
            add(order_id, number, order.client_order_id, now, symbol, side, q, px, f, notional)
            fill_ns.append(ts_ns)
            fill_rows.append(len(ledger_bar))
            ledger_bar.append(t)
            ledger_sym.append(col)
            ledger_cash.append(cash)
            ledger_pos.append(new_pos)
            state.status = _FILLED
            done.append(slot)

    def _book_fill(self, t: int, slot: int, q: float, px: float, f: float, now: datetime,
                   ts_ns: int, whole: bool = True) -> bool:
        """Book one fill after its record; False when the order stays open (a part).

        The cash and position arithmetic is ``cash_after_fill`` and
        ``position_after_fill``'s (the trade-log replay's), inlined: the same float
        operations in the same order, so the results are bit-identical to theirs.
        """
        book = self._book
        order_id = book.ids[slot]
        state = self._orders[order_id]
        order = state.order
        col = book.syms[slot]
        pos = self._pos_mv[col]
        buy = order.side is _BUY
        if not buy and not self.allow_short and q > pos * (1 + 1e-12) + 1e-12:
            self._finish(state, OrderStatus.REJECTED,
                         f"shorting is not allowed: selling {q:g} {order.symbol} against a "
                         f"position of {pos:g}", now)
            return True
        notional = q * px
        side = "buy" if buy else "sell"
        number = state.n_fills + 1
        fills = self._fills
        log = self._log
        if log is not None or not isinstance(fills, FillLog):
            fill: Fill = {"fill_id": f"{order_id}-{number}", "order_id": order_id,
                          "client_order_id": order.client_order_id, "timestamp": now,
                          "symbol": order.symbol, "side": side, "qty": q, "price": px,
                          "fee": f, "notional": notional}
            if log is not None:
                log.write("filled", now, **fill)
        if buy:
            cash = self._cash - notional - f
            new_pos = pos + q
        else:
            cash = self._cash + notional - f
            new_pos = pos - q
        held = abs(pos)
        if abs(new_pos) <= 1e-12 * (q if q > held else held):  # float dust: exactly flat
            # (max(abs(pos), q) as a conditional: max() parses arguments, ~40x the cost)
            new_pos = 0.0
        self._cash = cash
        self._pos_mv[col] = new_pos
        self._position_moved(col, order.symbol, new_pos)
        state.filled_qty += q
        state.filled_notional += notional
        state.n_fills = number
        if isinstance(fills, FillLog):  # columns: no Fill dict unless the log wrote one
            fills.add(order_id, number, order.client_order_id, now, order.symbol, side, q, px,
                      f, notional)
        else:
            fills.append(fill)
        self._fill_ns.append(ts_ns)
        self._fill_rows.append(len(self._ledger_bar))
        self._ledger_bar.append(t)
        self._ledger_sym.append(col)
        self._ledger_cash.append(cash)
        self._ledger_pos.append(new_pos)
        if whole:
            state.status = _FILLED
        else:
            state.status = OrderStatus.PARTIALLY_FILLED
            book.qty[slot] -= q
            book.part_bar[slot] = t
            book.plain = False
            self._part_t = t
        if self._groups.children and order_id in self._groups:
            self._groups.on_fill(order_id, t, state.filled_qty, self._is_open)
        return whole

    def _expire(self, expired: np.ndarray) -> None:
        book = self._book
        now = self._clock.now()
        done = np.zeros(book.n, np.bool_)
        try:
            for slot in np.flatnonzero(expired).tolist():
                state = self._orders[book.ids[slot]]
                tif = state.order.tif
                if tif in (TimeInForce.DAY, TimeInForce.GTC):
                    self._finish(state, OrderStatus.EXPIRED, _PART_EXPIRED if
                                 state.filled_qty else "day order not filled by the session end",
                                 now)
                else:
                    self._finish(state, OrderStatus.CANCELED, _UNFILLED[tif], now)
                done[slot] = True
        finally:
            if done.any():
                book.keep(~done)
        if self._groups.pending:
            self._settle(now)

    def _finish(self, state: OrderState, status: OrderStatus, reason: str | None,
                now: datetime) -> None:
        """Record, then set, an order's final status (the caller takes it off the book)."""
        if self._log is not None:
            event = {OrderStatus.CANCELED: "canceled", OrderStatus.EXPIRED: "expired",
                     OrderStatus.REJECTED: "rejected"}[status]
            extra: dict[str, Any] = {}
            if status is OrderStatus.REJECTED:
                o = state.order
                extra = dict(client_order_id=o.client_order_id, side=o.side.value, qty=o.qty,
                             order_type=o.order_type.value)
            self._log.write(event, now, order_id=state.order_id, symbol=state.order.symbol,
                            reason=reason, **extra)
        state.status = status
        state.reason = reason
        if self._groups.children and state.order_id in self._groups:
            self._groups.on_final(state.order_id, status.value, self._is_open)

    def _is_open(self, order_id: str) -> bool:
        return self._orders[order_id].status.is_open

    def _settle(self, now: datetime) -> None:
        """Perform the group actions fills and final statuses queued, each after its record.

        An activated child joins the book from its ``first_bar`` (the bar after its
        parent's fill) sized to the parent's filled quantity; a canceled sibling or child
        leaves it. On a failed write the action and those after it stay queued.
        """
        groups = self._groups
        while groups.pending:
            action = groups.pending[0]
            state = self._orders[action.order_id]
            if not state.status.is_open:
                groups.pending.pop(0)
                continue
            if action.kind == "activate":
                if state.status is OrderStatus.HELD:
                    qty = min(action.qty, state.order.qty) if action.qty > 0 else state.order.qty
                    if self._log is not None:
                        self._log.write("activated", now, order_id=state.order_id,
                                        symbol=state.order.symbol, qty=qty,
                                        parent_id=state.parent_id)
                    if qty != state.order.qty:
                        state.order = dataclasses.replace(state.order, qty=qty)
                    state.status = OrderStatus.NEW
                    self._book_order(state, action.first_bar, NEVER_BAR, None)
                    groups.activated(state.order_id)
                elif state.parent_id is not None and action.qty > 0:
                    self._grow(state, action.qty, now)
            else:
                held = state.status is OrderStatus.HELD
                self._finish(state, OrderStatus.CANCELED, action.reason, now)
                if not held:
                    self._book.remove(state.order_id)
            groups.pending.pop(0)

    def _grow(self, state: OrderState, filled: float, now: datetime) -> None:
        """Grow an active child to its parent's filled quantity (a parent filling in parts
        under ``max_volume_share``): recorded as another ``activated`` with the new qty."""
        qty = min(filled, self._orders[str(state.parent_id)].order.qty)
        if qty <= state.order.qty:
            return
        if self._log is not None:
            self._log.write("activated", now, order_id=state.order_id,
                            symbol=state.order.symbol, qty=qty, parent_id=state.parent_id)
        book = self._book
        book.qty[book.ids.index(state.order_id)] += qty - state.order.qty
        state.order = dataclasses.replace(state.order, qty=qty)

    def _trail(self, t: int) -> None:
        """Fold bar ``t`` into the open trailing stops' extremes, each after its record."""
        book = self._book
        n = book.n
        rows = np.flatnonzero((book.otype[:n] == TRAIL_AMOUNT) | (book.otype[:n] == TRAIL_PERCENT))
        if len(rows) == 0:
            self._trailing = False
            return
        rows = rows[book.first_bar[rows] <= t]
        s = book.sym[rows]
        buy = book.sign[rows] > 0
        old = book.aux[rows, 1]
        new = trailed_extremes(buy, old, self._high[t, s], self._low[t, s],
                               self._volume[t, s] > 0)
        moved = np.flatnonzero(new != old)
        if len(moved) == 0:
            return
        now = self._clock.now()
        if self._log is not None:
            level = trail_levels(buy[moved], book.otype[rows[moved]] == TRAIL_PERCENT,
                                 book.aux[rows[moved], 0], new[moved])
            for i, lv in zip(moved.tolist(), level.tolist(), strict=True):
                state = self._orders[book.ids[int(rows[i])]]
                self._log.write("trailed", now, order_id=state.order_id,
                                symbol=state.order.symbol, trail_extreme=float(new[i]),
                                stop_price=lv)
        book.aux[rows[moved], 1] = new[moved]
        for i in moved.tolist():
            self._orders[book.ids[int(rows[i])]].trail_extreme = float(new[i])
