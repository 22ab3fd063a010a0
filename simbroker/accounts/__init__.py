"""Account models for the paper broker: who may borrow, how much, and when cash settles.

``PaperBroker(account=...)`` takes ``None`` (the default: an unconstrained account that
never refuses for money), ``"cash"`` (:class:`CashAccount`), ``"margin"``
(:class:`MarginAccount`, Reg T), a mapping of a model's parameters (``{"model":
"margin", "liquidate": True}``) or an :class:`Account` object. ``get_account()`` returns
the figures (:class:`~simbroker.types.AccountInfo`) in every case. An account's state
travels through the trade log, so a resumed real-time run rebuilds it
(:meth:`Account.snapshot`, :meth:`Account.restore`, :class:`LoggedFill`).
"""

from __future__ import annotations

from simbroker.accounts._base import Account, unconstrained_info
from simbroker.accounts._cash import CashAccount
from simbroker.accounts._margin import MarginAccount
from simbroker.accounts._select import account_model, same_spec
from simbroker.accounts._state import LoggedFill, StateError

__all__ = ["Account", "CashAccount", "LoggedFill", "MarginAccount", "StateError",
           "account_model", "same_spec", "unconstrained_info"]
