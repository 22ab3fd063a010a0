"""Interactive Brokers (TWS / IB Gateway) behind the :class:`~simbroker.Broker` protocol.

Built on ``ib_async`` (the maintained continuation of ``ib_insync``; ``ib_insync`` is used
when it is the one installed). The client runs on its own thread and event loop; every
protocol call is marshalled onto that loop, so calls are safe from any thread and the
client's events are never starved by a strategy that blocks.

- Stocks on SMART routing in USD by default; market, limit, stop and stop-limit orders,
  time in force always set. Our client order id travels in ``orderRef``; ``order_id`` is
  IB's order id.
- Statuses: ``PendingSubmit``/``ApiPending``/``PreSubmitted``/``Submitted``/
  ``PendingCancel`` are open, ``Filled`` filled, ``Cancelled``/``ApiCancelled`` canceled,
  ``Inactive`` or error 201 rejected. Error 200 (no security definition) and 201 reject
  an order with IB's text; 10147 (unknown order) is :class:`~simbroker.errors.UnknownOrder`;
  103 (duplicate id) is a rejection; 326 (client id in use) a clear connection error.
- A dropped connection is detected and re-established with exponential backoff and
  jitter. ``ib_async`` then reloads open orders and executions, which are matched by
  ``orderRef`` and execution id: an order that reached IB is never sent twice, and no
  fill is lost or counted twice. Positions and open orders already at IB are loaded at
  start-up.
- Fills carry IB's commission (``fee``); cash is ``TotalCashValue``.
- Port 7496 (TWS live) or 4001 (Gateway live), ``trading_mode: live`` or a live account
  (not ``DU…``) is refused unless the caller opted into live trading.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from simbroker.config import IBKRConfig
from simbroker.errors import (
    BrokerConnectionError,
    ConfigError,
    OrderRejected,
    UnknownOrder,
)
from simbroker.tradelog import TradeLog
from simbroker.types import Fill, Order, OrderInfo, OrderStatus

if TYPE_CHECKING:
    from simbroker.brokers.ibkr.feed import IBKRBarFeed

from simbroker.brokers.ibkr.translate import (
    LIVE_PORTS,
    ib_lib,
)
from simbroker.brokers.ibkr.translate import (
    OPEN_STATES as _OPEN,
)
from simbroker.brokers.ibkr.translate import (
    REJECTING as _REJECTING,
)
from simbroker.brokers.ibkr.translate import (
    TYPES as _TYPES,
)
from simbroker.brokers.ibkr.translate import (
    TYPES_BACK as _TYPES_BACK,
)
from simbroker.brokers.ibkr.translate import (
    utc as _utc,
)

__all__ = ["IBKRBroker"]

log = logging.getLogger(__name__)


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
        Where to record the session (start snapshot, submissions, fills, cancels).
    timeout
        Seconds to connect and for each request.
    currency, exchange
        Contract defaults (``USD``, ``SMART``).
    reconnect_backoff
        ``(min, max)`` seconds between reconnect attempts (exponential with jitter).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 7497, client_id: int = 1, *,
                 account: str = "", allow_live: bool = False,
                 trade_log: TradeLog | None = None, timeout: float = 10.0,
                 currency: str = "USD", exchange: str = "SMART", trading_mode: str = "paper",
                 reconnect_backoff: tuple[float, float] = (1.0, 30.0)):
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
        self.currency, self.exchange = currency, exchange
        self._backoff = reconnect_backoff
        self._closing = False
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._fills: dict[str, Fill] = {}
        self._logged_final: set[str] = set()
        self._errors: dict[int, tuple[int, str]] = {}
        self.reconnects = 0
        self._connected = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ibkr-io",
                                        daemon=True)
        self._thread.start()
        self.ib: Any = self._run_sync(lambda: ib_lib.IB())
        self.ib.errorEvent += self._on_error
        self.ib.commissionReportEvent += self._on_commission
        self.ib.orderStatusEvent += self._on_status
        self.ib.disconnectedEvent += self._on_disconnect
        try:
            self._run(self._connect(first=True), timeout=self.timeout + 5)
        except BaseException:
            self.close()
            raise
        if not self.account:
            self.account = self._run_sync(lambda: (self.ib.managedAccounts() or [""])[0])
        if not allow_live and self.account and not self.account.startswith("D"):
            self.close()
            raise ConfigError(f"IBKR account {self.account[:2]}… is a live account; only an "
                              f"explicit live opt-in may trade it", key="account")
        self._sync_fills()
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

    def __repr__(self) -> str:
        return (f"IBKRBroker({self.host}:{self.port}, client {self.client_id}, "
                f"{'connected' if self._connected.is_set() else 'disconnected'})")

    def __enter__(self) -> IBKRBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect and stop the IO thread (idempotent)."""
        if self._closing:
            return
        self._closing = True
        ib = getattr(self, "ib", None)
        if ib is not None and self._loop.is_running():
            try:
                self._run_sync(ib.disconnect)
            except Exception:
                log.debug("disconnect failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    # ------------------------------------------------------------------ the IO loop
    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(self.timeout if timeout is None else timeout)
        except TimeoutError:
            fut.cancel()
            raise BrokerConnectionError("IBKR did not answer in time") from None

    def _run_sync(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return fn()
        fut: Future[Any] = Future()

        def call() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return fut.result(self.timeout)

    async def _connect(self, first: bool = False) -> None:
        self._errors.pop(-1, None)
        try:
            await self.ib.connectAsync(self.host, self.port, clientId=self.client_id,
                                       timeout=self.timeout, account=self.account,
                                       raiseSyncErrors=True)
        except Exception as exc:
            code = self._errors.get(-1, (0, ""))[0]
            if code == 326:
                raise BrokerConnectionError(
                    f"IBKR client id {self.client_id} is already in use (error 326); "
                    f"choose another client_id") from None
            raise BrokerConnectionError(
                f"cannot connect to IBKR at {self.host}:{self.port}: "
                f"{type(exc).__name__}: {exc}") from None
        self._connected.set()

    def _on_disconnect(self) -> None:
        self._connected.clear()
        if self._closing:
            return
        log.warning("IBKR connection lost; reconnecting")
        self._loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        lo, hi = self._backoff
        attempt = 0
        while not self._closing and not self.ib.isConnected():
            attempt += 1
            cap = min(hi, lo * 2 ** (attempt - 1))
            await asyncio.sleep(cap / 2 + random.random() * cap / 2)  # equal jitter
            try:
                await self._connect()
            except BrokerConnectionError as exc:
                log.warning("IBKR reconnect %d failed: %s", attempt, exc)
                continue
            self.reconnects += 1
            log.info("IBKR reconnected after %d attempt(s)", attempt)
            self._sync_fills_in_loop()

    def _require(self) -> None:
        if not self._connected.is_set():
            raise BrokerConnectionError("not connected to IBKR (reconnecting)")

    # ------------------------------------------------------------------ events
    def _on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        self._errors[req_id] = (code, text)
        if code == 326:
            self._errors[-1] = (code, text)
        with self._cond:
            self._cond.notify_all()

    def _on_status(self, trade: Any) -> None:
        info = self._info(trade)
        status = OrderStatus(info["status"])
        if status in (OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED) \
                and self.trade_log is not None and info["order_id"] not in self._logged_final:
            self._logged_final.add(info["order_id"])
            self.trade_log.write({OrderStatus.CANCELED: "canceled",
                                  OrderStatus.REJECTED: "rejected",
                                  OrderStatus.EXPIRED: "expired"}[status], self.now(),
                                 order_id=info["order_id"], symbol=info["symbol"],
                                 reason=info["reason"])
        with self._cond:
            self._cond.notify_all()

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        self._add_fill(fill)

    def _add_fill(self, fill: Any) -> None:
        ex = fill.execution
        report = fill.commissionReport
        if report is None or not report.execId:
            return  # the commission follows; the fill is booked with it
        with self._cond:
            if ex.execId in self._fills:
                return
            qty, price = float(ex.shares), float(ex.price)
            f: Fill = {"fill_id": str(ex.execId), "order_id": str(ex.orderId),
                       "client_order_id": ex.orderRef or None, "timestamp": _utc(ex.time),
                       "symbol": str(fill.contract.symbol),
                       "side": "buy" if ex.side == "BOT" else "sell", "qty": qty,
                       "price": price, "fee": float(report.commission or 0.0),
                       "notional": qty * price}
            self._fills[f["fill_id"]] = f
            if self.trade_log is not None:
                self.trade_log.write("filled", f["timestamp"], **f)
            self._cond.notify_all()

    def _sync_fills_in_loop(self) -> None:
        for fill in self.ib.fills():
            self._add_fill(fill)

    def _sync_fills(self) -> None:
        self._run_sync(self._sync_fills_in_loop)

    def wait_for_fills(self, exec_ids: Iterable[str], timeout: float = 10.0) -> bool:
        """Block until every execution id is booked (with its commission); True if so."""
        wanted = set(exec_ids)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not wanted <= set(self._fills):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    # ------------------------------------------------------------------ protocol
    def now(self) -> datetime:
        """The current time, UTC."""
        return datetime.now(timezone.utc)

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market", *,
                     limit_price: float | None = None, stop_price: float | None = None,
                     tif: str = "day", client_order_id: str | None = None) -> OrderInfo:
        """Place an order; a known ``client_order_id`` (``orderRef``) returns it instead."""
        order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                             stop_price=stop_price, tif=tif, client_order_id=client_order_id)
        self._require()
        cid = order.client_order_id or f"sb-{uuid.uuid4().hex[:20]}"
        if order.client_order_id is not None:
            known = self._find_ref(cid)
            if known is not None:
                return known
        trade = self._run_sync(lambda: self._place(order, cid))
        oid = trade.order.orderId
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while trade.orderStatus.status in ("PendingSubmit", "") and \
                    oid not in self._errors and time.monotonic() < deadline:
                self._cond.wait(0.05)
        code, text = self._errors.get(oid, (0, ""))
        if code in _REJECTING:
            raise OrderRejected(f"IBKR rejected the order (error {code}, "
                                f"{_REJECTING[code]}): {text}", symbol=symbol,
                                order_id=str(oid), client_order_id=cid)
        info = self._info(trade)
        if self.trade_log is not None:
            self.trade_log.write("submitted", info["submitted_at"], order_id=info["order_id"],
                                 client_order_id=cid, symbol=order.symbol,
                                 side=order.side.value, qty=order.qty,
                                 order_type=order.order_type.value,
                                 limit_price=order.limit_price, stop_price=order.stop_price,
                                 tif=order.tif.value)
        return info

    def _place(self, order: Order, cid: str) -> Any:
        contract = ib_lib.Stock(order.symbol, self.exchange, self.currency)
        action = "BUY" if order.side.value == "buy" else "SELL"
        ib_order = ib_lib.Order(action=action, totalQuantity=order.qty,
                                orderType=_TYPES[order.order_type.value],
                                tif="DAY" if order.tif.value == "day" else "GTC",
                                orderRef=cid, account=self.account)
        if order.limit_price is not None:
            ib_order.lmtPrice = order.limit_price
        if order.stop_price is not None:
            ib_order.auxPrice = order.stop_price
        return self.ib.placeOrder(contract, ib_order)

    def _find_ref(self, cid: str) -> OrderInfo | None:
        def look() -> Any:
            found = [t for t in self.ib.trades() if t.order.orderRef == cid]
            # A trade of this session (with an order id) over one completed before it.
            found.sort(key=lambda t: t.order.orderId == 0)
            return found[0] if found else None

        trade = self._run_sync(look)
        if trade is not None:
            info = self._info(trade)
            if not trade.order.orderId:
                # Completed before a restart: its executions still name the order id.
                for f in self._fills.values():
                    if f["client_order_id"] == cid:
                        info["order_id"] = f["order_id"]
                        break
            return info
        fills = [f for f in self._fills.values() if f["client_order_id"] == cid]
        if fills:  # only its executions are left (filled before a restart)
            qty = sum(f["qty"] for f in fills)
            first = fills[0]
            return {"order_id": first["order_id"], "client_order_id": cid,
                    "symbol": first["symbol"], "side": first["side"], "order_type": "market",
                    "tif": "day", "qty": qty, "limit_price": None, "stop_price": None,
                    "status": OrderStatus.FILLED.value, "filled_qty": qty,
                    "avg_fill_price": sum(f["notional"] for f in fills) / qty,
                    "submitted_at": first["timestamp"], "reason": None}
        return None

    def _trade(self, order_id: str) -> Any:
        by_perm = isinstance(order_id, str) and order_id.startswith("P")
        try:
            num = int(order_id[1:] if by_perm else order_id)
        except (TypeError, ValueError):
            raise UnknownOrder(order_id) from None

        def look() -> Any:
            for trade in self.ib.trades():
                if (trade.order.permId if by_perm else trade.order.orderId) == num:
                    return trade
            return None

        trade = self._run_sync(look)
        if trade is None and not by_perm:
            # Completed before a restart, the trade has only a permanent id; its
            # executions link the order id to the orderRef.
            ref = next((f["client_order_id"] for f in self._fills.values()
                        if f["order_id"] == order_id and f["client_order_id"]), None)
            if ref is not None:
                trade = self._run_sync(lambda: next(
                    (t for t in self.ib.trades() if t.order.orderRef == ref), None))
        if trade is None:
            raise UnknownOrder(order_id)
        return trade

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel an open order; a final order is returned unchanged (idempotent)."""
        trade = self._trade(order_id)
        if trade.orderStatus.status in _OPEN:
            self._require()
            self._run_sync(lambda: self.ib.cancelOrder(trade.order))
            deadline = time.monotonic() + self.timeout
            with self._cond:
                while trade.orderStatus.status in _OPEN and time.monotonic() < deadline:
                    self._cond.wait(0.05)
        return self._info(trade)

    def get_positions(self) -> dict[str, float]:
        """Open positions ``{symbol: signed qty}``."""
        rows = self._run_sync(lambda: self.ib.positions(self.account) if self.account
                              else self.ib.positions())
        return {str(p.contract.symbol): float(p.position) for p in rows if p.position}

    def get_cash(self) -> float:
        """``TotalCashValue`` of the account, in its base currency."""
        values = self._run_sync(lambda: self.ib.accountValues(self.account))
        for v in values:
            if v.tag == "TotalCashValue" and v.currency in (self.currency, "BASE"):
                return float(v.value)
        raise BrokerConnectionError("IBKR sent no TotalCashValue for the account yet")

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """Fills of the account (executions with commissions) in time order."""
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC); got a naive datetime")
        self._sync_fills()
        with self._lock:
            fills = sorted(self._fills.values(), key=lambda f: (f["timestamp"], f["fill_id"]))
        return fills if since is None else [f for f in fills if f["timestamp"] >= since]

    def _info(self, trade: Any) -> OrderInfo:
        o, st = trade.order, trade.orderStatus
        code, text = self._errors.get(o.orderId, (0, ""))
        raw = st.status
        filled = float(st.filled or 0.0)
        if code in _REJECTING or raw == "Inactive":
            status = OrderStatus.REJECTED
        elif raw == "Filled":
            status = OrderStatus.FILLED
        elif raw in ("Cancelled", "ApiCancelled"):
            status = OrderStatus.CANCELED
        else:
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
        unset = ib_lib.util.UNSET_DOUBLE if hasattr(ib_lib, "util") else 1.7976931348623157e308

        def price(x: Any) -> float | None:
            return None if x is None or x == unset or (isinstance(x, float)
                                                       and not math.isfinite(x)) else float(x)

        submitted = trade.log[0].time if trade.log else datetime.now(timezone.utc)
        return {
            # Orders completed before this session come back without an order id (IB
            # keeps only the permanent id for them).
            "order_id": str(o.orderId) if o.orderId else f"P{o.permId}",
            "client_order_id": o.orderRef or None,
            "symbol": str(trade.contract.symbol),
            "side": "buy" if o.action == "BUY" else "sell",
            "order_type": _TYPES_BACK.get(o.orderType, o.orderType.lower()),
            "tif": "gtc" if o.tif == "GTC" else "day", "qty": float(o.totalQuantity),
            "limit_price": price(o.lmtPrice) if o.orderType in ("LMT", "STP LMT") else None,
            "stop_price": price(o.auxPrice) if o.orderType in ("STP", "STP LMT") else None,
            "status": status.value, "filled_qty": filled,
            "avg_fill_price": float(st.avgFillPrice) if filled else None,
            "submitted_at": _utc(submitted),
            "reason": f"error {code}: {text}" if status is OrderStatus.REJECTED and code
            else None,
        }

    # ------------------------------------------------------------------ bars
    bar_poll: float = 5.0
    """Default seconds between polls of :meth:`bar_feed` (config key ``bar_poll``)."""

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
        contract = ib_lib.Stock(symbol, self.exchange, self.currency)
        rows = self._run(self.ib.reqHistoricalDataAsync(
            contract, endDateTime="", durationStr=duration, barSizeSetting=size,
            whatToShow="TRADES", useRTH=True, formatDate=2), timeout=self.timeout + 5)
        return list(rows or [])
