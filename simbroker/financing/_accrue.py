"""One day's accrual, the same arithmetic in the paper broker and the vectorized runner."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simbroker.financing._interest import InterestModel

__all__ = ["borrow_fees", "borrow_total_into", "interest_amount"]

F64 = npt.NDArray[np.float64]

# Bound once: the daily accrual is a few calls on small arrays, where looking a ufunc up
# in the numpy module costs a share worth saving.
_minimum, _multiply, _sum = np.minimum, np.multiply, np.add.reduce


def borrow_fees(pos: F64, close: F64, rates: F64, days: float, day_count: float) -> F64:
    """Per-symbol borrow fee of one day: ``|pos| * close * rate * days / day_count`` on
    short positions, 0 elsewhere (and where no close is known yet)."""
    with np.errstate(invalid="ignore"):
        smv = np.where(pos < 0, -pos * close, 0.0)
    smv[np.isnan(smv)] = 0.0
    out: F64 = smv * (rates * (days / day_count))
    return out


def borrow_total_into(out: F64, pos: F64, close: F64, neg_scale: F64, zeros: F64) -> float:
    """``float(np.sum(borrow_fees(pos, close, rates, days, day_count)))`` in three ufuncs
    and one sum, with the fees left in ``out``, when the result is finite.

    ``neg_scale`` is ``-(rates * (days / day_count))``, ``close`` has no ``NaN`` (a
    missing close as 0.0) and no infinity, ``zeros`` is ``pos``-shaped 0.0 (cheaper to
    pass than a scalar). Each fee is ``(min(pos, 0) * close) * neg_scale``: on a short,
    ``-((pos * close) * scale)``, the bits of ``(-pos * close) * scale`` (negations are
    exact); elsewhere a zero, perhaps ``-0.0``. ``x + -0.0`` and ``x + 0.0`` are the same
    bits for every ``x`` but a zero, so the pairwise sum over the same indices gives the
    same bits up to the sign of a zero total (which books nothing either way), and
    ``out``'s nonzero entries are ``borrow_fees``'. A non-finite result (a ``NaN``
    position, an overflow) proves nothing: the caller recomputes with :func:`borrow_fees`.
    """
    _minimum(pos, zeros, out=out)  # out= by keyword: cheaper for minimum than by position
    _multiply(out, close, out)
    _multiply(out, neg_scale, out)
    return float(_sum(out, 0))


def interest_amount(model: InterestModel | None, cash: float, days: float) -> float:
    """The day's interest: positive paid, negative credited (0.0 without a model)."""
    return 0.0 if model is None else model.amount(cash, days)
