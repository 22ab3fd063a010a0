"""Trading-day numbers per bar and symbol: what settlement (T+1) and the PDT window count."""

from __future__ import annotations

import numpy as np

from simbroker.sessions import Sessions

__all__ = ["calendar_days", "day_key", "day_number", "trading_day_numbers"]


def trading_day_numbers(sessions: Sessions) -> np.ndarray:
    """``(T, G)`` int64: for each bar and calendar, the number of its trading day.

    Days are numbered consecutively over the calendar's sessions when it lists them (an
    exchange calendar: a holiday is not a trading day even with no bar on it), else over
    the distinct days the bars fall on (the calendar-date rule). A bar in no trading day
    (a weekend bar) takes the number of the last day before it (-1 before any), so
    "one trading day later" always means the next session.
    """
    kept: np.ndarray | None = sessions._days.get("numbers")
    if kept is None:
        kept = sessions._days["numbers"] = _numbers(sessions)
        kept.setflags(write=False)
    out: np.ndarray = kept.copy()  # callers may move the numbers (_count_days_before)
    return out


def _numbers(sessions: Sessions) -> np.ndarray:
    day = sessions.day
    n_t, g = day.shape
    out = np.empty((n_t, g), np.int64)
    for j, known in enumerate(calendar_days(sessions)):
        col = day[:, j]
        inday = ~np.isnat(col)
        num = np.searchsorted(known, col).astype(np.int64)
        # ffill the out-of-day bars with the previous in-day bar's number
        idx = np.where(inday, np.arange(n_t), -1)
        np.maximum.accumulate(idx, out=idx)
        out[:, j] = np.where(idx >= 0, num[np.maximum(idx, 0)], -1)
    return out


def calendar_days(sessions: Sessions) -> list[np.ndarray]:
    """Per calendar, the ``datetime64[D]`` trading days that day numbers count: its
    sessions when it lists them, else the distinct days the bars fall on."""
    kept: list[np.ndarray] | None = sessions._days.get("days")
    if kept is None:
        kept = []
        for j in range(sessions.day.shape[1]):
            col = sessions.day[:, j]
            known = sessions.session_days[j] if sessions.session_days else np.unique(
                col[~np.isnat(col)])
            days = np.array(known, "datetime64[D]")
            days.setflags(write=False)
            kept.append(days)
        sessions._days["days"] = kept
    return list(kept)  # a list of its own (callers replace entries), of read-only days


def day_key(known: np.ndarray, num: int) -> list[str | int]:
    """A day number as ``[date, offset]``, independent of where the panel starts: the
    trading day ``known[num]`` with offset 0, or (outside the panel's days) the nearest
    end day and the count of trading days beyond it. :func:`day_number` inverts it."""
    if len(known) == 0:
        return ["", num]
    k = min(max(num, 0), len(known) - 1)
    return [str(known[k]), num - k]


def day_number(known: np.ndarray, key: object) -> int:
    """The day number of a :func:`day_key` on the calendar whose days are ``known``.

    Raises ``ValueError`` for a malformed key.
    """
    if not (isinstance(key, (list, tuple)) and len(key) == 2 and isinstance(key[0], str)
            and type(key[1]) is int):
        raise ValueError(f"a day must be [date, offset], got {key!r:.60}")
    if not key[0]:
        return key[1]
    try:
        day = np.datetime64(key[0], "D")
    except ValueError:
        raise ValueError(f"a day must be [date, offset], got {key!r:.60}") from None
    return int(np.searchsorted(known, day)) + key[1]
