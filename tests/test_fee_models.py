"""Fee models: hand-computed fees, the properties every model keeps, specs and errors."""

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
    BpsOfNotional,
    FeeModel,
    FeeSum,
    NoFee,
    PerOrder,
    PerShare,
    fee_model,
    fee_model_from_dict,
)
from simbroker.testing.strategies import fee_cases

PROPS = settings(max_examples=20, deadline=None)

# Every model, with several parameter choices, and sums (flat and nested).
MODELS: list[FeeModel] = [
    NoFee(),
    BpsOfNotional(),
    BpsOfNotional(bps=0),
    BpsOfNotional(bps=25),
    PerShare(),
    PerShare(maximum_fraction=None),
    PerShare(rate=0.01, minimum=0.0, maximum_fraction=0.005),
    PerShare(rate=0.0, minimum=2.5, maximum_fraction=1.0),
    PerOrder(),
    PerOrder(amount=0.0),
    BpsOfNotional(1) + PerOrder(0.35),
    BpsOfNotional(2) + PerShare(maximum_fraction=None) + PerOrder(1.0),
    FeeSum(models=(FeeSum(models=(PerOrder(0.5),)), BpsOfNotional(3))),
    FeeSum(),
]


# ------------------------------------------------------------------ hand-computed values
def test_no_fee() -> None:
    assert NoFee().fee("buy", 100, 50.0) == 0.0
    assert NoFee().min_fee == 0.0


def test_bps_of_notional() -> None:
    assert BpsOfNotional(1).fee("buy", 100, 50.0) == pytest.approx(0.5, rel=1e-15)
    assert BpsOfNotional(1).fee("sell", 100, 50.0) == pytest.approx(0.5, rel=1e-15)
    assert BpsOfNotional(2.5).fee("buy", 1_000, 20.0) == pytest.approx(5.0, rel=1e-15)
    assert BpsOfNotional() == BpsOfNotional(bps=1.0)  # the default is 1 bp
    assert BpsOfNotional(1).fee("buy", 0, 50.0) == 0.0
    assert BpsOfNotional(1).min_fee == 0.0


def test_per_share_minimum_rate_and_cap() -> None:
    m = PerShare()  # $0.005 a share, $1 minimum, capped at 1 % of notional
    assert m.fee("buy", 100, 50.0) == 1.0  # max(0.5, 1.0); the cap (50.0) is not reached
    assert m.fee("sell", 1_000, 50.0) == pytest.approx(5.0, rel=1e-15)  # 1000 * 0.005
    # 10 sh @ $5: the minimum would be 1.0, but 1 % of the $50 notional is 0.5, and wins.
    assert m.fee("buy", 10, 5.0) == pytest.approx(0.5, rel=1e-15)
    assert m.fee("buy", 0, 50.0) == 0.0
    assert m.min_fee == 0.0  # with a cap, the minimum is not guaranteed


def test_per_share_without_a_cap_always_honours_the_minimum() -> None:
    m = PerShare(maximum_fraction=None)
    assert m.fee("buy", 10, 5.0) == 1.0
    assert m.fee("buy", 1, 0.01) == 1.0
    assert m.fee("buy", 1_000, 50.0) == pytest.approx(5.0, rel=1e-15)
    assert m.fee("sell", 0, 50.0) == 0.0
    assert m.min_fee == 1.0


def test_per_share_other_parameters() -> None:
    m = PerShare(rate=0.01, minimum=2.0, maximum_fraction=0.005)
    assert m.fee("buy", 500, 10.0) == pytest.approx(5.0, rel=1e-15)  # rate; cap is 25
    assert m.fee("buy", 100, 1.0) == pytest.approx(0.5, rel=1e-15)  # min 2, cap 0.5 wins


def test_per_order() -> None:
    m = PerOrder(0.35)
    assert m.fee("buy", 1, 50.0) == 0.35
    assert m.fee("sell", 1e6, 0.01) == 0.35
    assert m.fee("buy", 0, 50.0) == 0.0
    assert m.min_fee == 0.35
    assert PerOrder() == PerOrder(amount=1.0)


def test_fee_sum_adds_the_parts() -> None:
    m = BpsOfNotional(1) + PerOrder(0.35)
    assert m == FeeSum(models=(BpsOfNotional(1), PerOrder(0.35)))
    assert m.fee("buy", 100, 50.0) == pytest.approx(0.85, rel=1e-15)
    assert m.fee("buy", 0, 50.0) == 0.0
    assert m.min_fee == 0.35
    assert FeeSum().fee("buy", 100, 50.0) == 0.0
    assert FeeSum().min_fee == 0.0


def test_plus_flattens_sums() -> None:
    a, b, c, d = BpsOfNotional(1), PerOrder(0.35), PerShare(), NoFee()
    assert (a + b) + c == FeeSum(models=(a, b, c))
    assert a + (b + c) == FeeSum(models=(a, b, c))
    assert (a + b) + (c + d) == FeeSum(models=(a, b, c, d))
    assert (a + b + c).min_fee == 0.35


def test_plus_refuses_a_non_model() -> None:
    with pytest.raises(TypeError):
        BpsOfNotional(1) + 1  # type: ignore[operator]


def test_array_method_handles_many_fills_at_once() -> None:
    fees = PerShare().fees(np.array([1.0, -1.0, 1.0, 1.0]), np.array([100.0, 1_000.0, 10.0, 0.0]),
                           np.array([50.0, 50.0, 5.0, 50.0]))
    np.testing.assert_allclose(fees, [1.0, 5.0, 0.5, 0.0], rtol=1e-15)


def test_fee_refuses_an_unknown_side() -> None:
    with pytest.raises(ValueError, match="'short'"):
        PerOrder().fee("short", 1, 50.0)


# ------------------------------------------------------------------ properties
def is_non_decreasing(x: np.ndarray) -> bool:
    return bool(np.all(np.diff(x) >= 0))


@pytest.mark.parametrize("model", MODELS, ids=repr)
@PROPS
@given(case=fee_cases())
def test_every_model_keeps_the_fee_invariants(model: FeeModel, case: Any) -> None:
    """One generated batch, every property (one run per model keeps the file fast)."""
    side, qty, price = case
    fees = model.fees(side, qty, price)
    assert fees.shape == qty.shape
    assert np.all(np.isfinite(fees))
    assert np.all(fees >= 0.0), "a negative fee"
    assert np.all(fees[qty == 0] == 0.0), "a fee for nothing traded"
    assert np.all(fees[qty > 0] >= model.min_fee), "min_fee not honoured"
    # Non-decreasing in qty at a fixed price and side, and in price at a fixed qty and side.
    same_side = np.full(qty.shape, side[0])
    at_price = model.fees(same_side, np.sort(qty), np.full(qty.shape, price[0]))
    assert is_non_decreasing(at_price), ("fee falls as qty grows", np.sort(qty), at_price)
    at_qty = model.fees(same_side, np.full(qty.shape, qty[0]), np.sort(price))
    assert is_non_decreasing(at_qty), ("fee falls as price grows", np.sort(price), at_qty)
    # A sum is the sum of its parts.
    if isinstance(model, FeeSum):
        parts = np.zeros(qty.shape)
        for part in model.models:
            parts = parts + part.fees(side, qty, price)
        np.testing.assert_array_equal(fees, parts)
    # The array method equals the scalar convenience, element by element.
    for i in range(len(qty)):
        one = model.fee("buy" if side[i] > 0 else "sell", float(qty[i]), float(price[i]))
        assert one == fees[i], (i, one, fees[i])


# ------------------------------------------------------------------ repr, specs, coercion
def test_repr_shows_the_parameters() -> None:
    assert repr(NoFee()) == "NoFee()"
    assert repr(BpsOfNotional(2.5)) == "BpsOfNotional(bps=2.5)"
    assert repr(PerShare()) == "PerShare(rate=0.005, minimum=1.0, maximum_fraction=0.01)"
    assert repr(PerOrder(0.35)) == "PerOrder(amount=0.35)"
    assert repr(BpsOfNotional(1) + PerOrder(0.35)) == (
        "FeeSum(models=(BpsOfNotional(bps=1), PerOrder(amount=0.35)))")


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_to_dict_round_trips(model: FeeModel) -> None:
    spec = model.to_dict()
    assert spec["model"] == model.name
    copy = json.loads(json.dumps(spec))  # YAML/JSON-ready
    rebuilt = fee_model_from_dict(spec)
    assert spec == copy  # the spec is not consumed
    assert type(rebuilt) is type(model)
    assert rebuilt == model
    assert fee_model_from_dict(copy) == model


def test_nested_sum_round_trips_as_nested_dicts() -> None:
    inner = FeeSum(models=(PerOrder(0.5), PerShare(maximum_fraction=None)))
    outer = FeeSum(models=(inner, BpsOfNotional(3)))
    spec = outer.to_dict()
    assert spec == {"model": "sum", "models": [
        {"model": "sum", "models": [
            {"model": "per_order", "amount": 0.5},
            {"model": "per_share", "rate": 0.005, "minimum": 1.0, "maximum_fraction": None},
        ]},
        {"model": "bps_of_notional", "bps": 3},
    ]}
    assert fee_model_from_dict(spec) == outer


def test_from_dict_accepts_class_names_in_any_case() -> None:
    assert fee_model_from_dict({"model": "PerShare", "minimum": 0.35}) == PerShare(minimum=0.35)
    assert fee_model_from_dict({"model": "BPS_OF_NOTIONAL"}) == BpsOfNotional()
    assert fee_model_from_dict({"model": "none"}) == NoFee()
    assert fee_model_from_dict({"model": "sum"}) == FeeSum()


@pytest.mark.parametrize(("spec", "named"), [
    ({"model": "nope"}, "'nope'"),
    ({"model": "per_share", "minimum_fee": 1.0}, "'minimum_fee'"),
    ({"model": "none", "bps": 1.0}, "'bps'"),
    ({"model": "sum", "models": [], "extra": 1}, "'extra'"),
    ({"model": "sum", "models": [{"model": "per_order", "amonut": 1}]}, "'amonut'"),
    ({"model": "sum", "models": [{"model": "nope"}]}, "'nope'"),
    ({"bps": 1.0}, "'model' key"),
])
def test_from_dict_rejects_unknown_names_and_keys(spec: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        fee_model_from_dict(spec)


def test_fee_model_coerces() -> None:
    assert fee_model(1) == BpsOfNotional(bps=1.0)
    assert isinstance(fee_model(1).bps, float)  # type: ignore[attr-defined]
    assert fee_model(2.5) == BpsOfNotional(bps=2.5)
    assert fee_model(None) == NoFee()
    m = PerShare()
    assert fee_model(m) is m


@pytest.mark.parametrize("value", [True, False, "1", [1], {"bps": 1}])
def test_fee_model_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError, match=re.escape(repr(value))):
        fee_model(value)  # type: ignore[arg-type]


def test_fee_model_refuses_a_bad_number() -> None:
    with pytest.raises(ValueError, match="-1"):
        fee_model(-1)


BAD_PARAMETERS = [
    (BpsOfNotional, {"bps": -1.0}),
    (BpsOfNotional, {"bps": 10_001}),
    (BpsOfNotional, {"bps": math.nan}),
    (BpsOfNotional, {"bps": True}),
    (BpsOfNotional, {"bps": "1"}),
    (PerShare, {"rate": -0.005}),
    (PerShare, {"rate": math.inf}),
    (PerShare, {"minimum": -1.0}),
    (PerShare, {"minimum": math.nan}),
    (PerShare, {"maximum_fraction": 1.5}),
    (PerShare, {"maximum_fraction": -0.01}),
    (PerShare, {"maximum_fraction": False}),
    (PerOrder, {"amount": -0.35}),
    (PerOrder, {"amount": math.inf}),
]


@pytest.mark.parametrize(("cls", "kwargs"), BAD_PARAMETERS,
                         ids=[f"{c.__name__}-{k}" for c, k in BAD_PARAMETERS])
def test_bad_parameters_raise_quoting_the_value(cls: type[FeeModel],
                                                kwargs: dict[str, Any]) -> None:
    [(name, value)] = kwargs.items()
    with pytest.raises(ValueError, match=rf"^{name} must be .*{re.escape(repr(value))}$"):
        cls(**kwargs)


def test_fee_sum_refuses_non_models() -> None:
    with pytest.raises(ValueError, match=re.escape("1.5")):
        FeeSum(models=(BpsOfNotional(1), 1.5))  # type: ignore[arg-type]


def test_bad_parameters_from_a_spec_raise_too() -> None:
    with pytest.raises(ValueError, match=re.escape("-2.0")):
        fee_model_from_dict({"model": "sum", "models": [{"model": "per_order", "amount": -2.0}]})


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_models_are_frozen_and_pickle(model: FeeModel) -> None:
    copy = pickle.loads(pickle.dumps(model))
    assert copy == model
    assert type(copy) is type(model)
    assert hash(copy) == hash(model)
    args = (np.array([1.0, -1.0]), np.array([10.0, 3.5]), np.array([50.0, 7.0]))
    np.testing.assert_array_equal(copy.fees(*args), model.fees(*args))
    fields = dataclasses.fields(model)  # type: ignore[arg-type]
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(model, fields[0].name, 1.0)
