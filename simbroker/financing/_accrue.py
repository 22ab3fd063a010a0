"""One day's accrual, the same arithmetic in the paper broker and the vectorized runner."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simbroker.financing._interest import InterestModel

__all__ = ["borrow_fees", "interest_amount"]

F64 = npt.NDArray[np.float64]


def borrow_fees(pos: F64, close: F64, rates: F64, days: float, day_count: float) -> F64:
    """Per-symbol borrow fee of one day: ``|pos| * close * rate * days / day_count`` on
    short positions, 0 elsewhere (and where no close is known yet)."""
    with np.errstate(invalid="ignore"):
        smv = np.where(pos < 0, -pos * close, 0.0)
    smv[np.isnan(smv)] = 0.0
    out: F64 = smv * (rates * (days / day_count))
    return out


def interest_amount(model: InterestModel | None, cash: float, days: float) -> float:
    """The day's interest: positive paid, negative credited (0.0 without a model)."""
    return 0.0 if model is None else model.amount(cash, days)
