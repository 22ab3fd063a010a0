"""Settlement of a cash account: T+1 proceeds, and the shares bought before they settled."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Credit", "Lot", "Settlement"]


@dataclass
class Credit:
    """Sale proceeds that settle on trading day ``due`` of ``calendar``."""

    calendar: int
    due: int  # trading day on which it settles
    amount: float


@dataclass
class Lot:
    """``qty`` shares of column ``col`` bought with unsettled money, paid from ``free_day``."""

    col: int
    calendar: int
    free_day: int  # trading day from which the shares are paid for
    qty: float


class Settlement:
    """Sale proceeds waiting to settle, and shares bought with them (good-faith lots).

    ``settled_cash = cash - unsettled``: a sale's proceeds settle ``days`` trading days
    after the day it filled. A buy paid partly with unsettled proceeds leaves that
    fraction of its shares unpaid until the last of those proceeds settles; selling
    such shares before then is a good-faith violation.
    """

    def __init__(self, days: int):
        self.days = days
        self.credits: list[Credit] = []
        self.lots: list[Lot] = []

    @property
    def unsettled(self) -> float:
        """Proceeds not yet settled."""
        return sum(c.amount for c in self.credits)

    def settle(self, today: list[int]) -> None:
        """Drop the credits and lots due by ``today`` (a day number per calendar)."""
        self.credits = [c for c in self.credits if c.due > today[c.calendar]]
        self.lots = [lot for lot in self.lots if lot.free_day > today[lot.calendar]]

    def on_sell(self, calendar: int, day: int, proceeds: float) -> None:
        """A sale filled on ``day``: its proceeds settle ``days`` trading days later."""
        if proceeds > 0:
            self.credits.append(Credit(calendar, day + self.days, proceeds))

    def on_buy(self, col: int, calendar: int, qty: float, cost: float, cash: float) -> None:
        """A buy of ``qty`` for ``cost`` left ``cash``: the part paid with unsettled money
        marks that fraction of the shares unpaid until the money settles."""
        settled = cash - self.unsettled
        if settled >= 0 or cost <= 0 or not self.credits:
            return
        unpaid = min(cost, -settled) / cost
        free = max(c.due for c in self.credits)
        self.lots.append(Lot(col, calendar, free, qty * unpaid))

    def unpaid_qty(self, col: int, day: int) -> float:
        """Shares of column ``col`` still unpaid on trading day ``day``."""
        return sum(lot.qty for lot in self.lots if lot.col == col and lot.free_day > day)

    def on_sold_unpaid(self, col: int, qty: float) -> None:
        """Shares sold: they come out of the unpaid lots first (a recorded violation)."""
        for lot in self.lots:
            if lot.col == col and qty > 0:
                take = min(lot.qty, qty)
                lot.qty -= take
                qty -= take
        self.lots = [lot for lot in self.lots if lot.qty > 1e-12]
