"""The IBKR broker's state, declared once for the modules that implement its parts, and
its calls onto the IO loop.

:class:`~simbroker.brokers.ibkr.IBKRBroker` is assembled from one-job mixins (queries and
the account, the venue's events and the reconnect sync, submission, cancel and replace);
each reads and writes the attributes declared here, which ``IBKRBroker.__init__`` sets,
and reaches TWS through :meth:`IBKRState._run` / :meth:`IBKRState._run_sync`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from simbroker.brokers.ibkr.connection import Connection
from simbroker.brokers.ibkr.orders import OrderRegistry
from simbroker.errors import BrokerAPIError, BrokerConnectionError, BrokerError, BrokerTimeout
from simbroker.tradelog import TradeLog
from simbroker.types import Fill

__all__ = ["IBKRState", "log"]


log = logging.getLogger("simbroker.brokers.ibkr")


class IBKRState:
    """The attributes of an :class:`~simbroker.brokers.ibkr.IBKRBroker` (its ``__init__`` sets
    them)."""

    bar_poll: float
    account_type: str | None
    pattern_day_trader: bool | None
    host: str
    port: int
    client_id: int
    account: str
    allow_live: bool
    trade_log: TradeLog | None
    timeout: float
    ready_wait: float
    currency: str
    exchange: str
    orders: OrderRegistry
    ib: Any
    conn: Connection
    _closing: bool
    _cond: threading.Condition
    _send_lock: threading.Lock
    _account_lock: threading.Lock
    _fills: dict[str, Fill]
    _logged_final: set[str]
    _positions: dict[str, float]
    _cash: float | None
    _in_base: set[str]
    _last_stamp: datetime
    _sent_seq: int
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread

    def _run(self, coro: Any, timeout: float | None = None, what: str = "request") -> Any:
        """Run ``coro`` on the IO loop; its result, or a typed error."""
        limit = self.timeout if timeout is None else timeout
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(limit)
        except TimeoutError:
            fut.cancel()
            raise BrokerTimeout(f"IBKR {what}", limit) from None
        except BrokerError:
            raise
        except (ConnectionError, OSError) as exc:
            raise BrokerConnectionError(f"IBKR {what}: {exc or type(exc).__name__}") from None
        except asyncio.CancelledError:
            raise BrokerConnectionError(f"IBKR {what}: cancelled (connection lost)") from None
        except Exception as exc:  # ib's RequestError and the like
            raise BrokerAPIError(f"IBKR {what}: {type(exc).__name__}: {exc}",
                                 code=getattr(exc, "code", None)) from None

    def _run_sync(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` on the IO loop (it must not block) and return its result."""
        if threading.current_thread() is self._thread:
            return fn()
        fut: Future[Any] = Future()

        def call() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        try:
            return fut.result(self.timeout)
        except TimeoutError:
            raise BrokerTimeout("IBKR IO loop", self.timeout) from None
        except ConnectionError as exc:
            raise BrokerConnectionError(f"IBKR: {exc or type(exc).__name__}") from None
