"""Live broker adapters behind the :class:`simbroker.Broker` protocol.

- :mod:`simbroker.brokers.ibkr`: :class:`~simbroker.brokers.ibkr.IBKRBroker` (TWS / IB
  Gateway, on ``ib_async``).
- :mod:`simbroker.brokers.alpaca`: :class:`~simbroker.brokers.alpaca.AlpacaBroker` (on the
  official ``alpaca-py``).

Each adapter lives in its own module and imports its client library lazily, so that
``import simbroker`` never needs ``ib_async`` or ``alpaca-py`` (optional extras
``simbroker[ibkr]`` and ``simbroker[alpaca]``).
"""
