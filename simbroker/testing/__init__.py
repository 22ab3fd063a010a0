"""Tools for testing code built on simbroker, and simbroker itself.

- :mod:`simbroker.testing.strategies`: Hypothesis strategies for valid OHLCV panels
  (:func:`~simbroker.testing.strategies.bar_panels`), so your slippage and fee models can
  be proved against the same properties as simbroker's own. Needs ``hypothesis``
  (``pip install 'simbroker[test]'``); import it from its module, so that this package
  stays importable without Hypothesis. Also ``orders`` and ``order_streams`` over a
  panel, as :class:`~simbroker.testing.strategies.OrderSpec` values.
  ``target_frames``, ``slippage_cases`` and ``fee_cases`` feed your own properties.
- :mod:`simbroker.testing.checks`: ready-made invariant checks (slippage and fee models,
  accounting of a result, no look-ahead of a strategy, broker conformance on a venue).
- ``simbroker_pytest``: pytest fixtures, loaded automatically (``pytest11``), kept outside
  this package so that it imports nothing of simbroker until a fixture is used.
- :mod:`simbroker.testing.fake_tws` and :mod:`simbroker.testing.fake_alpaca`: loopback
  Interactive Brokers and Alpaca servers speaking the real protocols, with fault
  injection, to test code that uses the live adapters (or the client libraries).
- :func:`run_order_stream` replays such a stream through a paper broker.
"""

from __future__ import annotations

from simbroker.testing._drive import run_order_stream

__all__ = ["run_order_stream"]
