"""Marks: each symbol's last close, the price an account values its positions at."""

from __future__ import annotations

import numpy as np

__all__ = ["Marks", "last_closes"]


def last_closes(close: np.ndarray, t: int) -> np.ndarray:
    """Each column's last finite close at or before bar ``t`` (NaN where none yet)."""
    out = np.full(close.shape[1], np.nan)
    if t < 0:
        return out
    seen = np.isfinite(close[: t + 1])
    any_seen = seen.any(axis=0)
    last = t - np.argmax(seen[::-1], axis=0)
    cols = np.flatnonzero(any_seen)
    out[cols] = close[last[cols], cols]
    return out


class Marks:
    """The last close per symbol, advanced one bar at a time (O(symbols) per bar).

    Parameters
    ----------
    close
        The panel's ``(T, N)`` closes.
    t
        The latest closed bar at the start (-1: none yet).
    """

    def __init__(self, close: np.ndarray, t: int):
        self._close = close
        self.t = t
        self.price = last_closes(close, t)

    def advance(self, t: int) -> np.ndarray:
        """Take in every bar up to ``t``; return the marks (the array is reused)."""
        if t - self.t > 1:
            self.price = last_closes(self._close, t)
        elif t == self.t + 1:
            row = self._close[t]
            np.copyto(self.price, row, where=np.isfinite(row))
        self.t = max(self.t, t)
        return self.price
