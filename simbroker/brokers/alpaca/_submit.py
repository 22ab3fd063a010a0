"""Submitting orders to Alpaca: one ``client_order_id`` per order, a lost answer resolved
from Alpaca's orders, and a refusal explained (buying power, pattern day trading).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from simbroker._venue_sides import QTY_AVAILABLE
from simbroker.brokers.alpaca._base import log
from simbroker.brokers.alpaca._queries import Queries
from simbroker.brokers.alpaca.account import opening_qty, refusal
from simbroker.brokers.alpaca.translate import alpaca_refusal, is_duplicate_client_id, order_request
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    BrokerRateLimited,
    InvalidOrder,
    OrderRejected,
    OrderStatusUnknown,
)
from simbroker.types import Order, OrderInfo

__all__ = ["Submitting"]


def _is_server_error(exc: BrokerAPIError) -> bool:
    return isinstance(exc.code, int) and exc.code >= 500


class Submitting(Queries):
    """Order submission of :class:`~simbroker.brokers.alpaca.AlpacaBroker`."""

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market", *,
                     limit_price: float | None = None, stop_price: float | None = None,
                     tif: str = "day", client_order_id: str | None = None,
                     extended_hours: bool = False, order_class: str = "simple",
                     take_profit: Mapping[str, float] | None = None,
                     stop_loss: Mapping[str, float] | None = None,
                     trail_amount: float | None = None,
                     trail_percent: float | None = None) -> OrderInfo:
        """Send an order, as Alpaca's native order; a known ``client_order_id`` returns the
        order it already placed.

        Order kinds (see :meth:`simbroker.types.Order.create`) map one to one: ``order_class``
        bracket/oto/oco with ``take_profit``/``stop_loss``, ``trailing_stop`` with
        ``trail_amount`` (Alpaca's ``trail_price``) or ``trail_percent``, the tifs
        ``opg``/``cls``/``ioc``/``fok``, ``extended_hours``. A group is one request; the
        answer is its parent (an OCO's limit leg), whose ``legs`` are the children's ids.
        What Alpaca refuses is refused here first (:func:`alpaca_refusal`), nothing sent.

        Raises :class:`~simbroker.errors.OrderStatusUnknown` when the answer was lost and
        Alpaca could not be asked about the order in time (resubmit the same
        ``client_order_id`` to learn its fate: it is never placed twice), and
        :class:`~simbroker.errors.BrokerConnectionError` without sending anything when an
        earlier order of the same symbol is still unresolved.
        """
        order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                             stop_price=stop_price, tif=tif, client_order_id=client_order_id,
                             order_class=order_class, take_profit=take_profit,
                             stop_loss=stop_loss, trail_amount=trail_amount,
                             trail_percent=trail_percent)
        refusal = alpaca_refusal(order, bool(extended_hours))
        if refusal is not None:
            raise refusal
        cid = order.client_order_id or f"sb-{uuid.uuid4().hex}"
        known = self.orders.by_client_id(cid)
        if known is not None:
            return self._same_or_error(known, order)
        self._resolve_pending(order.symbol, except_cid=cid)
        body = order_request(order, cid, extended_hours=bool(extended_hours))
        try:
            raw = self.rest.request("POST", "/orders", body=body, operation="submit_order",
                                    symbol=order.symbol, client_order_id=cid)
        except InvalidOrder as exc:
            if not is_duplicate_client_id(422, str(exc)):
                raise
            found = self._lookup(cid)  # placed before: by an earlier send or process
            if found is None:
                raise
            return self._placed(self._same_or_error(found, order), order, cid)
        except BrokerRateLimited:
            raise  # refused, not placed
        except OrderRejected as exc:  # 403: Alpaca refused it
            if order.client_order_id is not None:  # perhaps a resend: ask first
                return self._refused_resend(order, cid, exc)
            raise self._refused(order, cid, exc) from None
        except (BrokerConnectionError, BrokerAPIError) as exc:
            if isinstance(exc, BrokerAPIError) and not _is_server_error(exc):
                raise
            return self._after_lost_answer(order, cid, exc)
        return self._placed(self._remember(raw), order, cid)

    def _refused_resend(self, order: Order, cid: str, exc: OrderRejected) -> OrderInfo:
        """A 403 for an order sent under the caller's client_order_id, which may be the
        resend of an order already placed (a lost answer, a process restarted after its
        send): that first copy may be what makes this one break a rule (a closing sell
        whose first copy holds the position), and Alpaca does not document whether it
        weighs its rules before the duplicate id. So Alpaca is asked by client_order_id
        before the refusal is believed. Found: the order is placed. Not found: refused,
        never placed. No answer: its fate is unknown (pending until resolved)."""
        try:
            found = self._lookup(cid)
        except (BrokerConnectionError, BrokerAPIError):
            self.orders.add_pending(cid, order)
            raise OrderStatusUnknown(
                f"resent {order.side.value} {order.qty:g} {order.symbol}: Alpaca refused "
                f"the resend ({exc}) and could not be asked whether the first send was "
                f"placed; it stays pending_confirm: resubmit client_order_id {cid!r}",
                client_order_id=cid, symbol=order.symbol) from None
        if found is not None:
            return self._placed(self._same_or_error(found, order), order, cid)
        self.orders.drop_pending(cid)
        raise self._refused(order, cid, exc) from None

    def _refused(self, order: Order, cid: str, exc: OrderRejected) -> OrderRejected:
        """The typed error for Alpaca's 403 refusal of ``order`` (with the buying power
        or position read after it, when Alpaca answers in time), its ``rejected``
        trade-log record written."""
        price = order.limit_price if order.limit_price is not None else order.stop_price
        out = self._refusal_of(exc, symbol=order.symbol, side=order.side.value,
                               qty=order.qty, price=price, client_order_id=cid)
        if self.trade_log is not None:
            self.trade_log.write("rejected", self.now(), order_id=None, client_order_id=cid,
                                 symbol=order.symbol, side=order.side.value, qty=order.qty,
                                 order_type=order.order_type.value, reason=str(out))
        return out

    def _refusal_of(self, exc: OrderRejected, *, symbol: str, side: str, qty: float,
                    price: float | None, client_order_id: str | None,
                    replacing: OrderInfo | None = None) -> OrderRejected:
        """:func:`~simbroker.brokers.alpaca.account.refusal` for Alpaca's 403 ``exc``
        refusing an order of ``qty`` (a new one, or the replacement of open order
        ``replacing``), with the buying power, position and open orders read after it
        when Alpaca answers in time (NaN or unknown figures when it does not: the
        refusal stands). A replacement is weighed as Alpaca weighs it, the old order set
        aside: not among the open orders, and what it reserves (its opening part at its
        price) counted as available."""
        text = str(exc).lower()
        buying_power = position = opening = None
        try:
            if "buying power" in text:
                buying_power = float(self._get("/account", "get_account")["buying_power"])
                held = self.get_positions().get(symbol, 0.0)
                old = None if replacing is None else replacing["order_id"]
                same = sum(o["remaining_qty"] for o in self.get_orders(open_only=True)
                           if o["symbol"] == symbol and o["side"] == side
                           and o["status"] != "held" and o["order_id"] != old)
                opening = opening_qty(side, qty, held, same)
                if replacing is not None:
                    at = replacing["limit_price"] if replacing["limit_price"] is not None \
                        else replacing["stop_price"]
                    if at is not None:
                        buying_power += at * opening_qty(
                            side, replacing["remaining_qty"], held, same)
            elif "short" in text or QTY_AVAILABLE in text:
                position = self.get_positions().get(symbol, 0.0)
        except Exception:  # the refusal stands; only its figures are unknown
            log.info("Alpaca: no account figures for the refusal of %s", client_order_id)
        return refusal(exc, symbol=symbol, side=side, qty=qty, price=price,
                       client_order_id=client_order_id, buying_power=buying_power,
                       position=position, opening=opening)
