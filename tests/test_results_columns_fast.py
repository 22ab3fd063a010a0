"""The result tables' column shortcuts give what the general conversions give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simbroker.results.columns import _STR_DTYPE, floats, strings


@pytest.mark.parametrize("values", [
    [], ["AAA"], ["AAA"] * 7, ["buy", "sell", "buy"], ["filled"] * 3 + [None],
    [None, None], ["a", "b", "c"],
])
def test_strings_equal_the_direct_conversion(values: list[object]) -> None:
    got, want = strings(values), pd.array(values, dtype=_STR_DTYPE)
    assert type(got) is type(want)
    assert got.dtype == want.dtype
    pd.testing.assert_extension_array_equal(got, want)


@pytest.mark.parametrize("values", [[], [None] * 4, [1.5, None, 2.0], [0.1, 0.2]])
def test_floats_equal_the_direct_conversion(values: list[object]) -> None:
    got, want = floats(values), np.array(values, np.float64)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
