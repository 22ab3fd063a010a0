"""IB <-> simbroker: order types, statuses, error and notice codes, times, fills.

Pure functions and tables: nothing here talks to TWS.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from simbroker.types import Fill, OrderStatus

try:
    import ib_async as ib_lib
except ImportError:  # pragma: no cover - the older library, same API (tested in .ci/run)
    import ib_insync as ib_lib  # type: ignore[no-redef]

__all__ = [
    "CANCELED_CODE", "INFORMATIONAL", "LIB", "LIVE_PORTS", "NOTICES", "OPEN_STATES",
    "REJECTING", "REPLACE_REFUSALS", "TYPES", "TYPES_BACK", "UNSET", "fill_of", "ib_lib",
    "ib_order_of", "ib_price", "ib_tif", "ib_type", "kind_of", "status_of", "tif_of", "utc",
]

LIB: str = ib_lib.__name__
"""The client library in use: ``"ib_async"`` (preferred) or ``"ib_insync"``."""

LIVE_PORTS = frozenset({7496, 4001})
OPEN_STATES = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted",
                         "PendingCancel", "ApiUpdate", "ValidationError"})
TYPES = {"market": "MKT", "limit": "LMT", "stop": "STP", "stop_limit": "STP LMT",
         "trailing_stop": "TRAIL"}
_AUCTION_CLOSE = {"market": "MOC", "limit": "LOC"}
"""``tif="cls"``: IB's on-close order types (market / limit on close), tif DAY."""
TYPES_BACK = {**{v: k for k, v in TYPES.items()}, "MOC": "market", "LOC": "limit"}
_TIFS = {"day": "DAY", "gtc": "GTC", "opg": "OPG", "ioc": "IOC", "fok": "FOK", "cls": "DAY"}
_TIFS_BACK = {v: k for k, v in _TIFS.items() if k != "cls"}

REJECTING = {200: "no security definition", 201: "order rejected", 103: "duplicate order id",
             110: "price does not conform to the minimum tick"}
"""Error codes that end an order as rejected (with IB's text as the reason)."""
REPLACE_REFUSALS = {103: "the order is no longer open at TWS",
                    104: "TWS says the order is filled",
                    105: "the modification does not match the original order",
                    110: "price does not conform to the minimum tick",
                    135: "TWS cannot find the order",
                    201: "TWS rejected the modification",
                    321: "TWS could not validate the modification",
                    329: "TWS cannot change the order type",
                    10147: "TWS cannot find the order",
                    10148: "the order is no longer open at TWS"}
"""Error codes TWS answers a modification (placeOrder with a used orderId) with; the
order itself is unchanged (and, for 103/104/10148, no longer open)."""
CANCELED_CODE = 202
"""``Order Canceled - reason:``: the order is canceled (TWS sends orderStatus too)."""
INFORMATIONAL = frozenset({10349, 399, 404, 434, 2109})
"""Order-related codes that never change the order's state (10349: TIF set by preset)."""
NOTICES = {
    1100: "lost",        # TWS lost IB's servers: nothing can be traded, not ready
    1101: "data lost",   # restored; subscriptions lost: resubscribe and resync everything
    1102: "maintained",  # restored, data maintained: resync orders and executions
}
"""System notices (reqId -1) that move the connection state."""

UNSET = 1.7976931348623157e308


def utc(t: Any) -> datetime:
    """``t`` (a datetime or ISO text) as an aware UTC datetime; naive is taken as UTC,
    anything else is now."""
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t)
        except ValueError:
            return datetime.now(timezone.utc)
    if isinstance(t, datetime):
        return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


def ib_price(x: Any) -> float | None:
    """An IB price field: ``None`` when unset (UNSET_DOUBLE, empty, not finite)."""
    if x is None or x == "" or x == UNSET:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def ib_tif(tif: str) -> str:
    """simbroker's time in force as IB's (always set: TWS's preset may differ). ``cls`` is
    an order type at IB (``MOC``/``LOC``), so its tif is ``DAY``."""
    return _TIFS[tif]


def ib_type(order_type: str, tif: str) -> str:
    """simbroker's order type as IB's: ``MKT``, ``LMT``, ``STP``, ``STP LMT``, ``TRAIL``,
    or ``MOC``/``LOC`` for a market/limit order with ``tif="cls"``."""
    if tif == "cls":
        return _AUCTION_CLOSE[order_type]
    return TYPES[order_type]


def tif_of(ib: str, ib_order_type: str = "") -> str:
    """IB's time in force as simbroker's (``day`` when IB's is empty; ``cls`` for the
    on-close order types)."""
    if ib_order_type in ("MOC", "LOC"):
        return "cls"
    return _TIFS_BACK.get(ib or "DAY", ib.lower())


def ib_order_of(entry: Any, oid: int, parent_oid: int = 0, account: str = "") -> Any:
    """An order (an :class:`~simbroker.brokers.ibkr.orders.OrderEntry`: side, qty, type,
    tif, prices, trail, ``extended_hours``, ``transmit``, ``order_class``, ``group_id``)
    as the ib ``Order`` placed under IB order id ``oid`` (child of ``parent_oid``)."""
    o = ib_lib.Order(orderId=oid, action="BUY" if entry.side == "buy" else "SELL",
                     totalQuantity=entry.qty, orderType=ib_type(entry.order_type, entry.tif),
                     tif=ib_tif(entry.tif), orderRef=entry.order_id, account=account,
                     transmit=entry.transmit, outsideRth=entry.extended_hours)
    if entry.limit_price is not None:
        o.lmtPrice = entry.limit_price
    if entry.stop_price is not None:
        o.auxPrice = entry.stop_price
    if entry.trail_amount is not None:
        o.auxPrice = entry.trail_amount
    if entry.trail_percent is not None:
        o.trailingPercent = entry.trail_percent
    if parent_oid:
        o.parentId = parent_oid
    if entry.order_class == "oco":
        o.ocaGroup, o.ocaType = f"sb-oca-{entry.group_id}", 1
    return o


def kind_of(order: Any) -> dict[str, Any]:
    """An IB order's type, time in force, prices and trail in simbroker's terms
    (``order_type`` is ``""`` for a type simbroker does not place)."""
    ib_kind = str(order.orderType or "")
    kind = TYPES_BACK.get(ib_kind, "")
    pct = ib_price(getattr(order, "trailingPercent", None))
    trailing = kind == "trailing_stop"
    return {"order_type": kind, "tif": tif_of(str(order.tif or ""), ib_kind),
            "limit_price": ib_price(order.lmtPrice) if kind in ("limit", "stop_limit")
            else None,
            "stop_price": ib_price(order.auxPrice) if kind in ("stop", "stop_limit")
            else None,
            "trail_amount": ib_price(order.auxPrice) if trailing and pct is None else None,
            "trail_percent": pct if trailing else None,
            "extended_hours": bool(getattr(order, "outsideRth", False))}


def status_of(ib_status: str, filled: float) -> OrderStatus:
    """IB's status of an order TWS has acknowledged, as simbroker's.

    Only for statuses TWS sent: ``PendingSubmit`` before any answer is the registry's
    ``pending_confirm``, never ``new``.
    """
    if ib_status == "Filled":
        return OrderStatus.FILLED
    if ib_status in ("Cancelled", "ApiCancelled"):
        return OrderStatus.CANCELED
    if ib_status == "Inactive":
        return OrderStatus.REJECTED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW


def fill_of(fill: Any, order_id: str) -> Fill:
    """An ib fill (execution + commission report) as a simbroker :class:`Fill`.

    ``timestamp`` is the execution time TWS stamped (whole seconds); the broker books
    the fill at its own receive time instead.
    """
    ex = fill.execution
    qty, price = float(ex.shares), float(ex.price)
    return {"fill_id": str(ex.execId), "order_id": order_id,
            "client_order_id": ex.orderRef or None, "timestamp": utc(ex.time),
            "symbol": str(fill.contract.symbol),
            "side": "buy" if ex.side == "BOT" else "sell", "qty": qty, "price": price,
            "fee": float(fill.commissionReport.commission or 0.0), "notional": qty * price}
