"""The schedule fee models' scalar path (a few fills in Python floats) against the
array path, on random fills: the same fees bit for bit, the same errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker.errors import FeeScheduleError
from simbroker.models import AlpacaFee, IBKRFixedFee, ScheduleFee, fee_schedule

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NS_PER_DAY = 86_400 * 10**9
# 2018-01-01 .. 2027-01-01: before the first commission version too (an error on both paths)
WHEN = st.integers(17532 * NS_PER_DAY, 20820 * NS_PER_DAY)
QTY = st.one_of(st.sampled_from([0.0, 1.0, 100.0, 0.5, 1e7]),
                st.floats(0.0, 1e6, allow_nan=False), st.floats(-1e6, 0.0))
PRICE = st.one_of(st.sampled_from([0.01, 0.0, 25.0, 1e5]), st.floats(0.0001, 1e4))
FILL = st.tuples(st.sampled_from([1.0, -1.0]), QTY, PRICE,
                 st.one_of(st.just(0.0), st.floats(0.0, 1e5)), st.floats(0.0, 1e8))


def _model(name: str, as_of: str | None) -> ScheduleFee:
    """The schedule's model; Alpaca's with each fill's regulatory fees rounded up (a
    dated call with the daily round-up is priced through its ledger, never the scalar
    path: tests/test_fee_daily_round_up.py)."""
    model = fee_schedule(name, as_of)
    assert isinstance(model, (IBKRFixedFee, AlpacaFee))
    if isinstance(model, AlpacaFee):
        model = AlpacaFee(dataclasses.replace(model.schedule, daily_round_up=False), as_of)
        assert model._daily is None
    return model


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float64
    assert a.shape == b.shape
    assert a.tobytes() == b.tobytes(), (a, b)


def _outcome(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except FeeScheduleError as exc:
        return type(exc), str(exc)


@PROPS
@given(name=st.sampled_from(["ibkr_fixed", "alpaca"]),
       as_of=st.sampled_from([None, "2024-06-03", "2025-06-02"]),
       fills=st.lists(FILL, min_size=0, max_size=16), when=st.one_of(st.none(), WHEN))
def test_scalar_path_equals_the_array_path(name: str, as_of: str | None,
                                           fills: list[tuple[float, ...]],
                                           when: int | None) -> None:
    model = _model(name, as_of)
    cols = [np.array([f[k] for f in fills], np.float64) for k in range(5)]
    side, qty, price, done, paid = cols
    dated = None if when is None else np.int64(when)
    arr_when = None if when is None else np.array([when], np.int64)
    assert model._scalar_args((side, qty, price), dated) is not None  # the fast path runs
    for fast, slow in (
            ((model.fees, side, qty, price, dated),
             (model._price, side, qty, price, arr_when, None)),
            ((model.order_fees, side, qty, price, done, paid, dated),
             (model._order_price, side, qty, price, done, paid, arr_when, None))):
        got, want = _outcome(*fast), _outcome(*slow)
        if isinstance(want, tuple):
            assert got == want
        else:
            assert isinstance(got, np.ndarray)
            _same(got, want)
    # a second call at the same time uses the cached rates: still the same
    if when is not None and fills and not isinstance(_outcome(model.fees, side, qty, price,
                                                               dated), tuple):
        _same(model.fees(side, qty, price, dated), model._price(side, qty, price, arr_when,
                                                                 None))


def test_the_scalar_path_is_only_for_small_plain_calls() -> None:
    model = _model("ibkr_fixed", None)
    one = np.ones(1)
    assert model._scalar_args((one, one, one), None) is not None
    assert model._scalar_args((np.ones(model._scalar_max + 1),) * 3, None) is None  # larger
    assert model._scalar_args((one, np.ones(2), one), None) is None  # broadcasting
    assert model._scalar_args((one, np.ones(1, np.int64), one), None) is None
    assert model._scalar_args((one, one, one), np.array([0], "datetime64[ns]")) is None
    tiered = fee_schedule("ibkr_tiered")
    assert tiered._scalar_args((one, one, one), None) is None


def test_a_subclass_changing_the_formula_keeps_the_array_path() -> None:
    class Doubled(IBKRFixedFee):
        def _extras(self, q: np.ndarray, ib: np.ndarray, rows: object) -> np.ndarray:
            return 2.0 * ib

    model = Doubled(fee_schedule("ibkr_fixed").schedule)
    one = np.ones(1)
    assert model._scalar_args((one, one, one), None) is None
    # 2 x the $1.00 minimum, plus the CAT fee ($0.000003 x 100, newest rates)
    assert model.fees(one, np.array([100.0]), np.array([10.0]))[0] == pytest.approx(2.0003,
                                                                                 abs=1e-12)


@pytest.mark.parametrize("name", ["ibkr_fixed", "alpaca"])
def test_hand_computed_sell_on_the_scalar_path(name: str) -> None:
    model = _model(name, "2025-06-02")
    got = model.fees(np.array([-1.0]), np.array([100.0]), np.array([25.0]))
    want = model._price(np.array([-1.0]), np.array([100.0]), np.array([25.0]), None, None)
    _same(got, want)


@PROPS
@given(name=st.sampled_from(["ibkr_fixed", "alpaca"]),
       whens=st.lists(st.one_of(WHEN, st.sampled_from(
           [19052 * NS_PER_DAY - 1, 19052 * NS_PER_DAY, 19967 * NS_PER_DAY - 1,
            19967 * NS_PER_DAY, 20127 * NS_PER_DAY])), min_size=1, max_size=12),
       fill=FILL)
def test_the_cached_rates_follow_the_versions(name: str, whens: list[int],
                                              fill: tuple[float, ...]) -> None:
    # One model priced at many times in turn (the cache spans versions: 2022-03-01,
    # 2024-09-01 ... are version boundaries of some part): each call as the array path.
    model = _model(name, None)
    side, qty, price = (np.array([fill[k]]) for k in range(3))
    for when in whens:
        got = _outcome(model.fees, side, qty, price, np.int64(when))
        want = _outcome(model._price, side, qty, price, np.array([when], np.int64), None)
        if isinstance(want, tuple):
            assert got == want
        else:
            _same(got, want)


@PROPS
@given(rounding=st.booleans(), fills=st.lists(FILL, min_size=1, max_size=16),
       when=st.one_of(st.none(), st.integers(19900 * NS_PER_DAY, 20820 * NS_PER_DAY)))
def test_a_part_charged_on_buys_too_on_the_scalar_path(
        rounding: bool, fills: list[tuple[float, ...]], when: int | None) -> None:
    # IBKR fixed with the FINRA CAT fee (both sides) added: buys pay a regulatory fee, so
    # the scalar path cannot skip the parts for them (the CAT fee starts 2024-09-01;
    # before it the part is not in effect, rounded or not).
    fixed = fee_schedule("ibkr_fixed").schedule
    cat = fee_schedule("ibkr_tiered").schedule.regulatory["finra_cat"]
    model = IBKRFixedFee(dataclasses.replace(
        fixed, regulatory={**fixed.regulatory, "finra_cat": cat},
        round_regulatory_up_to_cent=rounding))
    side, qty, price, done, paid = (np.array([f[k] for f in fills], np.float64)
                                    for k in range(5))
    dated = None if when is None else np.int64(when)
    arr_when = None if when is None else np.array([when], np.int64)
    # before 2024-09-01 (day 19967) the CAT part is not in effect: buys pay nothing again
    cat_off = when is not None and when < 19967 * NS_PER_DAY
    assert model._row_cache.rates(None if when is None else when)[3] is cat_off
    _same(model.fees(side, qty, price, dated), model._price(side, qty, price, arr_when, None))
    _same(model.order_fees(side, qty, price, done, paid, dated),
          model._order_price(side, qty, price, done, paid, arr_when, None))
