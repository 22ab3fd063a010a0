"""Submitting orders to TWS: an order (or a group's legs) placed with IB's order ids, its
acknowledgement awaited, an unanswered one settled from TWS's orders, and a group that
must not work partly canceled whole.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

from simbroker.brokers.ibkr._base import log
from simbroker.brokers.ibkr._sync import Syncing
from simbroker.brokers.ibkr.account import (
    buying_power_refusal,
    cash_short_refusal,
    pattern_day_trader_refusal,
)
from simbroker.brokers.ibkr.connection import State
from simbroker.brokers.ibkr.orders import LEG_SUFFIXES, OrderEntry
from simbroker.brokers.ibkr.translate import ib_lib, ib_order_of
from simbroker.errors import (
    BrokerConnectionError,
    BrokerError,
    InvalidOrder,
    OrderRejected,
    OrderStatusUnknown,
)
from simbroker.types import Order, OrderInfo, OrderStatus

__all__ = ["Submitting"]


def _submitted(order: Order, head: OrderEntry) -> dict[str, Any]:
    """The ``submitted`` record of ``order`` (a group's one record names its ``legs``,
    as the trade log's replay reads it)."""
    fields: dict[str, Any] = {
        "order_id": head.order_id, "client_order_id": head.client_order_id,
        "symbol": head.symbol, "side": head.side, "qty": head.qty,
        "order_type": head.order_type, "limit_price": head.limit_price,
        "stop_price": head.stop_price, "tif": head.tif}
    if head.order_class != "simple":
        fields["order_class"] = head.order_class
        fields["legs"] = list(head.legs)
    if order.take_profit is not None:
        fields["take_profit"] = order.take_profit.to_dict()
    if order.stop_loss is not None:
        fields["stop_loss"] = order.stop_loss.to_dict()
    for key in ("trail_amount", "trail_percent"):
        if getattr(head, key) is not None:
            fields[key] = getattr(head, key)
    if head.extended_hours:
        fields["extended_hours"] = True
    return fields


class Submitting(Syncing):
    """Order submission of :class:`~simbroker.brokers.ibkr.IBKRBroker`."""

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market", *,
                     limit_price: float | None = None, stop_price: float | None = None,
                     tif: str = "day", client_order_id: str | None = None,
                     extended_hours: bool = False, order_class: str = "simple",
                     take_profit: Mapping[str, float] | None = None,
                     stop_loss: Mapping[str, float] | None = None,
                     trail_amount: float | None = None,
                     trail_percent: float | None = None) -> OrderInfo:
        """Place an order (or a bracket, OTO or OCO group as IB's native orders), or
        return the one already placed under ``client_order_id``.

        A group is returned as its first order (the bracket/OTO parent, the OCO's limit
        leg), whose ``legs`` are ``<id>.tp`` / ``<id>.sl``. See the README's order mapping
        table for what each kind is at IB.

        Raises
        ------
        OrderRejected
            TWS refused it (error 200, 201, 103, 110), with IB's text; for a group, any
            leg refused (the others are canceled, so no leg works alone).
        OrderStatusUnknown
            It was sent and no answer came (a drop, a late ack), or an earlier order of
            the same symbol is still unresolved. Resubmit the same ``client_order_id``:
            it is answered from IB's records once they are in, and never placed twice.
        BrokerConnectionError
            Not ready within ``ready_wait``, or the connection dropped before TWS read
            the order (nothing was placed; resubmitting places it).
        """
        order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                             stop_price=stop_price, tif=tif, client_order_id=client_order_id,
                             order_class=order_class, take_profit=take_profit,
                             stop_loss=stop_loss, trail_amount=trail_amount,
                             trail_percent=trail_percent)
        if not isinstance(extended_hours, bool):
            raise InvalidOrder(f"extended_hours must be True or False, got "
                               f"{extended_hours!r}", field="extended_hours",
                               value=extended_hours, symbol=order.symbol)
        cid = order.client_order_id
        if cid is not None and cid.endswith(LEG_SUFFIXES):
            raise InvalidOrder(f"client_order_id {cid!r} ends in {cid[-3:]!r}, which names "
                               f"the legs of a group at IBKR; choose another",
                               field="client_order_id", value=cid, symbol=order.symbol)
        with self._send_lock:
            self.conn.require("submit_order", self.ready_wait)
            if cid is not None:
                with self._cond:
                    known = self.orders.get(cid)
                    group = [] if known is None else self.orders.members(known)
                if known is not None and not all(e.not_received for e in group):
                    self._settle(known)
                    return self._outcome(known, "still unresolved", final_ok=True)
            with self._cond:
                others = self.orders.pending(order.symbol)
            for other in others:
                if not self._settle(other):
                    raise OrderStatusUnknown(
                        f"no new {order.symbol} order while order {other.order_id} is "
                        f"pending_confirm (it is resolved from IB's records first)",
                        order_id=other.order_id, client_order_id=other.client_order_id,
                        symbol=other.symbol)
            order_id = cid or f"sb-{uuid.uuid4().hex[:20]}"
            entries = self._entries(order, order_id, extended_hours)
            if self.trade_log is not None:  # write-ahead: one record per group
                self.trade_log.write("submitted", entries[0].submitted_at,
                                     **_submitted(order, entries[0]))
            with self._cond:
                for e in entries:
                    self._logged_final.discard(e.order_id)
                    self.orders.add(e)
                generation = self.conn.generation
            written = self._run_sync(lambda: self._place(entries, generation))
            if written == 0:
                with self._cond:
                    for e in entries:
                        self.orders.mark_not_received(e)
                        self._log_final(e)
                raise BrokerConnectionError(
                    f"submit_order {order_id}: the IBKR connection dropped before the order "
                    f"was sent; nothing was placed (resubmit to place it)")
            if written < len(entries):
                with self._cond:
                    for e in entries[written:]:
                        self.orders.mark_not_received(e)
                        self._log_final(e)
            return self._acked(entries, generation)

    def _entries(self, order: Order, order_id: str, extended_hours: bool) -> list[OrderEntry]:
        """The registry entries of ``order``: itself, then its legs (``.tp``, ``.sl``)."""
        now = self.now()
        cls = order.order_class.value
        group = order_id if cls != "simple" else None
        head = OrderEntry(
            order_id=order_id, client_order_id=order.client_order_id or order_id,
            symbol=order.symbol, side=order.side.value, qty=float(order.qty),
            order_type=order.order_type.value, tif=order.tif.value,
            limit_price=order.limit_price, stop_price=order.stop_price, submitted_at=now,
            order_class=cls, group_id=group, trail_amount=order.trail_amount,
            trail_percent=order.trail_percent, extended_hours=extended_hours)
        entries = [head]
        for leg in order.leg_orders():
            suffix = ".tp" if leg.order_type.value == "limit" else ".sl"
            lid = order_id + suffix
            entries.append(OrderEntry(
                order_id=lid, client_order_id=lid, symbol=leg.symbol, side=leg.side.value,
                qty=float(leg.qty), order_type=leg.order_type.value, tif=leg.tif.value,
                limit_price=leg.limit_price, stop_price=leg.stop_price, submitted_at=now,
                order_class=cls, group_id=group,
                parent_id=None if cls == "oco" else order_id,
                extended_hours=extended_hours))
        head.legs = [e.order_id for e in entries[1:]]
        if cls in ("bracket", "oto"):  # TWS works none of them before the last arrives
            for e in entries[:-1]:
                e.transmit = False
        return entries

    def _ib_order(self, entry: OrderEntry, oid: int, parent_oid: int) -> Any:
        """``entry`` as an ib ``Order`` under IB order id ``oid``."""
        return ib_order_of(entry, oid, parent_oid, self.account)

    def _place(self, entries: list[OrderEntry], generation: int) -> int:
        """placeOrder each of ``entries`` (one order, or a group's orders back to back)
        under IB order ids above every one used (IO loop), only on the connection the
        caller saw ready. Returns how many were written to the socket."""
        ib = self.ib
        if not ib.isConnected() or self.conn.generation != generation or \
                self.conn.state is not State.READY:
            return 0
        try:
            base = max(int(ib.client.getReqId()), self.orders.max_ib_id + 1)
        except ConnectionError:
            return 0
        ib.client.updateReqId(base + len(entries))
        contract = ib_lib.Stock(entries[0].symbol, self.exchange, self.currency)
        for i, entry in enumerate(entries):
            parent = base if entry.parent_id is not None else 0
            ib_order = self._ib_order(entry, base + i, parent)
            with self._cond:
                self.orders.bind(entry, ib_order_id=base + i)
            try:
                ib.placeOrder(contract, ib_order)
            except ConnectionError:
                return i
            with self._cond:
                self._sent_seq += 1
                entry.sent_seq, entry.sent_gen = self._sent_seq, generation
        return len(entries)

    def _acked(self, entries: list[OrderEntry], generation: int) -> OrderInfo:
        """Wait for TWS's answer to just-sent orders: every one answered, or (for a
        bracket/OTO, whose earlier legs TWS holds untransmitted) the last one refused."""
        last = entries[-1]

        def answered() -> bool:
            if self.conn.generation != generation:
                return True
            if last.status is OrderStatus.REJECTED:
                return True
            return all(e.status is not OrderStatus.PENDING_CONFIRM or e.not_received
                       for e in entries)

        with self._cond:
            self._cond.wait_for(answered, self.timeout)
            cancels = self._check_group(entries[0]) if len(entries) > 1 else []
        self._send_cancels(cancels)
        return self._outcome(entries[0], "no answer from TWS"
                             if self.conn.generation == generation
                             else "the IBKR connection dropped before TWS answered")

    def _check_group(self, entry: OrderEntry) -> list[int]:
        """A group with a leg TWS refused or never received has no working leg: the
        others are ended here (under the lock). Returns the IB order ids to cancel at
        TWS: untransmitted legs (so no one transmits them from TWS's window by hand) and
        live ones (an OCO leg whose sibling never arrived)."""
        group = self.orders.members(entry)
        bad = next((e for e in group if e.status is OrderStatus.REJECTED), None)
        if bad is None or any(e.filled_qty > 0 for e in group):
            return []
        why = "never reached TWS" if bad.not_received else f"was refused ({bad.reason})"
        cancels = []
        for e in group:
            if e is bad or not e.is_open:
                continue
            if e.ib_order_id:
                cancels.append(e.ib_order_id)
            if not e.transmit and e.status is OrderStatus.PENDING_CONFIRM:
                # Held untransmitted by TWS: it never worked and never will.
                e.status = OrderStatus.REJECTED
                e.reason = (f"not transmitted: leg {bad.order_id} of its {e.order_class} "
                            f"{why}, so TWS never worked the group")
                self._log_final(e)
            else:
                e.reason = (f"canceled: leg {bad.order_id} of its {e.order_class} {why}; "
                            f"no leg of a group works alone")
        return cancels

    def _send_cancels(self, ib_ids: list[int]) -> None:
        """cancelOrder for these IB order ids (any thread); a drop leaves them to the
        next sync, which checks the groups again."""
        if not ib_ids:
            return

        def send() -> None:
            for oid in ib_ids:
                try:
                    self.ib.client.cancelOrder(oid)
                except ConnectionError:
                    log.warning("IBKR: could not cancel order id %d (not connected)", oid)
                    return

        try:
            self._run_sync(send)
        except BrokerError as exc:
            log.warning("IBKR: cancels of %s not sent: %s", ib_ids, exc)

    def _settle(self, entry: OrderEntry) -> bool:
        """Wait up to ``timeout`` for ``entry`` to leave ``pending_confirm``, then ask
        TWS (on the connection it was sent on); True once it is resolved."""
        def done() -> bool:
            return entry.status is not OrderStatus.PENDING_CONFIRM

        with self._cond:
            if self._cond.wait_for(done, self.timeout):
                return True
            live = entry.sent_seq > 0 and entry.sent_gen == self.conn.generation
        if live and self.conn.state is State.READY:
            try:
                self._run(self._query_orders(), timeout=self.timeout * 3 + 1,
                          what="order query")
            except BrokerError as exc:
                log.warning("IBKR order query for %s failed: %s", entry.order_id, exc)
        with self._cond:
            return done()

    def _outcome(self, entry: OrderEntry, why: str, *, final_ok: bool = False) -> OrderInfo:
        with self._cond:
            info = entry.info()
            not_received = entry.not_received
            unsure = next((e for e in self.orders.members(entry)
                           if e.status is OrderStatus.PENDING_CONFIRM), None)
        if unsure is not None and unsure is not entry and not final_ok:
            raise OrderStatusUnknown(
                f"leg {unsure.order_id} of {entry.order_class} {entry.order_id} is "
                f"pending_confirm: {why}; the group is resolved from IB's records before "
                f"any new {entry.symbol} order (resubmit the same client_order_id to learn "
                f"its fate)", order_id=entry.order_id,
                client_order_id=entry.client_order_id, symbol=entry.symbol)
        if info["status"] == OrderStatus.PENDING_CONFIRM.value:
            raise OrderStatusUnknown(
                f"order {entry.order_id} ({entry.side} {entry.qty:g} {entry.symbol}) is "
                f"pending_confirm: {why}; it is resolved from IB's records before any new "
                f"{entry.symbol} order (resubmit the same client_order_id to learn its fate)",
                order_id=entry.order_id, client_order_id=entry.client_order_id,
                symbol=entry.symbol)
        if final_ok:
            return info
        if not_received:
            raise BrokerConnectionError(f"order {entry.order_id}: {entry.reason}")
        if info["status"] == OrderStatus.REJECTED.value:
            refusal = buying_power_refusal(
                info["reason"] or "", symbol=entry.symbol, order_id=entry.order_id,
                client_order_id=entry.client_order_id)
            if refusal is not None:
                raise refusal
            pdt = pattern_day_trader_refusal(
                info["reason"] or "", symbol=entry.symbol, equity=self._equity_now(),
                client_order_id=entry.client_order_id)
            if pdt is not None:
                raise pdt
            short = cash_short_refusal(
                info["reason"] or "", symbol=entry.symbol, qty=entry.qty,
                held=self._held_for_sale(entry.symbol, entry.order_id),
                price=_order_price(entry), order_id=entry.order_id,
                client_order_id=entry.client_order_id)
            if short is not None:
                raise short
            raise OrderRejected(f"IBKR rejected the order: {info['reason']}",
                                symbol=entry.symbol, order_id=entry.order_id,
                                client_order_id=entry.client_order_id)
        with self._cond:
            bad = next((e for e in self.orders.members(entry)[1:]
                        if e.status is OrderStatus.REJECTED), None)
            leg_why = None if bad is None else bad.reason
        if bad is not None:
            raise OrderRejected(f"IBKR rejected leg {bad.order_id} of {entry.order_class} "
                                f"{entry.order_id}: {leg_why}; its other legs are canceled",
                                symbol=entry.symbol, order_id=entry.order_id,
                                client_order_id=entry.client_order_id)
        return info


def _order_price(entry: OrderEntry) -> float:
    """The price a refusal values ``entry`` at: its limit, else its stop; NaN for a
    market order (TWS does not say what it priced it at)."""
    price = entry.limit_price if entry.limit_price is not None else entry.stop_price
    return math.nan if price is None else float(price)
