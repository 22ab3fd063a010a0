"""The small book's shortcuts under a volume cap and schedule fees, each against the path
it skips, on the same random inputs (bit for bit):

- ``fits_whole`` (every order whole, each alone on its symbol) against ``capped_lists``;
- ``Matching._small_fees`` pricing a schedule straight by ``scalar_fees`` against
  ``fill_fees``, and ``_capped_small`` without ``fits_whole``, on random order streams;
- ``Booking._part_t`` (the bar of the latest partial fill): a bar matched again after a
  failed trade-log write still skips the orders it already filled in part.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import Bars, PaperBroker, _paper_match, _paper_volume
from simbroker._paper_volume import capped_lists, fits_whole
from simbroker.errors import TradeLogError
from simbroker.testing import run_order_stream
from simbroker.testing.strategies import OrderSpec, bar_panels

PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FLOATS = st.one_of(st.sampled_from([0.0, -0.0, 1.0, 100.0, 2_500.0, math.nan, math.inf]),
                   st.floats(-10.0, 1e7))


# an order's size against its share of the bar: on the edge, just over, well over
RATIO = st.one_of(st.sampled_from([1.0, 1.0 + 2**-52, 1 - 2**-53, 1.2, 0.5]),
                  st.floats(0.0, 3.0))


@st.composite
def _fill(draw: st.DrawFn, share: float) -> tuple[int, float, float]:
    volume = draw(FLOATS)
    if draw(st.booleans()):  # a size near the cap (floored to whole shares or not)
        size = draw(RATIO) * share * volume
        return draw(st.integers(0, 5)), float(math.floor(size)) if draw(
            st.booleans()) and math.isfinite(size) else size, volume
    return draw(st.integers(0, 5)), draw(FLOATS), volume


@PROPS
@given(data=st.data(), share=st.sampled_from([1e-5, 0.025, 0.5, 1.0]))
def test_fits_whole_says_true_only_where_capped_lists_fills_every_order_whole(
        data: st.DataObject, share: float) -> None:
    fills = data.draw(st.lists(_fill(share), max_size=12))
    sym = [f[0] for f in fills]
    remaining = [f[1] for f in fills]
    volume = [f[2] for f in fills]
    q, whole = capped_lists(sym, remaining, volume, share)
    every = all(whole) and (not q or min(q) > 0)  # _capped_small's common case
    if fits_whole(sym, remaining, volume, share):
        assert every
        assert repr(q) == repr(remaining)
    elif len(set(sym)) == len(sym):  # alone on their symbols: the shortcut decides
        assert not every


@pytest.mark.parametrize(("sym", "remaining", "volume", "fits"), [
    ([0], [62.0], [2_500.0], True), ([0], [62.5], [2_500.0], True),  # 0.025 x 2,500 = 62.5
    ([0], [63.0], [2_500.0], False), ([0], [0.0], [2_500.0], False),
    ([0, 1], [10.0, 70.0], [2_500.0, 2_500.0], False), ([0, 0], [1.0, 1.0], [1e6, 1e6], False),
    ([1, 0], [1.0, 2.0], [1e6, 1e6], True), ([0], [1.0], [math.nan], False), ([], [], [], True)])
def test_fits_whole_on_the_edges(sym: list[int], remaining: list[float], volume: list[float],
                                 fits: bool) -> None:
    assert fits_whole(sym, remaining, volume, 0.025) is fits
    q, whole = capped_lists(sym, remaining, volume, 0.025)
    assert (all(whole) and (not q or min(q) > 0)) is (fits or len(set(sym)) < len(sym))


@st.composite
def _orders(draw: st.DrawFn, bars: Bars) -> list[OrderSpec]:
    def one(bar: int) -> OrderSpec:
        return OrderSpec(bar=bar, symbol=draw(st.sampled_from(bars.symbols)),
                         side=draw(st.sampled_from(["buy", "sell"])),
                         qty=draw(st.one_of(st.integers(1, 3_000).map(float),
                                            st.floats(0.01, 500.0))),
                         tif=draw(st.sampled_from(["day", "gtc", "ioc", "fok"])))
    bars_of = st.integers(-1, max(len(bars) - 2, -1))
    return sorted((one(draw(bars_of)) for _ in range(draw(st.integers(0, 30)))),
                  key=lambda o: o.bar)


@contextmanager
def _general(fees: bool, cap: bool) -> Iterator[None]:
    """Take ``fill_fees`` for schedules (``fees``) and ``capped_lists`` for every cap
    (``cap``) where the shortcuts would have gone around them."""
    rates, whole = _paper_match._scalar_rates, _paper_match.fits_whole

    def no_schedule(*args: Any) -> Any:
        slip, scalar, rate, _ = rates(*args)
        return slip, scalar, rate, None

    try:
        if fees:
            _paper_match._scalar_rates = no_schedule
        if cap:
            _paper_match.fits_whole = lambda *args: False
        yield
    finally:
        _paper_match._scalar_rates, _paper_match.fits_whole = rates, whole


def _outcome(bars: Bars, orders: list[OrderSpec], kw: dict[str, Any]) -> str:
    broker = PaperBroker(bars, **kw)
    broker._small_book = 10**9  # the small-book path only
    run_order_stream(broker, orders)
    return repr((broker.get_fills(), broker.get_cash(), broker.get_positions(),
                 broker.get_orders(), broker._ledger_cash, broker._ledger_pos))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), fees=st.sampled_from(["ibkr_fixed", "alpaca", "ibkr_tiered"]),
       share=st.sampled_from([1e-4, 1e-3, 0.025, 1.0]), general=st.sampled_from(
           [(True, False), (False, True), (True, True)]))
def test_the_shortcuts_fill_and_charge_as_the_general_small_path(
        data: st.DataObject, fees: str, share: float, general: tuple[bool, bool]) -> None:
    bars = data.draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 20),
                                allow_missing=data.draw(st.booleans())))
    orders = data.draw(_orders(bars))
    kw = {"fees": fees, "max_volume_share": share, "cash": 1e7,
          "slippage": data.draw(st.sampled_from([0.0, 5.0]))}
    fast = _outcome(bars, orders, kw)
    with _general(*general):
        slow = _outcome(bars, orders, kw)
    assert fast == slow


class _FailOnce:
    """A trade log whose ``n``-th ``filled`` record fails once (the others are written)."""

    def __init__(self, log: Any, n: int) -> None:
        self.log, self.n, self.filled = log, n, 0

    def write(self, event: str, ts: Any, **fields: Any) -> Any:
        if event == "filled":
            self.filled += 1
            if self.filled == self.n:
                raise TradeLogError("no space left on device")
        return self.log.write(event, ts, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


def _capped_run(tmp_path: Any, fail_at: int | None) -> tuple[str, int]:
    """Two symbols: a big order on the first (filled in parts, alone on its symbol: a bar
    matched again does not count the share its part took) and each bar a small one on
    the second; ``fail_at``: the filled record whose write fails once (the bar is stepped
    again). Returns the outcome and how many bars were matched again."""
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=12, freq="1D", seed=5)
    a, b = bars.symbols
    broker = PaperBroker(bars, fees="ibkr_fixed", max_volume_share=0.001, cash=1e8,
                         trade_log=tmp_path / f"log{fail_at}.jsonl")
    broker._small_book = 10**9
    if fail_at is not None:
        broker._log = _FailOnce(broker._log, fail_at)  # type: ignore[assignment]
    retried = 0
    while broker.has_next:
        if broker.bar_index < 0:
            broker.submit_order(a, "buy", 20_000.0, tif="gtc")
        if broker.bar_index < 8:
            broker.submit_order(b, "sell", 10.0, tif="gtc")
        try:
            broker.step()
        except TradeLogError:
            retried += 1
            broker.step()
    parts = [(f["order_id"], f["qty"], f["price"], f["fee"]) for f in broker.get_fills()]
    broker.close()
    return repr((parts, broker.get_cash(), broker.get_positions(),
                 [(o["order_id"], o["status"], o["filled_qty"]) for o in
                  broker.get_orders()])), retried


@pytest.mark.parametrize("fail_at", [2, 3, 5, 8, 13, 21])
def test_a_bar_matched_again_after_a_failed_write_skips_its_parts(
        tmp_path: Any, fail_at: int) -> None:
    want, _ = _capped_run(tmp_path, None)
    got, retried = _capped_run(tmp_path, fail_at)
    assert retried == 1
    assert got == want


def test_the_shortcuts_run_on_a_capped_schedule_book(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both sides must be exercised above: here the skipped calls would raise.
    def skipped(*args: object) -> None:
        raise AssertionError("the general path ran")

    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=30, freq="1D", seed=3)
    monkeypatch.setattr(_paper_match, "fill_fees", skipped)
    monkeypatch.setattr(_paper_match, "capped_lists", skipped)
    broker = PaperBroker(bars, fees="ibkr_fixed", max_volume_share=0.025, cash=1e7)
    orders = [OrderSpec(bar=t, symbol=s, side="buy" if t % 3 else "sell", qty=100.0)
              for t in range(0, 28, 2) for s in bars.symbols]
    run_order_stream(broker, orders)
    assert len(broker.get_fills()) == len(orders)
    assert np.isfinite(broker.get_cash())
    assert _paper_volume.SMALL > 0  # capped_lists would have run: not forced to arrays
