"""Which positions a margin call liquidates, and how much of each."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["liquidation_orders"]


def liquidation_orders(pos: np.ndarray, marks: np.ndarray, rates: np.ndarray,
                       deficit: float) -> list[tuple[int, str, float]]:
    """``(column, side, qty)`` closing orders that free at least ``deficit`` of
    maintenance margin: the positions with the largest requirement ``|pos| x mark x
    rate`` first, each whole, the last one by the whole shares needed (fewer than its
    size when that suffices). Closing at the mark frees its requirement without moving
    equity."""
    need = np.abs(pos) * marks * rates
    out: list[tuple[int, str, float]] = []
    left = deficit
    for col in np.argsort(-need, kind="stable").tolist():
        if left <= 0 or need[col] <= 0:
            break
        size = abs(float(pos[col]))
        per_share = float(marks[col] * rates[col])
        qty = size if need[col] <= left else min(size, float(math.ceil(left / per_share)))
        out.append((col, "sell" if pos[col] > 0 else "buy", qty))
        left -= qty * per_share
    return out
