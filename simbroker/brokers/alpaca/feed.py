"""Alpaca stock bars for the real-time runner, read with a deadline per request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from simbroker.brokers.alpaca.translate import utc
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
        if secs and secs % size == 0:
            return TimeFrame(secs // size, unit)
    raise ConfigError(f"Alpaca bars come in minutes, hours or days; got {interval}",
                      key="interval")


class AlpacaBarFeed(PolledFeed):
    """Alpaca stock bars: ``warmup`` historical bars, then each bar once it has closed.

    Live bars are read from the bars endpoint every ``poll`` seconds, and a bar counts as
    closed by Alpaca's clock, not this machine's (a bar is handed on once every symbol has
    it, or the feed's grace period after its close has passed). Requests are built by
    alpaca-py's ``StockBarsRequest`` and answers read by its ``BarSet``; they go through
    the broker's market-data connection, with its deadline.
    """

    def __init__(self, broker: AlpacaBroker, symbols: Sequence[str], interval: timedelta, *,
                 warmup: int = 0, poll: float = 5.0, grace: float = 2.0):
        super().__init__(symbols, interval, poll=poll, grace=grace)
        self._broker = broker
        self._timeframe = _timeframe(interval)
        self.start(warmup)

    def __repr__(self) -> str:
        return f"AlpacaBarFeed({', '.join(self.symbols)}, {self.interval})"

    def server_now(self) -> datetime:
        """Alpaca's clock (this machine's when the clock endpoint does not answer)."""
        return self._broker.server_clock() or datetime.now(timezone.utc)

    def fetch(self, since: datetime | None, n: int) -> dict[str, dict[datetime, OHLCV]]:
        """Bars opened after ``since``, or enough calendar time back for ``n`` bars."""
        from alpaca.data.enums import DataFeed
        from alpaca.data.models import BarSet
        from alpaca.data.requests import StockBarsRequest

        # Without ``since``: enough calendar time for n bars across nights, weekends and
        # holidays; the caller keeps the newest n.
        start = (since + self.interval if since is not None
                 else self.server_now() - 4 * n * self.interval - timedelta(days=7))
        req = StockBarsRequest(symbol_or_symbols=list(self.symbols), timeframe=self._timeframe,
                               start=start,
                               feed=DataFeed.SIP if self._broker.data_feed == "sip"
                               else DataFeed.IEX)
        params: dict[str, Any] = req.to_request_fields()
        params["timeframe"] = str(self._timeframe.value)
        params["limit"] = 10_000
        raw: dict[str, list[Any]] = {}
        while True:
            page = self._broker.data_rest.request("GET", "/stocks/bars", params=params,
                                                  operation="get_stock_bars") or {}
            for sym, rows in (page.get("bars") or {}).items():
                raw.setdefault(sym, []).extend(rows or [])
            token = page.get("next_page_token")
            if not token:
                break
            params["page_token"] = token
        data = BarSet(raw).data
        return {str(sym): {utc(b.timestamp): (float(b.open), float(b.high), float(b.low),
                                              float(b.close), float(b.volume))
                           for b in rows}
                for sym, rows in data.items()}
