"""Slippage models: how far a fill lands from its reference price, against the trader.

A model returns a non-negative *rate* per order (0.0005 = 5 bps); the broker applies it as
``fill = ref * (1 + rate)`` for a buy and ``ref * (1 - rate)`` for a sell, so slippage is
never in the trader's favour. Models see arrays only (side, qty, reference price and the
bar the order fills on) and return arrays: the broker owns the loop over orders.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from simbroker.models._params import check_number, model_from_spec

__all__ = [
    "BarContext",
    "BarRange",
    "FixedBps",
    "NoSlippage",
    "SlippageModel",
    "VolumeShare",
    "slippage_model",
    "slippage_model_from_dict",
]

_F = np.ndarray


@dataclass(frozen=True)
class BarContext:
    """The bar an order fills on, one entry per order (arrays aligned with the orders)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def of_price(cls, price: np.ndarray) -> BarContext:
        """A degenerate bar at ``price`` with unlimited volume (for scalar use)."""
        p = np.asarray(price, np.float64)
        return cls(open=p, high=p, low=p, close=p, volume=np.full(p.shape, np.inf))




class SlippageModel(ABC):
    """Base of every slippage model: one array method, :meth:`rate`."""

    name: ClassVar[str] = ""

    @abstractmethod
    def rate(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             bar: BarContext) -> np.ndarray:
        """Slippage as a fraction of ``price`` (>= 0) per order.

        Parameters
        ----------
        side
            +1 for a buy, -1 for a sell.
        qty
            Quantities (> 0; a zero quantity must give zero slippage).
        price
            Reference prices before slippage.
        bar
            The bar each order fills on.
        """

    @property
    def max_bps(self) -> float:
        """Declared upper bound of the rate, in basis points (``inf`` if unbounded)."""
        return math.inf

    def fill_prices(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
                    bar: BarContext) -> np.ndarray:
        """Fill prices: ``price * (1 + side * rate)``."""
        side = np.asarray(side, np.float64)
        price = np.asarray(price, np.float64)
        out: np.ndarray = price * (1.0 + side * self.rate(side, np.asarray(qty, np.float64),
                                                          price, bar))
        return out

    def fill_price(self, side: str, qty: float, price: float, *, open: float | None = None,
                   high: float | None = None, low: float | None = None,
                   close: float | None = None, volume: float | None = None) -> float:
        """The fill price of one order (missing bar fields default to ``price``, volume to inf)."""
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")

        def arr(x: float | None, default: float) -> np.ndarray:
            return np.array([default if x is None else x], np.float64)

        bar = BarContext(open=arr(open, price), high=arr(high, price), low=arr(low, price),
                         close=arr(close, price), volume=arr(volume, math.inf))
        sign = np.array([1.0 if side == "buy" else -1.0])
        return float(self.fill_prices(sign, np.array([float(qty)]), np.array([float(price)]),
                                      bar)[0])

    def to_dict(self) -> dict[str, Any]:
        """``{"model": name, **parameters}``; :func:`slippage_model_from_dict` inverts it."""
        return {"model": self.name, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class NoSlippage(SlippageModel):
    """Fills at the reference price."""

    name: ClassVar[str] = "none"

    def rate(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             bar: BarContext) -> np.ndarray:
        """Zero for every order."""
        return np.zeros(np.shape(price), np.float64)

    @property
    def max_bps(self) -> float:
        """0."""
        return 0.0


@dataclass(frozen=True)
class FixedBps(SlippageModel):
    """A fixed number of basis points against the trader.

    ``rate = bps / 10_000``; default 5 bps. Units: basis points of the reference price.
    """

    name: ClassVar[str] = "fixed_bps"
    bps: float = 5.0

    def __post_init__(self) -> None:
        check_number("bps", self.bps, 0.0, 10_000.0)

    def rate(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             bar: BarContext) -> np.ndarray:
        """``bps / 1e4`` per order (0 where qty is 0)."""
        return np.where(np.asarray(qty) > 0, self.bps / 1e4, 0.0)

    @property
    def max_bps(self) -> float:
        """``bps``."""
        return float(self.bps)


@dataclass(frozen=True)
class VolumeShare(SlippageModel):
    """Market impact growing with the order's share of the bar's volume.

    ``rate = base_bps / 1e4 + impact * min(qty / volume, volume_limit) ** exponent``,
    capped at ``cap_bps / 1e4``. A bar with zero or unknown volume gives the cap.
    Defaults: ``base_bps=5``, ``impact=0.1``, ``exponent=2`` (zipline's quadratic
    volume-share model), ``volume_limit=0.25`` and ``cap_bps=100``. So 1 % of the bar's
    volume costs 5 + 0.1 bps, 10 % costs 5 + 10 bps, 25 % or more costs 5 + 62.5 bps.
    """

    name: ClassVar[str] = "volume_share"
    base_bps: float = 5.0
    impact: float = 0.1
    exponent: float = 2.0
    volume_limit: float = 0.25
    cap_bps: float = 100.0

    def __post_init__(self) -> None:
        check_number("base_bps", self.base_bps, 0.0, 10_000.0)
        check_number("impact", self.impact, 0.0, 100.0)
        check_number("exponent", self.exponent, 0.5, 10.0)
        check_number("volume_limit", self.volume_limit, 0.0, 1.0)
        check_number("cap_bps", self.cap_bps, self.base_bps, 10_000.0)

    def rate(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             bar: BarContext) -> np.ndarray:
        """See the class docstring."""
        qty = np.asarray(qty, np.float64)
        vol = np.asarray(bar.volume, np.float64)
        # A subnormal volume overflows qty / vol to inf, which is the right answer.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            share = np.where(vol > 0, qty / vol, np.inf)
        share = np.minimum(share, self.volume_limit)
        r = self.base_bps / 1e4 + self.impact * share ** self.exponent
        r = np.where(vol > 0, r, np.inf)
        r = np.minimum(r, self.cap_bps / 1e4)
        return np.where(qty > 0, r, 0.0)

    @property
    def max_bps(self) -> float:
        """``cap_bps``."""
        return float(self.cap_bps)


@dataclass(frozen=True)
class BarRange(SlippageModel):
    """A spread/volatility proxy: a fraction of the fill bar's high-low range.

    ``rate = fraction * (high - low) / close``, clipped to ``[min_bps, cap_bps] / 1e4``.
    Defaults: ``fraction=0.1`` (a tenth of the bar's range), ``min_bps=1``,
    ``cap_bps=50``. Wide, volatile bars cost more than quiet ones.
    """

    name: ClassVar[str] = "bar_range"
    fraction: float = 0.1
    min_bps: float = 1.0
    cap_bps: float = 50.0

    def __post_init__(self) -> None:
        check_number("fraction", self.fraction, 0.0, 1.0)
        check_number("min_bps", self.min_bps, 0.0, 10_000.0)
        check_number("cap_bps", self.cap_bps, self.min_bps, 10_000.0)

    def rate(self, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
             bar: BarContext) -> np.ndarray:
        """See the class docstring."""
        high = np.asarray(bar.high, np.float64)
        low = np.asarray(bar.low, np.float64)
        close = np.asarray(bar.close, np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rel = np.where(close > 0, (high - low) / close, np.inf)
        rel = np.where(np.isnan(rel), np.inf, rel)
        r = np.clip(self.fraction * rel, self.min_bps / 1e4, self.cap_bps / 1e4)
        return np.where(np.asarray(qty) > 0, r, 0.0)

    @property
    def max_bps(self) -> float:
        """``cap_bps``."""
        return float(self.cap_bps)


_MODELS: dict[str, type[SlippageModel]] = {
    cls.name: cls for cls in (NoSlippage, FixedBps, VolumeShare, BarRange)
}
_MODELS.update({cls.__name__.lower(): cls for cls in list(_MODELS.values())})


def slippage_model(value: float | SlippageModel | None) -> SlippageModel:
    """Coerce a number (bps), a model or ``None`` (no slippage) to a model."""
    if value is None:
        return NoSlippage()
    if isinstance(value, SlippageModel):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_)):
        return FixedBps(bps=float(value))
    raise TypeError(f"slippage must be a number of bps or a SlippageModel, got {value!r}")


def slippage_model_from_dict(spec: dict[str, Any]) -> SlippageModel:
    """Build a model from ``{"model": name, **parameters}`` (e.g. from YAML).

    Names: ``none``, ``fixed_bps``, ``volume_share``, ``bar_range`` (class names work too).
    """
    cls, params = model_from_spec("slippage", _MODELS, spec)
    return cls(**params)
