"""The schedule fee models for a handful of fills, in Python floats.

The paper broker prices a bar's fills (one to a few) and the accounts estimate one
order's fee: numpy's per-call cost then dominates the ~40 array operations of
:meth:`ScheduleFee._price`. :func:`scalar_fees` repeats those operations element by
element, in the same order, with ``np.maximum``/``np.minimum``'s NaN and tie rules, so
its results are bit-identical (``tests/test_fee_scalar_paths.py`` forces both paths).
The versions in effect are looked up once per trade time and kept (:class:`RowCache`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from simbroker.models.schedules._loader import days_of

if TYPE_CHECKING:
    from simbroker.models.schedules._models import ScheduleFee

__all__ = ["Rates", "RowCache", "scalar_fees"]

_CENT_EPS = 1e-9
_INF = math.inf
_NS_PER_DAY = 86_400 * 10**9

# commission (per_share, minimum, cap fraction or NaN), regulatory parts
# (kind, live, rate, maximum), whether regulatory fees round up to the cent, whether a
# buy pays no regulatory fee (every live part is one of sells only), and the live parts
# in order as (_SEC, _TAF or _PER_SHARE, rate, maximum): a part not in effect adds
# 0.0 (rounded up, 0.0 too) to a sum that starts at 0.0, which changes no bit of it;
# last, the rates of the live parts a buy pays (the per-share ones, in order): on a buy
# the sells-only parts add 0.0, so a buy's sum is these parts' alone, bit for bit
Rates = tuple[tuple[float, float, float], tuple[tuple[str, bool, float, float], ...], bool,
              bool, tuple[tuple[int, float, float], ...], tuple[float, ...]]
_SELLS_ONLY = ("sec_fee", "finra_taf")
_SEC, _TAF, _PER_SHARE = 0, 1, 2


def _max(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN when ``a`` is NaN, ``b`` on a tie."""
    return a if a > b or a != a else b


def _min(a: float, b: float) -> float:
    """``np.minimum`` of two floats: NaN when ``a`` is NaN, ``b`` on a tie."""
    return a if a < b or a != a else b


def _up_to_cent(x: float) -> float:
    y = x * 100.0 - _CENT_EPS
    if math.isfinite(y):
        c = float(math.ceil(y))
        if c == 0.0:
            c = math.copysign(0.0, y)  # np.ceil keeps the sign of (-1, 0]
    else:
        c = y
    return _max(c / 100.0, 0.0)


class RowCache:
    """The rates of the versions in effect for a fill time (int ns since the epoch;
    ``None``: the model's ``as_of``), looked up with :meth:`DatedTable.index` as the
    array path does, and kept with the span of times they hold for (up to the next
    version of any part), so a run looks them up once per version change."""

    def __init__(self, model: ScheduleFee) -> None:
        self._model = model
        self._undated: Rates | None = None
        self._span = (0, 0)  # [start, end) in ns of self._dated
        self._dated: Rates | None = None

    def rates(self, when: int | None) -> Rates:
        """The rates of the fills at ``when``."""
        if when is None:
            if self._undated is None:
                self._undated = self._lookup(None)[0]
            return self._undated
        start, end = self._span
        if start <= when < end and self._dated is not None:
            return self._dated
        rates, span = self._lookup(when)
        if span is not None:
            self._dated, self._span = rates, span
        return rates

    def _lookup(self, when: int | None) -> tuple[Rates, tuple[int, int] | None]:
        m = self._model
        days = None if when is None else days_of(np.array([when], np.int64))
        sched = m.schedule
        c = sched.commission
        i = _row(m, c, days)
        commission = (float(c.columns["per_share"][i]), float(c.columns["minimum"][i]),
                      float(c.columns["max_fraction"][i]))
        parts = []
        for part, table in sched.regulatory.items():
            k = _row(m, table, days)
            cols = table.columns
            if part == "sec_fee":
                rate, cap = float(cols["per_million"][k]) / 1e6, _INF
            elif part == "finra_taf":
                rate, cap = float(cols["per_share"][k]), float(cols["maximum"][k])
            else:
                rate, cap = float(cols["per_share"][k]), _INF
            parts.append((part, k >= 0, rate, cap))
        kinds = {"sec_fee": _SEC, "finra_taf": _TAF}
        rates = (commission, tuple(parts), bool(sched.round_regulatory_up_to_cent),
                 all(part in _SELLS_ONLY or not live for part, live, _, _ in parts),
                 tuple((kinds.get(part, _PER_SHARE), rate, cap)
                       for part, live, rate, cap in parts if live),
                 tuple(rate for part, live, rate, _ in parts
                       if live and part not in _SELLS_ONLY))
        if days is None or when is None or when < 0:  # days_of floors; so does // here
            return rates, None
        day = int(days[0].astype(np.int64))
        lo, hi = 0, 1 << 62
        for table in (c, *sched.regulatory.values()):
            eff = table.effective.astype(np.int64)
            j = int(np.searchsorted(eff, day, side="right"))  # versions on or before day
            if j > 0:
                lo = max(lo, int(eff[j - 1]))
            if j < len(eff):
                hi = min(hi, int(eff[j]))
        return rates, (max(lo * _NS_PER_DAY, 0), min(hi, (1 << 62) // _NS_PER_DAY)
                       * _NS_PER_DAY)


def _row(model: ScheduleFee, table: Any, days: np.ndarray | None) -> int:
    rows = model._rows(table, days)
    return int(rows[0]) if isinstance(rows, np.ndarray) else int(rows)


def _ib(q: float, notional: float, commission: tuple[float, float, float]) -> float:
    """``ScheduleFee._ib`` for one fill."""
    if not q > 0:
        return 0.0
    per_share, minimum, max_fraction = commission
    fee = _max(per_share * q, minimum)
    cap = _INF if max_fraction != max_fraction else max_fraction * notional
    return _min(fee, cap)


def _regulatory(sell: bool, q: float, notional: float, rates: Rates) -> float:
    """``ScheduleFee._regulatory`` for one fill."""
    total = 0.0
    rounding = rates[2]
    for kind, rate, cap in rates[4]:  # the live parts (see Rates)
        if kind == _SEC:
            fee = rate * notional if sell else 0.0
        elif kind == _TAF:
            fee = rate * q if sell else 0.0
            if sell and not (fee < cap or fee != fee):  # _min(fee, cap), inlined
                fee = cap
        else:
            fee = rate * q
        if rounding:
            fee = _up_to_cent(fee)
        total = total + fee
    return total


def scalar_fees(rates: Rates, side: list[float], qty: list[float], price: list[float],
                filled_qty: list[float] | None, filled_notional: list[float] | None
                ) -> list[float]:
    """``ScheduleFee._price`` (``filled_qty`` None) or ``_order_price`` per fill.

    :func:`_ib` is inlined for a fill that is its order's first (the common case): the
    same operations in the same order.
    """
    out = []
    commission = rates[0]
    per_share, minimum, max_fraction = commission
    capped = max_fraction == max_fraction  # NaN: no cap (min(fee, inf) is fee)
    buys_free = rates[3]
    rounding = rates[2]
    buy_parts = rates[5]
    # any(): a NaN counts here too, but each fill checks abs(done) > 0 again
    partial = filled_qty is not None and any(filled_qty)
    if not len(side) == len(qty) == len(price):
        raise ValueError("scalar_fees: side, qty and price differ in length")
    # zip without strict= and abs() as a conditional: their calls cost more than a
    # fill's arithmetic (-0.0 and NaN still end as "no fill" below)
    for j, (sg, qty_j, p) in enumerate(zip(side, qty, price)):  # noqa: B905
        q = qty_j if qty_j >= 0 else -qty_j
        if not q > 0:
            out.append(0.0)
            continue
        notional = q * p
        if partial and filled_qty is not None and abs(filled_qty[j]) > 0 \
                and filled_notional is not None:
            done = abs(filled_qty[j])
            paid_n = filled_notional[j]
            ib = _max(_ib(done + q, paid_n + q * p, commission)
                      - _ib(done, paid_n, commission), 0.0)
        else:
            ib = per_share * q
            if not (ib > minimum or ib != ib):  # _max(ib, minimum)
                ib = minimum
            if capped:
                cap = max_fraction * notional
                if not (ib < cap or ib != ib):  # _min(ib, cap)
                    ib = cap
        sell = sg < 0
        if not sell:
            if buys_free:  # every part is 0.0 (_up_to_cent(0.0) too)
                out.append(ib + 0.0)
                continue
            reg = 0.0  # _regulatory on a buy: the sells-only parts add 0.0
            for rate in buy_parts:
                fee = rate * q
                reg = reg + (_up_to_cent(fee) if rounding else fee)
            out.append(ib + reg)
            continue
        out.append(ib + _regulatory(sell, q, notional, rates))
    return out
