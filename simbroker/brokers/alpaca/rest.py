"""Alpaca's REST API with a deadline on every call and no hidden retries.

alpaca-py's ``RESTClient`` sends without a timeout (a stalled answer or a half-open
connection blocks forever) and retries 429 and 504 three times with 3 s sleeps, and
neither is configurable through its public API. So the adapter speaks REST itself, on
``requests`` (an alpaca-py dependency), the way the SDK does (``{base}/v2{path}``, the
``APCA-API-*`` headers, JSON bodies), and leaves parsing and validation to alpaca-py's
models (:mod:`simbroker.brokers.alpaca.translate`).

- Every request has a deadline (``timeout``: to connect, and for each wait on the
  answer); when it passes, :class:`~simbroker.errors.BrokerTimeout`.
- Nothing is retried here; the caller decides (an order send looks its
  ``client_order_id`` up instead).
- 429: the wait Alpaca asks for (``Retry-After``, else ``X-RateLimit-Reset``) is honoured:
  no request goes out before it has passed (each raises at once), and the error is
  :class:`~simbroker.errors.BrokerRateLimited` with ``retry_after``.
- One ``requests.Session`` with a connection pool; it is safe to call from several
  threads at once, and no lock is held while a request is in flight.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from simbroker.brokers.alpaca.translate import http_error
from simbroker.errors import BrokerConnectionError, BrokerRateLimited, BrokerTimeout

__all__ = ["Rest", "request_sent"]

log = logging.getLogger(__name__)

_DEFAULT_RATE_WAIT = 1.0  # when a 429 names no wait


def _retry_after(headers: Any) -> float:
    raw = headers.get("Retry-After")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            when = email.utils.parsedate_to_datetime(raw)
            return max(0.0, when.timestamp() - time.time())
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return _DEFAULT_RATE_WAIT


def _refused(exc: BaseException) -> bool:
    """True when the connection itself failed, so the request never left this machine."""
    from urllib3.exceptions import NewConnectionError

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, NewConnectionError | ConnectionRefusedError):
            return True
        todo.extend([e.__cause__, e.__context__, *[a for a in e.args
                                                    if isinstance(a, BaseException)]])
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return False


def request_sent(exc: BaseException) -> bool:
    """False only when ``exc`` (from :meth:`Rest.request`) proves nothing was sent."""
    return bool(getattr(exc, "request_sent", True))


class Rest:
    """One Alpaca REST host (trading or market data).

    Parameters
    ----------
    base_url
        Without ``/v2`` (e.g. ``https://paper-api.alpaca.markets``).
    key, secret
        The account's keys; sent as headers, never logged or put in an error.
    timeout
        Seconds to connect, and to wait for each part of an answer.
    """

    def __init__(self, base_url: str, key: str, secret: str, *, timeout: float):
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=0, pool_connections=2, pool_maxsize=16)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret,
                                      "User-Agent": "simbroker"})
        self._rate_lock = threading.Lock()
        self._blocked_until = 0.0
        self.requests = 0
        """Requests sent (for tests and benchmarks)."""

    def __repr__(self) -> str:
        return f"Rest({self.base_url!r}, timeout={self.timeout:g})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def request(self, method: str, path: str, *, operation: str,
                params: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
                timeout: float | None = None, symbol: str | None = None,
                client_order_id: str | None = None, order_id: str | None = None) -> Any:
        """Send one request; the decoded JSON answer (``None`` when empty).

        Raises :class:`~simbroker.errors.BrokerTimeout` past the deadline,
        :class:`~simbroker.errors.BrokerConnectionError` when Alpaca cannot be reached,
        :class:`~simbroker.errors.BrokerRateLimited` on 429 (and, without sending, until
        the wait it named has passed), or the error that
        :func:`~simbroker.brokers.alpaca.translate.http_error` gives for the status.
        ``symbol``, ``client_order_id`` and ``order_id`` only label those errors.
        """
        wait = timeout if timeout is not None else self.timeout
        with self._rate_lock:
            blocked = self._blocked_until - time.monotonic()
        if blocked > 0:
            raise BrokerRateLimited(f"{operation}: not sent, Alpaca's rate limit is in force",
                                    retry_after=round(blocked, 3))
        self.requests += 1
        try:
            resp = self._session.request(
                method, f"{self.base_url}/v2{path}", params=params, json=body,
                timeout=(wait, wait), allow_redirects=False)
        except requests.ConnectTimeout:
            err: BrokerConnectionError = BrokerTimeout(operation, wait, detail="connecting")
            err.request_sent = False  # type: ignore[attr-defined]
            raise err from None
        except requests.Timeout:
            raise BrokerTimeout(operation, wait) from None
        except requests.RequestException as exc:
            err = BrokerConnectionError(
                f"{operation}: cannot reach Alpaca ({type(exc).__name__})")
            if isinstance(exc, requests.ConnectionError) and _refused(exc):
                err.request_sent = False  # type: ignore[attr-defined]
            raise err from None
        if resp.status_code < 400:
            return resp.json() if resp.content else None
        code: Any = None
        message = resp.text[:500]
        try:
            payload = resp.json()
            if isinstance(payload, dict):
                code = payload.get("code")
                message = str(payload.get("message", message))
        except ValueError:
            pass
        retry_after = None
        if resp.status_code == 429:
            retry_after = _retry_after(resp.headers)
            with self._rate_lock:
                self._blocked_until = max(self._blocked_until,
                                          time.monotonic() + retry_after)
            log.warning("Alpaca rate limit on %s: no request for %.3g s", operation,
                        retry_after)
        raise http_error(resp.status_code, code, f"{operation}: {message}", symbol=symbol,
                         client_order_id=client_order_id, order_id=order_id,
                         retry_after=retry_after) from None
