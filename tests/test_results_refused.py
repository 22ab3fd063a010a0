"""An event-driven run with an account reports ``stats["n_refused"]``, the orders the
account refused, as ``backtest_vectorized(account=...)`` does for the same targets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker.accounts import CashAccount, MarginAccount
from simbroker.testing.strategies import bar_panels, target_frames
from simbroker.vectorized import TargetPositions, backtest_vectorized

BIG = st.one_of(st.just(np.nan), st.integers(-400, 400).map(float))
ACCOUNTS: list[Any] = [None, "cash", "margin", lambda: CashAccount(settlement_days=2),
                       lambda: MarginAccount(pattern_day_trader=True, pdt_equity=1_000.0)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_event_driven_counts_the_refusals_the_vectorized_run_counts(
        data: st.DataObject) -> None:
    bars = data.draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 20)))
    targets = data.draw(target_frames(bars, elements=BIG))
    make = data.draw(st.sampled_from(ACCOUNTS))
    cash = data.draw(st.sampled_from([2_000.0, 12_345.678]))

    def account() -> Any:
        return make() if callable(make) else make

    twin = TargetPositions(targets)
    event = simbroker.backtest(twin, bars, cash=cash, account=account())
    fast = backtest_vectorized(bars, targets=targets, cash=cash, account=account())
    pd.testing.assert_frame_equal(event.fills, fast.fills, check_exact=True)
    if make is None:
        assert "n_refused" not in event.stats
        assert "n_refused" not in fast.stats
        return
    assert event.stats["n_refused"] == fast.stats["n_refused"] == twin.n_refused
    assert list(event.stats.keys()) == list(fast.stats.keys())


def test_a_tight_cash_account_refuses_and_both_runners_say_how_often() -> None:
    bars = simbroker.Bars.from_arrays(
        pd.date_range("2024-01-02", periods=4, freq="1D"), ["A"],
        **{f: np.full((4, 1), 100.0) for f in ("open", "high", "low", "close")},
        volume=np.full((4, 1), 1e6))
    targets = pd.DataFrame({"A": [50.0, 50.0, 50.0, 50.0]}, index=bars.index)
    twin = TargetPositions(targets)
    event = simbroker.backtest(twin, bars, cash=1_000.0, account="cash")
    fast = backtest_vectorized(bars, targets=targets, cash=1_000.0, account="cash")
    assert event.stats["n_refused"] == fast.stats["n_refused"] == twin.n_refused == 4  # each close
