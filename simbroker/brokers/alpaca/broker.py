"""Alpaca behind the :class:`~simbroker.Broker` protocol, on the official ``alpaca-py``.

- REST (``TradingClient``) for orders, the account's cash, positions, order lookup and
  FILL activities; the ``trade_updates`` WebSocket (``TradingStream``, on its own thread
  and event loop) for fills as they happen. REST is the source of truth: after the stream
  (re)connects, or when it has been down for ``silence_timeout`` seconds, or every
  ``reconcile_interval`` seconds, :meth:`AlpacaBroker.get_fills` pages through the FILL
  activities and adds what the stream missed.
- Every fill has one id whichever way it arrived, ``{order id}-{cumulative qty}``, so a
  fill seen on the stream and again in REST (or twice on the stream) counts once.
- Every order carries a ``client_order_id``; one given by the caller (the real-time
  runner derives them from the run and the bar) is looked up before it is sent, and again
  after a send that failed in transit, so an order resubmitted after a crash or a
  timeout is recognised, never placed twice.
- HTTP errors become simbroker errors with Alpaca's message: 401 bad keys
  (:class:`~simbroker.errors.BrokerAPIError`), 403 insufficient buying power
  (:class:`~simbroker.errors.OrderRejected`), 422 validation
  (:class:`~simbroker.errors.InvalidOrder`), 404 (:class:`~simbroker.errors.UnknownOrder`),
  5xx (:class:`~simbroker.errors.BrokerAPIError`). Keys never appear in any message,
  repr or log line.
- ``paper=False`` (real money) is refused unless ``allow_live=True``.

US equities trade commission-free on Alpaca; fills carry ``fee = 0`` (regulatory fees
post as separate account activities).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from simbroker.config import AlpacaConfig, Secret
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    ConfigError,
    InvalidOrder,
    OrderRejected,
    UnknownOrder,
)
from simbroker.tradelog import TradeLog
from simbroker.types import Fill, Order, OrderInfo, OrderStatus

with warnings.catch_warnings():
    # alpaca-py's stream imports websockets.legacy, deprecated in websockets 14.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient

import contextlib

import requests

__all__ = ["AlpacaBroker"]

from simbroker.brokers.alpaca.connection import Stream as _Stream
from simbroker.brokers.alpaca.translate import FINAL_EVENT as _FINAL_EVENT
from simbroker.brokers.alpaca.translate import STATUS as _STATUS
from simbroker.brokers.alpaca.translate import fill_id
from simbroker.brokers.alpaca.translate import num as _f
from simbroker.brokers.alpaca.translate import utc as _utc
from simbroker.brokers.alpaca.translate import val as _val

log = logging.getLogger(__name__)


class AlpacaBroker:
    """Alpaca paper or live trading as a :class:`~simbroker.Broker`.

    Parameters
    ----------
    api_key, secret_key
        The account's keys (a :class:`~simbroker.config.Secret` or a string).
    paper
        ``True`` for paper trading; ``False`` trades real money and needs ``allow_live``.
    allow_live
        The explicit opt-in to live trading.
    trade_log
        Where to record the session (a start snapshot, submissions, fills, cancels).
    url_override, stream_url, data_url
        Other hosts (tests use :class:`~simbroker.testing.fake_alpaca.FakeAlpaca`).
    data_feed
        ``"iex"`` (free) or ``"sip"`` for bars.
    stream
        Listen to trade_updates (else fills come from REST only).
    reconnect_backoff
        ``(min, max)`` seconds between stream reconnects (exponential, with jitter).
    silence_timeout
        Seconds the stream may be down before REST reconciliation is forced.
    reconcile_interval
        Seconds between REST reconciliations of fills even while the stream is up.
    retry_wait
        Seconds alpaca-py waits before retrying a 429/504 (its default is 3).
    """

    def __init__(self, api_key: Secret | str, secret_key: Secret | str, *, paper: bool = True,
                 allow_live: bool = False, trade_log: TradeLog | None = None,
                 url_override: str | None = None, stream_url: str | None = None,
                 data_url: str | None = None, data_feed: str = "iex", stream: bool = True,
                 reconnect_backoff: tuple[float, float] = (1.0, 30.0),
                 silence_timeout: float = 30.0, reconcile_interval: float = 30.0,
                 retry_wait: float | None = None):
        if not paper and not allow_live:
            raise ConfigError("Alpaca config has paper: false (real money); only an explicit "
                              "live opt-in (simbroker live --confirm-live) may use it",
                              key="paper")
        self._key = api_key if isinstance(api_key, Secret) else Secret(str(api_key))
        self._secret = secret_key if isinstance(secret_key, Secret) else Secret(str(secret_key))
        if not self._key.reveal() or not self._secret.reveal():
            raise ConfigError("Alpaca api_key and secret_key must be set", key="api_key")
        self.paper = paper
        self.data_feed = data_feed
        self.trade_log = trade_log
        self._data_url = data_url if data_url is not None else url_override
        self._lock = threading.RLock()
        self._fills: dict[str, Fill] = {}
        self._fill_cond = threading.Condition(self._lock)
        self._orders: dict[str, OrderInfo] = {}
        self._final_logged: set[str] = set()
        self._closed = False
        self._needs_sync = True
        self._last_sync = 0.0
        self._reconcile_interval = float(reconcile_interval)
        self._silence_timeout = float(silence_timeout)
        self._down_since: float | None = time.monotonic()
        self.stream_connects = 0
        self._client = TradingClient(self._key.reveal(), self._secret.reveal(), paper=paper,
                                     url_override=url_override)
        if retry_wait is not None:
            # alpaca-py retries 429/504 after a fixed 3 s; tests shorten it.
            self._client._retry_wait = retry_wait  # type: ignore[assignment]
        account = self._call(self._client.get_account)
        self._session_start = datetime.now(timezone.utc) - timedelta(seconds=1)
        self._account_clock = self._server_clock()
        if self.trade_log is not None:
            self.trade_log.write("start", self.now(), cash=float(account.cash or 0.0),
                                 positions=self.get_positions(), broker="alpaca",
                                 paper=paper)
        for o in self._call(self._client.get_orders):
            self._remember(o)
        self._stream: _Stream | None = None
        self._stream_thread: threading.Thread | None = None
        if stream:
            self._start_stream(stream_url, paper, reconnect_backoff)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: AlpacaConfig, *, allow_live: bool = False,
                    trade_log: TradeLog | None = None, **kwargs: Any) -> AlpacaBroker:
        """Build from ``CONFIG/brokers/alpaca.yaml`` (see :mod:`simbroker.config`)."""
        broker = cls(cfg.api_key, cfg.secret_key, paper=cfg.paper, allow_live=allow_live,
                     trade_log=trade_log, url_override=cfg.url_override,
                     stream_url=cfg.stream_url, data_url=cfg.data_url,
                     data_feed=cfg.data_feed, **kwargs)
        broker.bar_poll = float(cfg.bar_poll)
        return broker

    @classmethod
    def for_fake(cls, fake: Any, **kwargs: Any) -> AlpacaBroker:
        """Connect to a :class:`~simbroker.testing.fake_alpaca.FakeAlpaca` (tests)."""
        opts: dict[str, Any] = {"reconnect_backoff": (0.05, 0.5), "silence_timeout": 2.0,
                                "retry_wait": 0.0}
        opts.update(kwargs)
        return cls(fake.key, fake.secret, url_override=fake.rest_url,
                   stream_url=fake.stream_url, data_url=fake.data_url, **opts)

    def __repr__(self) -> str:
        return (f"AlpacaBroker({'paper' if self.paper else 'LIVE'}, "
                f"{len(self._orders)} orders, {len(self._fills)} fills)")

    def __enter__(self) -> AlpacaBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the stream and its thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        stream = self._stream
        if stream is not None:
            try:
                stream.stop()
                loop = getattr(stream, "_loop", None)
                if loop is not None and loop.is_running():
                    # Closing the socket wakes the stream's pending recv at once (else it
                    # notices the stop only when its 5 s receive timeout expires).
                    asyncio.run_coroutine_threadsafe(stream.close(), loop).result(5)
            except Exception:  # the loop may already be gone
                log.debug("stream stop failed", exc_info=True)
        if self._stream_thread is not None:
            self._stream_thread.join(10)

    # ------------------------------------------------------------------ REST calls
    def _scrub(self, text: str) -> str:
        for secret in (self._key.reveal(), self._secret.reveal()):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _call(self, fn: Callable[..., Any], *args: Any, order: Order | None = None,
              order_id: str | None = None, **kwargs: Any) -> Any:
        """Call the SDK; translate its failures into simbroker errors."""
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except APIError as exc:
            status = exc.status_code
            msg = self._scrub(str(getattr(exc, "message", "") or exc))
            sym = order.symbol if order is not None else None
            cid = order.client_order_id if order is not None else None
            if status == 401:
                raise BrokerAPIError(f"Alpaca refused the API keys (401): {msg}",
                                     code=401) from None
            if status == 403:
                raise OrderRejected(f"Alpaca refused the order (403): {msg}", symbol=sym,
                                    client_order_id=cid) from None
            if status == 404:
                raise UnknownOrder(order_id or "?") from None
            if status == 422:
                raise InvalidOrder(f"Alpaca rejected the request (422): {msg}", symbol=sym,
                                   client_order_id=cid) from None
            raise BrokerAPIError(f"Alpaca error {status}: {msg}", code=status) from None
        except requests.exceptions.RequestException as exc:
            raise BrokerConnectionError(
                f"cannot reach Alpaca: {self._scrub(type(exc).__name__)}") from None

    def _server_clock(self) -> datetime | None:
        try:
            return _utc(self._call(self._client.get_clock).timestamp)
        except Exception:
            return None

    # ------------------------------------------------------------------ protocol
    def now(self) -> datetime:
        """The current time, UTC (this machine's clock)."""
        return datetime.now(timezone.utc)

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market", *,
                     limit_price: float | None = None, stop_price: float | None = None,
                     tif: str = "day", client_order_id: str | None = None) -> OrderInfo:
        """Send an order; a known ``client_order_id`` returns the order it already placed."""
        order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                             stop_price=stop_price, tif=tif, client_order_id=client_order_id)
        if order.client_order_id is not None:
            existing = self._by_client_id(order.client_order_id)
            if existing is not None:
                return self._same_or_error(existing, order)
        cid = order.client_order_id or f"sb-{uuid.uuid4().hex}"
        req = self._request(order, cid)
        try:
            placed = self._call(self._client.submit_order, req, order=order)
        except (BrokerConnectionError, BrokerAPIError, InvalidOrder) as exc:
            # It may have reached Alpaca before the answer was lost (the SDK's own retry
            # then meets "client_order_id must be unique"): look before failing.
            if isinstance(exc, InvalidOrder) and "client_order_id" not in str(exc):
                raise
            found = self._by_client_id(cid)
            if found is None:
                raise
            placed_info = self._same_or_error(found, order)
        else:
            placed_info = self._remember(placed)
        if self.trade_log is not None:
            self.trade_log.write("submitted", placed_info["submitted_at"],
                                 order_id=placed_info["order_id"], client_order_id=cid,
                                 symbol=order.symbol, side=order.side.value, qty=order.qty,
                                 order_type=order.order_type.value,
                                 limit_price=order.limit_price, stop_price=order.stop_price,
                                 tif=order.tif.value)
        return placed_info

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel an open order; a final order is returned unchanged (idempotent)."""
        try:
            self._call(self._client.cancel_order_by_id, order_id, order_id=order_id)
        except InvalidOrder:  # 422: not cancelable any more (already final)
            pass
        except (UnknownOrder, BrokerAPIError) as exc:
            if isinstance(exc, BrokerAPIError) and "badly formed" not in str(exc).lower():
                raise
            raise UnknownOrder(order_id) from None
        except ValueError:  # the SDK checks ids are UUIDs before sending
            raise UnknownOrder(order_id) from None
        info = self._remember(self._call(self._client.get_order_by_id, order_id,
                                         order_id=order_id))
        return info

    def get_positions(self) -> dict[str, float]:
        """Open positions ``{symbol: signed qty}``."""
        out: dict[str, float] = {}
        for p in self._call(self._client.get_all_positions):
            qty = float(p.qty)
            if qty:
                out[str(p.symbol)] = qty
        return out

    def get_cash(self) -> float:
        """The account's cash balance."""
        return float(self._call(self._client.get_account).cash)

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """Fills of this session in time order; with ``since``, those at or after it."""
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC); got a naive datetime")
        self._maybe_reconcile()
        with self._lock:
            fills = sorted(self._fills.values(), key=lambda f: (f["timestamp"], f["fill_id"]))
        return fills if since is None else [f for f in fills if f["timestamp"] >= since]

    # ------------------------------------------------------------------ orders
    def _request(self, order: Order, cid: str) -> Any:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import (
            LimitOrderRequest,
            MarketOrderRequest,
            StopLimitOrderRequest,
            StopOrderRequest,
        )

        common: dict[str, Any] = {
            "symbol": order.symbol, "qty": order.qty,
            "side": OrderSide.BUY if order.side.value == "buy" else OrderSide.SELL,
            "time_in_force": TimeInForce.DAY if order.tif.value == "day" else TimeInForce.GTC,
            "client_order_id": cid,
        }
        kind = order.order_type.value
        if kind == "market":
            return MarketOrderRequest(**common)
        if kind == "limit":
            return LimitOrderRequest(limit_price=order.limit_price, **common)
        if kind == "stop":
            return StopOrderRequest(stop_price=order.stop_price, **common)
        return StopLimitOrderRequest(limit_price=order.limit_price,
                                     stop_price=order.stop_price, **common)

    def _by_client_id(self, cid: str) -> OrderInfo | None:
        try:
            found = self._call(self._client.get_order_by_client_id, cid, order_id=cid)
        except UnknownOrder:
            return None
        return self._remember(found)

    def _same_or_error(self, info: OrderInfo, order: Order) -> OrderInfo:
        same = (info["symbol"] == order.symbol and info["side"] == order.side.value
                and math.isclose(info["qty"], order.qty)
                and info["order_type"] == order.order_type.value)
        if not same:
            raise InvalidOrder(f"client_order_id {order.client_order_id!r} already names a "
                               f"different order ({info['side']} {info['qty']:g} "
                               f"{info['symbol']} {info['order_type']})",
                               field="client_order_id", value=order.client_order_id,
                               symbol=order.symbol, client_order_id=order.client_order_id)
        return info

    def _remember(self, o: Any) -> OrderInfo:
        """An alpaca-py Order (or its dict) as OrderInfo; logs a newly final status."""
        get = o.get if isinstance(o, dict) else (lambda k, d=None: getattr(o, k, d))
        raw_status = _val(get("status"))
        status = _STATUS.get(raw_status, OrderStatus.NEW)
        filled = float(get("filled_qty") or 0.0)
        info: OrderInfo = {
            "order_id": str(get("id")), "client_order_id": get("client_order_id"),
            "symbol": str(get("symbol")), "side": _val(get("side")),
            "order_type": _val(get("order_type") or get("type")),
            "tif": _val(get("time_in_force")), "qty": float(get("qty") or 0.0),
            "limit_price": _f(get("limit_price")), "stop_price": _f(get("stop_price")),
            "status": status.value, "filled_qty": filled,
            "avg_fill_price": _f(get("filled_avg_price")) if filled else None,
            "submitted_at": _utc(get("submitted_at") or get("created_at")),
            "reason": None if status is not OrderStatus.REJECTED else raw_status,
        }
        with self._lock:
            self._orders[info["order_id"]] = info
            event = _FINAL_EVENT.get(status)
            if event and self.trade_log is not None \
                    and info["order_id"] not in self._final_logged:
                self._final_logged.add(info["order_id"])
                self.trade_log.write(event, self.now(), order_id=info["order_id"],
                                     symbol=info["symbol"], reason=info["reason"])
        return info

    # ------------------------------------------------------------------ fills
    def _add_fill(self, fid: str, order_id: str, ts: datetime, symbol: str, side: str,
                  qty: float, price: float) -> None:
        with self._fill_cond:
            if fid in self._fills:
                return
            known = self._orders.get(order_id)
            cid = known["client_order_id"] if known is not None else None
            fill: Fill = {"fill_id": fid, "order_id": order_id, "client_order_id": cid,
                          "timestamp": ts, "symbol": symbol, "side": side, "qty": qty,
                          "price": price, "fee": 0.0, "notional": qty * price}
            self._fills[fid] = fill
            if self.trade_log is not None:
                self.trade_log.write("filled", ts, **fill)
            self._fill_cond.notify_all()

    def _maybe_reconcile(self, force: bool = False) -> None:
        if self._stream is not None:
            if self.stream_connected:
                self._down_since = None
            elif self._down_since is None:
                self._down_since = time.monotonic()
            elif time.monotonic() - self._down_since > self._silence_timeout:
                if not self._needs_sync:
                    log.warning("Alpaca trade stream down for %.0f s; reading fills from "
                                "REST", time.monotonic() - self._down_since)
                self._needs_sync = True
        if force or self._needs_sync or self._stream is None or \
                time.monotonic() - self._last_sync > self._reconcile_interval:
            self.reconcile()

    def reconcile(self) -> int:
        """Read this session's FILL activities from REST; add what is missing. Returns
        how many fills were new."""
        before = len(self._fills)
        self._needs_sync = False
        token: str | None = None
        while True:
            # The service's clock, not ours, stamps the activities.
            start = (self._account_clock or self._session_start) - timedelta(seconds=1)
            params: dict[str, Any] = {"direction": "asc", "page_size": 100,
                                      "after": start.isoformat()}
            if token:
                params["page_token"] = token
            page = self._call(self._client.get, "/account/activities/FILL", params)
            for a in page or []:
                oid = str(a["order_id"])
                if oid not in self._orders:
                    with contextlib.suppress(UnknownOrder):
                        self._remember(self._call(self._client.get_order_by_id, oid,
                                                  order_id=oid))
                self._add_fill(fill_id(oid, a["cum_qty"]), oid, _utc(a["transaction_time"]),
                               str(a["symbol"]), _val(a["side"]), float(a["qty"]),
                               float(a["price"]))
            if not page:
                break
            token = str(page[-1]["id"])
        self._last_sync = time.monotonic()
        return len(self._fills) - before

    def wait_for_fills(self, fill_ids: Iterable[str], timeout: float = 10.0) -> bool:
        """Block until every id in ``fill_ids`` is known (stream, then REST); True if so."""
        wanted = set(fill_ids)
        deadline = time.monotonic() + timeout
        with self._fill_cond:
            while not wanted <= set(self._fills):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._fill_cond.wait(min(left, 0.5))
        if not wanted <= set(self._fills):
            self.reconcile()
        return wanted <= set(self._fills)

    # ------------------------------------------------------------------ stream
    def _start_stream(self, url: str | None, paper: bool,
                      backoff: tuple[float, float]) -> None:
        stream = _Stream(self._key.reveal(), self._secret.reveal(), paper=paper,
                         url_override=url, on_connect=self._stream_connected,
                         websocket_params={"ping_interval": 10, "ping_timeout": 20,
                                           "max_queue": 1024})
        stream._reconnect_min_backoff, stream._reconnect_max_backoff = backoff
        stream.subscribe_trade_updates(self._on_update)
        self._stream = stream

        def run() -> None:
            try:
                stream.run()
            except Exception:
                log.exception("Alpaca trade stream stopped")

        self._stream_thread = threading.Thread(target=run, name="alpaca-trade-updates",
                                               daemon=True)
        self._stream_thread.start()

    def _stream_connected(self) -> None:
        self.stream_connects += 1
        self._down_since = None
        # Anything that filled while we were away is only in REST now.
        self._needs_sync = True
        log.info("Alpaca trade stream connected (%d)", self.stream_connects)

    @property
    def stream_connected(self) -> bool:
        """True while the trade_updates stream is up."""
        stream = self._stream
        return stream is not None and bool(getattr(stream, "_running", False))

    async def _on_update(self, update: Any) -> None:
        try:
            event = _val(update.event)
            o = update.order
            info = self._remember(o)
            if event in ("fill", "partial_fill") and update.qty is not None:
                self._add_fill(fill_id(info["order_id"], o.filled_qty), info["order_id"],
                               _utc(update.timestamp), info["symbol"], info["side"],
                               float(update.qty), float(update.price))
        except Exception:
            log.exception("could not handle an Alpaca trade update")

    # ------------------------------------------------------------------ bars
    bar_poll: float = 5.0
    """Default seconds between polls of :meth:`bar_feed` (config key ``bar_poll``)."""

    def bar_feed(self, symbols: Sequence[str], interval: timedelta, *,
                 warmup: int = 0, poll: float | None = None) -> Any:
        """Completed bars of ``symbols`` for the real-time runner (see
        :class:`AlpacaBarFeed`)."""
        from simbroker.brokers.alpaca.feed import AlpacaBarFeed

        return AlpacaBarFeed(self, symbols, interval, warmup=warmup,
                             poll=self.bar_poll if poll is None else poll)


