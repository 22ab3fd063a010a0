"""The adapter's one truth per order: Alpaca's order id <-> ``client_order_id``.

An order's simbroker id is Alpaca's order id (a UUID that Alpaca keeps for good, so it
is stable across reconnects and restarts); every order also carries a
``client_order_id``, which is how an order is found again when the answer to its send
was lost. An order sent but not yet seen at Alpaca is *pending*: it is known only by its
``client_order_id`` until a lookup, a stream event or a reconcile shows it.

Updates are merged monotonically, because the stream may repeat or reorder events and
REST may answer with an older snapshot than the stream's: a final status is never
reopened, and a snapshot with less filled than already seen is ignored.

Every method is quick and never does I/O; the lock is never held across the network.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from simbroker.types import Order, OrderInfo, OrderStatus

__all__ = ["OrderRegistry", "Pending"]


@dataclass
class Pending:
    """An order that was sent but whose fate is not yet known."""

    client_order_id: str
    order: Order
    sent_at: float = field(default_factory=time.monotonic)


class OrderRegistry:
    """Orders by Alpaca id and by client_order_id; pending sends by client_order_id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, OrderInfo] = {}
        self._by_cid: dict[str, str] = {}
        self._pending: dict[str, Pending] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def update(self, info: OrderInfo) -> tuple[OrderInfo, bool, Pending | None]:
        """Merge what Alpaca says about an order; return the merged state, whether this
        update made it final, and the pending send it resolved (if any)."""
        oid = info["order_id"]
        with self._lock:
            old = self._by_id.get(oid)
            cid = info["client_order_id"]
            resolved = None
            if cid:
                self._by_cid[cid] = oid
                resolved = self._pending.pop(cid, None)
            if old is not None:
                old_open = OrderStatus(old["status"]).is_open
                if not old_open or info["filled_qty"] < old["filled_qty"]:
                    return old, False, resolved
                if info["filled_qty"] == old["filled_qty"] and \
                        OrderStatus(info["status"]).is_open and \
                        old["status"] != OrderStatus.NEW.value:
                    return old, False, resolved  # a repeated or older open snapshot
            self._by_id[oid] = info
            final = not OrderStatus(info["status"]).is_open
            return (info, final and (old is None or OrderStatus(old["status"]).is_open),
                    resolved)

    def get(self, order_id: str) -> OrderInfo | None:
        """The order with Alpaca id ``order_id``, if known."""
        with self._lock:
            return self._by_id.get(order_id)

    def by_client_id(self, client_order_id: str) -> OrderInfo | None:
        """The order known under ``client_order_id``, if any."""
        with self._lock:
            oid = self._by_cid.get(client_order_id)
            return self._by_id.get(oid) if oid is not None else None

    def client_id_of(self, order_id: str) -> str | None:
        """The client_order_id of a known order."""
        with self._lock:
            info = self._by_id.get(order_id)
            return info["client_order_id"] if info is not None else None

    def add_pending(self, client_order_id: str, order: Order) -> None:
        """Record a send whose answer was lost (unless the order is known by now)."""
        with self._lock:
            if client_order_id not in self._by_cid:
                self._pending.setdefault(client_order_id, Pending(client_order_id, order))

    def drop_pending(self, client_order_id: str) -> None:
        """Forget a pending send (it was resolved, or judged never placed)."""
        with self._lock:
            self._pending.pop(client_order_id, None)

    def pending(self, symbol: str | None = None) -> list[Pending]:
        """Pending sends (of ``symbol``, if given), oldest first."""
        with self._lock:
            rows = list(self._pending.values())
        return [p for p in rows if symbol is None or p.order.symbol == symbol]

    def all(self) -> list[OrderInfo]:
        """Every known order."""
        with self._lock:
            return list(self._by_id.values())
