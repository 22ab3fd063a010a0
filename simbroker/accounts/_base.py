"""The Account base class: what the paper broker asks of an account model."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from simbroker._paper_fills import FillLog
from simbroker.accounts._days import calendar_days, day_key, day_number, trading_day_numbers
from simbroker.accounts._daytrades import WINDOW, DayTrades
from simbroker.accounts._marks import Marks
from simbroker.accounts._reserve import order_price
from simbroker.accounts._state import LoggedFill, StateError, field_of, time_ns
from simbroker.errors import InsufficientBuyingPower, OrderRejected
from simbroker.types import AccountInfo, Order

if TYPE_CHECKING:
    from simbroker.paper import PaperBroker

__all__ = ["Account", "market_values", "unconstrained_info"]

Booked = tuple[int, int, float, float, float, float, float, float, float]
"""One fill as :meth:`Account._on_fill` takes it: bar, column, sign, qty, notional, fee,
position before and after, cash after."""


def market_values(pos: np.ndarray, marks: np.ndarray) -> tuple[float, float]:
    """Long and short market value of positions ``pos`` at ``marks`` (short <= 0).

    A held symbol with no mark yet counts zero.
    """
    value = np.where(pos != 0, pos * np.nan_to_num(marks), 0.0)
    return float(value[value > 0].sum()), float(value[value < 0].sum())


def unconstrained_info(cash: float, pos: np.ndarray, marks: np.ndarray) -> AccountInfo:
    """The figures of an account that never refuses for money (the default)."""
    lmv, smv = market_values(pos, marks)
    return AccountInfo(cash=cash, equity=cash + lmv + smv, buying_power=math.inf,
                       maintenance_margin=0.0, initial_margin=0.0, long_market_value=lmv,
                       short_market_value=smv, settled_cash=None, day_trades=None,
                       pattern_day_trader=False, account_type="unconstrained")


class Account:
    """An account model the paper broker consults (``PaperBroker(account=...)``).

    One instance serves one broker (:meth:`bind` refuses a second). The broker calls
    :meth:`check` before it accepts an order (raising refuses it and changes nothing),
    :meth:`on_bar_close` after each bar closed (its fills booked), and :meth:`info` for
    ``get_account``. Positions are valued at each symbol's last close (the mark). An
    order is priced at the worst price it can fill at given the mark
    (:func:`simbroker.risk._exposure.worst_fill_price`; before any close, the next
    open), market-like orders raised by ``market_buffer``; slippage is not included.
    Subclasses: :class:`~simbroker.accounts.CashAccount`,
    :class:`~simbroker.accounts.MarginAccount`.

    **Across restarts.** :meth:`spec` names the model and its parameters
    (:func:`~simbroker.accounts.account_model` rebuilds it), :meth:`snapshot` is the
    state the fills alone do not give (day trades, unsettled proceeds, a pattern day
    trader flag, a margin call in progress) as plain data, and :meth:`restore`, called
    before the account is bound, sets that state back and books the fills logged after
    it, so a resumed run makes the decisions an uninterrupted one makes. On binding to
    a broker with a trade log the account writes an ``account`` record (``model``,
    ``params``, ``state``); the real-time runner adds the state to each ``bar`` record.

    Parameters
    ----------
    market_buffer
        Fraction added to the mark when pricing a buy without a price ceiling (market,
        stop, trailing), for the gap to the next open. Default 0.
    """

    account_type = "account"

    def __init__(self, *, market_buffer: float = 0.0) -> None:
        if not (math.isfinite(market_buffer) and market_buffer >= 0):
            raise ValueError(f"market_buffer must be a finite number >= 0, got "
                             f"{market_buffer!r}")
        self.market_buffer = float(market_buffer)
        self._broker: PaperBroker | None = None
        self._pending: tuple[Mapping[str, Any] | None, list[LoggedFill]] | None = None
        self._restoring = False
        self._logged: set[tuple[str, int, str | None]] = set()
        self._days_before: np.ndarray = np.array([], "datetime64[D]")

    def bind(self, broker: PaperBroker) -> None:
        """Attach to the broker whose money this account keeps.

        A state given to :meth:`restore` is applied now; with a trade log, an
        ``account`` record (``model``, ``params``, ``state``) is written.
        """
        if self._broker is not None:
            raise ValueError(f"{self!r} already keeps another broker's account; "
                             "give each PaperBroker its own account object")
        self._attach(broker)
        if self._pending is not None:
            state, fills = self._pending
            self._pending = None
            try:
                if state is not None:
                    self._load(state)
                self._book_logged(fills)
            except ValueError as exc:
                raise StateError(str(exc)) from None
        spec = self.spec()
        model = spec.pop("model")
        self._write("account", model=model, params=spec, state=self.snapshot())

    def _attach(self, broker: PaperBroker) -> None:
        """Set up against ``broker`` (subclasses extend this, not :meth:`bind`)."""
        self._broker = broker
        self._b = broker  # the same, without the property's test (the hot paths)
        self._marks = Marks(broker._close, broker._t)
        sessions = broker._sessions
        self._cal = np.asarray(sessions.columns, np.int64)
        self._cals: list[int] = self._cal.tolist()
        self._daynum = trading_day_numbers(sessions)
        self._n_days = len(self._daynum)
        self._known = calendar_days(sessions)
        if len(self._days_before) and not sessions.session_days:
            self._count_days_before()
        self._day_of = self._daynum.data  # element reads without a numpy scalar each
        self._cursor = len(broker._fills)
        self.day_trades = DayTrades(broker.bars.n_symbols)

    def _count_days_before(self) -> None:
        """Number the trading days from the earliest of :meth:`restore`'s ``days_before``:
        each date-rule calendar's days gain those before its first, and every day number
        moves up by their count, so a saved day older than the panel keeps its place."""
        daynum = self._daynum
        for j, known in enumerate(self._known):
            before = self._days_before if not len(known) else \
                self._days_before[self._days_before < known[0]]
            self._known[j] = np.concatenate([before, known])
            daynum[:, j] += len(before)

    # ------------------------------------------------------------ restarts
    def spec(self) -> dict[str, Any]:
        """``{"model": name, **parameters}``: what :func:`~simbroker.accounts.account_model`
        takes to build this account again (plain, JSON-ready values)."""
        return {"model": self.account_type, **self._spec()}

    def _spec(self) -> dict[str, Any]:
        return {"market_buffer": self.market_buffer}

    def restore(self, state: Mapping[str, Any] | None,
                fills: Sequence[LoggedFill] = (), *,
                logged: Iterable[tuple[str, datetime, str | None]] = (),
                days_before: Iterable[str] = ()) -> None:
        """Start from a saved :meth:`snapshot` and the fills logged after it.

        Call before the account is bound (``PaperBroker(account=this)`` binds it): the
        state is applied then, each fill in ``fills`` is booked as the account books a
        fill (day trades, settlement), and the account's own records already in the log
        after that state, ``logged`` as ``(event, record time, symbol or None)``
        (``margin_call``, ``good_faith_violation``), are not written again when the
        resumed broker books those fills or closes that bar once more. ``days_before``
        (ISO dates) are trading days before the panel's first, for a broker over a short
        window of a longer run (the shadow broker's per-bar windows): under the date rule
        (bars without an exchange calendar) a day counts only when a bar falls on it, so
        a saved day (a day trade, an unsettled sale) older than the window is numbered
        only when its date is among them. A malformed state raises
        :class:`~simbroker.accounts.StateError` (a ``ValueError``) naming the field, when
        the account binds.
        """
        if self._broker is not None:
            raise ValueError(f"{self!r} is already bound: restore() comes before "
                             "PaperBroker(account=...)")
        if state is not None and not isinstance(state, Mapping):
            raise ValueError(f"an account state must be a mapping, got {state!r:.60}")
        self._pending = (state, list(fills))
        try:
            self._days_before = np.unique(np.asarray(list(days_before), "datetime64[D]"))
        except ValueError:
            raise ValueError(f"days_before must be ISO dates, got {days_before!r:.60}") from None
        self._logged = {(event, time_ns(when), sym) for event, when, sym in logged}

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data (see the class docstring); :meth:`restore` takes it."""
        dt = self.day_trades
        today = self.today()
        days = [[cal, day_key(self._known[cal], d)]
                for d, cal in zip(dt.days, dt.calendars, strict=True)
                if d > today[cal] - WINDOW]
        cal_today = np.asarray(today, np.int64)[self._cal]
        cols = np.flatnonzero(dt.opened_day >= cal_today)
        syms = self.broker.bars.symbols
        opened = {syms[c]: day_key(self._known[self._cal[c]], int(dt.opened_day[c]))
                  for c in cols.tolist()}
        return {"day_trades": days, "opened": opened}

    def _load(self, state: Mapping[str, Any]) -> None:
        """Set the state :meth:`snapshot` wrote (subclasses extend it)."""
        dt = self.day_trades
        for entry in field_of(state, "day_trades", list, []):
            if not (isinstance(entry, list) and len(entry) == 2):
                raise ValueError(f"account state: a day trade must be [calendar, day], got "
                                 f"{entry!r:.60}")
            cal = self._calendar(entry[0])
            dt.days.append(day_number(self._known[cal], entry[1]))
            dt.calendars.append(cal)
        for sym, key in field_of(state, "opened", dict, {}).items():
            col = self._column(sym)
            dt.opened_day[col] = day_number(self._known[self._cal[col]], key)

    def _calendar(self, value: Any) -> int:
        if type(value) is not int or not 0 <= value < len(self._known):
            raise ValueError(f"account state: calendar {value!r:.40} is not one of the "
                             f"{len(self._known)} calendars of the bars")
        return value

    def _column(self, symbol: Any) -> int:
        bars = self.broker.bars
        if not isinstance(symbol, str) or symbol not in bars:
            raise ValueError(f"account state names symbol {symbol!r:.40}, not in the bars")
        return bars.symbol_index(symbol)

    def _book_logged(self, fills: Sequence[LoggedFill]) -> None:
        """Book fills the broker already holds (cash and positions include them)."""
        ts = self.broker._ts
        self._restoring = True
        try:
            for f in fills:
                col = self._column(f.symbol)
                bar = max(int(np.searchsorted(ts, time_ns(f.timestamp), side="right")) - 1, 0)
                sign = 1.0 if f.side == "buy" else -1.0
                before = f.position - sign * f.qty
                self._on_fill(bar, col, sign, f.qty, f.notional, f.fee, before, f.position,
                              f.cash)
        finally:
            self._restoring = False

    @property
    def broker(self) -> PaperBroker:
        """The broker this account is bound to."""
        if self._broker is None:
            raise ValueError(f"{self!r} is not bound to a broker")
        return self._broker

    # ------------------------------------------------------------ the hooks
    def check(self, order: Order, col: int) -> None:
        """Raise an :class:`~simbroker.errors.OrderRejected` subclass to refuse ``order``."""

    def check_replace(self, order_id: str, order: Order, col: int) -> None:
        """Refuse replacing open order ``order_id`` with ``order`` (its quantity: what
        would be left open) as the venue checks a replaced order: whole, against the
        buying power net of the old order's reservation. A change that reserves no more
        than the old order did always passes."""

    def _replaced(self, order_id: str) -> tuple[int, Order, float]:
        """The book slot of open order ``order_id``, its order and what is left of it."""
        b = self.broker
        state = b._orders[order_id]
        ids = b._book.ids
        slot = ids.index(order_id) if order_id in ids else -1
        return slot, state.order, state.order.qty - state.filled_qty

    def on_bar_close(self, t: int) -> None:
        """Bar ``t`` closed and its fills are booked: account for them."""
        b = self._b  # bound: the broker calls it
        fills = b._fills
        k0, n = self._cursor, len(fills)
        if k0 < n:
            if not isinstance(fills, FillLog):
                self._book_dicts(k0, n)
            elif type(self)._on_fill is Account._on_fill:
                self._count_day_trades(k0, n)
            else:
                self._book_new(k0, n)
        self._after_bar(t)

    def _book_dicts(self, k0: int, n: int) -> None:
        """:meth:`_on_fill` for fills ``k0`` to ``n`` of a fill list of ``Fill`` dicts."""
        b = self.broker
        fills = b._fills
        rows, bars, syms = b._fill_rows, b._ledger_bar, b._ledger_sym
        positions, cashes, on_fill = b._ledger_pos, b._ledger_cash, self._on_fill
        for k in range(k0, n):
            f = fills[k]
            r = rows[k]  # the ledger also has rows for actions and financing
            after = positions[r]
            sign = 1.0 if f["side"] == "buy" else -1.0
            qty = f["qty"]
            on_fill(bars[r], syms[r], sign, qty, f["notional"], f["fee"],
                    after - sign * qty, after, cashes[r])
            self._cursor = k + 1

    def _book_new(self, k0: int, n: int) -> None:
        """:meth:`_on_fill` for fills ``k0`` to ``n`` (read from the fill log's columns)."""
        on_fill = self._on_fill
        for booked in self._new_fills(k0, n):
            on_fill(*booked)

    def _new_fills(self, k0: int, n: int) -> Iterator[Booked]:
        """:meth:`_on_fill`'s arguments for fills ``k0`` to ``n`` of the fill log; the
        cursor moves past each once it is booked."""
        b = self._b
        fills = b._fills
        sells, qtys, notionals, fees = fills._sell, fills._qty, fills._notional, fills._fee
        rows, bars, syms = b._fill_rows, b._ledger_bar, b._ledger_sym
        positions, cashes = b._ledger_pos, b._ledger_cash
        for k in range(k0, n):
            r = rows[k]  # the ledger also has rows for actions and financing
            after = positions[r]
            sign = -1.0 if sells[k] else 1.0
            qty = qtys[k]
            yield (bars[r], syms[r], sign, qty, notionals[k], fees[k], after - sign * qty,
                   after, cashes[r])
            self._cursor = k + 1

    def _count_day_trades(self, k0: int, n: int) -> None:
        """:meth:`_on_fill` of this class for fills ``k0`` to ``n``, in one loop."""
        b = self._b
        fills = b._fills
        sells, qtys = fills._sell, fills._qty
        rows, bars, syms, positions = b._fill_rows, b._ledger_bar, b._ledger_sym, b._ledger_pos
        cals, day_of, last = self._cals, self._day_of, self._n_days - 1
        trades = self.day_trades
        # DayTrades.on_fill inline (the same tests, in the same order): a call per fill
        # was most of this loop
        opened, days, calendars = trades.opened_cells, trades.days, trades.calendars
        # a bar's fills share its day on each calendar: looked up when the bar or the
        # calendar differs from the previous fill's
        at_bar = at_cal = day = -1
        # min/max/abs as conditionals: the same values, without a builtin call each
        for k in range(k0, n):
            r = rows[k]
            after = positions[r]
            qty = qtys[k]
            before = after + qty if sells[k] else after - qty  # after - sign * qty
            col = syms[r]
            bar = bars[r]
            cal = cals[col]
            if bar != at_bar or cal != at_cal:
                day = day_of[(0 if bar < 0 else last if bar > last else bar), cal]
                at_bar, at_cal = bar, cal
            flipped = before * after < 0  # through 0
            size_after = after if after >= 0 else -after
            size_before = before if before >= 0 else -before
            if (flipped or size_after < size_before) and opened[col] == day:
                days.append(day)
                calendars.append(cal)
            if flipped or size_after > size_before:
                opened[col] = day
        self._cursor = n

    def info(self) -> AccountInfo:
        """The figures ``get_account`` returns."""
        b = self.broker
        return unconstrained_info(b._cash, b._pos, self.marks())

    # ----------------------------------------------------- for subclasses
    def _on_fill(self, bar: int, col: int, sign: float, qty: float, notional: float,
                 fee: float, before: float, after: float, cash: float) -> None:
        cal = self._cal.item(col)
        bar = min(max(bar, 0), self._n_days - 1)
        self.day_trades.on_fill(col, self._daynum.item(bar, cal), before, after, cal)

    def _after_bar(self, t: int) -> None:
        """Bar ``t`` closed, its fills accounted and the marks advanced."""

    def marks(self) -> np.ndarray:
        """Each symbol's last close as of the latest closed bar."""
        try:
            b = self._b
        except AttributeError:
            b = self.broker  # not bound: raises
        return self._marks.at(b._t)

    def day(self, bar: int, col: int) -> int:
        """The trading-day number of bar ``bar`` on column ``col``'s calendar."""
        bar = min(max(bar, 0), self._n_days - 1)
        return int(self._daynum.item(bar, self._cal.item(col)))

    def next_day(self, col: int) -> int:
        """The trading day an order placed now first trades on (that of the next bar)."""
        return self.day(self._b._t + 1, col)

    def today(self) -> list[int]:
        """The trading-day number of the latest closed bar, per calendar."""
        t = max(self.broker._t, 0)
        days: list[int] = self._daynum[t].tolist()  # int64: Python ints
        return days

    def price(self, order: Order, col: int) -> float:
        """The price ``order`` is reserved at (see the class docstring)."""
        b = self._b
        mark = float(self._marks.at(b._t).item(col))
        if not math.isfinite(mark):
            mark = b._last_price(col)
        return order_price(order, mark, self.market_buffer)

    def equity(self) -> float:
        """Cash plus positions at the marks."""
        lmv, smv = market_values(self.broker._pos, self.marks())
        return self.broker._cash + lmv + smv

    def refuse(self, order: Order, required: float, available: float, rule: str,
               detail: str | None = None, **extra: Any) -> OrderRejected:
        """The error refusing ``order`` (the broker logs it with ``rule``)."""
        return InsufficientBuyingPower(order.symbol, required=required, available=available,
                                       rule=rule, detail=detail,
                                       client_order_id=order.client_order_id, **extra)

    def _write(self, event: str, when: datetime | None = None, **fields: Any) -> None:
        """Write one of the account's records (at ``when``, default now), unless the log
        already holds it (see :meth:`restore`)."""
        log = self.broker._log
        if log is None:
            return
        when = self.broker._clock.now() if when is None else when
        if (event, time_ns(when), fields.get("symbol")) not in self._logged:
            log.write(event, when, **fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params()})"

    def _params(self) -> str:
        return f"market_buffer={self.market_buffer!r}"
