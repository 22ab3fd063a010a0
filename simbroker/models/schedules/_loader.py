"""Reading the schedule files: dated versions as step functions over trade dates."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from simbroker.errors import FeeScheduleError

if TYPE_CHECKING:
    from simbroker.models.schedules._models import ScheduleFee

__all__ = ["SCHEDULE_NAMES", "DatedTable", "FeeSchedule", "as_day", "fee_schedule",
           "load_schedule_data"]

SCHEDULE_NAMES: tuple[str, ...] = ("alpaca", "ibkr_fixed", "ibkr_tiered")
"""The schedules :func:`fee_schedule` knows (one ``<name>.yaml`` file each)."""

_REGULATORY = "us_regulatory"


def as_day(value: Any) -> np.datetime64:
    """A date (``date``, ``datetime``, ISO string, ``numpy.datetime64``) as ``datetime64[D]``."""
    if isinstance(value, datetime):
        value = value.date()  # the date in the datetime's own zone
    try:
        day: np.datetime64 = np.datetime64(value, "D")
    except (ValueError, TypeError) as exc:
        raise FeeScheduleError(f"not a date: {value!r} ({exc})") from None
    if np.isnat(day):
        raise FeeScheduleError(f"not a date: {value!r}")
    return day


def days_of(when: Any) -> np.ndarray:
    """Trade dates (``datetime64[D]``, UTC) of an array of times: int64 ns or datetime64."""
    arr = np.asarray(when)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[D]")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64).astype("datetime64[ns]").astype("datetime64[D]")
    if arr.dtype.kind == "O":
        try:
            return np.array([as_day(v) for v in arr.ravel()],
                            "datetime64[D]").reshape(arr.shape)
        except FeeScheduleError as exc:
            raise FeeScheduleError(f"when: {exc}") from None
    raise FeeScheduleError(f"when must be times (int64 ns since the epoch or datetime64), "
                           f"got dtype {arr.dtype}")


@dataclass(frozen=True, eq=False)
class DatedTable:
    """Versions of one set of rates: ``effective`` dates and one column per field.

    ``columns[k][i]`` is field ``k`` in version ``i``; :meth:`index` picks, per trade date,
    the last version effective on or before it.
    """

    label: str
    effective: np.ndarray
    columns: dict[str, np.ndarray]
    meta: tuple[dict[str, Any], ...] = field(default=())
    before_first: str = "error"

    def index(self, days: np.ndarray) -> np.ndarray:
        """Version index per trade date (``-1``: before the first version, a fee that did
        not exist yet, where ``before_first`` is ``"zero"``).

        ``before_first``: ``"first"`` prices earlier dates with the first version (the
        oldest rate sourced, extended back), ``"zero"`` marks them ``-1``, ``"error"``
        refuses them naming the date.
        """
        i = np.searchsorted(self.effective, days, side="right") - 1
        if self.before_first == "first":
            return np.maximum(i, 0).astype(np.intp)
        if self.before_first == "zero":
            return i.astype(np.intp)
        if i.size and int(i.min()) < 0:
            first = days.ravel()[int(np.argmin(i.ravel()))]
            raise FeeScheduleError(
                f"{self.label}: no version effective on {first} (the first takes effect "
                f"on {self.effective[0]})")
        return i.astype(np.intp)

    def latest(self) -> int:
        """Index of the newest version."""
        return len(self.effective) - 1


def _table(label: str, versions: Any, fields: tuple[str, ...],
           before_first: Any = "error") -> DatedTable:
    if not isinstance(versions, list) or not versions:
        raise FeeScheduleError(f"{label}: 'versions' must be a non-empty list")
    eff, cols, meta = [], {k: [] for k in fields}, []  # type: ignore[var-annotated]
    for k, v in enumerate(versions):
        if not isinstance(v, dict) or "effective" not in v:
            raise FeeScheduleError(f"{label}: version {k} needs an 'effective' date")
        if not v.get("source"):
            raise FeeScheduleError(f"{label}: version {k} names no 'source'")
        if not isinstance(v.get("confirmed"), bool):
            raise FeeScheduleError(f"{label}: version {k} must say whether it is "
                                   f"'confirmed' (true or false), got "
                                   f"{v.get('confirmed')!r}")
        eff.append(as_day(v["effective"]))
        for f in fields:
            if f not in v:
                raise FeeScheduleError(f"{label}: version {k} lacks {f!r}")
            cols[f].append(v[f])
        meta.append({key: v[key] for key in ("version", "effective", "confirmed", "source",
                                             "note") if key in v})
    effective = np.array(eff, "datetime64[D]")
    if np.any(np.diff(effective) <= np.timedelta64(0, "D")):
        raise FeeScheduleError(f"{label}: versions must be in increasing 'effective' order")
    arrays: dict[str, np.ndarray] = {}
    for f, vals in cols.items():
        if f == "tiers":  # one list of tiers per version, kept whole
            arrays[f] = np.empty(len(vals), dtype=object)
            arrays[f][:] = [list(v) if isinstance(v, list) else v for v in vals]
            continue
        try:
            arrays[f] = np.array([np.nan if x is None else x for x in vals], np.float64)
        except (ValueError, TypeError):
            raise FeeScheduleError(f"{label}: {f!r} must be numbers, got {vals!r}") from None
        if np.any(arrays[f] < 0):
            raise FeeScheduleError(f"{label}: {f!r} must be >= 0, got {vals!r}")
    for a in (effective, *arrays.values()):
        a.setflags(write=False)  # shared by every model of the (cached) schedule
    if before_first not in ("error", "first", "zero"):
        raise FeeScheduleError(f"{label}: 'before_first' must be error, first or zero, "
                               f"got {before_first!r}")
    return DatedTable(label, effective, arrays, tuple(meta), before_first)


@cache
def load_schedule_data(name: str) -> dict[str, Any]:
    """The parsed YAML of schedule ``name`` (cached; treat it as read-only)."""
    path = resources.files("simbroker.models.schedules").joinpath(f"{name}.yaml")
    if not path.is_file():
        known = (*SCHEDULE_NAMES, _REGULATORY)
        close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise FeeScheduleError(f"unknown fee schedule {name!r}{hint} "
                               f"(known: {', '.join(SCHEDULE_NAMES)})")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise FeeScheduleError(f"fee schedule {name!r}: the file is not a mapping")
    return data


_COMMISSION_FIELDS = {
    "ibkr_fixed": ("per_share", "minimum", "max_fraction"),
    "alpaca": ("per_share", "minimum", "max_fraction"),
    "ibkr_tiered": ("tiers", "minimum", "max_fraction", "clearing_per_share",
                    "exchange_per_share", "nyse_pass_through", "finra_pass_through"),
}
_REGULATORY_FIELDS = {
    "sec_fee": ("per_million",),
    "finra_taf": ("per_share", "maximum"),
    "finra_cat": ("per_share",),
}


@dataclass(frozen=True, eq=False)
class FeeSchedule:
    """One broker's schedule: commission versions and the regulatory parts it passes on.

    Attributes
    ----------
    name
        The schedule's name (its file name).
    commission
        Dated commission rates.
    regulatory
        Dated regulatory fees by part (``sec_fee``, ``finra_taf``, ``finra_cat``).
    round_regulatory_up_to_cent
        Regulatory fees rounded up to the next cent (Alpaca does).
    daily_round_up
        With ``round_regulatory_up_to_cent``: what is rounded is each regulatory part's
        total of a trading day (New York date) across the fills priced with their times,
        not each fill's part (``regulatory_rounding: daily`` in the file; Alpaca's 2026
        schedules). See :class:`~simbroker.models.schedules.AlpacaFee`.
    """

    name: str
    commission: DatedTable
    regulatory: dict[str, DatedTable]
    round_regulatory_up_to_cent: bool = False
    daily_round_up: bool = False

    def version_on(self, as_of: Any = None) -> str:
        """Label of the version effective on ``as_of`` (default the newest), e.g.
        ``"ibkr_fixed@2019-10+sec_fee@2025-05-14+..."``, for reprs and results."""
        parts = [(self.name, self.commission), *self.regulatory.items()]
        out = []
        for label, table in parts:
            i = table.latest() if as_of is None else int(
                table.index(np.array([as_day(as_of)]))[0])
            tag = "none" if i < 0 else table.meta[i].get("version", str(table.effective[i]))
            out.append(f"{label}@{tag}")
        return "+".join(out)

    def sources(self) -> list[dict[str, Any]]:
        """Every version of every part with its effective date, whether it is
        confirmed, its source and note."""
        parts = [(self.name, self.commission), *self.regulatory.items()]
        return [{"part": label, **m} for label, t in parts for m in t.meta]

    @classmethod
    def load(cls, name: str) -> FeeSchedule:
        """Schedule ``name`` with the regulatory parts it names, read from the package
        once (cached: every run of ``fees="ibkr_fixed"`` shares it; its tables are
        read-only)."""
        if not isinstance(name, str):
            raise FeeScheduleError(f"a fee schedule name must be a string, got {name!r}")
        schedule = _load(name.strip().lower())
        return schedule if cls is FeeSchedule else cls(
            schedule.name, schedule.commission, schedule.regulatory,
            schedule.round_regulatory_up_to_cent, schedule.daily_round_up)


@cache
def _load(key: str) -> FeeSchedule:
    """:meth:`FeeSchedule.load` of a normalized name (errors are not cached)."""
    data = load_schedule_data(key)
    if key not in _COMMISSION_FIELDS:
        raise FeeScheduleError(f"{key!r} is not a broker schedule "
                               f"(known: {', '.join(SCHEDULE_NAMES)})")
    commission = _table(key, data.get("versions"), _COMMISSION_FIELDS[key],
                        data.get("before_first", "error"))
    reg_data = load_schedule_data(_REGULATORY).get("components", {})
    regulatory = {}
    for entry in data.get("regulatory", []) or []:
        part, since = _regulatory_entry(key, entry)
        if part not in _REGULATORY_FIELDS or part not in reg_data:
            raise FeeScheduleError(f"{key}: unknown regulatory part {part!r}")
        table = _table(part, reg_data[part].get("versions"), _REGULATORY_FIELDS[part],
                       reg_data[part].get("before_first", "error"))
        regulatory[part] = table if since is None else _passed_from(key, table, since, entry)
    rounding = data.get("regulatory_rounding", "fill")
    if rounding not in ("fill", "daily"):
        raise FeeScheduleError(f"{key}: 'regulatory_rounding' must be fill or daily, got "
                               f"{rounding!r}")
    up = bool(data.get("round_regulatory_up_to_cent", False))
    if rounding == "daily" and not up:
        raise FeeScheduleError(f"{key}: 'regulatory_rounding: daily' needs "
                               f"'round_regulatory_up_to_cent: true'")
    return FeeSchedule(key, commission, regulatory, up, rounding == "daily")


def _regulatory_entry(key: str, entry: Any) -> tuple[Any, np.datetime64 | None]:
    """A ``regulatory:`` item: a part's name, or ``{part: name, from: date, source: url,
    note: ...}`` for a part this broker passes on only from a date."""
    if not isinstance(entry, dict):
        return entry, None
    if "part" not in entry or "from" not in entry or not entry.get("source"):
        raise FeeScheduleError(f"{key}: a regulatory entry given as a mapping needs 'part', "
                               f"'from' and 'source', got {entry!r}")
    return entry["part"], as_day(entry["from"])


def _passed_from(key: str, table: DatedTable, since: np.datetime64,
                 entry: dict[str, Any]) -> DatedTable:
    """``table`` as a broker charges it from ``since`` on: nothing before (index -1), the
    version in effect on ``since`` re-dated to it, the later versions as they are."""
    i = int(table.index(np.array([since]))[0]) if since >= table.effective[0] else -1
    keep = list(range(max(i, 0), len(table.effective)))
    if i < 0:
        keep = [k for k in keep if table.effective[k] >= since]
    if not keep:
        raise FeeScheduleError(f"{key}: {table.label} has no version on or after {since}")
    effective = table.effective[keep].copy()
    effective[0] = max(effective[0], since)
    columns = {f: a[keep] for f, a in table.columns.items()}
    meta = [dict(table.meta[k]) for k in keep]
    meta[0]["effective"] = effective[0].astype(object)  # a date, as the file's
    meta[0]["note"] = (f"{key} passes this fee on from {since} ({entry['source']}"
                       + (f": {entry['note']}" if entry.get("note") else "") + "). "
                       + str(meta[0].get("note", "")))
    for a in (effective, *columns.values()):
        a.setflags(write=False)
    return DatedTable(table.label, effective, columns, tuple(meta), "zero")


def fee_schedule(name: str, as_of: date | datetime | str | np.datetime64 | None = None
                 ) -> ScheduleFee:
    """The fee model of a broker's published schedule.

    Parameters
    ----------
    name
        ``"ibkr_fixed"``, ``"ibkr_tiered"`` or ``"alpaca"`` (case-insensitive).
    as_of
        The date whose versions price a fill that comes without its own date (a plain
        ``fees(side, qty, price)`` call). Default: the newest version of every part.
        Fills priced with ``when=`` (the paper broker, the vectorized runners) always
        pay the rates of their own trade date.

    Raises
    ------
    FeeScheduleError
        For an unknown name (with the closest known names) or a date before the first
        version of a part.

    Examples
    --------
    >>> from simbroker.models import fee_schedule
    >>> m = fee_schedule("ibkr_fixed", as_of="2024-06-03")
    >>> m.fee("buy", 100, 25.0)
    1.0
    >>> fee_schedule("ibkr_fixd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    simbroker.errors.FeeScheduleError: unknown fee schedule 'ibkr_fixd'; did you mean ...
    """
    from simbroker.models.schedules._models import model_class

    schedule = FeeSchedule.load(name)
    day = None if as_of is None else as_day(as_of)
    if day is not None:
        schedule.version_on(day)  # refuse a date before any version now, not at a fill
    return model_class(schedule.name)(schedule, as_of=day)
