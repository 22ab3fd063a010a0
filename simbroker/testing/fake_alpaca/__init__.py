"""A loopback Alpaca: Trading API v2, the trade_updates stream and stock bars.

One job per module:

- :mod:`~simbroker.testing.fake_alpaca._service`: :class:`FakeAlpaca` itself (the REST
  and WebSocket servers, the account, fault injection) and :class:`FakeAlpacaVenue`.
- :mod:`~simbroker.testing.fake_alpaca._orders`: the order book (validation with
  Alpaca's codes, order classes, trailing stops, replace, cancel, matching).
"""

from __future__ import annotations

from simbroker.testing.fake_alpaca._orders import OPEN, ApiError
from simbroker.testing.fake_alpaca._service import FakeAlpaca, FakeAlpacaVenue, stop_sdk_stream

__all__ = ["OPEN", "ApiError", "FakeAlpaca", "FakeAlpacaVenue", "stop_sdk_stream"]
