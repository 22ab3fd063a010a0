"""Live broker adapters behind the :class:`simbroker.Broker` protocol.

Each adapter lives in its own module and imports its client library lazily, so that
``import simbroker`` never needs ``ib_async`` or ``alpaca-py`` (optional extras
``simbroker[ibkr]`` and ``simbroker[alpaca]``).
"""
