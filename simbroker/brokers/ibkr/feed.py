"""Completed IBKR bars for the real-time runner, polled from historical data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from simbroker.brokers.ibkr.translate import utc
from simbroker.feeds import OHLCV, PolledFeed

if TYPE_CHECKING:
    from simbroker.brokers.ibkr.broker import IBKRBroker

__all__ = ["IBKRBarFeed"]


class IBKRBarFeed(PolledFeed):
    """IBKR bars: ``warmup`` historical bars, then each bar once it has closed.

    Live bars are polled from historical data every ``poll`` seconds. TWS's last bar is
    the one still forming; it is handed on only once it has closed by TWS's clock.
    """

    def __init__(self, broker: IBKRBroker, symbols: Sequence[str], interval: timedelta, *,
                 warmup: int = 0, poll: float = 5.0, grace: float = 2.0):
        super().__init__(symbols, interval, poll=poll, grace=grace)
        self._broker = broker
        self.start(warmup)

    def __repr__(self) -> str:
        return f"IBKRBarFeed({', '.join(self.symbols)}, {self.interval})"

    def server_now(self) -> datetime:
        """TWS's clock (reqCurrentTime)."""
        ib = self._broker.ib

        async def ask() -> datetime:
            t: datetime = await ib.reqCurrentTimeAsync()  # a Future, not a coroutine
            return t

        return utc(self._broker._run(ask()))

    def fetch(self, since: datetime | None, n: int) -> dict[str, dict[datetime, OHLCV]]:
        """The latest ``n`` bars per symbol (TWS reads back from now; ``since`` is
        covered by the caller's ``n``)."""
        out: dict[str, dict[datetime, OHLCV]] = {}
        for sym in self.symbols:
            out[sym] = {}
            for b in self._broker._bars(sym, self.interval, n):
                d = b.date
                t = (utc(d) if isinstance(d, datetime)
                     else datetime(d.year, d.month, d.day, tzinfo=timezone.utc))
                out[sym][t] = (float(b.open), float(b.high), float(b.low), float(b.close),
                               float(b.volume))
        return out
