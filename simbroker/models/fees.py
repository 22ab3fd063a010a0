"""Fee models: what each fill costs, in account currency, always >= 0.

A model maps arrays (side, qty, fill price) to an array of fees, one per fill; the broker
owns the loop. Models add up: ``BpsOfNotional(1) + PerOrder(0.35)`` is a :class:`FeeSum`.

Orders that fill in parts (``PaperBroker(max_volume_share=...)``) are charged through
:meth:`FeeModel.order_fees`: each fill is told what its order had already filled
(``filled_qty``, ``filled_notional``), so a per-order term (a minimum, a flat amount, a
cap) is charged once per order, not once per fill. A model whose fee is per fill keeps the
default, which is :meth:`FeeModel.fees`; the first fill of an order (``filled_qty == 0``)
always costs exactly what :meth:`FeeModel.fees` says, so an order filled at once pays the
same fee, bit for bit, whichever method charged it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from simbroker.models._params import check_number, model_from_spec

__all__ = [
    "BpsOfNotional",
    "FeeModel",
    "FeeSum",
    "NoFee",
    "PerOrder",
    "PerShare",
    "fee_model",
    "fee_model_from_dict",
    "keeps_ledgers",
]




class FeeModel(ABC):
    """Base of every fee model: one array method, :meth:`fees`."""

    name: ClassVar[str] = ""

    @abstractmethod
    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Fee per fill (>= 0; zero where ``qty`` is 0).

        Parameters
        ----------
        side
            +1 for a buy, -1 for a sell.
        qty
            Filled quantities.
        price
            Fill prices (slippage included).
        """

    def order_fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                   filled_qty: np.ndarray, filled_notional: np.ndarray) -> np.ndarray:
        """Fee per fill of orders that may already have filled in part (>= 0).

        The fee of the fill that takes an order from ``filled_qty`` (its notional so far
        ``filled_notional``) to ``filled_qty + qty``. A model with per-order terms
        overrides it so that the fees of an order's fills add up to the fee of the whole
        order (e.g. :class:`PerShare`: ``F(Q + q, N + q * p) - F(Q, N)`` with ``F`` its
        per-order formula); the default charges every fill as :meth:`fees` does.
        Where ``filled_qty == 0`` the result equals :meth:`fees` exactly.

        Parameters
        ----------
        side, qty, price
            As for :meth:`fees`: this fill's side (+1/-1), quantity and price.
        filled_qty
            Quantity of the order filled before this fill (>= 0, unsigned).
        filled_notional
            ``sum(qty * price)`` of those earlier fills.
        """
        return self.fees(side, qty, price)

    def reset(self) -> None:
        """Forget what earlier dated calls taught the model: the running ledgers of
        :class:`~simbroker.models.IBKRTieredFee` (the month's volume) and
        :class:`~simbroker.models.AlpacaFee` (the day's fee totals). The engines call it
        as a run starts, so a model passed to several runs prices each alike. Nothing
        to forget for the other models."""
        return

    def learn(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
              when: np.ndarray) -> None:
        """Count fills this model did not price (those of a trade log a run resumes
        from) in its running ledgers, as if it had priced them, in execution order.

        ``when``: the fills' times (int64 ns since the epoch, UTC, or datetime64).
        Nothing to count for a model without ledgers.
        """
        return

    def checkpoint(self) -> Any:
        """The running ledgers' state, for :meth:`rollback` (``None``: no ledgers).

        The paper broker takes one before a bar's fills are priced: if recording them
        fails part way, it rolls back and counts only the fills it booked, so matching
        the bar again does not count the others twice."""
        return None

    def rollback(self, state: Any) -> None:
        """Put the running ledgers back as :meth:`checkpoint` returned them."""
        return

    @property
    def min_fee(self) -> float:
        """Declared minimum fee of a fill with qty > 0 (0 when there is none).

        For an order that fills in parts, the minimum is charged once per order (see
        :meth:`order_fees`): a later part may cost less.
        """
        return 0.0

    def fee(self, side: str, qty: float, price: float) -> float:
        """The fee of one fill."""
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        sign = np.array([1.0 if side == "buy" else -1.0])
        return float(self.fees(sign, np.array([float(qty)]), np.array([float(price)]))[0])

    def __add__(self, other: FeeModel) -> FeeSum:
        if not isinstance(other, FeeModel):
            return NotImplemented
        left = self.models if isinstance(self, FeeSum) else (self,)
        right = other.models if isinstance(other, FeeSum) else (other,)
        return FeeSum(models=left + right)

    def to_dict(self) -> dict[str, Any]:
        """``{"model": name, **parameters}``; :func:`fee_model_from_dict` inverts it."""
        return {"model": self.name, **asdict(self)}  # type: ignore[call-overload]


def keeps_ledgers(model: FeeModel) -> bool:
    """Whether ``model`` keeps running ledgers (it has its own :meth:`FeeModel.checkpoint`):
    what it charges a dated fill depends on the fills it priced before."""
    return type(model).checkpoint is not FeeModel.checkpoint


@dataclass(frozen=True)
class NoFee(FeeModel):
    """Free trading."""

    name: ClassVar[str] = "none"

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Zero for every fill."""
        return np.zeros(np.shape(qty), np.float64)


@dataclass(frozen=True)
class BpsOfNotional(FeeModel):
    """A rate on the fill's notional: ``fee = bps / 1e4 * qty * price``. Default 1 bp."""

    name: ClassVar[str] = "bps_of_notional"
    bps: float = 1.0

    def __post_init__(self) -> None:
        check_number("bps", self.bps, 0.0, 10_000.0)

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """See the class docstring."""
        out: np.ndarray = (self.bps / 1e4) * np.abs(np.asarray(qty, np.float64)) * np.asarray(
            price, np.float64)
        return out


@dataclass(frozen=True)
class PerShare(FeeModel):
    """A rate per share with a minimum and an optional cap (IBKR "Fixed" style).

    ``fee = min(max(rate * qty, minimum), maximum_fraction * qty * price)``, zero for a zero
    quantity. Defaults: $0.005 a share, $1.00 minimum, capped at 1 % of the notional. As at
    IBKR the cap wins over the minimum, so a tiny order can cost less than ``minimum``;
    the result is still non-decreasing in qty at a fixed price. ``maximum_fraction=None``
    removes the cap.
    """

    name: ClassVar[str] = "per_share"
    rate: float = 0.005
    minimum: float = 1.0
    maximum_fraction: float | None = 0.01

    def __post_init__(self) -> None:
        check_number("rate", self.rate, 0.0)
        check_number("minimum", self.minimum, 0.0)
        if self.maximum_fraction is not None:
            check_number("maximum_fraction", self.maximum_fraction, 0.0, 1.0)

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """See the class docstring."""
        q = np.abs(np.asarray(qty, np.float64))
        fee = np.maximum(self.rate * q, self.minimum)
        if self.maximum_fraction is not None:
            fee = np.minimum(fee, self.maximum_fraction * q * np.asarray(price, np.float64))
        return np.where(q > 0, fee, 0.0)

    def order_fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                   filled_qty: np.ndarray, filled_notional: np.ndarray) -> np.ndarray:
        """The minimum and the cap apply to the whole order (as at IBKR): a later part
        pays ``F(Q + q, N + q * p) - F(Q, N)``, ``F(Q, N) = min(max(rate * Q, minimum),
        maximum_fraction * N)``, never below 0."""
        first = self.fees(side, qty, price)
        done = np.asarray(filled_qty, np.float64)
        if not (done > 0).any():
            return first
        q = np.abs(np.asarray(qty, np.float64))
        before = self._whole(done, np.asarray(filled_notional, np.float64))
        after = self._whole(done + q, np.asarray(filled_notional, np.float64)
                            + q * np.asarray(price, np.float64))
        later = np.where(q > 0, np.maximum(after - before, 0.0), 0.0)
        out: np.ndarray = np.where(done > 0, later, first)
        return out

    def _whole(self, q: np.ndarray, notional: np.ndarray) -> np.ndarray:
        """The fee of a whole order of ``q`` shares for ``notional`` (0 for none)."""
        fee = np.maximum(self.rate * q, self.minimum)
        if self.maximum_fraction is not None:
            fee = np.minimum(fee, self.maximum_fraction * notional)
        out: np.ndarray = np.where(q > 0, fee, 0.0)
        return out

    @property
    def min_fee(self) -> float:
        """``minimum`` when uncapped; 0 with a cap (the cap may undercut the minimum)."""
        return float(self.minimum) if self.maximum_fraction is None else 0.0


@dataclass(frozen=True)
class PerOrder(FeeModel):
    """A flat amount per order: ``fee = amount`` (zero for a zero quantity).

    An order filled in parts pays it on its first fill only (:meth:`order_fees`).
    """

    name: ClassVar[str] = "per_order"
    amount: float = 1.0

    def __post_init__(self) -> None:
        check_number("amount", self.amount, 0.0)

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """See the class docstring."""
        return np.where(np.asarray(qty, np.float64) != 0, float(self.amount), 0.0)

    def order_fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                   filled_qty: np.ndarray, filled_notional: np.ndarray) -> np.ndarray:
        """``amount`` on an order's first fill, 0 on its later parts."""
        out: np.ndarray = np.where(np.asarray(filled_qty, np.float64) > 0, 0.0,
                                   self.fees(side, qty, price))
        return out

    @property
    def min_fee(self) -> float:
        """``amount``."""
        return float(self.amount)


@dataclass(frozen=True)
class FeeSum(FeeModel):
    """The sum of several fee models (build it with ``+``)."""

    name: ClassVar[str] = "sum"
    models: tuple[FeeModel, ...] = ()

    def __post_init__(self) -> None:
        if not all(isinstance(m, FeeModel) for m in self.models):
            raise ValueError(f"FeeSum takes FeeModel instances, got {self.models!r}")

    def fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Element-wise sum of the parts."""
        total = np.zeros(np.shape(qty), np.float64)
        for m in self.models:
            total = total + m.fees(side, qty, price)
        return total

    def order_fees(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                   filled_qty: np.ndarray, filled_notional: np.ndarray) -> np.ndarray:
        """Element-wise sum of the parts' :meth:`~FeeModel.order_fees`."""
        total = np.zeros(np.shape(qty), np.float64)
        for m in self.models:
            total = total + m.order_fees(side, qty, price, filled_qty, filled_notional)
        return total

    @property
    def min_fee(self) -> float:
        """Sum of the parts' minimums."""
        return float(sum(m.min_fee for m in self.models))

    def to_dict(self) -> dict[str, Any]:
        """``{"model": "sum", "models": [part dicts]}``."""
        return {"model": self.name, "models": [m.to_dict() for m in self.models]}


_MODELS: dict[str, type[FeeModel]] = {
    cls.name: cls for cls in (NoFee, BpsOfNotional, PerShare, PerOrder, FeeSum)
}
_MODELS.update({cls.__name__.lower(): cls for cls in list(_MODELS.values())})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def fee_model(value: float | str | FeeModel | None) -> FeeModel:
    """Coerce a number (bps of notional), a schedule name, a model or ``None`` (no fees).

    A string names a published schedule (``"ibkr_fixed"``, ``"ibkr_tiered"``,
    ``"alpaca"``; :func:`simbroker.models.fee_schedule`), with ``"name@YYYY-MM-DD"`` for
    its ``as_of`` date; ``"none"`` is :class:`NoFee`.
    """
    if value is None:
        return NoFee()
    if isinstance(value, FeeModel):
        return value
    if isinstance(value, str) and not _is_number(value):  # "1" is a quoting mistake
        if value.strip().lower() in ("none", "nofee"):
            return NoFee()
        from simbroker.models.schedules import fee_schedule

        name, _, as_of = value.partition("@")
        return fee_schedule(name, as_of.strip() or None)
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_)):
        return BpsOfNotional(bps=float(value))
    raise TypeError(f"fees must be a number of bps, a schedule name or a FeeModel, "
                    f"got {value!r}")


def fee_model_from_dict(spec: dict[str, Any]) -> FeeModel:
    """Build a model from ``{"model": name, **parameters}`` (e.g. from YAML).

    Names: ``none``, ``bps_of_notional``, ``per_share``, ``per_order``, ``sum`` (with
    ``models: [...]``); class names work too. A published schedule:
    ``{"model": "schedule", "schedule": "ibkr_fixed", "as_of": "2024-06-01"}`` or just
    ``{"model": "ibkr_fixed"}``.
    """
    if isinstance(spec, dict) and isinstance(spec.get("model"), str):
        from simbroker.models.schedules import SCHEDULE_NAMES, fee_schedule

        kind = spec["model"].strip().lower()
        if kind == "schedule" or kind in SCHEDULE_NAMES:
            extra = sorted(set(spec) - {"model", "schedule", "as_of"})
            if extra:
                raise ValueError(f"unknown parameter(s) {', '.join(map(repr, extra))} for "
                                 f"fee model {spec['model']!r}; it takes ['as_of', 'schedule']")
            name = spec.get("schedule") if kind == "schedule" else kind
            if not isinstance(name, str):
                raise ValueError(f"fee model 'schedule' needs 'schedule': a name, got {name!r}")
            return fee_schedule(name, spec.get("as_of"))
    cls, params = model_from_spec("fee", _MODELS, spec)
    if cls is FeeSum:
        models = params.get("models") or []  # an empty YAML "models:" is None
        if not isinstance(models, (list, tuple)) or not all(isinstance(m, dict) for m in models):
            raise ValueError(
                f"fee model 'sum' needs 'models': a list of model mappings, got {models!r}")
        return FeeSum(models=tuple(fee_model_from_dict(m) for m in models))
    return cls(**params)
