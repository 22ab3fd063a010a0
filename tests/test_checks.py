"""The testing kit catches each planted bug, and simbroker's own code passes every check."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

import simbroker
from simbroker import (
    BarRange,
    Bars,
    BpsOfNotional,
    FixedBps,
    NoFee,
    NoSlippage,
    PaperBroker,
    PerOrder,
    PerShare,
    TargetPositions,
    VolumeShare,
)
from simbroker.errors import InvalidOrder
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import BarContext, SlippageModel
from simbroker.testing.checks import (
    PaperVenue,
    check_accounting,
    check_broker_conformance,
    check_fee_model,
    check_no_lookahead,
    check_slippage_model,
)
from simbroker.types import OrderInfo

pytest_plugins = ["pytester"]

FAST = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- passing
@pytest.mark.parametrize("model", [NoSlippage(), FixedBps(5.0), VolumeShare(), BarRange()],
                         ids=repr)
def test_simbrokers_slippage_models_pass(model: SlippageModel) -> None:
    check_slippage_model(model, settings=FAST)


@pytest.mark.parametrize("model", [NoFee(), BpsOfNotional(1.0), PerShare(), PerOrder(0.35),
                                   BpsOfNotional(2.0) + PerOrder(1.0)], ids=repr)
def test_simbrokers_fee_models_pass(model: FeeModel) -> None:
    check_fee_model(model, settings=FAST)


def test_the_paper_broker_conforms() -> None:
    check_broker_conformance(lambda: PaperVenue(slippage=5, fees=1))
    check_broker_conformance(lambda: PaperVenue(slippage=VolumeShare(), fees=PerShare(),
                                                positions={"AAA": 7}))


def test_backtests_balance_their_books() -> None:
    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=200, seed=4)
    rng = np.random.default_rng(4)
    targets = pd.DataFrame(np.where(rng.random((200, 3)) < 0.2,
                                    rng.integers(-30, 30, (200, 3)), np.nan),
                           index=bars.index, columns=list(bars.symbols))
    check_accounting(simbroker.backtest(TargetPositions(targets), bars, fees=PerShare(),
                                        positions={"SYM001": 5}))
    check_accounting(simbroker.backtest_vectorized(bars, targets=targets))


class SmaCross:
    """A causal strategy: 5/20 moving averages over closes known so far."""

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        close = bars.frame("close")
        return {"fast": close.rolling(5).mean().to_numpy(),
                "slow": close.rolling(20).mean().to_numpy()}

    def on_bar(self, broker: Any, history: Any) -> None:
        fast, slow = history.last("fast"), history.last("slow")
        held = broker.get_positions()
        for i, sym in enumerate(history.symbols):
            if fast[i] > slow[i] and sym not in held:
                broker.submit_order(sym, "buy", 10)
            elif fast[i] < slow[i] and sym in held:
                broker.submit_order(sym, "sell", held[sym])


def test_a_causal_strategy_has_no_lookahead() -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=120, seed=1)
    check_no_lookahead(SmaCross(), bars, settings=FAST)


# --------------------------------------------------------------------------- planted bugs
@dataclass(frozen=True)
class SignFlip(SlippageModel):
    """Bug: the rate carries the side's sign, so sells fill above the reference price."""

    name: ClassVar[str] = "sign_flip"
    bps: float = 5.0

    def rate(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             bar: BarContext) -> np.ndarray:
        return np.where(qty > 0, self.bps * 1e-4 * np.asarray(side), 0.0)


@dataclass(frozen=True)
class Unbounded(SlippageModel):
    """Bug: declares a 50 bps cap it does not enforce for orders larger than the bar."""

    name: ClassVar[str] = "unbounded"

    @property
    def max_bps(self) -> float:
        return 50.0

    def rate(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             bar: BarContext) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(bar.volume > 0, qty / bar.volume, 1.0)
        rate = np.nan_to_num(0.01 * np.sqrt(share), nan=0.005, posinf=0.005)
        return np.where(qty > 0, rate, 0.0)


@dataclass(frozen=True)
class MakerRebate(FeeModel):
    """Bug: a rebate on sells makes the fee negative."""

    name: ClassVar[str] = "rebate"

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        return np.asarray(qty) * np.asarray(price) * np.where(np.asarray(side) > 0, 1e-4, -2e-5)


@dataclass(frozen=True)
class TieredCliff(FeeModel):
    """Bug: a volume tier that makes a bigger order cheaper than a smaller one."""

    name: ClassVar[str] = "cliff"

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        notional = np.asarray(qty) * np.asarray(price)
        return np.where(notional > 10_000, notional * 1e-4, notional * 5e-4)


@dataclass(frozen=True)
class MinimumNotKept(FeeModel):
    """Bug: declares a $1 minimum the fees do not charge."""

    name: ClassVar[str] = "no_min"

    @property
    def min_fee(self) -> float:
        return 1.0

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        return np.asarray(qty) * 0.005


def test_catches_slippage_in_the_traders_favour() -> None:
    with pytest.raises(AssertionError, match="never in the trader's favour") as info:
        check_slippage_model(SignFlip(), settings=FAST)
    assert "SignFlip(bps=5.0)" in str(info.value)
    assert re.search(r"side=\[-1\.\]", str(info.value))  # shrunk to one sell


def test_catches_slippage_above_its_declared_bound() -> None:
    with pytest.raises(AssertionError, match=r"within the declared max_bps=50\.0"):
        check_slippage_model(Unbounded(), settings=FAST)


def test_catches_a_negative_fee() -> None:
    with pytest.raises(AssertionError, match="fees are non-negative") as info:
        check_fee_model(MakerRebate(), settings=FAST)
    assert re.search(r"side(=\[| )-1", str(info.value))  # a sell, the rebated side


def test_catches_a_fee_that_falls_as_the_order_grows() -> None:
    with pytest.raises(AssertionError, match="monotone"):
        check_fee_model(TieredCliff(), settings=FAST)


def test_catches_a_minimum_fee_not_charged() -> None:
    with pytest.raises(AssertionError, match=r"min_fee=1\.0 is honoured"):
        check_fee_model(MinimumNotKept(), settings=FAST)


class PeeksAtTomorrow:
    """Bug: an 'indicator' that is tomorrow's close (shift(-1)), traded on today."""

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        return {"next_close": bars.frame("close").shift(-1).to_numpy()}

    def on_bar(self, broker: Any, history: Any) -> None:
        nxt, close = history.last("next_close"), history.last("close")
        for i, sym in enumerate(history.symbols):
            if nxt[i] > close[i]:
                broker.submit_order(sym, "buy", 1)


class KeepsTheBars:
    """Bug: keeps the whole panel and reads the next bar's close in on_bar."""

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        self.bars = bars
        return {}

    def on_bar(self, broker: Any, history: Any) -> None:
        if history.t + 1 < len(self.bars) and \
                self.bars.close[history.t + 1, 0] > self.bars.close[history.t, 0]:
            broker.submit_order(history.symbols[0], "buy", 1)


@pytest.mark.parametrize("strategy", [PeeksAtTomorrow(), KeepsTheBars()],
                         ids=["indicator", "kept-bars"])
def test_catches_a_strategy_that_reads_tomorrows_close(strategy: Any) -> None:
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=60, seed=2)
    with pytest.raises(AssertionError, match="no look-ahead: with the data") as info:
        check_no_lookahead(strategy, bars, settings=FAST)
    assert "bar" in str(info.value)


class StrictCancelBroker(PaperBroker):
    """Bug: a second cancel raises instead of returning the canceled order."""

    def cancel_order(self, order_id: str) -> OrderInfo:
        info = self.get_order(order_id) if hasattr(self, "get_order") else None
        if info is not None and info["status"] == "canceled":
            raise InvalidOrder(f"order {order_id} is already canceled")
        return super().cancel_order(order_id)


class StrictCancelVenue(PaperVenue):
    def __init__(self) -> None:
        super().__init__()
        self.broker = StrictCancelBroker(self.broker.bars)


def test_catches_a_cancel_that_is_not_idempotent() -> None:
    with pytest.raises(AssertionError, match="cancel is idempotent"):
        check_broker_conformance(StrictCancelVenue)


class ForgetfulFeesBroker(PaperBroker):
    """Bug: reports fills with their fee but never takes the fee from cash."""

    def get_cash(self) -> float:
        return super().get_cash() + sum(f["fee"] for f in self.get_fills())


class ForgetfulFeesVenue(PaperVenue):
    def __init__(self) -> None:
        super().__init__()
        self.broker = ForgetfulFeesBroker(self.broker.bars, fees=10)


def test_catches_cash_that_ignores_fees() -> None:
    with pytest.raises(AssertionError, match="cash moves by notional plus fees"):
        check_broker_conformance(ForgetfulFeesVenue)


def test_catches_books_that_do_not_balance() -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=50, seed=3)
    targets = pd.DataFrame(np.nan, index=bars.index, columns=list(bars.symbols))
    targets.iloc[5] = [10, -5]
    targets.iloc[20] = [0, 0]
    good = simbroker.backtest_vectorized(bars, targets=targets, fees=5)
    check_accounting(good)
    cash = good.cash.copy()
    cash.iloc[30:] += 0.01  # a cent appears from nowhere
    with pytest.raises(AssertionError, match=r"cash is conserved by the fills: after bar 30"):
        check_accounting(dataclasses.replace(good, cash=cash))
    pos = good.positions.copy()
    pos.iloc[12, 1] = -4.0
    with pytest.raises(AssertionError, match=r"shares are conserved.*'SYM001' after bar 12"):
        check_accounting(dataclasses.replace(good, positions=pos))
    equity = good.equity.copy()
    equity.iloc[7] *= 1.001
    with pytest.raises(AssertionError, match=r"equity is cash plus positions.*bar 7"):
        check_accounting(dataclasses.replace(good, equity=equity))
    fills = good.fills.copy()
    fills.loc[0, "fee"] = -1.0
    with pytest.raises(AssertionError, match="fees are non-negative"):
        check_accounting(dataclasses.replace(good, fills=fills))


# --------------------------------------------------------------------------- plugin
def test_plugin_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from simbroker import FixedBps

        def test_kit(simbroker_checks, sample_bars, synthetic_bars, paper_venue):
            simbroker_checks.check_slippage_model(FixedBps(3))
            simbroker_checks.check_broker_conformance(paper_venue)
            assert sample_bars.symbols[0] == "AAPL"
            assert synthetic_bars(3, 10).n_symbols == 3
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--simbroker-examples", "5")
    result.assert_outcomes(passed=1)


def test_plugin_imports_nothing_until_a_fixture_is_used(tmp_path: Path) -> None:
    """An unrelated project's pytest run must not pay for numpy/pandas/simbroker imports
    because simbroker is installed (the plugin loads in every run of the environment)."""
    import subprocess
    import sys

    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    probe = ("import sys, pytest\n"
             "code = pytest.main(['-q', '-p', 'no:cacheprovider', 'test_plain.py'])\n"
             "assert 'simbroker_pytest' in sys.modules  # the plugin did load\n"
             "heavy = sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'simbroker')\n"
             "               if m in sys.modules)\n"
             "print('HEAVY', heavy)\n"
             "sys.exit(code)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=False, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def test_the_users_example_passes() -> None:
    """examples/test_my_slippage.py runs as the README says: with plain pytest."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "test_my_slippage.py"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(example)], capture_output=True, text=True, timeout=300,
                         check=False, cwd=example.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 passed" in out.stdout
