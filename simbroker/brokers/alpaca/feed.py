"""Alpaca stock bars for the real-time runner."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from simbroker.brokers.alpaca.translate import utc as _utc
from simbroker.errors import ConfigError
from simbroker.feeds import OHLCV, PolledFeed

if TYPE_CHECKING:
    from simbroker.brokers.alpaca.broker import AlpacaBroker

__all__ = ["AlpacaBarFeed"]


def _timeframe(interval: timedelta) -> Any:
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    secs = int(interval.total_seconds())
    for unit, size in ((TimeFrameUnit.Day, 86_400), (TimeFrameUnit.Hour, 3600),
                       (TimeFrameUnit.Minute, 60)):
        if secs % size == 0:
            return TimeFrame(secs // size, unit)
    raise ConfigError(f"Alpaca bars come in minutes, hours or days; got {interval}",
                      key="interval")


class AlpacaBarFeed(PolledFeed):
    """Alpaca stock bars: ``warmup`` historical bars, then each bar once it has closed.

    Live bars are read from the bars endpoint every ``poll`` seconds, and a bar counts as
    closed by Alpaca's clock, not this machine's (a bar is handed on once every symbol has
    it, or the feed's grace period after its close has passed).
    """

    def __init__(self, broker: AlpacaBroker, symbols: Sequence[str], interval: timedelta, *,
                 warmup: int = 0, poll: float = 5.0, grace: float = 2.0):
        super().__init__(symbols, interval, poll=poll, grace=grace)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            from alpaca.data.historical import StockHistoricalDataClient
        self._broker = broker
        self._data = StockHistoricalDataClient(broker._key.reveal(), broker._secret.reveal(),
                                               url_override=broker._data_url)
        self._timeframe = _timeframe(interval)
        self.start(warmup)

    def __repr__(self) -> str:
        return f"AlpacaBarFeed({', '.join(self.symbols)}, {self.interval})"

    def server_now(self) -> datetime:
        """Alpaca's clock (this machine's when the clock endpoint does not answer)."""
        return self._broker._server_clock() or datetime.now(timezone.utc)

    def fetch(self, since: datetime | None, n: int) -> dict[str, dict[datetime, OHLCV]]:
        """Bars opened after ``since``, or enough calendar time back for ``n`` bars."""
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockBarsRequest

        # Without ``since``: enough calendar time for n bars across nights, weekends and
        # holidays; the caller keeps the newest n.
        start = (since + self.interval if since is not None
                 else self.server_now() - 4 * n * self.interval - timedelta(days=7))
        req = StockBarsRequest(symbol_or_symbols=list(self.symbols), timeframe=self._timeframe,
                               start=start,
                               feed=DataFeed.SIP if self._broker.data_feed == "sip"
                               else DataFeed.IEX)
        data = self._broker._call(self._data.get_stock_bars, req)
        return {str(sym): {_utc(b.timestamp): (float(b.open), float(b.high), float(b.low),
                                               float(b.close), float(b.volume))
                           for b in rows}
                for sym, rows in data.data.items()}

