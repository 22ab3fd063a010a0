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
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from simbroker.brokers.alpaca import connection
from simbroker.brokers.alpaca.account import account_info, opening_qty, refusal
from simbroker.brokers.alpaca.orders import OrderRegistry
from simbroker.brokers.alpaca.rest import Rest, request_sent
from simbroker.brokers.alpaca.translate import (
    FINAL_EVENT,
    VenueOrder,
    alpaca_refusal,
    fill_from_activity,
    fill_from_update,
    is_duplicate_client_id,
    order_request,
    replace_request,
    same_order,
    utc,
    venue_order,
)
from simbroker.config import AlpacaConfig, Secret
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    BrokerRateLimited,
    ConfigError,
    InvalidOrder,
    OrderRejected,
    OrderStatusUnknown,
    ReplaceRejected,
    UnknownOrder,
)
from simbroker.redact import install_secret_filter
from simbroker.tradelog import TradeLog
from simbroker.types import AccountInfo, Fill, Order, OrderInfo, OrderStatus, OrderType

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

    # ------------------------------------------------------------------ protocol
    def now(self) -> datetime:
        """The current time, UTC (this machine's clock)."""
        return datetime.now(timezone.utc)

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market", *,
                     limit_price: float | None = None, stop_price: float | None = None,
                     tif: str = "day", client_order_id: str | None = None,
                     extended_hours: bool = False, order_class: str = "simple",
                     take_profit: Mapping[str, float] | None = None,
                     stop_loss: Mapping[str, float] | None = None,
                     trail_amount: float | None = None,
                     trail_percent: float | None = None) -> OrderInfo:
        """Send an order, as Alpaca's native order; a known ``client_order_id`` returns the
        order it already placed.

        Order kinds (see :meth:`simbroker.types.Order.create`) map one to one: ``order_class``
        bracket/oto/oco with ``take_profit``/``stop_loss``, ``trailing_stop`` with
        ``trail_amount`` (Alpaca's ``trail_price``) or ``trail_percent``, the tifs
        ``opg``/``cls``/``ioc``/``fok``, ``extended_hours``. A group is one request; the
        answer is its parent (an OCO's limit leg), whose ``legs`` are the children's ids.
        What Alpaca refuses is refused here first (:func:`alpaca_refusal`), nothing sent.

        Raises :class:`~simbroker.errors.OrderStatusUnknown` when the answer was lost and
        Alpaca could not be asked about the order in time (resubmit the same
        ``client_order_id`` to learn its fate: it is never placed twice), and
        :class:`~simbroker.errors.BrokerConnectionError` without sending anything when an
        earlier order of the same symbol is still unresolved.
        """
        order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                             stop_price=stop_price, tif=tif, client_order_id=client_order_id,
                             order_class=order_class, take_profit=take_profit,
                             stop_loss=stop_loss, trail_amount=trail_amount,
                             trail_percent=trail_percent)
        refusal = alpaca_refusal(order, bool(extended_hours))
        if refusal is not None:
            raise refusal
        cid = order.client_order_id or f"sb-{uuid.uuid4().hex}"
        known = self.orders.by_client_id(cid)
        if known is not None:
            return self._same_or_error(known, order)
        self._resolve_pending(order.symbol, except_cid=cid)
        body = order_request(order, cid, extended_hours=bool(extended_hours))
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
        except OrderRejected as exc:  # 403: Alpaca refused it; nothing was placed
            raise self._refused(order, cid, exc) from None
        except (BrokerConnectionError, BrokerAPIError) as exc:
            if isinstance(exc, BrokerAPIError) and not _is_server_error(exc):
                raise
            return self._after_lost_answer(order, cid, exc)
        return self._placed(self._remember(raw), order, cid)

    def _refused(self, order: Order, cid: str, exc: OrderRejected) -> OrderRejected:
        """The typed error for Alpaca's 403 refusal of ``order`` (with the buying power
        or position read after it, when Alpaca answers in time), its ``rejected``
        trade-log record written."""
        text = str(exc).lower()
        buying_power = position = opening = None
        try:
            if "buying power" in text:
                buying_power = float(self._get("/account", "get_account")["buying_power"])
                held = self.get_positions().get(order.symbol, 0.0)
                same = sum(o["remaining_qty"] for o in self.get_orders(open_only=True)
                           if o["symbol"] == order.symbol and o["side"] == order.side.value
                           and o["status"] != "held")
                opening = opening_qty(order.side.value, order.qty, held, same)
            elif "short" in text:
                position = self.get_positions().get(order.symbol, 0.0)
        except Exception:  # the refusal stands; only its figures are unknown
            log.info("Alpaca: no account figures for the refusal of %s", cid)
        price = order.limit_price if order.limit_price is not None else order.stop_price
        out = refusal(exc, symbol=order.symbol, side=order.side.value, qty=order.qty,
                      price=price, client_order_id=cid, buying_power=buying_power,
                      position=position, opening=opening)
        if self.trade_log is not None:
            self.trade_log.write("rejected", self.now(), order_id=None, client_order_id=cid,
                                 symbol=order.symbol, side=order.side.value, qty=order.qty,
                                 order_type=order.order_type.value, reason=str(out))
        return out

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel an open order; a final order is returned unchanged (idempotent).

        As at Alpaca: canceling an unfilled bracket/OTO parent cancels its held legs, and
        canceling one order of an OCO pair or one exit of a bracket cancels its sibling.
        """
        if not _is_uuid(order_id):
            raise UnknownOrder(order_id)
        for _ in range(3):  # a replace may move the order to a new Alpaca id meanwhile
            current = self.orders.current_id(order_id)
            # 422: not cancelable (final, or replaced meanwhile)
            with contextlib.suppress(InvalidOrder):
                self.rest.request("DELETE", f"/orders/{current}", operation="cancel_order",
                                  order_id=order_id)
            info = self._refresh(order_id)
            if self.orders.current_id(order_id) == current:
                return info
        return info

    def get_order(self, order_id: str) -> OrderInfo:
        """The order's current state, read from Alpaca (``UnknownOrder`` if it has none).

        ``order_id`` stays the order's id through replaces; its latest Alpaca order is
        read (following ``replaced_by``)."""
        if not _is_uuid(order_id):
            raise UnknownOrder(order_id)
        return self._refresh(order_id)

    def get_orders(self, *, open_only: bool = False) -> list[OrderInfo]:
        """The orders this adapter has seen, in submission order (each group's legs after
        its parent), with Alpaca's open orders read afresh.

        An order this adapter still holds as open but Alpaca no longer lists as open (its
        end missed on the stream) is read by id, so no order is reported open after
        Alpaca has closed it.
        """
        raw = self._get("/orders", "get_orders", params={
            "status": "open", "limit": 500, "direction": "asc", "nested": "true"}) or []
        listed: set[str] = set()
        for r in raw:
            v = venue_order(r)
            self._remember(v)
            listed.update(_ids(v))
        for info in self.orders.all():
            if OrderStatus(info["status"]).is_open and \
                    self.orders.current_id(info["order_id"]) not in listed:
                self._refresh(info["order_id"])
        return [i for i in self.orders.all()
                if not open_only or OrderStatus(i["status"]).is_open]

    def replace_order(self, order_id: str, *, qty: float | None = None,
                      limit_price: float | None = None, stop_price: float | None = None,
                      trail_amount: float | None = None, trail_percent: float | None = None,
                      tif: str | None = None) -> OrderInfo:
        """Change an open order with Alpaca's replace (``PATCH /v2/orders/{id}``).

        The returned order keeps ``order_id``; underneath, Alpaca made a new order that
        ``replaces`` the old one (which is now ``replaced``). ``qty`` is the order's new
        total: the replacement is sent for what is left of it after the fills so far
        (Alpaca takes whole shares here); once something filled, that remaining qty is
        sent even when ``qty`` is not given, because Alpaca would otherwise give the
        replacement the whole original qty (alpacahq/Alpaca-API issue 165) and trade too
        much. Only the fields given change.

        Raises :class:`~simbroker.errors.ReplaceRejected` (nothing changed) when the order
        is no longer open (a replace racing a fill fails, as Alpaca answers 422), or the
        change is one Alpaca refuses: a ``qty`` not above the filled quantity or not a
        whole number, a price the order type does not take, ``trail_amount`` on a
        percent trail (or the reverse), a tif the order may not have.
        :class:`~simbroker.errors.OrderStatusUnknown` when the answer was lost and Alpaca
        could not be asked in time; :meth:`get_order` then shows which version is live
        (there is always exactly one), and repeating the same replace is safe.
        """
        if not _is_uuid(order_id):
            raise UnknownOrder(order_id)
        known = self.orders.get(order_id)
        info = known if known is not None else self._refresh(order_id)
        oid = info["order_id"]
        self._check_replace(info, qty=qty, limit_price=limit_price, stop_price=stop_price,
                            trail_amount=trail_amount, trail_percent=trail_percent, tif=tif)
        for attempt in range(2):
            current = self.orders.current_id(oid)
            info = self.orders.get(oid) or info
            # Always send what is left once something filled: without a qty Alpaca gives
            # the replacement the old order's whole qty (alpacahq/Alpaca-API issue 165).
            total = qty if qty is not None else info["qty"]
            left = round(total - info["filled_qty"]) if qty is not None or \
                info["filled_qty"] > 0 else None
            if left is not None and left <= 0:
                raise ReplaceRejected(oid, f"qty {qty:g} leaves nothing to trade after "
                                      f"{info['filled_qty']:g} filled", field="qty",
                                      status=info["status"], symbol=info["symbol"])
            cid = f"sb-{uuid.uuid4().hex}"
            trail = trail_amount if trail_amount is not None else trail_percent
            body = replace_request(qty=left, limit_price=limit_price, stop_price=stop_price,
                                   trail=trail, tif=tif, client_order_id=cid)
            try:
                raw = self.rest.request("PATCH", f"/orders/{current}", body=body,
                                        operation="replace_order", order_id=oid,
                                        symbol=info["symbol"], client_order_id=cid)
            except InvalidOrder as exc:  # 422: not replaceable now, or a refused change
                fresh = self._refresh(oid)
                if self.orders.current_id(oid) != current and attempt == 0 and \
                        OrderStatus(fresh["status"]).is_open:
                    continue  # replaced meanwhile (an earlier, lost answer): apply to it
                raise ReplaceRejected(
                    oid, f"Alpaca answered 422 ({_alpaca_message(exc)}); the order is "
                    f"{fresh['status']}", status=fresh["status"], symbol=fresh["symbol"],
                    client_order_id=fresh["client_order_id"]) from None
            except OrderRejected as exc:  # 403
                raise ReplaceRejected(oid, f"Alpaca answered 403 ({_alpaca_message(exc)})",
                                      status=info["status"], symbol=info["symbol"]) from None
            except BrokerRateLimited:
                raise
            except (BrokerConnectionError, BrokerAPIError) as exc:
                if isinstance(exc, BrokerAPIError) and not _is_server_error(exc):
                    raise
                return self._after_lost_replace(oid, cid, exc)
            new = self._remember(raw)
            self._log_replaced(new, qty=qty, limit_price=limit_price, stop_price=stop_price,
                               trail_amount=trail_amount, trail_percent=trail_percent,
                               tif=tif, venue_id=str(raw["id"]))
            return new
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_replace(self, info: OrderInfo, *, qty: float | None,
                       limit_price: float | None, stop_price: float | None,
                       trail_amount: float | None, trail_percent: float | None,
                       tif: str | None) -> None:
        """Refuse locally the replaces Alpaca would refuse (nothing is sent)."""
        oid, kind, sym = info["order_id"], info["order_type"], info["symbol"]

        def bad(field: str, why: str) -> ReplaceRejected:
            return ReplaceRejected(oid, why, field=field, status=info["status"], symbol=sym,
                                   client_order_id=info["client_order_id"])

        if not OrderStatus(info["status"]).is_open:
            raise ReplaceRejected(oid, f"it is {info['status']}", status=info["status"],
                                  symbol=sym, client_order_id=info["client_order_id"])
        given = {"qty": qty, "limit_price": limit_price, "stop_price": stop_price,
                 "trail_amount": trail_amount, "trail_percent": trail_percent, "tif": tif}
        if all(v is None for v in given.values()):
            raise bad("qty", "nothing to change (give qty, a price, a trail or tif)")
        for name in ("qty", "limit_price", "stop_price", "trail_amount", "trail_percent"):
            v = given[name]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or not math.isfinite(v) or v <= 0):
                raise bad(name, f"{name} must be a finite number > 0, got {v!r}")
        if limit_price is not None and kind not in ("limit", "stop_limit"):
            raise bad("limit_price", f"a {kind} order takes no limit_price")
        if stop_price is not None and kind not in ("stop", "stop_limit"):
            raise bad("stop_price", f"a {kind} order takes no stop_price")
        if kind != OrderType.TRAILING_STOP.value:
            for name in ("trail_amount", "trail_percent"):
                if given[name] is not None:
                    raise bad(name, f"a {kind} order takes no {name}")
        else:
            if trail_amount is not None and trail_percent is not None:
                raise bad("trail_percent", "give one of trail_amount and trail_percent")
            if trail_amount is not None and info["trail_amount"] is None:
                raise bad("trail_amount", "it trails by percent: Alpaca changes only the "
                                          "trail it has (give trail_percent)")
            if trail_percent is not None and info["trail_percent"] is None:
                raise bad("trail_percent", "it trails by an amount: Alpaca changes only "
                                           "the trail it has (give trail_amount)")
            if trail_percent is not None and trail_percent >= 100:
                raise bad("trail_percent", f"trail_percent must be below 100, got "
                                           f"{trail_percent:g}")
        if qty is None and info["filled_qty"] > 0 and \
                info["qty"] - info["filled_qty"] != int(info["qty"] - info["filled_qty"]):
            raise bad("qty", f"Alpaca replaces whole shares only, and "
                             f"{info['qty'] - info['filled_qty']:g} are left to trade")
        if qty is not None:
            if qty <= info["filled_qty"]:
                raise bad("qty", f"qty {qty:g} is not above the {info['filled_qty']:g} "
                                 f"already filled")
            if qty - info["filled_qty"] != int(qty - info["filled_qty"]):
                raise bad("qty", f"Alpaca replaces whole shares only (qty {qty:g} leaves "
                                 f"{qty - info['filled_qty']:g} to trade)")
        if tif is not None:
            if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
                raise bad("tif", f"unknown tif {tif!r}")
            if (info["order_class"] != "simple" or kind == "trailing_stop") and \
                    tif not in ("day", "gtc"):
                raise bad("tif", f"a {info['order_class']} {kind} order must stay day or "
                                 f"gtc at Alpaca")
            if tif in ("opg", "cls") and kind not in ("market", "limit"):
                raise bad("tif", f"tif {tif!r} takes market and limit orders only")

    def _after_lost_replace(self, oid: str, cid: str, exc: Exception) -> OrderInfo:
        """The replace's answer never came (or was a 5xx): find which version is live."""
        if not request_sent(exc):
            raise exc  # nothing left this machine: nothing changed
        try:
            found = self._lookup(cid)  # the replacement, under the id this call gave it
            if found is None:
                self._refresh(oid)  # and the order as it is now
        except (BrokerConnectionError, BrokerAPIError):
            found, resolved = None, False
        else:
            resolved = True
        if found is not None:
            log.info("replace of %s confirmed by Alpaca after a lost answer", oid)
            return found
        if resolved and not isinstance(exc, BrokerConnectionError):
            raise exc  # Alpaca answered with an error and made no replacement
        self._wake.set()
        raise OrderStatusUnknown(
            f"replace of order {oid} was sent but the answer was lost ({exc}); get_order"
            f"({oid!r}) shows which version is live (exactly one is), and repeating the "
            f"same replace is safe", client_order_id=cid) from None

    def _refresh(self, order_id: str) -> OrderInfo:
        """Read the order's latest Alpaca order (following ``replaced_by``)."""
        aid = self.orders.current_id(order_id)
        for _ in range(50):
            raw = self._get(f"/orders/{aid}", "get_order", order_id=order_id)
            v = venue_order(raw)
            self._remember(v)
            if v.raw_status != "replaced" or not v.replaced_by:
                break
            aid = v.replaced_by
        info = self.orders.get(order_id)
        if info is None:
            raise UnknownOrder(order_id)
        return info

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

    def get_account(self) -> AccountInfo:
        """The account's figures as Alpaca reckons them now: one ``GET /v2/account``
        per call (see :mod:`simbroker.brokers.alpaca.account` for the field behind each
        key), so they are never older than the call. No answer within ``timeout``
        raises :class:`~simbroker.errors.BrokerTimeout`, a failed connection
        :class:`~simbroker.errors.BrokerConnectionError`; earlier figures are never
        returned instead."""
        return account_info(self._get("/account", "get_account"))

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

    def _remember(self, raw: Any, *, fetch: bool = True) -> OrderInfo:
        """Merge an order snapshot (JSON, SDK model or :class:`VenueOrder`); record a send
        it confirms and a newly final status. With ``fetch``, the Alpaca orders it links
        to but this adapter has not read (what it ``replaces``, its ``replaced_by``) are
        read now; without (the stream's thread), the reconcile thread reads them."""
        v = raw if isinstance(raw, VenueOrder) else venue_order(raw)
        merged, finals, resolved = self.orders.update(v)
        for p in resolved:  # a send whose answer was lost: now seen at Alpaca
            log.info("order %s confirmed by Alpaca", p.client_order_id)
            found = self.orders.by_client_id(p.client_order_id)
            if found is not None:
                self._placed(found, p.order, p.client_order_id)
        activated = self.orders.take_activated()
        if self.trade_log is not None:
            for info in activated:
                self.trade_log.write("activated", self.now(), order_id=info["order_id"],
                                     symbol=info["symbol"], parent_id=info["parent_id"],
                                     qty=info["qty"])
            for info in finals:
                event = FINAL_EVENT.get(OrderStatus(info["status"]))
                if event:
                    self.trade_log.write(event, self.now(), order_id=info["order_id"],
                                         symbol=info["symbol"], reason=info["reason"])
        if self.orders.missing():
            if fetch:
                self._read_missing()
            else:
                self._wake.set()
        return self.orders.get(v.order_id) or merged

    def _read_stale(self) -> None:
        """Read afresh the open orders a group's fill may have changed."""
        with self._stale_lock:
            stale, self._stale = self._stale, set()
        for oid in sorted(stale):
            info = self.orders.get(oid)
            if info is not None and OrderStatus(info["status"]).is_open:
                try:
                    self._refresh(oid)
                except (BrokerConnectionError, BrokerAPIError):
                    with self._stale_lock:
                        self._stale.add(oid)  # next round
                    raise

    def _read_missing(self) -> None:
        """Read the Alpaca orders that known ones link to but that were never read."""
        for _ in range(50):
            missing = self.orders.missing()
            if not missing:
                return
            for aid in missing:
                try:
                    raw = self._get(f"/orders/{aid}", "get_order", order_id=aid)
                except UnknownOrder:
                    self.orders.forget_link(aid)
                    continue
                self._remember(venue_order(raw), fetch=False)

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
            klass = order.order_class.value
            self.trade_log.write(
                "submitted", info["submitted_at"], order_id=info["order_id"],
                client_order_id=cid, symbol=order.symbol, side=order.side.value,
                qty=order.qty, order_type=order.order_type.value,
                limit_price=order.limit_price, stop_price=order.stop_price,
                tif=order.tif.value, order_class=klass,
                take_profit=None if order.take_profit is None else order.take_profit.to_dict(),
                stop_loss=None if order.stop_loss is None else order.stop_loss.to_dict(),
                trail_amount=order.trail_amount, trail_percent=order.trail_percent,
                extended_hours=info["extended_hours"], legs=info["legs"])
            for leg_id, leg in zip(info["legs"], order.leg_orders(), strict=False):
                leg_info = self.orders.get(leg_id)
                self.trade_log.write(
                    "submitted", info["submitted_at"], order_id=leg_id,
                    client_order_id=None if leg_info is None else leg_info["client_order_id"],
                    symbol=leg.symbol, side=leg.side.value, qty=leg.qty,
                    order_type=leg.order_type.value, limit_price=leg.limit_price,
                    stop_price=leg.stop_price, tif=leg.tif.value, order_class=klass,
                    parent_id=info["order_id"],
                    status=OrderStatus.NEW.value if klass == "oco" else OrderStatus.HELD.value)
        return info

    def _log_replaced(self, info: OrderInfo, *, venue_id: str, **changes: Any) -> None:
        if self.trade_log is not None:
            self.trade_log.write("replaced", self.now(), order_id=info["order_id"],
                                 symbol=info["symbol"], alpaca_order_id=venue_id,
                                 **{k: v for k, v in changes.items() if v is not None})

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
                "limit": 500, "nested": "true"}) or []
            fresh = [o for o in page if o["id"] not in seen]
            for o in fresh:
                seen.add(o["id"])
                self._remember(o, fetch=False)
            if len(page) < 500 or not fresh:
                break
            after = utc(page[-1]["submitted_at"]) - timedelta(microseconds=1)

    # ------------------------------------------------------------------ fills
    def _add_fill(self, fill: Fill, *, log_it: bool = True) -> bool:
        fid = fill["fill_id"]
        fill["order_id"] = self.orders.order_id_of(fill["order_id"])  # through replaces
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
        if not self.orders.knows(oid):
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
        info = self._remember(update.order, fetch=False)
        fill = fill_from_update(update)
        if fill is not None and (info["parent_id"] is not None or info["legs"]):
            # A group's fill ends or resizes its siblings, and Alpaca does not always
            # say so on the stream (alpaca-py issue 198): read them from REST.
            with self._stale_lock:
                self._stale.update(self.orders.group_of(info["order_id"]))
            self._wake.set()
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
                if self.orders.missing():
                    self._read_missing()
                self._read_stale()
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


def _ids(v: VenueOrder) -> set[str]:
    """The Alpaca ids of an order and its nested legs."""
    out = {v.order_id}
    for leg in v.legs:
        out |= _ids(leg)
    return out


def _alpaca_message(exc: Exception) -> str:
    """Alpaca's own words in an error from :mod:`~simbroker.brokers.alpaca.rest`."""
    text = str(exc)
    return text.split(": ", 2)[-1] if ": " in text else text


def _is_server_error(exc: BrokerAPIError) -> bool:
    return isinstance(exc.code, int) and exc.code >= 500
