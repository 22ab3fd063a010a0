"""Slippage models: hand-computed fills, the properties every model keeps, specs and errors."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from simbroker.models import (
    BarContext,
    BarRange,
    FixedBps,
    NoSlippage,
    SlippageModel,
    VolumeShare,
    slippage_model,
    slippage_model_from_dict,
)
from simbroker.testing.strategies import slippage_cases

PROPS = settings(max_examples=15, deadline=None)

# Every model, with several parameter choices (including the extremes the checks allow).
MODELS: list[SlippageModel] = [
    NoSlippage(),
    FixedBps(),
    FixedBps(bps=0),
    FixedBps(bps=10),
    FixedBps(bps=10_000),
    VolumeShare(),
    VolumeShare(base_bps=0, impact=1.0, exponent=1.0, volume_limit=1.0, cap_bps=10_000),
    VolumeShare(base_bps=1, impact=0.02, exponent=0.5, volume_limit=0.5, cap_bps=30),
    VolumeShare(base_bps=2, impact=100, exponent=1.5, volume_limit=0.1, cap_bps=2),
    BarRange(),
    BarRange(fraction=1.0, min_bps=0, cap_bps=10_000),
    BarRange(fraction=0.05, min_bps=3, cap_bps=3),
]


def one_bar(*, high: float = 50.0, low: float = 50.0, close: float = 50.0,
            volume: float = math.inf) -> BarContext:
    """A one-order bar context."""
    def a(x: float) -> np.ndarray:
        return np.array([x], np.float64)
    return BarContext(open=a(close), high=a(high), low=a(low), close=a(close), volume=a(volume))


def rate_of(model: SlippageModel, qty: float, **bar: float) -> float:
    """The rate of one buy of ``qty`` at 50 on the given bar."""
    return float(model.rate(np.array([1.0]), np.array([qty]), np.array([50.0]),
                            one_bar(**bar))[0])


# ------------------------------------------------------------------ hand-computed values
def test_no_slippage_fills_at_the_reference_price() -> None:
    m = NoSlippage()
    assert m.fill_price("buy", 100, 50.0) == 50.0
    assert m.fill_price("sell", 100, 50.0) == 50.0
    assert m.max_bps == 0.0


def test_fixed_bps_moves_the_price_against_the_trader() -> None:
    m = FixedBps(bps=5)
    assert m.fill_price("buy", 100, 50.0) == pytest.approx(50.025, rel=1e-15)
    assert m.fill_price("sell", 100, 50.0) == pytest.approx(49.975, rel=1e-15)
    assert FixedBps() == FixedBps(bps=5.0)  # the default is 5 bps
    assert FixedBps(bps=10).fill_price("buy", 10, 200.0) == pytest.approx(200.2, rel=1e-15)
    assert FixedBps(bps=10_000).fill_price("buy", 1, 7.0) == 14.0
    assert FixedBps(bps=10_000).fill_price("sell", 1, 7.0) == 0.0
    assert FixedBps(bps=5).fill_price("buy", 0, 50.0) == 50.0  # nothing traded, no slippage
    assert m.max_bps == 5.0


def test_volume_share_hand_values() -> None:
    m = VolumeShare()  # base 5 bps + 0.1 * share**2, limit 0.25, cap 100 bps
    # 1 % of the volume: 5 bps + 0.1 * 0.01**2 = 5 + 0.1 bps (not 5 + 1 bps).
    assert rate_of(m, 100, volume=10_000) == pytest.approx(5.1e-4, rel=1e-12)
    assert m.fill_price("buy", 100, 50.0, volume=10_000) == pytest.approx(50.0255, rel=1e-15)
    # 10 % of the volume: 5 bps + 0.1 * 0.1**2 = 5 + 10 bps.
    assert rate_of(m, 1_000, volume=10_000) == pytest.approx(15e-4, rel=1e-12)
    assert m.fill_price("sell", 1_000, 50.0, volume=10_000) == pytest.approx(49.925, rel=1e-15)
    # Unknown volume (the scalar default is inf): the share is 0, only the base is paid.
    assert m.fill_price("buy", 100, 50.0) == pytest.approx(50.025, rel=1e-15)


def test_volume_share_other_exponents() -> None:
    linear = VolumeShare(base_bps=0, impact=1.0, exponent=1.0, volume_limit=1.0, cap_bps=10_000)
    assert rate_of(linear, 300, volume=1_000) == pytest.approx(0.3, rel=1e-15)
    root = VolumeShare(base_bps=0, impact=0.01, exponent=0.5, cap_bps=10_000)
    assert rate_of(root, 400, volume=10_000) == pytest.approx(0.002, rel=1e-12)  # sqrt(0.04)


def test_volume_share_clamps_the_share_at_the_volume_limit() -> None:
    m = VolumeShare(base_bps=0, impact=0.5, exponent=1.0, volume_limit=0.25, cap_bps=10_000)
    assert rate_of(m, 2_000, volume=10_000) == pytest.approx(0.1, rel=1e-15)  # 0.5 * 0.2
    # 50 % and 300 % of the volume are both clamped to 25 %: 0.5 * 0.25 = 0.125.
    assert rate_of(m, 5_000, volume=10_000) == pytest.approx(0.125, rel=1e-15)
    assert rate_of(m, 30_000, volume=10_000) == pytest.approx(0.125, rel=1e-15)
    assert m.fill_price("buy", 5_000, 100.0, volume=10_000) == pytest.approx(112.5, rel=1e-15)
    assert m.fill_price("sell", 5_000, 100.0, volume=10_000) == pytest.approx(87.5, rel=1e-15)


def test_volume_share_is_capped() -> None:
    m = VolumeShare(impact=1.0)  # 20 %: 5 bps + 1 * 0.04 = 405 bps, capped at 100 bps
    assert rate_of(m, 2_000, volume=10_000) == 0.01
    assert m.fill_price("buy", 2_000, 50.0, volume=10_000) == pytest.approx(50.5, rel=1e-15)
    assert m.fill_price("sell", 2_000, 50.0, volume=10_000) == pytest.approx(49.5, rel=1e-15)
    assert m.max_bps == 100.0


@pytest.mark.parametrize("volume", [0.0, math.nan, -5.0])
def test_volume_share_zero_or_unknown_volume_costs_the_cap(volume: float) -> None:
    m = VolumeShare(cap_bps=40)
    assert rate_of(m, 1, volume=volume) == pytest.approx(40e-4, rel=1e-15)
    assert m.fill_price("buy", 1, 50.0, volume=volume) == pytest.approx(50.2, rel=1e-15)
    assert rate_of(m, 0, volume=volume) == 0.0  # but a zero quantity is still free


def test_volume_share_tiny_volume_clamps_without_a_warning() -> None:
    """BUG: qty / volume overflows to inf for a tiny positive volume, and np.errstate in
    VolumeShare.rate ignores only divide/invalid, so numpy warns "overflow encountered in
    divide" (an error under filterwarnings=error). The share is then clamped as it should."""
    tiny = 2.2250738585072014e-308  # smallest normal float
    # share = 4 / tiny -> inf -> clamped to 0.25: 5 bps + 0.1 * 0.25**2 = 67.5 bps.
    assert rate_of(VolumeShare(), 4, volume=tiny) == pytest.approx(67.5e-4, rel=1e-12)


def test_bar_range_tiny_close_costs_the_cap_without_a_warning() -> None:
    """BUG: (high - low) / close overflows for a tiny positive close; BarRange.rate's
    np.errstate does not ignore "over", so numpy warns (an error under filterwarnings)."""
    assert rate_of(BarRange(), 1, high=102, low=98, close=1e-308) == pytest.approx(
        50e-4, rel=1e-15)


def test_bar_range_hand_values() -> None:
    m = BarRange()  # 0.1 * (high - low) / close, in [1, 50] bps
    # (102 - 98) / 100 = 4 %; a tenth of it is 40 bps.
    assert rate_of(m, 10, high=102, low=98, close=100) == pytest.approx(40e-4, rel=1e-12)
    assert m.fill_price("buy", 10, 100.0, high=102, low=98, close=100) == pytest.approx(
        100.4, rel=1e-15)
    assert m.fill_price("sell", 10, 100.0, high=102, low=98, close=100) == pytest.approx(
        99.6, rel=1e-15)
    assert rate_of(m, 10, high=100.5, low=99.5, close=100) == pytest.approx(10e-4, rel=1e-12)


def test_bar_range_is_clipped_to_min_and_cap() -> None:
    m = BarRange(fraction=0.1, min_bps=1, cap_bps=50)
    assert rate_of(m, 10, high=100, low=100, close=100) == pytest.approx(1e-4, rel=1e-15)
    assert rate_of(m, 10, high=110, low=90, close=100) == pytest.approx(50e-4, rel=1e-15)
    # No bar given to the scalar method: a zero range, so the minimum.
    assert m.fill_price("buy", 1, 100.0) == pytest.approx(100.01, rel=1e-15)
    # A bad close (zero or unknown) or an unknown range costs the cap.
    assert rate_of(m, 10, high=110, low=90, close=0.0) == pytest.approx(50e-4, rel=1e-15)
    assert rate_of(m, 10, high=110, low=90, close=math.nan) == pytest.approx(50e-4, rel=1e-15)
    assert rate_of(m, 10, high=math.nan, low=90, close=100) == pytest.approx(50e-4, rel=1e-15)
    assert rate_of(m, 0, high=110, low=90, close=100) == 0.0


def test_array_method_handles_many_orders_at_once() -> None:
    m = FixedBps(bps=5)
    side = np.array([1.0, -1.0, 1.0])
    fills = m.fill_prices(side, np.array([100.0, 100.0, 0.0]), np.array([50.0, 50.0, 50.0]),
                          BarContext.of_price(np.array([50.0, 50.0, 50.0])))
    np.testing.assert_allclose(fills, [50.025, 49.975, 50.0], rtol=1e-15)


def test_bar_context_of_price() -> None:
    bar = BarContext.of_price(np.array([1.0, 2.0]))
    for a in (bar.open, bar.high, bar.low, bar.close):
        np.testing.assert_array_equal(a, [1.0, 2.0])
    np.testing.assert_array_equal(bar.volume, [math.inf, math.inf])


def test_fill_price_refuses_an_unknown_side() -> None:
    with pytest.raises(ValueError, match="'BUY'"):
        FixedBps().fill_price("BUY", 1, 50.0)


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize("model", MODELS, ids=repr)
@PROPS
@given(case=slippage_cases())
def test_every_model_keeps_the_slippage_invariants(model: SlippageModel, case: Any) -> None:
    """One generated batch, every property (one run per model keeps the file fast)."""
    side, qty, price, bar = case
    rate = model.rate(side, qty, price, bar)
    fills = model.fill_prices(side, qty, price, bar)
    buy = side > 0
    # Never in the trader's favour.
    assert np.all(fills[buy] >= price[buy]), "a buy filled below its reference price"
    assert np.all(fills[~buy] <= price[~buy]), "a sell filled above its reference price"
    # Finite, non-negative, zero where nothing trades, within the declared bound.
    assert rate.shape == qty.shape
    assert np.all(np.isfinite(rate))
    assert np.all(np.isfinite(fills))
    assert np.all(rate >= 0.0)
    assert np.all(rate[qty == 0] == 0.0), "a zero quantity slipped"
    assert np.all(fills[qty == 0] == price[qty == 0])
    assert np.all(rate * 1e4 <= model.max_bps * (1 + 1e-12) + 1e-12), "rate above max_bps"
    # The array method equals the scalar convenience, element by element.
    for i in range(len(qty)):
        one = model.fill_price(
            "buy" if side[i] > 0 else "sell", float(qty[i]), float(price[i]),
            open=float(bar.open[i]), high=float(bar.high[i]), low=float(bar.low[i]),
            close=float(bar.close[i]), volume=float(bar.volume[i]))
        assert one == fills[i], (i, one, fills[i])


# ------------------------------------------------------------------ repr, specs, coercion
def test_repr_shows_the_parameters() -> None:
    assert repr(NoSlippage()) == "NoSlippage()"
    assert repr(FixedBps(bps=7.5)) == "FixedBps(bps=7.5)"
    assert repr(VolumeShare()) == (
        "VolumeShare(base_bps=5.0, impact=0.1, exponent=2.0, volume_limit=0.25, cap_bps=100.0)")
    assert repr(BarRange(fraction=0.2, min_bps=2, cap_bps=20)) == (
        "BarRange(fraction=0.2, min_bps=2, cap_bps=20)")


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_to_dict_round_trips(model: SlippageModel) -> None:
    spec = model.to_dict()
    assert spec["model"] == model.name
    assert set(spec) == {"model"} | {f.name for f in dataclasses.fields(model)}  # type: ignore[arg-type]
    copy = dict(spec)
    rebuilt = slippage_model_from_dict(spec)
    assert spec == copy  # the spec is not consumed
    assert type(rebuilt) is type(model)
    assert rebuilt == model
    assert slippage_model_from_dict(json.loads(json.dumps(spec))) == model  # YAML/JSON-ready


def test_from_dict_accepts_class_names_in_any_case() -> None:
    assert slippage_model_from_dict({"model": "FixedBps", "bps": 3}) == FixedBps(bps=3.0)
    assert slippage_model_from_dict({"model": "VOLUME_SHARE", "impact": 0.2}) == VolumeShare(
        impact=0.2)
    assert slippage_model_from_dict({"model": "none"}) == NoSlippage()
    assert slippage_model_from_dict({"model": "bar_range"}) == BarRange()


def test_from_dict_rejects_unknown_names_and_keys() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        slippage_model_from_dict({"model": "nope"})
    with pytest.raises(ValueError, match="'bsp'"):
        slippage_model_from_dict({"model": "fixed_bps", "bsp": 5})
    with pytest.raises(ValueError, match="'bps'"):
        slippage_model_from_dict({"model": "none", "bps": 5})
    with pytest.raises(ValueError, match="'model' key"):
        slippage_model_from_dict({"bps": 5})


def test_slippage_model_coerces() -> None:
    assert slippage_model(5) == FixedBps(bps=5.0)
    assert isinstance(slippage_model(5).bps, float)  # type: ignore[attr-defined]
    assert slippage_model(7.5) == FixedBps(bps=7.5)
    assert slippage_model(None) == NoSlippage()
    m = VolumeShare()
    assert slippage_model(m) is m


@pytest.mark.parametrize("value", [True, False, "5", [5], {"bps": 5}])
def test_slippage_model_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError, match=re.escape(repr(value))):
        slippage_model(value)  # type: ignore[arg-type]


def test_slippage_model_refuses_a_bad_number() -> None:
    with pytest.raises(ValueError, match="-1"):
        slippage_model(-1)


BAD_PARAMETERS = [
    (FixedBps, {"bps": -1.0}),
    (FixedBps, {"bps": 10_001}),
    (FixedBps, {"bps": math.nan}),
    (FixedBps, {"bps": math.inf}),
    (FixedBps, {"bps": True}),
    (FixedBps, {"bps": "5"}),
    (VolumeShare, {"base_bps": -0.5}),
    (VolumeShare, {"impact": -0.1}),
    (VolumeShare, {"impact": math.nan}),
    (VolumeShare, {"exponent": 0.25}),
    (VolumeShare, {"volume_limit": 1.5}),
    (VolumeShare, {"cap_bps": 4.0}),  # below base_bps=5
    (VolumeShare, {"cap_bps": False}),
    (BarRange, {"fraction": 2.0}),
    (BarRange, {"min_bps": -1.0}),
    (BarRange, {"cap_bps": 0.5}),  # below min_bps=1
    (BarRange, {"fraction": math.nan}),
]


@pytest.mark.parametrize(("cls", "kwargs"), BAD_PARAMETERS,
                         ids=[f"{c.__name__}-{k}" for c, k in BAD_PARAMETERS])
def test_bad_parameters_raise_quoting_the_value(cls: type[SlippageModel],
                                                kwargs: dict[str, Any]) -> None:
    [(name, value)] = kwargs.items()
    with pytest.raises(ValueError, match=rf"^{name} must be .*{re.escape(repr(value))}$"):
        cls(**kwargs)


def test_bad_parameters_from_a_spec_raise_too() -> None:
    with pytest.raises(ValueError, match=re.escape("-3.0")):
        slippage_model_from_dict({"model": "fixed_bps", "bps": -3.0})


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_models_are_frozen_and_pickle(model: SlippageModel) -> None:
    copy = pickle.loads(pickle.dumps(model))
    assert copy == model
    assert type(copy) is type(model)
    assert hash(copy) == hash(model)
    bar = one_bar(high=52, low=49, close=50, volume=1_000)
    assert copy.rate(np.array([1.0]), np.array([10.0]), np.array([50.0]), bar) == model.rate(
        np.array([1.0]), np.array([10.0]), np.array([50.0]), bar)
    fields = dataclasses.fields(model)  # type: ignore[arg-type]
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(model, fields[0].name, 1.0)
