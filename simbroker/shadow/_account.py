"""The shadow's account model, carried from one per-bar window broker to the next.

Each bar is matched by a fresh :class:`~simbroker.PaperBroker` over the previous and the
current bar, so the account cannot live in one broker as it does in a backtest. It
travels the way a resumed real-time run's does: after each window the account's
:meth:`~simbroker.accounts.Account.snapshot` is kept, and the next window's account
(a copy of the model, never bound itself) :meth:`~simbroker.accounts.Account.restore`\\ s
it before the broker binds it. Days in a snapshot are dates, so the state survives the
window moving on; the recent trading days ride along (``days_before``) because under
the date rule a window knows only its own one or two.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import numpy as np

from simbroker.accounts import Account, LoggedFill, account_model, same_spec
from simbroker.accounts._daytrades import WINDOW
from simbroker.tradelog import TradeLog

__all__ = ["AccountCarry", "Records"]

_KEEP_DAYS = 4 * WINDOW
"""Trading days kept for ``days_before``: a snapshot names none older than the PDT
window (five days), the rest of its days are today or later."""


class Records(TradeLog):
    """A window broker's trade log kept in memory: the shadow takes the records it needs
    (a refusal, a margin call, a good-faith violation) into its own log. No file: of
    :class:`~simbroker.tradelog.TradeLog` it has only the two calls a broker makes."""

    def __init__(self) -> None:  # no file, so not TradeLog's
        self.records: list[dict[str, Any]] = []

    def write(self, event: str, ts: datetime, **fields: Any) -> dict[str, Any]:
        """Keep one record (the :class:`~simbroker.tradelog.TradeLog` call)."""
        rec = {"ts": ts, "event": event, **fields}
        self.records.append(rec)
        return rec

    def close(self) -> None:
        """Nothing to close."""


class AccountCarry:
    """The account rules, state, recent trading days and marks between windows.

    Parameters
    ----------
    spec
        ``account=`` as :class:`~simbroker.PaperBroker` takes it (not ``None``): a name,
        a mapping or an unbound :class:`~simbroker.accounts.Account`, which is copied
        for each window and never bound itself.
    """

    def __init__(self, spec: str | Mapping[str, Any] | Account):
        model = account_model(spec)
        if model is None:
            raise ValueError("AccountCarry needs an account model, not unconstrained")
        if model._broker is not None:
            raise ValueError(f"{model!r} is already bound to a broker; give the shadow "
                             "its own account (or its name or spec)")
        self.model = model
        self.state: dict[str, Any] | None = None
        self.days: list[str] = []
        self.fills: list[LoggedFill] = []
        self.logged: list[tuple[str, datetime, str | None]] = []

    def spec(self) -> dict[str, Any]:
        """The model's :meth:`~simbroker.accounts.Account.spec`."""
        return self.model.spec()

    def same(self, spec: Mapping[str, Any]) -> bool:
        """Whether ``spec`` (an ``account`` record's) names this account."""
        return same_spec(self.model.spec(), spec)

    def account(self) -> Account:
        """A fresh account for the next window, holding the carried state (bind it by
        giving it to the window's ``PaperBroker(account=...)``)."""
        acct = copy.deepcopy(self.model)
        acct.restore(self.state, self.fills, logged=self.logged, days_before=self.days)
        self.fills, self.logged = [], []
        return acct

    def keep(self, acct: Account, day: date) -> None:
        """After a window closed its bar (on trading day ``day``): keep its state."""
        self.state = acct.snapshot()
        iso = day.isoformat()
        if not self.days or self.days[-1] < iso:
            self.days = [*self.days[-(_KEEP_DAYS - 1):], iso]


def marks_out(marks: np.ndarray) -> list[float | None]:
    """Marks as a trade log holds them (``None`` where a symbol has no close yet)."""
    return [float(x) if math.isfinite(x) else None for x in marks.tolist()]


def marks_in(values: Any, n: int) -> np.ndarray:
    """:func:`marks_out` read back (``ValueError`` for a malformed list)."""
    if not (isinstance(values, list) and len(values) == n):
        raise ValueError(f"'marks' must be a list of {n} prices, got {values!r:.60}")
    out = np.full(n, np.nan)
    for i, v in enumerate(values):
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"'marks' holds {v!r:.40}, not a price")
            out[i] = float(v)
    return out
