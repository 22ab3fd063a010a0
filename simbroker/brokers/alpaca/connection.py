"""The trade_updates stream: alpaca-py's TradingStream, reporting each (re)connect."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

with warnings.catch_warnings():
    # alpaca-py's stream imports websockets.legacy, deprecated in websockets 14.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.trading.stream import TradingStream

__all__ = ["Stream"]


class Stream(TradingStream):
    """alpaca-py's stream, telling its owner each time it has (re)connected."""

    def __init__(self, *args: Any, on_connect: Callable[[], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._on_connect = on_connect

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[no-untyped-call]
        self._on_connect()


