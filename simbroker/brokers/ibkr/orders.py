"""The order registry: one truth per order, keyed by simbroker's own order id.

An order's id is the ``orderRef`` it carries at IB: the caller's ``client_order_id`` when
one was given, else a generated ``sb-<hex>``. TWS keeps ``orderRef`` on the order, its
executions and its completed record, so the id survives reconnects and restarts. IB's
``orderId`` (reassigned from ``nextValidId`` on every connection, so never a key) and
``permId`` are mapped to it here. An order IB knows without an ``orderRef`` (placed by
another tool) is ``perm-<permId>``.

The registry holds no lock of its own and does no I/O: the broker calls it under its
state lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simbroker.brokers.ibkr.translate import (
    CANCELED_CODE,
    REJECTING,
    TYPES_BACK,
    ib_price,
    status_of,
    tif_of,
    utc,
)
from simbroker.types import OrderInfo, OrderStatus

__all__ = ["NOT_RECEIVED", "OrderEntry", "OrderRegistry"]

NOT_RECEIVED = ("not received by IBKR: the connection dropped before TWS read the order "
                "(none of IB's open orders, completed orders or executions has it); "
                "resubmitting the same client_order_id places it")


@dataclass
class OrderEntry:
    """One order as the adapter knows it.

    ``status`` is ``pending_confirm`` from the moment the order is sent until TWS answers
    (or, after a drop, until IB's records resolve it). ``not_received`` marks an order
    resolved as never having reached TWS: it is rejected, and its id may be placed again.
    """

    order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    qty: float
    order_type: str
    tif: str
    limit_price: float | None
    stop_price: float | None
    submitted_at: datetime
    status: OrderStatus = OrderStatus.PENDING_CONFIRM
    filled_qty: float = 0.0
    avg_fill_price: float | None = None
    reason: str | None = None
    ib_order_id: int = 0
    perm_id: int = 0
    ib_status: str = ""
    not_received: bool = False
    fill_ids: set[str] = field(default_factory=set)
    sent_seq: int = 0
    """Order of its placeOrder on the socket (0: not written yet)."""
    sent_gen: int = 0
    """The connection generation it was written on."""

    @property
    def is_open(self) -> bool:
        """Not in a final state (``pending_confirm`` is open)."""
        return self.status.is_open

    def info(self) -> OrderInfo:
        """The order as :class:`~simbroker.types.OrderInfo`."""
        return {"order_id": self.order_id, "client_order_id": self.client_order_id,
                "symbol": self.symbol, "side": self.side, "order_type": self.order_type,
                "tif": self.tif, "qty": self.qty, "limit_price": self.limit_price,
                "stop_price": self.stop_price, "status": self.status.value,
                "filled_qty": self.filled_qty, "avg_fill_price": self.avg_fill_price,
                "submitted_at": self.submitted_at, "reason": self.reason}


class OrderRegistry:
    """Orders by own id, with IB's ``orderId`` and ``permId`` mapped to them."""

    def __init__(self) -> None:
        self._orders: dict[str, OrderEntry] = {}
        self._by_ib: dict[int, str] = {}
        self._by_perm: dict[int, str] = {}
        self.max_ib_id = 0
        """The highest IB order id this adapter ever used: new ones go above it."""
        self.known: dict[str, dict[str, Any]] = {}
        """Submissions read back from the trade log (by order id), to rebuild an order
        IB reports only by its executions with its real type and prices."""

    def __len__(self) -> int:
        return len(self._orders)

    def get(self, order_id: str) -> OrderEntry | None:
        """The order with this own id."""
        return self._orders.get(order_id)

    def all(self) -> list[OrderEntry]:
        """Every order, in submission order."""
        return list(self._orders.values())

    def pending(self, symbol: str | None = None) -> list[OrderEntry]:
        """Orders whose fate is not known yet (of ``symbol``, or all)."""
        return [e for e in self._orders.values() if e.status is OrderStatus.PENDING_CONFIRM
                and (symbol is None or e.symbol == symbol)]

    def add(self, entry: OrderEntry) -> None:
        """Register a new order (or a not-received one placed again under its id)."""
        self._orders[entry.order_id] = entry

    def bind(self, entry: OrderEntry, *, ib_order_id: int = 0, perm_id: int = 0) -> None:
        """Record IB's ids for ``entry``."""
        if ib_order_id > 0:
            if entry.ib_order_id and self._by_ib.get(entry.ib_order_id) == entry.order_id:
                del self._by_ib[entry.ib_order_id]
            entry.ib_order_id = ib_order_id
            self._by_ib[ib_order_id] = entry.order_id
            self.max_ib_id = max(self.max_ib_id, ib_order_id)
        if perm_id > 0:
            entry.perm_id = perm_id
            self._by_perm[perm_id] = entry.order_id

    def unbind_ib_id(self, entry: OrderEntry) -> None:
        """Forget ``entry``'s IB order id (TWS never saw it, so it means nothing)."""
        if entry.ib_order_id and self._by_ib.get(entry.ib_order_id) == entry.order_id:
            del self._by_ib[entry.ib_order_id]
        entry.ib_order_id = 0

    def by_ib_id(self, ib_order_id: int) -> OrderEntry | None:
        """The order IB knows by this order id on this client id."""
        oid = self._by_ib.get(ib_order_id)
        return None if oid is None else self._orders.get(oid)

    def find(self, order_ref: str, perm_id: int, ib_order_id: int) -> OrderEntry | None:
        """The order IB describes by these ids: ``orderRef`` first, then ``permId``, then
        the order id."""
        if order_ref and order_ref in self._orders:
            return self._orders[order_ref]
        if perm_id > 0 and perm_id in self._by_perm:
            return self._orders.get(self._by_perm[perm_id])
        if ib_order_id > 0 and not order_ref:
            return self.by_ib_id(ib_order_id)
        return None

    # ------------------------------------------------------------------ from IB
    def absorb_trade(self, trade: Any, *, acknowledged: bool) -> OrderEntry | None:
        """Update (or adopt) the order an ib ``Trade`` describes; return it.

        ``acknowledged`` says the trade's state came from TWS (an openOrder, orderStatus
        or completedOrder message), not from the client's own bookkeeping.
        """
        o, st = trade.order, trade.orderStatus
        ref, perm, ib_id = str(o.orderRef or ""), int(o.permId or 0), int(o.orderId or 0)
        entry = self.find(ref, perm, ib_id)
        if entry is None:
            if not acknowledged or (not ref and not perm):
                return None
            entry = self._adopt(trade, ref or f"perm-{perm}")
        self.bind(entry, ib_order_id=ib_id, perm_id=perm)
        if not acknowledged:
            return entry
        raw = str(st.status or "")
        last = trade.log[-1] if trade.log else None
        code = int(getattr(last, "errorCode", 0) or 0) if last is not None else 0
        if code in REJECTING and entry.status is not OrderStatus.FILLED:
            self.reject(entry, code, str(getattr(last, "message", "")))
            return entry
        if code and code != CANCELED_CODE and raw in ("Cancelled", "ValidationError"):
            # ib marks a trade Cancelled (or ValidationError) on an error code it does not
            # know (10349 and others are informational at IB); TWS did not say so.
            return entry
        if raw in ("", "PendingSubmit", "ApiPending") and entry.status is \
                OrderStatus.PENDING_CONFIRM:
            return entry  # the client's own echo, not an answer from TWS
        entry.ib_status = raw
        filled = float(st.filled or 0.0)
        if filled > entry.filled_qty:
            entry.filled_qty = filled
            entry.avg_fill_price = float(st.avgFillPrice) if st.avgFillPrice else None
        if entry.is_open:
            entry.status = status_of(raw, entry.filled_qty) if raw else OrderStatus.NEW
        return entry

    def _adopt(self, trade: Any, order_id: str) -> OrderEntry:
        """An order of this client id that IB knows and this session did not place."""
        o = trade.order
        kind = TYPES_BACK.get(str(o.orderType), "")
        log = self.known.get(order_id, {})
        when = utc(log["ts"]) if "ts" in log else (
            utc(trade.log[0].time) if trade.log else utc(None))
        entry = OrderEntry(
            order_id=order_id, client_order_id=str(o.orderRef) or None,
            symbol=str(trade.contract.symbol), side="buy" if o.action == "BUY" else "sell",
            qty=float(o.totalQuantity), order_type=kind or str(log.get("order_type", "")),
            tif=tif_of(str(o.tif or "")),
            limit_price=ib_price(o.lmtPrice) if kind in ("limit", "stop_limit") else None,
            stop_price=ib_price(o.auxPrice) if kind in ("stop", "stop_limit") else None,
            submitted_at=when, status=OrderStatus.NEW)
        self.add(entry)
        return entry

    def adopt_from_fills(self, order_id: str, fills: list[Any]) -> OrderEntry:
        """An order IB reports only by its executions (its record is gone from open and
        completed orders). Its type, prices and time in force come from the trade log
        when it has the submission; IB's executions do not carry them."""
        first = fills[0].execution
        log = self.known.get(order_id, {})
        qty = sum(float(f.execution.shares) for f in fills)
        entry = OrderEntry(
            order_id=order_id, client_order_id=str(first.orderRef) or None,
            symbol=str(fills[0].contract.symbol),
            side="buy" if first.side == "BOT" else "sell",
            qty=float(log.get("qty", qty)),
            order_type=str(log.get("order_type", "unknown")),
            tif=str(log.get("tif", "day")), limit_price=log.get("limit_price"),
            stop_price=log.get("stop_price"),
            submitted_at=utc(log["ts"]) if "ts" in log else utc(first.time),
            status=OrderStatus.NEW)
        self.add(entry)
        self.bind(entry, perm_id=int(first.permId or 0))
        return entry

    def reject(self, entry: OrderEntry, code: int, text: str) -> None:
        """TWS refused ``entry`` with error ``code``."""
        entry.status = OrderStatus.REJECTED
        entry.reason = f"error {code} ({REJECTING.get(code, 'rejected')}): {text}"

    def mark_not_received(self, entry: OrderEntry) -> None:
        """Resolved: IB has no trace of ``entry``; it never reached TWS."""
        self.unbind_ib_id(entry)
        entry.status = OrderStatus.REJECTED
        entry.not_received = True
        entry.reason = NOT_RECEIVED
