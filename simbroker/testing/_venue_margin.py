"""What open orders hold of an account's buying power, as the fake venues reckon it.

Both fakes (:mod:`~simbroker.testing.fake_tws`, :mod:`~simbroker.testing.fake_alpaca`)
refuse an order the way their venue does when the account cannot carry it, and both count
the other open orders, with the rule of :class:`simbroker.accounts.MarginAccount`:

- An open order claims the notional of the part of it that **opens** exposure: a buy
  beyond the short it covers, a sell beyond the long it closes, after the position and
  the open orders on the same side placed before it (a sell of 150 against a long of 100
  opens 50). The closing part claims nothing (at Alpaca: "sell long and buy to cover
  orders do not replenish your available buying power until they have executed").
- It is priced at the worst price it can fill at given the mark (the table of
  :func:`simbroker.risk._exposure.worst_fill_price`): market and trailing orders at the
  mark, a buy limit / stop-limit at its limit, a sell limit / stop-limit at
  ``max(limit, mark)``, a buy stop at ``max(stop, mark)``, a sell stop at its stop. A
  market order with no mark yet claims nothing (nothing prices it).
- Orders that exclude each other (one OCA group, the exits of one bracket) claim what
  the largest of them claims, not the sum: only one of them can trade.

:func:`claimed` sums the claims of a book of :class:`Claim` s; a venue refuses a new
order when the claim it adds does not fit in what is left.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from simbroker.accounts._reserve import opening_qty
from simbroker.types import Side

__all__ = ["Claim", "claimed", "worst_price"]


@dataclass(frozen=True)
class Claim:
    """One open order as the margin check sees it.

    ``qty`` is what is left of it; ``price`` its :func:`worst_price` (NaN: none);
    ``group`` a key shared by orders of which only one can trade (``None``: alone).
    """

    symbol: str
    side: str
    qty: float
    price: float
    group: Hashable | None = None


def worst_price(side: str, kind: str, limit: float | None, stop: float | None,
                mark: float | None) -> float:
    """The highest price an order can cost, given the mark (NaN when nothing prices it).

    ``kind`` is ``"market"``, ``"limit"``, ``"stop"``, ``"stop_limit"`` or ``"trailing"``.
    With no mark, a limit or stop order is priced at its own price (the paper broker,
    which always has a mark, never meets that case) and a market or trailing order at
    NaN: it claims nothing.
    """
    last = float(mark) if mark is not None and math.isfinite(mark) else math.nan
    buy = side == "buy"
    if kind in ("limit", "stop_limit") and limit is not None:
        return float(limit) if buy else _at_least(float(limit), last)
    if kind == "stop" and stop is not None:
        return _at_least(float(stop), last) if buy else float(stop)
    return last


def _at_least(own: float, last: float) -> float:
    """``max(own, last)``, or ``own`` when there is no last price."""
    return own if math.isnan(last) else max(own, last)


def claimed(claims: Iterable[Claim], positions: Mapping[str, float]) -> float:
    """The notional ``claims`` (in placement order) hold against ``positions``."""
    seen: dict[tuple[str, str], float] = {}
    groups: dict[Hashable, tuple[float, tuple[str, str], float]] = {}
    total = 0.0
    for c in claims:
        key = (c.symbol, c.side)
        counted = groups.get(c.group) if c.group is not None else None
        before = seen.get(key, 0.0)
        if counted is not None and counted[1] == key:
            before -= counted[2]  # a sibling is weighed as if it stood in its place
        side = Side.BUY if c.side == "buy" else Side.SELL
        opening = opening_qty(side, c.qty, positions.get(c.symbol, 0.0), before)
        value = opening * c.price if opening > 0 and math.isfinite(c.price) else 0.0
        if counted is not None and value <= counted[0]:
            continue  # a sibling already claims as much
        if counted is not None:  # this sibling claims more: it replaces the counted one
            total -= counted[0]
            seen[counted[1]] = seen.get(counted[1], 0.0) - counted[2]
        seen[key] = seen.get(key, 0.0) + c.qty
        total += value
        if c.group is not None:
            groups[c.group] = (value, key, c.qty)
    return total
