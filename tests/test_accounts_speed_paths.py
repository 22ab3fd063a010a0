"""The accounts' speed paths against the general code they stand in for, on random
inputs: lazy marks, the margin check for a new order, the margin-call bound, market
order pricing and the fill loops give the same floats and the same decisions."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker import Bars, PaperBroker, synthetic_bars
from simbroker.accounts import Account, CashAccount, MarginAccount
from simbroker.accounts._marks import Marks, last_closes
from simbroker.accounts._reserve import Reservations, order_price, reserved
from simbroker.errors import OrderRejected
from simbroker.risk._exposure import worst_fill_price
from simbroker.sessions import Sessions
from simbroker.types import Order, Side

PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PRICE = st.one_of(st.sampled_from([np.nan, 0.0, 1.0, 100.0, 1e300]), st.floats(0.0, 1e6))


def _bits(a: Any) -> bytes:
    return np.asarray(a, np.float64).tobytes()


def _bars(close: np.ndarray) -> Bars:
    n_t, n = close.shape
    ts = pd.date_range("2024-06-03 14:30", periods=n_t, freq="1D", tz="UTC")
    return Bars.from_arrays(ts, [f"S{i}" for i in range(n)], open=close, high=close,
                            low=close, close=close, volume=np.full_like(close, 1e6))


@PROPS
@given(rows=st.lists(st.lists(PRICE, min_size=3, max_size=3), min_size=1, max_size=12),
       reads=st.lists(st.integers(-1, 11), max_size=12), start=st.integers(-1, 11))
def test_lazy_marks_are_the_last_closes(rows: list[list[float]], reads: list[int],
                                        start: int) -> None:
    close = np.array(rows, np.float64)
    n_t = len(close)
    for dense in (None, False):  # found out (a view on a panel with no gap), or kept
        marks = Marks(close, min(start, n_t - 1), dense=dense)
        for t in reads:
            t = min(t, n_t - 1)
            assert _bits(marks.at(t)) == _bits(last_closes(close, t))
            assert _bits(marks.advance(t)) == _bits(last_closes(close, max(t, marks.t)))


def _old_order_price(order: Order, mark: float, buffer: float) -> float:
    """order_price before its market-order shortcut."""
    last = mark if math.isfinite(mark) else None
    worst = worst_fill_price(order, last)
    if worst is None:
        return float("nan")
    own = order.limit_price if order.limit_price is not None else order.stop_price
    if own is None or worst != own:
        worst *= (1.0 + buffer) if order.side is Side.BUY else 1.0
    return float(worst)


@PROPS
@given(side=st.sampled_from(["buy", "sell"]),
       kind=st.sampled_from(["market", "limit", "stop", "stop_limit"]),
       mark=st.one_of(PRICE, st.just(-0.0), st.just(math.inf)), own=st.floats(0.01, 1e6),
       buffer=st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
def test_market_order_price_shortcut(side: str, kind: str, mark: float, own: float,
                                     buffer: float) -> None:
    order = Order.create("S0", side, 10.0, kind,
                         limit_price=own if "limit" in kind else None,
                         stop_price=own if "stop" in kind else None)
    assert _bits(order_price(order, mark, buffer)) == _bits(
        _old_order_price(order, mark, buffer))


ACTION = st.tuples(st.sampled_from(["buy", "sell", "step", "step"]), st.integers(0, 2),
                   st.one_of(st.sampled_from([1.0, 50.0, 100.0, 1000.0, 5000.0]),
                             st.floats(0.01, 1e4)),
                   st.sampled_from(["market", "market", "limit", "stop"]),
                   st.floats(0.5, 1.5))


class _FreshFloor(MarginAccount):
    """Computes the lean floor afresh at each call and asserts the kept one is the same
    float, and :meth:`_next_days` against :meth:`next_day` for every column."""

    def _floor(self) -> float:
        kept = super()._floor()
        self._floor_rows = -1  # drop what is kept: the full computation
        fresh = super()._floor()
        assert _bits(kept) == _bits(fresh)
        return kept

    def _next_days(self) -> list[int]:
        row = super()._next_days()
        assert [row[self._cals[c]] for c in range(len(self._cals))] == [
            self.next_day(c) for c in range(len(self._cals))]
        return row


def _outcome(fn: Any) -> tuple[str, ...]:
    try:
        fn()
    except OrderRejected as exc:
        return (type(exc).__name__, str(exc), repr(sorted(vars(exc).items())))
    return ("ok",)


@PROPS
@given(actions=st.lists(ACTION, max_size=30),
       cash=st.sampled_from([2_000.0, 20_000.0, 30_000.0, 1e6]),
       params=st.fixed_dictionaries({
           "pattern_day_trader": st.booleans(), "pdt_check": st.booleans(),
           "maintenance": st.sampled_from([0.25, 0.5]), "market_buffer": st.sampled_from(
               [0.0, 0.05])}), venue=st.sampled_from([None, "ibkr"]))
def test_margin_check_for_a_new_order_is_the_general_check(
        actions: list[tuple[str, int, float, str, float]], cash: float,
        params: dict[str, Any], venue: str | None) -> None:
    bars = synthetic_bars(n_symbols=3, n_bars=30, seed=5, freq="1h",
                          start="2024-06-03 13:30")
    acct = _FreshFloor(**params)
    b = PaperBroker(bars, cash=cash, account=acct, slippage=0, positions={"SYM001": -40.0},
                    venue=venue)
    b.step()
    general = acct._check
    compared = 0
    for what, col, qty, kind, f in actions:
        if what == "step":
            if b.has_next:
                b.step()
            continue
        sym = bars.symbols[col]
        px = float(bars.close[b._t, col]) * f
        order = Order.create(sym, what, qty, kind, limit_price=px if kind == "limit" else None,
                             stop_price=px if kind == "stop" else None)
        fast = _outcome(lambda o=order, c=col: acct.check(o, c))
        assert fast == _outcome(lambda o=order, c=col: general(o, c, None))
        compared += 1
        with contextlib.suppress(OrderRejected):
            b.submit_order(sym, what, qty, kind, limit_price=order.limit_price,
                           stop_price=order.stop_price)
    assert compared or not any(a[0] != "step" for a in actions)


@PROPS
@given(pos=st.lists(st.one_of(st.sampled_from([0.0, 1.0, 100.0, 1e12, -1.0]),
                              st.floats(-1e6, 1e9)), min_size=3, max_size=3),
       row=st.lists(PRICE, min_size=3, max_size=3),
       cash=st.one_of(st.sampled_from([0.0, -1.0, 1e-300, 1e9]), st.floats(-1e9, 1e12)),
       maintenance=st.sampled_from([0.25, 0.5, 0.3]))
def test_no_call_bound_never_misses_a_margin_call(pos: list[float], row: list[float],
                                                  cash: float, maintenance: float) -> None:
    close = np.array([row, row], np.float64)
    acct = MarginAccount(maintenance=maintenance, initial=max(0.5, maintenance))
    b = PaperBroker(_bars(close), cash=1.0, account=acct)
    b.step()
    b._cash = cash
    for col, q in enumerate(pos):  # as the broker changes a position: with a ledger row
        b._pos[col] = q
        b._ledger_bar.append(b._t)
        b._ledger_sym.append(col)
        b._ledger_cash.append(cash)
        b._ledger_pos.append(q)
    prices = np.array(row)
    assert acct._no_call() == (cash >= 0 and min(pos) >= 0 and not np.isinf(prices).any()
                               and not (prices < 0).any())
    if acct._no_call():
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 x 1e12
            equity, _, mm = acct.requirements()
        assert not (mm > 0 and equity < mm)


def test_no_call_bound_is_off_for_negative_prices() -> None:
    close = np.array([[10.0, -1.0], [10.0, 2.0]])
    acct = MarginAccount()
    PaperBroker(_bars(close), cash=1.0, account=acct)
    assert not acct._bounded


class _DictFills(MarginAccount):
    """Books each fill through the Fill-dict loop."""

    def on_bar_close(self, t: int) -> None:
        n = len(self.broker._fills)
        if self._cursor < n:
            self._book_dicts(self._cursor, n)
        self._after_bar(t)


class _GenericFills(MarginAccount):
    """Books each fill through the general loop (an _on_fill override)."""

    def _on_fill(self, *args: Any) -> None:
        super()._on_fill(*args)


class _DictCash(CashAccount):
    def on_bar_close(self, t: int) -> None:
        n = len(self.broker._fills)
        if self._cursor < n:
            self._book_dicts(self._cursor, n)
        self._after_bar(t)


def _two_calendars(bars: Bars, seed: int) -> Bars:
    """``bars`` with its symbols on two calendars whose trading days change at
    different bars (calendar 0 every 3 to 7 bars, calendar 1 every 2 to 5)."""
    rng = np.random.default_rng(seed)
    n = len(bars)
    day = np.empty((n, 2), "datetime64[D]")
    for j, (lo, hi) in enumerate(((3, 8), (2, 6))):
        lengths = rng.integers(lo, hi, n)
        day[:, j] = (np.repeat(np.arange(n), lengths)[:n] + 19_800).astype("datetime64[D]")
    columns = np.arange(bars.n_symbols) % 2
    sessions = Sessions(calendars=("c0", "c1"), columns=columns,
                        regular=np.ones((n, 2), np.bool_), day=day)
    return dataclasses.replace(bars, sessions=sessions)


def _trade_at_random(b: PaperBroker, seed: int, p: float) -> None:
    """Step ``b`` through its bars; after each, each symbol trades with probability ``p``
    (a sell of a long position more often than a buy, 1 to 49 shares; refusals pass)."""
    rng = np.random.default_rng(seed)
    while b.has_next:
        b.step()
        for sym in b.bars.symbols:
            if rng.random() < p:
                held = b.get_positions().get(sym, 0.0)
                side = "sell" if held > 0 and rng.random() < 0.6 else "buy"
                with contextlib.suppress(OrderRejected):
                    b.submit_order(sym, side, float(rng.integers(1, 50)))


def _day_trade_run(account: Account, seed: int, calendars: int = 1) -> tuple[Any, ...]:
    bars = synthetic_bars(n_symbols=3 if calendars > 1 else 2, n_bars=60, seed=seed,
                          freq="1h", start="2024-06-03 13:30")
    if calendars > 1:
        bars = _two_calendars(bars, seed)
    b = PaperBroker(bars, cash=1e6, account=account, slippage=0)
    _trade_at_random(b, seed, 0.5)
    trades = account.day_trades  # all of it, not only the window the snapshot keeps
    return (account.snapshot(), account.info(), list(trades.days), list(trades.calendars),
            trades.opened_day.tolist())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), calendars=st.sampled_from([1, 2]))
def test_fill_loops_book_the_same(seed: int, calendars: int) -> None:
    want = _day_trade_run(MarginAccount(), seed, calendars)
    assert _day_trade_run(_DictFills(), seed, calendars) == want
    assert _day_trade_run(_GenericFills(), seed, calendars) == want
    assert _day_trade_run(_DictCash(), seed, calendars) == \
        _day_trade_run(CashAccount(), seed, calendars)
    if calendars > 1:
        assert want[2], "no day trade counted: the case proves nothing"


def test_one_call_books_fills_of_several_bars_and_calendars() -> None:
    """The day-trade loop looks a day up again when the bar or the calendar changes
    between fills: all of a run's fills booked in one call count as one by one."""
    bars = _two_calendars(synthetic_bars(n_symbols=3, n_bars=60, seed=7, freq="1h",
                                         start="2024-06-03 13:30"), 7)
    runs = []
    for late in (False, True):
        acct = _GenericFills() if not late else MarginAccount()
        b = PaperBroker(bars, cash=1e6, account=acct, slippage=0)
        if late:  # the fast loop, called once over every fill at the end
            acct.on_bar_close = lambda t: None  # type: ignore[method-assign]
        _trade_at_random(b, 7, 0.6)
        if late:
            acct._count_day_trades(acct._cursor, len(b._fills))
        t = acct.day_trades
        runs.append((list(t.days), list(t.calendars), t.opened_day.tolist()))
    assert runs[0] == runs[1]
    assert len(set(runs[0][1])) == 2, "day trades on one calendar only: proves less"


class _CheckedShorts(_FreshFloor):
    """Asserts at each bar close that the shorts kept from the ledger are the positions'."""

    def _after_bar(self, t: int) -> None:
        b = self.broker
        want = self._bounded and b._cash >= 0 and bool((b._pos >= 0).all())
        assert self._no_call() == want
        super()._after_bar(t)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cash=st.sampled_from([-5_000.0, 1_000.0, 1e6]))
def test_shorts_kept_from_the_ledger(seed: int, cash: float) -> None:
    bars = synthetic_bars(n_symbols=3, n_bars=40, seed=seed)
    b = PaperBroker(bars, cash=cash, account=_CheckedShorts(), slippage=0,
                    positions={"SYM002": -5.0})
    rng = np.random.default_rng(seed)
    while b.has_next:
        b.step()
        sym = bars.symbols[int(rng.integers(0, 3))]
        with contextlib.suppress(OrderRejected):
            b.submit_order(sym, "buy" if rng.random() < 0.5 else "sell",
                           float(rng.integers(1, 20)))


@PROPS
@given(orders=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["buy", "sell"]),
                                 st.one_of(st.sampled_from([1.0, 100.0, 0.1]),
                                           st.floats(0.01, 1e5)),
                                 st.sampled_from(["market", "limit", "stop"]),
                                 st.floats(0.5, 1.5), st.booleans()), max_size=25),
       buffer=st.sampled_from([0.0, 0.05]),
       unpriced=st.one_of(st.none(), st.integers(0, 2)))
def test_plain_reservation_walk_is_the_full_pass(
        orders: list[tuple[int, str, float, str, float, bool]], buffer: float,
        unpriced: int | None) -> None:
    bars = synthetic_bars(n_symbols=3, n_bars=10, seed=2)
    b = PaperBroker(bars, cash=1e9, slippage=0, positions={"SYM000": 50.0, "SYM001": -30.0})
    b.step()
    kept = Reservations()
    rates = np.array([0.3, 0.7, 0.45])  # not powers of two: products round
    marks = last_closes(b._close, b._t)
    if unpriced is not None:  # a column with no mark: its market orders hold nothing
        marks[unpriced] = np.nan
    for col, side, qty, kind, f, read in orders:
        px = float(bars.close[b._t, col]) * f
        b.submit_order(bars.symbols[col], side, qty, kind,
                       limit_price=px if kind == "limit" else None,
                       stop_price=px if kind == "stop" else None)
        if read:  # the kept sums go on over the orders placed since
            assert _bits(kept.held(b, marks, rates, buffer)) == _bits(
                reserved(b, marks, rates, buffer))
    assert _bits(kept.held(b, marks, rates, buffer)) == _bits(reserved(b, marks, rates, buffer))


def test_day_numbers_are_kept_per_sessions_and_handed_out_as_copies() -> None:
    """A run may move its day numbers (``days_before``) or replace a calendar's days: the
    next run on the same sessions gets them as first computed."""
    from simbroker.accounts._days import _numbers, calendar_days, trading_day_numbers
    from simbroker.sessions import date_sessions

    bars = synthetic_bars(n_symbols=2, n_bars=30, seed=3, freq="6h")
    s = date_sessions(bars, "America/New_York")
    first = trading_day_numbers(s)
    first[:, 0] += 7
    assert np.array_equal(trading_day_numbers(s), _numbers(s))
    assert not np.array_equal(trading_day_numbers(s), first)
    days = calendar_days(s)
    want = days[0].copy()
    days[0] = days[0][:1]
    assert np.array_equal(calendar_days(s)[0], want)
    with pytest.raises(ValueError, match="read-only"):  # kept days cannot change in place
        calendar_days(s)[0][0] = np.datetime64("2000-01-01")
