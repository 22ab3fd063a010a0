"""A bar matched again after a failed trade-log write, under ``max_volume_share``.

``PaperBroker.step`` promises that when a write fails the bar does not close, and that
stepping again books only the rest. The fills booked before the failure took their share
of the bar: the retried bar gives the rest of its orders what the first matching gave
them, so a run with a failed write and a retry fills exactly as an uninterrupted run,
and the bar's ``share * volume`` is never exceeded.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_partial_fills import panel

from simbroker import Bars, PaperBroker
from simbroker.errors import TradeLogError
from simbroker.testing.strategies import bar_panels, fee_models, slippage_models
from simbroker.tradelog import TradeLog


class FailingLog:
    """A trade log whose ``k``-th ``filled`` record fails (once), the others written."""

    def __init__(self, log: TradeLog, k: int) -> None:
        self.log, self.k, self.filled, self.failed = log, k, 0, 0

    def write(self, event: str, ts: Any, **fields: Any) -> Any:
        if event == "filled":
            self.filled += 1
            if self.filled == self.k:
                self.failed += 1
                raise TradeLogError("no space left on device")
        return self.log.write(event, ts, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


Plan = list[list[tuple[str, str, float, str, str]]]


def submit_bar(b: PaperBroker, bars: Bars, orders: list[Any], t: int) -> None:
    """Submit bar ``t``'s planned orders (limits at the last close)."""
    for sym, side, qty, kind, tif in orders:
        col = bars.symbol_index(sym)
        last = bars.close[t - 1, col] if t else bars.open[0, col]
        limit = float(last) if kind == "limit" and last == last else None
        b.submit_order(sym, side, qty, "limit" if limit is not None else "market",
                       limit_price=limit, tif=tif)


def run(bars: Bars, plan: Plan, *, share: float, fail_at: int | None = None,
        small_book: int | None = None, **kw: Any) -> tuple[PaperBroker, int]:
    """Replay ``plan`` (each bar's orders: symbol, side, qty, type, tif; a limit at the
    last close); with ``fail_at`` the ``fail_at``-th fill write fails and the bar is
    stepped again. Returns the broker and how many steps were retried."""
    with tempfile.TemporaryDirectory() as tmp:
        log = TradeLog(Path(tmp) / "t.jsonl")
        b = PaperBroker(bars, max_volume_share=share, cash=1e9, trade_log=log, **kw)
        if small_book is not None:
            b._small_book = small_book
        failing = None
        if fail_at is not None:
            failing = FailingLog(log, fail_at)
            b._log = failing  # type: ignore[assignment]
        retried = 0
        for t in range(len(bars)):
            submit_bar(b, bars, plan[t], t)
            try:
                b.step()
            except TradeLogError:
                retried += 1
                b.step()
        b.close()
    return b, retried


def fills_of(b: PaperBroker) -> list[tuple[Any, ...]]:
    return [(f["fill_id"], f["timestamp"], f["qty"], f["price"], f["fee"])
            for f in b.get_fills()]


def taken_per_bar(b: PaperBroker, bars: Bars) -> dict[tuple[int, str], float]:
    idx = {ts: i for i, ts in enumerate(bars.ts_ns // 1000 * 1000)}
    taken: dict[tuple[int, str], float] = defaultdict(float)
    for f in b.get_fills():
        taken[(idx[int(pd.Timestamp(f["timestamp"]).value)], f["symbol"])] += f["qty"]
    return taken


# ---------------------------------------------------------------------- by hand
@pytest.mark.parametrize("small_book", [0, 10**9], ids=["numpy", "small"])
def test_the_retry_gives_the_later_order_only_what_the_earlier_one_left(
        small_book: int) -> None:
    # 2.5% of 4,000 = 100 a bar: A takes its 60, B the 40 left, then 20 on the next bar.
    # The write of B's part fails: the retried bar must not give B the whole 100 again.
    bars = panel([4000.0] * 4)
    plan: Plan = [[("A", "buy", 60.0, "market", "gtc"), ("A", "buy", 60.0, "market", "gtc")],
                  [], [], []]
    clean, _ = run(bars, plan, share=0.025, small_book=small_book, slippage=0, fees=None)
    failed, retried = run(bars, plan, share=0.025, fail_at=2, small_book=small_book,
                          slippage=0, fees=None)
    assert retried == 1
    assert [f["qty"] for f in clean.get_fills()] == [60.0, 40.0, 20.0]
    assert fills_of(failed) == fills_of(clean)
    assert max(taken_per_bar(failed, bars).values()) <= 100.0


def test_a_fok_the_cap_split_stays_out_of_the_retried_bar() -> None:
    # Cap 100.5: X takes 100, the fok of 0.8 behind it cannot fill whole in the 0.5 left
    # and is left out, Y takes 0.3 of it. The write of Y's fill fails: on the retried
    # bar the fok must stay out (the whole cap is not there for it again).
    bars = panel([4020.0] * 3)
    plan: Plan = [[("A", "buy", 100.0, "market", "gtc"), ("A", "buy", 0.8, "market", "fok"),
                   ("A", "buy", 0.3, "market", "gtc")], [], []]
    clean, _ = run(bars, plan, share=0.025, slippage=0, fees=None)
    assert [f["qty"] for f in clean.get_fills()] == [100.0, 0.3]
    failed, retried = run(bars, plan, share=0.025, fail_at=2, slippage=0, fees=None)
    assert retried == 1
    assert fills_of(failed) == fills_of(clean)


@pytest.mark.parametrize("small_book", [0, 10**9], ids=["numpy", "small"])
def test_an_order_placed_before_the_retry_shares_only_what_the_bar_has_left(
        small_book: int) -> None:
    bars = panel([4000.0] * 3)
    with tempfile.TemporaryDirectory() as tmp:
        log = TradeLog(Path(tmp) / "t.jsonl")
        b = PaperBroker(bars, max_volume_share=0.025, slippage=0, fees=None,
                        trade_log=log, cash=1e9)
        b._small_book = small_book
        b._log = FailingLog(log, 2)  # type: ignore[assignment]
        first = b.submit_order("A", "buy", 30, tif="gtc")["order_id"]
        second = b.submit_order("A", "buy", 50, tif="gtc")["order_id"]
        with pytest.raises(TradeLogError):
            b.step()
        # Before the retry: a new order, and the unbooked one replaced to another size.
        late = b.submit_order("A", "buy", 100, tif="gtc")["order_id"]
        b.replace_order(second, qty=60)
        assert b.step() == 0
        b.close()
    got = {f["order_id"]: f["qty"] for f in b.get_fills()}
    assert got[first] == 30.0
    assert sum(got.values()) == 100.0  # the bar's whole cap, never more
    assert got[second] == 60.0  # in time priority: the replaced order, then the new one
    assert got.get(late, 0.0) == 10.0


# ---------------------------------------------------------------------- properties
@st.composite
def books(draw: st.DrawFn) -> tuple[Bars, float, Plan]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 8),
                           allow_missing=draw(st.booleans())))
    share = draw(st.sampled_from([1e-6, 1e-5, 1e-4, 0.025, 1.0]))
    plan = draw(st.lists(st.lists(st.tuples(
        st.sampled_from(bars.symbols), st.sampled_from(["buy", "sell"]),
        st.one_of(st.integers(1, 500).map(float), st.floats(0.1, 300.0)),
        st.sampled_from(["market", "market", "limit"]),
        st.sampled_from(["day", "gtc", "ioc", "fok"])), max_size=4),
        min_size=len(bars), max_size=len(bars)))
    return bars, share, plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.integers(1, 12), st.sampled_from([0, 10**9]), fee_models(),
       slippage_models())
def test_a_retried_run_fills_as_the_uninterrupted_one_and_keeps_the_cap(
        book: tuple[Bars, float, Plan], fail_at: int, small_book: int, fees: Any,
        slippage: Any) -> None:
    bars, share, plan = book
    kw: dict[str, Any] = {"share": share, "small_book": small_book, "fees": fees,
                          "slippage": slippage}
    clean, _ = run(bars, plan, **kw)
    failed, retried = run(bars, plan, fail_at=fail_at, **kw)
    assert retried == (1 if fail_at <= len(clean.get_fills()) else 0)
    assert fills_of(failed) == fills_of(clean)  # qty, price, fee: fill for fill, exactly
    assert failed.get_cash() == clean.get_cash()
    assert failed.get_positions() == clean.get_positions()
    assert [(o["order_id"], o["status"], o["filled_qty"]) for o in failed.get_orders()] == \
        [(o["order_id"], o["status"], o["filled_qty"]) for o in clean.get_orders()]
    for (t, sym), q in taken_per_bar(failed, bars).items():
        cap = share * float(bars.volume[t, bars.symbol_index(sym)])
        assert q <= cap * (1 + 1e-12) + 1e-9, (t, sym, q, cap)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.lists(st.integers(1, 12), min_size=2, max_size=4, unique=True))
def test_several_failed_writes_in_one_run_still_fill_as_the_uninterrupted_one(
        book: tuple[Bars, float, Plan], fail_at: list[int]) -> None:
    """Each failure fails one write; a bar may fail twice (its memo is not replaced by
    the second attempt)."""
    bars, share, plan = book
    clean, _ = run(bars, plan, share=share, fees=1.0, slippage=5.0)
    with tempfile.TemporaryDirectory() as tmp:
        log = TradeLog(Path(tmp) / "t.jsonl")
        b = PaperBroker(bars, max_volume_share=share, cash=1e9, trade_log=log, fees=1.0,
                        slippage=5.0)
        writes = {"filled": 0}
        fails = set(fail_at)

        class Log:
            def write(self, event: str, ts: Any, **fields: Any) -> Any:
                if event == "filled":
                    writes["filled"] += 1
                    if writes["filled"] in fails:
                        raise TradeLogError("disk full")
                return log.write(event, ts, **fields)

            def __getattr__(self, name: str) -> Any:
                return getattr(log, name)

        b._log = Log()  # type: ignore[assignment]
        for t in range(len(bars)):
            submit_bar(b, bars, plan[t], t)
            for _ in range(len(fails) + 1):
                try:
                    b.step()
                    break
                except TradeLogError:
                    continue
        b.close()
    assert fills_of(b) == fills_of(clean)
    assert b.get_cash() == clean.get_cash()
