"""The account models' fast paths against the array code they replace, on random
inputs: the same floats, so the same refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker._paper_book import OpenBook
from simbroker.accounts import _reserve
from simbroker.accounts._margin import _zero_nan
from simbroker.accounts._reserve import same_side_open

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QTY = st.one_of(st.sampled_from([1.0, 100.0, 0.1, 0.2, 1e16]), st.floats(1e-6, 1e9))


@PROPS
@given(orders=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([1.0, -1.0]), QTY),
                       max_size=40),
       col=st.integers(0, 3), sign=st.sampled_from([1.0, -1.0]))
def test_same_side_open_equals_the_masked_sum(orders: list[tuple[int, float, float]],
                                              col: int, sign: float) -> None:
    book = OpenBook(capacity=4)
    for k, (sym, sgn, qty) in enumerate(orders):
        book.add(f"o{k}", sym, sgn, qty, 0, np.nan, np.nan, 0, 10)
    n = book.n
    want = float(book.qty[:n][(book.sym[:n] == col) & (book.sign[:n] == sign)].sum())
    got = same_side_open(book, col, sign)
    saved = _reserve.SMALL_BOOK
    try:
        _reserve.SMALL_BOOK = -1  # the array path
        forced = same_side_open(book, col, sign)
    finally:
        _reserve.SMALL_BOOK = saved
    assert np.float64(got).tobytes() == np.float64(want).tobytes() == \
        np.float64(forced).tobytes()


@PROPS
@given(marks=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                st.just(np.nan)), max_size=12))
def test_zero_nan_is_nan_to_num(marks: list[float]) -> None:
    m = np.array(marks, np.float64)
    got = _zero_nan(m)
    assert got is not m
    assert got.tobytes() == np.nan_to_num(m).tobytes()


@pytest.mark.parametrize("n", [0, 1, 2, 9])
def test_same_side_open_hand_computed(n: int) -> None:
    book = OpenBook()
    for k in range(n):
        book.add(f"o{k}", 1, 1.0, 0.1, 0, np.nan, np.nan, 0, 10)
    book.add("x", 1, -1.0, 5.0, 0, np.nan, np.nan, 0, 10)
    book.add("y", 2, 1.0, 7.0, 0, np.nan, np.nan, 0, 10)
    assert same_side_open(book, 1, 1.0) == float(np.full(n, 0.1).sum())
    assert same_side_open(book, 1, -1.0) == 5.0
    assert same_side_open(book, 3, 1.0) == 0.0
