"""The wrapper that runs the limits before each order, serialized, worst case: the order
records, the lock and the traffic to the wrapped broker. The rules themselves are in
:mod:`simbroker.risk._rules`."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from simbroker._replace import replaced_order
from simbroker.broker import Broker
from simbroker.errors import (
    BrokerAPIError,
    BrokerError,
    InvalidOrder,
    OrderRejected,
    RiskRejected,
    UnknownOrder,
)
from simbroker.risk._limits import RiskLimits
from simbroker.risk._log_state import risk_state_from_log
from simbroker.risk._rules import RiskRules
from simbroker.tradelog import TradeLog
from simbroker.types import AccountInfo, Fill, Order, OrderClass, OrderInfo, OrderStatus

__all__ = ["RiskBroker"]

log = logging.getLogger("simbroker.risk")

_WINDOW = timedelta(minutes=1)
# The keywords of the order kinds that Order.create checks (others go to the broker as is).
_ORDER_KINDS = ("order_class", "take_profit", "stop_loss", "trail_amount", "trail_percent",
                "extended_hours")
# Fills are read again this far back, so one reported late (stamped before the last read)
# is still seen; fill ids de-duplicate the overlap.
_FILL_LOOKBACK = timedelta(minutes=10)
# Extra broker methods that only read, or drive a simulation, pass straight through;
# anything else that could send or change an order does not (it would skip the checks).
_PASS_PREFIXES = ("get_", "wait_", "is_", "has_")
_PASS_NAMES = frozenset({"bars", "bar_index", "bar_feed", "clock", "close", "fetch",
                         "initial_cash", "initial_positions", "position_array", "reconcile",
                         "run_until", "server_now", "step", "stream_connected", "trade_log"})


def _is_open(status: str) -> bool:
    try:
        return OrderStatus(status).is_open
    except ValueError:
        return True  # a status we do not know may still fill: count it


@dataclass
class _Working:
    """An order that counts toward exposure: sent, being sent, or of unknown fate."""

    order: Order
    order_id: str | None  # None while being sent, or when its fate is unknown
    filled: float = 0.0
    unknown: bool = False
    group: str | None = None  # the bracket/OTO/OCO whose legs sell (or buy) one position
    held: bool = False  # a child waiting for its parent: it cannot fill yet

    @property
    def remaining(self) -> float:
        return max(self.order.qty - self.filled, 0.0)


def _order_of(info: Mapping[str, Any]) -> Order:
    """A listed order (``OrderInfo`` or a log record) as an :class:`Order` (its own
    fields; a group's links are read by :func:`_group_of`)."""
    otype = str(info.get("order_type") or "market")
    trailing = otype == "trailing_stop"
    return Order.create(str(info["symbol"]), str(info["side"]), float(info["qty"]), otype,
                        limit_price=None if trailing else info.get("limit_price"),
                        stop_price=None if trailing else info.get("stop_price"),
                        tif=str(info.get("tif") or "day"),
                        client_order_id=info.get("client_order_id") or None,
                        trail_amount=info.get("trail_amount") if trailing else None,
                        trail_percent=info.get("trail_percent") if trailing else None)


def _group_of(info: Mapping[str, Any]) -> str | None:
    """The group a listed order is a leg of: its parent's id, or an OCO limit leg's own."""
    parent = info.get("parent_id")
    if parent:
        return str(parent)
    if info.get("order_class") == "oco" and info.get("legs"):
        return str(info["order_id"])
    return None


class RiskBroker(RiskRules):
    """A :class:`~simbroker.Broker` that runs :class:`RiskLimits` before each order.

    Checks are worst case (see :mod:`simbroker.risk`) and serialized: one lock covers the
    check and the reservation of the order's exposure, so concurrent orders can never
    pass together what one would not; the lock is not held while the order travels to
    the broker.

    Parameters
    ----------
    broker
        The broker to protect; every call not refused goes to it unchanged. Its open
        orders (when it can list them with ``get_orders``) count from the start.
    limits
        The rules.
    prices
        ``symbol -> last price or None``. By default the wrapper uses prices given to
        :meth:`update_prices` and, for a :class:`~simbroker.PaperBroker`, the close of the
        latest closed bar.
    trade_log
        Where refusals, the kill switch and the daily-loss marks are recorded (the
        wrapped broker logs everything else). For a broker with a trade log, that log
        is used by default.

    Examples
    --------
    >>> import simbroker
    >>> from simbroker.risk import RiskBroker, RiskLimits
    >>> paper = simbroker.PaperBroker(simbroker.synthetic_bars(n_symbols=1, n_bars=5))
    >>> broker = RiskBroker(paper, RiskLimits(max_order_qty=100))
    >>> broker.submit_order("SYM000", "buy", 500)
    Traceback (most recent call last):
    ...
    simbroker.errors.RiskRejected: risk rule 'max_order_qty': buy 500 SYM000: qty 500 > limit 100
    """

    def __init__(self, broker: Broker, limits: RiskLimits, *,
                 prices: Callable[[str], float | None] | None = None,
                 trade_log: TradeLog | None = None):
        if not isinstance(limits, RiskLimits):
            raise TypeError(f"limits must be RiskLimits, got {type(limits).__name__}")
        self.broker = broker
        self.limits = limits
        self._prices_fn = prices
        self._prices: dict[str, float] = {}
        self._log = trade_log if trade_log is not None else getattr(broker, "trade_log", None)
        self._lock = threading.RLock()
        self._tokens = itertools.count(1)
        self._working: dict[str, _Working] = {}  # order id (or a reservation token) -> order
        self._sym_keys: dict[str, set[str]] = {}  # symbol -> its keys in _working
        self._refreshed: tuple[Any, ...] | None = None
        self._by_client: dict[str, str] = {}  # client order id -> key in _working
        self._recent: deque[tuple[datetime, str]] = deque()  # (accepted at, key) in window
        self._in_window: dict[str, int] = {}
        self._fills_seen: set[str] = set()
        self._cursor: datetime | None = None
        self._day: date | None = None
        self._day_start_equity = 0.0
        self._last_equity: float | None = None
        self._killed: str | None = None
        self._adopt(self._broker_open_orders(), check=False)

    # ------------------------------------------------------------ the protocol
    def submit_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        order_type: str = "market",
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        tif: str = "day",
        client_order_id: str | None = None,
        **kinds: Any,
    ) -> OrderInfo:
        """Check the order against every rule, then pass it to the wrapped broker.

        A resubmission of an order this wrapper holds open (same ``client_order_id`` and
        the same fields) goes through unchecked and uncounted: the broker returns the
        order it has instead of placing another.

        The order kinds of :class:`~simbroker.OrderManagingBroker` (``order_class``,
        ``take_profit``, ``stop_loss``, ``trail_amount``, ``trail_percent``, and any
        other keyword the wrapped broker takes, e.g. ``extended_hours``) are passed on.
        A bracket or OTO is checked as its entry: its exits close the position the entry
        opens and are born only when it fills, sized to the fill, so they add no
        exposure while held, and once live a group's legs count once (siblings cancel).
        An OCO counts as one order of its quantity. The price collar checks the legs'
        prices too.
        """
        order_kinds = {k: kinds[k] for k in _ORDER_KINDS if k in kinds}
        try:
            order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                                 stop_price=stop_price, tif=tif, client_order_id=client_order_id,
                                 **order_kinds)
        except InvalidOrder as exc:
            self._log_rejected(symbol, side, qty, order_type, client_order_id, exc, None)
            raise
        cancel_all = False
        with self._lock:
            try:
                key, counted, fresh = self._check_and_reserve(order)
            except RiskRejected as exc:
                self._log_rejected(symbol, side, qty, order_type, client_order_id, exc,
                                   exc.rule)
                cancel_all = self._killed is not None and self.limits.cancel_on_kill
                rejection: RiskRejected | None = exc
            else:
                rejection = None
        if rejection is not None:
            if cancel_all:
                self._cancel_working()
            raise rejection
        try:
            info = self.broker.submit_order(symbol, side, qty, order_type,
                                            limit_price=limit_price, stop_price=stop_price,
                                            tif=tif, client_order_id=client_order_id,
                                            **kinds)
        except (OrderRejected, BrokerAPIError):
            if fresh:
                with self._lock:  # the broker answered no: nothing was placed
                    self._release(key, counted)
            raise
        except BaseException as exc:
            if fresh:
                with self._lock:  # it may be at the venue: keep counting it
                    self._unknown(key, exc)
            raise
        with self._lock:
            self._commit(key, order, info)
            late = self._killed is not None and self.limits.cancel_on_kill
        if late and _is_open(info["status"]):
            self._cancel([info["order_id"]])  # the kill switch tripped while it was sent
        return info

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel through the wrapped broker (cancelling is never refused)."""
        info = self.broker.cancel_order(order_id)
        if not _is_open(info["status"]):
            with self._lock:
                self._drop(order_id)
        return info

    def get_positions(self) -> dict[str, float]:
        """The wrapped broker's positions."""
        return self.broker.get_positions()

    def get_cash(self) -> float:
        """The wrapped broker's cash."""
        return self.broker.get_cash()

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """The wrapped broker's fills."""
        return self.broker.get_fills(since)

    def now(self) -> datetime:
        """The wrapped broker's time."""
        return self.broker.now()

    def get_account(self) -> AccountInfo:
        """The wrapped broker's account, passed through unchanged (``AttributeError``
        when the wrapped broker has no ``get_account``)."""
        return self._inner("get_account")()  # type: ignore[no-any-return]

    def get_order(self, order_id: str) -> OrderInfo:
        """The wrapped broker's view of one order."""
        return self._inner("get_order")(order_id)  # type: ignore[no-any-return]

    def get_orders(self, *, open_only: bool = False) -> list[OrderInfo]:
        """The wrapped broker's orders (``open_only``: those still open, held included)."""
        return list(self._inner("get_orders")(open_only=open_only))

    def replace_order(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
        trail_amount: float | None = None,
        trail_percent: float | None = None,
        tif: str | None = None,
    ) -> OrderInfo:
        """Check the changed order like a new one, then replace it at the wrapped broker.

        The order as changed (its remaining quantity, its new prices) is checked against
        every rule but the order rate, with its old self taken out of the exposure: a
        replace that only lowers the risk passes whenever the old order did. A held
        child is checked only for the static rules (it cannot fill before its parent,
        and then at most what the parent filled). A refusal raises
        :class:`~simbroker.errors.RiskRejected` and the order stays as it was; an invalid
        change or a closed order raises :class:`~simbroker.errors.ReplaceRejected`.
        """
        replace = self._inner("replace_order")
        changes = dict(qty=qty, limit_price=limit_price, stop_price=stop_price,
                       trail_amount=trail_amount, trail_percent=trail_percent, tif=tif)
        with self._lock:
            work = self._working.get(order_id)
            if work is None and callable(getattr(self.broker, "get_order", None)):
                self._adopt([self.broker.get_order(order_id)], check=False)  # type: ignore[attr-defined]
                work = self._working.get(order_id)
            old = None if work is None else work.order
            if work is not None:
                new = replaced_order(order_id, work.order, work.filled,
                                     in_group=work.group is not None, **changes)
                try:
                    self._check_replace(work, new)
                except RiskRejected as exc:
                    self._log_rejected(new.symbol, new.side.value, new.qty,
                                       new.order_type.value, new.client_order_id, exc,
                                       exc.rule)
                    raise
                work.order = new  # reserved at its new size until the broker answers
        try:
            info = replace(order_id, **changes)
        except BaseException:
            with self._lock:
                if work is not None and old is not None:
                    work.order = old
            raise
        with self._lock:
            if work is not None:
                work.filled = float(info.get("filled_qty") or 0.0)
                if not _is_open(info["status"]):
                    self._drop(order_id)
        return info  # type: ignore[no-any-return]

    def _check_replace(self, work: _Working, new: Order) -> None:
        """Under the lock: the rules for ``new`` replacing ``work``'s order."""
        if self._killed is not None:
            raise self._reject("max_daily_loss", new, f"kill switch engaged ({self._killed})")
        remaining = new.qty - work.filled
        if remaining <= 0:
            return
        probe = dataclasses.replace(new, qty=remaining)
        if work.held:
            self._check_static_fields(probe, remaining)
            return
        key = str(work.order_id)
        self._pop(key)
        try:
            self._check(probe, rate=False)
        finally:
            self._put(key, work)

    def _inner(self, name: str) -> Any:
        method = getattr(self.broker, name, None)
        if not callable(method):
            raise AttributeError(
                f"the wrapped broker ({type(self.broker).__name__}) has no {name}(); "
                "wrap an OrderManagingBroker to list or replace orders")
        return method

    def __getattr__(self, name: str) -> Any:
        # Reached only for names this class lacks: the wrapped broker's extras
        # (get_order, get_orders, bars...). Order-sending extras are not forwarded.
        if name.startswith("_") or name in ("broker", "limits"):
            raise AttributeError(name)  # not yet set (during __init__ or unpickling)
        if name.startswith(_PASS_PREFIXES) or name in _PASS_NAMES:
            return getattr(self.broker, name)
        value = getattr(self.broker, name)
        if callable(value):
            raise AttributeError(
                f"RiskBroker does not pass {name!r} through: it could send or change an "
                f"order around the risk checks; use submit_order and cancel_order")
        return value

    # --------------------------------------------------------------- extras
    @property
    def killed(self) -> str | None:
        """Why the kill switch is engaged, or ``None`` when trading is allowed."""
        return self._killed

    def kill(self, reason: str = "kill switch engaged by hand") -> list[OrderInfo]:
        """Block all new orders; cancel the open orders it knows of if ``cancel_on_kill``."""
        with self._lock:
            self._trip(reason)
        return self._cancel_working() if self.limits.cancel_on_kill else []

    def reset_kill(self) -> None:
        """Allow orders again (a deliberate human decision) and restart the day's P&L."""
        with self._lock:
            if self._killed is not None and self._log is not None:
                self._log.write("kill_reset", self.broker.now())
            self._killed = None
            self._day = None
            self._last_equity = None

    def update_prices(self, prices: Mapping[str, float]) -> None:
        """Record last known prices and re-mark the daily loss (call it on each bar).

        The kill switch can trip here, without any new order, and then cancels the open
        orders it knows of when ``cancel_on_kill``.
        """
        with self._lock:
            for sym, px in prices.items():
                if px is not None and math.isfinite(px) and px > 0:
                    self._prices[sym] = float(px)
            tripped = None
            if self.limits.max_daily_loss is not None and self._killed is None:
                equity = self._equity(self.broker.get_positions())
                if equity is not None:
                    tripped = self._loss_check(equity)
        if tripped is not None and self.limits.cancel_on_kill:
            self._cancel_working()

    def restore(self, records: Iterable[Mapping[str, Any]]) -> list[OrderInfo]:
        """Rebuild the state a previous session left in its trade log, before trading.

        From ``records`` (:func:`~simbroker.tradelog.read_trade_log` of the log being
        resumed): the kill switch, the daily-loss baseline, and the orders accepted in
        the rate window. The broker's open orders (re-placed after a resume; from the log
        when the broker cannot list them) count toward exposure; each is checked against
        the rules that do not depend on prices or time (symbols, ``max_order_qty``,
        ``max_position``, ``allow_short``) and cancelled if it breaks one: the
        uninterrupted run checked it once at its own prices, so re-pricing a resting
        order would let a restart change a decision. With the kill switch engaged, the
        open orders are cancelled (``cancel_on_kill``). Returns the cancelled orders.
        """
        state = risk_state_from_log(records)
        with self._lock:
            self._killed = state.killed
            self._day, self._day_start_equity = state.day, state.day_start_equity
            self._last_equity = state.last_equity
            self._recent.clear()
            self._in_window.clear()
            for when, key in state.orders:
                if self.limits.max_orders_per_minute is not None:
                    self._count(when, key)
            self._prune(self.broker.now())
            self._fills_seen |= state.fill_ids
            for key in [k for k, w in self._working.items() if w.order_id is not None]:
                self._drop(key)  # counted unchecked at construction: checked again below
            listed = self._broker_open_orders()
            if listed is None:
                listed = []
                for oid, rec in state.open_orders.items():
                    info = dict(rec)
                    info["filled_qty"] = state.filled.get(oid, 0.0)
                    listed.append(info)
            refused = self._adopt(listed, check=True)
        canceled = self._cancel(refused)
        if self._killed is not None and self.limits.cancel_on_kill:
            canceled += self._cancel_working()
        return canceled

    def last_price(self, symbol: str) -> float | None:
        """The last known price of ``symbol``, or ``None``."""
        if self._prices_fn is not None:
            px = self._prices_fn(symbol)
            if px is not None and math.isfinite(px) and px > 0:
                return float(px)
        bars = getattr(self.broker, "bars", None)
        t = getattr(self.broker, "bar_index", -1)
        if bars is not None and t >= 0 and symbol in bars:
            j = bars.symbol_index(symbol)
            px = float(bars.close[t, j])
            if math.isfinite(px):
                return px  # the common case: the symbol traded on the latest bar
            col = bars.close[: t + 1, j]
            valid = col[~np.isnan(col)]
            if len(valid):
                return float(valid[-1])
        return self._prices.get(symbol)

    def __repr__(self) -> str:
        return f"RiskBroker({self.broker!r}, {self.limits!r})"

    # ------------------------------------------------------- order bookkeeping
    def _broker_open_orders(self) -> list[Mapping[str, Any]] | None:
        get_orders = getattr(self.broker, "get_orders", None)
        if not callable(get_orders):
            return None
        return list(get_orders(open_only=True))

    def _adopt(self, infos: Iterable[Mapping[str, Any]] | None, *, check: bool) -> list[str]:
        """Count open orders placed around this wrapper; return the ids that broke a rule."""
        refused: list[str] = []
        for info in infos or ():
            oid = str(info["order_id"])
            if oid in self._working or not _is_open(str(info.get("status", "new"))):
                continue
            order = _order_of(info)
            filled = float(info.get("filled_qty") or 0.0)
            if check:
                try:
                    self._check_static(order, order.qty - filled)
                except RiskRejected as exc:
                    log.warning("cancelling re-placed order %s: %s", oid, exc)
                    refused.append(oid)
                    continue
            self._put(oid, _Working(order, oid, filled=filled, group=_group_of(info),
                                    held=info.get("status") == OrderStatus.HELD.value))
            if order.client_order_id is not None:
                self._by_client[order.client_order_id] = oid
        return refused

    def _check_and_reserve(self, order: Order) -> tuple[str, bool, bool]:
        """Under the lock: refuse, or reserve the order's exposure.

        Returns its key in the working orders, whether it entered the rate window, and
        whether it is a new order (False: a resubmission of one already open).
        """
        if self._killed is not None:
            raise self._reject("max_daily_loss", order, f"kill switch engaged ({self._killed})")
        cid = order.client_order_id
        known = self._working.get(self._by_client.get(cid, "")) if cid is not None else None
        if cid is not None and known is not None and known.order == order:
            return self._by_client[cid], False, False
        self._check(order)
        key = f"\0sending-{next(self._tokens)}"
        self._put(key, _Working(order, None))
        counted = self.limits.max_orders_per_minute is not None and self._count(
            self.broker.now(), cid or key)
        return key, counted, True

    def _count(self, when: datetime, key: str) -> bool:
        """Add an order to the rate window once; False when it was there already."""
        if key in self._in_window:
            return False
        self._recent.append((when, key))
        self._in_window[key] = 1
        return True

    def _prune(self, now: datetime) -> None:
        while self._recent and now - self._recent[0][0] >= _WINDOW:
            _, key = self._recent.popleft()
            self._in_window.pop(key, None)

    def _release(self, key: str, counted: bool) -> None:
        work = self._pop(key)
        if work is None or not counted:
            return
        name = work.order.client_order_id or key
        for i, (_, k) in enumerate(self._recent):
            if k == name:
                del self._recent[i]
                self._in_window.pop(name, None)
                break

    def _unknown(self, key: str, exc: BaseException) -> None:
        work = self._working.get(key)
        if work is None:
            return
        work.unknown = True
        oid = getattr(exc, "order_id", None)
        if isinstance(oid, str) and oid:
            self._pop(key)
            work.order_id = oid
            key = oid
            self._put(oid, work)
        if work.order.client_order_id is not None:
            self._by_client[work.order.client_order_id] = key
        log.warning("order %s: fate unknown after %s; it counts toward exposure until "
                    "resolved", work.order.client_order_id or key, type(exc).__name__)

    def _commit(self, key: str, order: Order, info: OrderInfo) -> None:
        work = self._pop(key) or _Working(order, None)
        oid = str(info["order_id"])
        if order.client_order_id is not None:
            self._by_client.pop(order.client_order_id, None)
        legs = [str(x) for x in info.get("legs") or ()]
        if not _is_open(info["status"]):
            self._pop(oid)
            if legs and info["status"] == OrderStatus.FILLED.value:
                self._link_legs(order, oid, legs, live=True)
            return
        work.order_id = oid
        work.unknown = False
        work.filled = max(work.filled, float(info.get("filled_qty") or 0.0))
        self._put(oid, work)
        if order.client_order_id is not None:
            self._by_client[order.client_order_id] = oid
        if legs:
            self._link_legs(order, oid, legs, live=order.order_class is OrderClass.OCO)

    def _link_legs(self, order: Order, oid: str, legs: list[str], *, live: bool) -> None:
        """Count a group's legs: held children add nothing; live legs count once."""
        if order.order_class is OrderClass.OCO and oid in self._working:
            self._working[oid].group = oid
        for leg_id, leg in zip(legs, order.leg_orders(), strict=False):
            if leg_id not in self._working:
                self._put(leg_id, _Working(leg, leg_id, group=oid, held=not live))

    def _put(self, key: str, work: _Working) -> None:
        self._working[key] = work
        self._sym_keys.setdefault(work.order.symbol, set()).add(key)

    def _pop(self, key: str) -> _Working | None:
        work = self._working.pop(key, None)
        if work is not None:
            keys = self._sym_keys.get(work.order.symbol)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._sym_keys[work.order.symbol]
        return work

    def _drop(self, key: str) -> None:
        work = self._pop(key)
        if work is not None and work.order.client_order_id is not None \
                and self._by_client.get(work.order.client_order_id) == key:
            del self._by_client[work.order.client_order_id]

    def _refresh(self) -> None:
        """Bring each open order's filled quantity and status up to date."""
        get_order = getattr(self.broker, "get_order", None)
        self._resolve_unknown()
        # A simulated broker's orders change only when it steps (fills, expiries) or
        # through this wrapper: nothing to read again until its bar moves.
        bar = getattr(self.broker, "bar_index", None)
        moved = None if not isinstance(bar, int) else (bar, self.broker.now())
        if moved is not None and moved == self._refreshed:
            return
        sent = [w for w in self._working.values() if w.order_id is not None]
        self._refreshed = moved
        if not sent:
            return
        if not callable(get_order):
            # No order lookup: learn fills incrementally (ids de-duplicate the overlap).
            by_id = {w.order_id: w for w in sent}
            since = None if self._cursor is None else self._cursor - _FILL_LOOKBACK
            for f in self.broker.get_fills(since):
                if f["fill_id"] in self._fills_seen:
                    continue
                self._fills_seen.add(f["fill_id"])
                when = f.get("timestamp")
                if isinstance(when, datetime) and (self._cursor is None or when > self._cursor):
                    self._cursor = when
                work = by_id.get(f["order_id"])
                if work is not None:
                    work.filled += float(f["qty"])
        for work in sent:
            assert work.order_id is not None
            if callable(get_order):
                try:
                    info = get_order(work.order_id)
                except UnknownOrder:
                    if not work.unknown:
                        self._drop(work.order_id)
                    continue
                work.filled = float(info["filled_qty"])
                if not _is_open(info["status"]):
                    self._drop(work.order_id)
                    continue
                work.held = info["status"] == OrderStatus.HELD.value
                listed = float(info.get("qty") or work.order.qty)
                if listed != work.order.qty:  # a child sized to its parent's fill
                    work.order = dataclasses.replace(work.order, qty=listed)
            if work.remaining <= 1e-12 * work.order.qty:
                self._drop(work.order_id)
        if not callable(get_order):  # no status to read: a child is live once its parent
            for work in list(self._working.values()):  # has filled (or is gone)
                if work.held and work.group is not None:
                    parent = self._working.get(work.group)
                    work.held = parent is not None and parent.filled <= 0

    def _resolve_unknown(self) -> None:
        """Find orders of unknown fate (no order id) in the broker's list, by client id."""
        lost = {w.order.client_order_id: k for k, w in self._working.items()
                if w.unknown and w.order_id is None and w.order.client_order_id is not None}
        if not lost:
            return
        get_orders = getattr(self.broker, "get_orders", None)
        if not callable(get_orders):
            return
        for info in get_orders():
            key = lost.get(info.get("client_order_id"))
            if key is not None:
                work = self._working[key]
                self._commit(key, work.order, info)

    def _cancel(self, order_ids: Iterable[str]) -> list[OrderInfo]:
        out = []
        for oid in order_ids:
            try:
                out.append(self.cancel_order(oid))
            except UnknownOrder:
                with self._lock:
                    self._drop(oid)
            except BrokerError as exc:
                # It stays counted; the next kill or cancel tries again. The refusal or
                # the kill that asked for the cancel is what the caller must see.
                log.warning("could not cancel order %s: %s", oid, exc)
        return out

    def _cancel_working(self) -> list[OrderInfo]:
        with self._lock:
            ids = [w.order_id for w in self._working.values() if w.order_id is not None]
        return self._cancel(ids)

    def _log_rejected(self, symbol: Any, side: Any, qty: Any, order_type: Any,
                      client_order_id: Any, exc: OrderRejected, rule: str | None) -> None:
        if self._log is None:
            return

        def plain(x: Any) -> Any:
            if x is None or isinstance(x, (str, bool)):
                return x
            if isinstance(x, float) and math.isfinite(x):
                return x
            if isinstance(x, int) and abs(x) < 2**63:
                return x
            return repr(x)[:100]

        extra = {} if rule is None else {"rule": rule}
        self._log.write("rejected", self.broker.now(), order_id=None,
                        client_order_id=plain(client_order_id), symbol=plain(symbol),
                        side=plain(side), qty=plain(qty), order_type=plain(order_type),
                        reason=str(exc), **extra)
