"""A short of a hard-to-borrow symbol beyond its locate: the vectorized runner refuses the
orders the paper broker refuses (``HardToBorrow``), as the twin skips them, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import simbroker
from simbroker import Bars
from simbroker.errors import HardToBorrow, StrategyError
from simbroker.financing import BorrowModel, InterestModel
from simbroker.testing.strategies import bar_panels, fee_models, slippage_models, target_frames
from simbroker.vectorized import TargetPositions, backtest_vectorized
from tests.test_vectorized_accounts import (
    ACCOUNTS,
    BIG,
    FAST,
    Maker,
    assert_identical,
    flat_bars,
    frame,
    run_both,
)


def borrow_models(symbols: tuple[str, ...]) -> st.SearchStrategy[BorrowModel]:
    """Some symbols hard to borrow, some of those with a locate."""
    return st.builds(
        lambda htb, loc, rate: BorrowModel(rate=rate, hard_to_borrow=htb,
                                           located={s: loc for s in sorted(htb)[:1]}),
        st.sets(st.sampled_from(symbols), min_size=1),
        st.sampled_from([50.0, 100.0, 0.3]), st.sampled_from([0.0, 0.03]))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Bars, pd.DataFrame, Maker | None, dict[str, Any]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 4), n_bars=st.integers(1, 25),
                           allow_zero_volume=True, allow_missing=draw(st.booleans())))
    targets = draw(target_frames(bars, elements=BIG))
    kw: dict[str, Any] = {
        "slippage": draw(slippage_models()),
        "fees": draw(st.one_of(fee_models(), st.just("ibkr_fixed"))),
        "cash": draw(st.sampled_from([2_000.0, 100_000.0])),
        "max_volume_share": draw(st.sampled_from([None, None, 0.5])),
        "borrow": draw(borrow_models(bars.symbols)),
    }
    if draw(st.booleans()):
        kw["interest"] = InterestModel(debit=0.08)
    return bars, targets, draw(st.sampled_from([None, *ACCOUNTS])), kw


def check(event: Any, fast: Any, twin: TargetPositions, refused: Any) -> None:
    if "n_refused" in fast.stats and "n_refused" not in event.stats and refused is None \
            and twin.n_refused == 0:
        assert fast.stats["n_refused"] == 0  # screened: nothing refused
    assert_identical(event, fast, twin, refused)


@settings(FAST, max_examples=40)
@given(cases())
def test_event_driven_equals_vectorized_shorting_hard_to_borrow_symbols(case: Any) -> None:
    bars, targets, make_account, kw = case
    event, fast, twin, refused = run_both(bars, make_account or (lambda s: None),
                                          targets=targets, **kw)
    check(event, fast, twin, refused)


@settings(FAST, max_examples=25)
@given(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 20), allow_missing=True),
       st.data())
def test_weights_shorting_hard_to_borrow_symbols(bars: Bars, data: st.DataObject) -> None:
    w = data.draw(hnp.arrays(np.float64, (len(bars), bars.n_symbols), elements=st.one_of(
        st.just(np.nan), st.floats(-1.5, 1.5, allow_nan=False, allow_subnormal=False))))
    weights = pd.DataFrame(w, index=bars.index, columns=list(bars.symbols))
    kw = {"borrow": data.draw(borrow_models(bars.symbols)),
          "max_volume_share": data.draw(st.sampled_from([None, 0.1]))}
    make_account = data.draw(st.sampled_from([None, *ACCOUNTS]))
    event, fast, twin, refused = run_both(bars, make_account or (lambda s: None),
                                          weights=weights, **kw)
    check(event, fast, twin, refused)


def test_a_short_beyond_the_locate_is_refused_and_retried() -> None:
    bars = flat_bars(5, [10.0, 20.0])
    targets = frame(bars, {0: [-100.0, -100.0], 1: [-40.0, -100.0], 2: [-60.0, np.nan]})
    borrow = BorrowModel(rate=0.05, hard_to_borrow={"S0"}, located={"S0": 50.0})
    twin = TargetPositions(targets)
    event = simbroker.backtest(twin, bars, cash=10_000.0, borrow=borrow)
    fast = backtest_vectorized(bars, targets=targets, cash=10_000.0, borrow=borrow)
    # S0: -100 refused (50 located), -40 accepted, then -60 (a short of 60) refused.
    assert fast.positions["S0"].tolist() == [0.0, 0.0, -40.0, -40.0, -40.0]
    assert fast.positions["S1"].tolist() == [0.0, -100.0, -100.0, -100.0, -100.0]
    assert fast.stats["n_refused"] == twin.n_refused == 2
    assert twin.refused["rule"].tolist() == ["hard_to_borrow"] * 2
    assert twin.refused["required"].tolist() == [100.0, 60.0]
    assert twin.refused["available"].tolist() == [50.0, 50.0]
    pd.testing.assert_frame_equal(fast.fills, event.fills, check_exact=True)
    pd.testing.assert_series_equal(fast.cash, event.cash, check_exact=True)
    pd.testing.assert_series_equal(fast.borrow_fees, event.borrow_fees, check_exact=True)


def test_the_twin_can_raise_and_exits_are_refused_with_the_way_out() -> None:
    bars = flat_bars(3, [10.0])
    targets = frame(bars, {0: [-10.0]})
    borrow = BorrowModel(hard_to_borrow={"S0"})
    with pytest.raises(StrategyError) as info:
        simbroker.backtest(TargetPositions(targets, on_refused="raise"), bars, borrow=borrow)
    assert isinstance(info.value.__cause__, HardToBorrow)
    with pytest.raises(ValueError, match="TargetExits"):
        backtest_vectorized(bars, targets=targets, borrow=borrow, stop_loss=0.1)
