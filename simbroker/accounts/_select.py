"""``account=`` by name or parameters: ``None``, ``"cash"``, ``"margin"``, a mapping, an
Account object."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from simbroker.accounts._base import Account
from simbroker.accounts._cash import CashAccount
from simbroker.accounts._margin import MarginAccount

__all__ = ["account_model", "same_spec"]

_NAMES = ("cash", "margin", "unconstrained")
_MODELS: dict[str, type[Account]] = {"cash": CashAccount, "margin": MarginAccount}


def account_model(spec: str | Mapping[str, Any] | Account | None) -> Account | None:
    """The account a ``PaperBroker(account=spec)`` keeps (``None``: unconstrained).

    ``"cash"`` is ``CashAccount()``, ``"margin"`` is ``MarginAccount()`` (Reg T 50% /
    25%); ``"unconstrained"`` is the same as ``None``. A mapping names the model under
    ``"model"`` and its keyword parameters beside it, e.g. ``{"model": "margin",
    "maintenance": 0.3, "liquidate": True}`` (what :meth:`Account.spec` returns and the
    ``account:`` key of ``CONFIG/brokers/paper.yaml`` holds). An :class:`Account` is used
    as given (one per broker). Anything else raises ``ValueError`` naming it.
    """
    if spec is None or spec == "unconstrained":
        return None
    if isinstance(spec, Account):
        return spec
    if isinstance(spec, Mapping):
        params = dict(spec)
        model = params.pop("model", None)
        if model == "unconstrained" and not params:
            return None
        cls = _MODELS.get(model) if isinstance(model, str) else None
        if cls is None:
            raise ValueError(f"an account mapping needs 'model': 'cash' or 'margin', got "
                             f"{model!r:.60}")
        known = [k for k in inspect.signature(cls).parameters]
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"unknown {model} account parameter {unknown[0]!r}; known: "
                             f"{', '.join(known)}")
        try:
            return cls(**params)
        except TypeError as exc:
            raise ValueError(f"{model} account: {exc}") from None
    if spec == "cash":
        return CashAccount()
    if spec == "margin":
        return MarginAccount()
    raise ValueError(f"account must be one of {', '.join(map(repr, _NAMES))}, a mapping "
                     f"with 'model', None or an Account, got {spec!r:.80}")


def same_spec(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two :meth:`Account.spec` mappings describe the same account (numbers
    compared as floats, so ``0.5`` and ``1/2`` agree; a JSON round trip changes none)."""
    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, Mapping):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        return repr(v)
    return bool(norm(dict(a)) == norm(dict(b)))
