"""Worst-case arithmetic: the highest price an order can fill at, and one symbol's exposure.

Exposure is never netted: an open sell does not make room for a buy, because either can
fill without the other. The worst position on the long side is the position plus every
open buy; on the short side, the position minus every open sell.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simbroker.types import Order, OrderType, Side

__all__ = ["SymbolExposure", "has_price_ceiling", "worst_fill_price"]


def has_price_ceiling(order: Order) -> bool:
    """True when ``order`` can never fill above one of its own prices.

    A buy limit (or buy stop-limit) fills at ``min(open, limit)``; a sell stop triggers
    and fills at ``min(open, stop)``. Every other order fills at the market, or at
    ``max(open, price)``, which a gap can push anywhere.
    """
    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return order.side is Side.BUY
    return order.order_type is OrderType.STOP and order.side is Side.SELL


def worst_fill_price(order: Order, last: float | None) -> float | None:
    """The highest price ``order`` can fill at, given the last traded price.

    ======================  ==================================================
    order                   price
    ======================  ==================================================
    market, trailing stop   last (a trailing level follows the market)
    buy limit, stop-limit   limit (it never fills above it)
    sell limit, stop-limit  max(limit, last): a marketable one fills at market
    buy stop                max(stop, last): a stop at or below last triggers
                            at once and fills at market
    sell stop               stop (it fills at min(open, stop))
    ======================  ==================================================

    ``None`` when the order has no ceiling and no last price is known: nothing bounds
    its notional then. Slippage, which moves a fill further against the trader, is not
    included.
    """
    if has_price_ceiling(order):
        own = order.limit_price if order.order_type is not OrderType.STOP else order.stop_price
        return own
    if last is None:
        return None
    if order.order_type in (OrderType.MARKET, OrderType.TRAILING_STOP):
        return last  # a trailing stop's level moves with the market: priced as one
    own = order.stop_price if order.order_type is OrderType.STOP else order.limit_price
    assert own is not None  # Order.create guarantees the price its type needs
    return max(own, last)


@dataclass(frozen=True)
class SymbolExposure:
    """One symbol's position and open orders, by side, in shares and in value.

    ``buy_value`` and ``sell_value`` price each open order's remaining quantity at its
    :func:`worst_fill_price`; the position is valued at ``mark`` (the last price).
    """

    held: float = 0.0
    buys: float = 0.0
    sells: float = 0.0
    buy_value: float = 0.0
    sell_value: float = 0.0
    mark: float | None = None
    unpriced: bool = False

    def add(self, side: Side, qty: float, price: float | None, *,
            unpriced: bool = False) -> SymbolExposure:
        """This exposure with one more open order.

        ``price`` ``None`` adds shares only; ``unpriced`` says the order's value is not
        known, which makes every value of this exposure unknown.
        """
        value = qty * price if price is not None else 0.0
        flag = self.unpriced or unpriced
        if side is Side.BUY:
            return replace(self, buys=self.buys + qty, buy_value=self.buy_value + value,
                           unpriced=flag)
        return replace(self, sells=self.sells + qty, sell_value=self.sell_value + value,
                       unpriced=flag)

    @property
    def long(self) -> float:
        """Highest position reachable: every open buy fills, no sell does."""
        return self.held + self.buys

    @property
    def short(self) -> float:
        """Lowest position reachable: every open sell fills, no buy does."""
        return self.held - self.sells

    def held_value(self) -> float | None:
        """The position at the mark; ``None`` when held and no mark is known."""
        if self.unpriced:
            return None
        if self.held == 0:
            return 0.0
        return None if self.mark is None else self.held * self.mark

    def long_value(self) -> float | None:
        """Value of :attr:`long`: the position at the mark plus the open buys' notional."""
        held = self.held_value()
        return None if held is None else held + self.buy_value

    def short_value(self) -> float | None:
        """Value of :attr:`short` (negative when short)."""
        held = self.held_value()
        return None if held is None else held - self.sell_value

    def gross(self) -> float | None:
        """Worst |value| over both sides (at least |position value|)."""
        lv, sv = self.long_value(), self.short_value()
        if lv is None or sv is None:
            return None
        return max(lv, -sv, 0.0)
