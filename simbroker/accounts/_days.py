"""Trading-day numbers per bar and symbol: what settlement (T+1) and the PDT window count."""

from __future__ import annotations

import numpy as np

from simbroker.sessions import Sessions

__all__ = ["trading_day_numbers"]


def trading_day_numbers(sessions: Sessions) -> np.ndarray:
    """``(T, G)`` int64: for each bar and calendar, the number of its trading day.

    Days are numbered consecutively over the calendar's sessions when it lists them (an
    exchange calendar: a holiday is not a trading day even with no bar on it), else over
    the distinct days the bars fall on (the calendar-date rule). A bar in no trading day
    (a weekend bar) takes the number of the last day before it (-1 before any), so
    "one trading day later" always means the next session.
    """
    day = sessions.day
    n_t, g = day.shape
    out = np.empty((n_t, g), np.int64)
    for j in range(g):
        col = day[:, j]
        inday = ~np.isnat(col)
        known = sessions.session_days[j] if sessions.session_days else np.unique(col[inday])
        known = np.asarray(known, "datetime64[D]")
        num = np.searchsorted(known, col).astype(np.int64)
        # ffill the out-of-day bars with the previous in-day bar's number
        idx = np.where(inday, np.arange(n_t), -1)
        np.maximum.accumulate(idx, out=idx)
        out[:, j] = np.where(idx >= 0, num[np.maximum(idx, 0)], -1)
    return out
