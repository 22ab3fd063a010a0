"""FakeTWS's modifications: ``placeOrder`` with the id of an order TWS holds.

TWS answers a modification with openOrder/orderStatus showing the new fields, or with an
error on the order's id, after which it works the original order on, unchanged: 104 for
a filled order, 103 for an ended one, 105 for a changed order type, 201 for a quantity
below the filled one and for a modified order the account could not take as a new one.
The modified order is weighed like a submission for what would be left of it, the order
it modifies set aside: the margin check (:func:`~simbroker.testing.fake_tws.margin.
modify_refusal`), a cash account's refusal of short sales (raising a sell beyond the
shares held net of the other working sells) and, for an unflagged margin account under
25,000 with no day trade left, the pattern-day-trader refusal of an order that opens a
position. A modification that adds nothing (the same or a smaller rest) is not weighed
by these two rules, as :class:`simbroker.accounts.CashAccount` and
:meth:`simbroker.accounts.MarginAccount.check_replace` do not weigh it. IB documents
neither how it weighs a modification against these rules nor its words: assumed as for
a new order, with the same error 201 texts.

The faults on this path (:meth:`FakeTWS.inject`): ``fill_on_modify``, ``repeat_refusal``
(the refusal sent twice), ``drop_after_refusal`` (the socket closed right after it) and
``stall_refusal`` (the refusal sent ``delay`` s late, after TWS answered later requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simbroker.testing.fake_tws.margin import cash_short_refusal, modify_refusal
from simbroker.testing.fake_tws.messages import Order

if TYPE_CHECKING:
    from simbroker.testing.fake_tws.server import FakeTWS

__all__ = ["modify"]

_OPEN = ("PreSubmitted", "Submitted")
_UNSENT = "Untransmitted"
"""The fake's own mark for an order placed with ``transmit=False`` (TWS reports nothing
of it: it is neither open nor completed for the API)."""


def _rule_refusal(fake: FakeTWS, o: Order, p: dict[str, Any]) -> str | None:
    """The error-201 text of the account rules that weigh a modification of working
    order ``o`` by ``p`` (see the module docstring), else ``None``."""
    if o.status not in _OPEN or not o.worked:
        return None
    parent = fake.orders.get(o.parent_id) if o.parent_id else None
    if o.status == "PreSubmitted" and parent is not None and parent.filled <= 0:
        return None  # a child waiting for its parent holds nothing yet
    left = p["qty"] - o.filled
    if left <= o.qty - o.filled + 1e-9:
        return modify_refusal(fake, o, p)
    mine = {"symbol": o.symbol, "action": o.action, "client_id": o.client_id,
            "parent_id": o.parent_id, "oca_group": o.oca_group}
    return cash_short_refusal(fake, mine, left, skip=o) or \
        fake._pdt_refusal({**mine, "qty": left}) or \
        modify_refusal(fake, o, p)


def modify(fake: FakeTWS, conn: Any, o: Order, p: dict[str, Any]) -> None:
    """Apply (or refuse) the modification ``p`` (a decoded placeOrder) of ``o``, read
    on ``conn``."""
    oid = o.order_id
    if o.client_id != conn.client_id:
        fake._error(conn, oid, 103, "Duplicate order id")
        return
    if o.status in _OPEN and fake._fire("fill_on_modify") is not None:
        px = fake.prices.get(o.symbol, o.lmt or o.aux or 0.0)
        fake._fill(o, o.qty - o.filled, o.lmt if o.lmt is not None else px)
    if fake.reject_modify:
        refuse(fake, conn, oid, fake.reject_modify, "Order rejected - reason:the "
               "modification is not accepted")
        return
    if o.status == "Filled":
        fake._error(conn, oid, 104, "Cannot modify a filled order.")
        return
    if o.status not in (*_OPEN, _UNSENT):
        fake._error(conn, oid, 103, "Duplicate order id")
        return
    if p["order_type"] != o.order_type:
        fake._error(conn, oid, 105, "Order being modified does not match original order.")
        return
    if p["qty"] < o.filled - 1e-9 or p["qty"] <= 0:
        refuse(fake, conn, oid, 201, f"Order rejected - reason:the quantity {p['qty']:g} "
               f"is below the filled {o.filled:g}")
        return
    refusal = _rule_refusal(fake, o, p)
    if refusal is not None:  # the original order works on, unchanged
        refuse(fake, conn, oid, 201, refusal)
        return
    o.qty, o.lmt, o.aux, o.tif = p["qty"], p["lmt"], p["aux"], p["tif"]
    o.outside_rth = p["outside_rth"]
    if o.order_type == "TRAIL":
        o.trail_pct = p["trail_pct"]
        if o.extreme is not None:  # the new trail from the extreme so far
            o.trail_stop = fake._trail_level(o, o.extreme)
    if o.status == _UNSENT:
        return
    for m in fake._owners(o):
        fake._open_order(m, o)
        fake._order_status(m, o, 0.0)


def refuse(fake: FakeTWS, conn: Any, oid: int, code: int, text: str) -> None:
    """Error ``code`` answering a modification of order ``oid``, with the armed faults
    of this path (see the module docstring)."""
    late = fake._fire("stall_refusal")
    if late is not None and fake._loop is not None:
        def send() -> None:
            with fake._lock:
                fake._error(conn, oid, code, text)
        fake._loop.call_later(late, send)
        return
    fake._error(conn, oid, code, text)
    if fake._fire("repeat_refusal") is not None:
        fake._error(conn, oid, code, text)
    if fake._fire("drop_after_refusal") is not None:
        fake._drop(conn)
