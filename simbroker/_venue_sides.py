"""Alpaca's one-side-at-a-time rule: no order crosses a position through zero, and no
order opens a side while an order of the other side is open.

Alpaca infers each equity order's position intent when it is placed (``buy_to_open``,
``buy_to_close``, ``sell_to_open``, ``sell_to_close``) and refuses, with HTTP 403 code
40310000:

- a closing order larger than what is left of the position after the open closing
  orders: "insufficient qty available for order (requested: 2, available: 1)". A long of
  100 cannot be turned into a short of 100 by one sell of 200; the strategy must sell
  100, and sell 100 more once flat (alpacahq/Alpaca-API issues 90 and 187; IBKR takes
  the single order);
- an opening order on a flat symbol while an order of the other side is open: "cannot
  open a short sell while a long buy order is open" / "cannot open a long buy while a
  short sell order is open" (issue 82: an account is never long and short one symbol).

Both the fake Alpaca (:mod:`simbroker.testing.fake_alpaca`) and the paper broker with
``venue="alpaca"`` apply :func:`side_refusal`; the Alpaca adapter turns the venue's 403
into the same :class:`~simbroker.errors.PositionConflict`.
"""

from __future__ import annotations

import re

from simbroker.errors import PositionConflict

__all__ = [
    "OPPOSITE_OPEN",
    "QTY_AVAILABLE",
    "alpaca_message",
    "from_alpaca",
    "side_refusal",
]

QTY_AVAILABLE = "insufficient qty available for order"
OPPOSITE_OPEN = "cannot open a "
_REQUESTED = re.compile(r"requested:\s*([-+0-9.eE]+),\s*available:\s*([-+0-9.eE]+)")


def _over(qty: float, available: float) -> bool:
    return qty > available * (1 + 1e-12) + 1e-12


def side_refusal(symbol: str, side: str, qty: float, position: float, open_buys: float,
                 open_sells: float) -> PositionConflict | None:
    """The refusal of an order of ``qty`` (``side`` ``"buy"``/``"sell"``) by Alpaca's
    rule, or ``None`` when it passes.

    ``position`` is the signed position, ``open_buys`` / ``open_sells`` what is left of
    the symbol's open orders on each side (legs of one group counted once; exits waiting
    for their parent not at all).
    """
    sell = side == "sell"
    held = position if sell else -position  # > 0: the order closes the position
    closing, other = (open_sells, open_buys) if sell else (open_buys, open_sells)
    if held > 0:
        available = max(held - closing, 0.0)
        if _over(qty, available):
            return PositionConflict(symbol, rule="qty_available", side=side, requested=qty,
                                    available=available, position=position)
    elif held == 0 and other > 0:
        return PositionConflict(symbol, rule="opposite_side_open", side=side,
                                requested=qty, available=0.0, position=position)
    return None


def alpaca_message(refusal: PositionConflict) -> str:
    """The message Alpaca's 403 carries for ``refusal``."""
    if refusal.rule == "qty_available":
        return (f"{QTY_AVAILABLE} (requested: {refusal.requested:g}, "
                f"available: {refusal.available:g})")
    if refusal.side == "sell":
        return "cannot open a short sell while a long buy order is open"
    return "cannot open a long buy while a short sell order is open"


def from_alpaca(text: str, *, symbol: str, side: str, qty: float,
                position: float | None = None,
                client_order_id: str | None = None) -> PositionConflict | None:
    """The :class:`~simbroker.errors.PositionConflict` an Alpaca 403 text stands for, or
    ``None`` when it is another refusal."""
    low = text.lower()
    if QTY_AVAILABLE in low:
        m = _REQUESTED.search(low)
        requested, available = (float(m.group(1)), float(m.group(2))) if m else \
            (qty, float("nan"))
        rule = "qty_available"
    elif OPPOSITE_OPEN in low and "order is open" in low:
        requested, available, rule = qty, 0.0, "opposite_side_open"
    else:
        return None
    pos = float("nan") if position is None else position
    return PositionConflict(symbol, rule=rule, side=side, requested=requested,
                            available=available, position=pos, venue="Alpaca",
                            client_order_id=client_order_id)
