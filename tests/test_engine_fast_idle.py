"""The engine's and the small book's fast paths give exactly what the general paths give.

- ``backtest`` closes idle bars in its own loop (``engine._INLINE_IDLE``) instead of
  calling ``PaperBroker.step``: forced off, the same random strategies over the same bars
  give identical fills, cash, equity and orders, a strategy failure included, and the
  clock reads the same at every bar (the fast loop leaves it to ``clock._BarClock``,
  which derives it from the bar index; a strategy may also set it);
- the small book reads single bars through flat memoryviews of the panel
  (``PaperBroker._flat``): set to ``None`` (row views) it fills identically;
- the book's memoryviews see the arrays' values, growth included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import Bars, PaperBroker, engine
from simbroker._paper_book import OpenBook
from simbroker.errors import StrategyError
from simbroker.testing import run_order_stream
from simbroker.testing.strategies import bar_panels, order_streams

PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Scripted:
    """Submits the drawn orders at their bars; steps the broker itself at ``extra_step``
    bars (what a strategy may do), and raises at ``fail_at``."""

    def __init__(self, plan: dict[int, list[tuple[str, str, float, str]]],
                 extra_step: frozenset[int], fail_at: int | None, set_clock: int | None = None):
        self.plan, self.extra_step, self.fail_at = plan, extra_step, fail_at
        self.set_clock = set_clock
        self.times: list[tuple[int, object, int]] = []

    def on_bar(self, broker: simbroker.Broker, history: simbroker.History) -> None:
        if isinstance(broker, PaperBroker):
            self.times.append((history.t, broker.now(), broker.clock.ns))
        if history.t == self.fail_at:
            raise RuntimeError("planned failure")
        if history.t == self.set_clock and isinstance(broker, PaperBroker):
            broker.clock.set(broker.clock.ns + 1_000_000_000)  # a strategy may move it on
        for symbol, side, qty, kind in self.plan.get(history.t, []):
            if kind == "limit":
                close = float(history.last("close")[history.symbols.index(symbol)])
                broker.submit_order(symbol, side, qty, "limit", limit_price=close, tif="gtc")
            else:
                broker.submit_order(symbol, side, qty)
        if history.t in self.extra_step and isinstance(broker, PaperBroker) \
                and broker.has_next:
            broker.step()


@st.composite
def scripted(draw: st.DrawFn) -> tuple[Bars, Scripted, dict[str, object]]:
    n_symbols = draw(st.integers(1, 3))
    n_bars = draw(st.integers(5, 60))
    bars = simbroker.synthetic_bars(n_symbols=n_symbols, n_bars=n_bars,
                                    seed=draw(st.integers(0, 10_000)),
                                    freq=draw(st.sampled_from(["1D", "1min", "1h"])))
    plan: dict[int, list[tuple[str, str, float, str]]] = {}
    for _ in range(draw(st.integers(0, 12))):
        t = draw(st.integers(0, n_bars - 1))
        plan.setdefault(t, []).append((
            draw(st.sampled_from(list(bars.symbols))), draw(st.sampled_from(["buy", "sell"])),
            float(draw(st.integers(1, 500))), draw(st.sampled_from(["market", "limit"]))))
    extra = frozenset(draw(st.lists(st.integers(0, n_bars - 1), max_size=2)))
    fail_at = draw(st.none() | st.integers(0, n_bars - 1))
    set_clock = draw(st.none() | st.integers(0, n_bars - 1))
    kw: dict[str, object] = draw(st.sampled_from([
        {}, {"account": "margin", "cash": 1e6}, {"slippage": None, "fees": None},
        {"allow_short": False}]))
    return bars, Scripted(plan, extra, fail_at, set_clock), kw


def _outcome(bars: Bars, strategy: Scripted, kw: dict[str, object], inline: bool,
             monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:
    monkeypatch.setattr(engine, "_INLINE_IDLE", inline)
    strategy.times = []
    partial = None
    try:
        result = simbroker.backtest(strategy, bars, progress=False, **kw)  # type: ignore[arg-type]
        failed = None
    except StrategyError as exc:
        partial, failed = exc.result, (exc.bar, str(exc))
    except simbroker.errors.ClockError as exc:  # stepped past the end by the strategy
        return ("clock", str(exc), strategy.times)
    if failed is not None:
        assert partial is not None
        result = partial
    return (failed, result.fills, result.orders, result.cash, result.equity,
            result.final_positions, strategy.times)


def _same(a: object, b: object) -> None:
    if isinstance(a, (pd.DataFrame, pd.Series)):
        assert isinstance(b, type(a))
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True)
    else:
        assert a == b


@PROPS
@given(case=scripted())
def test_inline_idle_bars_match_step(case: tuple[Bars, Scripted, dict[str, object]]) -> None:
    bars, strategy, kw = case
    with pytest.MonkeyPatch.context() as mp:
        fast = _outcome(bars, strategy, kw, True, mp)
        slow = _outcome(bars, strategy, kw, False, mp)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        _same(a, b)


def test_inline_idle_is_taken() -> None:
    """The fast branch runs: an idle bar never reaches ``step`` on a plain broker."""
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=30, seed=1)
    calls = 0
    real = PaperBroker.step

    def counting(self: PaperBroker) -> int:
        nonlocal calls
        calls += 1
        return real(self)

    def buy_once(broker: simbroker.Broker, history: simbroker.History) -> None:
        if history.t == 10:
            broker.submit_order("SYM000", "buy", 1)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PaperBroker, "step", counting)
        result = simbroker.backtest(buy_once, bars, progress=False)
        assert calls == 1  # bar 11 only: it matches the one order
        assert len(result.fills) == 1
        mp.setattr(engine, "_INLINE_IDLE", False)
        calls = 0
        simbroker.backtest(buy_once, bars, progress=False)
        assert calls == 30


@PROPS
@given(data=st.data())
def test_flat_panel_reads_match_row_views(data: st.DataObject) -> None:
    bars = data.draw(bar_panels(n_symbols=st.integers(1, 4), n_bars=st.integers(2, 25),
                                allow_missing=True))
    orders = data.draw(order_streams(bars, max_size=15))
    kw = data.draw(st.sampled_from([{}, {"slippage": None, "fees": None},
                                    {"clip_to_bar": True}]))
    flat = run_order_stream(PaperBroker(bars, **kw), orders)  # type: ignore[arg-type]
    rows = PaperBroker(bars, **kw)  # type: ignore[arg-type]
    assert rows._flat is not None  # the panel is C-contiguous: the flat path is the default
    rows._flat = None
    run_order_stream(rows, orders)
    assert flat.get_fills() == rows.get_fills()
    assert flat.get_cash() == rows.get_cash()
    assert flat.get_positions() == rows.get_positions()
    assert flat.get_orders() == rows.get_orders()
    assert list(flat._ledger_cash) == list(rows._ledger_cash)


@given(rows=st.lists(st.tuples(st.integers(0, 50), st.floats(-1, 1), st.floats(1, 1e6),
                               st.integers(0, 4), st.floats(allow_nan=True),
                               st.integers(0, 2**62), st.booleans()), max_size=40))
@settings(max_examples=60, deadline=None)
def test_book_views_see_the_arrays(rows: list[tuple[int, float, float, int, float, int,
                                                      bool]]) -> None:
    book = OpenBook(capacity=2)  # grows several times
    for k, (sym, sign, qty, otype, price, bar, ext) in enumerate(rows):
        book.add(f"O{k}", sym, sign, qty, otype, price, -price, bar, bar + 1, bar + 2,
                 price * 2, price * 3, ext)
    n = book.n
    assert book.sym[:n].tolist() == [r[0] for r in rows]
    assert book.qty[:n].tolist() == [r[2] for r in rows]
    assert book.otype[:n].tolist() == [r[3] for r in rows]
    assert book.first_bar[:n].tolist() == [r[5] for r in rows]
    assert book.expire_bar[:n].tolist() == [r[5] + 1 for r in rows]
    assert book.trig_bar[:n].tolist() == [r[5] + 2 for r in rows]
    assert book.ext[:n].tolist() == [r[6] for r in rows]
    assert book.part_bar[:n].tolist() == [-1] * n
    for i in range(n):
        assert book.qty_mv[i] == book.qty.item(i)
        assert book.expire_mv[i] == book.expire_bar.item(i)
        for j in (0, 1):
            a, b = book.aux_mv[2 * i + j], book.aux.item(i, j)
            assert a == b or (a != a and b != b)
    if n:
        book.qty[0] = 7.5  # an array write is seen through the view
        assert book.qty_mv[0] == 7.5


def test_bar_clock_follows_the_bar_index() -> None:
    """``_BarClock`` reads the close of the owner's bar once the index moves, and a time
    set explicitly until it moves again; before ``attach`` it is a plain clock."""
    from simbroker.clock import SimulatedClock, _BarClock

    class Owner:
        _t = -1

    def reads(ns: int) -> None:
        assert clock.ns == ns
        assert clock.now() == SimulatedClock(ns).now()
        assert repr(clock) == repr(SimulatedClock(ns))

    clock = _BarClock(50)
    reads(50)
    owner = Owner()
    clock.attach(owner, np.array([100, 200, 300, 400], np.int64).data)
    reads(50)  # the index has not moved: the time set at construction
    owner._t = 0
    reads(100)
    clock._set_ns_unchecked(150)  # a bar's open while matching, before the index moves
    reads(150)
    owner._t = 1
    reads(200)
    clock.set(250)
    reads(250)
    with pytest.raises(simbroker.errors.ClockError):
        clock.set(240)
    clock._ns = 260  # what PaperBroker.step writes on its idle branch
    reads(260)
    owner._t = 3
    reads(400)
    clock.detach()  # keeps the time it shows, follows nothing
    owner._t = 2
    reads(400)
    assert isinstance(clock, SimulatedClock)


def test_backtest_leaves_no_cycle_through_the_clock() -> None:
    """The bar clock is detached after the run: the broker (which holds it) is freed by
    reference counting, and its clock still reads the last bar's close."""
    import gc
    import weakref

    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=20, seed=2)
    seen: list[weakref.ref[simbroker.Broker]] = []
    clocks: list[object] = []

    def keep(broker: simbroker.Broker, history: simbroker.History) -> None:
        if not seen:
            seen.append(weakref.ref(broker))
            clocks.append(broker.clock)  # type: ignore[attr-defined]
        if history.t == 3:
            broker.submit_order("SYM000", "buy", 1)

    enabled = gc.isenabled()
    gc.disable()
    try:
        result = simbroker.backtest(keep, bars, progress=False)
        assert seen[0]() is None
    finally:
        if enabled:
            gc.enable()
    assert len(result.fills) == 1
    assert clocks[0].ns == int(bars.close_ns[-1])  # type: ignore[attr-defined]
