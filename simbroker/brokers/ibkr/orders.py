"""The order registry: one truth per order, keyed by simbroker's own order id.

An order's id is the ``orderRef`` it carries at IB: the caller's ``client_order_id`` when
one was given, else a generated ``sb-<hex>``. The legs of a bracket, OTO or OCO are
``<id>.tp`` (take-profit) and ``<id>.sl`` (stop-loss), so a group is rebuilt from IB's
records alone (completed orders do not carry ``parentId``). TWS keeps ``orderRef`` on the order, its
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
    kind_of,
    status_of,
    utc,
)
from simbroker.types import OrderInfo, OrderStatus

__all__ = ["LEG_SUFFIXES", "NOT_RECEIVED", "OrderEntry", "OrderRegistry"]

LEG_SUFFIXES = (".tp", ".sl")
"""The take-profit and stop-loss legs' ids: the group's id plus these."""

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
    order_class: str = "simple"
    parent_id: str | None = None
    legs: list[str] = field(default_factory=list)
    group_id: str | None = None
    """The id of the group's first order (a bracket/OTO parent, an OCO's limit leg)."""
    trail_amount: float | None = None
    trail_percent: float | None = None
    extended_hours: bool = False
    transmit: bool = True
    """False for a group leg TWS holds untransmitted until the group's last leg."""
    replacing: dict[str, Any] | None = None
    """The fields of a modification TWS has not answered yet."""
    replace_answer: tuple[int, str] | None = None
    """TWS's answer to it: ``(0, "")`` accepted, else the error code and text."""
    replace_log: set[int] = field(default_factory=set)
    """Indexes of the ib trade's log entries that answered a modification (their error
    code is the modification's, not the order's)."""
    refusal: tuple[int, str] | None = None
    """TWS's refusal (error code and text) of the modification it answered last, kept
    until the next modification of the order is sent or the connection is replaced:
    TWS may send it again, and a repeat is not a refusal of the order. It is bound to
    that one modification: the next one's answer, even in the same words, is its own."""
    repeats_read: bool = False
    """A round trip after :attr:`refusal` completed on its connection, so every repeat
    TWS sent right after the refusal has been read; until then the next modification
    waits for one (a repeat read after it was sent would pass for its answer)."""
    unanswered: dict[str, Any] | None = None
    """The fields of a modification sent whose answer did not come in time: a late
    error answers it (the order works on unchanged), a late openOrder showing it means
    TWS took it. Cleared by either, and by a new connection's sync."""

    def repeats_refusal(self, code: int, text: str) -> bool:
        """Whether error ``code`` with ``text`` (TWS's, or ib's log line quoting it)
        repeats the refusal of the modification TWS answered last."""
        return self.refusal is not None and code == self.refusal[0] and \
            self.refusal[1] in text

    def awaits_modify_answer(self) -> bool:
        """Whether an error now answers a modification of this order (one in flight, or
        one whose answer was late) rather than the order itself."""
        return (self.replacing is not None and self.replace_answer is None) or \
            self.unanswered is not None

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
                "submitted_at": self.submitted_at, "reason": self.reason,
                "order_class": self.order_class, "parent_id": self.parent_id,
                "legs": list(self.legs), "trail_amount": self.trail_amount,
                "trail_percent": self.trail_percent, "extended_hours": self.extended_hours,
                "remaining_qty": max(self.qty - self.filled_qty, 0.0)}


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

    def members(self, entry: OrderEntry) -> list[OrderEntry]:
        """``entry``'s group, first order then legs (just ``entry`` outside a group)."""
        head = self._orders.get(entry.group_id or "") if entry.group_id else None
        if head is None:
            return [entry]
        return [head, *(e for e in (self._orders.get(i) for i in head.legs) if e is not None)]

    def relate(self, entry: OrderEntry) -> list[OrderEntry]:
        """Bring ``entry``'s group in line with what IB said of its members: children of a
        bracket/OTO are ``held`` until the parent has filled something, and a leg canceled
        by its sibling's fill or its parent's end says so. Returns the children that just
        became live (``activated``)."""
        group = self.members(entry)
        if len(group) < 2:
            return []
        head, legs = group[0], group[1:]
        activated = []
        if head.order_class in ("bracket", "oto"):
            for child in legs:
                if child.status is OrderStatus.NEW and head.filled_qty <= 0:
                    child.status = OrderStatus.HELD
                elif child.status is OrderStatus.HELD and head.filled_qty > 0:
                    child.status = OrderStatus.NEW
                    activated.append(child)
                if child.status is OrderStatus.CANCELED and child.reason is None \
                        and not head.is_open and head.filled_qty <= 0:
                    child.reason = (f"its parent {head.order_id} was {head.status.value} "
                                    f"before it filled")
            exits = legs
        else:
            exits = group
        done = next((e for e in exits if e.filled_qty > 0), None)
        if done is not None:
            for e in exits:
                if e is not done and e.status is OrderStatus.CANCELED and e.reason is None:
                    e.reason = (f"canceled by the fill of its sibling {done.order_id} "
                                f"(one cancels the other)")
        return activated

    def relink(self) -> None:
        """Link legs to their group by their ids (``<id>.tp`` / ``<id>.sl``), for orders
        adopted from IB's records after a restart."""
        for entry in list(self._orders.values()):
            oid = entry.order_id
            if entry.group_id or not oid.endswith(LEG_SUFFIXES):
                continue
            head = self._orders.get(oid[:-3])
            if head is None:
                continue
            if head.order_class == "simple":
                head.order_class = "oco" if entry.side == head.side else "bracket"
            head.group_id = head.order_id
            entry.group_id = head.order_id
            entry.order_class = head.order_class
            if head.order_class != "oco":
                entry.parent_id = head.order_id
            head.legs = sorted({*head.legs, oid}, key=lambda i: i.endswith(".sl"))
            if head.order_class == "bracket" and len(head.legs) == 1:
                head.order_class = entry.order_class = "oto"
            if head.order_class == "oto" and len(head.legs) == 2:
                head.order_class = "bracket"
                for leg in self.members(head)[1:]:
                    leg.order_class = "bracket"

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
        if code and (entry.replacing is not None or entry.unanswered is not None
                     or len(trade.log) - 1 in entry.replace_log
                     or entry.repeats_refusal(code, str(getattr(last, "message", "")))):
            # ib marks its trade Cancelled on an error answering a modification (and on
            # TWS's repeat of it); TWS still works the order unchanged.
            return entry
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
        k = kind_of(o)
        if k["order_type"] == entry.order_type and entry.replacing is None:
            # TWS's fields: a modification it took (or, after a drop, the one it did not),
            # and a bracket child's size, which TWS sets to what its parent filled.
            if float(o.totalQuantity or 0) > 0:
                entry.qty = float(o.totalQuantity)
            entry.limit_price, entry.stop_price = k["limit_price"], k["stop_price"]
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
        k = kind_of(o)
        log = self.known.get(order_id, {})
        when = utc(log["ts"]) if "ts" in log else (
            utc(trade.log[0].time) if trade.log else utc(None))
        entry = OrderEntry(
            order_id=order_id, client_order_id=str(o.orderRef) or None,
            symbol=str(trade.contract.symbol), side="buy" if o.action == "BUY" else "sell",
            qty=float(o.totalQuantity),
            order_type=k["order_type"] or str(log.get("order_type", "")),
            tif=k["tif"], limit_price=k["limit_price"], stop_price=k["stop_price"],
            submitted_at=when, status=OrderStatus.NEW, trail_amount=k["trail_amount"],
            trail_percent=k["trail_percent"], extended_hours=k["extended_hours"])
        self._from_log(entry, log)
        self.add(entry)
        return entry

    @staticmethod
    def _from_log(entry: OrderEntry, log: dict[str, Any]) -> None:
        """The group links of an adopted order, from its trade-log submission."""
        if log.get("order_class"):
            entry.order_class = str(log["order_class"])
        if log.get("parent_id"):
            entry.parent_id = str(log["parent_id"])
        if log.get("group_id"):
            entry.group_id = str(log["group_id"])
        if isinstance(log.get("legs"), list) and log["legs"]:
            entry.legs = [str(x) for x in log["legs"]]
            entry.group_id = entry.order_id

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
            status=OrderStatus.NEW, trail_amount=log.get("trail_amount"),
            trail_percent=log.get("trail_percent"),
            extended_hours=bool(log.get("extended_hours", False)))
        self._from_log(entry, log)
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
