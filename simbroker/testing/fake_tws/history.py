"""FakeTWS's answer to ``reqHistoricalData``: the bars given with
:meth:`~simbroker.testing.fake_tws.FakeTWS.set_bars` up to the ones made visible, as
TWS sends them (``historicalData`` ``17``)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from simbroker.bars import Bars

__all__ = ["historical_data"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def historical_data(bars: Bars | None, visible: int, clock: datetime,
                    f: list[str]) -> list[Any]:
    """The ``historicalData`` fields answering the decoded request ``f``: ``visible``
    bars have closed at ``clock``."""
    req, sym = int(f[1]), f[3]
    rows: list[Any] = []
    if bars is not None and sym in bars:
        j = bars.symbol_index(sym)
        daily = int(bars.interval.astype("int64")) >= 86_400 * 10**9
        # Like TWS, only the bars inside durationStr back from now.
        since = max(clock - _duration(f[17]), _EPOCH) if len(f) > 17 else _EPOCH
        # Like TWS, the answer ends with the bar still forming (so far only its open
        # has traded); a client must not take it for a closed bar.
        first = int(np.searchsorted(bars.ts_ns, (since - _EPOCH) // timedelta(
            microseconds=1) * 1000)) if since > _EPOCH else 0
        for t in range(first, min(visible + 1, len(bars))):
            if not math.isfinite(bars.close[t, j]):
                continue
            when = _EPOCH + timedelta(microseconds=int(bars.ts_ns[t]) // 1000)
            if when < since:
                continue
            date = when.strftime("%Y%m%d") if daily else str(int(when.timestamp()))
            o = bars.open[t, j]
            if t < visible:
                rows += [date, o, bars.high[t, j], bars.low[t, j], bars.close[t, j],
                         bars.volume[t, j], bars.close[t, j], 1]
            else:
                rows += [date, o, o, o, o, 1, o, 1]
    start = clock.strftime("%Y%m%d %H:%M:%S")
    return [17, req, start, start, len(rows) // 8, *rows]


_UNITS = {"S": timedelta(seconds=1), "D": timedelta(days=1), "W": timedelta(weeks=1),
          "M": timedelta(days=31), "Y": timedelta(days=366)}
_ALL = timedelta(days=365 * 200)


def _duration(text: str) -> timedelta:
    """A reqHistoricalData ``durationStr`` (``"37 D"``, ``"180 S"``); unreadable: all."""
    n, _, unit = text.strip().partition(" ")
    try:
        return int(n) * _UNITS[unit.strip().upper()]
    except (ValueError, KeyError):
        return _ALL
