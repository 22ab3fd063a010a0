"""Account models for the paper broker: who may borrow, how much, and when cash settles.

``PaperBroker(account=...)`` takes ``None`` (the default: an unconstrained account that
never refuses for money), ``"cash"`` (:class:`CashAccount`), ``"margin"``
(:class:`MarginAccount`, Reg T) or an :class:`Account` object. ``get_account()`` returns
the figures (:class:`~simbroker.types.AccountInfo`) in every case.
"""

from __future__ import annotations

from simbroker.accounts._base import Account, unconstrained_info
from simbroker.accounts._cash import CashAccount
from simbroker.accounts._margin import MarginAccount
from simbroker.accounts._select import account_model

__all__ = ["Account", "CashAccount", "MarginAccount", "account_model", "unconstrained_info"]
