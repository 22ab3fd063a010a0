"""Interactive Brokers (TWS / IB Gateway) behind the :class:`~simbroker.Broker` protocol
(``pip install 'simbroker[ibkr]'``; ib_async, or ib_insync when it is the one installed).

One job per module:

- :mod:`~simbroker.brokers.ibkr.broker`: :class:`IBKRBroker`, the protocol itself,
  assembled from one mixin per part: ``_base`` (the state and the calls onto the IO
  loop), ``_submit`` (orders and groups placed, acknowledgements awaited, an unanswered
  one settled from TWS), ``_modify`` (cancel and replace), ``_queries`` (the adapter's
  books: orders, positions, cash, the account, fills) and ``_sync`` (TWS's events, each
  execution booked once, the sync after a reconnect).
- :mod:`~simbroker.brokers.ibkr.connection`: the connection's state machine
  (connecting, syncing, ready, lost).
- :mod:`~simbroker.brokers.ibkr.orders`: the order registry, keyed by simbroker's ids.
- :mod:`~simbroker.brokers.ibkr.translate`: IB's order types, statuses, codes, times and
  fills in simbroker's terms.
- :mod:`~simbroker.brokers.ibkr.account`: TWS account values as
  :class:`~simbroker.types.AccountInfo`, error 201 as a typed refusal.
- :mod:`~simbroker.brokers.ibkr.feed`: :class:`IBKRBarFeed`, bars for the runner.
"""

from __future__ import annotations

from simbroker.brokers.ibkr.broker import IBKRBroker
from simbroker.brokers.ibkr.feed import IBKRBarFeed

__all__ = ["IBKRBarFeed", "IBKRBroker"]
