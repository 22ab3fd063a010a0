"""Prove your own cost models with simbroker's testing kit.

A square-root market-impact slippage model and a US-equity commission schedule, each
checked against the properties simbroker proves of its own models, then used in a
backtest whose books must balance. Run it with::

    pytest examples/test_my_slippage.py

The ``sample_bars`` fixture comes from simbroker's pytest plugin (installed with
simbroker); the checks raise an AssertionError naming the property and the smallest
input Hypothesis finds when a model is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

import simbroker
from simbroker import Bars, FeeModel, SlippageModel
from simbroker.models.slippage import BarContext
from simbroker.testing.checks import check_accounting, check_fee_model, check_slippage_model


@dataclass(frozen=True)
class SquareRootImpact(SlippageModel):
    """Half the spread plus ``k x volatility x sqrt(qty / volume)``, capped.

    The bar's range over the price stands in for volatility. An order on a bar with no
    known volume, or larger than the bar traded, pays the cap: liquidity is unknown.
    """

    name: ClassVar[str] = "sqrt_impact"
    half_spread_bps: float = 2.0
    k: float = 0.5
    cap_bps: float = 150.0

    @property
    def max_bps(self) -> float:
        """The cap (the checks hold the model to it)."""
        return self.cap_bps

    def rate(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             bar: BarContext) -> np.ndarray:
        """Slippage as a fraction of the price, per order."""
        cap = self.cap_bps * 1e-4
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            vol = (bar.high - bar.low) / price
            participation = qty / bar.volume
            impact = self.half_spread_bps * 1e-4 + self.k * vol * np.sqrt(participation)
        known = np.isfinite(impact) & (participation <= 1.0)
        rate = np.where(known, np.minimum(impact, cap), cap)
        return np.where(qty > 0, rate, 0.0)


@dataclass(frozen=True)
class UsEquityCommission(FeeModel):
    """Per-share commission with a minimum and a cap, plus the SEC fee on sells.

    $0.0035 a share, at least $0.35 an order but never more than 1 % of the notional,
    plus 0.00278 % of a sale's notional (the SEC's transaction fee). As in the brokers'
    schedules the 1 % cap wins over the minimum, so a tiny order can cost less than $0.35:
    the declared ``min_fee`` is therefore 0 (the kit would catch a false claim).
    """

    name: ClassVar[str] = "us_equity"
    per_share: float = 0.0035
    minimum: float = 0.35
    max_fraction: float = 0.01
    sec_rate: float = 0.0000278

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """The fee of each fill."""
        qty, price = np.asarray(qty, np.float64), np.asarray(price, np.float64)
        notional = qty * price
        broker = np.minimum(np.maximum(qty * self.per_share, self.minimum),
                            notional * self.max_fraction)
        sec = np.where(np.asarray(side) < 0, notional * self.sec_rate, 0.0)
        return np.where(qty > 0, broker + sec, 0.0)


def test_square_root_impact_keeps_the_slippage_invariants() -> None:
    check_slippage_model(SquareRootImpact())


def test_commission_schedule_keeps_the_fee_invariants() -> None:
    check_fee_model(UsEquityCommission())


def test_hand_values() -> None:
    # 10,000 shares of a bar that traded 1,000,000, ranging 2 % of the price:
    # 2 bps + 0.5 x 0.02 x sqrt(0.01) = 2 bps + 10 bps.
    price = SquareRootImpact().fill_price("buy", 10_000, 50.0, high=50.5, low=49.5,
                                          volume=1_000_000)
    assert math.isclose(price, 50.0 * (1 + 12e-4))
    # 1,000 shares sold at $20: $3.50 commission + 0.00278 % of $20,000.
    fee = UsEquityCommission().fee("sell", 1_000, 20.0)
    assert math.isclose(fee, 3.5 + 20_000 * 0.0000278)


class BuyAndHoldThenSell:
    """Buys 100 shares of everything on the first bar and sells them on the 200th."""

    def on_bar(self, broker: Any, history: Any) -> None:
        if history.t == 0:
            for sym in history.symbols:
                broker.submit_order(sym, "buy", 100)
        elif history.t == 200:
            for sym, qty in broker.get_positions().items():
                broker.submit_order(sym, "sell", qty)


def test_the_models_balance_the_books_in_a_backtest(sample_bars: Bars) -> None:
    result = simbroker.backtest(BuyAndHoldThenSell(), sample_bars,
                                slippage=SquareRootImpact(), fees=UsEquityCommission())
    check_accounting(result)
    assert result.stats["fees_paid"] > 0
