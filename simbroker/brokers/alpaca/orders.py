"""The adapter's one truth per order: simbroker's order ids over Alpaca's.

Alpaca gives every order a UUID it keeps for good, but a replace (``PATCH``) makes a new
Alpaca order (``replaces`` the old id; the old one becomes ``replaced`` with
``replaced_by``). simbroker's ``order_id`` stays stable: it is the **first** Alpaca id of
that chain, which is derivable from Alpaca's own records (walk ``replaces`` back), so it
is the same across reconnects and restarts. The registry keeps:

- each Alpaca order's latest snapshot (merged monotonically: the stream may repeat or
  reorder events and REST may answer with an older snapshot than the stream's, so a
  final Alpaca status is never reopened, a snapshot with less filled than already seen
  is ignored, and an older ``updated_at`` loses);
- the ``replaces`` links, so ``order_id -> current Alpaca id`` and back;
- the groups: a bracket/OTO/OCO parent's ``legs`` (from Alpaca's nested ``legs``
  arrays), each leg's parent;
- ``client_order_id`` -> order (the caller's, and the adapter's ids of replacements),
  and sends whose answer was lost (*pending*: known only by ``client_order_id`` until
  a lookup, a stream event or a reconcile shows them).

What simbroker reports for an order (:meth:`OrderRegistry.get`) is composed from its
chain: the current Alpaca order's status, prices and tif; the fills of every Alpaca
order of the chain (a replacement carries only what was left to trade, so ``qty`` is
the fills before it plus its own quantity); the first one's ``client_order_id`` and
submission time. A leg Alpaca shows ``held`` is ``held`` while its parent has not
traded, and ``new`` (live) once it has or in an OCO (Alpaca keeps live stop legs held at
home until they trigger).

Every method is quick and never does I/O; the lock is never held across the network.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from simbroker.brokers.alpaca.translate import STATUS, VenueOrder
from simbroker.types import Order, OrderInfo, OrderStatus

__all__ = ["OrderRegistry", "Pending"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class Pending:
    """An order that was sent but whose fate is not yet known."""

    client_order_id: str
    order: Order
    sent_at: float = field(default_factory=time.monotonic)


class OrderRegistry:
    """Orders by simbroker id, Alpaca id and client_order_id; pending sends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._venue: dict[str, VenueOrder] = {}  # Alpaca id -> latest snapshot
        self._prev: dict[str, str] = {}  # Alpaca id -> the Alpaca id it replaces
        self._next: dict[str, str] = {}  # Alpaca id -> its replacement's Alpaca id
        self._legs: dict[str, list[str]] = {}  # parent order_id -> leg order_ids
        self._parent: dict[str, str] = {}  # leg order_id -> parent order_id
        self._by_cid: dict[str, str] = {}  # client_order_id -> Alpaca id
        self._order: dict[str, int] = {}  # order_id -> first-seen rank
        self._final: set[str] = set()  # order_ids already reported final
        self._pending: dict[str, Pending] = {}
        self._gone: set[str] = set()  # linked Alpaca ids that Alpaca does not have
        self._live: set[str] = set()  # legs seen past "held"
        self._activated: list[OrderInfo] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._order)

    # ------------------------------------------------------------------ merging
    def update(self, order: VenueOrder) -> tuple[OrderInfo, list[OrderInfo], list[Pending]]:
        """Merge what Alpaca says about an order (and its nested legs).

        Returns the order's composed state, the orders this update made final (each
        once, ever), and the pending sends it resolved. Legs this update showed live for
        the first time are in :meth:`take_activated`.
        """
        with self._lock:
            resolved: list[Pending] = []
            touched: list[str] = []
            self._merge(order, None, resolved, touched)
            sid = self._root(order.order_id)
            finals = []
            for oid in dict.fromkeys(self._root(t) for t in touched):
                if oid not in self._venue:
                    continue  # its first Alpaca order is not read yet: its id may change
                info = self._compose(oid)
                if info is not None and oid in self._parent and \
                        info["status"] != OrderStatus.HELD.value and \
                        info["order_class"] != "oco" and oid not in self._live:
                    self._live.add(oid)
                    if info["status"] not in (OrderStatus.CANCELED.value,
                                              OrderStatus.EXPIRED.value,
                                              OrderStatus.REJECTED.value):
                        self._activated.append(info)
                if info is not None and not OrderStatus(info["status"]).is_open and \
                        oid not in self._final:
                    self._final.add(oid)
                    finals.append(info)
            info = self._compose(sid)
            assert info is not None  # the order was just merged
            return info, finals, resolved

    def _merge(self, v: VenueOrder, parent: str | None, resolved: list[Pending],
               touched: list[str]) -> None:
        aid = v.order_id
        old = self._venue.get(aid)
        if old is None or _newer(v, old):
            self._venue[aid] = v
        cid = v.info["client_order_id"]
        if cid:
            self._by_cid.setdefault(cid, aid)
            p = self._pending.pop(cid, None)
            if p is not None:
                resolved.append(p)
        if v.replaces:
            self._prev[aid] = v.replaces
            self._next[v.replaces] = aid
        elif self._prev.get(aid) is not None:
            # Linked from another order's ``replaced_by`` but not a replacement of it
            # (Alpaca marks a bracket's take-profit "replaced" when its stop triggers):
            # the two stay separate orders.
            self._next.pop(self._prev.pop(aid), None)
        target = v.replaced_by
        if target and (target not in self._venue or self._venue[target].replaces == aid):
            self._next[aid] = target
            self._prev[target] = aid
        sid = self._root(aid)
        self._order.setdefault(sid, len(self._order))
        touched.append(sid)
        if parent is not None:
            self._parent[sid] = parent
            touched.append(parent)
        if v.legs:
            legs = sorted(v.legs, key=lambda leg: leg.info["order_type"] != "limit")
            for leg in legs:
                self._merge(leg, sid, resolved, touched)
            self._legs[sid] = [self._root(leg.order_id) for leg in legs]
            # A leg's replacement is the same simbroker order: keep it once.
            self._legs[sid] = list(dict.fromkeys(self._legs[sid]))
        # Siblings and the parent of a changed leg change with it (live/held, reasons).
        up = self._parent.get(sid)
        if up is not None:
            touched.append(up)
            touched.extend(self._legs.get(up, []))

    def _root(self, aid: str) -> str:
        seen = 0
        while aid in self._prev and seen < 1000:
            aid = self._prev[aid]
            seen += 1
        return aid

    def _chain(self, sid: str) -> list[str]:
        out = [sid]
        while out[-1] in self._next and len(out) < 1000:
            out.append(self._next[out[-1]])
        return out

    # ------------------------------------------------------------------ composing
    def _compose(self, sid: str) -> OrderInfo | None:
        snaps = [self._venue[a] for a in self._chain(sid) if a in self._venue]
        if not snaps:
            return None
        head, base = snaps[-1], snaps[0]
        before = snaps[:-1]
        filled = sum(s.info["filled_qty"] for s in snaps)
        notional = sum(s.info["filled_qty"] * (s.info["avg_fill_price"] or 0.0)
                       for s in snaps)
        qty = sum(s.info["filled_qty"] for s in before) + head.info["qty"]
        raw = head.raw_status
        if raw == "replaced" and head.order_id in self._next:
            status = OrderStatus.NEW  # its replacement is not read yet: it lives on
        elif raw == "replaced":  # replaced by no order of its own: it ended
            status = OrderStatus.CANCELED
        elif raw == "held":
            parent = self._parent.get(sid)
            pv = self._compose(parent) if parent is not None else None
            live = head.info["order_class"] == "oco" or (
                pv is not None and pv["filled_qty"] > 0)
            status = OrderStatus.NEW if live else OrderStatus.HELD
        else:
            status = STATUS.get(raw, OrderStatus.NEW)
        if status is OrderStatus.NEW and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        reason = head.info["reason"]
        if status is OrderStatus.CANCELED:
            reason = self._cancel_reason(sid) or reason
        info: OrderInfo = {
            **head.info,
            "order_id": sid, "client_order_id": base.info["client_order_id"],
            "submitted_at": base.info["submitted_at"], "qty": qty, "filled_qty": filled,
            "avg_fill_price": notional / filled if filled else None,
            "status": status.value, "reason": reason,
            "parent_id": self._parent.get(sid), "legs": list(self._legs.get(sid, [])),
            "remaining_qty": max(0.0, qty - filled),
        }
        return info

    def _head(self, sid: str) -> tuple[VenueOrder, float] | None:
        """The current Alpaca order of ``sid`` and the chain's filled quantity."""
        snaps = [self._venue[a] for a in self._chain(sid) if a in self._venue]
        if not snaps:
            return None
        return snaps[-1], sum(s.info["filled_qty"] for s in snaps)

    def _cancel_reason(self, sid: str) -> str | None:
        """Why Alpaca canceled a group's order: a sibling's fill, or its parent's end."""
        parent = self._parent.get(sid)
        root = parent if parent is not None else sid
        for other in [root, *self._legs.get(root, [])]:
            got = self._head(other)
            if other == sid or got is None:
                continue
            head = got[0]
            if head.raw_status == "filled" and (other != parent
                                                or head.info["order_class"] == "oco"):
                return f"canceled: its sibling {other} filled"
        got = self._head(parent) if parent is not None else None
        if got is not None and got[0].raw_status in ("canceled", "expired", "rejected") \
                and got[1] == 0:
            return f"canceled: its parent {parent} is {got[0].raw_status}"
        return None

    def group_of(self, order_id: str) -> list[str]:
        """The other orders of ``order_id``'s group (its parent, its legs, its siblings)."""
        with self._lock:
            sid = self._root(order_id)
            parent = self._parent.get(sid)
            root = parent if parent is not None else sid
            return [o for o in [root, *self._legs.get(root, [])] if o != sid]

    def take_activated(self) -> list[OrderInfo]:
        """Bracket/OTO legs that became live (their parent traded) since the last call,
        each once ever."""
        with self._lock:
            out, self._activated = self._activated, []
            return out

    # ------------------------------------------------------------------ reading
    def get(self, order_id: str) -> OrderInfo | None:
        """The order ``order_id`` (simbroker's id; an Alpaca id of its chain works too)."""
        with self._lock:
            return self._compose(self._root(order_id))

    def knows(self, alpaca_id: str) -> bool:
        """True once a snapshot of Alpaca order ``alpaca_id`` has been merged."""
        with self._lock:
            return alpaca_id in self._venue

    def order_id_of(self, alpaca_id: str) -> str:
        """simbroker's order id for an Alpaca order id (itself unless a replacement)."""
        with self._lock:
            return self._root(alpaca_id)

    def current_id(self, order_id: str) -> str:
        """The Alpaca id that is ``order_id`` now (the last replacement known)."""
        with self._lock:
            return self._chain(self._root(order_id))[-1]

    def venue(self, alpaca_id: str) -> VenueOrder | None:
        """The latest snapshot of one Alpaca order."""
        with self._lock:
            return self._venue.get(alpaca_id)

    def missing(self) -> list[str]:
        """Alpaca ids that known orders link to (``replaces``/``replaced_by``) but whose
        order has not been read yet."""
        with self._lock:
            ids = [a for a in (*self._prev.values(), *self._next.values())
                   if a not in self._venue and a not in self._gone]
            return list(dict.fromkeys(ids))

    def forget_link(self, alpaca_id: str) -> None:
        """Alpaca has no order ``alpaca_id`` (a link to it is never read again)."""
        with self._lock:
            self._gone.add(alpaca_id)

    def by_client_id(self, client_order_id: str) -> OrderInfo | None:
        """The order known under ``client_order_id`` (a replacement's too), if any."""
        with self._lock:
            aid = self._by_cid.get(client_order_id)
            return self._compose(self._root(aid)) if aid is not None else None

    def client_id_of(self, order_id: str) -> str | None:
        """The client_order_id of a known order (by simbroker or Alpaca id)."""
        with self._lock:
            info = self._compose(self._root(order_id))
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
        """Every known order, in submission order, each group's legs after its parent."""
        with self._lock:
            tops = sorted((s for s in self._order if s not in self._parent
                           and s not in self._prev),
                          key=lambda s: (self._first_seen(s), self._order[s]))
            out: list[OrderInfo] = []
            done: set[str] = set()
            for sid in tops:
                for oid in [sid, *self._legs.get(sid, [])]:
                    info = self._compose(oid)
                    if info is not None and oid not in done:
                        done.add(oid)
                        out.append(info)
            return out

    def _first_seen(self, sid: str) -> datetime:
        snaps = [self._venue[a] for a in self._chain(sid) if a in self._venue]
        return snaps[0].info["submitted_at"] if snaps else _EPOCH


def _newer(new: VenueOrder, old: VenueOrder) -> bool:
    """Whether ``new`` replaces ``old`` as the latest snapshot of one Alpaca order."""
    if not old.is_open:
        return False  # final: never reopened
    if new.info["filled_qty"] < old.info["filled_qty"]:
        return False
    if new.info["filled_qty"] > old.info["filled_qty"] or not new.is_open:
        return True
    return new.updated_at >= old.updated_at
