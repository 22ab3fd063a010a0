"""Bar timestamps read with intent: naive or aware, which zone, which day order.

:func:`parse_times` turns one timestamp column (strings, datetimes, dates, ``yyyymmdd``
integers) into int64 nanoseconds UTC, under these rules (the loader's contract):

- aware values (``Z``, ``+01:00``, tz-aware datetimes) keep their own offset;
- naive values need ``tz`` (an IANA name such as ``"America/Chicago"``, or ``"UTC"``);
  without it they are refused, naming the first rows and the fix. They are localized in
  ``tz``; a local time that does not exist there (the spring-forward gap) or that occurs
  twice (the fall-back hour, unless the rows' order resolves it) is a bad row;
- one column never mixes naive and aware values;
- ``dd/mm/yyyy`` vs ``mm/dd/yyyy`` is never guessed: a column of such dates needs
  ``dayfirst`` (the error says which order the data allows);
- ``yyyymmdd`` and ``yyyymmdd HHMMSS`` (NinjaTrader) are read as such.

Kept apart from :mod:`simbroker.data` (which validates and pivots) because it is the one
place that decides what a written time means.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker.errors import DataError

__all__ = ["ParsedTimes", "check_tz", "parse_times"]

NAT = np.iinfo(np.int64).min
_SHOWN = 3

I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# A time of day followed by an offset or Z: "09:30Z", "09:30:00.5+01:00", "093000-0500".
_AWARE = re.compile(
    r"(?:\d{1,2}:?\d{2}(?::?\d{2}(?:\.\d+)?)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$",
    re.IGNORECASE)
# Day and month first, in either order: 01/02/2024, 1.2.24, 13-01-2024 09:30.
_DAY_MONTH = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2,4})(?:\D|$)")
_YYYYMMDD = re.compile(r"^\s*\d{8}\s*$")
_YYYYMMDD_HHMMSS = re.compile(r"^\s*\d{8}[ T]?\d{6}\s*$")


@dataclass
class ParsedTimes:
    """One timestamp column, parsed.

    ``ns`` is int64 nanoseconds UTC (``NAT`` where missing or bad); ``bad`` the rows that
    failed with a reason each (``None`` when none did); ``naive`` whether the values
    were naive (localized in ``tz``); ``day_stamps`` whether they are dates (naive, every
    one at midnight): a day stamp labels the whole day.
    """

    ns: I64
    bad: BoolArray | None
    reasons: dict[int, str]
    naive: bool
    day_stamps: bool


def check_tz(tz: str | None) -> str | None:
    """``tz`` if pandas knows the zone; ``ValueError`` naming it otherwise."""
    if tz is None:
        return None
    if not isinstance(tz, str) or not tz.strip():
        raise ValueError(f"tz must be a time zone name such as 'America/New_York' or 'UTC', "
                         f"got {tz!r}")
    try:
        pd.Timestamp(0).tz_localize(tz)
    except Exception:  # zoneinfo's, pytz's and dateutil's errors differ
        raise ValueError(f"unknown time zone tz={tz!r}; use an IANA name such as "
                         f"'America/New_York', 'Europe/London' or 'UTC'") from None
    return tz


def parse_times(col: pd.Series, source: str, *, tz: str | None,
                dayfirst: bool | None) -> ParsedTimes:
    """Parse one timestamp column to UTC nanoseconds with the module's rules."""
    if pd.api.types.is_bool_dtype(col.dtype):
        raise DataError(f"the timestamps of {source} are booleans; they must be dates or times")
    if pd.api.types.is_numeric_dtype(col.dtype):
        col = _yyyymmdd_numbers(col, source)
    with warnings.catch_warnings():
        # pandas warns when it falls back to parsing element by element ("Could not infer
        # format"); bad rows are reported as DataError, and under -W error (pytest's
        # filterwarnings = error) the warning would escape load_bars as an exception.
        warnings.simplefilter("ignore", UserWarning)
        return _parse(col, source, tz=tz, dayfirst=dayfirst)


def _yyyymmdd_numbers(col: pd.Series, source: str) -> pd.Series:
    """Integers like 20240102 (MetaStock/Stooq ``<DATE>``) as strings; other numbers refused."""
    values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = values[~np.isnan(values)]
    if (pd.api.types.is_integer_dtype(col.dtype) or bool(np.all(finite == np.floor(finite)))) \
            and len(finite) and bool(np.all((finite >= 1900_01_01) & (finite <= 2262_04_11))):
        text = pd.Series([None if v != v else f"{int(v):08d}" for v in values],
                         index=col.index, dtype=object)
        return text
    raise DataError(
        f"the timestamps of {source} are numbers ({col.dtype}); convert them first, "
        "e.g. with pandas.to_datetime(values, unit='s')"
    )


def _parse(col: pd.Series, source: str, *, tz: str | None, dayfirst: bool | None) -> ParsedTimes:
    n = len(col)
    reasons: dict[int, str] = {}
    bad = np.zeros(n, dtype=bool)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        idx = pd.DatetimeIndex(col).tz_convert("UTC").tz_localize(None)
        return ParsedTimes(_ns(idx, source), None, reasons, naive=False, day_stamps=False)
    if pd.api.types.is_datetime64_dtype(col.dtype):
        idx = pd.DatetimeIndex(col)
        return _localized(idx, source, tz, bad, reasons)
    values = col.to_numpy(dtype=object)
    present = pd.notna(col).to_numpy(dtype=bool)
    if pd.api.types.infer_dtype(col, skipna=True) == "string":  # the common case, vectorized
        text = pd.Series(values, dtype=object)
        kind = np.where(text.str.strip().str.contains(_AWARE).to_numpy(dtype=bool, na_value=False),
                        "aware", "naive").astype(object)
    else:
        kind = np.array([_kind(v) for v in values], dtype=object)
    for i in np.flatnonzero(present & (kind == "number")):
        bad[i] = True
        reasons[int(i)] = f"cannot parse timestamp {values[i]!r}: a number is not a time"
    aware = present & (kind == "aware")
    naive = present & (kind == "naive")
    if aware.any() and naive.any():
        raise DataError(_mixed_message(source, values, naive, aware))
    strings = pd.Series(values, dtype=object).where(present & (kind != "number"), None)
    dm = _day_month_rows(strings)
    if dm is not None and dayfirst is None:
        raise DataError(_day_month_message(source, strings, dm))
    first = bool(dayfirst) if dm is not None else False
    if aware.any():
        parsed, failed = _to_datetime(strings, utc=True, dayfirst=first)
        for i in np.flatnonzero(failed):
            bad[i] = True
            reasons.setdefault(int(i), f"cannot parse timestamp {values[i]!r}")
        idx = pd.DatetimeIndex(parsed).tz_convert("UTC").tz_localize(None)
        return ParsedTimes(_ns(idx, source), bad if bad.any() else None, reasons,
                           naive=False, day_stamps=False)
    parsed, failed = _to_datetime(strings, utc=False, dayfirst=first)
    for i in np.flatnonzero(failed):
        bad[i] = True
        reasons.setdefault(int(i), f"cannot parse timestamp {values[i]!r}")
    idx = pd.DatetimeIndex(parsed)
    if idx.tz is not None:  # parsed strings turned out aware ("UTC" spelled out)
        idx = idx.tz_convert("UTC").tz_localize(None)
        return ParsedTimes(_ns(idx, source), bad if bad.any() else None, reasons,
                           naive=False, day_stamps=False)
    return _localized(idx, source, tz, bad, reasons, raw=values)


def _kind(v: object) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NaT:
        return "missing"
    if isinstance(v, (bool, np.bool_, int, float, np.number)):
        return "number"
    if isinstance(v, str):
        return "aware" if _AWARE.search(v.strip()) else "naive"
    if isinstance(v, pd.Timestamp) or hasattr(v, "tzinfo"):
        return "aware" if getattr(v, "tzinfo", None) is not None else "naive"
    return "naive"  # datetime.date, np.datetime64: no zone


def _to_datetime(strings: pd.Series, *, utc: bool, dayfirst: bool) -> tuple[pd.Series, BoolArray]:
    """Parse with the known fixed formats first, then pandas' inference, then ISO 8601."""
    sample = strings.dropna()
    first = str(sample.iloc[0]) if len(sample) else ""
    fmt: str | None = None
    if _YYYYMMDD_HHMMSS.match(first):
        strings = strings.map(lambda s: None if s is None else re.sub(r"[ T]", "", str(s).strip()))
        fmt = "%Y%m%d%H%M%S"
    elif _YYYYMMDD.match(first):
        strings = strings.map(lambda s: None if s is None else str(s).strip())
        fmt = "%Y%m%d"
    attempts: list[str | None] = [fmt] if fmt else [None, "ISO8601"]
    best: tuple[pd.Series, BoolArray] | None = None
    for f in attempts:
        try:
            parsed = pd.to_datetime(strings, utc=utc, format=f, dayfirst=dayfirst,
                                    errors="coerce")
        except (ValueError, TypeError, OverflowError):
            continue
        failed = (parsed.isna() & strings.notna()).to_numpy(dtype=bool)
        if best is None or int(failed.sum()) < int(best[1].sum()):
            best = (parsed, failed)
        if not failed.any():
            break
    if best is None:
        none = pd.Series(pd.NaT, index=strings.index, dtype="datetime64[ns]")
        if utc:
            none = none.dt.tz_localize("UTC")
        return none, strings.notna().to_numpy(dtype=bool)
    return best


def _localized(idx: pd.DatetimeIndex, source: str, tz: str | None, bad: BoolArray,
               reasons: dict[int, str], raw: np.ndarray | None = None) -> ParsedTimes:
    """Naive wall-clock times in ``tz``, to UTC; the refusal when ``tz`` is missing."""
    present = ~np.asarray(idx.isna())
    if tz is None and present.any():
        raise DataError(_naive_message(source, idx, present, raw))
    day_stamps = bool(present.any()) and _midnights(idx[present])
    if tz is None:  # nothing present: every row is missing (reported by validation)
        return ParsedTimes(_ns(idx, source), bad if bad.any() else None, reasons,
                           naive=True, day_stamps=False)
    local = idx.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    lost = np.asarray(local.isna()) & present
    if lost.any():
        try:  # the fall-back hour written twice, in order: the rows say which is which
            local = idx.tz_localize(tz, ambiguous="infer", nonexistent="NaT")
            lost = np.asarray(local.isna()) & present
        except Exception:  # pytz/zoneinfo AmbiguousTimeError, or not inferable
            pass
    for i in np.flatnonzero(lost):
        wall = pd.Timestamp(idx[int(i)])
        try:
            wall.tz_localize(tz)
            why = "occurs twice (clocks go back); write it with its offset or in UTC"
        except Exception as exc:
            why = ("does not exist (clocks go forward)" if "NonExistent" in type(exc).__name__
                   or "nonexistent" in str(exc).lower()
                   else "occurs twice (clocks go back); write it with its offset or in UTC")
        bad[i] = True
        reasons[int(i)] = f"local time {wall.isoformat()} in {tz} {why}"
    utc = local.tz_convert("UTC").tz_localize(None)
    return ParsedTimes(_ns(utc, source), bad if bad.any() else None, reasons,
                       naive=True, day_stamps=day_stamps)


def _midnights(idx: pd.DatetimeIndex) -> bool:
    """Every time is 00:00 (whatever the index's unit; no overflow past 2262)."""
    return bool((idx == idx.normalize()).all())


def _ns(idx: pd.DatetimeIndex, source: str) -> I64:
    try:
        idx = idx.as_unit("ns")
    except (OverflowError, ValueError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise DataError(
            f"timestamps of {source} fall outside 1677-09-21..2262-04-11: {exc}"
        ) from exc
    return np.asarray(idx.asi8, dtype=np.int64)


# ------------------------------------------------------------------------- messages
def _shown(rows: np.ndarray, values: np.ndarray) -> str:
    return ", ".join(f"row {int(i)} {str(values[i])!r}" for i in rows[:_SHOWN])


def _naive_message(source: str, idx: pd.DatetimeIndex, present: BoolArray,
                   raw: np.ndarray | None) -> str:
    rows = np.flatnonzero(present)
    if raw is None:
        dates = _midnights(idx[present])
        raw = np.asarray(idx.strftime("%Y-%m-%d" if dates else "%Y-%m-%d %H:%M:%S"),
                         dtype=object)
    values = raw
    return (f"the timestamps of {source} are naive (no time zone), e.g. "
            f"{_shown(rows, values)}: say which zone they are written in with "
            f"tz='America/New_York' (the exchange's zone; --tz on the command line), or "
            f"tz='UTC' if they are UTC")


def _mixed_message(source: str, values: np.ndarray, naive: BoolArray, aware: BoolArray) -> str:
    return (f"the timestamps of {source} mix naive and aware values: "
            f"{int(naive.sum())} naive ({_shown(np.flatnonzero(naive), values)}) and "
            f"{int(aware.sum())} with an offset ({_shown(np.flatnonzero(aware), values)}); "
            f"write every row the same way")


def _day_month_rows(strings: pd.Series) -> tuple[BoolArray, BoolArray, BoolArray] | None:
    """Rows in ``dd/mm`` or ``mm/dd`` form, and which of them only parse day-first or
    month-first; ``None`` when no row has the form."""
    parts = strings.astype("string").str.extract(_DAY_MONTH)
    form = parts[0].notna().to_numpy(dtype=bool)
    if not form.any():
        return None
    a = pd.to_numeric(parts[0], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    b = pd.to_numeric(parts[1], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return form, form & (a > 12), form & (b > 12)


def _day_month_message(source: str, strings: pd.Series,
                       rows: tuple[BoolArray, BoolArray, BoolArray]) -> str:
    form, day_first, month_first = rows
    values = strings.to_numpy(dtype=object)
    if day_first.any() and month_first.any():
        what = (f"some rows only parse day-first ({_shown(np.flatnonzero(day_first), values)}) "
                f"and others only month-first ({_shown(np.flatnonzero(month_first), values)}), "
                f"so the file mixes both orders; fix the file, then pass dayfirst=")
    elif day_first.any():
        what = (f"rows such as {_shown(np.flatnonzero(day_first), values)} only parse as "
                f"dd/mm; pass dayfirst=True (--dayfirst on the command line)")
    elif month_first.any():
        what = (f"rows such as {_shown(np.flatnonzero(month_first), values)} only parse as "
                f"mm/dd; pass dayfirst=False (--monthfirst on the command line)")
    else:
        what = (f"every row parses both ways (e.g. {_shown(np.flatnonzero(form), values)}); "
                f"pass dayfirst=True for dd/mm or dayfirst=False for mm/dd "
                f"(--dayfirst/--monthfirst on the command line)")
    return f"the dates of {source} are written day and month first, which is ambiguous: {what}"
