"""``account=`` by name: ``None``, ``"cash"``, ``"margin"`` or an Account object."""

from __future__ import annotations

from simbroker.accounts._base import Account
from simbroker.accounts._cash import CashAccount
from simbroker.accounts._margin import MarginAccount

__all__ = ["account_model"]

_NAMES = ("cash", "margin", "unconstrained")


def account_model(spec: str | Account | None) -> Account | None:
    """The account a ``PaperBroker(account=spec)`` keeps (``None``: unconstrained).

    ``"cash"`` is ``CashAccount()``, ``"margin"`` is ``MarginAccount()`` (Reg T 50% /
    25%); ``"unconstrained"`` is the same as ``None``. An :class:`Account` is used as
    given (one per broker).
    """
    if spec is None or spec == "unconstrained":
        return None
    if isinstance(spec, Account):
        return spec
    if spec == "cash":
        return CashAccount()
    if spec == "margin":
        return MarginAccount()
    raise ValueError(f"account must be one of {', '.join(map(repr, _NAMES))}, None or an "
                     f"Account, got {spec!r}")
