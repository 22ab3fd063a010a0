"""The paper broker's fast daily borrow fee (``borrow_total_into``) against the general
arithmetic (``borrow_fees`` and ``np.sum``): the same bits, alone and over whole runs.

Panels go past 8 and 128 symbols, where numpy's pairwise sum changes shape, so a sum in
another order (or over the short positions only) would show."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import BorrowModel, InterestModel
from simbroker.bars import Bars
from simbroker.financing._accrue import borrow_fees, borrow_total_into
from simbroker.financing._paper import PaperFinancing
from simbroker.tradelog import read_trade_log
from simbroker.vectorized import TargetPositions, backtest_vectorized

_POS = st.one_of(st.sampled_from([0.0, -0.0, 100.0, -100.0, -1.0, -1e6]),
                 st.floats(-1e7, 1e7, allow_nan=False, allow_subnormal=False))
_CLOSE = st.one_of(st.just(np.nan), st.floats(1e-4, 1e5, allow_nan=False,
                                               allow_subnormal=False))
_RATE = st.one_of(st.sampled_from([0.0, 0.03, 0.5]), st.floats(0.0, 2.0))


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


@st.composite
def _days(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    n = draw(st.sampled_from([1, 7, 8, 9, 17, 100, 128, 129, 200, 300]))
    pos = draw(hnp.arrays(np.float64, n, elements=_POS))
    close = draw(hnp.arrays(np.float64, n, elements=_CLOSE))
    rates = draw(hnp.arrays(np.float64, n, elements=_RATE))
    days = draw(st.sampled_from([1.0, 2.0, 3.0, 4.0, 0.5]))
    day_count = draw(st.sampled_from([360.0, 365.0, 252.0]))
    return pos, close, rates, days, day_count


@settings(max_examples=200, deadline=None)
@given(_days())
def test_fast_day_total_and_fees_have_the_general_bits(
        case: tuple[np.ndarray, np.ndarray, np.ndarray, float, float]) -> None:
    pos, close, rates, days, day_count = case
    fees = borrow_fees(pos, close, rates, days, day_count)
    expected = float(np.sum(fees))
    out = np.full(len(pos), 7.0)
    got = borrow_total_into(out, pos, np.where(np.isnan(close), 0.0, close),
                            -(rates * (days / day_count)), np.zeros(len(pos)))
    assert np.isfinite(got)  # finite inputs, no overflow at these sizes
    assert got == expected
    if expected != 0.0:  # a zero total books nothing, whatever its sign
        assert _bits(got) == _bits(expected)
    nz = np.flatnonzero(fees)
    np.testing.assert_array_equal(np.flatnonzero(out), nz)
    assert out[nz].tobytes() == fees[nz].tobytes()


def test_a_non_finite_fast_total_falls_back_to_the_general_arithmetic() -> None:
    """A NaN position: borrow_fees counts it 0, the fast total is NaN, apply recomputes."""
    pos = np.array([-10.0, np.nan, -5.0] + [1.0] * 9)
    close = np.linspace(1.0, 2.0, len(pos))
    rates = np.full(len(pos), 0.03)
    out = np.empty(len(pos))
    fast = borrow_total_into(out, pos, close, -(rates / 360.0), np.zeros(len(pos)))
    assert np.isnan(fast)
    fin = _financing(close.reshape(1, -1))
    total, fees = fin._borrow(pos, 0, 0, 1.0)
    assert _bits(total) == _bits(float(np.sum(borrow_fees(pos, close, rates, 1.0, 360.0))))
    assert fees is not fin._fees


def _financing(close: np.ndarray) -> PaperFinancing:
    ts = pd.date_range("2024-01-02", periods=close.shape[0], freq="1D", tz="UTC")
    syms = [f"S{j}" for j in range(close.shape[1])]
    bars = Bars.from_arrays(ts, syms, open=close, high=close, low=close, close=close,
                            volume=np.full_like(close, 1e6), interval="1D")
    broker = simbroker.PaperBroker(bars, borrow=BorrowModel(rate=0.03))
    fin = broker._financing
    assert fin is not None
    return fin


# ------------------------------------------------------------------ whole runs
@st.composite
def _runs(draw: st.DrawFn) -> tuple[Bars, pd.DataFrame, dict[str, Any]]:
    n_sym = draw(st.sampled_from([9, 16, 130]))
    n_bars = draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.03, (n_bars, n_sym)), axis=0))
    if draw(st.booleans()):  # a symbol never priced, one priced late
        close[:, 0] = np.nan
        close[: n_bars // 2, 1] = np.nan
    ts = pd.bdate_range("2024-01-03", periods=n_bars, tz="UTC")
    syms = [f"S{j:03d}" for j in range(n_sym)]
    bars = Bars.from_arrays(ts, syms, open=close, high=close, low=close, close=close,
                            volume=np.where(np.isnan(close), np.nan, 1e7), interval="1D")
    qty = rng.choice([-300.0, -7.0, 0.0, 5.0, 250.0, np.nan], size=(n_bars, n_sym),
                     p=[0.2, 0.15, 0.1, 0.15, 0.1, 0.3])
    targets = pd.DataFrame(qty, index=bars.index, columns=syms)
    rate = draw(st.sampled_from([0.03, 0.5]))
    kw = {"cash": draw(st.sampled_from([1e7, 1_000.0])), "slippage": 0.0, "fees": 1.0,
          "borrow": BorrowModel(rate=rate, rates={syms[2]: 0.0, syms[3]: 1.7}),
          "interest": InterestModel(debit=0.08, credit=draw(st.sampled_from([0.0, 0.02])))}
    return bars, targets, kw


def _general_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every PaperFinancing take borrow_fees' path."""
    init = PaperFinancing.__init__

    def slow_init(self: PaperFinancing, *args: Any) -> None:
        init(self, *args)
        self._fast = False

    monkeypatch.setattr(PaperFinancing, "__init__", slow_init)


@settings(max_examples=20, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_runs())
def test_fast_and_general_runs_are_the_same_bits_and_records(
        tmp_path_factory: pytest.TempPathFactory,
        case: tuple[Bars, pd.DataFrame, dict[str, Any]]) -> None:
    bars, targets, kw = case
    d = tmp_path_factory.mktemp("paths")
    fast = simbroker.backtest(TargetPositions(targets), bars, trade_log=d / "fast.jsonl", **kw)
    with pytest.MonkeyPatch.context() as mp:
        _general_only(mp)
        slow = simbroker.backtest(TargetPositions(targets), bars, trade_log=d / "slow.jsonl",
                                  **kw)
    for name in ("cash", "equity", "borrow_fees", "interest"):
        pd.testing.assert_series_equal(getattr(fast, name), getattr(slow, name),
                                       check_exact=True)
    assert fast.stats["borrow_fees"] == slow.stats["borrow_fees"]
    assert _accruals(d / "fast.jsonl") == _accruals(d / "slow.jsonl")
    vec = backtest_vectorized(bars, targets=targets, **kw)
    for name in ("cash", "borrow_fees", "interest"):
        pd.testing.assert_series_equal(getattr(vec, name), getattr(fast, name),
                                       check_exact=True)


def _accruals(path: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("wall", "seq")}
            for r in read_trade_log(path) if r["event"] in ("borrow_fee", "interest")]
