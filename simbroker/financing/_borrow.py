"""Borrow costs of short positions: :class:`BorrowModel`."""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simbroker.errors import ConfigError

__all__ = ["BorrowModel"]


def _rate(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be an annual rate (0.03 = 3%), got {value!r}")
    try:
        r = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be an annual rate (0.03 = 3%), got {value!r}") from None
    if not math.isfinite(r) or r < 0:
        raise ConfigError(f"{what} must be a finite annual rate >= 0, got {value!r}")
    return r


@dataclass(frozen=True)
class BorrowModel:
    """What shorting costs: an annual borrow rate per symbol, and which symbols are hard
    to borrow.

    The fee accrues once per trading day, at the close of the day's last bar, on the
    short market value then (``|position| * close``, the last known close)::

        fee = |position| * close * rate[symbol] * days / day_count

    ``days`` is the number of calendar days until the next trading day of the bars (3
    from a Friday to a Monday: lenders charge the weekend, as IBKR and Alpaca do), 1 on
    the last day. ``day_count`` is 360 by default (ACT/360, the US brokers' convention).

    Parameters
    ----------
    rate : float, default 0.0
        Annual borrow rate of every symbol not in ``rates`` (0.03 = 3% a year).
    rates : mapping, optional
        ``{symbol: annual rate}`` overriding ``rate`` (see :meth:`from_csv`).
    hard_to_borrow : collection of str, optional
        Symbols that may be sold short only as far as a locate covers: a sell that would
        leave the position (net of open sell orders) below ``-located[symbol]`` is
        refused at submission with :class:`~simbroker.errors.HardToBorrow`.
    located : mapping, optional
        ``{symbol: shares}`` located at the start: the largest short position allowed in
        a hard-to-borrow symbol (a standing locate; :meth:`PaperBroker.locate
        <simbroker.PaperBroker.locate>` adds to it during a run).
    day_count : float, default 360
        Days per year in the accrual (360 = ACT/360; 365 = ACT/365).

    Examples
    --------
    >>> BorrowModel(rate=0.0025, rates={"GME": 0.35}, hard_to_borrow={"GME"})
    BorrowModel(rate=0.0025, rates={'GME': 0.35}, hard_to_borrow=frozenset({'GME'}), \
located={}, day_count=360.0)
    """

    rate: float = 0.0
    rates: Mapping[str, float] = field(default_factory=dict)
    hard_to_borrow: Collection[str] = field(default_factory=frozenset)  # kept as a frozenset
    located: Mapping[str, float] = field(default_factory=dict)
    day_count: float = 360.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _rate(self.rate, "rate"))
        if not isinstance(self.rates, Mapping):
            raise ConfigError(f"rates must be a mapping {{symbol: rate}}, got {self.rates!r}")
        object.__setattr__(self, "rates", {str(s): _rate(r, f"rates[{s!r}]")
                                           for s, r in self.rates.items()})
        htb = self.hard_to_borrow
        if isinstance(htb, str) or not isinstance(htb, Iterable):
            raise ConfigError(f"hard_to_borrow must be a collection of symbols, got {htb!r}")
        object.__setattr__(self, "hard_to_borrow", frozenset(str(s) for s in htb))
        if not isinstance(self.located, Mapping):
            raise ConfigError(f"located must be a mapping {{symbol: shares}}, got "
                              f"{self.located!r}")
        located: dict[str, float] = {}
        for s, q in self.located.items():
            qf = _rate(q, f"located[{s!r}]")
            located[str(s)] = qf
        object.__setattr__(self, "located", located)
        dc = _rate(self.day_count, "day_count")
        if dc <= 0:
            raise ConfigError(f"day_count must be > 0, got {self.day_count!r}")
        object.__setattr__(self, "day_count", dc)

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> BorrowModel:
        """A model whose ``rates`` come from a CSV file with columns ``symbol,rate``.

        An optional column ``hard_to_borrow`` (``true``/``false``, ``1``/``0``, ``yes``/
        ``no``) adds the symbols marked true to ``hard_to_borrow``. Other keyword
        arguments are passed on (``rate=`` for symbols not in the file, ``located=``...).
        A bad row raises :class:`~simbroker.errors.ConfigError` naming the file and line.
        """
        p = Path(path)
        rates: dict[str, float] = dict(kwargs.pop("rates", {}) or {})
        htb = set(kwargs.pop("hard_to_borrow", ()) or ())
        try:
            with p.open(newline="") as fh:
                reader = csv.DictReader(fh)
                cols = [c.strip().lower() for c in (reader.fieldnames or [])]
                if "symbol" not in cols or "rate" not in cols:
                    raise ConfigError(f"{p}: a borrow-rate file needs the columns symbol,rate;"
                                      f" got {reader.fieldnames}", key=str(p))
                for line, row in enumerate(reader, start=2):
                    r = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                    sym = r["symbol"]
                    if not sym:
                        raise ConfigError(f"{p}, line {line}: empty symbol", key=str(p))
                    try:
                        rates[sym] = _rate(r["rate"], f"rate of {sym}")
                    except ConfigError as exc:
                        raise ConfigError(f"{p}, line {line}: {exc}", key=str(p)) from None
                    flag = r.get("hard_to_borrow", "").lower()
                    if flag in ("1", "true", "yes", "y", "t"):
                        htb.add(sym)
                    elif flag not in ("", "0", "false", "no", "n", "f"):
                        raise ConfigError(f"{p}, line {line}: hard_to_borrow must be true or "
                                          f"false, got {flag!r}", key=str(p))
        except OSError as exc:
            raise ConfigError(f"cannot read borrow rates from {p}: {exc}", key=str(p)) from None
        return cls(rates=rates, hard_to_borrow=frozenset(htb), **kwargs)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> BorrowModel:
        """A model from a configuration mapping (YAML ``borrow:``): the constructor's keys,
        plus ``csv:`` (a rates file, as :meth:`from_csv`). Unknown keys are refused."""
        allowed = {"rate", "rates", "hard_to_borrow", "located", "day_count", "csv"}
        bad = sorted(set(spec) - allowed)
        if bad:
            raise ConfigError(f"borrow: unknown keys {bad}; allowed: {sorted(allowed)}",
                              key="borrow")
        kw = dict(spec)
        path = kw.pop("csv", None)
        return cls.from_csv(path, **kw) if path is not None else cls(**kw)

    def rate_array(self, symbols: Sequence[str]) -> np.ndarray:
        """Annual rates aligned with ``symbols``."""
        return np.array([self.rates.get(s, self.rate) for s in symbols], np.float64)
