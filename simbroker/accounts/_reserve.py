"""Open orders' claims on buying power, priced at the worst price each can fill at."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

from simbroker.risk._exposure import worst_fill_price
from simbroker.types import Order, OrderType, Side

if TYPE_CHECKING:
    from simbroker._paper_book import OpenBook
    from simbroker.paper import PaperBroker

__all__ = [
    "Reservations",
    "opening_orders",
    "opening_qty",
    "order_price",
    "replaced_group",
    "reserved",
    "same_side_open",
    "same_side_outside",
]

_BUY, _MARKET = Side.BUY, OrderType.MARKET

SMALL_BOOK = 1 << 20
"""Books of at most this many orders have their matching slots summed in Python by
:func:`same_side_open` (tests force either path by setting it to -1 or leaving it)."""


def order_price(order: Order, mark: float, buffer: float) -> float:
    """The price an order is reserved at: its worst fill price
    (:func:`simbroker.risk._exposure.worst_fill_price`) given the mark, with a market-like
    order's price raised (buy) or lowered (sell) by ``buffer`` (a fraction) for gaps."""
    if order.order_type is _MARKET and order.limit_price is None \
            and order.stop_price is None:  # what the general path gives, in fewer steps
        if not math.isfinite(mark):
            return float("nan")
        return float(mark * (1.0 + buffer)) if order.side is _BUY else float(mark)
    last = mark if math.isfinite(mark) else None
    worst = worst_fill_price(order, last)
    if worst is None:
        return float("nan")
    own = order.limit_price if order.limit_price is not None else order.stop_price
    if own is None or worst != own:  # priced at the market: leave room for a gap
        worst *= (1.0 + buffer) if order.side is _BUY else 1.0
    return float(worst)


def opening_qty(side: Side, qty: float, position: float, same_side_open: float) -> float:
    """The part of ``qty`` that opens or grows exposure, after the position and the open
    orders on the same side: a sell of 150 against a long of 100 opens a short of 50."""
    # max(0.0, x) as conditionals: the same values (NaN and -0.0 included), a fraction
    # of the cost of a builtin call
    c = -(position + same_side_open) if side is _BUY else position - same_side_open
    closing = c if c > 0.0 else 0.0
    left = qty - closing
    return left if left > 0.0 else 0.0


def same_side_open(book: OpenBook, col: int, sign: float, skip: int = -1,
                   leave_out: Collection[int] = ()) -> float:
    """Open quantity of the book's orders in column ``col`` on side ``sign``: the sum
    ``book.qty[:n][mask].sum()`` of the matching slots, in book order (leaving out slot
    ``skip``, an order being replaced, and the slots in ``leave_out``)."""
    n = book.n
    if n > SMALL_BOOK:
        same = (book.sym[:n] == col) & (book.sign[:n] == sign)
        if skip >= 0:
            same[skip] = False
        if leave_out:
            same[list(leave_out)] = False
        return float(book.qty[:n][same].sum())
    syms = book.syms  # book.sym[:n] as a list (the book keeps both)
    if col not in syms:
        return 0.0
    signs = book.signs
    found = [i for i, c in enumerate(syms) if c == col and signs[i] == sign and i != skip
             and i not in leave_out]
    if not found:
        return 0.0
    if len(found) == 1:
        return float(book.qty.item(found[0]))
    return float(book.qty[found].sum())  # numpy's own summation, as the array path


def replaced_group(broker: PaperBroker, order_id: str | None) -> str | None:
    """The group key of open order ``order_id`` when it is one of a group's live legs
    (None otherwise, and for no order)."""
    live = broker._groups.live
    return live.get(order_id) if order_id is not None and live else None


def same_side_outside(broker: PaperBroker, col: int, sign: float, skip: int,
                      group: str | None) -> float:
    """:func:`same_side_open` for weighing a replace of the order in slot ``skip``, also
    leaving out the other live legs of its group ``group`` (see :func:`replaced_group`):
    only one leg of a group can trade, so the venues weigh a replaced leg as if it were
    its group's only leg. A take-profit raised beside its stop-loss still closes."""
    book = broker._book
    if group is None:
        return same_side_open(book, col, sign, skip)
    live = broker._groups.live
    siblings = {i for i, oid in enumerate(book.ids[:book.n]) if live.get(oid) == group}
    return same_side_open(book, col, sign, skip, siblings)


class _Walk:
    """The state of one pass over the book in book order (see :func:`_open_parts`),
    which can go on over orders appended to the book since."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, float], float] = {}
        self.group_before: dict[str, float] = {}
        self.group_qty: dict[str, float] = {}

    def parts(self, broker: PaperBroker, start: int, skip: int,
              skip_group: str | None = None
              ) -> list[tuple[int, int, Order, float, str | None]]:
        book = broker._book
        n = book.n
        live = broker._groups.live
        orders = broker._orders
        seen, group_before, group_qty = self.seen, self.group_before, self.group_qty
        out: list[tuple[int, int, Order, float, str | None]] = []
        pos = broker._pos
        ids = book.ids
        syms = book.syms[start:n]  # book.sym[start:n] as a list (the book keeps both)
        signs = book.signs[start:n]
        qtys = [book.qty.item(start)] if n - start == 1 else book.qty[start:n].tolist()
        for j in range(n - start):
            i = start + j
            if i == skip:
                continue
            oid = ids[i]
            state = orders[oid]
            col = syms[j]
            key = (col, signs[j])
            q = qtys[j]  # the book keeps what is left of each order (fills taken off)
            group = live.get(oid) if live else None
            if group is not None and group == skip_group:
                continue
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
            out.append((i, col, order, opening_qty(order.side, q, pos.item(col), before),
                        group))
        return out


def _open_parts(broker: PaperBroker, skip: int = -1, skip_group: str | None = None
                ) -> list[tuple[int, int, Order, float, str | None]]:
    """For each order in the book (in book order; but slot ``skip``, an order being
    replaced, and the live legs of group ``skip_group``, its siblings): its slot, column
    and order, the part of its open quantity that opens exposure, after the position and
    the earlier orders on the same symbol and side, and its group's key when it is one
    of a group's live legs.

    Only one leg of a group can trade (a filled bracket's exits, an OCO pair), so each
    leg is measured against what came before the group, and the group counts as its
    largest leg for the orders after it, as the venues count it."""
    return _Walk().parts(broker, 0, skip, skip_group)


def opening_orders(broker: PaperBroker) -> list[str]:
    """Ids of the open orders that would open or grow a position (see :func:`reserved`)."""
    book = broker._book
    return [str(book.ids[i]) for i, _, _, opening, _ in _open_parts(broker) if opening > 0]


class Reservations:
    """:func:`reserved`, kept between calls and extended over the orders appended to the
    book since (an account checks each new order against the orders placed before it
    on the same bar: a pass over the whole book per check is quadratic).

    The kept sum is used only when nothing it was computed from can have changed: the
    same bar and fill count (positions and marks move only when a bar closes), the same
    rates and buffer, the same orders (the same objects: a replace makes a new one) in
    the first slots of the book. The orders after them are added in book order to the
    same running sums, so the result is the one a full pass computes, bit for bit.
    """

    enabled = True
    """Tests set it False to compare with a full pass each time."""

    def __init__(self) -> None:
        self._key: tuple[int, int, int, float] | None = None
        self._rates: np.ndarray | None = None
        self._ids: list[str] = []
        self._orders: list[Order] = []
        self._walk = _Walk()
        self._total = 0.0
        self._legs: dict[str, float] = {}

    def _same(self, broker: PaperBroker, k: int) -> bool:
        """Whether the book's first ``k`` slots hold the orders the sum was taken over."""
        ids = broker._book.ids
        if ids[:k] != self._ids:
            return False
        orders = broker._orders
        for oid, o in zip(self._ids, self._orders, strict=True):  # noqa: SIM110 (no genexpr)
            if orders[oid].order is not o:
                return False
        return True

    def _plain(self, broker: PaperBroker, k: int, marks: np.ndarray, rates: np.ndarray,
               buffer: float) -> None:
        """The orders from slot ``k`` on added to the sums when no group has live legs:
        :meth:`_Walk.parts` and :func:`_add` in one loop (the same floats, in order)."""
        book = broker._book
        n = book.n
        ids, syms, signs, orders, pos = book.ids, book.syms, book.signs, broker._orders, \
            broker._pos_mv
        qtys = [book.qty.item(k)] if n - k == 1 else book.qty[k:n].tolist()
        seen = self._walk.seen
        kept_ids, kept_orders = self._ids, self._orders
        total = self._total
        for j in range(n - k):
            oid = ids[k + j]
            state = orders[oid]
            col = syms[k + j]
            key = (col, signs[k + j])
            q = qtys[j]  # what is left of the order
            before = seen.get(key, 0.0)
            seen[key] = before + q
            order = state.order
            kept_ids.append(oid)
            kept_orders.append(order)
            # opening_qty and order_price's market shortcut inline (the same operations)
            buy = order.side is _BUY
            p = pos[col]
            c = -(p + before) if buy else p - before
            opening = q - c if c > 0.0 else q  # q - max(0.0, c); > 0 tested below
            if opening > 0.0:
                mark = marks.item(col)
                if order.order_type is _MARKET and order.limit_price is None \
                        and order.stop_price is None:
                    if not math.isfinite(mark):
                        continue  # no price: it holds nothing
                    px = float(mark * (1.0 + buffer)) if buy else float(mark)
                else:
                    px = order_price(order, mark, buffer)
                if math.isfinite(px):
                    total += opening * px * rates.item(col)
        self._total = total

    def held(self, broker: PaperBroker, marks: np.ndarray, rates: np.ndarray,
             buffer: float) -> float:
        """``reserved(broker, marks, rates, buffer)``."""
        book = broker._book
        n = book.n
        if n == 0:
            return 0.0
        key = (broker._t, len(broker._fill_rows), id(marks), buffer)  # a row per fill
        k = len(self._ids)
        if not (self.enabled and key == self._key and rates is self._rates and k <= n
                and self._same(broker, k)):
            self._key, self._rates = key, rates
            self._ids, self._orders = [], []
            self._walk, self._total, self._legs = _Walk(), 0.0, {}
            k = 0
        if k < n and not broker._groups.live:
            self._plain(broker, k, marks, rates, buffer)
        elif k < n:
            total, legs = self._total, self._legs
            for i, col, order, opening, group in self._walk.parts(broker, k, -1):
                self._ids.append(book.ids[i])
                self._orders.append(order)
                if opening > 0:
                    total, legs = _add(total, legs, order, col, opening, group, marks, rates,
                                       buffer)
            self._total = total
        legs = self._legs
        return self._total + sum(legs.values()) if legs else self._total


def _add(total: float, legs: dict[str, float], order: Order, col: int, opening: float,
         group: str | None, marks: np.ndarray, rates: np.ndarray, buffer: float
         ) -> tuple[float, dict[str, float]]:
    """One open order's margin added to the running sums of :func:`reserved`."""
    px = order_price(order, marks.item(col), buffer)
    if math.isfinite(px):
        margin = opening * px * rates.item(col)
        if group is None:
            total += margin
        else:
            legs[group] = max(legs.get(group, 0.0), margin)
    return total, legs


def reserved(broker: PaperBroker, marks: np.ndarray, rates: np.ndarray,
             buffer: float, skip: int = -1, skip_group: str | None = None) -> float:
    """Margin the open orders hold: for each open order, the quantity that opens
    exposure (in book order, per symbol and side) x its worst price x its symbol's rate.
    Slot ``skip`` (an order being replaced) is left out as if it were not in the book,
    and so are the live legs of group ``skip_group`` (its siblings, when it is a leg).

    ``held`` children are not in the book: they only reduce what their parent opens.
    The live legs of one group (only one of them can trade) hold their largest leg's
    margin.
    """
    book = broker._book
    if book.n == 0:
        return 0.0
    total = 0.0
    legs: dict[str, float] = {}  # group key -> its largest leg's margin
    for _, col, order, opening, group in _open_parts(broker, skip, skip_group):
        if opening > 0:
            total, legs = _add(total, legs, order, col, opening, group, marks, rates, buffer)
    return total + sum(legs.values())
