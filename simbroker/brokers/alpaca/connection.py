"""The trade_updates stream: one connection, one state machine, one reconnect loop.

``connecting -> syncing -> ready -> lost -> connecting ...`` (and ``closed``):

- *connecting*: open the WebSocket, authenticate, subscribe to ``trade_updates``, each
  step within ``open_timeout``.
- *syncing*: subscribed; the owner reconciles from REST what it may have missed, then
  calls :meth:`TradeStream.mark_ready`.
- *ready*: events flow to ``on_event``. A silent connection (no pong to a ping within
  ``heartbeat`` seconds: a half-open TCP connection, a stalled peer) is closed and
  counted as lost; so is any error.
- *lost*: wait (exponential backoff with full jitter, between ``backoff`` min and max),
  then connect again; at most ``max_attempts`` attempts per outage, each logged, after
  which the stream stays down (``failed``) and the owner relies on REST alone.

It runs on its own thread and event loop, speaks the protocol alpaca-py's
``TradingStream`` speaks (the ``authenticate``/``listen`` actions, JSON in text or
binary frames), and hands each ``trade_updates`` payload, as a dict, to ``on_event`` on
that thread; ``on_state`` hears every state change. Written on ``websockets`` directly
because ``TradingStream`` exposes neither its state, its backoff nor a heartbeat
timeout that closes a silent connection promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["TradeStream"]

log = logging.getLogger(__name__)

CONNECTING, SYNCING, READY, LOST, FAILED, CLOSED = (
    "connecting", "syncing", "ready", "lost", "failed", "closed")


class TradeStream:
    """Alpaca's trade_updates WebSocket on a thread of its own.

    Parameters
    ----------
    url
        ``wss://paper-api.alpaca.markets/stream`` or the live / a test URL.
    key, secret
        Sent in the authenticate message only.
    on_event
        Called with each trade_updates ``data`` dict (on the stream's thread).
    on_state
        Called with each new state (on the stream's thread; must not block long).
    heartbeat
        Seconds without a pong (pings go out every ``heartbeat / 2``) before the
        connection counts as dead.
    open_timeout
        Seconds for each step of connecting (TCP + handshake, auth, subscribe).
    backoff
        ``(min, max)`` seconds between attempts.
    max_attempts
        Connection attempts per outage before giving up (``None``: never give up).
    """

    def __init__(self, url: str, key: str, secret: str, *,
                 on_event: Callable[[dict[str, Any]], None],
                 on_state: Callable[[str], None], heartbeat: float = 10.0,
                 open_timeout: float = 5.0, backoff: tuple[float, float] = (1.0, 30.0),
                 max_attempts: int | None = 30):
        self.url = url
        self._auth = {"action": "authenticate", "data": {"key_id": key, "secret_key": secret}}
        self._on_event = on_event
        self._on_state = on_state
        self.heartbeat = float(heartbeat)
        self.open_timeout = float(open_timeout)
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.max_attempts = max_attempts
        self.state = CONNECTING
        self.connects = 0
        """Successful subscriptions so far (1 after the first connect)."""
        self.losses = 0
        """Connections lost so far."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: Any = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="alpaca-trade-updates",
                                        daemon=True)

    def __repr__(self) -> str:
        return f"TradeStream({self.url!r}, {self.state}, connects={self.connects})"

    def start(self) -> None:
        """Start the thread (it connects at once)."""
        self._thread.start()
        self._started.wait(5)

    def close(self, timeout: float = 5.0) -> None:
        """Stop and wait for the thread (idempotent)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def mark_ready(self) -> None:
        """The owner has synced after a (re)connect: events are the whole truth again."""
        if self.state == SYNCING:
            self._set(READY)

    def drop(self) -> None:
        """Close the current connection (it reconnects): e.g. after a REST sign that the
        stream missed something."""
        loop, ws = self._loop, self._ws
        if loop is not None and ws is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(ws.close(), loop)

    # ------------------------------------------------------------------ internals
    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            try:
                self._on_state(state)
            except Exception:
                log.exception("trade stream state handler failed")

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:
            log.exception("Alpaca trade stream thread stopped")
        finally:
            self._set(CLOSED)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        stop = self._stop
        attempts = 0
        delay = self.backoff[0]
        while not stop.is_set():
            self._set(CONNECTING)
            attempts += 1
            try:
                await self._session(stop)
                attempts, delay = 0, self.backoff[0]  # it was up: a new outage starts
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if stop.is_set():
                    break
                log.warning("Alpaca trade stream: attempt %d failed (%s)", attempts,
                            _why(exc))
            if stop.is_set():
                break
            self._set(LOST)
            if self.max_attempts is not None and attempts >= self.max_attempts:
                log.error("Alpaca trade stream: gave up after %d attempts; fills now come "
                          "from REST polling only", attempts)
                self._set(FAILED)
                await stop.wait()
                break
            wait = random.uniform(self.backoff[0], max(self.backoff[0], delay))
            delay = min(self.backoff[1], delay * 2)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def _session(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        half = self.heartbeat / 2
        async with connect(self.url, open_timeout=self.open_timeout, ping_interval=half,
                           ping_timeout=half, close_timeout=half, max_queue=1024) as ws:
            self._ws = ws
            try:
                await ws.send(json.dumps(self._auth))
                reply = await self._reply(ws, "authorization")
                status = (reply.get("data") or {}).get("status")
                if status != "authorized":
                    raise PermissionError(f"authentication {status or 'refused'}")
                await ws.send(json.dumps({"action": "listen",
                                          "data": {"streams": ["trade_updates"]}}))
                await self._reply(ws, "listening")
                self.connects += 1
                log.info("Alpaca trade stream subscribed (connection %d)", self.connects)
                self._set(SYNCING)
                receiver = asyncio.ensure_future(self._receive(ws))
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({receiver, stopper},
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in (receiver, stopper):
                    task.cancel()
                if receiver in done and not stop.is_set():
                    self.losses += 1
                    exc = receiver.exception() if not receiver.cancelled() else None
                    log.warning("Alpaca trade stream lost (%s); reconnecting",
                                _why(exc) if exc else "closed")
            finally:
                self._ws = None

    async def _reply(self, ws: Any, stream: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.open_timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {stream} reply within {self.open_timeout:g} s")
            msg = _decode(await asyncio.wait_for(ws.recv(), left))
            if msg.get("stream") == stream:
                return msg
            if msg.get("stream") == "trade_updates":
                self._deliver(msg)

    async def _receive(self, ws: Any) -> None:
        async for raw in ws:
            msg = _decode(raw)
            if msg.get("stream") == "trade_updates":
                self._deliver(msg)

    def _deliver(self, msg: dict[str, Any]) -> None:
        data = msg.get("data")
        if isinstance(data, dict):
            try:
                self._on_event(data)
            except Exception:
                log.exception("could not handle an Alpaca trade update")


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        msg = json.loads(raw)
    except ValueError:
        return {}
    return msg if isinstance(msg, dict) else {}


def _why(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    text = str(exc)
    return type(exc).__name__ + (f": {text}" if text else "")
