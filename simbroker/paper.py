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
are whole here, so fok is ioc, unless ``max_volume_share`` caps them. Sessions are the
trading days ``day`` orders expire on.

With ``max_volume_share=s`` the orders of a symbol take at most ``s * volume`` of a bar
together, in book order (:mod:`simbroker._paper_volume`); an order left with a remainder
is ``partially_filled`` and trades on (a triggered stop or trailing stop as a market
order, a stop-limit as its limit) until it fills, expires or is canceled, each part a
``Fill`` ``"<order_id>-<k>"`` charged by :meth:`~simbroker.models.FeeModel.order_fees`. A
fok fills whole or not at all; an ioc or auction order cancels its rest after its bar.

Bracket/OTO exits are ``held`` until their entry fills on bar ``t`` and trade from
``t + 1``; OCO legs are live at once. Exactly one leg of a group fills (the others are
canceled): a leg the open gaps through fills at the open, otherwise when two legs could
fill inside one bar the stop leg does (``both_legs="stop"``, the default) or the
take-profit (``both_legs="take_profit"``). The group logic is in
:mod:`simbroker._paper_groups`, trailing and auction matching in
:mod:`simbroker._paper_kinds`, replace checks in :mod:`simbroker._replace`.

The broker's own parts are one module each: the open book (:mod:`simbroker._paper_book`),
order state and ``OrderInfo`` (:mod:`simbroker._paper_state`), placing orders in the book
(:mod:`simbroker._paper_place`), submission checks (:mod:`simbroker._paper_checks`),
``submit_order`` and its fast path (:mod:`simbroker._paper_submit`),
matching a bar (:mod:`simbroker._paper_match`) and booking its outcomes
(:mod:`simbroker._paper_booking`).

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
symbols; Python only loops over the fills that happened, to book them in order. A small
book (at most :data:`~simbroker._paper_match.SMALL_BOOK` plain orders) is matched order by
order in Python floats instead, where numpy's per-call cost would dominate; both paths
make the same comparisons and float operations in the same order, so fills are
bit-identical whichever runs.

Bars carrying corporate actions (``bars.actions``, see :mod:`simbroker.actions`) have
their splits and dividends applied before the bar they take effect on trades: splits
multiply positions and open orders, dividends move cash on the pay date
(:mod:`simbroker.actions._paper`).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from array import array
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from itertools import compress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simbroker._paper_base import EPOCH, NEVER_BAR
from simbroker._paper_book import OpenBook
from simbroker._paper_carry import plan_carried
from simbroker._paper_fills import FillLog
from simbroker._paper_groups import Groups
from simbroker._paper_kinds import (
    replaced_order,
)
from simbroker._paper_match import Matching
from simbroker._paper_state import OrderState, carried_fields
from simbroker._paper_submit import Submitting
from simbroker._paper_volume import check_share
from simbroker._replace import weigh_replacement
from simbroker.accounts import Account, account_model, unconstrained_info
from simbroker.accounts._marks import last_closes
from simbroker.actions._paper import PaperActions, broker_schedule
from simbroker.bars import Bars
from simbroker.clock import SimulatedClock
from simbroker.errors import (
    ClockError,
    InvalidOrder,
    ReplaceRejected,
    UnknownOrder,
)
from simbroker.financing import BorrowModel, InterestModel
from simbroker.financing._paper import financing_of, no_borrow_model
from simbroker.models.fees import FeeModel, fee_model, keeps_ledgers
from simbroker.models.slippage import SlippageModel, slippage_model
from simbroker.sessions import date_sessions
from simbroker.tradelog import TradeLog
from simbroker.types import (
    AccountInfo,
    Fill,
    OrderInfo,
    OrderStatus,
)

__all__ = ["PaperBroker"]

_VENUES = (None, "alpaca", "ibkr")
_FEW_SYMBOLS = 256  # get_positions rebuilds without numpy up to this many columns

class PaperBroker(Submitting, Matching):
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
        Basis points of notional (a number, default 1), a
        :class:`~simbroker.models.FeeModel`, or a published schedule by name
        (``"ibkr_fixed"``, ``"ibkr_tiered"``, ``"alpaca"``; each fill pays the rates of its
        bar's date, see :func:`~simbroker.models.fee_schedule`).
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
        strictest of them, ``"alpaca"`` or ``"ibkr"``. Extended hours: a limit order
        only at both (always enforced), and only ``tif="day"`` at Alpaca (and by
        default); IBKR also takes ``gtc`` (``outsideRth``). One side at a time, with
        ``"alpaca"`` only: an order that would cross a position through zero (a sell of
        200 against a long of 100) or open a flat symbol while an order of the other
        side is open is refused with :class:`~simbroker.errors.PositionConflict`, as
        Alpaca refuses it; IBKR takes both, and so does the default, since a reversal
        in one order is an ordinary backtest step (the vectorized runner makes it too).
        With ``"alpaca"`` a replace is weighed the same way, as a new order for what is
        left after the fills with the order it replaces set aside. A margin account
        weighs a reversing order by default (and with ``"alpaca"``) as if its closing
        part freed nothing until filled; with ``"ibkr"`` as TWS does, against the
        initial margin after the order (its own closing part credited).
        A strategy bound for Alpaca should be rehearsed with ``venue="alpaca"``.
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
    borrow
        A :class:`~simbroker.financing.BorrowModel`: a borrow fee accrues on short
        positions at each trading day's end, and short sales of its hard-to-borrow
        symbols beyond what is located are refused with
        :class:`~simbroker.errors.HardToBorrow` (see :meth:`locate`). ``None`` (default):
        shorting costs nothing.
    interest
        An :class:`~simbroker.financing.InterestModel`: interest on a debit (and
        optionally a credit) cash balance at each trading day's end. ``None`` (default):
        none. Both write ``borrow_fee`` / ``interest`` records before cash moves
        (:mod:`simbroker.financing`).
    max_volume_share
        Partial fills by volume: the orders of a symbol take at most this share of a
        bar's volume (in ``(0, 1]``, e.g. ``0.025`` as zipline's ``VolumeShareSlippage``;
        ``None``, the default, fills whole). The rest stays open (``partially_filled``)
        and fills on later bars; see :mod:`simbroker._paper_volume` and the README's
        "How orders fill". Refused on bars whose volume is unknown.
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
        fees: float | str | FeeModel | None = 1.0,
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
        borrow: BorrowModel | None = None,
        interest: InterestModel | None = None,
        max_volume_share: float | None = None,
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
        # a model with running ledgers (tiered, Alpaca's day) is matched by _match_counting
        self._fee_ledgers = keeps_ledgers(self.fees)
        self.allow_short = bool(allow_short)
        self.clip_to_bar = bool(clip_to_bar)
        self._prefix = order_id_prefix
        self._clock = clock if clock is not None else SimulatedClock()
        self._ts = bars.ts_ns
        self._n_bars = len(self._ts)
        self._close_ns = bars.close_ns
        # Python ints by index without a method call (a ``memoryview`` of the same buffer:
        # no copy); ``step`` reads one per bar.
        self._close_at = self._close_ns.data
        self._open_at = self._ts.data
        self._clock.set(int(self._ts[0]))
        self._t = -1  # index of the latest closed bar
        self._open_px, self._high, self._low = bars.open, bars.high, bars.low
        self._close, self._volume = bars.close, bars.volume
        self._volume_known = bars.volume_known  # False: a bar with a close is tradable
        # The small book's reads of single bars: opens and volumes (closes when volumes
        # are unknown) as flat memoryviews of the same buffers, cell (t, c) at
        # t * n_cols + c; None for a panel not C-contiguous (reshaping would copy it).
        self._n_cols = bars.n_symbols
        tradable_by = self._volume if self._volume_known else self._close
        self._flat = (self._open_px.reshape(-1).data, tradable_by.reshape(-1).data) \
            if self._open_px.flags.c_contiguous and tradable_by.flags.c_contiguous else None
        self.max_volume_share = check_share(max_volume_share, bars.volume_known)
        if venue not in _VENUES:
            raise ValueError(f"venue must be one of {', '.join(map(repr, _VENUES))}, got "
                             f"{venue!r}")
        self.venue = venue
        # Bar -> session lookups; ``_gate`` is set only when some bar is outside regular
        # hours (users without calendars never pay for the check in _match).
        self._sessions = bars.sessions if bars.sessions is not None else date_sessions(
            bars, session_tz)
        lookup = self._sessions._arrays()
        self._calendar_of = self._sessions.columns.tolist()
        self._windows = {}
        self._windows_ns = None
        # Under the date rule a day order's window does not depend on the time it is
        # placed: (first, close_bar(first)), two lookups (see Placing._day_window).
        # As flat memoryviews of the (T + 1, G) lookups: cell (t, g) at t * G + g, a Python
        # int without a numpy scalar.
        self._n_calendars = lookup["last_bar"].shape[1]
        flat = {k: np.ascontiguousarray(lookup[k]).reshape(-1).data for k in
                ("next_regular", "last_regular", "next_in_day", "last_bar")}
        self._date_windows = None if self._sessions.session_closes else (
            (flat["next_regular"], flat["last_regular"]),
            (flat["next_in_day"], flat["last_bar"]))
        self._sessions_bars = self._sessions.n_bars
        # ... and the last bar of a regular day order by (first bar, calendar), both
        # lookups made once here (_place_market reads it; None: _day_window decides)
        nxt, last = lookup["next_regular"], lookup["last_regular"]
        self._day_close = None if self._date_windows is None or nxt.size == 0 or \
            int(nxt.max()) >= len(last) else \
            np.ascontiguousarray(np.take_along_axis(last, nxt, axis=0)).reshape(-1).data
        self._gate: tuple[np.ndarray, np.ndarray] | None = None
        if bars.sessions is not None and not bool(lookup["all_regular"].all()):
            self._gate = (self._sessions.regular, lookup["in_day"])
            self._all_regular = lookup["all_regular"]

        self._cash = cash
        self._initial_cash = cash
        self._account: Account | None = None
        self._pos = np.zeros(bars.n_symbols, np.float64)
        self._pos_mv = self._pos.data.cast("B").cast("d")  # by element, no numpy scalar
        self._col_of: dict[str, int] = bars._index  # symbol -> column (frozen panel)
        self._positions: dict[str, float] | None = None  # get_positions (kept live)
        self._held_top = -1
        for sym, qty in (positions or {}).items():
            if sym not in bars:
                raise InvalidOrder(f"starting position in unknown symbol {sym!r}",
                                   field="positions", value=sym, symbol=sym)
            self._pos[bars.symbol_index(sym)] = float(qty)
        self._initial_positions = self.get_positions()
        if start_at is not None:
            if start_at.tzinfo is None:
                raise ValueError(f"start_at must be tz-aware, got {start_at!r}")
            start_ns = int((start_at - EPOCH) / timedelta(microseconds=1)) * 1000
            t0 = int(np.searchsorted(self._close_ns, start_ns, side="right")) - 1
            if t0 >= 0:
                self._t = t0
                self._clock.set(int(self._close_ns[t0]))

        self._orders: dict[str, OrderState] = {}
        self._by_client_id: dict[str, str] = {}
        self._book = OpenBook()
        self._fills = FillLog()
        # Bar times, bar indexes and columns as lists, not array("q"): list.append is a
        # fraction of array.append. Their ints are shared by every fill of a bar (one
        # time and one index object per bar with fills) or column, so a fill costs an
        # 8-byte slot plus its share of those: +26 B a fill (4.5% of the broker) in the
        # SMA daily case's 2.7 fills a bar, less where bars fill more.
        self._fill_ns: list[int] = []
        self._fill_rows = array("q")  # each fill's row in the ledger below
        # Per-fill ledger for results: bar index, symbol column, cash and position after.
        self._ledger_bar: list[int] = []
        self._ledger_sym: list[int] = []
        self._ledger_cash = array("d")
        self._ledger_pos = array("d")
        self._n_orders = 0
        self._n_refused = 0
        # Splits and dividends still to apply (simbroker.actions._paper), None without.
        sched = broker_schedule(bars)
        self._actions = None if sched is None else PaperActions(sched, self._t + 1)
        # Borrow fees and interest (simbroker.financing._paper), None without.
        self._financing = financing_of(bars, self._sessions, borrow, interest, self._t + 1)
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
                extra["open_orders"] = [carried_fields(c, self._ts) for c in plan]
            self._log.write("start", self._clock.now(), cash=cash,
                            positions=self._initial_positions, broker="paper",
                            slippage=repr(self.slippage), fees=repr(self.fees), **extra)
        for c in plan:
            state = self._place(c.order, self._clock.now(), NEVER_BAR if c.trig is None else c.trig,
                                held=c.held, extreme=c.extreme)
            state.parent_id, state.group_class, state.legs = c.parent_id, c.group_class, c.legs
        for key, legs, oco, held in links:
            self._groups.link(key, legs, oco=oco, held=held)
        self._account = account_model(account)
        if self._account is not None:
            self._account.bind(self)
        # No account, financing or corporate actions: an empty book's bar only moves the clock.
        self._plain = self._account is None and self._financing is None and self._actions is None
        # Simple market orders take the short path (see _paper_submit); these weigh each.
        self._fast_submit = True
        self._weighs = self._account is not None or self._financing is not None or \
            venue == "alpaca"
        self._fast_cols = {s: c for s, c in self._col_of.items() if s.strip()}
        self._market_orders = {}

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
        held = self._positions
        if held is None:  # dropped by booking (an earlier symbol opened) or a split
            syms, pos = self.bars.symbols, self._pos
            if len(pos) <= _FEW_SYMBOLS:  # C loops over every column beat numpy's calls
                qty = pos.tolist()
                held = dict(compress(zip(syms, qty, strict=True), qty))
                self._held_top = self._col_of[next(reversed(held))] if held else -1
            else:
                cols = np.flatnonzero(pos).tolist()
                mv = self._pos_mv
                held = {syms[i]: mv[i] for i in cols}
                self._held_top = cols[-1] if cols else -1
            self._positions = held
        return dict(held)  # a copy: the caller may change it, the broker must not

    def get_cash(self) -> float:
        """Cash balance (negative when the account borrowed to buy)."""
        return self._cash

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """Fills in time order; with ``since``, those at or after it (inclusive)."""
        if since is None:
            return list(self._fills)
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC); got a naive datetime")
        ns = int((since - EPOCH) / timedelta(microseconds=1)) * 1000
        i = bisect.bisect_left(self._fill_ns, ns)
        return self._fills[i:]

    def now(self) -> datetime:
        """The simulated time: the close of the latest closed bar (or the first open)."""
        return self._clock.now()

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
        try:
            close_ns = self._close_at[t]  # t >= 0: past the end is the only IndexError
        except IndexError:
            raise ClockError(f"all {len(self._ts)} bars have been replayed") from None
        book = self._book
        if not book.n and self._plain and not self._groups.pending:
            # Nothing to match, expire or accrue: the bar only moves the clock (what
            # SimulatedClock._set_ns_unchecked does, without the call).
            clock = self._clock
            if close_ns != clock._ns:
                clock._ns, clock._now = close_ns, None
            self._t = t
            return t
        if self._groups.pending:  # left by a failed write: finish before the next bar
            self._settle(self._clock.now())
        acts = self._actions
        if acts is not None and acts.due(t):  # splits and dividends, before bar t trades
            self._clock._set_ns_unchecked(int(self._ts[t]))
            try:
                acts.apply(self, t)
            finally:
                self._positions = None  # a split changes positions
        clock = self._clock
        if book.n:
            clock._set_ns_unchecked(self._open_at[t])
            if self._fee_ledgers:
                self._match_counting(t)
            else:
                self._match(t)
        clock._set_ns_unchecked(close_ns)
        n = book.n
        if n == 1:  # one order left (the minute case): a scalar test, not an array's
            if book.expire_mv[0] <= t:
                self._expire(book.expire_bar[:1] <= t)
        elif n:
            expired = book.expire_bar[:n] <= t
            if expired.any():
                self._expire(expired)
        if self._trailing:
            self._trail(t)
        fin = self._financing
        if fin is not None and t == fin._due_t:  # fin.due(t): the day's borrow and interest
            fin.apply(self, t)
        self._t = t
        if self._account is not None:  # its fills, settlement, margin calls
            self._account.on_bar_close(t)
        return t

    def _match_counting(self, t: int) -> None:
        """:meth:`_match` under a fee model with running ledgers, kept exact when a write
        fails part way: the ledgers go back to before the bar and count the fills that
        were booked, so matching the bar again prices the others as the first time did
        (not on top of their own first pricing)."""
        fees = self.fees
        state = fees.checkpoint()
        fills = self._fills
        k0 = len(fills)
        try:
            self._match(t)
        except BaseException:
            fees.rollback(state)
            n = len(fills) - k0
            if n:
                sell = np.frombuffer(bytes(fills._sell[k0:]), np.uint8)
                fees.learn(np.where(sell == 1, -1.0, 1.0), np.array(fills._qty[k0:]),
                           np.array(fills._price[k0:]), np.full(n, self._ts[t], np.int64))
            raise

    def locate(self, symbol: str, qty: float) -> float:
        """Locate ``qty`` more shares of a hard-to-borrow ``symbol`` to sell short.

        Located shares are the largest short position the broker then allows in the
        symbol (a standing locate, for the rest of the run); returns the total located.
        Needs ``borrow=`` (a :class:`~simbroker.financing.BorrowModel`); the trade log
        gets a ``located`` record.
        """
        if self._financing is None or self._financing.borrow is None:
            raise no_borrow_model()
        return self._financing.locate(self, symbol, qty, self._clock.now())

    def run_until(self, when: datetime) -> int:
        """Step through every bar that closes at or before ``when``; return the last index."""
        ns = int((when - EPOCH) / timedelta(microseconds=1)) * 1000
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
        logged) when the order is no longer open or the change is invalid, and with
        ``venue="alpaca"`` when Alpaca's one side at a time refuses the replacement
        (the cause is the :class:`~simbroker.errors.PositionConflict`): Alpaca weighs
        it as a new order for what is left after the fills, against the position net of
        the other open orders, the order it replaces set aside (a sell raised beyond the
        shares available is refused, one lowered is taken). The default venue takes it,
        as it takes such an order at submission.
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
            if state.status is not OrderStatus.HELD:  # a held child is weighed when it goes
                weigh_replacement(self, order_id, state.order, state.filled_qty, new,
                                  self.bars.symbol_index(new.symbol))
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


def _session_ends(bars: Bars, session_tz: str) -> np.ndarray:
    """For each bar, the index of the last bar of its trading day."""
    days = bars.index.tz_convert(session_tz).normalize()
    codes = pd.factorize(days)[0]
    # Sorted timestamps give non-decreasing day codes: the last bar of a day is where the
    # code changes next.
    change = np.flatnonzero(np.diff(codes)) if len(codes) > 1 else np.array([], np.int64)
    ends = np.append(change, len(codes) - 1)
    return np.asarray(ends[np.searchsorted(ends, np.arange(len(codes)))], np.int64)
