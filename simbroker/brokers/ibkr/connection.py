"""The connection to TWS as one state machine: connecting -> syncing -> ready -> lost.

- ``connecting``: one socket and API handshake is being opened; the client library then
  loads positions, account values, open and completed orders and executions.
- ``syncing``: the adapter reconciles its order registry, fills and books with what TWS
  just reported (orders whose fate was unknown are resolved here, before any new order).
- ``ready``: the only state in which the protocol methods answer.
- ``lost``: the socket dropped, or TWS reported notice 1100 (it lost IB's servers).

A drop starts **one** reconnect loop (a second drop while it runs changes nothing). Each
attempt first sleeps a backoff with jitter and then re-checks the connection, so it never
opens a second connection over a live one; a connection that works is never torn down
here. Attempts per outage are bounded (``max_attempts``) and logged; once they are spent
the state stays ``lost`` until a protocol call asks again, which starts one new loop.

Notices: 1100 -> ``lost`` (the socket stays up; nothing is reconnected); 1101 (restored,
data lost) and 1102 (restored, data maintained) -> ``syncing`` while subscriptions,
orders and executions are requested again, then ``ready``.

Everything here runs on the adapter's IO loop except :meth:`Connection.wait_ready`,
:attr:`Connection.state` and :meth:`Connection.require`, which any thread may call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from simbroker.errors import BrokerConnectionError, BrokerError, BrokerTimeout

__all__ = ["Connection", "State", "backoff_delay"]

log = logging.getLogger("simbroker.brokers.ibkr")


def backoff_delay(attempt: int, lo: float, hi: float, u: float) -> float:
    """Seconds before attempt ``attempt`` (1-based) of an outage: "equal jitter".

    ``c = min(hi, lo * 2**(attempt-1))`` and the delay is ``c/2 + u*c/2`` for ``u`` uniform
    in [0, 1), so it lies in ``[c/2, c)``: never zero (no storm), never above ``hi``.
    """
    cap = min(hi, lo * 2.0 ** min(attempt - 1, 60))
    return cap / 2 + u * cap / 2


class State(str, Enum):
    """Where the connection is."""

    CONNECTING = "connecting"
    SYNCING = "syncing"
    READY = "ready"
    LOST = "lost"
    CLOSED = "closed"


class _SyncErrors(logging.Handler):
    """Collects the "... request timed out" errors ib_insync only logs at start-up."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "timed out" in msg:
            self.errors.append(msg)


class Connection:
    """One IB client's link to TWS, its state and its single reconnect loop.

    Parameters
    ----------
    ib
        The ``ib_async.IB`` (or ``ib_insync.IB``) object; created on ``loop``.
    loop
        The adapter's IO loop (running in its own thread).
    host, port, client_id, account, timeout
        Where to connect, as whom, and the deadline of each attempt (seconds).
    resync
        ``await resync(reason)`` reconciles the adapter after each (re)connect
        (``"connect"``) or restoring notice (``"1101"``/``"1102"``); it runs in
        ``syncing`` and must finish before ``ready``.
    backoff
        ``(min, max)`` seconds: attempt *n* of an outage waits a uniform random time in
        ``[c/2, c]`` with ``c = min(max, min * 2**(n-1))`` ("equal jitter").
    max_attempts
        Connection attempts per outage before giving up (logged).
    on_change
        Called (without this object's lock) after every state change, so waiters on
        the adapter's own condition wake up.
    """

    def __init__(self, ib: Any, loop: asyncio.AbstractEventLoop, *, host: str, port: int,
                 client_id: int, account: str, timeout: float,
                 resync: Callable[[str], Awaitable[None]],
                 backoff: tuple[float, float] = (1.0, 30.0), max_attempts: int = 10,
                 on_change: Callable[[], None] | None = None):
        self.ib, self.loop = ib, loop
        self.host, self.port, self.client_id = host, port, client_id
        self.account, self.timeout = account, timeout
        self._resync = resync
        self._on_change = on_change
        self.backoff, self.max_attempts = backoff, max(1, int(max_attempts))
        self._state = State.CONNECTING
        self._cond = threading.Condition()
        self._task: asyncio.Task[None] | None = None
        self._opening = False
        self._in_use = False
        self.gave_up = False
        self.generation = 0
        """Bumped whenever the link is lost: a waiter that saw another value knows."""
        self.connections_opened = 0
        """Connection attempts (sockets opened), all outages together."""
        self.reconnects = 0
        self.outages = 0
        self.attempts_per_outage: list[int] = []
        self.last_error = ""
        params = inspect.signature(ib.connectAsync).parameters
        self._raise_sync = "raiseSyncErrors" in params  # ib_async; not in ib_insync
        ib.disconnectedEvent += self._on_disconnected

    def __repr__(self) -> str:
        return f"Connection({self.host}:{self.port}, client {self.client_id}, {self.state.value})"

    # ------------------------------------------------------------------ any thread
    @property
    def state(self) -> State:
        """The current state."""
        with self._cond:
            return self._state

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``ready``; True if ready. Re-arms a reconnect loop
        that gave up."""
        with self._cond:
            if self._state is State.LOST and self.gave_up:
                self.gave_up = False
                self.loop.call_soon_threadsafe(self._start_loop)
            return self._cond.wait_for(
                lambda: self._state in (State.READY, State.CLOSED), timeout) and \
                self._state is State.READY

    def require(self, operation: str, timeout: float) -> None:
        """Return once ``ready`` (waiting up to ``timeout`` s), else raise
        :class:`~simbroker.errors.BrokerConnectionError` naming ``operation``."""
        if not self.wait_ready(timeout):
            state = self.state
            why = f"; last error: {self.last_error}" if self.last_error else ""
            raise BrokerConnectionError(
                f"{operation}: IBKR connection is {state.value}, not ready "
                f"(waited {timeout:g} s){why}")

    def _set(self, state: State) -> None:
        with self._cond:
            if self._state is State.CLOSED:
                return
            if state is not self._state:
                log.info("IBKR connection %s -> %s", self._state.value, state.value)
            if state is State.LOST and self._state is not State.LOST:
                self.generation += 1
            self._state = state
            self._cond.notify_all()
        if self._on_change is not None:
            self._on_change()

    # ------------------------------------------------------------------ IO loop
    async def open(self) -> None:
        """The first connection: one attempt, its error raised (no retries)."""
        await self._open("connect")

    async def _open(self, reason: str) -> None:
        if not self.ib.isConnected():
            self._set(State.CONNECTING)
            await self._attempt()
        self._set(State.SYNCING)
        await self._resync(reason)
        if not self.ib.isConnected():
            raise BrokerConnectionError("IBKR connection dropped during the sync")
        self._set(State.READY)

    async def _attempt(self) -> None:
        self.connections_opened += 1
        self._opening = True
        self._in_use = False
        # What the client cached from the last connection is not current any more: TWS
        # sends it all again at start-up.
        self.ib.wrapper.reset()
        kwargs: dict[str, Any] = {"clientId": self.client_id, "timeout": self.timeout,
                                  "account": self.account}
        catcher = _SyncErrors()
        lib_log = logging.getLogger(type(self.ib).__module__.split(".")[0])
        if self._raise_sync:
            kwargs["raiseSyncErrors"] = True
        else:
            lib_log.addHandler(catcher)
        try:
            await self.ib.connectAsync(self.host, self.port, **kwargs)
            if catcher.errors:
                self.ib.disconnect()  # ib_insync carries on with half a sync: not ready
                raise BrokerConnectionError(f"IBKR start-up sync incomplete: "
                                            f"{'; '.join(catcher.errors)}")
        except BrokerError as exc:
            self.last_error = str(exc)
            raise
        except (asyncio.TimeoutError, TimeoutError):
            self.last_error = "no answer"
            if self._in_use:
                raise self._in_use_error() from None
            raise BrokerTimeout(f"connect to IBKR at {self.host}:{self.port}",
                                self.timeout) from None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self._in_use:
                raise self._in_use_error() from None
            raise BrokerConnectionError(f"cannot connect to IBKR at {self.host}:{self.port}: "
                                        f"{self.last_error}") from None
        finally:
            self._opening = False
            if not self._raise_sync:
                lib_log.removeHandler(catcher)
        self.last_error = ""

    def _in_use_error(self) -> BrokerConnectionError:
        return BrokerConnectionError(f"IBKR client id {self.client_id} is already in use "
                                     f"(error 326); choose another client_id")

    def client_id_in_use(self) -> None:
        """Error 326 arrived during the handshake."""
        self._in_use = True

    def _on_disconnected(self) -> None:
        if self._opening or self.state is State.CLOSED:
            return  # an attempt of ours failed; its loop carries on
        log.warning("IBKR connection lost")
        self._set(State.LOST)
        self._start_loop()

    def _start_loop(self) -> None:
        if self.state is State.CLOSED:
            return
        if self._task is not None and not self._task.done():
            return  # one reconnect loop at a time
        self._task = self.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        self.outages += 1
        lo, hi = self.backoff
        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt, lo, hi, random.random()))
            if self.state is State.CLOSED:
                return
            if self.ib.isConnected() and self.state is State.READY:
                self.attempts_per_outage.append(attempt - 1)
                return  # already back (never a second connection over a live one)
            try:
                await self._open("connect")
            except BrokerError as exc:
                log.warning("IBKR reconnect attempt %d/%d failed: %s", attempt,
                            self.max_attempts, exc)
                continue
            self.reconnects += 1
            self.attempts_per_outage.append(attempt)
            log.info("IBKR reconnected after %d attempt(s)", attempt)
            return
        self.attempts_per_outage.append(attempt)
        if not self.ib.isConnected():
            self._set(State.LOST)
        with self._cond:
            self.gave_up = True
        log.error("IBKR: gave up reconnecting after %d attempts (%s); the next call "
                  "tries again", attempt, self.last_error or "no answer")

    def notice(self, code: int) -> None:
        """System notice 1100 / 1101 / 1102 from TWS."""
        if code == 1100:
            log.warning("IBKR notice 1100: TWS lost its connection to IB; not ready")
            self._set(State.LOST)
        elif code in (1101, 1102) and self.ib.isConnected() and self._task_idle():
            log.info("IBKR notice %d: connectivity restored; resyncing", code)
            self._task = self.loop.create_task(self._restored(str(code)))

    def _task_idle(self) -> bool:
        return self._task is None or self._task.done()

    async def _restored(self, reason: str) -> None:
        try:
            self._set(State.SYNCING)
            await asyncio.wait_for(self._resync(reason), self.timeout * 3)
            if self.ib.isConnected():
                self._set(State.READY)
        except Exception as exc:  # the socket dropped meanwhile: its own loop follows
            log.warning("IBKR resync after notice %s failed: %s", reason, exc)
            if self.ib.isConnected():
                self._set(State.LOST)
                self._task = None
                self._start_loop()

    def close(self) -> None:
        """No more reconnecting (IO loop)."""
        self._set(State.CLOSED)
        with self._cond:
            self._state = State.CLOSED
            self._cond.notify_all()
        if self._task is not None and not self._task.done():
            self._task.cancel()
