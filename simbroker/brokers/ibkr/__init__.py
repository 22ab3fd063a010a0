"""Interactive Brokers (TWS / IB Gateway) behind the :class:`~simbroker.Broker` protocol."""

from __future__ import annotations

from simbroker.brokers.ibkr.broker import IBKRBroker
from simbroker.brokers.ibkr.feed import IBKRBarFeed

__all__ = ["IBKRBarFeed", "IBKRBroker"]
