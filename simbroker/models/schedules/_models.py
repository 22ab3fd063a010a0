"""Fee models of the published schedules: IBKR Pro fixed and tiered, Alpaca.

Arrays in, arrays out, like every :class:`~simbroker.models.FeeModel`, plus an optional
``when=`` (the fills' times) so that each fill pays the rates of its own trade date.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from simbroker.errors import FeeScheduleError
from simbroker.models.fees import FeeModel, keeps_ledgers
from simbroker.models.schedules._daily import DailyRoundUp, new_york_days
from simbroker.models.schedules._loader import FeeSchedule, as_day, days_of
from simbroker.models.schedules._scalar import RowCache, scalar_fees

__all__ = ["AlpacaFee", "IBKRFixedFee", "IBKRTieredFee", "ScheduleFee", "fees_at",
           "fill_fees", "model_class", "order_fees_at"]

_CENT_EPS = 1e-9  # 0.1 * 100 is 10.000000000000002: not a reason to charge another cent


def _up_to_cent(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.maximum(np.ceil(x * 100.0 - _CENT_EPS) / 100.0, 0.0)
    return out


def fees_at(model: FeeModel, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
            when: np.ndarray | None) -> np.ndarray:
    """``model.fees``, with the fills' times for a model that prices by date.

    The engines call this where they price fills: a :class:`ScheduleFee` gets ``when``
    (int64 ns or datetime64, one per fill), every other model the plain call.
    """
    if when is not None and isinstance(model, ScheduleFee):
        return model.fees(side, qty, price, when=when)
    return model.fees(side, qty, price)


def order_fees_at(model: FeeModel, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                  filled_qty: np.ndarray, filled_notional: np.ndarray,
                  when: np.ndarray | None) -> np.ndarray:
    """``model.order_fees`` (fills of orders that may have filled in part), with the
    fills' times for a :class:`ScheduleFee`."""
    if when is not None and isinstance(model, ScheduleFee):
        return model.order_fees(side, qty, price, filled_qty, filled_notional, when=when)
    return model.order_fees(side, qty, price, filled_qty, filled_notional)


def fill_fees(model: FeeModel, side: list[float], qty: list[float], price: list[float],
              filled_qty: list[float] | None, filled_notional: list[float] | None,
              when: Any) -> list[float]:
    """:func:`fees_at` (``filled_qty`` None) or :func:`order_fees_at` on lists of floats,
    for a handful of fills at one time ``when`` (int ns, as the array call takes it, or
    None) (the paper broker's small books).

    A :class:`ScheduleFee` whose scalar path applies (see ``_scalar_max``) is priced
    straight from the lists, skipping the arrays its ``fees``/``order_fees`` would take
    apart again; any other model gets the array call. The result is the same either way.
    """
    if isinstance(model, ScheduleFee) and model._lists_ok and len(qty) <= model._scalar_max \
            and (when is None or type(when) is np.int64 or (
                isinstance(when, (np.integer, int)) and not isinstance(when, bool))):
        rates = model._row_cache.rates(None if when is None else int(when))
        return scalar_fees(rates, side, qty, price, filled_qty, filled_notional)
    sg = np.array(side, np.float64)
    q = np.array(qty, np.float64)
    p = np.array(price, np.float64)
    if filled_qty is None or filled_notional is None:
        out = fees_at(model, sg, q, p, when)
    else:
        out = order_fees_at(model, sg, q, p, np.array(filled_qty, np.float64),
                            np.array(filled_notional, np.float64), when)
    result: list[float] = out.tolist()
    return result


class ScheduleFee(FeeModel):
    """A fee model read from a dated schedule (see :func:`simbroker.models.fee_schedule`).

    ``fee = commission + regulatory``: the commission by the broker's formula, and the
    regulatory parts the broker passes on: SEC fee (``per_million / 1e6 x notional``, sells),
    FINRA TAF (``min(per_share x qty, maximum)``, sells), FINRA CAT (``per_share x qty``,
    both sides). The commission's minimum and cap apply once per order: a later part
    of an order filled in parts (:meth:`order_fees`) pays the commission of the whole
    order so far less what its earlier parts paid; the regulatory fees are per fill.

    Parameters
    ----------
    schedule
        The loaded :class:`FeeSchedule`.
    as_of
        Trade date of fills priced without ``when=``; ``None``: the newest versions.
    """

    name: ClassVar[str] = "schedule"
    _scalar_max: ClassVar[int] = 16
    """Calls with at most this many fills are priced in Python floats
    (:mod:`~simbroker.models.schedules._scalar`, bit-identical); tests set it to 0 or to
    a huge number to force either path. 0 on a model whose commission has more parts."""

    def __init__(self, schedule: FeeSchedule, as_of: Any = None) -> None:
        if not isinstance(schedule, FeeSchedule):
            raise FeeScheduleError(f"{type(self).__name__} takes a FeeSchedule, got "
                                   f"{schedule!r}")
        self.schedule = schedule
        self.as_of = None if as_of is None else as_day(as_of)
        self.version = schedule.version_on(self.as_of)
        self._row_cache = RowCache(self)
        cls = type(self)
        self._scalar_ok = all(getattr(cls, m) is getattr(ScheduleFee, m) for m in (
            "_price", "_order_price", "_rows", "_regulatory", "_part", "_capped", "_rate",
            "_ib", "_extras", "_commission", "_later_commission"))
        # fill_fees may skip fees/order_fees only where they are these (the scalar path)
        self._lists_ok = self._scalar_ok and cls.fees is ScheduleFee.fees and \
            cls.order_fees is ScheduleFee.order_fees

    def _scalar_args(self, arrays: tuple[Any, ...], when: Any
                     ) -> tuple[list[list[float]], int | None] | None:
        """The fills as lists of floats and the time key when the scalar path applies:
        equal-length 1-d float64 arrays of at most ``_scalar_max`` fills, at one time
        (int64 ns) or undated; ``None`` otherwise (the array path)."""
        if not self._scalar_ok:
            return None
        n = -1
        for a in arrays:
            if type(a) is not np.ndarray or a.dtype != np.float64 or a.ndim != 1:
                return None
            if n < 0:
                n = a.shape[0]
            elif a.shape[0] != n:
                return None
        if n > self._scalar_max:
            return None
        if when is None:
            key = None
        elif isinstance(when, (np.integer, int)) and not isinstance(when, bool):
            key = int(when)
        else:
            return None
        return [a.tolist() for a in arrays], key

    # -- the FeeModel contract ------------------------------------------------------------
    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             when: np.ndarray | None = None) -> np.ndarray:
        """Fee per fill (>= 0, zero where ``qty`` is 0).

        Parameters
        ----------
        side, qty, price
            As :meth:`FeeModel.fees`.
        when
            Optional times of the fills (int64 ns since the epoch, UTC, or datetime64):
            each fill pays the versions effective on its UTC trade date. Without it,
            the versions of ``as_of``.
        """
        fast = self._scalar_args((side, qty, price), when)
        if fast is not None:
            (sd, q, p), key = fast
            return np.array(scalar_fees(self._row_cache.rates(key), sd, q, p, None, None),
                            np.float64)
        return self._price(side, qty, price, when, None)

    def _price(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
               when: np.ndarray | None, prior: np.ndarray | None) -> np.ndarray:
        sgn = np.asarray(side, np.float64)
        q = np.abs(np.asarray(qty, np.float64))
        p = np.asarray(price, np.float64)
        sgn, q, p = np.broadcast_arrays(sgn, q, p)
        days = None if when is None else np.broadcast_to(days_of(when), q.shape)
        notional = q * p
        total = self._commission(sgn, q, notional, days, prior) + self._regulatory(
            sgn, q, notional, days)
        return np.where(q > 0, total, 0.0)

    def _rows(self, table: Any, days: np.ndarray | None) -> np.ndarray | int:
        if days is not None:
            rows: np.ndarray = table.index(days)
            return rows
        if self.as_of is None:
            return int(table.latest())
        return int(table.index(np.array([self.as_of]))[0])

    def _part(self, part: str, table: Any, sell: np.ndarray, q: np.ndarray,
              notional: np.ndarray, days: np.ndarray | None) -> np.ndarray:
        """One regulatory part of each fill, unrounded."""
        i = self._rows(table, days)
        if part == "sec_fee":
            fee = np.where(sell, table.columns["per_million"][i] / 1e6 * notional, 0.0)
        elif part == "finra_taf":
            fee = np.where(sell, np.minimum(table.columns["per_share"][i] * q,
                                            table.columns["maximum"][i]), 0.0)
        else:  # finra_cat: executed shares, both sides
            fee = table.columns["per_share"][i] * q
        out: np.ndarray = np.where(np.asarray(i) >= 0, fee, 0.0)  # before the fee existed
        return out

    def _regulatory(self, sgn: np.ndarray, q: np.ndarray, notional: np.ndarray,
                    days: np.ndarray | None) -> np.ndarray:
        total = np.zeros(q.shape, np.float64)
        sell = sgn < 0
        for part, table in self.schedule.regulatory.items():
            fee = self._part(part, table, sell, q, notional, days)
            if self.schedule.round_regulatory_up_to_cent:
                fee = _up_to_cent(fee)
            total = total + fee
        return total

    def _capped(self, commission: np.ndarray, notional: np.ndarray, minimum: Any,
                max_fraction: Any) -> np.ndarray:
        """``min(max(commission, minimum), max_fraction x notional)``: as at IBKR the cap
        wins over the minimum, so the result never decreases with qty or price."""
        fee = np.maximum(commission, minimum)
        cap = np.where(np.isnan(max_fraction), np.inf, max_fraction * notional)
        out: np.ndarray = np.minimum(fee, cap)
        return out

    def _rate(self, rows: Any, prior: np.ndarray | None, shape: tuple[int, ...]
              ) -> np.ndarray:
        """Commission per share of each fill."""
        out: np.ndarray = np.broadcast_to(
            self.schedule.commission.columns["per_share"][rows], shape)
        return out

    def _ib(self, q: np.ndarray, notional: np.ndarray, rows: Any, rate: np.ndarray
            ) -> np.ndarray:
        """The broker's commission on ``q`` shares worth ``notional`` (0 for none)."""
        c = self.schedule.commission
        fee = self._capped(rate * q, notional, c.columns["minimum"][rows],
                           c.columns["max_fraction"][rows])
        out: np.ndarray = np.where(q > 0, fee, 0.0)
        return out

    def _extras(self, q: np.ndarray, ib: np.ndarray, rows: Any) -> np.ndarray:
        """The commission plus what the schedule adds to it per fill (none here)."""
        return ib

    def _commission(self, sgn: np.ndarray, q: np.ndarray, notional: np.ndarray,
                    days: np.ndarray | None, prior: np.ndarray | None) -> np.ndarray:
        rows = self._rows(self.schedule.commission, days)
        return self._extras(q, self._ib(q, notional, rows, self._rate(rows, prior, q.shape)),
                            rows)

    def order_fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                   filled_qty: np.ndarray, filled_notional: np.ndarray,
                   when: np.ndarray | None = None) -> np.ndarray:
        """Fees of fills of orders that may have filled in part (see the class docstring).

        Where ``filled_qty == 0`` this equals :meth:`fees` exactly.
        """
        fast = self._scalar_args((side, qty, price, filled_qty, filled_notional), when)
        if fast is not None:
            (sd, q, p, fq, fn), key = fast
            return np.array(scalar_fees(self._row_cache.rates(key), sd, q, p, fq, fn),
                            np.float64)
        return self._order_price(side, qty, price, filled_qty, filled_notional, when, None)

    def _order_price(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                     filled_qty: np.ndarray, filled_notional: np.ndarray,
                     when: np.ndarray | None, prior: np.ndarray | None) -> np.ndarray:
        first = self._price(side, qty, price, when, prior)
        done = np.broadcast_to(np.abs(np.asarray(filled_qty, np.float64)), first.shape)
        if not (done > 0).any():
            return first
        sgn = np.broadcast_to(np.asarray(side, np.float64), first.shape)
        q = np.broadcast_to(np.abs(np.asarray(qty, np.float64)), first.shape)
        p = np.broadcast_to(np.asarray(price, np.float64), first.shape)
        paid_n = np.broadcast_to(np.asarray(filled_notional, np.float64), first.shape)
        days = None if when is None else np.broadcast_to(days_of(when), q.shape)
        rows = self._rows(self.schedule.commission, days)
        rate = self._rate(rows, prior, q.shape)
        later = self._later_commission(q, q * p, done, paid_n, rows, rate) \
            + self._regulatory(sgn, q, q * p, days)
        out: np.ndarray = np.where(done > 0, np.where(q > 0, later, 0.0), first)
        return out

    def _later_commission(self, q: np.ndarray, notional: np.ndarray, done: np.ndarray,
                          paid: np.ndarray, rows: Any, rate: np.ndarray) -> np.ndarray:
        """The commission of a later part of an order (``done`` shares worth ``paid``
        filled before it): the whole order's so far less what the earlier parts paid,
        with what the schedule adds per fill."""
        ib = np.maximum(self._ib(done + q, paid + notional, rows, rate)
                        - self._ib(done, paid, rows, rate), 0.0)
        return self._extras(q, ib, rows)

    def learn(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
              when: np.ndarray) -> None:
        """:meth:`FeeModel.learn`: the fills priced as the engines price them, dated,
        and the fees dropped (what remains is what the ledgers counted)."""
        if np.size(qty) and keeps_ledgers(self):
            self.fees(np.asarray(side, np.float64), np.asarray(qty, np.float64),
                      np.asarray(price, np.float64), when=np.asarray(when))

    # -- description -----------------------------------------------------------------------
    def __repr__(self) -> str:
        as_of = "" if self.as_of is None else f", as_of={str(self.as_of)!r}"
        return (f"{type(self).__name__}(name={self.schedule.name!r}, "
                f"version={self.version!r}{as_of})")

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and isinstance(other, ScheduleFee)
                and other.schedule.name == self.schedule.name and other.as_of == self.as_of)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.schedule.name, str(self.as_of)))

    def to_dict(self) -> dict[str, Any]:
        """``{"model": "schedule", "schedule": name, "as_of": date | None}``."""
        return {"model": "schedule", "schedule": self.schedule.name,
                "as_of": None if self.as_of is None else str(self.as_of)}

    def sources(self) -> list[dict[str, Any]]:
        """Every rate version this model can use, with its effective date and source."""
        return self.schedule.sources()


class IBKRFixedFee(ScheduleFee):
    """IBKR Pro Fixed: ``$0.005``/share, ``$1.00`` minimum, capped at 1% of trade value,
    plus the SEC fee and FINRA TAF on sells and the FINRA CAT fee (``ibkr_fixed.yaml``)."""

    name: ClassVar[str] = "ibkr_fixed"


class AlpacaFee(ScheduleFee):
    """Alpaca US equities: no commission; the SEC fee and FINRA TAF on sells and, from
    2026-07-01, the FINRA CAT fee on every execution (``alpaca.yaml``).

    Alpaca calculates these fees "daily, per account, and rounded up to the nearest
    cent". Dated calls (``when=``, as the paper broker and the vectorized runners make,
    in execution order) keep that daily ledger (:mod:`~simbroker.models.schedules._daily`):
    each part's raw total per New York trading date, a fill paying the cents it adds
    to the rounded-up total. The first fill of a day pays its own fees rounded up; a day
    of many small sells pays its total rounded up once, not a cent per fill. A call
    dated before the newest day counted starts a new ledger (a new run reusing the
    model); :meth:`reset` clears it. Undated calls are pure: each fill priced as the
    only one of its day (what an estimate before the order, or a reconciliation of
    one fill, asks).
    """

    name: ClassVar[str] = "alpaca"

    def __init__(self, schedule: FeeSchedule, as_of: Any = None) -> None:
        super().__init__(schedule, as_of)
        self._daily = DailyRoundUp() if schedule.daily_round_up else None

    def reset(self) -> None:
        """Forget the days' totals learned from earlier dated calls."""
        if self._daily is not None:
            self._daily.reset()

    def checkpoint(self) -> Any:
        """:meth:`FeeModel.checkpoint`: the days' totals."""
        return None if self._daily is None else self._daily.state()

    def rollback(self, state: Any) -> None:
        """:meth:`FeeModel.rollback`."""
        if self._daily is not None and state is not None:
            self._daily.set_state(state)

    def day_total(self, part: str, day: Any) -> float:
        """The raw (unrounded) total of regulatory ``part`` (``"sec_fee"``,
        ``"finra_taf"``, ``"finra_cat"``) this model has counted for New York date
        ``day``; what Alpaca charges for it is this rounded up to the cent. Days before
        the newest one counted are let go (0.0)."""
        if self._daily is None:
            return 0.0
        return self._daily.total(part, int(as_day(day).astype(np.int64)))

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             when: np.ndarray | None = None) -> np.ndarray:
        """Fee per fill; dated calls advance the daily ledger (see the class docstring)."""
        if when is None or self._daily is None:
            return super().fees(side, qty, price, when=when)
        return self._dated(side, qty, price, None, None, when)

    def order_fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                   filled_qty: np.ndarray, filled_notional: np.ndarray,
                   when: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`ScheduleFee.order_fees`; dated calls advance the daily ledger."""
        if when is None or self._daily is None:
            return super().order_fees(side, qty, price, filled_qty, filled_notional,
                                      when=when)
        return self._dated(side, qty, price, filled_qty, filled_notional, when)

    def _dated(self, side: Any, qty: Any, price: Any, filled_qty: Any,
               filled_notional: Any, when: Any) -> np.ndarray:
        assert self._daily is not None
        sgn, q, p = np.broadcast_arrays(np.asarray(side, np.float64),
                                        np.abs(np.asarray(qty, np.float64)),
                                        np.asarray(price, np.float64))
        stamps = np.broadcast_to(_as_ns(when), q.shape)
        days = days_of(stamps)
        notional = q * p
        commission = self._commission(sgn, q, notional, days, None)
        if filled_qty is not None and filled_notional is not None:
            done = np.broadcast_to(np.abs(np.asarray(filled_qty, np.float64)), q.shape)
            if (done > 0).any():
                paid = np.broadcast_to(np.asarray(filled_notional, np.float64), q.shape)
                rows = self._rows(self.schedule.commission, days)
                later = self._later_commission(q, notional, done, paid, rows,
                                               self._rate(rows, None, q.shape))
                commission = np.where(done > 0, later, commission)
        traded = q > 0
        local = new_york_days(stamps)
        self._daily.start(local[traded])
        total = commission
        sell = sgn < 0
        for part, table in self.schedule.regulatory.items():
            raw = np.where(traded, self._part(part, table, sell, q, notional, days), 0.0)
            total = total + self._daily.charge(part, raw, local)
        out: np.ndarray = np.where(traded, total, 0.0)
        return out


def _as_ns(when: Any) -> np.ndarray:
    """Fill times as int64 ns since the epoch (from int64 ns or datetime64)."""
    arr = np.asarray(when)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ns]").astype(np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    raise FeeScheduleError(f"when must be times (int64 ns since the epoch or datetime64), "
                           f"got dtype {arr.dtype}")


class IBKRTieredFee(ScheduleFee):
    """IBKR Pro Tiered: a per-share commission falling with the month's share volume.

    ``commission = min(max(tier_rate x qty, 0.35), 1% x notional)`` where ``tier_rate`` is
    the rate of the tier the month's volume had reached before the fill; on top come the
    exchange fee and NSCC/DTC clearing per share, the NYSE and FINRA pass-throughs (a
    fraction of the commission) and the regulatory fees (``ibkr_tiered.yaml``).

    How the model learns the month's volume
    ---------------------------------------
    - ``month_volume=`` (an array): the shares already executed this calendar month
      before each fill; the call is then pure.
    - Dated calls (``when=``, as the paper broker and the vectorized runners make, in
      fill order) keep a running ledger of shares per calendar month (UTC) across calls;
      inside one call the fills count in array order. A call dated before the ledger's
      newest day starts a new ledger (a new run reusing the model); :meth:`reset`
      clears it explicitly. Share one instance between runs only one after the other.
    - Undated calls without ``month_volume`` are pure: every fill at the first tier
      (volume 0), as a trader's first order of a month pays.
    """

    name: ClassVar[str] = "ibkr_tiered"
    _scalar_max: ClassVar[int] = 0  # tier rates, pass-throughs: the array path only

    def __init__(self, schedule: FeeSchedule, as_of: Any = None) -> None:
        super().__init__(schedule, as_of)
        self._ledger: dict[int, float] = {}
        self._last_day: np.datetime64 | None = None
        tiers = schedule.commission.columns["tiers"]
        self._tier_from: list[np.ndarray] = []
        self._tier_rate: list[np.ndarray] = []
        for k, t in enumerate(tiers):
            if not isinstance(t, list) or not t or not all(
                    isinstance(x, dict) and {"from", "per_share"} <= set(x) for x in t):
                raise FeeScheduleError(f"ibkr_tiered: version {k} needs 'tiers', a list of "
                                       f"{{from, per_share}}")
            start = np.array([float(x["from"]) for x in t])
            if start[0] != 0 or np.any(np.diff(start) <= 0):
                raise FeeScheduleError(f"ibkr_tiered: version {k}: tiers must start at 0 and "
                                       f"increase")
            self._tier_from.append(start)
            self._tier_rate.append(np.array([float(x["per_share"]) for x in t]))

    def reset(self) -> None:
        """Forget the month volumes learned from earlier dated calls."""
        self._ledger.clear()
        self._last_day = None

    def checkpoint(self) -> Any:
        """:meth:`FeeModel.checkpoint`: the month volumes."""
        return dict(self._ledger), self._last_day

    def rollback(self, state: Any) -> None:
        """:meth:`FeeModel.rollback`."""
        ledger, last = state
        self._ledger = dict(ledger)
        self._last_day = last

    def month_volume(self, month: str) -> float:
        """Shares this model has counted for ``month`` (``"YYYY-MM"``) so far."""
        return float(self._ledger.get(int(np.datetime64(month, "M").astype(np.int64)), 0.0))

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             when: np.ndarray | None = None, month_volume: np.ndarray | None = None
             ) -> np.ndarray:
        """Fee per fill; see the class docstring for ``when`` and ``month_volume``."""
        q = np.abs(np.asarray(qty, np.float64))
        prior: np.ndarray | None = None
        if month_volume is not None:
            prior = np.broadcast_to(np.asarray(month_volume, np.float64), q.shape)
            if prior.size and not (np.all(np.isfinite(prior)) and prior.min() >= 0):
                raise FeeScheduleError("month_volume must be finite and >= 0")
        elif when is not None:
            prior = self._running(q, when)
        return self._price(side, qty, price, when, prior)

    def order_fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                   filled_qty: np.ndarray, filled_notional: np.ndarray,
                   when: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`ScheduleFee.order_fees`; each part pays the tier the month had
        reached before it (dated calls advance the month's ledger as :meth:`fees`)."""
        q = np.abs(np.asarray(qty, np.float64))
        prior = None if when is None else self._running(q, when)
        return self._order_price(side, qty, price, filled_qty, filled_notional, when, prior)

    def _running(self, q: np.ndarray, when: np.ndarray) -> np.ndarray:
        """Month-to-date shares before each fill, advancing the ledger."""
        flat_q = q.ravel()
        days = np.broadcast_to(days_of(when), q.shape).ravel()
        months = days.astype("datetime64[M]").astype(np.int64)
        if flat_q.size == 0:
            return np.zeros(q.shape)
        if self._last_day is not None and days.min() < self._last_day:
            self.reset()  # dated before what was counted: a new run reusing the model
        self._last_day = days.max()
        uniq, inv = np.unique(months, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        qs = flat_q[order]
        csum = np.cumsum(qs)
        starts = np.searchsorted(inv[order], np.arange(len(uniq)))
        base = np.repeat(csum[starts] - qs[starts], np.diff(np.append(starts, len(qs))))
        before_sorted = csum - qs - base
        before = np.empty_like(before_sorted)
        before[order] = before_sorted
        carried = np.array([self._ledger.get(int(m), 0.0) for m in uniq])
        prior = before + carried[inv]
        totals = np.bincount(inv, weights=flat_q, minlength=len(uniq))
        for m, tot in zip(uniq.tolist(), totals.tolist(), strict=True):
            self._ledger[int(m)] = self._ledger.get(int(m), 0.0) + float(tot)
        out: np.ndarray = prior.reshape(q.shape)
        return out

    def _rate(self, rows: Any, prior: np.ndarray | None, shape: tuple[int, ...]
              ) -> np.ndarray:
        """The per-share rate of the tier each fill's month volume had reached."""
        if prior is None:
            prior = np.zeros(shape)
        at = np.broadcast_to(np.asarray(rows), shape)
        rate = np.empty(shape, np.float64)
        for k in np.unique(at).tolist():
            sel = at == k
            tier = np.searchsorted(self._tier_from[k], prior[sel], side="right") - 1
            rate[sel] = self._tier_rate[k][tier]
        return rate

    def _extras(self, q: np.ndarray, ib: np.ndarray, rows: Any) -> np.ndarray:
        """Exchange and clearing per share; NYSE and FINRA pass-throughs on ``ib``."""
        c = self.schedule.commission
        per_share = c.columns["clearing_per_share"][rows] + c.columns["exchange_per_share"][rows]
        pass_through = (c.columns["nyse_pass_through"][rows]
                        + c.columns["finra_pass_through"][rows])
        out: np.ndarray = ib * (1.0 + pass_through) + per_share * q
        return out


_CLASSES: dict[str, type[ScheduleFee]] = {
    "ibkr_fixed": IBKRFixedFee, "ibkr_tiered": IBKRTieredFee, "alpaca": AlpacaFee}


def model_class(name: str) -> type[ScheduleFee]:
    """The model class of schedule ``name``."""
    return _CLASSES[name]
