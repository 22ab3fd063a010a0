"""Alpaca's words in simbroker's: statuses, orders, fills, order requests and errors.

The shapes are alpaca-py's own models (``Order``, ``TradeUpdate``, the order request
classes), so what the adapter accepts from the wire is what the official SDK accepts.

Fill ids: a fill is ``{Alpaca order id}-{the order's cumulative filled qty after it}``.
Both sources carry both halves (a stream ``fill``/``partial_fill`` event holds the order
as of that execution, a FILL activity its ``order_id`` and ``cum_qty``), the pair is
unique per execution, and it does not depend on which process saw it first, so a fill
has the same id on the stream, in REST, and after a restart. (Alpaca documents no link
between the stream's ``execution_id`` and a FILL activity's ``id``, so neither can be
the shared id; and activities of one order in the same millisecond may be listed out of
order, which ``cum_qty`` is immune to.)

Fill times are truncated to the millisecond, the resolution of FILL activities'
``transaction_time``, whichever source a fill came from: a fill keeps one timestamp
across sources and restarts, and ``get_fills(since)`` compares like with like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from simbroker.errors import (
    BrokerAPIError,
    BrokerRateLimited,
    InvalidOrder,
    OrderRejected,
    SimbrokerError,
    UnknownOrder,
)
from simbroker.types import Fill, Order, OrderInfo, OrderStatus, OrderType

__all__ = ["FINAL_EVENT", "STATUS", "VenueOrder", "alpaca_refusal", "fill_from_activity",
           "fill_from_update", "fill_id", "fill_time", "http_error",
           "is_duplicate_client_id", "num", "order_info", "order_request",
           "replace_request", "same_order", "utc", "val", "venue_order"]

STATUS = {
    "new": OrderStatus.NEW, "accepted": OrderStatus.NEW, "pending_new": OrderStatus.NEW,
    "accepted_for_bidding": OrderStatus.NEW, "calculated": OrderStatus.NEW,
    "pending_cancel": OrderStatus.NEW, "pending_replace": OrderStatus.NEW,
    "pending_review": OrderStatus.NEW,
    "held": OrderStatus.HELD, "suspended": OrderStatus.NEW, "stopped": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED, "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED, "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED, "replaced": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}
"""Alpaca order status -> simbroker status, for one Alpaca order. (``replaced`` ends an
Alpaca order but not simbroker's: the order lives on under the replacement's id, see
:mod:`~simbroker.brokers.alpaca.orders`; ``held`` is a leg whose parent has not traded,
or a live stop leg that Alpaca keeps at home until it triggers.)"""

_VENUE_OPEN = frozenset(k for k, v in STATUS.items() if v.is_open)
"""Alpaca statuses of an Alpaca order that can still change."""

FINAL_EVENT = {OrderStatus.CANCELED: "canceled", OrderStatus.EXPIRED: "expired",
               OrderStatus.REJECTED: "rejected"}
"""The trade-log event for each final status that is not a fill."""


def fill_id(order_id: str, cum_qty: Any) -> str:
    """The id of the execution that took ``order_id`` to ``cum_qty`` filled."""
    return f"{order_id}-{float(cum_qty)!r}"


def val(x: Any) -> str:
    """An SDK enum's value, or ``x`` as a string."""
    return str(getattr(x, "value", x))


def fill_time(x: Any) -> datetime:
    """An execution time in UTC, truncated to the millisecond (see the module notes)."""
    t = utc(x)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def utc(x: Any) -> datetime:
    """A datetime or ISO-8601 string as a tz-aware UTC datetime."""
    if isinstance(x, datetime):
        return x.astimezone(timezone.utc) if x.tzinfo else x.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(x).replace("Z", "+00:00")).astimezone(timezone.utc)


def num(x: Any) -> float | None:
    """A number (Alpaca sends strings) as a float; ``None`` stays ``None``."""
    return None if x is None else float(x)


def order_info(o: Any) -> OrderInfo:
    """An alpaca-py ``Order`` (or the raw JSON dict, validated as one) as OrderInfo."""
    from alpaca.trading.models import Order as AlpacaOrder

    if isinstance(o, dict):
        o = AlpacaOrder(**o)
    raw_status = val(o.status)
    status = STATUS.get(raw_status, OrderStatus.NEW)
    filled = float(o.filled_qty or 0.0)
    return {
        "order_id": str(o.id), "client_order_id": o.client_order_id,
        "symbol": str(o.symbol), "side": val(o.side),
        "order_type": val(o.order_type or o.type), "tif": val(o.time_in_force),
        "qty": float(o.qty or 0.0), "limit_price": num(o.limit_price),
        "stop_price": num(o.stop_price), "status": status.value, "filled_qty": filled,
        "avg_fill_price": num(o.filled_avg_price) if filled else None,
        "submitted_at": utc(o.submitted_at or o.created_at),
        "reason": None if status is not OrderStatus.REJECTED else raw_status,
        "order_class": val(o.order_class) or "simple",
        "parent_id": None,
        "legs": [str(leg.id) for leg in o.legs or []],
        "trail_amount": num(o.trail_price), "trail_percent": num(o.trail_percent),
        "extended_hours": bool(o.extended_hours),
        "remaining_qty": max(0.0, float(o.qty or 0.0) - filled),
    }


@dataclass(frozen=True)
class VenueOrder:
    """One Alpaca order as Alpaca shows it, with what links it to others."""

    info: OrderInfo
    """Its state in simbroker's words (``order_id`` is Alpaca's id of this one order)."""
    raw_status: str
    """Alpaca's own status word (``held``, ``replaced``, ``pending_replace``, ...)."""
    updated_at: datetime
    replaces: str | None
    replaced_by: str | None
    legs: tuple[VenueOrder, ...]

    @property
    def order_id(self) -> str:
        """Alpaca's id of this order."""
        return self.info["order_id"]

    @property
    def is_open(self) -> bool:
        """True while this Alpaca order can still change (``replaced`` is final)."""
        return self.raw_status in _VENUE_OPEN


def venue_order(o: Any) -> VenueOrder:
    """An alpaca-py ``Order`` (or its JSON) with its nested legs, as a :class:`VenueOrder`."""
    from alpaca.trading.models import Order as AlpacaOrder

    if isinstance(o, dict):
        o = AlpacaOrder(**o)
    return VenueOrder(
        info=order_info(o), raw_status=val(o.status), updated_at=utc(o.updated_at or o.created_at),
        replaces=None if o.replaces is None else str(o.replaces),
        replaced_by=None if o.replaced_by is None else str(o.replaced_by),
        legs=tuple(venue_order(leg) for leg in o.legs or []))


def alpaca_refusal(order: Order, extended_hours: bool) -> InvalidOrder | None:
    """What Alpaca would refuse in ``order`` that :meth:`Order.create` accepts, as the
    error to raise locally (nothing is sent), or ``None``.

    Alpaca's documented rules: extended hours only for simple day limit orders;
    trailing stops only day or gtc; a bracket/OTO entry only market or limit;
    fractional quantities only for simple day orders that are not trailing stops.
    """
    kind, tif, klass = order.order_type.value, order.tif.value, order.order_class.value
    sym = order.symbol

    def bad(field: str, value: Any, why: str) -> InvalidOrder:
        return InvalidOrder(f"Alpaca refuses this {order.side.value} {kind} order for {sym}: "
                            f"{why}", field=field, value=value, symbol=sym,
                            client_order_id=order.client_order_id)

    if extended_hours and not (kind == "limit" and tif == "day" and klass == "simple"):
        return bad("extended_hours", True, "extended hours take only simple day limit "
                                           "orders")
    if order.order_type is OrderType.TRAILING_STOP and tif not in ("day", "gtc"):
        return bad("tif", tif, "trailing stops must be day or gtc")
    if klass in ("bracket", "oto") and kind not in ("market", "limit"):
        return bad("order_type", kind, f"a {klass} entry must be a market or limit order")
    if order.qty != int(order.qty):
        if klass != "simple":
            return bad("qty", order.qty, f"fractional quantities take no {klass} orders")
        if tif != "day":
            return bad("qty", order.qty, "fractional orders must be day orders")
        if order.order_type is OrderType.TRAILING_STOP:
            return bad("qty", order.qty, "fractional orders cannot be trailing stops")
    return None


def order_request(order: Order, client_order_id: str, *,
                  extended_hours: bool = False) -> dict[str, Any]:
    """The JSON body of ``POST /v2/orders``, built and validated by alpaca-py's models:
    ``order_class`` with ``take_profit``/``stop_loss``, ``trailing_stop`` with
    ``trail_price`` (simbroker's ``trail_amount``) or ``trail_percent``, the tif, and
    ``extended_hours``."""
    from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
    from alpaca.trading.requests import (
        LimitOrderRequest,
        MarketOrderRequest,
        StopLimitOrderRequest,
        StopLossRequest,
        StopOrderRequest,
        TakeProfitRequest,
        TrailingStopOrderRequest,
    )

    common: dict[str, Any] = {
        "symbol": order.symbol, "qty": order.qty,
        "side": OrderSide.BUY if order.side.value == "buy" else OrderSide.SELL,
        "time_in_force": TimeInForce(order.tif.value),
        "client_order_id": client_order_id,
    }
    if extended_hours:
        common["extended_hours"] = True
    if order.order_class.value != "simple":
        common["order_class"] = OrderClass(order.order_class.value)
        if order.take_profit is not None:
            common["take_profit"] = TakeProfitRequest(
                limit_price=order.take_profit.limit_price)
        if order.stop_loss is not None:
            common["stop_loss"] = StopLossRequest(stop_price=order.stop_loss.stop_price,
                                                  limit_price=order.stop_loss.limit_price)
    kind = order.order_type.value
    req: Any
    if kind == "market":
        req = MarketOrderRequest(**common)
    elif kind == "limit":
        req = LimitOrderRequest(limit_price=order.limit_price, **common)
    elif kind == "stop":
        req = StopOrderRequest(stop_price=order.stop_price, **common)
    elif kind == "stop_limit":
        req = StopLimitOrderRequest(limit_price=order.limit_price,
                                    stop_price=order.stop_price, **common)
    else:
        req = TrailingStopOrderRequest(trail_price=order.trail_amount,
                                       trail_percent=order.trail_percent, **common)
    body: dict[str, Any] = req.to_request_fields()
    return body


def replace_request(*, qty: int | None, limit_price: float | None,
                    stop_price: float | None, trail: float | None, tif: str | None,
                    client_order_id: str) -> dict[str, Any]:
    """The JSON body of ``PATCH /v2/orders/{id}`` (alpaca-py's ``ReplaceOrderRequest``)."""
    from alpaca.trading.enums import TimeInForce
    from alpaca.trading.requests import ReplaceOrderRequest

    req = ReplaceOrderRequest(qty=qty, limit_price=limit_price, stop_price=stop_price,
                              trail=trail, client_order_id=client_order_id,
                              time_in_force=None if tif is None else TimeInForce(tif))
    body: dict[str, Any] = req.to_request_fields()
    return body


def same_order(info: OrderInfo, order: Order) -> bool:
    """True when ``info`` (what Alpaca holds under a client_order_id) is ``order``."""
    return (info["symbol"] == order.symbol and info["side"] == order.side.value
            and math.isclose(info["qty"], order.qty)
            and info["order_type"] == order.order_type.value)


def fill_from_activity(a: dict[str, Any], client_order_id: str | None) -> Fill:
    """One FILL activity (``GET /v2/account/activities/FILL``) as a Fill."""
    oid = str(a["order_id"])
    qty, price = float(a["qty"]), float(a["price"])
    return {"fill_id": fill_id(oid, a["cum_qty"]), "order_id": oid,
            "client_order_id": client_order_id, "timestamp": fill_time(a["transaction_time"]),
            "symbol": str(a["symbol"]), "side": val(a["side"]), "qty": qty, "price": price,
            "fee": 0.0, "notional": qty * price}


def fill_from_update(update: Any) -> Fill | None:
    """The Fill in an alpaca-py ``TradeUpdate``, or ``None`` if it is not an execution."""
    if val(update.event) not in ("fill", "partial_fill") or update.qty is None:
        return None
    o = update.order
    oid = str(o.id)
    qty, price = float(update.qty), float(update.price)
    return {"fill_id": fill_id(oid, o.filled_qty), "order_id": oid,
            "client_order_id": o.client_order_id, "timestamp": fill_time(update.timestamp),
            "symbol": str(o.symbol), "side": val(o.side), "qty": qty, "price": price,
            "fee": 0.0, "notional": qty * price}


def is_duplicate_client_id(status: int, message: str) -> bool:
    """Alpaca's refusal of a ``client_order_id`` it already holds (422)."""
    text = message.lower()
    return status == 422 and "client_order_id" in text and "unique" in text


def http_error(status: int, code: Any, message: str, *, symbol: str | None = None,
               client_order_id: str | None = None, order_id: str | None = None,
               retry_after: float | None = None) -> SimbrokerError:
    """The simbroker error for an HTTP error answer from Alpaca."""
    if status == 401:
        return BrokerAPIError(f"Alpaca refused the API keys (401): {message}", code=401)
    if status == 403:
        return OrderRejected(f"Alpaca refused the order (403): {message}", symbol=symbol,
                             client_order_id=client_order_id)
    if status == 404:
        return UnknownOrder(order_id or client_order_id or "?")
    if status == 422:
        return InvalidOrder(f"Alpaca rejected the request (422): {message}", symbol=symbol,
                            client_order_id=client_order_id)
    if status == 429:
        return BrokerRateLimited(f"Alpaca rate limit (429): {message}",
                                 retry_after=retry_after)
    detail = f" [Alpaca code {code}]" if code is not None else ""
    return BrokerAPIError(f"Alpaca error {status}: {message}{detail}", code=status)
