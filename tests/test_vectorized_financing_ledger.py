"""VectorFinancing.ledger (all days at once, Python floats from the first interest day)
equals the day-by-day loop over VectorFinancing.accrue, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker.bars import Bars
from simbroker.financing import BorrowModel, InterestModel
from simbroker.financing._vector import VectorFinancing, _flows
from simbroker.sessions import date_sessions

F64 = np.ndarray


def day_by_day(fin: VectorFinancing, cash0: float, fill_bar: np.ndarray, sign: F64,
               notional: F64, fee: F64, positions: F64
               ) -> tuple[np.ndarray, F64, F64, F64]:
    """The ledger as one accrual a day (the reference: ``accrue`` is the broker's step)."""
    n_t = positions.shape[0]
    flow_bar, flows = _flows(fill_bar, sign, notional, fee, None)
    ends = fin.ends[fin.ends < n_t]
    cut = np.searchsorted(flow_bar, ends, side="right")
    flow_cash = np.empty(len(flows))
    acc_cash = np.empty(len(ends))
    fees = np.zeros(n_t)
    paid = np.zeros(n_t)
    cur, lo = float(cash0), 0
    for k, t in enumerate(ends.tolist()):
        hi = int(cut[k])
        if hi > lo:
            run = np.add.accumulate(np.concatenate([[cur], flows[lo:hi]]))
            flow_cash[lo:hi] = run[1:]
            cur, lo = float(run[-1]), hi
        cur, fees[t], paid[t] = fin.accrue(k, positions[t], cur)
        acc_cash[k] = cur
    if lo < len(flows):
        run = np.add.accumulate(np.concatenate([[cur], flows[lo:]]))
        flow_cash[lo:] = run[1:]
    bars = np.concatenate([flow_bar, ends.astype(np.int64)])
    phase = np.concatenate([np.zeros(len(flows), np.int64), np.ones(len(ends), np.int64)])
    order = np.lexsort((phase, bars))
    return bars[order], np.concatenate([flow_cash, acc_cash])[order], fees, paid


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[VectorFinancing, float, tuple[np.ndarray, ...]]:
    n_t = draw(st.integers(1, 60))
    n = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    freq = draw(st.sampled_from(["1D", "1B", "6h"]))
    ts = pd.date_range("2024-01-05 14:00", periods=n_t, freq=freq, tz="UTC")
    close = 10.0 + rng.random((n_t, n)) * 90.0
    close[rng.random((n_t, n)) < draw(st.sampled_from([0.0, 0.2]))] = np.nan
    bars = Bars.from_arrays(ts, [f"S{j}" for j in range(n)], open=close, high=close,
                            low=close, close=close, volume=np.full((n_t, n), 1e6),
                            interval="6h" if freq == "6h" else "1D")
    rate = st.sampled_from([0.0, 0.03, 0.5])
    borrow = draw(st.sampled_from([None, BorrowModel(rate=draw(rate),
                                                     rates={"S0": draw(rate)})]))
    interest = draw(st.sampled_from([None, InterestModel(
        debit=draw(rate), credit=draw(st.sampled_from([0.0, 0.02])),
        day_count=draw(st.sampled_from([360.0, 365.0])))]))
    fin = VectorFinancing(bars, date_sessions(bars, "America/New_York"), borrow, interest)
    positions = np.round(rng.standard_normal((n_t, n)) * 50.0) * (rng.random((n_t, n)) < 0.7)
    n_f = draw(st.integers(0, 3 * n_t))
    fill_bar = np.sort(rng.integers(0, n_t, n_f)).astype(np.int64)
    sign = np.where(rng.random(n_f) < 0.5, 1.0, -1.0)
    notional = rng.random(n_f) * draw(st.sampled_from([1e2, 1e5]))
    fee = rng.random(n_f) * 3.0
    cash0 = draw(st.sampled_from([0.0, 1_234.5678, 100_000.0, -5_000.0]))
    return fin, cash0, (fill_bar, sign, notional, fee, positions)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers())
def test_the_ledger_equals_one_accrual_a_day(
        case: tuple[VectorFinancing, float, tuple[np.ndarray, ...]]) -> None:
    fin, cash0, (fill_bar, sign, notional, fee, positions) = case
    got = fin.ledger(cash0, fill_bar, sign, notional, fee, None, positions)
    want = day_by_day(fin, cash0, fill_bar, sign, notional, fee, positions)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a).view(np.int64), np.asarray(b).view(np.int64))
