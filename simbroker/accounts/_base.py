"""The Account base class: what the paper broker asks of an account model."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from simbroker.types import AccountInfo, Order

if TYPE_CHECKING:
    from simbroker.paper import PaperBroker

__all__ = ["Account", "market_values", "unconstrained_info"]


def market_values(pos: np.ndarray, marks: np.ndarray) -> tuple[float, float]:
    """Long and short market value of positions ``pos`` at ``marks`` (short <= 0).

    A held symbol with no mark yet counts zero.
    """
    value = np.where(pos != 0, pos * np.nan_to_num(marks), 0.0)
    return float(value[value > 0].sum()), float(value[value < 0].sum())


def unconstrained_info(cash: float, pos: np.ndarray, marks: np.ndarray) -> AccountInfo:
    """The figures of an account that never refuses for money (the default)."""
    lmv, smv = market_values(pos, marks)
    return AccountInfo(cash=cash, equity=cash + lmv + smv, buying_power=math.inf,
                       maintenance_margin=0.0, initial_margin=0.0, long_market_value=lmv,
                       short_market_value=smv, settled_cash=None, day_trades=None,
                       pattern_day_trader=False, account_type="unconstrained")


class Account:
    """An account model the paper broker consults (``PaperBroker(account=...)``).

    One instance serves one broker (:meth:`bind` refuses a second). The broker calls
    :meth:`check` before it accepts an order (raising refuses it and changes nothing),
    :meth:`on_bar_close` after each bar closed (its fills booked), and :meth:`info` for
    ``get_account``. Subclasses: :class:`~simbroker.accounts.CashAccount`,
    :class:`~simbroker.accounts.MarginAccount`.
    """

    account_type = "account"

    def __init__(self) -> None:
        self._broker: PaperBroker | None = None

    def bind(self, broker: PaperBroker) -> None:
        """Attach to the broker whose money this account keeps."""
        if self._broker is not None:
            raise ValueError(f"{self!r} already keeps another broker's account; "
                             "give each PaperBroker its own account object")
        self._broker = broker

    @property
    def broker(self) -> PaperBroker:
        """The broker this account is bound to."""
        if self._broker is None:
            raise ValueError(f"{self!r} is not bound to a broker")
        return self._broker

    def check(self, order: Order, col: int) -> None:
        """Raise an :class:`~simbroker.errors.OrderRejected` subclass to refuse ``order``."""

    def on_bar_close(self, t: int) -> None:
        """Bar ``t`` closed and its fills are booked."""

    def info(self) -> AccountInfo:
        """The figures ``get_account`` returns."""
        b = self.broker
        return unconstrained_info(b._cash, b._pos, self.marks())

    def marks(self) -> np.ndarray:
        """Each symbol's last close as of the latest closed bar."""
        b = self.broker
        from simbroker.accounts._marks import last_closes
        return last_closes(b._close, b._t)
