"""Canceling and replacing IBKR orders: ``cancelOrder``, and ``placeOrder`` again with the
same ``orderId`` for a replace, each answer awaited and a late one settled from TWS.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from simbroker.brokers.ibkr._submit import Submitting
from simbroker.brokers.ibkr.account import (
    buying_power_refusal,
    cash_short_refusal,
    pattern_day_trader_refusal,
)
from simbroker.brokers.ibkr.orders import OrderEntry
from simbroker.brokers.ibkr.translate import REPLACE_REFUSALS, UNSET, ib_lib, ib_tif
from simbroker.errors import (
    BrokerConnectionError,
    BrokerError,
    BrokerTimeout,
    InvalidOrder,
    OrderRejected,
    OrderStatusUnknown,
    ReplaceRejected,
    UnknownOrder,
)
from simbroker.types import Order, OrderInfo, OrderStatus

__all__ = ["Modifying"]


class Modifying(Submitting):
    """Cancel and replace of :class:`~simbroker.brokers.ibkr.IBKRBroker`."""

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel exactly this order; a final order is returned unchanged (idempotent).

        Canceling a bracket/OTO parent that has not filled cancels its children (TWS
        does so); a partially filled parent's children stay, sized to its fill, to
        protect the position. Canceling an OCO's limit leg cancels its stop leg too;
        canceling a child cancels only it.

        Raises :class:`~simbroker.errors.UnknownOrder` for an id this account never had,
        :class:`~simbroker.errors.OrderStatusUnknown` for an order still pending
        confirmation, :class:`~simbroker.errors.BrokerConnectionError` when not ready.
        """
        self.conn.require("cancel_order", self.ready_wait)
        with self._cond:
            entry = self.orders.get(str(order_id))
            if entry is None:
                raise UnknownOrder(str(order_id))
            if not entry.is_open:
                return entry.info()
            generation = self.conn.generation
        if entry.status is OrderStatus.PENDING_CONFIRM and not self._settle(entry):
            self._outcome(entry, "still unresolved")
        if not entry.is_open:
            return entry.info()
        self._run_sync(lambda: self._cancel(entry))
        with self._cond:
            group = self.orders.members(entry)
            also = [e for e in group[1:] if e.is_open and e.ib_order_id] \
                if entry.order_class == "oco" and group[0] is entry else []
        if also:
            self._send_cancels([e.ib_order_id for e in also])
        with self._cond:
            self._cond.wait_for(lambda: not entry.is_open
                                or self.conn.generation != generation, self.timeout)
            return entry.info()

    def _cancel(self, entry: OrderEntry) -> None:
        ib = self.ib
        if not ib.isConnected() or not entry.ib_order_id:
            raise BrokerConnectionError(f"cancel_order {entry.order_id}: IBKR not connected")
        order = next((t.order for t in ib.trades()
                      if t.order.orderId == entry.ib_order_id), None)
        if order is None:
            order = ib_lib.Order(orderId=entry.ib_order_id, clientId=self.client_id,
                                 permId=entry.perm_id)
        try:
            ib.cancelOrder(order)
        except ConnectionError:
            raise BrokerConnectionError(f"cancel_order {entry.order_id}: IBKR connection "
                                        f"dropped; the order was not cancelled") from None

    def replace_order(self, order_id: str, *, qty: float | None = None,
                      limit_price: float | None = None, stop_price: float | None = None,
                      trail_amount: float | None = None, trail_percent: float | None = None,
                      tif: str | None = None) -> OrderInfo:
        """Modify an open order in place at TWS (``placeOrder`` again with its IB order
        id); its ``order_id`` stays. Only the fields given change.

        Raises
        ------
        ReplaceRejected
            The order is final here (filled, canceled, ...; nothing is sent), TWS refused
            the modification (error 104 "Cannot modify a filled order" when a fill raced
            it, 103 when the order ended, 105/201/110/321/329 for a change it does not
            take; the order is unchanged), TWS's margin check refused it (error 201: the
            modified order, weighed with the old one set aside, needs more initial margin
            than the equity with loan value; the cause is the
            :class:`~simbroker.errors.InsufficientBuyingPower` a submission gets, and the
            original order keeps working; likewise a cash account's short sale, its
            cause ``rule="cash_account_short"``, and the pattern-day-trader protection,
            :class:`~simbroker.errors.PatternDayTrading`), the change is invalid (a
            ``qty`` below the filled quantity, a field the order's type does not take, a
            ``tif`` that would change IB's order type), or an earlier replace of the
            order is still unanswered. A refusal TWS repeats is one refusal; the next
            modification's answer is its own, in whatever words.
        OrderStatusUnknown
            The order, or TWS's answer to the modification, is not known yet (a drop, or
            no answer in time): :meth:`get_order` shows the order as TWS lists it after
            the next sync, or once TWS answers (a late refusal leaves it working
            unchanged).
        BrokerTimeout
            TWS did not answer the round trip that must follow its refusal of the last
            modification before another is sent (nothing was sent).
        UnknownOrder
            No such order.
        """
        self.conn.require("replace_order", self.ready_wait)
        with self._cond:
            entry = self.orders.get(str(order_id))
            if entry is None:
                raise UnknownOrder(str(order_id))
        if entry.status is OrderStatus.PENDING_CONFIRM and not self._settle(entry):
            self._outcome(entry, "still unresolved")
        with self._cond:
            unread, generation = entry.refusal is not None and not entry.repeats_read, \
                self.conn.generation
        if unread and not self._after_refusal(entry, generation):
            raise BrokerTimeout(f"IBKR replace_order {entry.order_id}", self.timeout,
                                detail="the round trip after TWS refused its last "
                                "modification; nothing was sent")
        with self._send_lock, self._cond:
            if not entry.is_open:
                raise ReplaceRejected(entry.order_id, f"it is {entry.status.value}",
                                      status=entry.status.value, symbol=entry.symbol,
                                      client_order_id=entry.client_order_id)
            if entry.replacing is not None or entry.unanswered is not None:
                raise ReplaceRejected(entry.order_id, "an earlier replace of it is still "
                                      "unanswered", status=entry.status.value,
                                      symbol=entry.symbol)
            change = self._replacement(entry, qty=qty, limit_price=limit_price,
                                       stop_price=stop_price, trail_amount=trail_amount,
                                       trail_percent=trail_percent, tif=tif)
            generation = self.conn.generation
            entry.replacing, entry.replace_answer = change, None
            # A refusal answers one modification: from this one on, an error is its own.
            entry.refusal = None
        try:
            sent = self._run_sync(lambda: self._modify(entry, change, generation))
        except BaseException:
            with self._cond:
                entry.replacing = None
            raise
        with self._cond:
            if sent:
                self._cond.wait_for(lambda: entry.replace_answer is not None
                                    or self.conn.generation != generation, self.timeout)
            answer, entry.replacing = entry.replace_answer, None
            if answer is None:
                if not sent:
                    raise BrokerConnectionError(f"replace_order {entry.order_id}: the IBKR "
                                                f"connection dropped; nothing was sent")
                if self.conn.generation == generation:  # else the sync has TWS's word
                    entry.unanswered = change
                raise OrderStatusUnknown(
                    f"replace of order {entry.order_id}: no answer from TWS; the order "
                    f"shows TWS's fields after the next sync", order_id=entry.order_id,
                    client_order_id=entry.client_order_id, symbol=entry.symbol)
            code, text = answer
            if not code:
                for key, value in change.items():
                    setattr(entry, key, value)
                info = entry.info()
        if code:  # fills TWS sent before its answer are booked already
            self._after_refusal(entry, generation)
            status = "filled" if code == 104 else entry.status.value
            cause = self._modify_refusal(entry, change, text) if code == 201 else None
            field = next((k for k in ("qty", "limit_price", "stop_price") if k in change),
                         None) if cause is not None else None
            raise ReplaceRejected(
                entry.order_id, f"TWS error {code} ({REPLACE_REFUSALS.get(code, 'refused')})"
                f": {text if cause is None else cause.reason}", status=status, field=field,
                symbol=entry.symbol, client_order_id=entry.client_order_id) from cause
        if self.trade_log is not None:
            self.trade_log.write("replaced", self.now(), order_id=entry.order_id,
                                 symbol=entry.symbol, **change)
        return info

    def _modify_refusal(self, entry: OrderEntry, change: dict[str, Any], text: str
                        ) -> OrderRejected | None:
        """The refusal a submission would get for TWS's error-201 text refusing the
        modification ``change`` of ``entry``, weighed like a new order for what would be
        left of it: margin (:class:`~simbroker.errors.InsufficientBuyingPower`), a cash
        account's short sale (the same, ``rule="cash_account_short"``), the
        pattern-day-trader protection (:class:`~simbroker.errors.PatternDayTrading`);
        ``None`` for another refusal."""
        sym, oid, cid = entry.symbol, entry.order_id, entry.client_order_id
        margin = buying_power_refusal(text, symbol=sym, order_id=oid, client_order_id=cid)
        if margin is not None:
            return margin
        left = change.get("qty", entry.qty) - entry.filled_qty
        price = change.get("limit_price", change.get("stop_price", entry.limit_price
                                                     if entry.limit_price is not None
                                                     else entry.stop_price))
        short = cash_short_refusal(text, symbol=sym, qty=left,
                                   held=self._held_for_sale(sym, oid),
                                   price=math.nan if price is None else float(price),
                                   order_id=oid, client_order_id=cid)
        if short is not None:
            return short
        return pattern_day_trader_refusal(text, symbol=sym, equity=self._equity_now(),
                                          client_order_id=cid)

    def _after_refusal(self, entry: OrderEntry, generation: int) -> bool:
        """One round trip after TWS refused a modification of ``entry``, so that a
        repeat of the refusal TWS sent right after it is read now, while it is
        recognised as one (:meth:`OrderEntry.repeats_refusal`), and never taken for the
        answer to the next modification. True when it completed on connection
        ``generation`` (``entry.repeats_read``), or that connection is gone (the sync
        after the reconnect has TWS's word, and no message of the old socket comes);
        False when TWS did not answer in time."""
        if self.conn.generation != generation or not self.ib.isConnected():
            return True

        async def ask() -> None:
            await self.ib.reqCurrentTimeAsync()

        try:
            self._run(ask(), what="round trip after a refused modification")
        except BrokerError:
            return self.conn.generation != generation
        with self._cond:
            if self.conn.generation == generation:
                entry.repeats_read = True
        return True

    def _replacement(self, entry: OrderEntry, **given: Any) -> dict[str, Any]:
        """The validated changed fields of a replace of ``entry`` (under the lock)."""
        changes = {k: v for k, v in given.items() if v is not None}
        if not changes:
            raise ReplaceRejected(entry.order_id, "nothing to change (give qty, "
                                  "limit_price, stop_price, trail_amount, trail_percent or "
                                  "tif)", status=entry.status.value, symbol=entry.symbol)
        cur = {"qty": entry.qty, "limit_price": entry.limit_price,
               "stop_price": entry.stop_price, "trail_amount": entry.trail_amount,
               "trail_percent": entry.trail_percent, "tif": entry.tif}
        new = {**cur, **changes}
        if "trail_amount" in changes:  # one trail replaces the other
            new["trail_percent"] = None
        if "trail_percent" in changes:
            new["trail_amount"] = None
        if ("tif" in changes) and (new["tif"] == "cls") != (entry.tif == "cls"):
            raise ReplaceRejected(entry.order_id, "tif 'cls' is an order type at IB "
                                  "(MOC/LOC), which a modification cannot change",
                                  status=entry.status.value, field="tif",
                                  symbol=entry.symbol)
        try:
            Order.create(entry.symbol, entry.side, new["qty"], entry.order_type,
                         limit_price=new["limit_price"], stop_price=new["stop_price"],
                         tif=new["tif"], trail_amount=new["trail_amount"],
                         trail_percent=new["trail_percent"])
        except InvalidOrder as exc:
            raise ReplaceRejected(entry.order_id, str(exc), status=entry.status.value,
                                  field=exc.field, symbol=entry.symbol) from None
        if new["qty"] < entry.filled_qty - 1e-9:
            raise ReplaceRejected(entry.order_id, f"qty {new['qty']:g} is below the "
                                  f"{entry.filled_qty:g} already filled",
                                  status=entry.status.value, field="qty",
                                  symbol=entry.symbol)
        return {k: v for k, v in new.items() if v != cur[k] or k in changes}

    def _modify(self, entry: OrderEntry, change: dict[str, Any], generation: int) -> bool:
        """placeOrder with ``entry``'s IB order id and the changed fields (IO loop);
        False when not connected (nothing sent)."""
        ib = self.ib
        if not ib.isConnected() or self.conn.generation != generation or \
                not entry.ib_order_id:
            return False
        trade = next((t for t in ib.trades() if t.order.orderId == entry.ib_order_id), None)
        order = copy.copy(trade.order) if trade is not None else self._ib_order(
            entry, entry.ib_order_id, 0)
        contract = trade.contract if trade is not None else ib_lib.Stock(
            entry.symbol, self.exchange, self.currency)
        if trade is None:
            order.permId = entry.perm_id
            order.clientId = self.client_id
        order.transmit = True  # a modification TWS must act on
        if "qty" in change:
            order.totalQuantity = change["qty"]
        if "limit_price" in change:
            order.lmtPrice = change["limit_price"]
        if "stop_price" in change:
            order.auxPrice = change["stop_price"]
        if change.get("trail_amount") is not None:
            order.auxPrice, order.trailingPercent = change["trail_amount"], UNSET
        if change.get("trail_percent") is not None:
            order.trailingPercent, order.auxPrice = change["trail_percent"], UNSET
        if "tif" in change:
            order.tif = ib_tif(change["tif"])
        # The client's own modify path asserts on its cached status, which an error
        # answering an earlier modification may have set: the wire call is the same.
        try:
            ib.client.placeOrder(entry.ib_order_id, contract, order)
        except ConnectionError:
            return False
        return True
