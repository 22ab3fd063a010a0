"""Buying power in the vectorized runner: ``account=`` refusals, bit for bit.

The twin (:class:`~simbroker.vectorized.TargetPositions` on a ``PaperBroker(account=...)``)
submits ``target - position`` per symbol at each close, in symbol column order; the
account checks each order at submission and refuses it (``InsufficientBuyingPower``, or
``PatternDayTrading``) before it is placed. A refused order gets no order id, the position
stays and the target is decided again at the next close (``on_refused="skip"``). What
the twin's book holds at that moment is only the orders accepted earlier at the same
close (it cancels its older ones first, and a day order has expired), so an order's
check depends on the cash and positions after the bar, and on the reservations of the
orders accepted before it at that close:

* :class:`~simbroker.accounts.MarginAccount`: ``excess = equity - initial margin of the
  positions - reserved``, where each accepted order reserves the part that opens
  exposure x its price x its symbol's rate (a closing part needs no margin); an order
  is refused when that part x price exceeds ``max(excess, 0) / rate``. Intraday
  buying power (maintenance rate, ``day_trade_rate``) for a flagged pattern day trader
  at or above ``pdt_equity`` when the next bar is in the same trading day; the PDT rule
  (``pdt_check``) on orders closing a position opened that trading day.
* :class:`~simbroker.accounts.CashAccount`: a sell beyond the position is refused (no
  shorts); with ``good_faith="refuse"`` a sell of shares bought with unsettled proceeds
  (T+``settlement_days``) before they settle; a buy whose cost plus fee exceeds the
  cash less the accepted buys' reservations (free-riding).

Before the account, the paper broker refuses a sell leaving a short in a hard-to-borrow
symbol beyond its locate (``HardToBorrow``, from the position alone: the twin has no
other order open in the symbol); such an order reserves nothing.

Prices are the account's: the symbol's last close (before any close, the next open),
a buy's raised by ``market_buffer``. The figures use the account's own arithmetic in its
order (the settlement lots and day trades through the account's own helpers), so every
decision is the broker's.

How: until the account refuses an order it changes nothing, so the unconstrained run is
screened first (:func:`first_doubtful_close`: every order's check at once, across all
bars, with a bound on the rounding of the whole-panel sums) and stands when no order
can be refused (:func:`cap_never_binds` does the same for a volume cap). Otherwise the
run goes bar by bar, numpy across symbols. At each close all candidate orders are checked
at once as if every earlier one were accepted (the reservations a running sum,
``np.add.accumulate``, as the broker adds them); when none fails that is the answer,
else the bar continues order by order from the first refusal. Weights, volume caps
(:mod:`simbroker._vector_volume`), fee schedules and borrow/interest run in the same
loop. Not here: protective exits, corporate actions, ``MarginAccount(liquidate=True)``
(its liquidation orders) and other :class:`~simbroker.accounts.Account` subclasses;
:func:`account_for_vectorized` says so and what to run instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker._paper_volume import capped_quantities
from simbroker.accounts import Account, CashAccount, MarginAccount, account_model
from simbroker.accounts._days import trading_day_numbers
from simbroker.accounts._daytrades import WINDOW, DayTrades
from simbroker.accounts._settlement import Settlement
from simbroker.actions import _vector as actions_vec
from simbroker.actions._paper import broker_schedule, payment_order
from simbroker.actions._schedule import Schedule
from simbroker.actions._table import DIVIDEND
from simbroker.actions._vector import _split_qty, _split_rows
from simbroker.bars import Bars
from simbroker.errors import HardToBorrow, InsufficientBuyingPower, PatternDayTrading
from simbroker.financing._vector import VectorFinancing
from simbroker.models.fees import FeeModel
from simbroker.models.schedules import fees_at, order_fees_at
from simbroker.models.slippage import SlippageModel
from simbroker.results.build import mark_to_market, marking_closes
from simbroker.results.columns import _ffill
from simbroker.results.result import BacktestResult
from simbroker.sessions import date_sessions

if TYPE_CHECKING:
    from simbroker.vectorized import _Orders

__all__ = ["REFUSALS", "REFUSED_COLUMNS", "RefusalLog", "account_for_vectorized",
           "cap_never_binds", "first_doubtful_close", "hard_to_borrow_refuses",
           "refused_frame", "run_account"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: The columns of a refusal table (:attr:`TargetPositions.refused`).
REFUSED_COLUMNS = ("timestamp", "symbol", "side", "qty", "rule", "required", "available")

#: The refusals a target twin skips (``on_refused="skip"``): the account's, and a short
#: of a hard-to-borrow symbol beyond its locate.
REFUSALS = (InsufficientBuyingPower, PatternDayTrading, HardToBorrow)

_BUYING_POWER = "buying_power"
_SHORT = "cash_account_short"
_GOOD_FAITH = "good_faith"
_PDT = "pattern_day_trader"
_HARD_TO_BORROW = "hard_to_borrow"


def account_for_vectorized(spec: str | Account | None, bars: Bars, *, exits: bool
                           ) -> CashAccount | MarginAccount | None:
    """The account ``backtest_vectorized(account=spec)`` runs, or a clear refusal.

    The account object is read, never bound or changed (give the same parameters to an
    event-driven run through a new object).
    """
    acct = account_model(spec)
    if acct is None:
        return None
    if type(acct) not in (CashAccount, MarginAccount) or not isinstance(
            acct, (CashAccount, MarginAccount)):
        raise ValueError(
            f"backtest_vectorized(account=) takes 'cash', 'margin', a CashAccount or a "
            f"MarginAccount; {type(acct).__name__} has its own rules: run "
            "simbroker.backtest(simbroker.TargetPositions(...), bars, account=...)")
    if isinstance(acct, MarginAccount) and acct.liquidate:
        raise ValueError(
            "backtest_vectorized(account=) does not model MarginAccount(liquidate=True): its "
            "liquidation orders compete with the targets for buying power; run "
            "simbroker.backtest(simbroker.TargetPositions(...), bars, account=...)")
    if exits:
        raise ValueError(
            "account= in the vectorized runner does not combine with stop_loss=/"
            "take_profit=/trailing_stop= (resting exits reserve buying power); run "
            "simbroker.backtest(simbroker.TargetExits(...), bars, account=...)")
    if isinstance(acct, MarginAccount):
        unknown = sorted((set(acct.initial_by_symbol) | set(acct.maintenance_by_symbol))
                         - set(bars.symbols))
        if unknown:
            raise ValueError(f"the account's per-symbol rates name symbols not in the bars: "
                             f"{unknown}")
    return acct


def refused_frame(bars: Bars, t: I64, j: I64, sign: F64, qty: F64, rule: list[str],
                  required: F64, available: F64) -> pd.DataFrame:
    """The refusal table: one row per refused order, in submission order.

    ``timestamp`` is the close the order was submitted at (microseconds, as the orders'
    ``submitted_at``); ``required``/``available`` are the amounts the refusal names
    (``NaN`` for the PDT rule).
    """
    close_ns = bars.ts_ns[t] + int(bars.interval.astype(np.int64))
    frame: pd.DataFrame = pd.DataFrame({
        "timestamp": pd.DatetimeIndex((close_ns // 1000 * 1000).view("M8[ns]"))
        .tz_localize("UTC"),
        "symbol": pd.Series(np.array(bars.symbols, dtype=object)[j], dtype=object),
        "side": pd.Series(np.where(sign > 0, "buy", "sell").astype(object), dtype=object),
        "qty": np.asarray(qty, np.float64),
        "rule": pd.Series(np.array(rule, dtype=object), dtype=object),
        "required": np.asarray(required, np.float64),
        "available": np.asarray(available, np.float64),
    }, columns=list(REFUSED_COLUMNS))
    return frame


@dataclass
class _Refusals:
    t: list[int]
    j: list[int]
    sign: list[float]
    qty: list[float]
    rule: list[str]
    required: list[float]
    available: list[float]

    def add(self, t: int, j: Any, sign: Any, qty: Any, rule: str, required: Any,
            available: Any) -> None:
        self.t.append(t)
        self.j.append(int(j))
        self.sign.append(float(sign))
        self.qty.append(float(qty))
        self.rule.append(rule)
        self.required.append(float(required))
        self.available.append(float(available))

    def frame(self, bars: Bars) -> pd.DataFrame:
        """The table in submission order (bar, then column: one order per cell)."""
        t, j = np.array(self.t, np.int64), np.array(self.j, np.int64)
        order = np.lexsort((j, t))
        return refused_frame(bars, t[order], j[order], np.array(self.sign)[order],
                             np.array(self.qty)[order], [self.rule[k] for k in order],
                             np.array(self.required)[order],
                             np.array(self.available)[order])


class RefusalLog:
    """A twin's refusals (``on_refused="skip"``), or the refusal re-raised (``"raise"``)."""

    #: The exceptions a twin catches and hands to :meth:`refused` (:data:`REFUSALS`).
    kinds = REFUSALS

    def __init__(self, on_refused: str):
        if on_refused not in ("skip", "raise"):
            raise ValueError(f"on_refused must be 'skip' or 'raise', got {on_refused!r}")
        self.on_refused = on_refused
        self._bars: Bars | None = None
        self._rows = _Refusals([], [], [], [], [], [], [])

    def start(self, bars: Bars) -> None:
        """A run on ``bars`` begins: forget the last one."""
        self._bars = bars
        self._rows = _Refusals([], [], [], [], [], [], [])

    def refused(self, t: int, j: int, delta: float,
                exc: InsufficientBuyingPower | PatternDayTrading | HardToBorrow) -> None:
        """The broker refused the order for ``delta`` shares of column ``j`` at bar
        ``t``'s close: record it, or re-raise ``exc``. A ``HardToBorrow`` refusal's
        ``required``/``available`` are shares: the short it would leave, the locate."""
        if self.on_refused == "raise":
            raise exc
        required: float | None = getattr(exc, "required", None)
        available: float | None = getattr(exc, "available", None)
        if isinstance(exc, HardToBorrow):
            required, available = exc.short, exc.located
        self._rows.add(t, j, 1.0 if delta > 0 else -1.0, abs(delta), str(exc.rule),
                       math.nan if required is None else float(required),
                       math.nan if available is None else float(available))

    @property
    def count(self) -> int:
        """How many were recorded."""
        return len(self._rows.t)

    def frame(self) -> pd.DataFrame:
        """The refusal table (:data:`REFUSED_COLUMNS`)."""
        if self._bars is None:
            empty: pd.DataFrame = pd.DataFrame(columns=list(REFUSED_COLUMNS))
            return empty
        return self._rows.frame(self._bars)


class _Book:
    """What the account needs to know about the run so far (one per run)."""

    def __init__(self, bars: Bars, acct: CashAccount | MarginAccount, session_tz: str,
                 fees: FeeModel):
        sessions = bars.sessions if bars.sessions is not None else date_sessions(
            bars, session_tz)
        self.daynum = trading_day_numbers(sessions)
        self.cal = np.asarray(sessions.columns, np.int64)
        self.n_t = len(bars)
        # Every bar its own trading day (daily bars): no position is opened on the day
        # of a later bar, so no day trade and no PDT refusal can happen.
        self.distinct_days = self.n_t < 2 or bool((np.diff(self.daynum, axis=0) > 0).all())
        self.acct = acct
        self.fees = fees
        self.buffer = acct.market_buffer
        n = bars.n_symbols
        self.marks = _last_closes(bars.close)  # each symbol's last close, per bar
        self.complete = not np.isnan(self.marks).any()  # a mark wherever an order is checked
        self.m0 = self.marks if self.complete else np.nan_to_num(self.marks)  # held at 0
        self.open = bars.open
        self.cash_account = isinstance(acct, CashAccount)
        if isinstance(acct, MarginAccount):
            syms = bars.symbols
            self.im = np.array([acct.initial_by_symbol.get(s, acct.initial) for s in syms])
            self.mm = np.array([acct.maintenance_by_symbol.get(s, acct.maintenance)
                                for s in syms])
            self.dt = np.maximum(self.mm, acct.day_trade_rate)
            self.m0_im = self.m0 * self.im  # the per-bar rows of the margin's products
            self.flagged = acct.pattern_day_trader
            self.day_trades = DayTrades(n)
        else:
            self.ones = np.ones(n)
            self.settlement = Settlement(acct.settlement_days)
            self.track_lots = acct.good_faith == "refuse"

    # ----------------------------------------------------------------- fills
    def on_fills(self, t: int, j: I64, sign: F64, qty: F64, notional: F64, fee: F64,
                 before_pos: F64, after_pos: F64, cash_after: F64) -> None:
        """Bar ``t``'s fills (distinct columns, in book order) as the account books them."""
        day = self.daynum[t, self.cal[j]]
        before = after_pos - sign * qty  # as Account.on_bar_close reconstructs it
        if self.cash_account:
            if not self.track_lots:
                return
            st = self.settlement
            today = [int(x) for x in self.daynum[t]]
            for k in range(len(j)):
                st.settle(today)
                col = int(j[k])
                cal = int(self.cal[col])
                d = int(day[k])
                if sign[k] < 0:
                    paid = float(before[k]) - st.unpaid_qty(col, d)
                    unpaid_sold = float(qty[k]) - max(paid, 0.0)
                    if unpaid_sold > 1e-12:
                        st.on_sold_unpaid(col, unpaid_sold)
                    st.on_sell(cal, d, float(notional[k]) - float(fee[k]))
                else:
                    st.on_buy(col, cal, float(qty[k]), float(notional[k]) + float(fee[k]),
                              float(cash_after[k]))
            return
        if self.distinct_days:
            return
        # DayTrades.on_fill, for distinct columns at once.
        dtr = self.day_trades
        reduced = (np.abs(after_pos) < np.abs(before)) | (before * after_pos < 0)
        hits = reduced & (dtr.opened_day[j] == day)
        if hits.any():
            dtr.days.extend(int(d) for d in day[hits])
        grew = (np.abs(after_pos) > np.abs(before)) | (before * after_pos < 0)
        dtr.opened_day[j[grew]] = day[grew]

    def after_bar(self, t: int) -> None:
        """The account's bar-close step: settlement, or the pattern-day-trader flag."""
        if self.cash_account:
            if self.track_lots:
                self.settlement.settle([int(x) for x in self.daynum[t]])
        elif not self.flagged and self.day_trades.days and self.day_trades.count(
                int(self.daynum[t, 0])) >= 4:
            self.flagged = True  # once flagged, stays flagged

    # ---------------------------------------------------------------- checks
    def _price(self, t: int, j: I64, sign: F64) -> tuple[F64, F64]:
        """The price each order is checked at (mark, else the next open) and the price
        an accepted one reserves at (the mark only), both raised by the buffer on buys."""
        mark = self.marks[t, j]
        check = mark
        if not self.complete:
            check = mark.copy()
            missing = np.flatnonzero(~np.isfinite(mark))
            for k in missing.tolist():  # no close yet: the next open (PaperBroker._last_price)
                opens = self.open[t + 1:, int(j[k])]
                ahead = np.flatnonzero(np.isfinite(opens))
                check[k] = float(opens[ahead[0]]) if len(ahead) else math.nan
        if self.buffer == 0:  # x * 1.0 is x
            return check, mark
        raise_ = np.where(sign > 0, 1.0 + self.buffer, 1.0)
        return check * raise_, mark * raise_

    def accept(self, t: int, j: I64, sign: F64, qty: F64, pos: F64, cash: float,
               refusals: _Refusals) -> B:
        """Which of the orders submitted at bar ``t``'s close (columns ``j``, in
        submission order) the account accepts; the refused ones are recorded."""
        if self.cash_account:
            return self._accept_cash(t, j, sign, qty, pos, cash, refusals)
        return self._accept_margin(t, j, sign, qty, pos, cash, refusals)

    def _accept_margin(self, t: int, j: I64, sign: F64, qty: F64, pos: F64, cash: float,
                       refusals: _Refusals) -> B:
        acct = self.acct
        assert isinstance(acct, MarginAccount)
        ok = np.ones(len(j), np.bool_)
        p = pos[j]
        nxt = min(t + 1, self.n_t - 1)
        if acct.pdt_check and not self.distinct_days:  # the PDT rule comes first
            next_day = self.daynum[nxt, self.cal[j]]
            would = (p * sign < 0) & (self.day_trades.opened_day[j] == next_day)
            for k in np.flatnonzero(would).tolist():
                day = int(next_day[k])
                count = sum(1 for d in self.day_trades.days if day - WINDOW < d <= day)
                value = np.where(pos != 0, pos * np.nan_to_num(self.marks[t]), 0.0)
                equity = cash + float(value[value > 0].sum()) + float(value[value < 0].sum())
                if equity < acct.pdt_equity and (count >= 3 or self.flagged):
                    ok[k] = False
                    refusals.add(t, j[k], sign[k], qty[k], _PDT, math.nan, math.nan)
        # opening_qty with nothing open on the same side (one order per symbol a close)
        closing = np.where(sign > 0, np.maximum(0.0, -p), np.maximum(0.0, p))
        opening = np.maximum(0.0, qty - closing)
        px, res_px = self._price(t, j, sign)
        checked = ok & (opening > 0) & np.isfinite(px)
        if not checked.any():  # only closing orders (or refused ones): no margin to check
            return ok
        m0 = self.m0[t]
        equity = cash + float(pos @ m0)
        gross = np.abs(pos)
        intraday = (self.flagged and equity >= acct.pdt_equity
                    and t + 1 < self.n_t
                    and bool((self.daynum[t] == self.daynum[t + 1]).all()))
        if intraday:
            rates, base = self.dt, float(gross @ (m0 * self.mm))
        else:
            rates, base = self.im, float(gross @ self.m0_im[t])
        rate = rates[j]
        required = opening * px
        counted = ok & (opening > 0) & np.isfinite(res_px)
        contrib = np.where(counted, opening * res_px * rate, 0.0)

        def fails(held: F64, k: Any) -> tuple[B, F64]:
            available = np.maximum(equity - base - held, 0.0) / rate[k]
            return required[k] > available * (1 + 1e-12) + 1e-9, available

        def fails_one(held: float, k: int, required: list[float]) -> tuple[bool, float]:
            available = _max0(equity - base - held) / float(rate[k])
            return required[k] > available * (1 + 1e-12) + 1e-9, available

        self._sequence(t, j, sign, qty, ok, checked, contrib, fails, fails_one, required,
                       refusals, _BUYING_POWER)
        return ok

    def _accept_cash(self, t: int, j: I64, sign: F64, qty: F64, pos: F64, cash: float,
                     refusals: _Refusals) -> B:
        acct = self.acct
        assert isinstance(acct, CashAccount)
        ok = np.ones(len(j), np.bool_)
        p = pos[j]
        px, res_px = self._price(t, j, sign)
        sells = sign < 0
        short = sells & (qty > p * (1 + 1e-12) + 1e-12)
        for k in np.flatnonzero(short).tolist():
            ok[k] = False
            refusals.add(t, j[k], sign[k], qty[k], _SHORT, qty[k] * px[k],
                         max(float(p[k]), 0.0) * px[k])
        if self.track_lots and self.settlement.lots:
            nxt = min(t + 1, self.n_t - 1)
            for k in np.flatnonzero(sells & ok).tolist():
                col = int(j[k])
                day = int(self.daynum[nxt, self.cal[col]])
                paid = float(p[k]) - self.settlement.unpaid_qty(col, day)
                if float(qty[k]) > paid * (1 + 1e-12) + 1e-12:
                    ok[k] = False
                    refusals.add(t, col, sign[k], qty[k], _GOOD_FAITH, qty[k] * px[k],
                                 max(paid, 0.0) * px[k])
        buys = ~sells
        checked = ok & buys & np.isfinite(px)
        if not checked.any():  # only sells (or refused ones): no cash to check
            return ok
        fee = np.zeros(len(j))
        kk = np.flatnonzero(checked)
        fee[kk] = np.asarray(self.fees.fees(np.ones(len(kk)), qty[kk], px[kk]), np.float64)
        required = qty * px + fee
        # opening_qty with nothing open on the same side; priced at the mark, rate 1
        closing = np.where(sign > 0, np.maximum(0.0, -p), np.maximum(0.0, p))
        opening = np.maximum(0.0, qty - closing)
        counted = ok & (opening > 0) & np.isfinite(res_px)
        contrib = np.where(counted, opening * res_px * 1.0, 0.0)

        def fails(held: F64, k: Any) -> tuple[B, F64]:
            available = cash - held
            return required[k] > available * (1 + 1e-12) + 1e-9, np.maximum(available, 0.0)

        def fails_one(held: float, k: int, required: list[float]) -> tuple[bool, float]:
            available = cash - held
            return required[k] > available * (1 + 1e-12) + 1e-9, _max0(available)

        self._sequence(t, j, sign, qty, ok, checked, contrib, fails, fails_one, required,
                       refusals, _BUYING_POWER)
        return ok

    @staticmethod
    def _sequence(t: int, j: I64, sign: F64, qty: F64, ok: B, checked: B, contrib: F64,
                  fails: Any, fails_one: Any, required: F64, refusals: _Refusals,
                  rule: str) -> None:
        """Apply the buying-power check in submission order: each order sees the
        reservations of the accepted ones before it (a running sum, as the broker's).
        ``fails`` checks orders ``k`` (array) against reservations ``held``;
        ``fails_one`` is the same arithmetic on Python floats, for one order."""
        n = len(j)
        if not n:
            return
        held = np.zeros(n)
        if n > 1:
            np.add.accumulate(contrib[:-1], out=held[1:])
        idx = np.flatnonzero(checked)
        bad, _ = fails(held[idx], idx)
        if not bad.any():
            return
        first = int(idx[np.argmax(bad)])
        # The orders before the first refusal stand; from it on, one by one.
        total = float(held[first])
        is_checked, adds, needs = checked.tolist(), contrib.tolist(), required.tolist()
        for k in range(first, n):
            if is_checked[k]:
                no, available = fails_one(total, k, needs)
                if no:
                    ok[k] = False
                    refusals.add(t, j[k], sign[k], qty[k], rule, needs[k], available)
                    continue
            if ok[k]:
                total = total + adds[k]


class _Actions:
    """Splits and dividends bar by bar, as ``weight_targets_with_actions`` applies them:
    before bar ``t`` trades, a split multiplies positions and the pending orders, and the
    dividends due are paid (entitled on the position held into the ex bar)."""

    def __init__(self, sched: Schedule, n: int):
        self.sched = sched
        self.n = n
        self.splits = _split_rows(sched)
        self.ex_at: dict[int, list[int]] = {}
        for i in np.flatnonzero(sched.kind == DIVIDEND).tolist():
            self.ex_at.setdefault(int(sched.t[i]), []).append(i)
        self.pay_at: dict[int, list[int]] = {}
        for i in payment_order(sched).tolist():
            self.pay_at.setdefault(int(sched.pay_t[i]), []).append(i)
        self.entitled: dict[int, float] = {}

    def before_bar(self, t: int, pos: F64, live_j: I64, live_qty: F64, cash: float
                   ) -> tuple[F64, float]:
        """Apply bar ``t``'s actions: returns the pending quantities and the cash."""
        sched = self.sched
        if t in self.splits:
            cols, ratio = self.splits[t]
            pos[cols] = pos[cols] * ratio
            if len(live_j):
                live_qty = _split_qty(live_qty, live_j, cols, ratio, self.n)
        for i in self.ex_at.get(t, ()):
            held = float(pos[int(sched.col[i])])
            if held != 0.0:
                self.entitled[i] = held * float(sched.value[i])
        for i in self.pay_at.get(t, ()):
            if i in self.entitled:
                cash = cash + self.entitled.pop(i)
        return live_qty, cash


# ------------------------------------------------------------- the fast screen
def first_doubtful_close(bars: Bars, orders: _Orders, result: BacktestResult,
                         acct: CashAccount | MarginAccount, fees: FeeModel,
                         session_tz: str, cash0: float, has_financing: bool) -> int:
    """The first close at which ``acct`` might refuse an order (``orders``) of the
    unconstrained run ``result`` (``len(bars)``: none can be refused).

    Until a refusal the account changes nothing, so the unconstrained run is the
    account's run up to that close. Every order's check is evaluated at once across all
    bars from the unconstrained positions and cash, with sums that may round
    differently from the broker's (the equity, the margin, the reservations); a check
    that passes by more than a generous bound on that rounding (1e-9 of the amounts)
    passes exactly too. The others, and whatever the screen does not model (day trades
    and intraday buying power on bars sharing a trading day, a pattern day trader,
    good-faith lots), are doubtful: the caller runs the exact loop from there.
    """
    n_t = len(bars)
    ot, oj, sign, qty = orders.ot, orders.oj, orders.sign, orders.qty
    if not len(ot):
        return n_t
    pos = result.positions.to_numpy()
    cash = result.cash.to_numpy()
    p = pos[ot, oj]
    marks = _last_closes(bars.close)
    mark = marks[ot, oj]
    px = mark.copy()
    for k in np.flatnonzero(~np.isfinite(mark)).tolist():  # no close yet: the next open
        opens = bars.open[int(ot[k]) + 1:, int(oj[k])]
        ahead = np.flatnonzero(np.isfinite(opens))
        px[k] = float(opens[ahead[0]]) if len(ahead) else math.nan
    lift = np.where(sign > 0, 1.0 + acct.market_buffer, 1.0)
    px, res_px = px * lift, mark * lift
    closing = np.where(sign > 0, np.maximum(0.0, -p), np.maximum(0.0, p))
    opening = np.maximum(0.0, qty - closing)
    first = np.ones(len(ot), np.bool_)
    first[1:] = ot[1:] != ot[:-1]
    # Per close: held value and gross exposure as the result marks them (the same marks
    # wherever a position is held; rounded anyhow: within the bound).
    gross_value = orders.gross[ot]

    def held_of(contrib: F64) -> F64:
        """Reservations of the orders before each one at its close (rounded anyhow)."""
        run = np.cumsum(contrib) - contrib
        start = np.maximum.accumulate(np.where(first, np.arange(len(ot)), 0))
        out: F64 = run - run[start]
        return out

    doubtful = np.zeros(len(ot), np.bool_)
    if isinstance(acct, MarginAccount):
        sessions = bars.sessions if bars.sessions is not None else date_sessions(
            bars, session_tz)
        daynum = trading_day_numbers(sessions)
        if acct.pattern_day_trader or (n_t > 1 and bool((daynum[1:] == daynum[:-1]).any())):
            return 0  # day trades and intraday buying power: the exact loop decides
        syms = bars.symbols
        im = np.array([acct.initial_by_symbol.get(s, acct.initial) for s in syms])
        rate = im[oj]
        equity = (cash + orders.value)[ot]
        # |pos| x mark x rate, rounded in another order than the broker's (within the bound)
        if (im != im[0]).any():
            m0 = marks if not np.isnan(marks).any() else np.nan_to_num(marks)
            base = (np.abs(pos) * m0 * im).sum(axis=1)[ot]
        else:
            base = gross_value * im[0]
        checked = (opening > 0) & np.isfinite(px)
        contrib = np.where((opening > 0) & np.isfinite(res_px), opening * res_px * rate, 0.0)
        held = held_of(contrib)
        required = opening * px
        slack = np.maximum(equity - base - held, 0.0) / rate * (1 + 1e-12) + 1e-9 - required
        scale = (np.abs(cash[ot]) + gross_value + base + held) / rate + required
        doubtful = checked & ~(slack > 1e-9 * scale)
    else:
        sells = sign < 0
        doubtful |= sells & (qty > p * (1 + 1e-12) + 1e-12)  # shorts: refused
        checked = ~sells & np.isfinite(px)
        fee = np.zeros(len(ot))
        if checked.any():
            kk = np.flatnonzero(checked)
            fee[kk] = np.asarray(fees.fees(np.ones(len(kk)), qty[kk], px[kk]), np.float64)
        required = qty * px + fee
        ok = ~doubtful
        contrib = np.where(ok & (opening > 0) & np.isfinite(res_px), opening * res_px, 0.0)
        held = held_of(contrib)
        slack = (cash[ot] - held) * (1 + 1e-12) + 1e-9 - required
        scale = np.abs(cash[ot]) + held + required
        doubtful |= checked & ~(slack > 1e-9 * scale)
        if acct.good_faith == "refuse":
            if has_financing:
                return 0  # the lots need the cash after each fill with accruals
            lot_bar = _first_lot_bar(bars, orders, result, acct, session_tz, cash0)
            doubtful |= ot >= lot_bar
    bad = np.flatnonzero(doubtful)
    return int(ot[bad[0]]) if len(bad) else n_t


def hard_to_borrow_refuses(orders: _Orders, result: BacktestResult,
                           fin: VectorFinancing) -> bool:
    """Whether the broker would refuse an order of the unconstrained run ``result`` as a
    hard-to-borrow short (until it does, the run is the unconstrained one)."""
    if not len(orders.ot):
        return False
    held = result.positions.to_numpy()[orders.ot, orders.oj]
    refused, _ = fin.short_refused(orders.oj, orders.sign, orders.qty, held)
    return bool(refused.any())


def _max0(x: float) -> float:
    """``np.maximum(x, 0.0)`` of one float, bit for bit (NaN stays NaN, -0.0 gives 0.0)."""
    return x if x > 0.0 or x != x else 0.0


def _last_closes(close: F64) -> F64:
    """Each symbol's last close at each bar (``close`` itself when none is missing)."""
    return _ffill(close.copy()) if np.isnan(close).any() else close


def cap_never_binds(bars: Bars, orders: _Orders, share: float) -> bool:
    """Whether every fill of the unconstrained run of ``orders`` takes at most ``share``
    of its bar's volume (one order per symbol a bar, so
    :func:`~simbroker._paper_volume.capped_quantities` fills each whole): then the
    capped run is that run, fees included (``order_fees`` of a first fill is ``fees``).
    """
    fi = orders.fi
    qty = orders.qty[fi]
    return bool((qty <= share * bars.volume[orders.ot[fi] + 1, orders.oj[fi]]).all())


def _first_lot_bar(bars: Bars, orders: _Orders, result: BacktestResult, acct: CashAccount,
                   session_tz: str, cash0: float) -> int:
    """A bar no later than the first on which a buy of ``result`` (of ``orders``) was
    paid in part with unsettled proceeds (leaving good-faith lots); ``len(bars)`` when
    none was.

    On one calendar the proceeds unsettled at a buy are the sales of the last
    ``settlement_days`` trading days before it, a suffix of the fills: a running sum
    (rounded anyhow, so a buy within 1e-9 of its settled cash counts as one).
    """
    from simbroker.vectorized import _cash_ledger

    f = result.fills
    if f.empty:
        return len(bars)
    sessions = bars.sessions if bars.sessions is not None else date_sessions(bars, session_tz)
    if len(sessions.calendars) > 1:
        return 0  # day numbers of different calendars do not compare: the loop decides
    daynum = trading_day_numbers(sessions)[:, 0]
    ft = orders.ot[orders.fi] + 1  # the fills, in order: each the bar after its close
    sign = orders.sign[orders.fi]
    buy = sign > 0
    notional = f["notional"].to_numpy()
    fee = f["fee"].to_numpy()
    cash_after = _cash_ledger(cash0, sign, notional, fee)
    day = daynum[ft]
    proceeds = np.where(buy, 0.0, np.maximum(notional - fee, 0.0))
    run = np.concatenate([[0.0], np.cumsum(proceeds)])
    k = np.flatnonzero(buy)
    # Sales before buy k not settled by its day: fill index in [j, k) with day + days > D.
    j = np.searchsorted(day, day[k] - acct.settlement_days, side="right")
    j = np.minimum(j, k)
    unsettled = run[k] - run[j]
    scale = np.abs(cash_after[k]) + run[k] + 1.0
    lot = (unsettled > 0) & ~(cash_after[k] - unsettled > 1e-9 * scale)
    hit = np.flatnonzero(lot)
    return int(ft[k[hit[0]]]) if len(hit) else len(bars)


def run_account(bars: Bars, tgt: F64, weights: bool, integer: bool, cash0: float,
                slippage: SlippageModel, fees: FeeModel, clip_to_bar: bool, session_tz: str,
                acct: CashAccount | MarginAccount | None, share: float | None,
                fin: VectorFinancing | None) -> BacktestResult:
    """The result of share targets (or, with ``weights``, equity weights) ``tgt`` under
    the account ``acct`` (see the module docstring; ``None``: the account refuses
    nothing), optionally volume-capped at ``share`` (:mod:`simbroker._vector_volume`)
    and with borrow fees, interest and hard-to-borrow refusals ``fin``: the one
    bar-by-bar loop of the vectorized runner."""
    from simbroker._vector_volume import capped_result
    from simbroker.vectorized import _cash_ledger, _equity_row, _fill_prices, _tradable

    fees.reset()  # this pass prices the fills from the first bar: the ledgers start again
    n_t, n = tgt.shape
    book = None if acct is None else _Book(bars, acct, session_tz, fees)
    htb = fin if fin is not None and fin.refuses_shorts else None
    sched = broker_schedule(bars)
    acts = None if sched is None else _Actions(sched, n)
    tradable = _tradable(bars)
    close = _ffill(bars.close.copy()) if weights else bars.close
    volume = bars.volume
    pos = np.zeros(n)
    positions = np.zeros((n_t, n))
    cash_t = np.zeros(n_t)
    fin_fees = np.zeros(n_t)
    fin_paid = np.zeros(n_t)
    cash = cash0
    refusals = _Refusals([], [], [], [], [], [], [])
    o_t: list[np.ndarray] = []
    o_j: list[np.ndarray] = []
    o_sign: list[np.ndarray] = []
    o_qty: list[np.ndarray] = []
    o_fill: list[np.ndarray] = []
    f_t: list[np.ndarray] = []
    f_j: list[np.ndarray] = []
    f_sign: list[np.ndarray] = []
    f_qty: list[np.ndarray] = []
    f_px: list[np.ndarray] = []
    f_fee: list[np.ndarray] = []
    f_order: list[np.ndarray] = []
    n_orders = 0
    live_j = np.zeros(0, np.int64)
    live_sign = np.zeros(0)
    live_qty = np.zeros(0)
    live_first = 0
    for t in range(n_t):
        if acts is not None:
            new_qty, cash = acts.before_bar(t, pos, live_j, live_qty, cash)
            if new_qty is not live_qty:  # the order is split with the position
                live_qty = o_qty[-1] = new_qty
        if len(live_j):
            filled = np.zeros(len(live_j))
            hit = np.flatnonzero(tradable[t, live_j])
            if len(hit):
                j = live_j[hit]
                if share is None:
                    q = live_qty[hit]
                else:
                    q, _ = capped_quantities(j, live_qty[hit], volume[t, j], share)
                    keep = np.flatnonzero(q > 0)
                    hit, j, q = hit[keep], j[keep], q[keep]
                if len(hit):
                    sign = live_sign[hit]
                    price = _fill_prices(bars, np.full(len(j), t), j, sign, q, slippage,
                                         clip_to_bar)
                    if share is None:
                        fee = np.asarray(fees_at(fees, sign, q, price, bars.ts_ns[t]),
                                         np.float64)
                    else:
                        zero = np.zeros(len(j))
                        fee = np.asarray(order_fees_at(fees, sign, q, price, zero, zero,
                                                       bars.ts_ns[t]), np.float64)
                    notional = q * price
                    after_cash = _cash_ledger(cash, sign, notional, fee)
                    cash = float(after_cash[-1])
                    old = pos[j]  # position_after_fill: float dust snapped to 0
                    new = old + sign * q
                    new = np.where(np.abs(new) <= 1e-12 * np.maximum(np.abs(old), q), 0.0,
                                   new)
                    pos[j] = new
                    if book is not None:
                        book.on_fills(t, j, sign, q, notional, fee, old, new,
                                      after_cash)
                    filled[hit] = q
                    f_t.append(np.full(len(j), t))
                    f_j.append(j)
                    f_sign.append(sign)
                    f_qty.append(q)
                    f_px.append(price)
                    f_fee.append(fee)
                    f_order.append(live_first + hit)
            o_fill.append(filled)
        positions[t] = pos
        if fin is not None:
            k = fin.end_k.get(t)
            if k is not None:
                cash, fin_fees[t], fin_paid[t] = fin.accrue(k, pos, cash)
        cash_t[t] = cash
        if book is not None:
            book.after_bar(t)
        row = tgt[t]
        if weights:
            worth = _equity_row(cash, pos, close[t])
            with np.errstate(invalid="ignore", divide="ignore"):
                row = row * worth / close[t]
            row = np.where(np.isfinite(row), row, np.nan)
            if integer:
                row = np.trunc(row)
        with np.errstate(invalid="ignore"):
            delta = row - pos
        js = np.flatnonzero(~np.isnan(row) & (delta != 0))
        d = delta[js]
        sign_o, qty_o = np.where(d > 0, 1.0, -1.0), np.abs(d)
        if len(js) and htb is not None:  # refused before the account sees them
            no, short = htb.short_refused(js, sign_o, qty_o, pos[js])
            if no.any():
                for k in np.flatnonzero(no).tolist():
                    refusals.add(t, js[k], sign_o[k], qty_o[k], _HARD_TO_BORROW, short[k],
                                 htb.located[js[k]])
                kept = np.flatnonzero(~no)
                js, sign_o, qty_o = js[kept], sign_o[kept], qty_o[kept]
        if len(js) and book is not None:
            ok = book.accept(t, js, sign_o, qty_o, pos, cash, refusals)
            if not ok.all():
                js, sign_o, qty_o = js[ok], sign_o[ok], qty_o[ok]
        live_j, live_sign, live_qty = js, sign_o, qty_o
        live_first = n_orders
        n_orders += len(js)
        o_t.append(np.full(len(js), t))
        o_j.append(js)
        o_sign.append(live_sign)
        o_qty.append(live_qty)
    o_fill.append(np.zeros(len(live_j)))  # placed at the last close: never reached a bar

    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    equity, gross = mark_to_market(positions, marking_closes(bars.close))
    equity += cash_t
    config: dict[str, Any] = {"cash": cash0, "slippage": repr(slippage), "fees": repr(fees),
                              "allow_short": True}
    if fin is not None:
        config.update(borrow=repr(fin.borrow), interest=repr(fin.interest))
    if share is not None:
        config["max_volume_share"] = share
    result = capped_result(
        bars, cat(o_t, np.int64), cat(o_j, np.int64), cat(o_sign, np.float64),
        cat(o_qty, np.float64), cat(o_fill, np.float64), cat(f_t, np.int64),
        cat(f_j, np.int64), cat(f_sign, np.float64), cat(f_qty, np.float64),
        cat(f_px, np.float64), cat(f_fee, np.float64), cat(f_order, np.int64),
        positions=positions, cash_t=cash_t, equity=equity, gross=gross, cash0=cash0,
        config=config, session_tz=session_tz,
        financing=None if fin is None else (fin_fees, fin_paid),
        dividends=actions_vec.dividends_frame(bars, actions_vec.dividends_of(sched,
                                                                             positions)))
    if acct is not None or htb is not None:
        refusals.frame(bars)  # built for every run: the tests compare it with the twin's
        result.stats["n_refused"] = len(refusals.t)
    return result
