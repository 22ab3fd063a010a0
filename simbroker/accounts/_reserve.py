"""Open orders' claims on buying power, priced at the worst price each can fill at."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from simbroker.risk._exposure import worst_fill_price
from simbroker.types import Order, Side

if TYPE_CHECKING:
    from simbroker._paper_book import OpenBook
    from simbroker.paper import PaperBroker

__all__ = ["opening_orders", "opening_qty", "order_price", "reserved", "same_side_open"]

SMALL_BOOK = 1 << 20
"""Books of at most this many orders have their matching slots summed in Python by
:func:`same_side_open` (tests force either path by setting it to -1 or leaving it)."""


def order_price(order: Order, mark: float, buffer: float) -> float:
    """The price an order is reserved at: its worst fill price
    (:func:`simbroker.risk._exposure.worst_fill_price`) given the mark, with a market-like
    order's price raised (buy) or lowered (sell) by ``buffer`` (a fraction) for gaps."""
    last = mark if math.isfinite(mark) else None
    worst = worst_fill_price(order, last)
    if worst is None:
        return float("nan")
    own = order.limit_price if order.limit_price is not None else order.stop_price
    if own is None or worst != own:  # priced at the market: leave room for a gap
        worst *= (1.0 + buffer) if order.side is Side.BUY else 1.0
    return float(worst)


def opening_qty(side: Side, qty: float, position: float, same_side_open: float) -> float:
    """The part of ``qty`` that opens or grows exposure, after the position and the open
    orders on the same side: a sell of 150 against a long of 100 opens a short of 50."""
    start = position + same_side_open if side is Side.BUY else position - same_side_open
    closing = max(0.0, -start) if side is Side.BUY else max(0.0, start)
    return max(0.0, qty - closing)


def same_side_open(book: OpenBook, col: int, sign: float, skip: int = -1) -> float:
    """Open quantity of the book's orders in column ``col`` on side ``sign``: the sum
    ``book.qty[:n][mask].sum()`` of the matching slots, in book order (leaving out slot
    ``skip``, an order being replaced)."""
    n = book.n
    if n > SMALL_BOOK:
        same = (book.sym[:n] == col) & (book.sign[:n] == sign)
        if skip >= 0:
            same[skip] = False
        return float(book.qty[:n][same].sum())
    sgn = book.sign
    found = [i for i in (book.sym[:n] == col).nonzero()[0].tolist()
             if sgn.item(i) == sign and i != skip]
    if not found:
        return 0.0
    if len(found) == 1:
        return float(book.qty.item(found[0]))
    return float(book.qty[found].sum())  # numpy's own summation, as the array path


def _open_parts(broker: PaperBroker, skip: int = -1
                ) -> list[tuple[int, int, Order, float, str | None]]:
    """For each order in the book (in book order; but slot ``skip``, an order being
    replaced): its slot, column and order, the part of its open quantity that opens
    exposure, after the position and the earlier orders on the same symbol and side,
    and its group's key when it is one of a group's live legs.

    Only one leg of a group can trade (a filled bracket's exits, an OCO pair), so each
    leg is measured against what came before the group, and the group counts as its
    largest leg for the orders after it, as the venues count it."""
    book = broker._book
    n = book.n
    live = broker._groups.live
    orders = broker._orders
    out: list[tuple[int, int, Order, float, str | None]] = []
    seen: dict[tuple[int, float], float] = {}
    group_before: dict[str, float] = {}
    group_qty: dict[str, float] = {}
    pos = broker._pos
    ids = book.ids
    syms, signs, qtys = book.sym[:n].tolist(), book.sign[:n].tolist(), book.qty[:n].tolist()
    for i in range(n):
        if i == skip:
            continue
        oid = ids[i]
        state = orders[oid]
        col = syms[i]
        key = (col, signs[i])
        booked = qtys[i]
        done = state.filled_qty
        q = booked - done if done < booked else booked
        group = live.get(oid) if live else None
        if group is None:
            before = seen.get(key, 0.0)
            seen[key] = before + q
        else:
            before = group_before.setdefault(group, seen.get(key, 0.0))
            largest = group_qty.get(group, 0.0)
            if q > largest:
                seen[key] = seen.get(key, 0.0) + q - largest
                group_qty[group] = q
        order = state.order
        out.append((i, col, order, opening_qty(order.side, q, pos.item(col), before), group))
    return out


def opening_orders(broker: PaperBroker) -> list[str]:
    """Ids of the open orders that would open or grow a position (see :func:`reserved`)."""
    book = broker._book
    return [str(book.ids[i]) for i, _, _, opening, _ in _open_parts(broker) if opening > 0]


def reserved(broker: PaperBroker, marks: np.ndarray, rates: np.ndarray,
             buffer: float, skip: int = -1) -> float:
    """Margin the open orders hold: for each open order, the quantity that opens
    exposure (in book order, per symbol and side) x its worst price x its symbol's rate.
    Slot ``skip`` (an order being replaced) is left out as if it were not in the book.

    ``held`` children are not in the book: they only reduce what their parent opens.
    The live legs of one group (only one of them can trade) hold their largest leg's
    margin.
    """
    book = broker._book
    if book.n == 0:
        return 0.0
    total = 0.0
    legs: dict[str, float] = {}  # group key -> its largest leg's margin
    for _, col, order, opening, group in _open_parts(broker, skip):
        if opening > 0:
            px = order_price(order, marks.item(col), buffer)
            if math.isfinite(px):
                margin = opening * px * rates.item(col)
                if group is None:
                    total += margin
                else:
                    legs[group] = max(legs.get(group, 0.0), margin)
    return total + sum(legs.values())
