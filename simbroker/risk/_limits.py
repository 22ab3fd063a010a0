"""The configured limits: a frozen, keyword-only dataclass that round-trips to a dict."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from simbroker.errors import ConfigError

__all__ = ["RiskLimits"]

_NOTIONAL_RULES = ("max_order_notional", "max_position_notional", "max_gross_exposure")


def _limit(name: str, value: Any, *, integer: bool = False) -> None:
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0 or (integer and value != int(value)):
        kind = "a positive integer" if integer else "a finite number > 0"
        raise ConfigError(f"risk limit {name} must be {kind} or null, got {value!r}", key=name)


@dataclass(frozen=True, kw_only=True)
class RiskLimits:
    """Pre-trade limits; ``None`` switches a rule off. See :mod:`simbroker.risk`.

    Parameters
    ----------
    max_order_qty, max_order_notional
        Per order: quantity, and quantity x the highest price the order can fill at
        (account currency).
    max_position, max_position_notional
        Per symbol, the worst case after the order: the position plus every open order on
        the order's side, in shares and in value.
    max_gross_exposure
        Sum over symbols of each symbol's worst-case |value| after the order.
    allowed_symbols, blocked_symbols
        Only these symbols / never these symbols.
    price_collar
        Largest distance of a limit or stop price from the last known price, as a
        fraction (0.1 = 10 %).
    max_orders_per_minute
        Orders accepted in any 60 s window of broker time.
    max_daily_loss
        Loss (account currency) since the last equity marked before the day began (the
        first mark ever, on the first day) that trips the kill switch.
    allow_short
        False refuses orders that could open or grow a short position.
    cancel_on_kill
        Cancel the open orders the wrapper knows of when the kill switch trips.
    """

    max_order_qty: float | None = None
    max_order_notional: float | None = None
    max_position: float | None = None
    max_position_notional: float | None = None
    max_gross_exposure: float | None = None
    allowed_symbols: frozenset[str] | None = None
    blocked_symbols: frozenset[str] = field(default_factory=frozenset)
    price_collar: float | None = None
    max_orders_per_minute: int | None = None
    max_daily_loss: float | None = None
    allow_short: bool = True
    cancel_on_kill: bool = True

    def __post_init__(self) -> None:
        for name in ("max_order_qty", "max_order_notional", "max_position",
                     "max_position_notional", "max_gross_exposure", "price_collar",
                     "max_daily_loss"):
            _limit(name, getattr(self, name))
        _limit("max_orders_per_minute", self.max_orders_per_minute, integer=True)
        for name in ("allowed_symbols", "blocked_symbols"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ConfigError(f"risk limit {name} must be a list of symbols, got {value!r}",
                                  key=name)
            object.__setattr__(self, name, frozenset(str(s) for s in value))
        for name in ("allow_short", "cancel_on_kill"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"risk limit {name} must be true or false, got "
                                  f"{getattr(self, name)!r}", key=name)

    @property
    def is_set(self) -> bool:
        """True when at least one sizing or loss limit is configured (live trading needs it)."""
        return any(getattr(self, n) is not None for n in (
            "max_order_qty", "max_order_notional", "max_position", "max_position_notional",
            "max_gross_exposure", "max_daily_loss"))

    @property
    def prices_orders(self) -> bool:
        """True when a notional rule is set, so every order needs a price it cannot exceed."""
        return any(getattr(self, n) is not None for n in _NOTIONAL_RULES)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (symbol sets as sorted lists); :meth:`from_dict` inverts it."""
        out = asdict(self)
        for name in ("allowed_symbols", "blocked_symbols"):
            if out[name] is not None:
                out[name] = sorted(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> RiskLimits:
        """Build from a mapping (e.g. YAML); unknown keys are a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            where = f" in {source}" if source else ""
            raise ConfigError(f"unknown risk limit(s) {', '.join(map(repr, unknown))}{where}; "
                              f"known: {', '.join(sorted(known))}", key=unknown[0], path=source)
        return cls(**dict(data))
