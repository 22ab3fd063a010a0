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
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from simbroker.brokers.ibkr.account import (
    account_info,
    buying_power_refusal,
    pattern_day_trader_refusal,
)
from simbroker.brokers.ibkr.connection import Connection, State
from simbroker.brokers.ibkr.orders import LEG_SUFFIXES, OrderEntry, OrderRegistry
from simbroker.brokers.ibkr.translate import (
    CANCELED_CODE,
    INFORMATIONAL,
    LIVE_PORTS,
    NOTICES,
    REJECTING,
    REPLACE_REFUSALS,
    UNSET,
    fill_of,
    ib_lib,
    ib_order_of,
    ib_tif,
)
from simbroker.config import IBKRConfig
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    BrokerError,
    BrokerTimeout,
    ConfigError,
    InvalidOrder,
    OrderRejected,
    OrderStatusUnknown,
    ReplaceRejected,
    UnknownOrder,
)
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.types import AccountInfo, Fill, Order, OrderInfo, OrderStatus

if TYPE_CHECKING:
    from simbroker.brokers.ibkr.feed import IBKRBarFeed

__all__ = ["IBKRBroker"]

log = logging.getLogger("simbroker.brokers.ibkr")

_FINAL_EVENTS = {OrderStatus.CANCELED: "canceled", OrderStatus.REJECTED: "rejected",
                 OrderStatus.EXPIRED: "expired"}


def _submitted(order: Order, head: OrderEntry) -> dict[str, Any]:
    """The ``submitted`` record of ``order`` (a group's one record names its ``legs``,
    as the trade log's replay reads it)."""
    fields: dict[str, Any] = {
        "order_id": head.order_id, "client_order_id": head.client_order_id,
        "symbol": head.symbol, "side": head.side, "qty": head.qty,
        "order_type": head.order_type, "limit_price": head.limit_price,
        "stop_price": head.stop_price, "tif": head.tif}
    if head.order_class != "simple":
        fields["order_class"] = head.order_class
        fields["legs"] = list(head.legs)
    if order.take_profit is not None:
        fields["take_profit"] = order.take_profit.to_dict()
    if order.stop_loss is not None:
        fields["stop_loss"] = order.stop_loss.to_dict()
    for key in ("trail_amount", "trail_percent"):
        if getattr(head, key) is not None:
            fields[key] = getattr(head, key)
    if head.extended_hours:
        fields["extended_hours"] = True
    return fields


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


def _shows(order: Any, change: dict[str, Any]) -> bool:
    """Whether an openOrder's ``order`` carries the modification ``change`` (an openOrder
    TWS sent before it read the modification, e.g. with a fill, does not)."""
    want = {"totalQuantity": change.get("qty"), "lmtPrice": change.get("limit_price"),
            "auxPrice": change.get("stop_price", change.get("trail_amount"))}
    return all(v is None or abs(float(getattr(order, k)) - float(v)) < 1e-9
               for k, v in want.items())


class IBKRBroker:
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

    # ------------------------------------------------------------------ the IO loop
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

    # ------------------------------------------------------------------ sync
    async def _resync(self, reason: str) -> None:
        """Reconcile with what TWS reported (syncing state, IO loop)."""
        ib = self.ib
        if reason == "connect":
            # The client's caches were reset before connecting: all of it is TWS's word,
            # and nothing was sent on this connection yet.
            with self._cond:
                self._reconcile_orders(ib.trades(), ib.fills(), resolve_upto=self._sent_seq)
                self._rebase(ib.fills())
            return
        # 1101 / 1102: the socket stayed up, TWS's view may not have.
        t = self.timeout
        await asyncio.wait_for(ib.reqPositionsAsync(), t)
        if self.account:
            await asyncio.wait_for(ib.reqAccountUpdatesAsync(self.account), t)
        trades = list(await asyncio.wait_for(ib.reqOpenOrdersAsync(), t))
        trades += list(await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), t))
        await asyncio.wait_for(ib.reqExecutionsAsync(), t)
        with self._cond:
            self._reconcile_orders(trades, ib.fills(), resolve_upto=None)
            self._rebase(ib.fills())

    async def _query_orders(self) -> None:
        """Ask TWS for its open and completed orders and executions now (ready state),
        to resolve orders still pending on a live connection (IO loop).

        TWS answers a client's requests in the order it reads them, so an order written
        before these requests and in none of the answers was not read by TWS.
        """
        upto, t, ib = self._sent_seq, self.timeout, self.ib
        trades = list(await asyncio.wait_for(ib.reqOpenOrdersAsync(), t))
        trades += list(await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), t))
        fills = list(await asyncio.wait_for(ib.reqExecutionsAsync(), t))
        with self._cond:
            self._reconcile_orders(trades, fills, resolve_upto=upto)

    def _reconcile_orders(self, trades: Iterable[Any], fills: Iterable[Any], *,
                          resolve_upto: int | None) -> None:
        """Absorb TWS's orders and executions (under the lock). With ``resolve_upto``,
        pending orders written up to that send and absent from both are not received."""
        at_tws: set[str] = set()
        for trade in trades:
            entry = self.orders.absorb_trade(trade, acknowledged=True)
            if entry is not None:
                at_tws.add(entry.order_id)
                if resolve_upto is not None and entry.status is OrderStatus.PENDING_CONFIRM:
                    entry.status = OrderStatus.NEW  # TWS lists it: it has it
                if entry.group_id is None:  # a group's records wait for its reasons
                    self._log_final(entry)
        fills = list(fills)
        orphans: dict[str, list[Any]] = {}
        for fill in fills:
            ex = fill.execution
            if self.orders.find(str(ex.orderRef or ""), int(ex.permId or 0), 0) is None:
                orphans.setdefault(str(ex.orderRef or f"perm-{ex.permId}"), []).append(fill)
        for order_id, group in orphans.items():
            self.orders.adopt_from_fills(order_id, group)
        for fill in fills:
            self._book(fill)
        stale: list[int] = []
        if resolve_upto is not None:
            for entry in self.orders.pending():
                if entry.order_id not in at_tws and not entry.fill_ids \
                        and 0 < entry.sent_seq <= resolve_upto:
                    if not entry.transmit and entry.ib_order_id:
                        # TWS may hold it untransmitted in its window: cancel it there.
                        stale.append(entry.ib_order_id)
                    self.orders.mark_not_received(entry)
                    log.warning("IBKR order %s resolved: %s", entry.order_id, entry.reason)
                    self._log_final(entry)
        self.orders.relink()
        for entry in self.orders.all():
            if entry.group_id == entry.order_id:
                stale += self._check_group(entry)
                self._relate(entry)
        if stale:
            self._loop.call_soon(self._cancel_ids, stale)
        self._cond.notify_all()

    def _cancel_ids(self, ib_ids: list[int]) -> None:
        """cancelOrder for these IB order ids (IO loop)."""
        for oid in ib_ids:
            try:
                self.ib.client.cancelOrder(oid)
            except ConnectionError:
                log.warning("IBKR: could not cancel order id %d (not connected); the next "
                            "sync checks its group again", oid)
                return

    def _relate(self, entry: OrderEntry) -> None:
        """The group rules after news of ``entry`` (under the lock): held children,
        activations (logged), cancel reasons (before the final record is written)."""
        for child in self.orders.relate(entry):
            if self.trade_log is not None:
                self.trade_log.write("activated", self.now(), order_id=child.order_id,
                                     symbol=child.symbol, qty=child.qty)
        for member in self.orders.members(entry):
            self._log_final(member)

    def _rebase(self, fills: Iterable[Any]) -> None:
        """The books from TWS's figures, which include every execution it just listed
        (under the lock)."""
        ib = self.ib
        self._in_base = {str(f.execution.execId) for f in fills}
        rows = ib.positions(self.account) if self.account else ib.positions()
        self._positions = {str(p.contract.symbol): float(p.position) for p in rows
                           if p.position}
        cash = None
        for v in ib.accountValues(self.account) if self.account else ib.accountValues():
            if v.tag == "TotalCashValue" and v.currency in (self.currency, "BASE"):
                cash = float(v.value)
        self._cash = cash
        self._cond.notify_all()

    # ------------------------------------------------------------------ events (IO loop)
    def _on_error(self, req_id: int, code: int, text: str, *rest: Any) -> None:
        if req_id == -1 or req_id is None:
            if code in NOTICES:
                self.conn.notice(code)
            elif code == 326:
                self.conn.client_id_in_use()
            elif 2103 <= code <= 2110:
                log.info("IBKR notice %d: %s", code, text)
            return
        if code == 326:
            self.conn.client_id_in_use()
            return
        with self._cond:
            entry = self.orders.by_ib_id(int(req_id))
            if entry is not None and entry.replacing is not None \
                    and entry.replace_answer is None and code != CANCELED_CODE \
                    and code not in INFORMATIONAL:
                entry.replace_answer = (code, text)  # the modification's answer
                trade = next((t for t in self.ib.trades()
                              if t.order.orderId == entry.ib_order_id), None)
                if trade is not None and trade.log and \
                        getattr(trade.log[-1], "errorCode", 0) == code:
                    entry.replace_log.add(len(trade.log) - 1)
            elif entry is not None:
                if code in REJECTING and entry.status in (OrderStatus.PENDING_CONFIRM,
                                                          OrderStatus.NEW, OrderStatus.HELD):
                    if entry.filled_qty == 0:
                        self.orders.reject(entry, code, text)
                        self._log_final(entry)
                elif code in INFORMATIONAL:
                    log.info("IBKR order %s: notice %d: %s", entry.order_id, code, text)
                elif code != CANCELED_CODE:
                    log.warning("IBKR order %s: error %d: %s", entry.order_id, code, text)
            self._cond.notify_all()

    def _on_trade(self, trade: Any) -> None:
        with self._cond:
            entry = self.orders.absorb_trade(trade, acknowledged=True)
            if entry is not None:
                self._relate(entry)
            self._cond.notify_all()

    def _on_open_order(self, trade: Any) -> None:
        with self._cond:
            entry = self.orders.by_ib_id(int(trade.order.orderId or 0))
            if entry is not None and entry.replacing is not None \
                    and entry.replace_answer is None and _shows(trade.order, entry.replacing):
                entry.replace_answer = (0, "")  # TWS lists the order as modified
        self._on_trade(trade)

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        with self._cond:
            if trade is not None:  # its order first: executions do not carry the type
                self.orders.absorb_trade(trade, acknowledged=True)
            entry = self._book(fill)
            if entry is not None:
                self._relate(entry)
            self._cond.notify_all()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _book(self, fill: Any) -> OrderEntry | None:
        """Book an execution once (with its commission), under the state lock; the
        order it filled, if it was new."""
        ex, report = fill.execution, fill.commissionReport
        exec_id = str(ex.execId)
        if exec_id in self._fills or report is None or not report.execId:
            return None
        ref, perm = str(ex.orderRef or ""), int(ex.permId or 0)
        entry = self.orders.find(ref, perm, 0) or self.orders.by_ib_id(int(ex.orderId or 0))
        if entry is None:
            entry = self.orders.adopt_from_fills(ref or f"perm-{perm}", [fill])
        f = fill_of(fill, entry.order_id)
        exec_time = f["timestamp"]
        # Booked at the local receive time, strictly increasing: TWS's whole-second stamp
        # would put a fill before a cursor taken a moment before its order.
        stamp = max(datetime.now(timezone.utc), self._last_stamp + timedelta(microseconds=1))
        self._last_stamp = f["timestamp"] = stamp
        if self.trade_log is not None:  # write-ahead: the record before the state
            self.trade_log.write("filled", stamp, **f, exec_time=exec_time)
        self._fills[exec_id] = f
        entry.fill_ids.add(exec_id)
        mine = [self._fills[i] for i in entry.fill_ids]
        qty = sum(x["qty"] for x in mine)
        if qty > entry.filled_qty:
            entry.filled_qty = qty
            entry.avg_fill_price = sum(x["notional"] for x in mine) / qty
        if entry.status in (OrderStatus.PENDING_CONFIRM, OrderStatus.NEW, OrderStatus.HELD):
            entry.status = OrderStatus.PARTIALLY_FILLED
        if entry.filled_qty >= entry.qty * (1 - 1e-12) and entry.status.is_open:
            entry.status = OrderStatus.FILLED
        if exec_id not in self._in_base:
            sign = 1.0 if f["side"] == "buy" else -1.0
            pos = self._positions.get(f["symbol"], 0.0) + sign * f["qty"]
            if abs(pos) < 1e-9:
                self._positions.pop(f["symbol"], None)
            else:
                self._positions[f["symbol"]] = pos
            if self._cash is not None:
                self._cash -= sign * f["notional"] + f["fee"]
        return entry

    def _log_final(self, entry: OrderEntry) -> None:
        event = _FINAL_EVENTS.get(entry.status)
        if event is None or self.trade_log is None or entry.order_id in self._logged_final:
            return
        self._logged_final.add(entry.order_id)
        self.trade_log.write(event, self.now(), order_id=entry.order_id,
                             symbol=entry.symbol, reason=entry.reason)

    def flush(self) -> None:
        """Return once every message TWS sent before now has been processed (one round
        trip: TWS answers a request after the messages it sent before it, and the client
        reads them in order). Raises :class:`~simbroker.errors.BrokerError` types."""
        self.conn.require("flush", self.ready_wait)
        ib = self.ib

        async def ask() -> None:
            await ib.reqCurrentTimeAsync()

        self._run(ask(), what="flush")

    def wait_for_fills(self, exec_ids: Iterable[str], timeout: float = 10.0) -> bool:
        """Block until every execution id is booked (with its commission); True if so."""
        wanted = set(exec_ids)
        with self._cond:
            return self._cond.wait_for(lambda: wanted <= set(self._fills), timeout)

    # ------------------------------------------------------------------ protocol
    def now(self) -> datetime:
        """The current time, UTC (the local clock; TWS's is :meth:`IBKRBarFeed.server_now`)."""
        return datetime.now(timezone.utc)

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market", *,
                     limit_price: float | None = None, stop_price: float | None = None,
                     tif: str = "day", client_order_id: str | None = None,
                     extended_hours: bool = False, order_class: str = "simple",
                     take_profit: Mapping[str, float] | None = None,
                     stop_loss: Mapping[str, float] | None = None,
                     trail_amount: float | None = None,
                     trail_percent: float | None = None) -> OrderInfo:
        """Place an order (or a bracket, OTO or OCO group as IB's native orders), or
        return the one already placed under ``client_order_id``.

        A group is returned as its first order (the bracket/OTO parent, the OCO's limit
        leg), whose ``legs`` are ``<id>.tp`` / ``<id>.sl``. See the README's order mapping
        table for what each kind is at IB.

        Raises
        ------
        OrderRejected
            TWS refused it (error 200, 201, 103, 110), with IB's text; for a group, any
            leg refused (the others are canceled, so no leg works alone).
        OrderStatusUnknown
            It was sent and no answer came (a drop, a late ack), or an earlier order of
            the same symbol is still unresolved. Resubmit the same ``client_order_id``:
            it is answered from IB's records once they are in, and never placed twice.
        BrokerConnectionError
            Not ready within ``ready_wait``, or the connection dropped before TWS read
            the order (nothing was placed; resubmitting places it).
        """
        order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                             stop_price=stop_price, tif=tif, client_order_id=client_order_id,
                             order_class=order_class, take_profit=take_profit,
                             stop_loss=stop_loss, trail_amount=trail_amount,
                             trail_percent=trail_percent)
        if not isinstance(extended_hours, bool):
            raise InvalidOrder(f"extended_hours must be True or False, got "
                               f"{extended_hours!r}", field="extended_hours",
                               value=extended_hours, symbol=order.symbol)
        cid = order.client_order_id
        if cid is not None and cid.endswith(LEG_SUFFIXES):
            raise InvalidOrder(f"client_order_id {cid!r} ends in {cid[-3:]!r}, which names "
                               f"the legs of a group at IBKR; choose another",
                               field="client_order_id", value=cid, symbol=order.symbol)
        with self._send_lock:
            self.conn.require("submit_order", self.ready_wait)
            if cid is not None:
                with self._cond:
                    known = self.orders.get(cid)
                    group = [] if known is None else self.orders.members(known)
                if known is not None and not all(e.not_received for e in group):
                    self._settle(known)
                    return self._outcome(known, "still unresolved", final_ok=True)
            with self._cond:
                others = self.orders.pending(order.symbol)
            for other in others:
                if not self._settle(other):
                    raise OrderStatusUnknown(
                        f"no new {order.symbol} order while order {other.order_id} is "
                        f"pending_confirm (it is resolved from IB's records first)",
                        order_id=other.order_id, client_order_id=other.client_order_id,
                        symbol=other.symbol)
            order_id = cid or f"sb-{uuid.uuid4().hex[:20]}"
            entries = self._entries(order, order_id, extended_hours)
            if self.trade_log is not None:  # write-ahead: one record per group
                self.trade_log.write("submitted", entries[0].submitted_at,
                                     **_submitted(order, entries[0]))
            with self._cond:
                for e in entries:
                    self._logged_final.discard(e.order_id)
                    self.orders.add(e)
                generation = self.conn.generation
            written = self._run_sync(lambda: self._place(entries, generation))
            if written == 0:
                with self._cond:
                    for e in entries:
                        self.orders.mark_not_received(e)
                        self._log_final(e)
                raise BrokerConnectionError(
                    f"submit_order {order_id}: the IBKR connection dropped before the order "
                    f"was sent; nothing was placed (resubmit to place it)")
            if written < len(entries):
                with self._cond:
                    for e in entries[written:]:
                        self.orders.mark_not_received(e)
                        self._log_final(e)
            return self._acked(entries, generation)

    def _entries(self, order: Order, order_id: str, extended_hours: bool) -> list[OrderEntry]:
        """The registry entries of ``order``: itself, then its legs (``.tp``, ``.sl``)."""
        now = self.now()
        cls = order.order_class.value
        group = order_id if cls != "simple" else None
        head = OrderEntry(
            order_id=order_id, client_order_id=order.client_order_id or order_id,
            symbol=order.symbol, side=order.side.value, qty=float(order.qty),
            order_type=order.order_type.value, tif=order.tif.value,
            limit_price=order.limit_price, stop_price=order.stop_price, submitted_at=now,
            order_class=cls, group_id=group, trail_amount=order.trail_amount,
            trail_percent=order.trail_percent, extended_hours=extended_hours)
        entries = [head]
        for leg in order.leg_orders():
            suffix = ".tp" if leg.order_type.value == "limit" else ".sl"
            lid = order_id + suffix
            entries.append(OrderEntry(
                order_id=lid, client_order_id=lid, symbol=leg.symbol, side=leg.side.value,
                qty=float(leg.qty), order_type=leg.order_type.value, tif=leg.tif.value,
                limit_price=leg.limit_price, stop_price=leg.stop_price, submitted_at=now,
                order_class=cls, group_id=group,
                parent_id=None if cls == "oco" else order_id,
                extended_hours=extended_hours))
        head.legs = [e.order_id for e in entries[1:]]
        if cls in ("bracket", "oto"):  # TWS works none of them before the last arrives
            for e in entries[:-1]:
                e.transmit = False
        return entries

    def _ib_order(self, entry: OrderEntry, oid: int, parent_oid: int) -> Any:
        """``entry`` as an ib ``Order`` under IB order id ``oid``."""
        return ib_order_of(entry, oid, parent_oid, self.account)

    def _place(self, entries: list[OrderEntry], generation: int) -> int:
        """placeOrder each of ``entries`` (one order, or a group's orders back to back)
        under IB order ids above every one used (IO loop), only on the connection the
        caller saw ready. Returns how many were written to the socket."""
        ib = self.ib
        if not ib.isConnected() or self.conn.generation != generation or \
                self.conn.state is not State.READY:
            return 0
        try:
            base = max(int(ib.client.getReqId()), self.orders.max_ib_id + 1)
        except ConnectionError:
            return 0
        ib.client.updateReqId(base + len(entries))
        contract = ib_lib.Stock(entries[0].symbol, self.exchange, self.currency)
        for i, entry in enumerate(entries):
            parent = base if entry.parent_id is not None else 0
            ib_order = self._ib_order(entry, base + i, parent)
            with self._cond:
                self.orders.bind(entry, ib_order_id=base + i)
            try:
                ib.placeOrder(contract, ib_order)
            except ConnectionError:
                return i
            with self._cond:
                self._sent_seq += 1
                entry.sent_seq, entry.sent_gen = self._sent_seq, generation
        return len(entries)

    def _acked(self, entries: list[OrderEntry], generation: int) -> OrderInfo:
        """Wait for TWS's answer to just-sent orders: every one answered, or (for a
        bracket/OTO, whose earlier legs TWS holds untransmitted) the last one refused."""
        last = entries[-1]

        def answered() -> bool:
            if self.conn.generation != generation:
                return True
            if last.status is OrderStatus.REJECTED:
                return True
            return all(e.status is not OrderStatus.PENDING_CONFIRM or e.not_received
                       for e in entries)

        with self._cond:
            self._cond.wait_for(answered, self.timeout)
            cancels = self._check_group(entries[0]) if len(entries) > 1 else []
        self._send_cancels(cancels)
        return self._outcome(entries[0], "no answer from TWS"
                             if self.conn.generation == generation
                             else "the IBKR connection dropped before TWS answered")

    def _check_group(self, entry: OrderEntry) -> list[int]:
        """A group with a leg TWS refused or never received has no working leg: the
        others are ended here (under the lock). Returns the IB order ids to cancel at
        TWS: untransmitted legs (so no one transmits them from TWS's window by hand) and
        live ones (an OCO leg whose sibling never arrived)."""
        group = self.orders.members(entry)
        bad = next((e for e in group if e.status is OrderStatus.REJECTED), None)
        if bad is None or any(e.filled_qty > 0 for e in group):
            return []
        why = "never reached TWS" if bad.not_received else f"was refused ({bad.reason})"
        cancels = []
        for e in group:
            if e is bad or not e.is_open:
                continue
            if e.ib_order_id:
                cancels.append(e.ib_order_id)
            if not e.transmit and e.status is OrderStatus.PENDING_CONFIRM:
                # Held untransmitted by TWS: it never worked and never will.
                e.status = OrderStatus.REJECTED
                e.reason = (f"not transmitted: leg {bad.order_id} of its {e.order_class} "
                            f"{why}, so TWS never worked the group")
                self._log_final(e)
            else:
                e.reason = (f"canceled: leg {bad.order_id} of its {e.order_class} {why}; "
                            f"no leg of a group works alone")
        return cancels

    def _send_cancels(self, ib_ids: list[int]) -> None:
        """cancelOrder for these IB order ids (any thread); a drop leaves them to the
        next sync, which checks the groups again."""
        if not ib_ids:
            return

        def send() -> None:
            for oid in ib_ids:
                try:
                    self.ib.client.cancelOrder(oid)
                except ConnectionError:
                    log.warning("IBKR: could not cancel order id %d (not connected)", oid)
                    return

        try:
            self._run_sync(send)
        except BrokerError as exc:
            log.warning("IBKR: cancels of %s not sent: %s", ib_ids, exc)

    def _settle(self, entry: OrderEntry) -> bool:
        """Wait up to ``timeout`` for ``entry`` to leave ``pending_confirm``, then ask
        TWS (on the connection it was sent on); True once it is resolved."""
        def done() -> bool:
            return entry.status is not OrderStatus.PENDING_CONFIRM

        with self._cond:
            if self._cond.wait_for(done, self.timeout):
                return True
            live = entry.sent_seq > 0 and entry.sent_gen == self.conn.generation
        if live and self.conn.state is State.READY:
            try:
                self._run(self._query_orders(), timeout=self.timeout * 3 + 1,
                          what="order query")
            except BrokerError as exc:
                log.warning("IBKR order query for %s failed: %s", entry.order_id, exc)
        with self._cond:
            return done()

    def _outcome(self, entry: OrderEntry, why: str, *, final_ok: bool = False) -> OrderInfo:
        with self._cond:
            info = entry.info()
            not_received = entry.not_received
            unsure = next((e for e in self.orders.members(entry)
                           if e.status is OrderStatus.PENDING_CONFIRM), None)
        if unsure is not None and unsure is not entry and not final_ok:
            raise OrderStatusUnknown(
                f"leg {unsure.order_id} of {entry.order_class} {entry.order_id} is "
                f"pending_confirm: {why}; the group is resolved from IB's records before "
                f"any new {entry.symbol} order (resubmit the same client_order_id to learn "
                f"its fate)", order_id=entry.order_id,
                client_order_id=entry.client_order_id, symbol=entry.symbol)
        if info["status"] == OrderStatus.PENDING_CONFIRM.value:
            raise OrderStatusUnknown(
                f"order {entry.order_id} ({entry.side} {entry.qty:g} {entry.symbol}) is "
                f"pending_confirm: {why}; it is resolved from IB's records before any new "
                f"{entry.symbol} order (resubmit the same client_order_id to learn its fate)",
                order_id=entry.order_id, client_order_id=entry.client_order_id,
                symbol=entry.symbol)
        if final_ok:
            return info
        if not_received:
            raise BrokerConnectionError(f"order {entry.order_id}: {entry.reason}")
        if info["status"] == OrderStatus.REJECTED.value:
            refusal = buying_power_refusal(
                info["reason"] or "", symbol=entry.symbol, order_id=entry.order_id,
                client_order_id=entry.client_order_id)
            if refusal is not None:
                raise refusal
            pdt = pattern_day_trader_refusal(
                info["reason"] or "", symbol=entry.symbol, equity=self._equity_now(),
                client_order_id=entry.client_order_id)
            if pdt is not None:
                raise pdt
            raise OrderRejected(f"IBKR rejected the order: {info['reason']}",
                                symbol=entry.symbol, order_id=entry.order_id,
                                client_order_id=entry.client_order_id)
        with self._cond:
            bad = next((e for e in self.orders.members(entry)[1:]
                        if e.status is OrderStatus.REJECTED), None)
            leg_why = None if bad is None else bad.reason
        if bad is not None:
            raise OrderRejected(f"IBKR rejected leg {bad.order_id} of {entry.order_class} "
                                f"{entry.order_id}: {leg_why}; its other legs are canceled",
                                symbol=entry.symbol, order_id=entry.order_id,
                                client_order_id=entry.client_order_id)
        return info

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel exactly this order; a final order is returned unchanged (idempotent).

        Canceling a bracket/OTO parent that has not filled cancels its children (TWS
        does so); a partially filled parent's children stay, sized to its fill, to
        protect the position. Canceling an OCO's limit leg cancels its stop leg too;
        canceling a child cancels only it.

        Raises :class:`~simbroker.errors.UnknownOrder` for an id this account never had,
        :class:`~simbroker.errors.OrderStatusUnknown` for an order still pending
        confirmation, :class:`~simbroker.errors.BrokerConnectionError` when not ready.
        """
        self.conn.require("cancel_order", self.ready_wait)
        with self._cond:
            entry = self.orders.get(str(order_id))
            if entry is None:
                raise UnknownOrder(str(order_id))
            if not entry.is_open:
                return entry.info()
            generation = self.conn.generation
        if entry.status is OrderStatus.PENDING_CONFIRM and not self._settle(entry):
            self._outcome(entry, "still unresolved")
        if not entry.is_open:
            return entry.info()
        self._run_sync(lambda: self._cancel(entry))
        with self._cond:
            group = self.orders.members(entry)
            also = [e for e in group[1:] if e.is_open and e.ib_order_id] \
                if entry.order_class == "oco" and group[0] is entry else []
        if also:
            self._send_cancels([e.ib_order_id for e in also])
        with self._cond:
            self._cond.wait_for(lambda: not entry.is_open
                                or self.conn.generation != generation, self.timeout)
            return entry.info()

    def _cancel(self, entry: OrderEntry) -> None:
        ib = self.ib
        if not ib.isConnected() or not entry.ib_order_id:
            raise BrokerConnectionError(f"cancel_order {entry.order_id}: IBKR not connected")
        order = next((t.order for t in ib.trades()
                      if t.order.orderId == entry.ib_order_id), None)
        if order is None:
            order = ib_lib.Order(orderId=entry.ib_order_id, clientId=self.client_id,
                                 permId=entry.perm_id)
        try:
            ib.cancelOrder(order)
        except ConnectionError:
            raise BrokerConnectionError(f"cancel_order {entry.order_id}: IBKR connection "
                                        f"dropped; the order was not cancelled") from None

    def replace_order(self, order_id: str, *, qty: float | None = None,
                      limit_price: float | None = None, stop_price: float | None = None,
                      trail_amount: float | None = None, trail_percent: float | None = None,
                      tif: str | None = None) -> OrderInfo:
        """Modify an open order in place at TWS (``placeOrder`` again with its IB order
        id); its ``order_id`` stays. Only the fields given change.

        Raises
        ------
        ReplaceRejected
            The order is final here (filled, canceled, ...; nothing is sent), TWS refused
            the modification (error 104 "Cannot modify a filled order" when a fill raced
            it, 103 when the order ended, 105/201/110/321/329 for a change it does not
            take; the order is unchanged), or the change is invalid (a ``qty`` below the
            filled quantity, a field the order's type does not take, a ``tif`` that would
            change IB's order type).
        OrderStatusUnknown
            The order, or TWS's answer to the modification, is not known yet (a drop):
            :meth:`get_order` shows the order as TWS lists it after the next sync.
        UnknownOrder
            No such order.
        """
        self.conn.require("replace_order", self.ready_wait)
        with self._cond:
            entry = self.orders.get(str(order_id))
            if entry is None:
                raise UnknownOrder(str(order_id))
        if entry.status is OrderStatus.PENDING_CONFIRM and not self._settle(entry):
            self._outcome(entry, "still unresolved")
        with self._send_lock, self._cond:
            if not entry.is_open:
                raise ReplaceRejected(entry.order_id, f"it is {entry.status.value}",
                                      status=entry.status.value, symbol=entry.symbol,
                                      client_order_id=entry.client_order_id)
            if entry.replacing is not None:
                raise ReplaceRejected(entry.order_id, "an earlier replace of it is still "
                                      "unanswered", status=entry.status.value,
                                      symbol=entry.symbol)
            change = self._replacement(entry, qty=qty, limit_price=limit_price,
                                       stop_price=stop_price, trail_amount=trail_amount,
                                       trail_percent=trail_percent, tif=tif)
            generation = self.conn.generation
            entry.replacing, entry.replace_answer = change, None
        try:
            sent = self._run_sync(lambda: self._modify(entry, change, generation))
        except BaseException:
            with self._cond:
                entry.replacing = None
            raise
        with self._cond:
            if sent:
                self._cond.wait_for(lambda: entry.replace_answer is not None
                                    or self.conn.generation != generation, self.timeout)
            answer, entry.replacing = entry.replace_answer, None
            if answer is None:
                if not sent:
                    raise BrokerConnectionError(f"replace_order {entry.order_id}: the IBKR "
                                                f"connection dropped; nothing was sent")
                raise OrderStatusUnknown(
                    f"replace of order {entry.order_id}: no answer from TWS; the order "
                    f"shows TWS's fields after the next sync", order_id=entry.order_id,
                    client_order_id=entry.client_order_id, symbol=entry.symbol)
            code, text = answer
            if code:  # fills TWS sent before its answer are booked already
                status = "filled" if code == 104 else entry.status.value
                raise ReplaceRejected(
                    entry.order_id, f"TWS error {code} "
                    f"({REPLACE_REFUSALS.get(code, 'refused')}): {text}", status=status,
                    symbol=entry.symbol, client_order_id=entry.client_order_id)
            for key, value in change.items():
                setattr(entry, key, value)
            info = entry.info()
        if self.trade_log is not None:
            self.trade_log.write("replaced", self.now(), order_id=entry.order_id,
                                 symbol=entry.symbol, **change)
        return info

    def _replacement(self, entry: OrderEntry, **given: Any) -> dict[str, Any]:
        """The validated changed fields of a replace of ``entry`` (under the lock)."""
        changes = {k: v for k, v in given.items() if v is not None}
        if not changes:
            raise ReplaceRejected(entry.order_id, "nothing to change (give qty, "
                                  "limit_price, stop_price, trail_amount, trail_percent or "
                                  "tif)", status=entry.status.value, symbol=entry.symbol)
        cur = {"qty": entry.qty, "limit_price": entry.limit_price,
               "stop_price": entry.stop_price, "trail_amount": entry.trail_amount,
               "trail_percent": entry.trail_percent, "tif": entry.tif}
        new = {**cur, **changes}
        if "trail_amount" in changes:  # one trail replaces the other
            new["trail_percent"] = None
        if "trail_percent" in changes:
            new["trail_amount"] = None
        if ("tif" in changes) and (new["tif"] == "cls") != (entry.tif == "cls"):
            raise ReplaceRejected(entry.order_id, "tif 'cls' is an order type at IB "
                                  "(MOC/LOC), which a modification cannot change",
                                  status=entry.status.value, field="tif",
                                  symbol=entry.symbol)
        try:
            Order.create(entry.symbol, entry.side, new["qty"], entry.order_type,
                         limit_price=new["limit_price"], stop_price=new["stop_price"],
                         tif=new["tif"], trail_amount=new["trail_amount"],
                         trail_percent=new["trail_percent"])
        except InvalidOrder as exc:
            raise ReplaceRejected(entry.order_id, str(exc), status=entry.status.value,
                                  field=exc.field, symbol=entry.symbol) from None
        if new["qty"] < entry.filled_qty - 1e-9:
            raise ReplaceRejected(entry.order_id, f"qty {new['qty']:g} is below the "
                                  f"{entry.filled_qty:g} already filled",
                                  status=entry.status.value, field="qty",
                                  symbol=entry.symbol)
        return {k: v for k, v in new.items() if v != cur[k] or k in changes}

    def _modify(self, entry: OrderEntry, change: dict[str, Any], generation: int) -> bool:
        """placeOrder with ``entry``'s IB order id and the changed fields (IO loop);
        False when not connected (nothing sent)."""
        ib = self.ib
        if not ib.isConnected() or self.conn.generation != generation or \
                not entry.ib_order_id:
            return False
        trade = next((t for t in ib.trades() if t.order.orderId == entry.ib_order_id), None)
        order = copy.copy(trade.order) if trade is not None else self._ib_order(
            entry, entry.ib_order_id, 0)
        contract = trade.contract if trade is not None else ib_lib.Stock(
            entry.symbol, self.exchange, self.currency)
        if trade is None:
            order.permId = entry.perm_id
            order.clientId = self.client_id
        order.transmit = True  # a modification TWS must act on
        if "qty" in change:
            order.totalQuantity = change["qty"]
        if "limit_price" in change:
            order.lmtPrice = change["limit_price"]
        if "stop_price" in change:
            order.auxPrice = change["stop_price"]
        if change.get("trail_amount") is not None:
            order.auxPrice, order.trailingPercent = change["trail_amount"], UNSET
        if change.get("trail_percent") is not None:
            order.trailingPercent, order.auxPrice = change["trail_percent"], UNSET
        if "tif" in change:
            order.tif = ib_tif(change["tif"])
        # The client's own modify path asserts on its cached status, which an error
        # answering an earlier modification may have set: the wire call is the same.
        try:
            ib.client.placeOrder(entry.ib_order_id, contract, order)
        except ConnectionError:
            return False
        return True

    def get_order(self, order_id: str) -> OrderInfo:
        """The order's current state (``pending_confirm`` while its fate is unknown)."""
        self.conn.require("get_order", self.ready_wait)
        with self._cond:
            entry = self.orders.get(str(order_id))
            if entry is None:
                raise UnknownOrder(str(order_id))
            return entry.info()

    def get_orders(self, *, open_only: bool = False) -> list[OrderInfo]:
        """Every order this account's client id has (only the open ones if asked)."""
        self.conn.require("get_orders", self.ready_wait)
        with self._cond:
            return [e.info() for e in self.orders.all() if e.is_open or not open_only]

    def get_positions(self) -> dict[str, float]:
        """Open positions ``{symbol: signed qty}``: TWS's at the last sync plus the fills
        booked since (so they agree with :meth:`get_fills`). Trades of other client ids
        or of TWS's own window show up at the next sync (reconnect, 1101/1102)."""
        self.conn.require("get_positions", self.ready_wait)
        with self._cond:
            return dict(self._positions)

    def get_cash(self) -> float:
        """``TotalCashValue`` of the account at the last sync, moved by each fill since
        (notional and commission)."""
        self.conn.require("get_cash", self.ready_wait)
        with self._cond:
            if self._cash is None:
                raise BrokerConnectionError("IBKR sent no TotalCashValue for the account")
            return self._cash

    def _equity_now(self) -> float:
        """``NetLiquidation`` from the account values the client already holds (no
        request: this runs on a refusal path); NaN when it holds none."""
        try:
            rows = list(self.ib.accountValues(self.account) if self.account
                        else self.ib.accountValues())
            return next(float(v.value) for v in rows if v.tag == "NetLiquidation"
                        and v.currency in (self.currency, "BASE"))
        except (StopIteration, ValueError, AttributeError, RuntimeError):
            return math.nan

    def get_account(self) -> AccountInfo:
        """The account's figures as TWS reckons them now (see
        :mod:`simbroker.brokers.ibkr.account` for the tag behind each key).

        Each call asks TWS again (``reqAccountUpdates``: TWS answers with the whole
        account and ``accountDownloadEnd``), so the figures are never older than the
        call: a drop before the answer raises
        :class:`~simbroker.errors.BrokerConnectionError`, no answer within ``timeout``
        :class:`~simbroker.errors.BrokerTimeout`; earlier figures are never returned.
        ``pattern_day_trader`` is the ``pattern_day_trader`` given (the API does not
        report the flag) and ``day_trades`` is derived from ``DayTradesRemaining``.
        """
        self.conn.require("get_account", self.ready_wait)
        # The client keeps one pending account download: one request at a time.
        with self._account_lock:
            return self._ask_account()

    def _ask_account(self) -> AccountInfo:
        generation = self.conn.generation
        ib, account = self.ib, self.account

        async def ask() -> list[Any]:
            if not ib.isConnected():
                raise ConnectionError("not connected")
            await ib.reqAccountUpdatesAsync(account)
            if self.conn.generation != generation or not ib.isConnected():
                raise ConnectionError("the connection dropped during the request")
            return list(ib.accountValues(account) if account else ib.accountValues())

        rows = self._run(ask(), what="get_account")
        if self.conn.generation != generation:
            raise BrokerConnectionError("get_account: the IBKR connection dropped during "
                                        "the request; no figures returned")
        return account_info(rows, currency=self.currency, account_type=self.account_type,
                            pattern_day_trader=self.pattern_day_trader)

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """Fills of the account (executions with commissions), in the order booked.

        A fill's ``timestamp`` is when this adapter booked it (UTC, microseconds, strictly
        increasing), not TWS's execution time: TWS stamps executions to the whole second,
        so a cursor taken just before an order would miss its fills, and a fill learned
        at a reconnect would land behind a cursor taken meanwhile. ``since`` is inclusive;
        a fill is never dropped. TWS's own time is the trade log's ``exec_time``.
        """
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC); got a naive datetime")
        self.conn.require("get_fills", self.ready_wait)
        with self._cond:
            fills = sorted(self._fills.values(), key=lambda f: (f["timestamp"], f["fill_id"]))
        return fills if since is None else [f for f in fills if f["timestamp"] >= since]

    @property
    def reconnects(self) -> int:
        """Successful reconnects so far."""
        return self.conn.reconnects

    @property
    def state(self) -> State:
        """The connection state (``ready`` is the only one in which calls answer)."""
        return self.conn.state

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
