"""Alpaca behind the :class:`~simbroker.Broker` protocol.

- REST (:mod:`~simbroker.brokers.alpaca.rest`) for orders, cash, positions, order
  lookups and FILL activities, each call with a deadline (``timeout``) and no hidden
  retry; the ``trade_updates`` WebSocket (:mod:`~simbroker.brokers.alpaca.connection`)
  for fills as they happen. No lock is held across the network: a stalled request blocks
  only its caller, never another thread's reads nor the stream's booking of fills.
- REST is the source of truth for fills: a reconcile reads the FILL activities (paged)
  at start-up (the whole current trading day, or since ``fills_since``), at once after
  each stream (re)connect, every ``fallback_poll`` seconds while the stream is not
  ready, and every ``reconcile_interval`` seconds regardless. Fill ids are the same from
  both sources and across restarts (:mod:`~simbroker.brokers.alpaca.translate`), so each
  fill counts once.
- Orders: sent with a ``client_order_id`` (the caller's, or a fresh one) and no lookup
  first. Only when the answer is lost (timeout, connection error, 5xx) or Alpaca refuses
  the id as a duplicate is the id looked up; an order still unaccounted for is
  ``pending_confirm`` (:class:`~simbroker.errors.OrderStatusUnknown`), no other order of
  that symbol goes out until it is resolved, and resubmitting its ``client_order_id`` is
  always safe (Alpaca refuses a second order with the same id).
- Order kinds are Alpaca's native orders (``order_class`` bracket/oto/oco with
  ``take_profit``/``stop_loss``, ``trailing_stop``, every tif, ``extended_hours``);
  ``replace_order`` is Alpaca's replace (``PATCH``), under a ``order_id`` that stays the
  same while Alpaca's changes (:mod:`~simbroker.brokers.alpaca.orders`). What Alpaca
  refuses is refused locally first.
- Errors: 401 :class:`~simbroker.errors.BrokerAPIError`, 403
  :class:`~simbroker.errors.OrderRejected` (``insufficient buying power``:
  :class:`~simbroker.errors.InsufficientBuyingPower`; ``account is not allowed to
  short``: :class:`~simbroker.errors.ShortingNotAllowed`; a ``rejected`` trade-log
  record either way), 404 :class:`~simbroker.errors.UnknownOrder`,
  422 :class:`~simbroker.errors.InvalidOrder`, 429
  :class:`~simbroker.errors.BrokerRateLimited` (with Alpaca's wait), 5xx
  :class:`~simbroker.errors.BrokerAPIError`, no answer in time
  :class:`~simbroker.errors.BrokerTimeout`. Keys never appear in a message, repr, or
  log line (:func:`simbroker.redact.install_secret_filter` runs at construction).
- ``paper=False`` (real money) is refused unless ``allow_live=True``.

US equities trade commission-free on Alpaca; fills carry ``fee = 0`` (regulatory fees
post as separate account activities).

The broker's parts are one module each, mixins :class:`AlpacaBroker` composes: its state,
clock and REST read (:mod:`~simbroker.brokers.alpaca._base`), the order records
(:mod:`~simbroker.brokers.alpaca._records`), fills, the reconcile and the stream
(:mod:`~simbroker.brokers.alpaca._sync`), queries (:mod:`~simbroker.brokers.alpaca._queries`),
submission (:mod:`~simbroker.brokers.alpaca._submit`), cancel and replace
(:mod:`~simbroker.brokers.alpaca._modify`). This module builds, starts and closes the broker.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from simbroker.brokers.alpaca import connection
from simbroker.brokers.alpaca._modify import Modifying
from simbroker.brokers.alpaca.orders import OrderRegistry
from simbroker.brokers.alpaca.rest import Rest
from simbroker.config import AlpacaConfig, Secret
from simbroker.errors import ConfigError
from simbroker.redact import install_secret_filter
from simbroker.tradelog import TradeLog
from simbroker.types import Fill

__all__ = ["AlpacaBroker"]


_NEW_YORK = ZoneInfo("America/New_York")
_PAPER_URL, _LIVE_URL = "https://paper-api.alpaca.markets", "https://api.alpaca.markets"
_DATA_URL = "https://data.alpaca.markets"


class AlpacaBroker(Modifying):
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
        Other hosts (tests use :class:`~simbroker.testing.fake_alpaca.FakeAlpaca`):
        REST without ``/v2``, the full WebSocket URL, the market-data host.
    data_feed
        ``"iex"`` (free) or ``"sip"`` for bars.
    stream
        Listen to trade_updates (else fills come from REST polling only).
    timeout
        The deadline of each REST request, in seconds (default 5). ``submit_order``
        ends within twice this (its send, and one lookup if the answer was lost).
    heartbeat
        Seconds the stream may go without answering a ping before it is closed,
        reconnected and reconciled (default 10).
    reconnect_backoff
        ``(min, max)`` seconds between stream reconnects (exponential, with jitter).
    fallback_poll
        Seconds between REST reads of fills while the stream is not ready (default 2).
    reconcile_interval
        Seconds between REST reconciles of fills even while the stream is up.
    fills_since
        The oldest fill :meth:`get_fills` reports (default: midnight New York time of
        Alpaca's current day), read from the FILL activities at start-up.
    pending_grace
        Seconds after which an order whose send was never answered, and which Alpaca
        still does not know by its ``client_order_id``, is judged never placed (default
        three times ``timeout``).
    """

    bar_poll: float = 5.0
    """Default seconds between polls of :meth:`bar_feed` (config key ``bar_poll``)."""

    def __init__(self, api_key: Secret | str, secret_key: Secret | str, *, paper: bool = True,
                 allow_live: bool = False, trade_log: TradeLog | None = None,
                 url_override: str | None = None, stream_url: str | None = None,
                 data_url: str | None = None, data_feed: str = "iex", stream: bool = True,
                 timeout: float = 5.0, heartbeat: float = 10.0,
                 reconnect_backoff: tuple[float, float] = (1.0, 30.0),
                 fallback_poll: float = 2.0, reconcile_interval: float = 30.0,
                 fills_since: datetime | None = None, pending_grace: float | None = None):
        if not paper and not allow_live:
            raise ConfigError("Alpaca config has paper: false (real money); only an explicit "
                              "live opt-in (simbroker live --confirm-live) may use it",
                              key="paper")
        self._key = api_key if isinstance(api_key, Secret) else Secret(str(api_key))
        self._secret = secret_key if isinstance(secret_key, Secret) else Secret(str(secret_key))
        if not self._key.reveal() or not self._secret.reveal():
            raise ConfigError("Alpaca api_key and secret_key must be set", key="api_key")
        install_secret_filter([self._key, self._secret])
        for name, value in (("timeout", timeout), ("heartbeat", heartbeat),
                            ("fallback_poll", fallback_poll),
                            ("reconcile_interval", reconcile_interval)):
            if not value > 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {value!r}", key=name)
        if fills_since is not None and fills_since.tzinfo is None:
            raise ConfigError("fills_since must be timezone-aware", key="fills_since")
        self.paper = paper
        self.data_feed = data_feed
        self.trade_log = trade_log
        self.timeout = float(timeout)
        self._fallback_poll = float(fallback_poll)
        self._reconcile_interval = float(reconcile_interval)
        self._pending_grace = 3 * self.timeout if pending_grace is None else float(pending_grace)
        base = url_override or (_PAPER_URL if paper else _LIVE_URL)
        self.rest = Rest(base, self._key.reveal(), self._secret.reveal(), timeout=timeout)
        self.data_rest = Rest(data_url or url_override or _DATA_URL, self._key.reveal(),
                              self._secret.reveal(), timeout=timeout)
        self.orders = OrderRegistry()
        self._fills: dict[str, Fill] = {}
        self._fill_keys: dict[str, tuple[datetime, str, float]] = {}
        self._fill_cond = threading.Condition()
        self._logged: set[str] = set()  # order ids whose "submitted" record is written
        self._logged_lock = threading.Lock()
        self._closed = False
        self._wake = threading.Event()
        self._stale: set[str] = set()  # orders to read afresh (a group's siblings)
        self._stale_lock = threading.Lock()
        self._stream_state = connection.CLOSED
        self._sync_needed = True
        self._last_sync = 0.0
        self._newest_activity: datetime | None = None
        self.reconciles = 0
        """REST reconciles of fills so far."""

        try:
            self._start_session(fills_since)
        except BaseException:
            self.rest.close()
            self.data_rest.close()
            raise
        self._stream: connection.TradeStream | None = None
        if stream:
            base_ws = base.replace("https://", "wss://").replace("http://", "ws://")
            self._stream = connection.TradeStream(
                stream_url or f"{base_ws}/stream", self._key.reveal(), self._secret.reveal(),
                on_event=self._on_event, on_state=self._on_stream_state,
                heartbeat=heartbeat, open_timeout=timeout, backoff=reconnect_backoff)
        self._worker = threading.Thread(target=self._maintain, name="alpaca-reconcile",
                                        daemon=True)
        self._worker.start()
        if self._stream is not None:
            self._stream.start()

    def _start_session(self, fills_since: datetime | None) -> None:
        """Snapshot the account, load the window's orders and fills (before the stream)."""
        clock = self.server_clock()
        today = (clock or datetime.now(timezone.utc)).astimezone(_NEW_YORK)
        self.fills_since = fills_since or today.replace(
            hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)
        self._loaded_from = self.fills_since
        self._session_start = clock or datetime.now(timezone.utc)
        account = self._get("/account", "get_account")
        positions = self.get_positions()
        if self.trade_log is not None:
            self.trade_log.write("start", self.now(), cash=float(account.get("cash") or 0.0),
                                 positions=positions, broker="alpaca", paper=self.paper)
        self._load_orders(self.fills_since)
        self._reconcile(self.fills_since, log_before=self._session_start)

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
        """Connect to a :class:`~simbroker.testing.fake_alpaca.FakeAlpaca` (tests): short
        deadlines, heartbeat and backoff."""
        opts: dict[str, Any] = {"reconnect_backoff": (0.05, 0.5), "timeout": 2.0,
                                "heartbeat": 1.0, "fallback_poll": 0.5}
        opts.update(kwargs)
        return cls(fake.key, fake.secret, url_override=fake.rest_url,
                   stream_url=fake.stream_url, data_url=fake.data_url, **opts)

    def __repr__(self) -> str:
        return (f"AlpacaBroker({'paper' if self.paper else 'LIVE'}, {len(self.orders)} "
                f"orders, {len(self._fills)} fills, stream {self._stream_state})")

    def __enter__(self) -> AlpacaBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the stream and the reconcile thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._stream is not None:
            self._stream.close()
        self._worker.join(self.timeout * 3)
        self.rest.close()
        self.data_rest.close()

    # ------------------------------------------------------------------ bars
    def bar_feed(self, symbols: Sequence[str], interval: timedelta, *,
                 warmup: int = 0, poll: float | None = None) -> Any:
        """Completed bars of ``symbols`` for the real-time runner (see
        :class:`~simbroker.brokers.alpaca.feed.AlpacaBarFeed`)."""
        from simbroker.brokers.alpaca.feed import AlpacaBarFeed

        return AlpacaBarFeed(self, symbols, interval, warmup=warmup,
                             poll=self.bar_poll if poll is None else poll)
