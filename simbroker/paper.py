"""PaperBroker: the bar-replay matching engine behind every backtest.

Fill semantics (DESIGN.md, "Simulation semantics"), for an order submitted while bar ``t``
is the latest closed bar; it first trades on bar ``t + 1``:

==============  =========================================  ==============================
order           fills on a bar when                        reference price
==============  =========================================  ==============================
market          always                                     open
buy limit L     low <= L                                   min(open, L)
sell limit L    high >= L                                  max(open, L)
buy stop S      high >= S (triggers)                       max(open, S)
sell stop S     low <= S (triggers)                        min(open, S)
buy stop-limit  triggers as a buy stop; then rests as a buy limit L. On the trigger bar
                it fills at S when the stop is hit inside the bar and S <= L, or as a limit
                from the open when the open gaps through S; otherwise it waits for the
                next bar (the path inside a bar is unknown, so no optimistic guess).
sell trailing   low <= level                               min(open, level)
buy trailing    high >= level                              max(open, level)
opg             the first bar of the next session; a       open
                limit only if the open satisfies it
cls             the last bar of the session it first can   close
                trade in; a limit only if the close does
ioc / fok       as its type, on the next bar only          as its type
==============  =========================================  ==============================

A trailing stop's level comes from its extreme over the bars *before* the one it is
tested on (sell: ``extreme - trail_amount`` or ``extreme * (1 - trail_percent / 100)``;
buy mirrored); the extreme starts at the last close seen at submission and takes in each
bar's high (sell) or low (buy) after that bar is matched, so the level never loosens.
Auction (opg/cls), ioc and fok orders not filled on their bar are canceled after it; fills
are whole here, so fok is ioc. Sessions are the trading days ``day`` orders expire on.

Bracket/OTO exits are ``held`` until their entry fills on bar ``t`` and trade from
``t + 1``; OCO legs are live at once. Exactly one leg of a group fills (the others are
canceled): a leg the open gaps through fills at the open, otherwise when two legs could
fill inside one bar the stop leg does (``both_legs="stop"``, the default) or the
take-profit (``both_legs="take_profit"``). The group logic is in
:mod:`simbroker._paper_groups`, trailing and auction matching in
:mod:`simbroker._paper_kinds`, replace checks in :mod:`simbroker._replace`.

The fill price is the reference price moved against the trader by the slippage model
(``ref * (1 + s)`` for a buy, ``ref * (1 - s)`` for a sell), not clipped to the bar unless
``clip_to_bar=True``. A limit order never fills worse than its limit: the slipped price is
capped at the limit (a resting limit touched inside the bar fills at its limit). Fees are
charged on the fill notional ``qty * price``. A bar with zero volume (nothing traded) or
no bar at all for the symbol fills nothing; on bars whose volume is unknown
(``Bars.volume_known`` False) every bar with a close can fill. ``day`` orders expire after
the last bar of the trading day on which they could first trade; ``gtc`` orders rest.

Sessions: when the bars carry exchange-calendar sessions (:mod:`simbroker.sessions`), an
order trades only on bars in its symbol's regular hours, and a ``day`` order expires after
the last regular bar of the session in which it can first trade (one placed after the
close waits for the next session, as at the venues); a stop does not trigger outside
regular hours either. An order with ``extended_hours=True`` (limit orders only) trades on
every bar of the trading day, pre- and post-market included, and a ``day`` one expires
after the trading day's last bar. Bars in no trading day (weekends, holidays) fill
nothing. Without sessions every bar is regular hours and a trading day is a calendar date
in ``session_tz`` (UTC by default: an intraday day order placed in New York then lives to
19:00 or 20:00 ET).

Matching of all open orders on a bar is one set of numpy operations across orders and
symbols; Python only loops over the fills that happened, to book them in order.

Bars carrying corporate actions (``bars.actions``, see :mod:`simbroker.actions`) have
their splits and dividends applied before the bar they take effect on trades: splits
multiply positions and open orders, dividends move cash on the pay date
(:mod:`simbroker.actions._paper`).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simbroker._paper_carry import Carried, plan_carried
from simbroker._paper_groups import Groups, one_leg_per_group
from simbroker._paper_kinds import (
    AT_CLOSE,
    AT_OPEN,
    TRAIL_AMOUNT,
    TRAIL_PERCENT,
    auction_fill,
    replaced_order,
    trail_fill,
    trail_levels,
    trailed_extremes,
)
from simbroker.accounts import Account, account_model, unconstrained_info
from simbroker.accounts._marks import last_closes
from simbroker.actions._paper import PaperActions, broker_schedule
from simbroker.bars import Bars
from simbroker.clock import SimulatedClock
from simbroker.errors import (
    ClockError,
    InsufficientBuyingPower,
    InvalidOrder,
    PatternDayTrading,
    ReplaceRejected,
    ShortingNotAllowed,
    UnknownOrder,
)
from simbroker.models.fees import FeeModel, fee_model
from simbroker.models.slippage import BarContext, SlippageModel, slippage_model
from simbroker.sessions import NEVER, date_sessions
from simbroker.tradelog import TradeLog, cash_after_fill, position_after_fill
from simbroker.types import (
    AccountInfo,
    Fill,
    Order,
    OrderClass,
    OrderInfo,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

__all__ = ["PaperBroker"]

_VENUES = (None, "alpaca", "ibkr")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NEVER = NEVER
_TYPE_CODE = {OrderType.MARKET: 0, OrderType.LIMIT: 1, OrderType.STOP: 2, OrderType.STOP_LIMIT: 3}
_UNFILLED = {TimeInForce.OPG: "opg order not filled in the opening auction",
             TimeInForce.CLS: "cls order not filled in the closing auction",
             TimeInForce.IOC: "ioc order not filled on its bar",
             TimeInForce.FOK: "fok order not filled on its bar"}


def _dt(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


@dataclass
class _OrderState:
    """Mutable bookkeeping of one order (the dict handed out is built from it)."""

    order_id: str
    order: Order
    submitted_at: datetime
    status: OrderStatus = OrderStatus.NEW
    filled_qty: float = 0.0
    filled_notional: float = 0.0
    reason: str | None = None
    parent_id: str | None = None
    legs: list[str] = field(default_factory=list)
    group_class: str | None = None  # a leg's group class (its own Order is simple)
    trail_extreme: float | None = None  # a trailing stop's extreme so far

    def info(self) -> OrderInfo:
        o = self.order
        # ``extended_hours`` is an Order field of the sessions work; False until it exists.
        extended = bool(getattr(o, "extended_hours", False))
        stop = o.stop_price
        if o.order_type is OrderType.TRAILING_STOP and self.trail_extreme is not None:
            stop = _trail_level(o, self.trail_extreme)
        return OrderInfo(
            order_id=self.order_id,
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side.value,
            qty=o.qty,
            order_type=o.order_type.value,
            limit_price=o.limit_price,
            stop_price=stop,
            tif=o.tif.value,
            status=self.status.value,
            filled_qty=self.filled_qty,
            avg_fill_price=(self.filled_notional / self.filled_qty) if self.filled_qty else None,
            submitted_at=self.submitted_at,
            reason=self.reason,
            order_class=self.group_class or o.order_class.value,
            parent_id=self.parent_id,
            legs=list(self.legs),
            trail_amount=o.trail_amount,
            trail_percent=o.trail_percent,
            extended_hours=extended,
            remaining_qty=o.qty - self.filled_qty,
        )


class _OpenBook:
    """Open orders as parallel numpy arrays (struct of arrays), grown by doubling."""

    def __init__(self, capacity: int = 64):
        self.n = 0
        self.ids: list[str] = []
        self.sym = np.zeros(capacity, np.int64)
        self.sign = np.zeros(capacity, np.float64)
        self.qty = np.zeros(capacity, np.float64)
        self.otype = np.zeros(capacity, np.int8)
        self.limit = np.zeros(capacity, np.float64)
        self.stop = np.zeros(capacity, np.float64)
        self.trig_bar = np.zeros(capacity, np.int64)  # bar a stop-limit triggered on
        self.first_bar = np.zeros(capacity, np.int64)
        self.expire_bar = np.zeros(capacity, np.int64)
        self.aux = np.zeros((capacity, 2), np.float64)  # trailing stops: trail, extreme
        self.ext = np.zeros(capacity, np.bool_)  # extended hours: trades outside RTH
        self.max_first = -1  # the largest first_bar ever added: all eligible once passed

    _ARRAYS = ("sym", "sign", "qty", "otype", "limit", "stop", "trig_bar", "first_bar",
               "expire_bar", "aux", "ext")

    def add(self, order_id: str, sym: int, sign: float, qty: float, otype: int, limit: float,
            stop: float, first_bar: int, expire_bar: int, trig_bar: int = _NEVER,
            trail: float = np.nan, extreme: float = np.nan, ext: bool = False) -> None:
        if self.n == len(self.sym):
            for name in self._ARRAYS:
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.zeros_like(a)]))
        i = self.n
        self.ids.append(order_id)
        self.sym[i], self.sign[i], self.qty[i], self.otype[i] = sym, sign, qty, otype
        self.limit[i], self.stop[i], self.trig_bar[i] = limit, stop, trig_bar
        self.first_bar[i], self.expire_bar[i] = first_bar, expire_bar
        self.aux[i, 0], self.aux[i, 1] = trail, extreme
        self.max_first = max(self.max_first, first_bar)
        self.ext[i] = ext
        self.n += 1

    def keep(self, mask: np.ndarray) -> None:
        """Drop the slots where ``mask`` (length n) is False, preserving order."""
        k = int(mask.sum())
        for name in self._ARRAYS:
            a = getattr(self, name)
            a[:k] = a[: self.n][mask]
        self.ids = [i for i, m in zip(self.ids, mask.tolist(), strict=True) if m]
        self.n = k

    def remove(self, order_id: str) -> None:
        mask = np.ones(self.n, np.bool_)
        mask[self.ids.index(order_id)] = False
        self.keep(mask)


class PaperBroker:
    """A broker that fills orders against historical bars, with no network.

    It satisfies :class:`simbroker.Broker`. Time moves only through :meth:`step` (or
    :meth:`run_until`): each step closes the next bar, fills the open orders that bar
    reaches, expires ``day`` orders whose day is over, and leaves the clock at the bar's
    close, which is when a strategy may look at it and submit new orders.

    Parameters
    ----------
    bars
        The panel to replay (see :func:`simbroker.load_bars`).
    cash
        Starting cash in account currency. Default 100,000.
    slippage
        Basis points (a number, default 5) or a :class:`~simbroker.models.SlippageModel`.
    fees
        Basis points of notional (a number, default 1) or a
        :class:`~simbroker.models.FeeModel`.
    allow_short
        When False, a sell that would take a position below zero is refused at submission
        (counting open sell orders) with :class:`~simbroker.errors.ShortingNotAllowed`,
        and rejected at fill time if the position has shrunk since.
    positions
        Starting positions ``{symbol: qty}``.
    clock
        The :class:`~simbroker.clock.SimulatedClock` to drive (a new one by default); it is
        set to the first bar's open.
    trade_log
        A path or :class:`~simbroker.tradelog.TradeLog`: every event is appended as one
        JSON line. ``None`` (default) keeps no file.
    clip_to_bar
        Clip slipped fill prices into the fill bar's [low, high]. Off by default: real
        slippage is not bounded by the bar.
    session_tz
        Time zone whose calendar dates delimit trading days for ``day`` orders, when the
        bars carry no sessions (ignored when they do: see :mod:`simbroker.sessions`).
    venue
        Whose order rules to enforce where the venues differ: ``None`` (default) the
        strictest of them, ``"alpaca"`` or ``"ibkr"``. Today that is extended hours: a
        limit order only at both (always enforced), and only ``tif="day"`` at Alpaca
        (and by default); IBKR also takes ``gtc`` (``outsideRth``).
    order_id_prefix
        Order ids are this prefix and a counter (``O1``, ``O2``...). A resumed session
        uses a new prefix so ids never repeat within one trade log.
    start_at
        Start with every bar that closed at or before this time already replayed (the
        clock at that bar's close), e.g. to resume a real-time run. Default: before the
        first bar.
    open_orders
        Orders to hold from the start, e.g. those a resumed run carries over: mappings with
        the :meth:`submit_order` arguments (``symbol, side, qty, order_type, limit_price,
        stop_price, tif, client_order_id, extended_hours``) and, for a stop-limit whose stop
        was already hit, ``triggered_at`` (the open time of that bar). They are listed in
        the ``start`` record, so the log holds them from its first line on: a crash can
        never leave a session without the orders it carried over. Groups carry over too: an
        entry's ``order_id`` names it, ``parent_id`` links a child to its parent (or an OCO
        stop leg to its limit leg), ``status="held"`` marks a child still waiting for its
        parent, and a trailing stop's ``trail_extreme`` is its extreme so far.
    both_legs
        Which leg of a bracket or OCO fills when both could fill inside one bar and the
        open gapped through neither: ``"stop"`` (default; the conservative guess) or
        ``"take_profit"``.
    account
        The account's money rules (:mod:`simbroker.accounts`): ``None`` (default) an
        unconstrained account that never refuses for money (a buy beyond the cash
        borrows without limit, a sell goes short for free); ``"margin"`` a Reg T margin
        account (:class:`~simbroker.accounts.MarginAccount`), ``"cash"`` a cash
        account with T+1 settlement (:class:`~simbroker.accounts.CashAccount`), or an
        :class:`~simbroker.accounts.Account` object. Orders beyond its buying power are
        refused at submission (:class:`~simbroker.errors.InsufficientBuyingPower`);
        :meth:`get_account` reports its figures.

    Every change of state is written to the trade log first (write-ahead): when a write
    fails, the call raises :class:`~simbroker.errors.TradeLogError` and the broker is as
    it was before the record (an order not placed, a fill not booked, an order still
    open); a failed :meth:`step` can be called again and goes on where it stopped.

    Examples
    --------
    >>> import simbroker
    >>> bars = simbroker.synthetic_bars(n_symbols=2, n_bars=5, seed=1)
    >>> broker = simbroker.PaperBroker(bars, cash=1_000_000)
    >>> _ = broker.submit_order("SYM001", "buy", 100, "limit", limit_price=1e9)
    >>> broker.step()
    0
    >>> broker.get_positions()
    {'SYM001': 100.0}
    """

    def __init__(
        self,
        bars: Bars,
        *,
        cash: float = 100_000.0,
        slippage: float | SlippageModel | None = 5.0,
        fees: float | FeeModel | None = 1.0,
        allow_short: bool = True,
        positions: Mapping[str, float] | None = None,
        clock: SimulatedClock | None = None,
        trade_log: str | Path | TradeLog | None = None,
        clip_to_bar: bool = False,
        session_tz: str = "UTC",
        order_id_prefix: str = "O",
        start_at: datetime | None = None,
        open_orders: Sequence[Mapping[str, Any]] | None = None,
        both_legs: str = "stop",
        venue: str | None = None,
        account: str | Account | None = None,
    ):
        if not isinstance(bars, Bars):
            raise TypeError(
                f"PaperBroker needs Bars, got {type(bars).__name__}; "
                "try simbroker.load_bars(...) first"
            )
        if len(bars) == 0:
            raise ValueError("PaperBroker needs at least one bar")
        cash = float(cash)
        if not math.isfinite(cash):
            raise ValueError(f"cash must be a finite number, got {cash!r}")
        if both_legs not in ("stop", "take_profit"):
            raise ValueError(f"both_legs must be 'stop' or 'take_profit', got {both_legs!r}")
        self.both_legs = both_legs
        self.bars = bars
        self.slippage = slippage_model(slippage)
        self.fees = fee_model(fees)
        self.allow_short = bool(allow_short)
        self.clip_to_bar = bool(clip_to_bar)
        self._prefix = order_id_prefix
        self._clock = clock if clock is not None else SimulatedClock()
        self._ts = bars.ts_ns
        self._close_ns = bars.close_ns
        self._clock.set(int(self._ts[0]))
        self._t = -1  # index of the latest closed bar
        self._open_px, self._high, self._low = bars.open, bars.high, bars.low
        self._close, self._volume = bars.close, bars.volume
        self._volume_known = bars.volume_known  # False: a bar with a close is tradable
        if venue not in _VENUES:
            raise ValueError(f"venue must be one of {', '.join(map(repr, _VENUES))}, got "
                             f"{venue!r}")
        self.venue = venue
        # Bar -> session lookups; ``_gate`` is set only when some bar is outside regular
        # hours (users without calendars never pay for the check in _match).
        self._sessions = bars.sessions if bars.sessions is not None else date_sessions(
            bars, session_tz)
        lookup = self._sessions._arrays()
        self._gate: tuple[np.ndarray, np.ndarray] | None = None
        if bars.sessions is not None and not bool(lookup["all_regular"].all()):
            self._gate = (self._sessions.regular, lookup["in_day"])
            self._all_regular = lookup["all_regular"]

        self._cash = cash
        self._initial_cash = cash
        self._account: Account | None = None
        self._pos = np.zeros(bars.n_symbols, np.float64)
        for sym, qty in (positions or {}).items():
            if sym not in bars:
                raise InvalidOrder(f"starting position in unknown symbol {sym!r}",
                                   field="positions", value=sym, symbol=sym)
            self._pos[bars.symbol_index(sym)] = float(qty)
        self._initial_positions = self.get_positions()
        if start_at is not None:
            if start_at.tzinfo is None:
                raise ValueError(f"start_at must be tz-aware, got {start_at!r}")
            start_ns = int((start_at - _EPOCH) / timedelta(microseconds=1)) * 1000
            t0 = int(np.searchsorted(self._close_ns, start_ns, side="right")) - 1
            if t0 >= 0:
                self._t = t0
                self._clock.set(int(self._close_ns[t0]))

        self._orders: dict[str, _OrderState] = {}
        self._by_client_id: dict[str, str] = {}
        self._book = _OpenBook()
        self._fills: list[Fill] = []
        self._fill_ns: list[int] = []
        # Per-fill ledger for results: bar index, symbol column, cash and position after.
        self._ledger_bar: list[int] = []
        self._ledger_sym: list[int] = []
        self._ledger_cash: list[float] = []
        self._ledger_pos: list[float] = []
        self._n_orders = 0
        # Splits and dividends still to apply (simbroker.actions._paper), None without.
        sched = broker_schedule(bars)
        self._actions = None if sched is None else PaperActions(sched, self._t + 1)
        self._groups = Groups()
        self._trailing = False  # a trailing stop may be in the book
        self._special = False  # a trailing stop or an auction order was ever booked

        entries = list(open_orders or ())
        carried = [self._carried_order(entry) for entry in entries]
        ids = [o.client_order_id for o, _ in carried if o.client_order_id is not None]
        if len(set(ids)) != len(ids):
            raise InvalidOrder("carried-over orders repeat a client_order_id",
                               field="client_order_id", value=ids)
        self._log: TradeLog | None
        if trade_log is None or isinstance(trade_log, TradeLog):
            self._log = trade_log
        else:
            self._log = TradeLog(trade_log)
        plan, links = plan_carried(
            [(e, o, trig) for e, (o, trig) in zip(entries, carried, strict=True)], self._prefix)
        if self._log is not None:
            extra: dict[str, Any] = {}
            if plan:
                extra["open_orders"] = [_carried_fields(c, self._ts) for c in plan]
            self._log.write("start", self._clock.now(), cash=cash,
                            positions=self._initial_positions, broker="paper",
                            slippage=repr(self.slippage), fees=repr(self.fees), **extra)
        for c in plan:
            state = self._place(c.order, self._clock.now(), _NEVER if c.trig is None else c.trig,
                                held=c.held, extreme=c.extreme)
            state.parent_id, state.group_class, state.legs = c.parent_id, c.group_class, c.legs
        for key, legs, oco, held in links:
            self._groups.link(key, legs, oco=oco, held=held)
        self._account = account_model(account)
        if self._account is not None:
            self._account.bind(self)

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
        order_class: str = "simple",
        take_profit: Mapping[str, float] | None = None,
        stop_loss: Mapping[str, float] | None = None,
        trail_amount: float | None = None,
        trail_percent: float | None = None,
        extended_hours: bool = False,
    ) -> OrderInfo:
        """Accept an order; it trades from the next bar on. See :class:`simbroker.Broker`.

        The order kinds of :class:`simbroker.OrderManagingBroker` are keyword-only
        (``order_class`` with ``take_profit``/``stop_loss``, ``trail_amount`` /
        ``trail_percent``, the tifs ``opg``/``cls``/``ioc``/``fok``); how each fills is in
        this module's table. A bracket/OTO returns its parent, whose ``legs`` are its
        ``held`` children; an OCO returns its limit leg, whose ``legs`` is its stop leg.
        """
        try:
            order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                                 stop_price=stop_price, tif=tif, client_order_id=client_order_id,
                                 order_class=order_class, take_profit=take_profit,
                                 stop_loss=stop_loss, trail_amount=trail_amount,
                                 trail_percent=trail_percent,
                                 extended_hours=extended_hours)
            self._check_venue_rules(order)
            if order.symbol not in self.bars:
                raise InvalidOrder(f"unknown symbol {order.symbol!r}: not in the bars",
                                   field="symbol", value=order.symbol, symbol=order.symbol)
            if order.client_order_id is not None and order.client_order_id in self._by_client_id:
                return self._resubmitted(order)
            col = self.bars.symbol_index(order.symbol)
            if not self.allow_short and order.side is Side.SELL:
                available = self._pos[col] - self._open_sell_qty(col)
                if order.qty > available * (1 + 1e-12) + 1e-12:
                    raise ShortingNotAllowed(order.symbol, position=float(available),
                                             qty=order.qty)
            if self._account is not None:
                self._account.check(order, col)
        except (InsufficientBuyingPower, PatternDayTrading) as exc:
            self._log_rejected(symbol, side, qty, order_type, client_order_id, str(exc),
                               rule=exc.rule)
            raise
        except InvalidOrder as exc:
            self._log_rejected(symbol, side, qty, order_type, client_order_id, str(exc))
            raise
        except ShortingNotAllowed as exc:
            self._log_rejected(symbol, side, qty, order_type, client_order_id, str(exc),
                               rule="allow_short")
            raise

        now = self._clock.now()
        legs = order.leg_orders()
        if self._log is not None:
            n = self._n_orders
            extra = {"legs": [f"{self._prefix}{n + k}" for k in range(2, len(legs) + 2)]} \
                if legs else {}
            self._log.write("submitted", now, order_id=f"{self._prefix}{n + 1}",
                            **_order_fields(order), **extra)
        state = self._place(order, now, _NEVER)
        if legs:
            self._place_legs(state, legs, now, held=order.order_class is not OrderClass.OCO)
        return state.info()

    def _place_legs(self, state: _OrderState, legs: list[Order], now: datetime, *,
                    held: bool) -> None:
        """Book a group's legs right after its key order (records already written)."""
        children = [self._place(leg, now, _NEVER, held=held) for leg in legs]
        for child in children:
            child.parent_id = state.order_id
            child.group_class = state.order.order_class.value
        state.legs = [c.order_id for c in children]
        self._groups.link(state.order_id, state.legs,
                          oco=state.order.order_class is OrderClass.OCO, held=held)

    def _place(self, order: Order, now: datetime, trig_bar: int, *, first: int | None = None,
               held: bool = False, extreme: float | None = None) -> _OrderState:
        """Book an accepted order (its record is already written).

        ``first`` is the first bar it may trade on (default: the next bar); a ``held``
        order is only listed (its parent's fill puts it in the book); ``extreme`` is a
        carried-over trailing stop's extreme.
        """
        self._n_orders += 1
        order_id = f"{self._prefix}{self._n_orders}"
        state = _OrderState(order_id, order, now)
        self._orders[order_id] = state
        if order.client_order_id is not None:
            self._by_client_id[order.client_order_id] = order_id
        if held:
            state.status = OrderStatus.HELD
            return state
        self._book_order(state, self._t + 1 if first is None else first, trig_bar, extreme)
        return state

    def _book_order(self, state: _OrderState, first: int, trig_bar: int,
                    extreme: float | None) -> None:
        """Put an order into the book from bar ``first`` on, by its kind and tif."""
        order = state.order
        tif = order.tif
        code = _TYPE_CODE.get(order.order_type, 0)
        col = self.bars.symbol_index(order.symbol)
        if tif is TimeInForce.OPG:
            first, code = self._session_open_bar(self._t + 1, col), AT_OPEN
        elif tif is TimeInForce.CLS and first < len(self._ts):
            first, code = self._session_close_bar(first, col), AT_CLOSE
        if first >= len(self._ts) or tif is TimeInForce.GTC:
            expire = _NEVER
        elif tif is TimeInForce.DAY:
            first, expire = self._sessions.order_window(
                self._clock.ns, first, col, order.extended_hours)
            first, expire = int(first), int(expire)
        else:  # opg, cls: their auction's bar; ioc, fok: the next bar only
            expire = first
        trail = np.nan
        if order.order_type is OrderType.TRAILING_STOP:
            code = TRAIL_AMOUNT if order.trail_amount is not None else TRAIL_PERCENT
            trail = order.trail_amount if order.trail_amount is not None else \
                float(order.trail_percent or 0.0)
            if extreme is None:
                extreme = self._last_price(col)
            state.trail_extreme = extreme
            self._trailing = True
        if code >= TRAIL_AMOUNT:
            self._special = True
        self._book.add(
            state.order_id, col, float(order.side.sign), order.qty, code,
            np.nan if order.limit_price is None else order.limit_price,
            np.nan if order.stop_price is None else order.stop_price, first, expire, trig_bar,
            trail, np.nan if extreme is None else extreme, order.extended_hours,
        )

    def _last_price(self, col: int) -> float:
        """The last close the strategy saw for column ``col`` (a trailing stop's start).

        The close of the latest closed bar, else the latest earlier close; before any
        close, the next open.
        """
        closes = self._close[: self._t + 1, col]
        seen = np.flatnonzero(np.isfinite(closes))
        if len(seen):
            return float(closes[seen[-1]])
        opens = self._open_px[self._t + 1:, col]
        ahead = np.flatnonzero(np.isfinite(opens))
        return float(opens[ahead[0]]) if len(ahead) else float("nan")

    def _carried_order(self, entry: Mapping[str, Any]) -> tuple[Order, int | None]:
        """An order to hold from the start, and the bar its stop triggered on (if any)."""
        leg = entry.get("parent_id") is not None  # a leg's own order is simple
        order = Order.create(entry["symbol"], entry["side"], entry["qty"],
                             entry.get("order_type", "market"),
                             limit_price=entry.get("limit_price"),
                             stop_price=entry.get("stop_price"), tif=entry.get("tif", "day"),
                             client_order_id=entry.get("client_order_id"),
                             order_class="simple" if leg else entry.get("order_class", "simple"),
                             take_profit=None if leg else entry.get("take_profit"),
                             stop_loss=None if leg else entry.get("stop_loss"),
                             trail_amount=entry.get("trail_amount"),
                             trail_percent=entry.get("trail_percent"),
                             extended_hours=entry.get("extended_hours", False))
        if order.symbol not in self.bars:
            raise InvalidOrder(f"carried-over order in unknown symbol {order.symbol!r}",
                               field="symbol", value=order.symbol, symbol=order.symbol)
        when = entry.get("triggered_at")
        trig: int | None = None
        if when is not None and order.order_type is OrderType.STOP_LIMIT:
            if not isinstance(when, datetime) or when.tzinfo is None:
                raise InvalidOrder(f"triggered_at must be a tz-aware datetime, got {when!r}",
                                   field="triggered_at", value=when, symbol=order.symbol)
            ns = int((when - _EPOCH) / timedelta(microseconds=1)) * 1000
            trig = max(0, int(np.searchsorted(self._ts, ns, side="right")) - 1)
        return order, trig

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel an open order; a final order is returned unchanged (idempotent)."""
        state = self._orders.get(order_id)
        if state is None:
            raise UnknownOrder(order_id)
        if state.status.is_open:
            now = self._clock.now()
            held = state.status is OrderStatus.HELD
            self._finish(state, OrderStatus.CANCELED, None, now)
            if not held:
                self._book.remove(order_id)
            if self._groups.pending:
                self._settle(now)
        return state.info()

    def get_positions(self) -> dict[str, float]:
        """Open positions ``{symbol: signed qty}``; flat symbols are left out."""
        syms = self.bars.symbols
        return {syms[i]: float(self._pos[i]) for i in np.flatnonzero(self._pos)}

    def get_cash(self) -> float:
        """Cash balance (negative when the account borrowed to buy)."""
        return self._cash

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """Fills in time order; with ``since``, those at or after it (inclusive)."""
        if since is None:
            return list(self._fills)
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC); got a naive datetime")
        ns = int((since - _EPOCH) / timedelta(microseconds=1)) * 1000
        i = bisect.bisect_left(self._fill_ns, ns)
        return self._fills[i:]

    def now(self) -> datetime:
        """The simulated time: the close of the latest closed bar (or the first open)."""
        return self._clock.now()

    # --------------------------------------------------------------- extras
    def get_account(self) -> AccountInfo:
        """The account now: cash, equity, buying power, margin, settlement, day trades.

        Positions are valued at each symbol's last close. See
        :class:`~simbroker.types.AccountInfo` and :mod:`simbroker.accounts`; without an
        ``account`` the figures are those of an unconstrained account (buying power
        ``inf``, no margin).
        """
        if self._account is not None:
            return self._account.info()
        return unconstrained_info(self._cash, self._pos, last_closes(self._close, self._t))

    def get_order(self, order_id: str) -> OrderInfo:
        """The current state of one order."""
        state = self._orders.get(order_id)
        if state is None:
            raise UnknownOrder(order_id)
        return state.info()

    def get_orders(self, *, open_only: bool = False) -> list[OrderInfo]:
        """Every order in submission order, or only the open ones."""
        return [s.info() for s in self._orders.values() if not open_only or s.status.is_open]

    @property
    def clock(self) -> SimulatedClock:
        """The simulated clock this broker drives."""
        return self._clock

    @property
    def bar_index(self) -> int:
        """Index of the latest closed bar (-1 before the first :meth:`step`)."""
        return self._t

    @property
    def has_next(self) -> bool:
        """True while there are bars left to replay."""
        return self._t + 1 < len(self._ts)

    @property
    def account(self) -> Account | None:
        """The account model (``None``: unconstrained); see :mod:`simbroker.accounts`."""
        return self._account

    @property
    def initial_cash(self) -> float:
        """Cash at construction."""
        return self._initial_cash

    @property
    def initial_positions(self) -> dict[str, float]:
        """Positions at construction."""
        return dict(self._initial_positions)

    @property
    def trade_log(self) -> TradeLog | None:
        """The trade log being written, if any."""
        return self._log

    def position_array(self) -> np.ndarray:
        """Positions as a read-only array aligned with ``bars.symbols`` (fast path)."""
        view: np.ndarray = self._pos.view()
        view.setflags(write=False)
        return view

    def step(self) -> int:
        """Close the next bar: fill what it reaches, expire finished day orders.

        Returns the index of the bar that closed; the clock then reads its close time.
        Raises :class:`~simbroker.errors.ClockError` when every bar has been replayed.
        When a trade-log write fails (:class:`~simbroker.errors.TradeLogError`) the bar
        does not close: what was recorded stays done, and calling :meth:`step` again
        matches the same bar, booking only the rest.
        """
        t = self._t + 1
        if t >= len(self._ts):
            raise ClockError(f"all {len(self._ts)} bars have been replayed")
        book = self._book
        if self._groups.pending:  # left by a failed write: finish before the next bar
            self._settle(self._clock.now())
        acts = self._actions
        if acts is not None and acts.due(t):  # splits and dividends, before bar t trades
            self._clock._set_ns_unchecked(int(self._ts[t]))
            acts.apply(self, t)
        if book.n:
            self._clock._set_ns_unchecked(int(self._ts[t]))
            self._match(t)
        self._clock._set_ns_unchecked(int(self._close_ns[t]))
        if book.n:
            expired = book.expire_bar[: book.n] <= t
            if expired.any():
                self._expire(expired)
        if self._trailing:
            self._trail(t)
        self._t = t
        if self._account is not None:  # its fills, settlement, margin calls
            self._account.on_bar_close(t)
        return t

    def run_until(self, when: datetime) -> int:
        """Step through every bar that closes at or before ``when``; return the last index."""
        ns = int((when - _EPOCH) / timedelta(microseconds=1)) * 1000
        while self.has_next and self._close_ns[self._t + 1] <= ns:
            self.step()
        return self._t

    def close(self) -> None:
        """Close the trade log (if this broker opened it)."""
        if self._log is not None:
            self._log.close()

    def __repr__(self) -> str:
        return (f"PaperBroker({self.bars.n_symbols} symbols, bar {self._t + 1}/{len(self._ts)}, "
                f"cash={self._cash:,.2f}, slippage={self.slippage!r}, fees={self.fees!r})")

    # ------------------------------------------------------------- matching
    def _match(self, t: int) -> None:
        book = self._book
        n = book.n
        if book.max_first <= t:  # the common case: every order may trade
            elig = np.arange(n)
        else:
            elig = np.flatnonzero(book.first_bar[:n] <= t)
            if len(elig) == 0:
                return
        s = book.sym[elig]
        o = self._open_px[t, s]
        v = self._volume[t, s]
        # NaN volume or close (no bar) compares False
        tradable = v > 0 if self._volume_known else ~np.isnan(self._close[t, s])
        if self._gate is not None and not self._all_regular[t]:
            tradable &= self._in_hours(t, elig, s)
        otype = book.otype[elig]
        market = otype == 0
        newly: np.ndarray | None = None
        if market.all():  # the common case: one comparison decides
            fill = tradable
            ref = o
            lim = None
        else:
            fill, ref, lim, newly = self._match_priced(t, elig, s, o, tradable, otype, market)
            if self._groups.live and fill.any():
                fill = one_leg_per_group(
                    self._groups.live, book.ids, elig, fill, otype, book.sign[elig] > 0, o,
                    book.limit[elig], book.stop[elig], self.both_legs)
        if not fill.any():
            if newly is not None:
                self._book_bar(t, elig[:0], o[:0], o[:0], o[:0], newly)
            return
        fi = np.flatnonzero(fill)
        slot = elig[fi]
        sgn, qty, refp = book.sign[slot], book.qty[slot], ref[fi]
        sf = s[fi]
        ctx = BarContext(open=o[fi], high=self._high[t, sf], low=self._low[t, sf],
                         close=self._close[t, sf], volume=v[fi])
        price = refp * (1.0 + sgn * self.slippage.rate(sgn, qty, refp, ctx))
        if lim is not None:
            lf = lim[fi]
            limited = ~np.isnan(lf)
            if limited.any():
                capped = np.where(sgn > 0, np.minimum(price, lf), np.maximum(price, lf))
                price = np.where(limited, capped, price)
        if self.clip_to_bar:
            price = np.clip(price, ctx.low, ctx.high)
        fee = self.fees.fees(sgn, qty, price)
        self._book_bar(t, slot, qty, price, fee, newly)

    def _match_priced(
        self, t: int, elig: np.ndarray, s: np.ndarray, o: np.ndarray, tradable: np.ndarray,
        otype: np.ndarray, market: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Fill mask, reference prices, limits and the slots of stop-limits triggered now.

        Nothing is changed here: a trigger is booked with the bar's fills, after its
        record. "Triggered" means triggered on an earlier bar, so matching a bar again
        (after a failed write, or a resume) decides exactly as the first time.
        """
        book = self._book
        h = self._high[t, s]
        lo = self._low[t, s]
        buy = book.sign[elig] > 0
        lim = book.limit[elig]
        stp = book.stop[elig]
        was_triggered = book.trig_bar[elig] < t

        stop_like = ((otype == 2) | (otype == 3)) if self._special else otype >= 2
        trig_now = stop_like & ~was_triggered & tradable & np.where(buy, h >= stp, lo <= stp)
        gapped = np.where(buy, o >= stp, o <= stp)
        ref = np.where(market, o, np.nan)
        stop_fill = (otype == 2) & trig_now
        ref = np.where(stop_fill, np.where(buy, np.maximum(o, stp), np.minimum(o, stp)), ref)
        limit_live = (otype == 1) | ((otype == 3) & (was_triggered | (trig_now & gapped)))
        limit_hit = limit_live & tradable & np.where(buy, lo <= lim, h >= lim)
        ref = np.where(limit_hit, np.where(buy, np.minimum(o, lim), np.maximum(o, lim)), ref)
        # Stop-limit hit inside the bar: marketable at the stop when the stop is within
        # the limit; otherwise it must wait (the path after the trigger is unknown).
        sl_inside = (otype == 3) & trig_now & ~gapped & np.where(buy, stp <= lim, stp >= lim)
        ref = np.where(sl_inside, stp, ref)
        fill = (market & tradable) | stop_fill | limit_hit | sl_inside
        if self._special:  # a trailing stop or an auction order was ever booked
            special = otype >= TRAIL_AMOUNT
            if special.any():
                fill, ref = self._match_special(t, elig, s, o, h, lo, tradable, otype, buy,
                                                lim, special, fill, ref)
        # Stop-limits that triggered without filling rest as limits from the next bar.
        newly = trig_now & (otype == 3) & ~fill
        return fill, ref, lim, elig[newly] if newly.any() else None

    def _match_special(
        self, t: int, elig: np.ndarray, s: np.ndarray, o: np.ndarray, h: np.ndarray,
        lo: np.ndarray, tradable: np.ndarray, otype: np.ndarray, buy: np.ndarray,
        lim: np.ndarray, special: np.ndarray, fill: np.ndarray, ref: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``fill`` and ``ref`` with the trailing stops and auction orders matched in."""
        trailing = special & (otype <= TRAIL_PERCENT)
        if trailing.any():
            aux = self._book.aux[elig]
            level = trail_levels(buy, otype == TRAIL_PERCENT, aux[:, 0], aux[:, 1])
            hit, tref = trail_fill(buy, level, o, h, lo, tradable)
            fill = fill | (trailing & hit)
            ref = np.where(trailing, tref, ref)
        auction = special & (otype >= AT_OPEN)
        if auction.any():
            hit, aref = auction_fill(otype, buy, lim, o, self._close[t, s], tradable)
            fill = fill | (auction & hit)
            ref = np.where(auction, aref, ref)
        return fill, ref

    def _book_bar(self, t: int, slots: np.ndarray, qty: np.ndarray, price: np.ndarray,
                  fee: np.ndarray, triggered: np.ndarray | None) -> None:
        """Book a bar's fills, then its stop-limit triggers, each after its record.

        If a write fails, what was booked stays booked (and recorded), the rest stays open
        exactly as before the bar, and the error propagates: matching the bar again books
        the rest, never a fill twice.
        """
        book = self._book
        now = self._clock.now()
        ts_ns = int(self._ts[t])
        done = np.zeros(book.n, np.bool_)
        try:
            for slot, q, px, f in zip(slots.tolist(), qty.tolist(), price.tolist(),
                                       fee.tolist(), strict=True):
                self._book_fill(t, slot, q, px, f, now, ts_ns)
                done[slot] = True
            if triggered is not None:
                for slot in triggered.tolist():
                    if book.trig_bar[slot] == t:
                        continue  # recorded by an earlier attempt at this bar
                    if self._log is not None:
                        state = self._orders[book.ids[slot]]
                        self._log.write("triggered", now, order_id=state.order_id,
                                        symbol=state.order.symbol, bar=now)
                    book.trig_bar[slot] = t
        finally:
            if done.any():
                book.keep(~done)
        if self._groups.pending:
            self._settle(now)

    def _book_fill(self, t: int, slot: int, q: float, px: float, f: float, now: datetime,
                   ts_ns: int) -> None:
        book = self._book
        order_id = book.ids[slot]
        state = self._orders[order_id]
        order = state.order
        col = int(book.sym[slot])
        pos = float(self._pos[col])
        if not self.allow_short and order.side is Side.SELL and q > pos * (1 + 1e-12) + 1e-12:
            self._finish(state, OrderStatus.REJECTED,
                         f"shorting is not allowed: selling {q:g} {order.symbol} against a "
                         f"position of {pos:g}", now)
            return
        notional = q * px
        fill = Fill(
            fill_id=f"{order_id}-1", order_id=order_id,
            client_order_id=order.client_order_id, timestamp=now, symbol=order.symbol,
            side=order.side.value, qty=q, price=px, fee=f, notional=notional,
        )
        if self._log is not None:
            self._log.write("filled", now, **fill)
        self._cash = cash_after_fill(self._cash, order.side.value, notional, f)
        new_pos = position_after_fill(pos, order.side.value, q)
        self._pos[col] = new_pos
        state.filled_qty += q
        state.filled_notional += notional
        self._fills.append(fill)
        self._fill_ns.append(ts_ns)
        self._ledger_bar.append(t)
        self._ledger_sym.append(col)
        self._ledger_cash.append(self._cash)
        self._ledger_pos.append(new_pos)
        state.status = OrderStatus.FILLED
        if self._groups.children and order_id in self._groups:
            self._groups.on_fill(order_id, t, state.filled_qty, self._is_open)

    def _expire(self, expired: np.ndarray) -> None:
        book = self._book
        now = self._clock.now()
        done = np.zeros(book.n, np.bool_)
        try:
            for slot in np.flatnonzero(expired).tolist():
                state = self._orders[book.ids[slot]]
                tif = state.order.tif
                if tif in (TimeInForce.DAY, TimeInForce.GTC):
                    self._finish(state, OrderStatus.EXPIRED,
                                 "day order not filled by the session end", now)
                else:
                    self._finish(state, OrderStatus.CANCELED, _UNFILLED[tif], now)
                done[slot] = True
        finally:
            if done.any():
                book.keep(~done)
        if self._groups.pending:
            self._settle(now)

    def _finish(self, state: _OrderState, status: OrderStatus, reason: str | None,
                now: datetime) -> None:
        """Record, then set, an order's final status (the caller takes it off the book)."""
        if self._log is not None:
            event = {OrderStatus.CANCELED: "canceled", OrderStatus.EXPIRED: "expired",
                     OrderStatus.REJECTED: "rejected"}[status]
            extra: dict[str, Any] = {}
            if status is OrderStatus.REJECTED:
                o = state.order
                extra = dict(client_order_id=o.client_order_id, side=o.side.value, qty=o.qty,
                             order_type=o.order_type.value)
            self._log.write(event, now, order_id=state.order_id, symbol=state.order.symbol,
                            reason=reason, **extra)
        state.status = status
        state.reason = reason
        if self._groups.children and state.order_id in self._groups:
            self._groups.on_final(state.order_id, status.value, self._is_open)

    # ---------------------------------------------------------- order kinds
    def _is_open(self, order_id: str) -> bool:
        return self._orders[order_id].status.is_open

    def _settle(self, now: datetime) -> None:
        """Perform the group actions fills and final statuses queued, each after its record.

        An activated child joins the book from its ``first_bar`` (the bar after its
        parent's fill) sized to the parent's filled quantity; a canceled sibling or child
        leaves it. On a failed write the action and those after it stay queued.
        """
        groups = self._groups
        while groups.pending:
            action = groups.pending[0]
            state = self._orders[action.order_id]
            if not state.status.is_open:
                groups.pending.pop(0)
                continue
            if action.kind == "activate":
                if state.status is OrderStatus.HELD:
                    qty = min(action.qty, state.order.qty) if action.qty > 0 else state.order.qty
                    if self._log is not None:
                        self._log.write("activated", now, order_id=state.order_id,
                                        symbol=state.order.symbol, qty=qty,
                                        parent_id=state.parent_id)
                    if qty != state.order.qty:
                        state.order = dataclasses.replace(state.order, qty=qty)
                    state.status = OrderStatus.NEW
                    self._book_order(state, action.first_bar, _NEVER, None)
                    groups.activated(state.order_id)
            else:
                held = state.status is OrderStatus.HELD
                self._finish(state, OrderStatus.CANCELED, action.reason, now)
                if not held:
                    self._book.remove(state.order_id)
            groups.pending.pop(0)

    def _trail(self, t: int) -> None:
        """Fold bar ``t`` into the open trailing stops' extremes, each after its record."""
        book = self._book
        n = book.n
        rows = np.flatnonzero((book.otype[:n] == TRAIL_AMOUNT) | (book.otype[:n] == TRAIL_PERCENT))
        if len(rows) == 0:
            self._trailing = False
            return
        rows = rows[book.first_bar[rows] <= t]
        s = book.sym[rows]
        buy = book.sign[rows] > 0
        old = book.aux[rows, 1]
        new = trailed_extremes(buy, old, self._high[t, s], self._low[t, s],
                               self._volume[t, s] > 0)
        moved = np.flatnonzero(new != old)
        if len(moved) == 0:
            return
        now = self._clock.now()
        if self._log is not None:
            level = trail_levels(buy[moved], book.otype[rows[moved]] == TRAIL_PERCENT,
                                 book.aux[rows[moved], 0], new[moved])
            for i, lv in zip(moved.tolist(), level.tolist(), strict=True):
                state = self._orders[book.ids[int(rows[i])]]
                self._log.write("trailed", now, order_id=state.order_id,
                                symbol=state.order.symbol, trail_extreme=float(new[i]),
                                stop_price=lv)
        book.aux[rows[moved], 1] = new[moved]
        for i in moved.tolist():
            self._orders[book.ids[int(rows[i])]].trail_extreme = float(new[i])

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
        """Change an open order in place from the next bar on; see
        :meth:`simbroker.OrderManagingBroker.replace_order`.

        The ``order_id`` stays, fills already made stay, and the order keeps its place in
        time (a stop-limit that triggered stays triggered, a trailing stop keeps its
        extreme and recomputes its level from it with the new trail). A held child can be
        replaced before its parent fills. Refused with
        :class:`~simbroker.errors.ReplaceRejected` (nothing changes, and the refusal is
        logged) when the order is no longer open or the change is invalid.
        """
        state = self._orders.get(order_id)
        if state is None:
            raise UnknownOrder(order_id)
        changes = dict(qty=qty, limit_price=limit_price, stop_price=stop_price,
                       trail_amount=trail_amount, trail_percent=trail_percent, tif=tif)
        try:
            if not state.status.is_open:
                raise ReplaceRejected(
                    order_id, f"the order is {state.status.value}, no longer open",
                    status=state.status.value, symbol=state.order.symbol,
                    client_order_id=state.order.client_order_id)
            new = replaced_order(order_id, state.order, state.filled_qty,
                                 in_group=order_id in self._groups, **changes)
            col = self.bars.symbol_index(new.symbol)
            if not self.allow_short and new.side is Side.SELL and new.qty > state.order.qty \
                    and state.status is not OrderStatus.HELD:
                available = self._pos[col] - self._open_sell_qty(col) + state.order.qty
                if new.qty > available * (1 + 1e-12) + 1e-12:
                    raise ReplaceRejected(
                        order_id, f"shorting is not allowed: selling {new.qty:g} "
                        f"{new.symbol} against a position of {available:g} (net of open "
                        "sell orders) would go short", field="qty", symbol=new.symbol,
                        client_order_id=new.client_order_id)
        except ReplaceRejected as exc:
            if self._log is not None:
                self._log.write("replace_rejected", self._clock.now(), order_id=order_id,
                                symbol=state.order.symbol, reason=exc.reason)
            raise
        now = self._clock.now()
        if self._log is not None:
            given = {k for k, v in changes.items() if v is not None}
            if given & {"trail_amount", "trail_percent"}:  # one trail replaces the other
                given |= {"trail_amount", "trail_percent"}
            after = {"qty": new.qty, "limit_price": new.limit_price,
                     "stop_price": new.stop_price, "trail_amount": new.trail_amount,
                     "trail_percent": new.trail_percent, "tif": new.tif.value}
            self._log.write("replaced", now, order_id=order_id, symbol=new.symbol,
                            **{k: after[k] for k in sorted(given)})
        old, state.order = state.order, new
        if state.status is not OrderStatus.HELD:
            self._rebook(state, old)
        if new.qty != old.qty:  # a parent's held children follow its quantity
            for child in state.legs:
                c = self._orders[child]
                if c.status is OrderStatus.HELD and c.parent_id == order_id:
                    c.order = dataclasses.replace(c.order, qty=new.qty)
        return state.info()

    def _rebook(self, state: _OrderState, old: Order) -> None:
        """Write a replaced order's new fields into its book slot."""
        book = self._book
        slot = book.ids.index(state.order_id)
        new = state.order
        book.qty[slot] = new.qty
        book.limit[slot] = np.nan if new.limit_price is None else new.limit_price
        book.stop[slot] = np.nan if new.stop_price is None else new.stop_price
        if new.order_type is OrderType.TRAILING_STOP:
            pct = new.trail_percent is not None
            book.otype[slot] = TRAIL_PERCENT if pct else TRAIL_AMOUNT
            book.aux[slot, 0] = new.trail_percent if pct else new.trail_amount
        if new.tif is not old.tif:
            first = max(int(book.first_bar[slot]), self._t + 1)
            book.expire_bar[slot] = _NEVER if new.tif is TimeInForce.GTC or first >= len(
                self._ts) else (first if new.tif in (TimeInForce.IOC, TimeInForce.FOK)
                                else self._session_close_bar(first, int(book.sym[slot]),
                                             new.extended_hours))

    # -------------------------------------------------------------- sessions
    def _session_close_bar(self, t: int, col: int, extended: bool = False) -> int:
        """Last bar an order in column ``col`` that can first trade on bar ``t`` may trade
        on that session: the session's last regular bar (the next session's when ``t`` is
        past the close), or with ``extended`` the trading day's last bar. ``_NEVER`` if
        there is none. Without sessions: the last bar of ``t``'s date in ``session_tz``."""
        return int(self._sessions.close_bar(t, col, extended))

    def _session_open_bar(self, t: int, col: int) -> int:
        """The first bar at or after ``t`` that opens a session's regular hours in column
        ``col`` (an opening auction's bar); ``_NEVER`` if there is none."""
        return int(self._sessions.open_bar(t, col))

    def _in_hours(self, t: int, elig: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Whether each eligible order may trade on bar ``t``: a regular-hours bar of its
        symbol's calendar, or for an extended-hours order any bar of a trading day."""
        assert self._gate is not None
        regular, in_day = self._gate
        g = self._sessions.columns[s]
        out: np.ndarray = np.where(self._book.ext[elig], in_day[t, g], regular[t, g])
        return out

    def _check_venue_rules(self, order: Order) -> None:
        """Refuse what the venue ``venue`` refuses (see the class docstring)."""
        if order.extended_hours and order.tif is not TimeInForce.DAY and self.venue != "ibkr":
            raise InvalidOrder(
                f"an extended-hours order for {order.symbol} must be tif='day' (Alpaca's "
                f"rule, enforced {'for' if self.venue else 'by default, the strictest of'} "
                f"the venues; PaperBroker(venue='ibkr') takes IBKR's, which allows "
                f"{order.tif.value})", field="tif", value=order.tif.value,
                symbol=order.symbol)

    # --------------------------------------------------------------- helpers
    def _open_sell_qty(self, col: int) -> float:
        book = self._book
        n = book.n
        mask = (book.sym[:n] == col) & (book.sign[:n] < 0)
        total = float(book.qty[:n][mask].sum())
        if self._groups.live:  # the live legs of one group sell the position once
            total -= self._groups_overlap(col, mask)
        return total

    def _groups_overlap(self, col: int, mask: np.ndarray) -> float:
        """Sell quantity counted twice by live sibling legs in column ``col``."""
        book = self._book
        by_key: dict[str, list[float]] = {}
        for slot in np.flatnonzero(mask).tolist():
            key = self._groups.live.get(book.ids[slot])
            if key is not None:
                by_key.setdefault(key, []).append(float(book.qty[slot]))
        return sum(sum(q) - max(q) for q in by_key.values())

    def _resubmitted(self, order: Order) -> OrderInfo:
        assert order.client_order_id is not None
        state = self._orders[self._by_client_id[order.client_order_id]]
        if state.order != order:
            raise InvalidOrder(
                f"client_order_id {order.client_order_id!r} was already used for a different "
                f"order ({state.order_id}: {state.order.side.value} {state.order.qty:g} "
                f"{state.order.symbol} {state.order.order_type.value})",
                field="client_order_id", value=order.client_order_id, symbol=order.symbol,
                client_order_id=order.client_order_id,
            )
        return state.info()

    def _log_rejected(self, symbol: Any, side: Any, qty: Any, order_type: Any,
                      client_order_id: Any, reason: str, rule: str | None = None) -> None:
        if self._log is None:
            return
        def short(text: str) -> str:  # a refused argument may be megabytes of text
            return text if len(text) <= 200 else f"{text[:80]}... ({len(text):,} chars)"

        def plain(x: Any) -> Any:
            if x is None or isinstance(x, bool):
                return x
            if isinstance(x, int):
                # JSON (and str()) refuse ints of more than 4,300 digits: describe those.
                return x if x.bit_length() <= 63 else (
                    f"an integer of about {int(x.bit_length() * 0.30103) + 1:,} digits")
            if isinstance(x, str):
                return short(x)
            if isinstance(x, float):
                return x if math.isfinite(x) else repr(x)
            try:
                return short(repr(x))
            except Exception:  # a hostile __repr__ must not hide the refusal
                return f"<{type(x).__name__}>"
        extra = {} if rule is None else {"rule": rule}
        self._log.write("rejected", self._clock.now(), order_id=None,
                        client_order_id=plain(client_order_id), symbol=plain(symbol),
                        side=plain(side), qty=plain(qty), order_type=plain(order_type),
                        reason=short(reason), **extra)


def _order_fields(order: Order) -> dict[str, Any]:
    """An order's fields as the ``submitted`` record (and a carried-over order) holds them.

    The fields of the order kinds are there when set (a plain order's record is as before).
    """
    fields: dict[str, Any] = {
        "client_order_id": order.client_order_id, "symbol": order.symbol,
        "side": order.side.value, "qty": order.qty, "order_type": order.order_type.value,
        "limit_price": order.limit_price, "stop_price": order.stop_price,
        "tif": order.tif.value}
    if order.extended_hours:
        fields["extended_hours"] = True
    if order.order_class is not OrderClass.SIMPLE:
        fields["order_class"] = order.order_class.value
    if order.take_profit is not None:
        fields["take_profit"] = order.take_profit.to_dict()
    if order.stop_loss is not None:
        fields["stop_loss"] = order.stop_loss.to_dict()
    if order.trail_amount is not None:
        fields["trail_amount"] = order.trail_amount
    if order.trail_percent is not None:
        fields["trail_percent"] = order.trail_percent
    return fields


def _carried_fields(c: Carried, ts: np.ndarray) -> dict[str, Any]:
    """A carried-over order as the ``start`` record lists it (new ids, links, state)."""
    fields: dict[str, Any] = {"order_id": c.new_id, **_order_fields(c.order)}
    if c.trig is not None:
        fields["triggered_at"] = _dt(int(ts[c.trig]))
    if c.group_class is not None:
        fields["order_class"] = c.group_class
    if c.parent_id is not None:
        fields["parent_id"] = c.parent_id
    if c.legs:
        fields["legs"] = list(c.legs)
    if c.held:
        fields["status"] = OrderStatus.HELD.value
    if c.extreme is not None:
        fields["trail_extreme"] = c.extreme
    return fields


def _trail_level(order: Order, extreme: float) -> float:
    """A trailing stop's level from its extreme (see :func:`trail_levels`)."""
    pct = order.trail_percent is not None
    trail = order.trail_percent if pct else order.trail_amount
    return float(trail_levels(np.array([order.side is Side.BUY]), np.array([pct]),
                              np.array([float(trail or 0.0)]), np.array([extreme]))[0])


def _session_ends(bars: Bars, session_tz: str) -> np.ndarray:
    """For each bar, the index of the last bar of its trading day."""
    days = bars.index.tz_convert(session_tz).normalize()
    codes = pd.factorize(days)[0]
    # Sorted timestamps give non-decreasing day codes: the last bar of a day is where the
    # code changes next.
    change = np.flatnonzero(np.diff(codes)) if len(codes) > 1 else np.array([], np.int64)
    ends = np.append(change, len(codes) - 1)
    return np.asarray(ends[np.searchsorted(ends, np.arange(len(codes)))], np.int64)
