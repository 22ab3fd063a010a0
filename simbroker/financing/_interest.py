"""Interest on the cash balance: :class:`InterestModel`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simbroker.errors import ConfigError
from simbroker.financing._borrow import _rate

__all__ = ["InterestModel"]


@dataclass(frozen=True)
class InterestModel:
    """Interest the account pays on a debit (negative cash) and earns on a credit balance.

    Accrued once per trading day, at the close of the day's last bar, on the cash balance
    then (after that day's fills and its borrow fee)::

        debit interest  = -cash * debit * days / day_count     (cash < 0, paid)
        credit interest =  cash * credit * days / day_count    (cash > 0, received)

    ``days`` counts calendar days to the next trading day (3 over a weekend), as for
    borrow fees; ``day_count`` 360 is ACT/360, the US brokers' convention. Cash here
    includes the proceeds of short sales (simbroker keeps one cash balance), so a
    ``credit`` rate also pays on short proceeds: set ``credit`` to what your broker pays
    on them, or 0 (the default).

    Parameters
    ----------
    debit : float, default 0.0
        Annual rate charged on a negative cash balance (0.06 = 6%).
    credit : float, default 0.0
        Annual rate paid on a positive cash balance.
    day_count : float, default 360
        Days per year (360 = ACT/360, 365 = ACT/365).

    Examples
    --------
    >>> InterestModel(debit=0.0583, credit=0.0383)
    InterestModel(debit=0.0583, credit=0.0383, day_count=360.0)
    """

    debit: float = 0.0
    credit: float = 0.0
    day_count: float = 360.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "debit", _rate(self.debit, "debit"))
        object.__setattr__(self, "credit", _rate(self.credit, "credit"))
        dc = _rate(self.day_count, "day_count")
        if dc <= 0:
            raise ConfigError(f"day_count must be > 0, got {self.day_count!r}")
        object.__setattr__(self, "day_count", dc)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> InterestModel:
        """A model from a configuration mapping (YAML ``interest:``); unknown keys refused."""
        allowed = {"debit", "credit", "day_count"}
        bad = sorted(set(spec) - allowed)
        if bad:
            raise ConfigError(f"interest: unknown keys {bad}; allowed: {sorted(allowed)}",
                              key="interest")
        return cls(**dict(spec))

    def amount(self, cash: float, days: float) -> float:
        """Interest for ``days`` on balance ``cash``: positive = paid by the account,
        negative = credited to it, 0.0 when the balance's rate is 0."""
        if cash < 0 and self.debit:
            return -cash * self.debit * (days / self.day_count)
        if cash > 0 and self.credit:
            return -(cash * self.credit * (days / self.day_count))
        return 0.0
