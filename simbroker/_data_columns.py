"""Which column of a bar file is which field, and how to say so when none is.

Names are matched case-insensitively after stripping spaces and MetaStock's angle
brackets (``<DATE>`` is ``date``), with spaces and dashes read as ``_`` (``Adj Close`` is
``adj_close``). :func:`map_columns` gives the field of every column and the columns no
field uses; :func:`describe_header` shows a whole header with what each column became
and a "did you mean" for the near misses (``timestamp_utc``, ``Closing``, ``Tickr``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EXTRA_COLUMNS", "ColumnMap", "describe_header", "map_columns", "normalize_name"]

REQUIRED: tuple[str, ...] = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
EXTRA_COLUMNS: tuple[str, ...] = ("adj_close", "dividend", "split")
"""Optional columns the loader reads: the adjusted close and corporate actions."""

ALIASES: dict[str, str] = {
    "date": "timestamp",
    "datetime": "timestamp",
    "date_time": "timestamp",
    "time": "timestamp",
    "ticker": "symbol",
    "vol": "volume",
    "adjclose": "adj_close",
    "adj_close": "adj_close",
    "adjusted_close": "adj_close",
    "dividends": "dividend",
    "splits": "split",
    "stock_splits": "split",
    "split_factor": "split",
    "split_ratio": "split",
}
_KNOWN = (*REQUIRED, *EXTRA_COLUMNS)
_CANDIDATES = (*_KNOWN, *ALIASES)


def normalize_name(label: object) -> str:
    """``" <Adj Close> "`` -> ``"adj_close"``: the form names are matched in."""
    key = str(label).strip().strip("<>").strip().lower()
    return re.sub(r"[\s\-]+", "_", key)


def canonical(label: object) -> str:
    """The field a column name means (itself when it means none)."""
    key = normalize_name(label)
    return ALIASES.get(key, key)


@dataclass
class ColumnMap:
    """The fields found in a header.

    ``fields`` maps a field to the column label holding it; ``date_time`` holds the
    labels of separate date and time columns (``Date,Time,...``: joined into one
    timestamp); ``unused`` the labels no field reads; ``clashes`` two labels meaning one
    field (refused, never resolved by picking one).
    """

    fields: dict[str, Any] = field(default_factory=dict)
    date_time: tuple[Any, Any] | None = None
    unused: list[Any] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)

    def read_labels(self) -> list[Any]:
        """The labels to read from the file, in header order of the fields."""
        out = list(self.fields.values())
        if self.date_time is not None:
            out += [c for c in self.date_time if c not in out]
        return out


def map_columns(labels: Iterable[object]) -> ColumnMap:
    """Fields found in ``labels`` (see :class:`ColumnMap`)."""
    labels = list(labels)
    out = ColumnMap()
    names = [normalize_name(c) for c in labels]
    if names.count("date") == 1 and names.count("time") == 1 and not any(
            ALIASES.get(n, n) == "timestamp" and n not in ("date", "time") for n in names):
        out.date_time = (labels[names.index("date")], labels[names.index("time")])
    for label, name in zip(labels, names, strict=True):
        if out.date_time is not None and label in out.date_time:
            continue
        canon = ALIASES.get(name, name)
        if canon not in _KNOWN:
            out.unused.append(label)
            continue
        if canon in out.fields:
            out.clashes.append(f"{out.fields[canon]!r} and {label!r} both mean {canon!r}")
        else:
            out.fields[canon] = label
    return out


def did_you_mean(label: object) -> str | None:
    """The field an unrecognised name is closest to, if any is close."""
    name = normalize_name(label)
    for known in _KNOWN:  # "timestamp_utc", "close_price": a field's name plus a word
        if re.fullmatch(rf"(?:\w+_)?{known}(?:_\w+)?", name):
            return known
    close = difflib.get_close_matches(name, _CANDIDATES, n=1, cutoff=0.75)
    return ALIASES.get(close[0], close[0]) if close else None


def describe_header(labels: Iterable[object], columns: ColumnMap, *, limit: int = 30) -> str:
    """The whole header, each column with what it became: ``Date (timestamp), Foo (not
    used; did you mean 'open'?)``."""
    shown: list[str] = []
    role_of = {label: name for name, label in columns.fields.items()}
    for label in list(labels)[:limit]:
        role = role_of.get(label)
        if columns.date_time is not None and label in columns.date_time:
            role = "date" if label == columns.date_time[0] else "time of day"
        if role is not None:
            shown.append(f"{label!s} ({role})")
            continue
        guess = did_you_mean(label)
        shown.append(f"{label!s} (not used; did you mean {guess!r}?)" if guess
                     else f"{label!s} (not used)")
    more = len(list(labels)) - limit
    return ", ".join(shown) + (f", ... ({more} more)" if more > 0 else "") if shown else "(none)"


def rename_hint(labels: Iterable[object], missing: Iterable[str],
                renames: Mapping[str, str] | None = None) -> str:
    """``columns={'timestamp_utc': 'timestamp'}`` for the missing fields a column resembles."""
    missing = set(missing)
    pairs = {str(label): guess for label in labels
             if (guess := did_you_mean(label)) in missing and canonical(label) != guess}
    if not pairs:
        return ""
    text = ", ".join(f"{k!r}: {v!r}" for k, v in pairs.items())
    flags = " ".join(f"--column {k}={v}" for k, v in pairs.items())
    return f"; rename with columns={{{text}}} ({flags} on the command line)"
