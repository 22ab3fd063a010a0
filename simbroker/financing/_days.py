"""When financing accrues: the last bar of each trading day, and the days it covers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simbroker.sessions import Sessions

__all__ = ["accrual_days"]


def accrual_days(sessions: Sessions) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The bars that end a trading day and the calendar days each accrual covers.

    The account's trading day of a bar is the latest session it belongs to on any of the
    bars' calendars (one calendar, or the date rule in ``session_tz``, in most runs);
    bars in no session (weekends, holidays on a calendar) are in no day. A day ends at its
    last bar; it covers the calendar days until the next trading day in the bars (3 from
    a Friday to a Monday, as lenders and banks charge a weekend), and 1 for the last day
    of the bars.
    """
    day = sessions.day.view(np.int64)  # datetime64[D] as days since 1970; NaT is min int
    nat = np.iinfo(np.int64).min
    acct = day.max(axis=1) if day.shape[1] > 1 else day[:, 0]
    idx = np.flatnonzero(acct != nat)
    if not len(idx):
        return np.array([], np.int64), np.array([], np.float64)
    d = np.maximum.accumulate(acct[idx])  # a day never goes back
    last = np.flatnonzero(np.append(d[1:] != d[:-1], True))
    ends = idx[last].astype(np.int64)
    dd = d[last]
    days = np.append(np.diff(dd), 1).astype(np.float64)
    return ends, days
