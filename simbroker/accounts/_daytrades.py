"""Day trades: a position opened and closed (in part) in one symbol on one trading day."""

from __future__ import annotations

import numpy as np

__all__ = ["DayTrades"]

WINDOW = 5
"""FINRA's window: day trades are counted over the last five trading days."""


class DayTrades:
    """Counts day trades as FINRA Rule 4210 does, one per closing fill.

    A fill that reduces a position counts one day trade when the same symbol had a fill
    opening exposure in the same direction earlier on that trading day (buy then sell,
    or short then cover).
    """

    def __init__(self, n_symbols: int):
        self.opened_day = np.full(n_symbols, -(10**9), np.int64)
        self.opened_cells = self.opened_day.data  # its elements as Python ints, read and written
        self.days: list[int] = []  # the trading day of each day trade
        self.calendars: list[int] = []  # the calendar that day is numbered on

    def on_fill(self, col: int, day: int, before: float, after: float,
                calendar: int = 0) -> None:
        """Book one fill in column ``col`` on trading day ``day`` of ``calendar``
        (positions around it)."""
        flipped = before * after < 0  # through 0
        if (flipped or abs(after) < abs(before)) and self.opened_day.item(col) == day:
            self.days.append(day)
            self.calendars.append(calendar)
        if flipped or abs(after) > abs(before):
            self.opened_day[col] = day

    def would_day_trade(self, col: int, day: int, position: float, sign: float) -> bool:
        """Whether an order of direction ``sign`` filling on ``day`` closes a position
        opened that day."""
        return position * sign < 0 and self.opened_day[col] == day

    def count(self, day: int) -> int:
        """Day trades in the five trading days ending with ``day``."""
        if not self.days:
            return 0
        return sum(1 for d in self.days if day - WINDOW < d <= day)
