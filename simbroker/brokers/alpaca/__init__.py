"""Alpaca behind the :class:`~simbroker.Broker` protocol (``pip install 'simbroker[alpaca]'``).

One job per module:

- :mod:`~simbroker.brokers.alpaca.broker`: :class:`AlpacaBroker`, the protocol itself,
  assembled from one mixin per part: ``_base`` (the state, the clock and the REST read
  every part uses), ``_submit`` (submission, a lost answer resolved, refusals explained),
  ``_modify`` (cancel and replace), ``_queries`` (orders, positions, cash, the account,
  fills), ``_records`` (the order records, refreshed when stale) and ``_sync`` (fills
  booked once from the stream or REST activities, the reconcile and its worker).
- :mod:`~simbroker.brokers.alpaca.account`: ``GET /v2/account`` as
  :class:`~simbroker.types.AccountInfo`, and the 403 refusals as typed errors.
- :mod:`~simbroker.brokers.alpaca.rest`: REST calls with deadlines, typed errors and
  Alpaca's rate-limit waits, no hidden retries.
- :mod:`~simbroker.brokers.alpaca.connection`: the trade_updates stream's state machine
  (heartbeat, reconnect with backoff and jitter).
- :mod:`~simbroker.brokers.alpaca.orders`: the order registry (simbroker's stable ids
  over Alpaca's replace chains, groups' legs, ``client_order_id``, pending sends).
- :mod:`~simbroker.brokers.alpaca.translate`: Alpaca's statuses, orders, fills and errors
  in simbroker's terms, through alpaca-py's models.
- :mod:`~simbroker.brokers.alpaca.feed`: :class:`AlpacaBarFeed`, bars for the runner.
"""

from __future__ import annotations

try:
    import alpaca  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Alpaca adapter needs alpaca-py: pip install 'simbroker[alpaca]'",
                      name="alpaca") from exc

from simbroker.brokers.alpaca.broker import AlpacaBroker
from simbroker.brokers.alpaca.feed import AlpacaBarFeed
from simbroker.brokers.alpaca.translate import fill_id

__all__ = ["AlpacaBarFeed", "AlpacaBroker", "fill_id"]
