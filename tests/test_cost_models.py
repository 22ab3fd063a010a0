"""Hand-computed values for every cost model, plus the properties each must keep."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simbroker.models import (
    BarContext,
    BarRange,
    BpsOfNotional,
    FeeSum,
    FixedBps,
    NoFee,
    NoSlippage,
    PerOrder,
    PerShare,
    VolumeShare,
    fee_model_from_dict,
    slippage_model_from_dict,
)


def test_fixed_bps() -> None:
    assert FixedBps(bps=5).fill_price("buy", 100, 50.0) == pytest.approx(50.025, rel=1e-15)
    assert FixedBps(bps=5).fill_price("sell", 100, 50.0) == pytest.approx(49.975, rel=1e-15)
    assert NoSlippage().fill_price("buy", 100, 50.0) == 50.0


def test_volume_share() -> None:
    m = VolumeShare(base_bps=5, impact=0.1, exponent=2, volume_limit=0.25, cap_bps=100)
    # 1 % of volume: 5 bps + 0.1 * 0.01**2 = 0.0005 + 0.00001
    assert m.fill_price("buy", 100, 10.0, volume=10_000) == pytest.approx(10 * 1.00051)
    # 20 % of volume: 0.0005 + 0.1 * 0.04 = 0.0045 (45 bps)
    assert m.fill_price("sell", 2000, 10.0, volume=10_000) == pytest.approx(10 * (1 - 0.0045))
    # 90 % of volume clamps to the 25 % limit: 0.0005 + 0.00625 = 67.5 bps
    assert m.fill_price("buy", 9000, 10.0, volume=10_000) == pytest.approx(10 * 1.00675)
    # zero volume gives the cap
    assert m.fill_price("buy", 1, 10.0, volume=0) == pytest.approx(10 * 1.01)


def test_bar_range() -> None:
    m = BarRange(fraction=0.1, min_bps=1, cap_bps=50)
    # range 2 on close 100: 0.1 * 0.02 = 20 bps
    assert m.fill_price("buy", 1, 100.0, high=101, low=99, close=100) == pytest.approx(100.2)
    # flat bar: the 1 bp floor; huge range: the 50 bp cap
    assert m.fill_price("buy", 1, 100.0, high=100, low=100, close=100) == pytest.approx(100.01)
    assert m.fill_price("sell", 1, 100.0, high=150, low=60, close=100) == pytest.approx(99.5)


def test_fees_by_hand() -> None:
    assert BpsOfNotional(bps=1).fee("buy", 100, 50.0) == pytest.approx(0.5)
    ibkr = PerShare(rate=0.005, minimum=1.0, maximum_fraction=0.01)
    assert ibkr.fee("buy", 100, 50.0) == 1.0  # 0.50 raised to the minimum
    assert ibkr.fee("buy", 1000, 50.0) == pytest.approx(5.0)
    assert ibkr.fee("buy", 10, 5.0) == pytest.approx(0.5)  # the 1 % cap wins
    assert PerShare(maximum_fraction=None).fee("sell", 10, 5.0) == 1.0
    assert PerOrder(amount=0.35).fee("sell", 3, 10.0) == 0.35
    combo = BpsOfNotional(bps=1) + PerOrder(amount=0.35) + NoFee()
    assert isinstance(combo, FeeSum)
    assert len(combo.models) == 3
    assert combo.fee("buy", 100, 50.0) == pytest.approx(0.85)
    assert fee_model_from_dict(combo.to_dict()) == combo


SLIPPAGE = [NoSlippage(), FixedBps(bps=7), VolumeShare(), BarRange()]
FEES = [NoFee(), BpsOfNotional(bps=1), PerShare(), PerShare(maximum_fraction=None),
        PerOrder(amount=1), BpsOfNotional(bps=2) + PerShare()]
finite = st.floats(0.01, 1e5, allow_nan=False)


@pytest.mark.parametrize("model", SLIPPAGE, ids=repr)
@settings(max_examples=60, deadline=None)
@given(qty=st.lists(st.floats(0, 1e6), min_size=1, max_size=8), price=finite,
       rng=st.floats(0, 0.2), vol=st.floats(0, 1e7))
def test_slippage_properties(model, qty, price, rng, vol) -> None:  # type: ignore[no-untyped-def]
    q = np.array(qty)
    n = len(q)
    p = np.full(n, price)
    bar = BarContext(open=p, high=p * (1 + rng), low=p / (1 + rng), close=p,
                     volume=np.full(n, vol))
    for side in (1.0, -1.0):
        s = np.full(n, side)
        rate = model.rate(s, q, p, bar)
        assert np.all(np.isfinite(rate))
        assert np.all(rate >= 0)
        assert np.all(rate[q == 0] == 0)
        assert np.all(rate * 1e4 <= model.max_bps * (1 + 1e-12))
        fills = model.fill_prices(s, q, p, bar)
        assert np.all(fills >= p) if side > 0 else np.all(fills <= p)
    assert slippage_model_from_dict(model.to_dict()) == model


@pytest.mark.parametrize("model", FEES, ids=repr)
@settings(max_examples=60, deadline=None)
@given(qty=st.floats(0, 1e6), extra=st.floats(0, 1e6), price=finite)
def test_fee_properties(model, qty, extra, price) -> None:  # type: ignore[no-untyped-def]
    fee = model.fee("buy", qty, price)
    bigger = model.fee("buy", qty + extra, price)
    assert fee >= 0
    assert math.isfinite(fee)
    assert bigger >= fee - 1e-12 * max(1.0, fee)
    assert model.fee("sell", 0, price) == 0
    if qty > 0:
        assert fee >= model.min_fee - 1e-12


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, True, 10_001])
def test_bad_parameters_quote_the_value(bad: object) -> None:
    with pytest.raises(ValueError, match="bps must be a finite number"):
        FixedBps(bps=bad)  # type: ignore[arg-type]


def test_unknown_names_and_keys() -> None:
    with pytest.raises(ValueError, match="unknown slippage model 'magic'"):
        slippage_model_from_dict({"model": "magic"})
    with pytest.raises(ValueError, match=r"unknown parameter.*'bpz'"):
        slippage_model_from_dict({"model": "fixed_bps", "bpz": 3})
    with pytest.raises(ValueError, match="unknown fee model"):
        fee_model_from_dict({"model": "zero"})


def test_numpy_numbers_coerce_like_python_numbers() -> None:
    from simbroker.models import fee_model, slippage_model

    assert slippage_model(np.int64(5)) == slippage_model(5.0)
    assert slippage_model(np.float32(7.5)) == slippage_model(7.5)
    assert fee_model(np.int64(2)) == fee_model(2.0)
    with pytest.raises(TypeError):
        slippage_model(np.bool_(True))  # type: ignore[arg-type]


@pytest.mark.parametrize("models", [None, []])
def test_an_empty_fee_sum_spec_is_no_fee(models: object) -> None:
    model = fee_model_from_dict({"model": "sum", "models": models})
    assert model.fee("buy", 100, 10.0) == 0.0


def test_a_fee_sum_spec_with_a_non_mapping_names_it() -> None:
    with pytest.raises(ValueError, match=r"'sum' needs 'models'.*'bps'"):
        fee_model_from_dict({"model": "sum", "models": ["bps"]})
