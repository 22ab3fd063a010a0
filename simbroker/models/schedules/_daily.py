"""A regulatory fee's daily total rounded up to the cent, charged fill by fill.

Alpaca's fee schedules of 2026 say the pass-through fees "are calculated daily, per
account, and rounded up to the nearest cent". :class:`DailyRoundUp` keeps each part's
running raw total per trading day and charges a fill what it adds to the rounded total:
``ceil(total after) - ceil(total before)`` in cents. The first fill of a day pays its own
fee rounded up, later fills the cents their fees carry the total past; a day's charges
add up to its raw total rounded up once, whatever the number of fills.

The day is the New York calendar date of the fill (an after-hours fill at 19:30 EST is
01:30 UTC of the next date, still the same trading day). New York's UTC offset is a whole
number of hours, so the date is looked up once per UTC hour and kept.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["DailyRoundUp", "new_york_days"]

_CENT_EPS = 1e-9  # as the per-fill round-up: 0.1 * 100 is 10.000000000000002
_HOUR_NS = 3_600 * 10**9
_NEW_YORK = ZoneInfo("America/New_York")
_EPOCH_DAY = date(1970, 1, 1)
_HOURS: dict[int, int] = {}  # UTC hour since the epoch -> New York date (days since epoch)


def _day_of_hour(hour: int) -> int:
    day = _HOURS.get(hour)
    if day is None:
        local = datetime.fromtimestamp(hour * 3_600, tz=timezone.utc).astimezone(_NEW_YORK)
        day = (local.date() - _EPOCH_DAY).days
        if len(_HOURS) > 1_000_000:  # a very long run: start the memo again
            _HOURS.clear()
        _HOURS[hour] = day
    return day


def new_york_days(when_ns: np.ndarray) -> np.ndarray:
    """New York calendar dates (int64 days since 1970-01-01) of times in int64 ns, UTC."""
    hours = np.floor_divide(np.asarray(when_ns, np.int64), _HOUR_NS)
    uniq, inv = np.unique(hours.ravel(), return_inverse=True)
    days = np.array([_day_of_hour(h) for h in uniq.tolist()], np.int64)
    out: np.ndarray = days[inv].reshape(hours.shape)
    return out


def _cents(total: float) -> float:
    """``total`` dollars rounded up to whole cents, counted in cents (0 for nothing)."""
    c = float(math.ceil(total * 100.0 - _CENT_EPS))
    return c if c > 0.0 else 0.0


class DailyRoundUp:
    """Running raw totals of regulatory fees per (part, New York date); the days
    before the newest one a call starts on are let go (only a new run goes back).

    :meth:`charge` is called with the fills in the order they execute (the engines price
    them so); a call dated before the newest day counted starts a new ledger (a new run
    reusing the model), as the tiered schedule's month ledger does.
    """

    def __init__(self) -> None:
        self._totals: dict[tuple[str, int], float] = {}
        self._last_day: int | None = None

    def reset(self) -> None:
        """Forget every day's totals."""
        self._totals.clear()
        self._last_day = None

    def state(self) -> tuple[dict[tuple[str, int], float], int | None]:
        """A copy of the totals and the newest day, for :meth:`set_state`."""
        return dict(self._totals), self._last_day

    def set_state(self, state: tuple[dict[tuple[str, int], float], int | None]) -> None:
        """Put back what :meth:`state` returned."""
        totals, last = state
        self._totals = dict(totals)
        self._last_day = last

    def total(self, part: str, day: int) -> float:
        """The raw (unrounded) total of ``part`` counted for New York date ``day``."""
        return self._totals.get((part, day), 0.0)

    def start(self, days: np.ndarray) -> None:
        """Begin a call whose fills fall on ``days`` (see the class docstring)."""
        if days.size == 0:
            return
        first, last = int(days.min()), int(days.max())
        if self._last_day is not None and first < self._last_day:
            self.reset()
        if self._last_day is None or last > self._last_day:
            if self._last_day is not None and first > self._last_day:
                # earlier days can only come back as a new run (a reset): forget them
                self._totals = {k: v for k, v in self._totals.items() if k[1] >= first}
            self._last_day = last

    def charge(self, part: str, raw: np.ndarray, days: np.ndarray) -> np.ndarray:
        """What each fill pays of ``part``: its share of the day's rounded-up total.

        ``raw`` holds the fills' unrounded fees (>= 0, in execution order) and ``days``
        their New York dates; the totals advance by ``raw``.
        """
        flat = np.asarray(raw, np.float64).ravel()
        flat_days = np.asarray(days, np.int64).ravel()
        out = np.empty(flat.shape, np.float64)
        totals = self._totals
        for j, (fee, day) in enumerate(zip(flat.tolist(), flat_days.tolist(), strict=True)):
            key = (part, day)
            before = totals.get(key, 0.0)
            after = before + fee
            totals[key] = after
            out[j] = (_cents(after) - _cents(before)) / 100.0
        result: np.ndarray = out.reshape(np.shape(raw))
        return result
