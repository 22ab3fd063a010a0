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
    "REJECTING", "TYPES", "TYPES_BACK", "fill_of", "ib_lib", "ib_price", "ib_tif",
    "status_of", "tif_of", "utc",
]

LIB: str = ib_lib.__name__
"""The client library in use: ``"ib_async"`` (preferred) or ``"ib_insync"``."""

LIVE_PORTS = frozenset({7496, 4001})
OPEN_STATES = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted",
                         "PendingCancel", "ApiUpdate", "ValidationError"})
TYPES = {"market": "MKT", "limit": "LMT", "stop": "STP", "stop_limit": "STP LMT"}
TYPES_BACK = {v: k for k, v in TYPES.items()}
_TIFS = {"day": "DAY", "gtc": "GTC", "opg": "OPG", "ioc": "IOC", "fok": "FOK"}
_TIFS_BACK = {v: k for k, v in _TIFS.items()}

REJECTING = {200: "no security definition", 201: "order rejected", 103: "duplicate order id",
             110: "price does not conform to the minimum tick"}
"""Error codes that end an order as rejected (with IB's text as the reason)."""
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
    """simbroker's time in force as IB's (always set: TWS's preset may differ)."""
    return _TIFS[tif]


def tif_of(ib: str) -> str:
    """IB's time in force as simbroker's (``day`` when IB's is empty)."""
    return _TIFS_BACK.get(ib or "DAY", ib.lower())


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
