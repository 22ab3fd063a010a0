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
- Errors: 401 :class:`~simbroker.errors.BrokerAPIError`, 403
  :class:`~simbroker.errors.OrderRejected`, 404 :class:`~simbroker.errors.UnknownOrder`,
  422 :class:`~simbroker.errors.InvalidOrder`, 429
  :class:`~simbroker.errors.BrokerRateLimited` (with Alpaca's wait), 5xx
  :class:`~simbroker.errors.BrokerAPIError`, no answer in time
  :class:`~simbroker.errors.BrokerTimeout`. Keys never appear in a message, repr, or
  log line (:func:`simbroker.redact.install_secret_filter` runs at construction).
- ``paper=False`` (real money) is refused unless ``allow_live=True``.

US equities trade commission-free on Alpaca; fills carry ``fee = 0`` (regulatory fees
post as separate account activities).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from simbroker.brokers.alpaca import connection
from simbroker.brokers.alpaca.orders import OrderRegistry
from simbroker.brokers.alpaca.rest import Rest, request_sent
from simbroker.brokers.alpaca.translate import (
    FINAL_EVENT,
    fill_from_activity,
    fill_from_update,
    is_duplicate_client_id,
    order_info,
    order_request,
    same_order,
    utc,
)
from simbroker.config import AlpacaConfig, Secret
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    BrokerRateLimited,
    ConfigError,
    InvalidOrder,
    OrderStatusUnknown,
    UnknownOrder,
)
from simbroker.redact import install_secret_filter
from simbroker.tradelog import TradeLog
from simbroker.types import Fill, Order, OrderInfo, OrderStatus

__all__ = ["AlpacaBroker"]

log = logging.getLogger(__name__)

_NEW_YORK = ZoneInfo("America/New_York")
_PAPER_URL, _LIVE_URL = "https://paper-api.alpaca.markets", "https://api.alpaca.markets"
_DATA_URL = "https://data.alpaca.markets"
# Each reconcile re-reads the activities from this long before the newest one REST has
# shown, for activities that Alpaca publishes a little after their transaction time.
_OVERLAP = timedelta(seconds=60)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


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

    # ------------------------------------------------------------------ protocol
    def now(self) -> datetime:
        """The current time, UTC (this machine's clock)."""
        return datetime.now(timezone.utc)

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market", *,
                     limit_price: float | None = None, stop_price: float | None = None,
                     tif: str = "day", client_order_id: str | None = None) -> OrderInfo:
        """Send an order; a known ``client_order_id`` returns the order it already placed.

        Raises :class:`~simbroker.errors.OrderStatusUnknown` when the answer was lost and
        Alpaca could not be asked about the order in time (resubmit the same
        ``client_order_id`` to learn its fate: it is never placed twice), and
        :class:`~simbroker.errors.BrokerConnectionError` without sending anything when an
        earlier order of the same symbol is still unresolved.
        """
        order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                             stop_price=stop_price, tif=tif, client_order_id=client_order_id)
        cid = order.client_order_id or f"sb-{uuid.uuid4().hex}"
        known = self.orders.by_client_id(cid)
        if known is not None:
            return self._same_or_error(known, order)
        self._resolve_pending(order.symbol, except_cid=cid)
        body = order_request(order, cid)
        try:
            raw = self.rest.request("POST", "/orders", body=body, operation="submit_order",
                                    symbol=order.symbol, client_order_id=cid)
        except InvalidOrder as exc:
            if not is_duplicate_client_id(422, str(exc)):
                raise
            found = self._lookup(cid)  # placed before: by an earlier send or process
            if found is None:
                raise
            return self._placed(self._same_or_error(found, order), order, cid)
        except BrokerRateLimited:
            raise  # refused, not placed
        except (BrokerConnectionError, BrokerAPIError) as exc:
            if isinstance(exc, BrokerAPIError) and not _is_server_error(exc):
                raise
            return self._after_lost_answer(order, cid, exc)
        return self._placed(self._remember(raw), order, cid)

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel an open order; a final order is returned unchanged (idempotent)."""
        if not _is_uuid(order_id):
            raise UnknownOrder(order_id)
        with contextlib.suppress(InvalidOrder):  # 422: not cancelable (already final)
            self.rest.request("DELETE", f"/orders/{order_id}", operation="cancel_order",
                              order_id=order_id)
        return self._remember(self._get(f"/orders/{order_id}", "get_order",
                                        order_id=order_id))

    def get_order(self, order_id: str) -> OrderInfo:
        """The order's current state, read from Alpaca (``UnknownOrder`` if it has none)."""
        if not _is_uuid(order_id):
            raise UnknownOrder(order_id)
        return self._remember(self._get(f"/orders/{order_id}", "get_order",
                                        order_id=order_id))

    def get_orders(self, *, open_only: bool = False) -> list[OrderInfo]:
        """The orders this adapter has seen, oldest first, with Alpaca's open orders.

        Alpaca's open orders are read afresh; an order this adapter still holds as open
        but Alpaca no longer lists as open (its end missed on the stream) is read by id,
        so no order is reported open after Alpaca has closed it.
        """
        raw = self._get("/orders", "get_orders",
                        params={"status": "open", "limit": 500, "direction": "asc"})
        listed = {self._remember(r)["order_id"] for r in raw}
        for info in self.orders.all():
            if OrderStatus(info["status"]).is_open and info["order_id"] not in listed:
                self.get_order(info["order_id"])
        infos = sorted(self.orders.all(), key=lambda i: i["submitted_at"])
        return [i for i in infos if not open_only or OrderStatus(i["status"]).is_open]

    def get_positions(self) -> dict[str, float]:
        """Open positions ``{symbol: signed qty}``."""
        from alpaca.trading.models import Position

        out: dict[str, float] = {}
        for raw in self._get("/positions", "get_positions") or []:
            p = Position(**raw)
            qty = float(p.qty)
            if qty:
                out[str(p.symbol)] = qty
        return out

    def get_cash(self) -> float:
        """The account's cash balance."""
        return float(self._get("/account", "get_cash").get("cash") or 0.0)

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """The account's fills from :attr:`fills_since` on (the current trading day by
        default, including those of an earlier process), in time order, each once.

        With ``since``: those at or after it (inclusive; fill times are milliseconds, the
        resolution of Alpaca's activities). A ``since`` older than :attr:`fills_since`
        reads the older fills from REST first, so none is ever left out. While the stream
        is not ready, REST is read before answering (and its failure raised).
        """
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC); got a naive datetime")
        if since is not None and since < self._loaded_from:
            self._load_orders(since)
            self._reconcile(since, log_before=self._session_start)
            self._loaded_from = since
        elif self._stream_state != connection.READY or self._sync_needed:
            self._reconcile()
        with self._fill_cond:
            keys = dict(self._fill_keys)
            fills = [self._fills[k] for k in sorted(keys, key=keys.__getitem__)]
        return fills if since is None else [f for f in fills if f["timestamp"] >= since]

    # ------------------------------------------------------------------ state
    @property
    def stream_state(self) -> str:
        """``connecting``/``syncing``/``ready``/``lost``/``failed``/``closed``."""
        return self._stream_state

    @property
    def stream_connected(self) -> bool:
        """True while the trade_updates stream is subscribed."""
        return self._stream_state in (connection.SYNCING, connection.READY)

    @property
    def stream_connects(self) -> int:
        """Successful stream subscriptions so far."""
        return self._stream.connects if self._stream is not None else 0

    def server_clock(self) -> datetime | None:
        """Alpaca's clock in UTC, or ``None`` when it does not answer in time."""
        try:
            return utc(self._get("/clock", "get_clock")["timestamp"])
        except Exception:
            return None

    def pending_orders(self) -> list[str]:
        """client_order_ids of orders sent whose fate is not yet known."""
        return [p.client_order_id for p in self.orders.pending()]

    # ------------------------------------------------------------------ orders
    def _get(self, path: str, operation: str, **kwargs: Any) -> Any:
        return self.rest.request("GET", path, operation=operation, **kwargs)

    def _remember(self, raw: Any) -> OrderInfo:
        """Merge an order snapshot (JSON or SDK model); record a send it confirms and a
        newly final status."""
        info, became_final, resolved = self.orders.update(order_info(raw))
        if resolved is not None:  # a send whose answer was lost: now seen at Alpaca
            log.info("order %s confirmed by Alpaca", resolved.client_order_id)
            self._placed(info, resolved.order, resolved.client_order_id)
        if became_final and self.trade_log is not None:
            event = FINAL_EVENT.get(OrderStatus(info["status"]))
            if event:
                self.trade_log.write(event, self.now(), order_id=info["order_id"],
                                     symbol=info["symbol"], reason=info["reason"])
        return info

    def _lookup(self, cid: str) -> OrderInfo | None:
        """Alpaca's order under ``cid``; ``None`` if it has none (raises if unreachable)."""
        try:
            raw = self._get("/orders:by_client_order_id", "get_order_by_client_id",
                            params={"client_order_id": cid}, client_order_id=cid)
        except UnknownOrder:
            return None
        return self._remember(raw)

    def _same_or_error(self, info: OrderInfo, order: Order) -> OrderInfo:
        if not same_order(info, order):
            raise InvalidOrder(f"client_order_id {order.client_order_id!r} already names a "
                               f"different order ({info['side']} {info['qty']:g} "
                               f"{info['symbol']} {info['order_type']})",
                               field="client_order_id", value=order.client_order_id,
                               symbol=order.symbol, client_order_id=order.client_order_id)
        return info

    def _placed(self, info: OrderInfo, order: Order, cid: str) -> OrderInfo:
        """The order is at Alpaca: record the submission once (unless it predates this
        session's start snapshot, like an order an earlier process placed)."""
        self.orders.drop_pending(cid)
        with self._logged_lock:  # the stream and the caller may confirm it together
            first = info["order_id"] not in self._logged and \
                info["submitted_at"] > self._session_start
            self._logged.add(info["order_id"])
        if self.trade_log is not None and first:
            self.trade_log.write("submitted", info["submitted_at"],
                                 order_id=info["order_id"], client_order_id=cid,
                                 symbol=order.symbol, side=order.side.value, qty=order.qty,
                                 order_type=order.order_type.value,
                                 limit_price=order.limit_price, stop_price=order.stop_price,
                                 tif=order.tif.value)
        return info

    def _after_lost_answer(self, order: Order, cid: str, exc: Exception) -> OrderInfo:
        """The send's answer never came (or was a 5xx): ask Alpaca by client_order_id."""
        if not request_sent(exc):
            raise exc  # the connection failed before anything was sent
        self.orders.add_pending(cid, order)
        try:
            found = self._lookup(cid)
        except (BrokerConnectionError, BrokerAPIError):
            found = None
            resolved = False
        else:
            resolved = True
        if found is not None:
            return self._placed(self._same_or_error(found, order), order, cid)
        if resolved and not isinstance(exc, BrokerConnectionError):
            # Alpaca answered the send with an error and does not hold the order.
            self.orders.drop_pending(cid)
            raise exc
        log.warning("order %s (%s %g %s): %s; its fate is unknown until Alpaca shows it",
                    cid, order.side.value, order.qty, order.symbol, exc)
        self._wake.set()
        raise OrderStatusUnknown(
            f"sent {order.side.value} {order.qty:g} {order.symbol} but the answer was lost "
            f"({exc}); it is pending_confirm: resubmit client_order_id {cid!r} to resolve "
            f"it (it is never placed twice)",
            client_order_id=cid, symbol=order.symbol) from None

    def _resolve_pending(self, symbol: str | None, except_cid: str | None = None) -> None:
        """Try to resolve pending sends (of ``symbol``); raise if one of it stays open."""
        for p in self.orders.pending(symbol):
            if p.client_order_id == except_cid:
                continue  # its resubmission is the resolution: Alpaca refuses a duplicate
            try:
                found = self._lookup(p.client_order_id)
            except (BrokerConnectionError, BrokerAPIError):
                found = None
            else:
                if found is None and time.monotonic() - p.sent_at > self._pending_grace:
                    log.warning("order %s: Alpaca still has no such client_order_id %.0f s "
                                "after its send; treated as never placed",
                                p.client_order_id, time.monotonic() - p.sent_at)
                    self.orders.drop_pending(p.client_order_id)
                    continue
            if found is not None:
                self._placed(found, p.order, p.client_order_id)
            elif symbol is not None:
                raise BrokerConnectionError(
                    f"not sent: order {p.client_order_id!r} on {symbol} awaits confirmation "
                    f"from Alpaca; nothing new goes out for {symbol} until it is resolved")

    def _load_orders(self, since: datetime) -> None:
        """Every order submitted since ``since`` (open or not), for fills' client ids."""
        after = since - timedelta(seconds=1)
        seen: set[str] = set()
        while True:
            page = self._get("/orders", "get_orders", params={
                "status": "all", "after": after.isoformat(), "direction": "asc",
                "limit": 500, "nested": "false"}) or []
            fresh = [o for o in page if o["id"] not in seen]
            for o in fresh:
                seen.add(o["id"])
                self._remember(o)
            if len(page) < 500 or not fresh:
                break
            after = utc(page[-1]["submitted_at"]) - timedelta(microseconds=1)

    # ------------------------------------------------------------------ fills
    def _add_fill(self, fill: Fill, *, log_it: bool = True) -> bool:
        fid = fill["fill_id"]
        with self._fill_cond:
            if fid in self._fills:
                return False
            if fill["client_order_id"] is None:
                fill["client_order_id"] = self.orders.client_id_of(fill["order_id"])
            self._fills[fid] = fill
            cum = float(fid.rsplit("-", 1)[1])
            self._fill_keys[fid] = (fill["timestamp"], fill["order_id"], cum)
            if log_it and self.trade_log is not None:
                self.trade_log.write("filled", fill["timestamp"], **fill)
            self._fill_cond.notify_all()
        return True

    def reconcile(self) -> int:
        """Read the FILL activities from REST; add what is missing. Returns how many
        fills were new."""
        return self._reconcile()

    def _reconcile(self, since: datetime | None = None,
                   log_before: datetime | None = None) -> int:
        """Page through FILL activities after ``since`` (default: the newest seen minus
        an overlap, else :attr:`fills_since`). Fills before ``log_before`` happened
        before this session's start snapshot and are not written to the trade log."""
        self._sync_needed = False
        if since is None:
            newest = self._newest_activity
            since = self.fills_since if newest is None else max(self.fills_since,
                                                                newest - _OVERLAP)
        # ``after`` is exclusive at Alpaca: start one millisecond early.
        params: dict[str, Any] = {"direction": "asc", "page_size": 100,
                                  "after": (since - timedelta(milliseconds=1)).isoformat()}
        added = 0
        try:
            while True:
                page = self._get("/account/activities/FILL", "get_fill_activities",
                                 params=params) or []
                for a in page:
                    added += self._activity(a, log_before)
                if not page:
                    break
                params["page_token"] = str(page[-1]["id"])
        except BaseException:
            self._sync_needed = True
            raise
        self.reconciles += 1
        self._last_sync = time.monotonic()
        return added

    def _activity(self, a: dict[str, Any], log_before: datetime | None) -> int:
        oid = str(a["order_id"])
        if self.orders.get(oid) is None:
            with contextlib.suppress(UnknownOrder):
                self._remember(self._get(f"/orders/{oid}", "get_order", order_id=oid))
        fill = fill_from_activity(a, self.orders.client_id_of(oid))
        newest = self._newest_activity
        if newest is None or fill["timestamp"] > newest:
            self._newest_activity = fill["timestamp"]
        before = log_before is not None and fill["timestamp"] <= log_before
        return int(self._add_fill(fill, log_it=not before))

    def wait_for_fills(self, fill_ids: Iterable[str], timeout: float = 10.0, *,
                       reconcile: bool = True) -> bool:
        """Block until every id in ``fill_ids`` is known; True if so. Past ``timeout``,
        REST is read once more (unless ``reconcile`` is false)."""
        wanted = set(fill_ids)
        deadline = time.monotonic() + timeout
        with self._fill_cond:
            while not wanted <= self._fills.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._fill_cond.wait(min(left, 0.5))
            done = wanted <= self._fills.keys()
        if not done and reconcile:
            self._reconcile()
            with self._fill_cond:
                done = wanted <= self._fills.keys()
        return done

    # ------------------------------------------------------------------ stream
    def _on_event(self, data: dict[str, Any]) -> None:
        from alpaca.trading.models import TradeUpdate

        update = TradeUpdate(**data)
        self._remember(update.order)
        fill = fill_from_update(update)
        if fill is not None:
            # Not a REST cursor: a fill the stream dropped before this one must still be
            # inside the next reconcile's window.
            self._add_fill(fill)

    def _on_stream_state(self, state: str) -> None:
        self._stream_state = state
        if state in (connection.SYNCING, connection.LOST, connection.FAILED):
            self._sync_needed = True
            self._wake.set()

    def _maintain(self) -> None:
        """The reconcile thread: sync after each (re)connect, poll while the stream is not
        ready, reconcile every ``reconcile_interval``, resolve pending sends."""
        while not self._closed:
            ready = self._stream is not None and self._stream_state == connection.READY
            wait = self._reconcile_interval if ready and not self.orders.pending() \
                else self._fallback_poll
            self._wake.wait(max(0.0, min(wait, self._last_sync + wait - time.monotonic())))
            self._wake.clear()
            if self._closed:
                break
            stream = self._stream
            try:
                if self.orders.pending():
                    self._resolve_pending(None)
                due = time.monotonic() - self._last_sync >= (
                    self._reconcile_interval if self._stream_state == connection.READY
                    else self._fallback_poll)
                if self._sync_needed or due or stream is None or \
                        self._stream_state != connection.READY:
                    syncing = self._stream_state == connection.SYNCING
                    self._reconcile()
                    if syncing and stream is not None:
                        stream.mark_ready()
            except BrokerRateLimited as exc:
                self._wake.wait(exc.retry_after or 1.0)
            except Exception as exc:
                log.warning("Alpaca reconcile failed (%s); retrying", exc)
                self._wake.wait(min(self._fallback_poll, 1.0))

    # ------------------------------------------------------------------ bars
    def bar_feed(self, symbols: Sequence[str], interval: timedelta, *,
                 warmup: int = 0, poll: float | None = None) -> Any:
        """Completed bars of ``symbols`` for the real-time runner (see
        :class:`~simbroker.brokers.alpaca.feed.AlpacaBarFeed`)."""
        from simbroker.brokers.alpaca.feed import AlpacaBarFeed

        return AlpacaBarFeed(self, symbols, interval, warmup=warmup,
                             poll=self.bar_poll if poll is None else poll)


def _is_server_error(exc: BrokerAPIError) -> bool:
    return isinstance(exc.code, int) and exc.code >= 500
