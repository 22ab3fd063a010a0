"""The margin check's lean bound (MarginAccount._take) against the exact figures.

An order the bound lets through must be one the exact test lets through, with the same
outcome everywhere else: random long books, cash around the order's requirement (the
bound's edge), random initial rates (some above one half, where the bound is off),
market, limit and stop orders on both sides.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker import PaperBroker, synthetic_bars
from simbroker.accounts import MarginAccount
from simbroker.errors import OrderRejected
from simbroker.types import Order

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ORDER = st.tuples(st.integers(0, 2), st.sampled_from(["buy", "buy", "sell"]),
                  st.one_of(st.sampled_from([1.0, 10.0, 100.0]), st.floats(0.01, 1e4)),
                  st.sampled_from(["market", "market", "limit", "stop"]),
                  st.floats(0.5, 1.5),
                  # cash as a multiple of what the order needs plus what is reserved
                  st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.0 - 1e-12, 1.0 + 1e-12,
                                             1.0 - 2e-12, 1.0 + 3e-12, 2.0, 1e6]),
                            st.floats(0.999, 1.001), st.floats(-1.0, 3.0)),
                  st.booleans())


def _outcome(fn: Any) -> tuple[str, ...]:
    try:
        fn()
    except OrderRejected as exc:
        return (type(exc).__name__, str(exc), repr(sorted(vars(exc).items())))
    return ("ok",)


class _Counted(MarginAccount):
    """Counts the orders the lean bound decided."""

    lean_hits = 0

    def _take(self, *args: Any) -> bool:
        lean = super()._take(*args)
        if lean:
            _Counted.lean_hits += 1
        return lean


@PROPS
@given(held=st.one_of(st.just([0.0, 0.0, 0.0]), st.lists(st.one_of(
           st.sampled_from([0.0, 1e-3, 1.0, 500.0, -1.0, -500.0]), st.floats(-1e5, 1e5)),
           min_size=3, max_size=3)),  # flat: equity - initial is the cash, the bound's edge
       initial=st.one_of(st.just([0.5, 0.5, 0.5]), st.lists(st.sampled_from(
           [0.5, 0.3, 0.25, 0.75, 1.0]), min_size=3, max_size=3)),
       buffer=st.sampled_from([0.0, 0.05]), orders=st.lists(ORDER, min_size=1, max_size=12),
       steps=st.integers(1, 3), short_edge=st.booleans())
def test_lean_bound_decides_as_the_exact_figures(
        held: list[float], initial: list[float], buffer: float,
        orders: list[tuple[int, str, float, str, float, float, bool]], steps: int,
        short_edge: bool) -> None:
    bars = synthetic_bars(n_symbols=3, n_bars=8, seed=11)
    syms = bars.symbols
    acct = MarginAccount(initial_by_symbol=dict(zip(syms, initial, strict=True)),
                         maintenance=0.25, market_buffer=buffer)
    b = PaperBroker(bars, cash=1e9, account=acct, slippage=0,
                    positions={s: q for s, q in zip(syms, held, strict=True) if q})
    for _ in range(steps):
        b.step()
    for col, side, qty, kind, f, scale, place in orders:
        px = float(bars.close[b._t, col]) * f
        order = Order.create(syms[col], side, qty, kind,
                             limit_price=px if kind == "limit" else None,
                             stop_price=px if kind == "stop" else None)
        need = qty * acct.price(order, col) * float(acct._im[col])
        acct._track()
        edge = need + acct._reservations.held(b, acct.marks(), acct._im, buffer)
        # the bound's edge: 1.5 x the kept bound of the shorts' value above that
        b._cash = scale * (edge + (1.5 * acct._short_bound if short_edge else 0.0))
        acct._lean_ok = acct._bounded and bool(acct._im.max() <= 0.5)
        lean = _outcome(lambda o=order, c=col: acct.check(o, c))
        acct._lean_ok = False
        assert lean == _outcome(lambda o=order, c=col: acct.check(o, c))
        assert lean == _outcome(lambda o=order, c=col: acct._check(o, c, None))
        if place:
            b._cash = 1e12  # placed whatever the check said: it reserves for the next one
            with contextlib.suppress(OrderRejected):
                b.submit_order(syms[col], side, qty, kind, limit_price=order.limit_price,
                               stop_price=order.stop_price)


def test_lean_bound_is_taken_and_switched_off() -> None:
    bars = synthetic_bars(n_symbols=3, n_bars=8, seed=11)
    acct = _Counted()
    b = PaperBroker(bars, cash=1e6, account=acct, slippage=0, positions={"SYM000": 10.0})
    b.step()
    before = _Counted.lean_hits
    b.submit_order("SYM001", "buy", 10)
    assert _Counted.lean_hits == before + 1
    assert acct.lean_check
    assert acct._lean_ok
    off = MarginAccount(initial_by_symbol={"SYM002": 0.75})  # a rate above one half
    PaperBroker(bars, cash=1e6, account=off)
    assert not off._lean_ok
    b2 = PaperBroker(bars, cash=1e6, account=_Counted(), positions={"SYM000": -10.0})
    b2.step()
    before = _Counted.lean_hits
    b2.submit_order("SYM001", "buy", 10)  # a small short: the bound covers it
    assert _Counted.lean_hits == before + 1
    b3 = PaperBroker(bars, cash=1e4, account=_Counted(), positions={"SYM000": -1000.0})
    b3.step()
    with contextlib.suppress(OrderRejected):
        b3.submit_order("SYM001", "buy", 10)  # 1.5 x the short's bound is over the cash
    assert _Counted.lean_hits == before + 1


def test_lean_bound_can_be_switched_off_for_a_class() -> None:
    class Exact(MarginAccount):
        lean_check = False

    bars = synthetic_bars(n_symbols=3, n_bars=8, seed=11)
    acct = Exact()
    PaperBroker(bars, cash=1e6, account=acct)
    assert not acct._lean_ok
    assert np.isfinite(acct.info()["buying_power"])


class _CheckedFloor(MarginAccount):
    """Asserts at each bar close that the kept bound covers the shorts' value at the
    marks, and that a floor >= 0 means no margin call by the exact figures."""

    floors = 0  # per instance once counted (a class counter would carry across examples)

    def _after_bar(self, t: int) -> None:
        b = self.broker
        pos, marks = b._pos, np.nan_to_num(self.marks())
        self._track()
        assert set(self._parts) == set(np.flatnonzero(pos < 0).tolist())
        assert self._short_bound >= float(np.sum(np.where(pos < 0, -pos * marks, 0.0)))
        if self._floor() >= 0.0:
            self.floors += 1
            equity, initial, mm = self.requirements()
            assert equity >= mm
            assert equity >= initial
        super()._after_bar(t)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000),
       cash=st.sampled_from([-5_000.0, 0.0, 500.0, 2_000.0, 5_000.0, 1e6]),
       start=st.sampled_from([0.0, -5.0, -40.0, 30.0]))
def test_floor_bounds_the_margin_figures(seed: int, cash: float, start: float) -> None:
    bars = synthetic_bars(n_symbols=3, n_bars=40, seed=seed)
    acct = _CheckedFloor(liquidate=True)
    b = PaperBroker(bars, cash=cash, account=acct, slippage=0,
                    positions={"SYM002": start} if start else None)
    rng = np.random.default_rng(seed)
    while b.has_next:
        b.step()
        sym = bars.symbols[int(rng.integers(0, 3))]
        with contextlib.suppress(OrderRejected):
            b.submit_order(sym, "buy" if rng.random() < 0.5 else "sell",
                           float(rng.integers(1, 60)))


def test_the_floor_decides_each_bar_of_a_rich_long_short_book() -> None:
    bars = synthetic_bars(n_symbols=3, n_bars=40, seed=1)
    acct = _CheckedFloor(liquidate=True)
    b = PaperBroker(bars, cash=1e6, account=acct, slippage=0,
                    positions={"SYM000": 10.0, "SYM002": -5.0})
    while b.has_next:
        b.step()
    assert acct.floors == len(bars.index)
