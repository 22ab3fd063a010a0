"""Bad targets are refused the same way with and without account/cap/borrow models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simbroker.financing import BorrowModel
from simbroker.vectorized import backtest_vectorized
from tests.test_vectorized_accounts import flat_bars, frame


@pytest.mark.parametrize("kw", [{}, {"account": "margin"}, {"account": "cash"},
                                {"max_volume_share": 0.1},
                                {"borrow": BorrowModel(hard_to_borrow={"S1"})}])
def test_an_infinite_target_is_named_on_every_path(kw: dict[str, Any]) -> None:
    bars = flat_bars(4, [10.0, 20.0])
    targets = frame(bars, {0: [1.0, 2.0], 2: [np.nan, -np.inf]})
    with pytest.raises(ValueError, match=r"targets must be finite or NaN; targets\[.*'S1'\] "
                                         r"is -inf"):
        backtest_vectorized(bars, targets=targets, **kw)


def test_the_scalar_max_is_numpys_bit_for_bit() -> None:
    from simbroker._vector_account import _max0

    rng = np.random.default_rng(7)
    values = [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1.0, -1.0,
              *rng.standard_normal(50).tolist()]
    for x in values:
        want = np.maximum(np.array([x]), 0.0)[0]
        got = _max0(float(x))
        assert np.array([got]).view(np.int64)[0] == np.array([want]).view(np.int64)[0], x
