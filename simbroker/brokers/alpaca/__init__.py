"""Alpaca behind the :class:`~simbroker.Broker` protocol, on the official ``alpaca-py``.

- REST (``TradingClient``) for orders, the account's cash, positions, order lookup and
  FILL activities; the ``trade_updates`` WebSocket (``TradingStream``, on its own thread
  and event loop) for fills as they happen. REST is the source of truth: after the stream
  (re)connects, or when it has been down for ``silence_timeout`` seconds, or every
  ``reconcile_interval`` seconds, :meth:`AlpacaBroker.get_fills` pages through the FILL
  activities and adds what the stream missed.
- Every fill has one id whichever way it arrived, ``{order id}-{cumulative qty}``, so a
  fill seen on the stream and again in REST (or twice on the stream) counts once.
- Every order carries a ``client_order_id``; one given by the caller (the real-time
  runner derives them from the run and the bar) is looked up before it is sent, and again
  after a send that failed in transit, so an order resubmitted after a crash or a
  timeout is recognised, never placed twice.
- HTTP errors become simbroker errors with Alpaca's message: 401 bad keys
  (:class:`~simbroker.errors.BrokerAPIError`), 403 insufficient buying power
  (:class:`~simbroker.errors.OrderRejected`), 422 validation
  (:class:`~simbroker.errors.InvalidOrder`), 404 (:class:`~simbroker.errors.UnknownOrder`),
  5xx (:class:`~simbroker.errors.BrokerAPIError`). Keys never appear in any message,
  repr or log line.
- ``paper=False`` (real money) is refused unless ``allow_live=True``.

US equities trade commission-free on Alpaca; fills carry ``fee = 0`` (regulatory fees
post as separate account activities).
"""

from simbroker.brokers.alpaca.broker import AlpacaBroker
from simbroker.brokers.alpaca.feed import AlpacaBarFeed
from simbroker.brokers.alpaca.translate import fill_id

__all__ = ["AlpacaBarFeed", "AlpacaBroker", "fill_id"]
