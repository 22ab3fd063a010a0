"""FakeTWS's pre-trade margin check: TWS's error 201 for an order the account cannot carry.

TWS weighs a new order against the account's equity with loan value with every other
working order counted (the "what-if" view of the initial margin after the order). The
fake applies the rule of :class:`simbroker.accounts.MarginAccount`, shared by both fakes
in :mod:`simbroker.testing._venue_margin`: each working order claims
``initial_margin`` x the notional of its opening part at its worst price, an order's
closing part claims nothing, and a bracket's exits (children of one parent) or the
members of one OCA group claim what the largest of them claims. A child waiting for its
unfilled parent (``PreSubmitted``) claims nothing: its parent's claim covers it, and it
only closes what the parent opens. Untransmitted orders are not working and claim
nothing.

An order is refused when it adds a claim and the new total initial margin, TWS's
what-if of the account after the order, exceeds the equity with loan value:
``initial_margin`` x (gross position value - the value of the new order's own closing
part at the fake's mark + the claims of all working orders with it). The closing part of
a reversing order (a sell of 150 against a long of 100, after the working sells placed
before it) fills before its opening part, so the margin it frees is credited; the
working orders' closing parts free nothing (they may never fill). The text is TWS's:
``YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR EQUITY WITH
LOAN VALUE [x USD] MUST EXCEED THE NEW TOTAL INITIAL MARGIN OF [y USD]``.

A modification (placeOrder with a working order's id) is weighed the same way, the
order it modifies set aside (:func:`modify_refusal`); TWS refuses it with the same
error 201 on the order's id and keeps working the original order unchanged. The paper
broker applies the same rule with ``PaperBroker(venue="ibkr")``; by default it credits
nothing (the strictest venue: Alpaca's closing orders free buying power only once they
have executed).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from simbroker.testing._venue_margin import Claim, claimed, worst_price
from simbroker.testing.fake_tws.messages import Order

if TYPE_CHECKING:
    from simbroker.testing.fake_tws.server import FakeTWS

__all__ = ["CASH_SHORT", "cash_short_refusal", "margin_refusal", "modify_refusal",
           "working_claims"]

_KINDS = {"MKT": "market", "MOC": "market", "LMT": "limit", "LOC": "limit", "STP": "stop",
          "STP LMT": "stop_limit", "TRAIL": "trailing"}
_WORKING = ("PreSubmitted", "Submitted")
CASH_SHORT = ("Order rejected - reason:SHORT SALES ARE NOT ALLOWED IN A CASH ACCOUNT: "
              "selling {qty:g} {symbol} against {held:g} shares held net of working sell "
              "orders would open a short position")
"""TWS's error-201 text refusing a short sale in a cash account. IBKR's rule is
documented ("Short sales are not allowed in 'Cash' type accounts", IBKR knowledge base
"How do I sell a stock short?", ibkr.info/node/232); the API's exact words are not, so
these are assumed (upper case like TWS's margin refusal, the figures the fake knows)."""


def _group(client_id: int, parent_id: int, oca_group: str) -> Hashable | None:
    if parent_id:
        return ("parent", client_id, parent_id)
    return ("oca", client_id, oca_group) if oca_group else None


def _claim(fake: FakeTWS, symbol: str, action: str, qty: float, order_type: str,
           lmt: float | None, aux: float | None, group: Hashable | None) -> Claim:
    side = "buy" if action == "BUY" else "sell"
    price = worst_price(side, _KINDS.get(order_type, "market"), lmt, aux,
                        fake.prices.get(symbol))
    return Claim(symbol, side, qty, price, group)


def _waiting(fake: FakeTWS, o: Order) -> bool:
    parent = fake.orders.get(o.parent_id) if o.parent_id else None
    return o.status == "PreSubmitted" and parent is not None and parent.filled <= 0


def working_claims(fake: FakeTWS, skip: Order | None = None) -> list[Claim]:
    """The claims of the fake's working orders (but ``skip``), in placement order."""
    out = []
    for o in fake.orders.values():
        if o.status not in _WORKING or not o.worked or _waiting(fake, o) or o is skip:
            continue
        out.append(_claim(fake, o.symbol, o.action, o.qty - o.filled, o.order_type, o.lmt,
                          o.aux, _group(o.client_id, o.parent_id, o.oca_group)))
    return out


def _closing_value(held: list[Claim], new: Claim, fake: FakeTWS) -> float:
    """The gross position value the new order's closing part takes off: the shares of
    it that close the position, after the working orders of its side placed before it,
    at the fake's mark."""
    position = fake.positions.get(new.symbol, 0.0)
    same = 0.0
    for c in held:
        if c.symbol == new.symbol and c.side == new.side:
            same += c.qty
    start = position + same if new.side == "buy" else position - same
    closing = min(new.qty, max(0.0, -start) if new.side == "buy" else max(0.0, start))
    return closing * abs(fake.prices.get(new.symbol, 0.0)) if closing > 0 else 0.0


def margin_refusal(fake: FakeTWS, p: dict[str, Any]) -> str | None:
    """TWS's error-201 text when the new order ``p`` (the fake's decoded placeOrder)
    would take the initial margin above the equity with loan value, else ``None``."""
    new = _claim(fake, p["symbol"], p["action"], p["qty"], p["order_type"], p["lmt"],
                 p["aux"], _group(p["client_id"], p["parent_id"], p["oca_group"]))
    return _refusal(fake, working_claims(fake), new, None)


def modify_refusal(fake: FakeTWS, o: Order, p: dict[str, Any]) -> str | None:
    """TWS's error-201 text when the modification ``p`` of working order ``o`` would
    take the initial margin above the equity with loan value, else ``None``.

    The modified order is weighed like a new one, ``o`` set aside (what it claimed is
    available to it), for what would be left of it (``p``'s quantity less ``o``'s
    fills). A modification that claims no more than ``o`` did always passes (the rule of
    :meth:`simbroker.accounts.MarginAccount.check_replace`). An order that claims
    nothing now (untransmitted, a child waiting for its parent) is not weighed."""
    if o.status not in _WORKING or not o.worked or _waiting(fake, o):
        return None
    held = working_claims(fake, skip=o)
    group = _group(o.client_id, o.parent_id, o.oca_group)
    old = _claim(fake, o.symbol, o.action, o.qty - o.filled, o.order_type, o.lmt, o.aux,
                 group)
    new = _claim(fake, o.symbol, o.action, p["qty"] - o.filled, o.order_type, p["lmt"],
                 p["aux"], group)
    return _refusal(fake, held, new, old)


def _refusal(fake: FakeTWS, held: list[Claim], new: Claim, old: Claim | None) -> str | None:
    """The error-201 text when ``new`` does not fit beside the ``held`` claims; with
    ``old`` (the order ``new`` modifies), ``None`` when it claims no more than ``old``."""
    before = claimed(held, fake.positions)
    after = claimed([*held, new], fake.positions)
    if after <= before + 1e-9:
        return None  # it only closes, or a sibling already claims as much
    if old is not None and after <= claimed([*held, old], fake.positions) + 1e-9:
        return None  # claims no more than the order it modifies
    figures = fake.account_figures()
    gross = figures["GrossPositionValue"] - _closing_value(held, new, fake)
    need = fake.initial_margin * (gross + after)
    elv = figures["EquityWithLoanValue"]
    if need <= elv + 1e-9:
        return None
    return (f"Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN "
            f"THE DESIRED POSITION YOUR EQUITY WITH LOAN VALUE [{elv:.2f} USD] MUST "
            f"EXCEED THE NEW TOTAL INITIAL MARGIN OF [{need:.2f} USD]")


def cash_short_refusal(fake: FakeTWS, p: dict[str, Any], qty: float,
                       skip: Order | None = None) -> str | None:
    """TWS's error-201 text when order ``p`` (a decoded placeOrder), selling ``qty`` in
    a cash account, would take the position below zero after the working sells (a
    group's once; its own group's, of which only one trades, and ``skip``, the order a
    modification replaces, set aside), else ``None``. The rule of
    :class:`simbroker.accounts.CashAccount` (``rule="cash_account_short"``)."""
    symbol = p["symbol"]
    if fake.account_type != "cash" or p["action"] != "SELL":
        return None
    own = _group(p["client_id"], p["parent_id"], p["oca_group"])
    sells: dict[object, float] = {}
    for n, c in enumerate(working_claims(fake, skip=skip)):
        if c.symbol == symbol and c.side == "sell" and (own is None or c.group != own):
            key = c.group if c.group is not None else n
            sells[key] = max(sells.get(key, 0.0), c.qty)
    held = fake.positions.get(symbol, 0.0) - sum(sells.values())
    if qty <= held * (1 + 1e-12) + 1e-12:
        return None
    return CASH_SHORT.format(qty=qty, symbol=symbol, held=max(held, 0.0))
