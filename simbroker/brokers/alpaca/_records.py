"""The Alpaca broker's order records: each venue order remembered under the adapter's ids,
read afresh when stale or missing, and an order whose answer was lost resolved from
Alpaca's orders (never sent twice).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from simbroker.brokers.alpaca._base import AlpacaState, log
from simbroker.brokers.alpaca.rest import request_sent
from simbroker.brokers.alpaca.translate import FINAL_EVENT, VenueOrder, same_order, utc, venue_order
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    InvalidOrder,
    OrderStatusUnknown,
    UnknownOrder,
)
from simbroker.types import Order, OrderInfo, OrderStatus

__all__ = ["Records"]


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


class Records(AlpacaState):
    """The order records of :class:`~simbroker.brokers.alpaca.AlpacaBroker`."""

    def _refresh(self, order_id: str) -> OrderInfo:
        """Read the order's latest Alpaca order (following ``replaced_by``)."""
        aid = self.orders.current_id(order_id)
        for _ in range(50):
            raw = self._get(f"/orders/{aid}", "get_order", order_id=order_id)
            v = venue_order(raw)
            self._remember(v)
            if v.raw_status != "replaced" or not v.replaced_by:
                break
            aid = v.replaced_by
        info = self.orders.get(order_id)
        if info is None:
            raise UnknownOrder(order_id)
        return info

    def _remember(self, raw: Any, *, fetch: bool = True) -> OrderInfo:
        """Merge an order snapshot (JSON, SDK model or :class:`VenueOrder`); record a send
        it confirms and a newly final status. With ``fetch``, the Alpaca orders it links
        to but this adapter has not read (what it ``replaces``, its ``replaced_by``) are
        read now; without (the stream's thread), the reconcile thread reads them."""
        v = raw if isinstance(raw, VenueOrder) else venue_order(raw)
        merged, finals, resolved = self.orders.update(v)
        for p in resolved:  # a send whose answer was lost: now seen at Alpaca
            log.info("order %s confirmed by Alpaca", p.client_order_id)
            found = self.orders.by_client_id(p.client_order_id)
            if found is not None:
                self._placed(found, p.order, p.client_order_id)
        activated = self.orders.take_activated()
        if self.trade_log is not None:
            for info in activated:
                self.trade_log.write("activated", self.now(), order_id=info["order_id"],
                                     symbol=info["symbol"], parent_id=info["parent_id"],
                                     qty=info["qty"])
            for info in finals:
                event = FINAL_EVENT.get(OrderStatus(info["status"]))
                if event:
                    self.trade_log.write(event, self.now(), order_id=info["order_id"],
                                         symbol=info["symbol"], reason=info["reason"])
        if self.orders.missing():
            if fetch:
                self._read_missing()
            else:
                self._wake.set()
        return self.orders.get(v.order_id) or merged

    def _read_stale(self) -> None:
        """Read afresh the open orders a group's fill may have changed."""
        with self._stale_lock:
            stale, self._stale = self._stale, set()
        for oid in sorted(stale):
            info = self.orders.get(oid)
            if info is not None and OrderStatus(info["status"]).is_open:
                try:
                    self._refresh(oid)
                except (BrokerConnectionError, BrokerAPIError):
                    with self._stale_lock:
                        self._stale.add(oid)  # next round
                    raise

    def _read_missing(self) -> None:
        """Read the Alpaca orders that known ones link to but that were never read."""
        for _ in range(50):
            missing = self.orders.missing()
            if not missing:
                return
            for aid in missing:
                try:
                    raw = self._get(f"/orders/{aid}", "get_order", order_id=aid)
                except UnknownOrder:
                    self.orders.forget_link(aid)
                    continue
                self._remember(venue_order(raw), fetch=False)

    def _lookup(self, cid: str) -> OrderInfo | None:
        """Alpaca's order under ``cid``; ``None`` if it has none (raises if unreachable)."""
        try:
            raw = self._get("/orders:by_client_order_id", "get_order_by_client_id",
                            params={"client_order_id": cid}, client_order_id=cid)
        except UnknownOrder:
            return None
        return self._remember(raw)

    def _same_or_error(self, info: OrderInfo, order: Order) -> OrderInfo:
        if not same_order(info, order):
            raise InvalidOrder(f"client_order_id {order.client_order_id!r} already names a "
                               f"different order ({info['side']} {info['qty']:g} "
                               f"{info['symbol']} {info['order_type']})",
                               field="client_order_id", value=order.client_order_id,
                               symbol=order.symbol, client_order_id=order.client_order_id)
        return info

    def _placed(self, info: OrderInfo, order: Order, cid: str) -> OrderInfo:
        """The order is at Alpaca: record the submission once (unless it predates this
        session's start snapshot, like an order an earlier process placed)."""
        self.orders.drop_pending(cid)
        with self._logged_lock:  # the stream and the caller may confirm it together
            first = info["order_id"] not in self._logged and \
                info["submitted_at"] > self._session_start
            self._logged.add(info["order_id"])
        if self.trade_log is not None and first:
            klass = order.order_class.value
            self.trade_log.write(
                "submitted", info["submitted_at"], order_id=info["order_id"],
                client_order_id=cid, symbol=order.symbol, side=order.side.value,
                qty=order.qty, order_type=order.order_type.value,
                limit_price=order.limit_price, stop_price=order.stop_price,
                tif=order.tif.value, order_class=klass,
                take_profit=None if order.take_profit is None else order.take_profit.to_dict(),
                stop_loss=None if order.stop_loss is None else order.stop_loss.to_dict(),
                trail_amount=order.trail_amount, trail_percent=order.trail_percent,
                extended_hours=info["extended_hours"], legs=info["legs"])
            for leg_id, leg in zip(info["legs"], order.leg_orders(), strict=False):
                leg_info = self.orders.get(leg_id)
                self.trade_log.write(
                    "submitted", info["submitted_at"], order_id=leg_id,
                    client_order_id=None if leg_info is None else leg_info["client_order_id"],
                    symbol=leg.symbol, side=leg.side.value, qty=leg.qty,
                    order_type=leg.order_type.value, limit_price=leg.limit_price,
                    stop_price=leg.stop_price, tif=leg.tif.value, order_class=klass,
                    parent_id=info["order_id"],
                    status=OrderStatus.NEW.value if klass == "oco" else OrderStatus.HELD.value)
        return info

    def _log_replaced(self, info: OrderInfo, *, venue_id: str, **changes: Any) -> None:
        if self.trade_log is not None:
            self.trade_log.write("replaced", self.now(), order_id=info["order_id"],
                                 symbol=info["symbol"], alpaca_order_id=venue_id,
                                 **{k: v for k, v in changes.items() if v is not None})

    def _after_lost_answer(self, order: Order, cid: str, exc: Exception) -> OrderInfo:
        """The send's answer never came (or was a 5xx): ask Alpaca by client_order_id."""
        if not request_sent(exc):
            raise exc  # the connection failed before anything was sent
        self.orders.add_pending(cid, order)
        try:
            found = self._lookup(cid)
        except (BrokerConnectionError, BrokerAPIError):
            found = None
            resolved = False
        else:
            resolved = True
        if found is not None:
            return self._placed(self._same_or_error(found, order), order, cid)
        if resolved and not isinstance(exc, BrokerConnectionError):
            # Alpaca answered the send with an error and does not hold the order.
            self.orders.drop_pending(cid)
            raise exc
        log.warning("order %s (%s %g %s): %s; its fate is unknown until Alpaca shows it",
                    cid, order.side.value, order.qty, order.symbol, exc)
        self._wake.set()
        raise OrderStatusUnknown(
            f"sent {order.side.value} {order.qty:g} {order.symbol} but the answer was lost "
            f"({exc}); it is pending_confirm: resubmit client_order_id {cid!r} to resolve "
            f"it (it is never placed twice)",
            client_order_id=cid, symbol=order.symbol) from None

    def _resolve_pending(self, symbol: str | None, except_cid: str | None = None) -> None:
        """Try to resolve pending sends (of ``symbol``); raise if one of it stays open."""
        for p in self.orders.pending(symbol):
            if p.client_order_id == except_cid:
                continue  # its resubmission is the resolution: Alpaca refuses a duplicate
            try:
                found = self._lookup(p.client_order_id)
            except (BrokerConnectionError, BrokerAPIError):
                found = None
            else:
                if found is None and time.monotonic() - p.sent_at > self._pending_grace:
                    log.warning("order %s: Alpaca still has no such client_order_id %.0f s "
                                "after its send; treated as never placed",
                                p.client_order_id, time.monotonic() - p.sent_at)
                    self.orders.drop_pending(p.client_order_id)
                    continue
            if found is not None:
                self._placed(found, p.order, p.client_order_id)
            elif symbol is not None:
                raise BrokerConnectionError(
                    f"not sent: order {p.client_order_id!r} on {symbol} awaits confirmation "
                    f"from Alpaca; nothing new goes out for {symbol} until it is resolved")

    def _load_orders(self, since: datetime) -> None:
        """Every order submitted since ``since`` (open or not), for fills' client ids."""
        after = since - timedelta(seconds=1)
        seen: set[str] = set()
        while True:
            page = self._get("/orders", "get_orders", params={
                "status": "all", "after": after.isoformat(), "direction": "asc",
                "limit": 500, "nested": "true"}) or []
            fresh = [o for o in page if o["id"] not in seen]
            for o in fresh:
                seen.add(o["id"])
                self._remember(o, fetch=False)
            if len(page) < 500 or not fresh:
                break
            after = utc(page[-1]["submitted_at"]) - timedelta(microseconds=1)
