"""Account models for the paper broker: who may borrow, how much, and when cash settles.

``PaperBroker(account=...)`` takes ``None`` (the default: an unconstrained account that
never refuses for money), ``"cash"``, ``"margin"`` or an :class:`Account` object.
"""

from __future__ import annotations

from simbroker.accounts._base import Account, unconstrained_info

__all__ = ["Account", "unconstrained_info"]
