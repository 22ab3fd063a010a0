"""Alpaca's words in simbroker's: order statuses, times, numbers, fill ids."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from simbroker.types import OrderStatus

__all__ = ["FINAL_EVENT", "STATUS", "fill_id", "num", "utc", "val"]

STATUS = {
    "new": OrderStatus.NEW, "accepted": OrderStatus.NEW, "pending_new": OrderStatus.NEW,
    "accepted_for_bidding": OrderStatus.NEW, "calculated": OrderStatus.NEW,
    "pending_cancel": OrderStatus.NEW, "pending_replace": OrderStatus.NEW,
    "held": OrderStatus.NEW, "suspended": OrderStatus.NEW, "stopped": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED, "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED, "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED, "replaced": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}
FINAL_EVENT = {OrderStatus.CANCELED: "canceled", OrderStatus.EXPIRED: "expired",
                OrderStatus.REJECTED: "rejected"}


def fill_id(order_id: str, cum_qty: Any) -> str:
    """The id of the execution that took ``order_id`` to ``cum_qty`` filled."""
    return f"{order_id}-{float(cum_qty)!r}"


def val(x: Any) -> str:
    return str(getattr(x, "value", x))


def utc(x: Any) -> datetime:
    if isinstance(x, datetime):
        return x.astimezone(timezone.utc) if x.tzinfo else x.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(x).replace("Z", "+00:00")).astimezone(timezone.utc)


def num(x: Any) -> float | None:
    return None if x is None else float(x)


