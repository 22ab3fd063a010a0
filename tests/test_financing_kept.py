"""The paper broker's kept short positions (``PaperFinancing._keep``: ``min(pos, 0)`` and
the short columns followed through the ledger, the day's fee in two multiplies and a
sum) against the fast path that scans the positions (``borrow_total_into``) and the
general arithmetic (``borrow_fees``): the same cash bits, amounts and records, day by
day and over whole runs.

Each day a few positions change with a ledger row each (as the broker's fills and splits
write them), some start short before any row, some go NaN (the kept path turns off);
panels go past 8 and 128 symbols, where numpy's pairwise sum changes shape."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import BorrowModel, InterestModel
from simbroker.bars import Bars
from simbroker.financing._paper import PaperFinancing
from simbroker.vectorized import TargetPositions

_QTY = st.sampled_from([0.0, -0.0, 100.0, -100.0, -1.0, -7.5, 3.0, -1e6, 1e-3, -1e-3])


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


class _Log:
    """The trade log's ``write``, kept in a list."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def write(self, event: str, now: object, **fields: Any) -> None:
        self.records.append((event, fields))


class _Clock:
    def now(self) -> None:
        return None


class _Broker:
    """What ``PaperFinancing.apply`` reads and writes of a broker."""

    def __init__(self, pos: np.ndarray, cash: float, logged: bool) -> None:
        self._pos = pos.copy()
        self._cash = cash
        self._log = _Log() if logged else None
        self._clock = _Clock()
        self._ledger_bar: list[int] = []
        self._ledger_sym: list[int] = []
        self._ledger_cash: list[float] = []
        self._ledger_pos: list[float] = []

    def move(self, t: int, col: int, qty: float) -> None:
        """A position change as the broker books one: the position, then a ledger row."""
        self._pos[col] = qty
        self._ledger_bar.append(t)
        self._ledger_sym.append(col)
        self._ledger_cash.append(self._cash)
        self._ledger_pos.append(qty)


def _financing(close: np.ndarray, rates: dict[str, float], interest: InterestModel | None,
               day_count: float) -> PaperFinancing:
    ts = pd.bdate_range("2024-01-03", periods=close.shape[0], tz="UTC")
    syms = [f"S{j:03d}" for j in range(close.shape[1])]
    bars = Bars.from_arrays(ts, syms, open=close, high=close, low=close, close=close,
                            volume=np.full_like(close, 1e6), interval="1D")
    borrow = BorrowModel(rate=0.03, rates={syms[int(k[1:])]: r for k, r in rates.items()},
                         day_count=day_count)
    broker = simbroker.PaperBroker(bars, cash=1.0, borrow=borrow, interest=interest)
    fin = broker._financing
    assert fin is not None
    return fin


@st.composite
def _cases(draw: st.DrawFn) -> dict[str, Any]:
    n_sym = draw(st.sampled_from([1, 3, 8, 9, 17, 100, 129, 200]))
    n_days = draw(st.integers(1, 10))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.05, (n_days, n_sym)), axis=0))
    if draw(st.booleans()):  # a symbol never priced, one priced late (marked 0.0 / last)
        close[:, 0] = np.nan
        close[: n_days // 2, n_sym - 1] = np.nan
    start = np.array(draw(st.lists(_QTY, min_size=n_sym, max_size=n_sym)))
    moves = [[(int(rng.integers(n_sym)), draw(_QTY)) for _ in range(draw(st.integers(0, 4)))]
             for _ in range(n_days)]
    if draw(st.integers(0, 5)) == 0:  # a NaN position: the kept path turns off
        moves[draw(st.integers(0, n_days - 1))].append((int(rng.integers(n_sym)), np.nan))
    rates = draw(st.dictionaries(st.sampled_from([f"S{j}" for j in range(min(n_sym, 5))]),
                                 st.sampled_from([0.0, 0.5, 1.7, 1e-9]), max_size=3))
    interest = draw(st.sampled_from([None, InterestModel(debit=0.08),
                                     InterestModel(debit=0.05, credit=0.02)]))
    return {"close": close, "start": start, "moves": moves, "rates": rates,
            "interest": interest, "cash": draw(st.sampled_from([1e6, 1.0, -5e4, 0.0])),
            "day_count": draw(st.sampled_from([360.0, 365.0])),
            "logged": draw(st.booleans())}


def _run(case: dict[str, Any], path: str) -> tuple[list[bytes], _Broker, PaperFinancing]:
    fin = _financing(case["close"], case["rates"], case["interest"], case["day_count"])
    if path == "scan":
        fin._kept = False
    elif path == "general":
        fin._kept = fin._fast = False
    broker = _Broker(case["start"], case["cash"], case["logged"])
    cash = []
    for t, moves in enumerate(case["moves"]):
        for col, qty in moves:
            broker.move(t, col, qty)
        assert fin.due(t)
        fin.apply(broker, t)  # type: ignore[arg-type]
        cash.append(_bits(broker._cash))
    return cash, broker, fin


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_kept_scanned_and_general_days_are_the_same_bits(case: dict[str, Any]) -> None:
    kept, b_kept, f_kept = _run(case, "kept")
    for path in ("scan", "general"):
        other, b_other, f_other = _run(case, path)
        assert kept == other, path
        assert [_bits(x) for x in f_kept.borrow_amount] == [
            _bits(x) for x in f_other.borrow_amount]
        assert f_kept.borrow_bar == f_other.borrow_bar
        assert [_bits(x) for x in f_kept.interest_amount] == [
            _bits(x) for x in f_other.interest_amount]
        assert f_kept.interest_bar == f_other.interest_bar
        assert b_kept._ledger_cash == b_other._ledger_cash
        assert b_kept._ledger_sym == b_other._ledger_sym
        if case["logged"]:
            assert b_kept._log is not None and b_other._log is not None
            assert b_kept._log.records == b_other._log.records


def test_the_kept_path_is_the_one_taken_and_follows_the_ledger() -> None:
    """A start short, a cover and a new short by ledger rows: the kept shorts follow, the
    accrual rows are read past, and the fees are the scanned path's."""
    close = np.full((4, 10), 50.0)
    case = {"close": close, "start": np.array([-100.0] + [0.0] * 9),
            "moves": [[], [(0, 0.0), (3, -10.0)], [(3, 5.0)], []], "rates": {},
            "interest": InterestModel(debit=0.08), "cash": 1e6, "day_count": 360.0,
            "logged": True}
    kept, broker, fin = _run(case, "kept")
    assert fin._kept and fin._shorts == set()
    assert fin._rows == len(broker._ledger_sym)  # the last accrual's row read past
    assert fin.borrow_bar == [0, 1]  # day 2 and 3 hold no short: nothing booked
    assert fin.borrow_amount == [100 * 50.0 * (0.03 * (1 / 360)), 10 * 50.0 * (0.03 * (1 / 360))]
    assert kept == _run(case, "scan")[0]


def test_a_nan_position_turns_the_kept_path_off_for_good() -> None:
    close = np.full((3, 4), 20.0)
    case = {"close": close, "start": np.array([-5.0, 0.0, 0.0, 0.0]),
            "moves": [[], [(1, np.nan)], [(1, -3.0)]], "rates": {}, "interest": None,
            "cash": 1e6, "day_count": 360.0, "logged": False}
    kept, _, fin = _run(case, "kept")
    assert not fin._kept
    assert kept == _run(case, "general")[0]


# ------------------------------------------------------------------ whole runs
@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(n_sym=st.sampled_from([3, 9, 130]), seed=st.integers(0, 2**32 - 1),
       start_short=st.booleans())
def test_whole_runs_with_starting_shorts_are_the_same_bits(
        n_sym: int, seed: int, start_short: bool) -> None:
    rng = np.random.default_rng(seed)
    n_bars = 12
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.03, (n_bars, n_sym)), axis=0))
    ts = pd.bdate_range("2024-01-03", periods=n_bars, tz="UTC")
    syms = [f"S{j:03d}" for j in range(n_sym)]
    bars = Bars.from_arrays(ts, syms, open=close, high=close, low=close, close=close,
                            volume=np.full_like(close, 1e7), interval="1D")
    qty = rng.choice([-300.0, -7.0, 0.0, 250.0, np.nan], size=(n_bars, n_sym),
                     p=[0.2, 0.15, 0.1, 0.15, 0.4])
    targets = pd.DataFrame(qty, index=bars.index, columns=syms)
    kw: dict[str, Any] = {
        "cash": 5_000.0, "slippage": 0.0, "fees": 1.0,
        "borrow": BorrowModel(rate=0.04), "interest": InterestModel(debit=0.08, credit=0.01),
        "positions": {syms[0]: -50.0, syms[-1]: 20.0} if start_short else None}

    def run() -> simbroker.BacktestResult:
        return simbroker.backtest(TargetPositions(targets), bars, **kw)

    kept = run()
    with pytest.MonkeyPatch.context() as mp:
        init = PaperFinancing.__init__

        def general(self: PaperFinancing, *args: Any) -> None:
            init(self, *args)
            self._kept = self._fast = False

        mp.setattr(PaperFinancing, "__init__", general)
        slow = run()
    assert float(kept.stats["borrow_fees"]) > 0.0 or not start_short
    for name in ("cash", "equity", "borrow_fees", "interest"):
        pd.testing.assert_series_equal(getattr(kept, name), getattr(slow, name),
                                       check_exact=True)
