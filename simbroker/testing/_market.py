"""The part of a fake broker that replays bars: what both fakes serve as history."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta, timezone

from simbroker.bars import Bars

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class BarReplay:
    """Bars a fake serves as its history, released one at a time.

    The fake's ``clock`` follows the bars (the close of the last one out) and each released
    bar's close becomes the symbol's price. A fake that mixes this in sets ``_lock``,
    ``prices``, ``_bars``, ``_bars_visible`` and ``clock`` in its ``__init__``.
    """

    _lock: threading.RLock
    prices: dict[str, float]
    _bars: Bars | None
    _bars_visible: int
    clock: datetime

    def set_bars(self, bars: Bars, visible: int = 0) -> None:
        """Serve ``bars`` as history; only the first ``visible`` are out yet.

        The clock moves to the close of the last visible bar (the first bar's open when
        none is); :meth:`release_bar` moves it on bar by bar.
        """
        with self._lock:
            self._bars, self._bars_visible = bars, visible
            ns = int(bars.close_ns[visible - 1]) if visible else int(bars.ts_ns[0])
            self.clock = _EPOCH + timedelta(microseconds=ns // 1000)

    def release_bar(self) -> int:
        """The next bar closes: it becomes visible and its close the price. Returns its row."""
        with self._lock:
            if self._bars is None or self._bars_visible >= len(self._bars):
                raise RuntimeError("no more bars to release")
            t = self._bars_visible
            self._bars_visible += 1
            for j, sym in enumerate(self._bars.symbols):
                c = self._bars.close[t, j]
                if math.isfinite(c):
                    self.prices[sym] = float(c)
            self.clock = _EPOCH + timedelta(microseconds=int(self._bars.close_ns[t]) // 1000)
            return t
