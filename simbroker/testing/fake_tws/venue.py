"""FakeTWS with an IBKRBroker on it, as a conformance venue."""

from __future__ import annotations

from typing import Any

from simbroker.testing.fake_tws.server import FakeTWS

__all__ = ["FakeTWSVenue"]


class FakeTWSVenue:
    """A :class:`~simbroker.testing.checks.ConformanceVenue` over :class:`FakeTWS`."""

    def __init__(self, server_version: int = 178, **broker_kwargs: Any):
        from simbroker.brokers.ibkr import IBKRBroker

        self.fake = FakeTWS(server_version=server_version).start()
        self.broker = IBKRBroker("127.0.0.1", self.fake.port, 1, **broker_kwargs)

    def set_price(self, symbol: str, price: float) -> None:
        """Where ``symbol`` trades from the next step on."""
        self.fake.set_price(symbol, price)

    def step(self) -> None:
        """Trade once; wait until the broker has seen every execution and commission,
        and every status TWS sent with them (a sibling's cancel, an ioc's end)."""
        made = self.fake.step()
        self.broker.wait_for_fills({e.exec_id for e in made}, timeout=10)
        self.broker.flush()

    def close(self) -> None:
        """Disconnect the broker and stop the fake."""
        self.broker.close()
        self.fake.stop()
