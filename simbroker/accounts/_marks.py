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
    """The last close per symbol, brought up to a bar only when it is read.

    On a panel without a missing close the marks of bar ``t`` are the row ``close[t]``
    itself (a read-only view, the same object until the bar changes): nothing to copy.
    Otherwise one array is kept and advanced over the bars passed since it was last
    read (one row: a masked copy; more: the last finite close in those rows).

    Parameters
    ----------
    close
        The panel's ``(T, N)`` closes.
    t
        The latest closed bar at the start (-1: none yet).
    dense
        Whether every close is finite (``None``: find out).
    """

    def __init__(self, close: np.ndarray, t: int, dense: bool | None = None):
        self._close = close
        self.dense = bool(np.isfinite(close).all()) if dense is None else dense
        self._none = np.full(close.shape[1], np.nan)
        self._none.setflags(write=False)
        self.t = -1
        self.price = self._none
        if t >= 0:
            self.at(t)

    def at(self, t: int) -> np.ndarray:
        """The marks as of bar ``t`` (do not write to the array)."""
        if t == self.t:
            return self.price
        if t < 0:
            self.price, self.t = self._none, t
            return self.price
        close = self._close
        if self.dense:
            row: np.ndarray = close[t]
            row.setflags(write=False)
            self.price, self.t = row, t
            return row
        if t == self.t + 1 and self.price is not self._none:
            np.copyto(self.price, close[t], where=np.isfinite(close[t]))
        elif t > self.t and self.price is not self._none:
            window = close[self.t + 1: t + 1]
            seen = np.isfinite(window)
            cols = np.flatnonzero(seen.any(axis=0))
            if cols.size:
                last = (len(window) - 1) - np.argmax(seen[::-1], axis=0)
                self.price[cols] = window[last[cols], cols]
        else:
            self.price = last_closes(close, t)
        self.t = t
        return self.price

    def advance(self, t: int) -> np.ndarray:
        """Take in every bar up to ``t``; return the marks."""
        return self.at(max(self.t, t))
