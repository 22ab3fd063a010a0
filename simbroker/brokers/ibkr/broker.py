"""Interactive Brokers (TWS / IB Gateway) behind the :class:`~simbroker.Broker` protocol.

Built on ``ib_async`` (the maintained continuation of ``ib_insync``; ``ib_insync`` 0.9.86
is used when it is the one installed). The client runs on its own thread and event loop;
every protocol call is marshalled onto that loop with a deadline, so calls are safe from
any thread and the client's events are never starved by a strategy that blocks.

Safety under faults (see :mod:`~simbroker.brokers.ibkr.connection` and
:mod:`~simbroker.brokers.ibkr.orders`):

- Order ids are the adapter's own (the ``orderRef`` TWS carries: ``client_order_id`` or
  a generated ``sb-<hex>``), the same before and after reconnects and restarts. IB's
  ``orderId`` is chosen above every id this adapter used, so it never aliases.
- An order sent without an answer (a drop, a late ack) is ``pending_confirm`` and
  :class:`~simbroker.errors.OrderStatusUnknown` is raised. It is resolved from TWS's
  open orders, completed orders and executions at the next sync, before any new order
  is sent; one that never reached TWS is rejected with a reason saying so, and
  resubmitting its ``client_order_id`` places it once. No new order goes out for a
  symbol while an order of that symbol is pending.
- Protocol calls answer only when the connection is ``ready`` (waiting up to
  ``ready_wait`` s), else raise :class:`~simbroker.errors.BrokerConnectionError`.
- Positions and cash are TWS's figures at the last sync plus the fills booked since
  (each execution once, by id), so they always agree with :meth:`IBKRBroker.get_fills`.
- Only :mod:`simbroker.errors` types leave the adapter. Error 200/201/103/110 reject an
  order with IB's text (a 201 for margin, "... your Equity with Loan Value [x] must
  exceed the new total Initial Margin of [y]", is
  :class:`~simbroker.errors.InsufficientBuyingPower` with those amounts); 202 cancels
  it; 10349 and other informational codes change nothing; 326 (client id in use) is a
  clear connection error; notices 1100/1101/1102 move the connection state; farm
  notices 2103-2110 are logged.
- :meth:`IBKRBroker.get_account` asks TWS for the account's values on each call.
- Port 7496 (TWS live) or 4001 (Gateway live), ``trading_mode: live`` or a live account
  (not ``DU…``) is refused unless the caller opted into live trading.

Order kinds are IB's native orders (the README's "Interactive Brokers" table): a bracket
is a parent and its take-profit and stop-loss children (``parentId``; ``transmit`` False,
False, True, so TWS works none of them before the stop-loss arrives), an OTO a parent and
one child, an OCO an ``ocaGroup`` of ``ocaType`` 1, a trailing stop ``TRAIL``;
``replace_order`` is ``placeOrder`` again with the same ``orderId``. A group's legs are
``<id>.tp`` / ``<id>.sl``. A group never works partly: a drop before its transmitting leg
was read leaves TWS working nothing (the group is resolved as not received and the legs
TWS holds untransmitted are canceled there); a leg TWS refuses, or an OCO leg a drop left
alone, takes the rest of the group with it.

The broker's parts are one module each, mixins :class:`IBKRBroker` composes: its state and
the calls onto the IO loop (:mod:`~simbroker.brokers.ibkr._base`), queries and the account
(:mod:`~simbroker.brokers.ibkr._queries`), TWS's events and the reconnect sync
(:mod:`~simbroker.brokers.ibkr._sync`), submission (:mod:`~simbroker.brokers.ibkr._submit`),
cancel and replace (:mod:`~simbroker.brokers.ibkr._modify`). This module builds, connects
and closes the broker.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from simbroker.brokers.ibkr._base import log
from simbroker.brokers.ibkr._modify import Modifying
from simbroker.brokers.ibkr.connection import Connection
from simbroker.brokers.ibkr.orders import OrderRegistry
from simbroker.brokers.ibkr.translate import LIVE_PORTS, ib_lib
from simbroker.config import IBKRConfig
from simbroker.errors import ConfigError, InvalidOrder
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.types import Fill, Order

if TYPE_CHECKING:
    from simbroker.brokers.ibkr.feed import IBKRBarFeed

__all__ = ["IBKRBroker"]


def _leg_records(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """What a group's ``submitted`` record says of each of its legs (empty if none)."""
    ids = rec.get("legs")
    if not isinstance(ids, list) or not ids:
        return []
    try:
        order = Order.create(rec["symbol"], rec["side"], rec["qty"], rec["order_type"],
                             limit_price=rec.get("limit_price"),
                             stop_price=rec.get("stop_price"), tif=rec.get("tif", "day"),
                             order_class=rec.get("order_class", "simple"),
                             take_profit=rec.get("take_profit"),
                             stop_loss=rec.get("stop_loss"))
    except (InvalidOrder, KeyError, TypeError):
        return []
    head, cls = str(rec["order_id"]), order.order_class.value
    return [{"ts": rec.get("ts"), "order_id": str(oid), "symbol": leg.symbol,
             "side": leg.side.value, "qty": leg.qty, "order_type": leg.order_type.value,
             "limit_price": leg.limit_price, "stop_price": leg.stop_price,
             "tif": leg.tif.value, "order_class": cls, "group_id": head,
             "parent_id": None if cls == "oco" else head,
             "extended_hours": rec.get("extended_hours", False)}
            for oid, leg in zip(ids, order.leg_orders(), strict=False)]


class IBKRBroker(Modifying):
    """Interactive Brokers as a :class:`~simbroker.Broker`.

    Parameters
    ----------
    host, port, client_id
        Where TWS / IB Gateway listens (7497 TWS paper, 7496 TWS live, 4002/4001
        Gateway paper/live) and this connection's client id.
    account
        The account to trade; empty for the only one.
    allow_live
        The explicit opt-in to live trading.
    trade_log
        Where to record the session (start snapshot, submissions, fills, cancels). Its
        earlier submissions also restore an order's type and prices after a restart
        when IB reports that order only by its executions.
    timeout
        Seconds to connect (each attempt) and for each request.
    currency, exchange
        Contract defaults (``USD``, ``SMART``).
    reconnect_backoff
        ``(min, max)`` seconds between reconnect attempts (exponential, equal jitter).
    max_reconnect_attempts
        Connection attempts per outage before the loop gives up (the next call retries).
    ready_wait
        Seconds a call waits for the connection to be ``ready`` before it raises
        :class:`~simbroker.errors.BrokerConnectionError` (default: ``timeout``).
    account_type
        ``"cash"`` or ``"margin"`` for :meth:`get_account` (TWS's API does not say);
        ``None``: ``"margin"`` when TWS's ``BuyingPower`` exceeds ``AvailableFunds``.
    pattern_day_trader
        Whether the account is flagged a pattern day trader, for :meth:`get_account`
        (TWS's API does not say; :mod:`simbroker.brokers.ibkr.account` shows why the
        ``DayTradesRemaining`` it sends cannot tell); ``None``: ``False``.
    """

    bar_poll: float = 5.0
    """Default seconds between polls of :meth:`bar_feed` (config key ``bar_poll``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 7497, client_id: int = 1, *,
                 account: str = "", allow_live: bool = False,
                 trade_log: TradeLog | None = None, timeout: float = 10.0,
                 currency: str = "USD", exchange: str = "SMART", trading_mode: str = "paper",
                 reconnect_backoff: tuple[float, float] = (1.0, 30.0),
                 max_reconnect_attempts: int = 10, ready_wait: float | None = None,
                 account_type: str | None = None, pattern_day_trader: bool | None = None):
        if account_type not in (None, "cash", "margin"):
            raise ConfigError(f"account_type must be 'cash', 'margin' or None, got "
                              f"{account_type!r}", key="account_type")
        self.account_type = account_type
        self.pattern_day_trader = pattern_day_trader
        live = port in LIVE_PORTS or trading_mode == "live"
        if live and not allow_live:
            raise ConfigError(f"IBKR port {port} / trading_mode {trading_mode!r} trades real "
                              f"money; only an explicit live opt-in (simbroker live "
                              f"--confirm-live) may use it", key="port")
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.account = account
        self.allow_live = allow_live
        self.trade_log = trade_log
        self.timeout = float(timeout)
        self.ready_wait = self.timeout if ready_wait is None else float(ready_wait)
        self.currency, self.exchange = currency, exchange
        self._closing = False
        self._cond = threading.Condition(threading.RLock())
        self._send_lock = threading.Lock()
        self._account_lock = threading.Lock()
        self.orders = OrderRegistry()
        self._fills: dict[str, Fill] = {}
        self._logged_final: set[str] = set()
        # The books: TWS's positions and cash at the last sync, plus the fills since.
        self._positions: dict[str, float] = {}
        self._cash: float | None = None
        self._in_base: set[str] = set()
        self._last_stamp = datetime.min.replace(tzinfo=timezone.utc)
        self._sent_seq = 0
        if trade_log is not None:
            self._read_submissions(trade_log)
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        def io() -> None:
            # ib_insync looks the loop up from the thread that builds the IB object.
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(started.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=io, name="ibkr-io", daemon=True)
        self._thread.start()
        started.wait(5)
        self.ib: Any = self._run_sync(self._make_ib)
        self.conn = Connection(self.ib, self._loop, host=host, port=self.port,
                               client_id=self.client_id, account=account,
                               timeout=self.timeout, resync=self._resync,
                               backoff=reconnect_backoff,
                               max_attempts=max_reconnect_attempts,
                               on_change=self._wake)
        try:
            self._run(self.conn.open(), timeout=self.timeout * 3 + 5, what="connect")
            if not self.account:
                self.account = self._run_sync(lambda: (self.ib.managedAccounts() or [""])[0])
            if not allow_live and self.account and not self.account.startswith("D"):
                raise ConfigError(f"IBKR account {self.account[:2]}… is a live account; only "
                                  f"an explicit live opt-in may trade it", key="account")
        except BaseException:
            self.close()
            raise
        if self.trade_log is not None:
            self.trade_log.write("start", self.now(), cash=self.get_cash(),
                                 positions=self.get_positions(), broker="ibkr",
                                 account=self.account)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: IBKRConfig, *, allow_live: bool = False,
                    trade_log: TradeLog | None = None, **kwargs: Any) -> IBKRBroker:
        """Build from ``CONFIG/brokers/ibkr.yaml`` (see :mod:`simbroker.config`)."""
        broker = cls(cfg.host, cfg.port, cfg.client_id, account=cfg.account or "",
                     allow_live=allow_live, trade_log=trade_log, timeout=cfg.timeout,
                     currency=cfg.currency, exchange=cfg.exchange,
                     trading_mode=cfg.trading_mode, **kwargs)
        broker.bar_poll = float(cfg.bar_poll)
        return broker

    def _make_ib(self) -> Any:
        ib = ib_lib.IB()
        ib.errorEvent += self._on_error
        ib.openOrderEvent += self._on_open_order
        ib.orderStatusEvent += self._on_trade
        ib.commissionReportEvent += self._on_commission
        return ib

    def _read_submissions(self, trade_log: TradeLog) -> None:
        try:
            records = read_trade_log(trade_log.path)
        except Exception:  # an unreadable log only costs the enrichment
            log.warning("could not read %s for earlier submissions", trade_log.path)
            return
        for rec in records:
            if rec.get("event") == "submitted" and rec.get("order_id"):
                self.orders.known[str(rec["order_id"])] = rec
                for leg in _leg_records(rec):
                    self.orders.known[leg["order_id"]] = leg

    def __repr__(self) -> str:
        state = self.conn.state.value if hasattr(self, "conn") else "starting"
        return f"IBKRBroker({self.host}:{self.port}, client {self.client_id}, {state})"

    def __enter__(self) -> IBKRBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect and stop the IO thread (idempotent)."""
        if self._closing:
            return
        self._closing = True
        conn = getattr(self, "conn", None)
        ib = getattr(self, "ib", None)
        if self._loop.is_running():
            def down() -> None:
                if conn is not None:
                    conn.close()
                if ib is not None:
                    ib.disconnect()
            try:
                self._run_sync(down)
            except Exception:
                log.debug("disconnect failed", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    # ------------------------------------------------------------------ bars
    def bar_feed(self, symbols: Sequence[str], interval: timedelta, *, warmup: int = 0,
                 poll: float | None = None) -> IBKRBarFeed:
        """Completed bars of ``symbols`` for the real-time runner."""
        from simbroker.brokers.ibkr.feed import IBKRBarFeed

        return IBKRBarFeed(self, symbols, interval, warmup=warmup,
                           poll=self.bar_poll if poll is None else poll)

    def _bars(self, symbol: str, interval: timedelta, n: int) -> list[Any]:
        secs = int(interval.total_seconds())
        size = ("1 day" if secs >= 86_400 else f"{secs // 3600} hour" if secs >= 3600
                else f"{secs // 60} min" + ("s" if secs // 60 > 1 else ""))
        span = max(1, n) * interval
        duration = (f"{max(1, math.ceil(span.days * 1.5) + 7)} D" if secs >= 86_400
                    else f"{max(60, int(span.total_seconds() * 3))} S")
        self.conn.require("historical bars", self.ready_wait)
        contract = ib_lib.Stock(symbol, self.exchange, self.currency)
        rows = self._run(self.ib.reqHistoricalDataAsync(
            contract, endDateTime="", durationStr=duration, barSizeSetting=size,
            whatToShow="TRADES", useRTH=True, formatDate=2), timeout=self.timeout + 5,
            what="historical bars")
        return list(rows or [])
