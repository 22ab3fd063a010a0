"""The validation rules of :func:`~simbroker.data.load_bars` and
:func:`~simbroker.data.validate_bars`: which long-form rows are bad, and why.

Each rule is a mask of bad rows with its reason; :func:`_raise_problems` raises one
:class:`~simbroker.errors.DataError` naming the first bad rows. :func:`_values_good` is
the same OHLCV check for the Parquet fast path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from simbroker._data_base import _NAT, F64, I64, BoolArray, _Long
from simbroker.bars import FIELDS
from simbroker.errors import DataError

_MAX_PROBLEMS = 10
Reason = Callable[[int], str]


def _all_good(long: _Long) -> bool:
    """The fast path: True when no rule fails (one pass of a few comparisons per field)."""
    if long.unparsed or long.time_reasons or (len(long) and int(long.codes.min()) < 0):
        return False
    if bool((long.ts == _NAT).any()):
        return False
    v = long.values
    return _values_good(v["open"], v["high"], v["low"], v["close"], v["volume"]) \
        and not _duplicates(long).any()


def _values_good(o: F64, h: F64, low: F64, c: F64, volume: F64) -> bool:
    """No price or volume rule fails on these rows (NaN fails every comparison)."""
    good = low > 0
    good &= h < np.inf
    good &= volume >= 0
    good &= volume < np.inf
    for x in (o, c):
        good &= h >= x
        good &= low <= x
    return bool(good.all())


def _duplicates(long: _Long) -> BoolArray:
    """Rows repeating an earlier row's (symbol, timestamp)."""
    n_sym = max(len(long.symbols), 1)
    key = long.tcodes * n_sym + long.codes
    ok = (long.codes >= 0) & (long.ts != _NAT)
    dup = np.zeros(len(key), dtype=bool)
    size = len(long.times) * n_sym
    if size <= 4 * len(key) + (1 << 20):  # dense enough to count cells
        counts = np.bincount(key[ok], minlength=size)
        if counts.max(initial=0) <= 1:
            return dup
    rows = np.flatnonzero(ok)
    order = rows[np.argsort(key[rows], kind="stable")]
    k = key[order]
    dup[order[1:][k[1:] == k[:-1]]] = True
    return dup


def _rules(long: _Long) -> list[tuple[BoolArray, str, Reason]]:
    """(bad-row mask, field, reason of row i) per rule, in the order rows report them."""
    v = long.values
    rules: list[tuple[BoolArray, str, Reason]] = [
        (long.codes < 0, "symbol", lambda i: "missing symbol"),
    ]
    if long.time_reasons:
        bad = np.zeros(len(long), dtype=bool)
        bad[list(long.time_reasons)] = True
        rules.append((bad, "timestamp", lambda i: long.time_reasons[i]))
    rules.append((long.ts == _NAT, "timestamp", lambda i: "missing timestamp"))
    for name in FIELDS:
        x = v[name]
        if name in long.unparsed:
            bad, raw = long.unparsed[name]
            rules.append((bad, name, _reason_not_number(name, raw)))
        rules.append((np.isnan(x), name, _reason_missing(name)))
        rules.append((np.isinf(x), name, _reason_value(name, x, "is not finite")))
        if name == "volume":
            rules.append((x < 0, name, _reason_value(name, x, "< 0")))
        else:
            rules.append((x <= 0, name, _reason_value(name, x, "<= 0")))
    for name, x in long.extras.items():  # dividend, split: numbers where given
        if name in long.unparsed:
            bad, raw = long.unparsed[name]
            rules.append((bad, name, _reason_not_number(name, raw)))
        rules.append((np.isinf(x), name, _reason_value(name, x, "is not finite")))
        rules.append((x < 0, name, _reason_value(name, x, "< 0")))
    o, h, low, c = v["open"], v["high"], v["low"], v["close"]
    rules += [
        (h < o, "high", _reason_pair("high", h, "<", "open", o)),
        (h < c, "high", _reason_pair("high", h, "<", "close", c)),
        (low > o, "low", _reason_pair("low", low, ">", "open", o)),
        (low > c, "low", _reason_pair("low", low, ">", "close", c)),
    ]

    def dup_reason(i: int) -> str:
        same = (long.codes == long.codes[i]) & (long.ts == long.ts[i])
        first = int(np.flatnonzero(same)[0])
        return f"duplicate bar: row {first} has the same symbol and timestamp"

    rules.append((_duplicates(long), "timestamp", dup_reason))
    return rules


def _reason_not_number(name: str, raw: pd.Series) -> Reason:
    return lambda i: f"{name} {raw.iloc[i]!r} is not a number"


def _reason_missing(name: str) -> Reason:
    return lambda i: f"missing {name}"


def _reason_value(name: str, x: F64, what: str) -> Reason:
    return lambda i: f"{name} {_num(x[i])} {what}"


def _reason_pair(a: str, xa: F64, op: str, b: str, xb: F64) -> Reason:
    return lambda i: f"{a} {_num(xa[i])} {op} {b} {_num(xb[i])}"


def _num(x: float) -> str:
    x = float(x)
    if math.isfinite(x) and x == math.floor(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _iso(ns: int) -> str | None:
    if ns == _NAT:
        return None
    iso: str = pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()
    return iso


def _timestamp_codes(ts: I64) -> tuple[I64, I64]:
    """Codes into the sorted unique timestamps, and those timestamps."""
    codes, uniques = pd.factorize(ts, sort=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=np.int64)


def _raise_problems(long: _Long, source: str) -> None:
    if _all_good(long):
        return
    rules = _rules(long)
    bad_any = np.zeros(len(long), dtype=bool)
    for mask, _, _ in rules:
        bad_any |= mask
    n_bad = int(np.count_nonzero(bad_any))
    if n_bad == 0:
        return
    problems: list[dict[str, Any]] = []
    for row in np.flatnonzero(bad_any)[:_MAX_PROBLEMS]:
        i = int(row)
        mask, field, reason = next(r for r in rules if r[0][i])
        code = int(long.codes[i])
        problems.append({
            "row": i,
            "symbol": long.symbols[code] if code >= 0 else None,
            "timestamp": _iso(int(long.ts[i])),
            "field": field,
            "reason": reason(i),
        })
    shown = f" (first {_MAX_PROBLEMS} shown)" if n_bad > _MAX_PROBLEMS else ""
    raise DataError(
        f"{n_bad} bad row{'s' if n_bad != 1 else ''} in {source}{shown}", problems=problems
    )
