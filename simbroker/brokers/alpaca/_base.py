"""The Alpaca broker's state, declared once for the modules that implement its parts, with
the clock and the REST read every part uses.

:class:`~simbroker.brokers.alpaca.AlpacaBroker` is assembled from one-job mixins (the
order records, fills and the stream, queries, submission, cancel and replace); each reads
and writes the attributes declared here, which ``AlpacaBroker.__init__`` sets.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

from simbroker.brokers.alpaca import connection
from simbroker.brokers.alpaca.orders import OrderRegistry
from simbroker.brokers.alpaca.rest import Rest
from simbroker.config import Secret
from simbroker.tradelog import TradeLog
from simbroker.types import Fill

__all__ = ["AlpacaState", "log"]


# The adapter's logger, named as before broker.py was split into these modules.
log = logging.getLogger("simbroker.brokers.alpaca.broker")


class AlpacaState:
    """The attributes of an :class:`~simbroker.brokers.alpaca.AlpacaBroker` (its ``__init__``
    sets them)."""

    bar_poll: float
    paper: bool
    data_feed: str
    trade_log: TradeLog | None
    timeout: float
    rest: Rest
    data_rest: Rest
    orders: OrderRegistry
    reconciles: int
    fills_since: datetime
    _key: Secret
    _secret: Secret
    _fallback_poll: float
    _reconcile_interval: float
    _pending_grace: float
    _fills: dict[str, Fill]
    _fill_keys: dict[str, tuple[datetime, str, float]]
    _fill_cond: threading.Condition
    _logged: set[str]
    _logged_lock: threading.Lock
    _closed: bool
    _wake: threading.Event
    _stale: set[str]
    _stale_lock: threading.Lock
    _stream_state: str
    _sync_needed: bool
    _last_sync: float
    _newest_activity: datetime | None
    _loaded_from: datetime
    _session_start: datetime
    _stream: connection.TradeStream | None
    _worker: threading.Thread

    def now(self) -> datetime:
        """The current time, UTC (this machine's clock)."""
        return datetime.now(timezone.utc)

    def _get(self, path: str, operation: str, **kwargs: Any) -> Any:
        return self.rest.request("GET", path, operation=operation, **kwargs)
