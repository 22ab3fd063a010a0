"""The two venues a rehearsal can run against: a loopback fake, its bar market, and the
real adapter connected to it.

Each venue starts its fake on 127.0.0.1 at a free port (never a fixed one), makes the
rehearsed bars its market (:mod:`simbroker.testing.fake_tws.bar_market`,
:mod:`simbroker.testing.fake_alpaca.bar_market`), connects the real adapter
(:class:`~simbroker.brokers.ibkr.IBKRBroker` over ib_async,
:class:`~simbroker.brokers.alpaca.AlpacaBroker` over alpaca-py) and maps the planted
faults onto the fake's own hooks.
"""

from __future__ import annotations

import abc
import time
from typing import Any

from simbroker.bars import Bars
from simbroker.errors import BrokerConnectionError
from simbroker.models.fees import FeeModel, PerShare
from simbroker.models.slippage import SlippageModel
from simbroker.testing._bar_market import BarFaults
from simbroker.tradelog import TradeLog

__all__ = ["VENUES", "AlpacaVenue", "IBKRVenue", "Venue", "venue_for"]

_WAIT = 30.0  # seconds a rehearsal waits for the adapter to book a bar's fills


class Venue(abc.ABC):
    """What a rehearsal needs of a venue (one subclass per broker)."""

    name = ""
    documented: tuple[str, ...] = ()
    """The differences from a backtest this venue makes by design (the report names them)."""

    broker: Any
    fake: Any

    @staticmethod
    def default_fees() -> FeeModel | float:
        """The venue's own fee schedule, for the engine and the backtest alike."""
        return 0.0

    @abc.abstractmethod
    def start(self, bars: Bars, *, cash: float, slippage: float | SlippageModel | None,
              fees: float | FeeModel | None, trade_log: TradeLog) -> None:
        """Start the fake with ``bars`` as its market and connect the adapter."""

    def feed(self, bars: Bars) -> Any:
        """The adapter's own bar feed over the fake's history (polled by the rehearsal)."""
        interval = bars.interval.astype("timedelta64[us]").item()
        return self.broker.bar_feed(list(bars.symbols), interval, poll=3600)

    @abc.abstractmethod
    def trade_bar(self, faults: BarFaults, delay: float) -> int:
        """Trade the next bar and wait until the adapter has booked its fills; returns
        how many fills were delivered."""

    def release_bar(self) -> None:
        """The bar closes at the venue (its history shows it)."""
        self.market.release_bar()

    market: Any

    @abc.abstractmethod
    def reject_next(self) -> None:
        """The venue refuses the next order."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """The venue drops the client's connections."""

    def restart(self) -> None:
        """The venue goes away and comes back."""
        self.disconnect()

    def venue_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rehearsal's trade-log records as drift should read them (venue times)."""
        return records

    def close(self) -> None:
        """Disconnect the adapter and stop the fake."""
        try:
            self.broker.close()
        finally:
            self.fake.stop()


class IBKRVenue(Venue):
    """:class:`~simbroker.testing.fake_tws.FakeTWS` and :class:`IBKRBroker` (ib_async)."""

    name = "ibkr"
    documented = (
        "IB books a fill at the adapter's receive time (wall clock); drift reads TWS's "
        "execution time (exec_time), which TWS stamps to the whole second",
        "IB's commission is the venue's per-share schedule (the backtest uses the same "
        "PerShare fee model unless --fees is given)",
        "ib_async's request throttle (45 a second, TWS's pacing) is lifted: the fake has "
        "no pacing limit",
    )

    @staticmethod
    def default_fees() -> FeeModel | float:
        """IBKR Fixed: $0.005 a share, $1 minimum, at most 1 % of the notional."""
        return PerShare()

    def start(self, bars: Bars, *, cash: float, slippage: float | SlippageModel | None,
              fees: float | FeeModel | None, trade_log: TradeLog) -> None:
        """Start FakeTWS (server version 178) and connect IBKRBroker as client 1."""
        from simbroker.brokers.ibkr import IBKRBroker
        from simbroker.testing.fake_tws import FakeTWS
        from simbroker.testing.fake_tws.bar_market import TWSBarMarket

        self.fake = FakeTWS(cash=cash).start()
        self.market = TWSBarMarket(self.fake, bars, slippage=slippage, fees=fees)
        self.broker = IBKRBroker("127.0.0.1", self.fake.port, 1, timeout=5,
                                 trade_log=trade_log, reconnect_backoff=(0.05, 0.5))
        # ib_async throttles itself to TWS's pacing (45 requests a second), which caps a
        # rehearsal at ~9 bars a second over 5 symbols; the fake has no pacing limit.
        self.broker.ib.client.MaxRequests = 0

    def trade_bar(self, faults: BarFaults, delay: float) -> int:
        """See :meth:`Venue.trade_bar` (``delay``: execDetails late, ``exec_delay``)."""
        self.fake.exec_delay = delay
        try:
            ids = self.market.trade_bar(faults)
        finally:
            self.fake.exec_delay = 0.0
        if ids and not self.broker.wait_for_fills(ids, timeout=_WAIT + delay):
            raise BrokerConnectionError(f"IBKRBroker did not book executions {sorted(ids)} "
                                        f"within {_WAIT + delay:g} s")
        self.broker.flush()  # the statuses and pushes TWS sent with them
        return len(ids)

    def reject_next(self) -> None:
        """TWS answers the next placeOrder with error 201."""
        self.fake.inject("reject")

    def disconnect(self) -> None:
        """Close every API socket; wait until the adapter is back."""
        self.fake.drop_connections()
        deadline = time.monotonic() + _WAIT
        time.sleep(0.05)
        while 1 not in self.fake.clients:
            if time.monotonic() > deadline:
                raise BrokerConnectionError("IBKRBroker did not reconnect to the fake TWS")
            time.sleep(0.02)
        if not self.broker.conn.wait_ready(max(deadline - time.monotonic(), 0.1)):
            raise BrokerConnectionError("IBKRBroker did not resynchronise with the fake TWS")
        self.broker.flush()

    def venue_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fills at TWS's execution time (``exec_time``), not the adapter's booking time."""
        out = []
        for rec in records:
            if rec.get("event") == "filled" and rec.get("exec_time") is not None:
                rec = {**rec, "timestamp": rec["exec_time"]}
            out.append(rec)
        return out


class AlpacaVenue(Venue):
    """:class:`~simbroker.testing.fake_alpaca.FakeAlpaca` and :class:`AlpacaBroker`."""

    name = "alpaca"
    documented = (
        "Alpaca stamps each event a microsecond after the previous one, so the fills of "
        "one bar are microseconds apart (the first at the bar's open)",
        "Alpaca charges no commission on equities (the backtest uses fees=0 unless --fees "
        "is given; the venue still reports none)",
    )

    def start(self, bars: Bars, *, cash: float, slippage: float | SlippageModel | None,
              fees: float | FeeModel | None, trade_log: TradeLog) -> None:
        """Start FakeAlpaca and connect AlpacaBroker (REST + trade_updates stream)."""
        from simbroker.brokers.alpaca import AlpacaBroker
        from simbroker.testing.fake_alpaca import FakeAlpaca
        from simbroker.testing.fake_alpaca.bar_market import AlpacaBarMarket

        self.fake = FakeAlpaca(cash=cash).start()
        self.market = AlpacaBarMarket(self.fake, bars, slippage=slippage, fees=fees)
        self.broker = AlpacaBroker.for_fake(self.fake, trade_log=trade_log)
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + _WAIT
        while self.fake.listeners < 1:
            if time.monotonic() > deadline:
                raise BrokerConnectionError("AlpacaBroker never subscribed to trade_updates")
            time.sleep(0.01)

    def trade_bar(self, faults: BarFaults, delay: float) -> int:
        """See :meth:`Venue.trade_bar` (``delay``: the stream events late)."""
        from simbroker.brokers.alpaca import fill_id

        self.fake.event_delay = delay
        try:
            made = self.market.trade_bar(faults)
        finally:
            self.fake.event_delay = 0.0
        ids = {fill_id(a["order_id"], a["cum_qty"]) for a in made}
        if ids and not self.broker.wait_for_fills(ids, timeout=_WAIT + delay):
            raise BrokerConnectionError(f"AlpacaBroker did not book fills {sorted(ids)} "
                                        f"within {_WAIT + delay:g} s")
        return len(ids)

    def reject_next(self) -> None:
        """The next order POST is answered 403 (refused by the venue)."""
        self.fake.fail_next(403, 1, "order rejected (rehearsal fault)", method="POST")

    def disconnect(self) -> None:
        """Close the trade stream; wait until the adapter listens again."""
        self.fake.drop_stream()
        time.sleep(0.05)
        self._wait_listening()

    def restart(self) -> None:
        """The service restarts on the same ports (every connection closes)."""
        self.fake.restart(downtime=0.1)
        time.sleep(0.05)
        self._wait_listening()


VENUES: dict[str, type[Venue]] = {"ibkr": IBKRVenue, "alpaca": AlpacaVenue}
"""The venues by broker name."""


def venue_for(name: str) -> Venue:
    """A fresh venue for broker ``name`` (``ibkr`` or ``alpaca``)."""
    try:
        return VENUES[name]()
    except KeyError:
        raise ValueError(f"broker must be one of {', '.join(VENUES)}, got {name!r}") from None
