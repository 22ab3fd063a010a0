"""The paper broker's daily accrual as ``PaperFinancing.apply`` runs it (the fast borrow
sum with each day's scale precomputed, ``InterestModel.amount`` inline) against the
general arithmetic (``borrow_fees`` and ``np.sum``, the model's ``amount``): the same
cash bits, amounts, ledger rows and records, day by day.

Positions change between days, some go NaN (the fast sum is not finite: the general
arithmetic is used); panels go past 8 and 128 symbols, where numpy's pairwise sum
changes shape; cash is on either side of 0 for the debit and credit rates."""

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
    if draw(st.integers(0, 5)) == 0:  # a NaN position: the fast sum is not finite
        moves[draw(st.integers(0, n_days - 1))].append((int(rng.integers(n_sym)), np.nan))
    rates = draw(st.dictionaries(st.sampled_from([f"S{j}" for j in range(min(n_sym, 5))]),
                                 st.sampled_from([0.0, 0.5, 1.7, 1e-9]), max_size=3))
    interest = draw(st.sampled_from([None, InterestModel(debit=0.08),
                                     InterestModel(debit=0.05, credit=0.02)]))
    cash = draw(st.one_of(st.sampled_from([1e6, 1.0, -5e4, 0.0, -0.0]), st.floats(-1e9, 1e9)))
    return {"close": close, "start": start, "moves": moves, "rates": rates,
            "interest": interest, "cash": cash,
            "day_count": draw(st.sampled_from([360.0, 365.0])),
            "logged": draw(st.booleans())}


def _run(case: dict[str, Any], path: str) -> tuple[list[bytes], _Broker, PaperFinancing]:
    fin = _financing(case["close"], case["rates"], case["interest"], case["day_count"])
    if path == "general":
        fin._fast = fin._plain_interest = False
    broker = _Broker(case["start"], case["cash"], case["logged"])
    cash = []
    for t, moves in enumerate(case["moves"]):
        for col, qty in moves:
            broker.move(t, col, qty)
        assert fin.due(t)
        fin.apply(broker, t)  # type: ignore[arg-type]
        cash.append(_bits(broker._cash))
    return cash, broker, fin


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_fast_and_general_days_are_the_same_bits(case: dict[str, Any]) -> None:
    fast, b_fast, f_fast = _run(case, "fast")
    slow, b_slow, f_slow = _run(case, "general")
    assert f_fast._fast == (f_fast.charges_borrow and not np.isinf(f_fast.close).any())
    assert f_fast._plain_interest == (case["interest"] is not None)
    assert fast == slow
    assert [_bits(x) for x in f_fast.borrow_amount] == [_bits(x) for x in f_slow.borrow_amount]
    assert f_fast.borrow_bar == f_slow.borrow_bar
    assert [_bits(x) for x in f_fast.interest_amount] == [
        _bits(x) for x in f_slow.interest_amount]
    assert f_fast.interest_bar == f_slow.interest_bar
    assert [_bits(x) for x in b_fast._ledger_cash] == [_bits(x) for x in b_slow._ledger_cash]
    assert b_fast._ledger_sym == b_slow._ledger_sym
    if case["logged"]:
        assert b_fast._log is not None
        assert b_slow._log is not None
        assert b_fast._log.records == b_slow._log.records


def test_a_day_with_a_short_and_a_debit_books_both_in_order() -> None:
    """Hand-computed: a short of 100 at 50 for one day at 3%, then 8% on the debit."""
    close = np.full((2, 10), 50.0)
    case = {"close": close, "start": np.array([-100.0] + [0.0] * 9), "moves": [[], []],
            "rates": {}, "interest": InterestModel(debit=0.08), "cash": -1000.0,
            "day_count": 360.0, "logged": True}
    cash, broker, fin = _run(case, "fast")
    fee = 5000.0 * (0.03 * (1 / 360))
    paid = -(-1000.0 - fee) * 0.08 * (1 / 360)
    assert fin.borrow_amount[0] == fee
    assert fin.interest_amount[0] == paid
    assert cash[0] == _bits(-1000.0 - fee - paid)
    assert broker._log is not None
    assert [e for e, _ in broker._log.records] == ["borrow_fee", "interest"] * 2
    assert cash == _run(case, "general")[0]


class _Doubled(InterestModel):
    def amount(self, cash: float, days: float) -> float:
        return 2 * super().amount(cash, days)


def test_a_subclass_amount_is_called_not_inlined() -> None:
    close = np.full((1, 3), 10.0)
    case = {"close": close, "start": np.zeros(3), "moves": [[]], "rates": {},
            "interest": _Doubled(debit=0.08), "cash": -900.0, "day_count": 360.0,
            "logged": False}
    _, _, fin = _run(case, "fast")
    assert not fin._plain_interest
    assert fin.interest_amount == [2 * (900.0 * 0.08 * (1 / 360))]


# ------------------------------------------------------------------ whole runs
@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(n_sym=st.sampled_from([3, 9, 130]), seed=st.integers(0, 2**32 - 1),
       start_short=st.booleans())
def test_whole_runs_with_starting_positions_are_the_same_bits(
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

    fast = run()
    with pytest.MonkeyPatch.context() as mp:
        init = PaperFinancing.__init__

        def general(self: PaperFinancing, *args: Any) -> None:
            init(self, *args)
            self._fast = self._plain_interest = False

        mp.setattr(PaperFinancing, "__init__", general)
        slow = run()
    assert float(fast.stats["borrow_fees"]) > 0.0 or not start_short
    for name in ("cash", "equity", "borrow_fees", "interest"):
        pd.testing.assert_series_equal(getattr(fast, name), getattr(slow, name),
                                       check_exact=True)
