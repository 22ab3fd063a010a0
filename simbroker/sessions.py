"""Trading sessions from exchange calendars: regular hours, trading days, session bounds.

:func:`with_calendar` attaches a :class:`Sessions` to a :class:`~simbroker.Bars`: for
every bar and every symbol's calendar, whether the bar is in **regular hours** and which
**trading day** (session) it belongs to. The paper broker and the vectorized runner read
it: ``day`` orders expire at the regular close of the session in which they could first
trade, and orders trade only on regular-hours bars unless submitted with
``extended_hours=True`` (then on any bar of the trading day, pre- and post-market
included, and a ``day`` order lives to the trading day's last bar).

Calendars come from `exchange_calendars <https://github.com/gerrymanoim/exchange_calendars>`_
(an optional extra: ``pip install "simbroker[calendars]"``), named as it names them
(``"XNYS"``, ``"XNAS"``, ``"CMES"``, ``"XLON"``, ... or an alias such as ``"NYSE"``), or
given as an ``ExchangeCalendar`` instance (e.g. your own subclass with other hours).
Holidays, half days (2024-11-29 closes at 13:00 ET on XNYS) and sessions that cross
midnight (CMES opens at 17:00 CT the evening before its session date) come from it.

How a bar is classified (one calendar; times are UTC nanoseconds):

* **Intraday bars** (``interval`` under one day): a bar is *regular* when its open time
  lies in ``[open, close)`` of a session and not in that session's break (lunch breaks on
  Asian exchanges): the fill price of a market order is the bar's open, so the open must
  be a regular-hours price. A bar inside ``[open, close)`` belongs to that session (a
  Sunday 17:00 CT bar on CMES belongs to Monday's session). A bar outside every session
  belongs to the session dated by its **local calendar date** (in the calendar's time
  zone) when that date is a session: 04:00-09:30 ET is pre-market and 16:00-20:00 ET
  post-market of that day's XNYS session. A bar on a date without a session (a weekend,
  a holiday) is in no trading day: nothing ever trades on it.
* **Daily and longer bars**: a bar is regular when its span ``[t, t + interval)``
  overlaps a session's regular hours, and belongs to the session it overlaps most, so a
  daily bar stamped at midnight UTC or at midnight exchange time is that date's session,
  on CMES too.

Without a calendar (``Bars.sessions is None``) simbroker keeps its simpler rule: every
bar is regular hours and a trading day is a calendar date in the broker's
``session_tz`` (UTC by default); :func:`date_sessions` builds that rule as a
:class:`Sessions`, so both rules share one lookup.

Storage is per calendar, not per symbol: symbols that share a calendar share its two
``(T,)`` columns (``regular`` as bool, ``day`` as ``datetime64[D]``).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simbroker.errors import ConfigError, DataError

if TYPE_CHECKING:
    from simbroker.bars import Bars

__all__ = ["CalendarSpec", "Sessions", "date_sessions", "validate_sessions", "with_calendar"]

CalendarSpec = str | Any | Mapping[str, Any]
"""A calendar name (``"XNYS"``), an ``ExchangeCalendar``, or ``{symbol: either}``."""

INSTALL_HINT = 'pip install "simbroker[calendars]"'
NEVER = np.iinfo(np.int64).max
"""The bar index meaning "no such bar" (an order that never expires)."""
_NAT = np.iinfo(np.int64).min  # NaT as int64: "in no trading day"
_FAST_ALL_REGULAR = True
"""Build a calendar's lookups by runs when all its bars are regular and in a day (tests
set it False to compare with the general branch)."""
_DAY_NS = 86_400_000_000_000


def _xcals() -> ModuleType:
    try:
        import exchange_calendars
    except ImportError:
        raise ConfigError(f"exchange calendars need the optional package exchange_calendars: "
                          f"{INSTALL_HINT}", key="calendar") from None
    module: ModuleType = exchange_calendars
    return module


@dataclass(frozen=True, eq=False)
class Sessions:
    """Regular hours and trading days of every bar, per calendar.

    Attributes
    ----------
    calendars : tuple of str, length G
        The calendars' names (``"XNYS"``); ``"date:<tz>"`` for the date rule of
        :func:`date_sessions`.
    columns : ndarray of int64, shape (N,)
        For each symbol (in ``bars.symbols`` order), its calendar's index in
        ``calendars``.
    regular : ndarray of bool, shape (T, G)
        Whether bar ``t`` is in regular hours of calendar ``g``.
    day : ndarray of datetime64[D], shape (T, G)
        The session (trading day) bar ``t`` belongs to on calendar ``g``; ``NaT`` when it
        belongs to none (a weekend or holiday bar).
    tz : tuple of str, length G
        Each calendar's time zone (for messages).
    session_days, session_closes : tuple of ndarray, length G (or empty)
        Each calendar's sessions (datetime64[D]) and their regular closes (int64 ns UTC),
        so a day order's session is found by time (see :meth:`order_window`); empty for
        the date rule, which goes by bars alone.

    Bar indices returned by the lookups refer to the panel's rows; a lookup that finds
    no such bar returns :data:`NEVER`. Build it with :func:`with_calendar`.
    """

    calendars: tuple[str, ...]
    columns: np.ndarray
    regular: np.ndarray
    day: np.ndarray
    tz: tuple[str, ...] = ()
    session_days: tuple[np.ndarray, ...] = ()
    session_closes: tuple[np.ndarray, ...] = ()
    _derived: dict[str, np.ndarray] = field(init=False, repr=False, compare=False,
                                            default_factory=dict)
    # trading-day numbers and days (simbroker.accounts._days), computed once per object
    _days: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        g = len(self.calendars)
        regular = np.asarray(self.regular, np.bool_)
        day = np.asarray(self.day, "datetime64[D]")
        if regular.ndim != 2 or regular.shape[1] != g or day.shape != regular.shape:
            raise DataError(f"sessions need regular and day arrays of shape (bars, {g}); got "
                            f"{regular.shape} and {day.shape}")
        columns = np.asarray(self.columns, np.int64)
        if columns.ndim != 1 or (len(columns) and (columns.min() < 0 or columns.max() >= g)):
            raise DataError(f"sessions columns must index the {g} calendars")
        if bool(np.any(regular & np.isnat(day))):
            raise DataError("a regular-hours bar must belong to a trading day")
        for name, arr in (("regular", regular), ("day", day), ("columns", columns)):
            if arr.flags.writeable:  # never share memory a caller can still write to
                arr = arr.copy()
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "tz", tuple(self.tz) or ("UTC",) * g)
        if self.session_days and not (len(self.session_days) == len(self.session_closes) == g):
            raise DataError(f"sessions need the days and closes of all {g} calendars")
        for arr in (*self.session_days, *self.session_closes):
            arr.setflags(write=False)  # shared with every sub-panel taken from it
        object.__setattr__(self, "calendars", tuple(self.calendars))

    # ------------------------------------------------------------------ shape
    @property
    def n_bars(self) -> int:
        """Number of bar times ``T``."""
        return int(self.regular.shape[0])

    @property
    def n_symbols(self) -> int:
        """Number of symbols ``N``."""
        return len(self.columns)

    def regular_hours(self) -> np.ndarray:
        """``(T, N)`` bool: whether each bar is in its symbol's regular hours."""
        out: np.ndarray = self.regular[:, self.columns]
        return out

    def trading_days(self) -> np.ndarray:
        """``(T, N)`` datetime64[D]: each bar's trading day on its symbol's calendar."""
        out: np.ndarray = self.day[:, self.columns]
        return out

    def take(self, rows: slice, columns: list[int] | None = None) -> Sessions:
        """The sessions of a sub-panel: rows ``rows`` and symbol columns ``columns``."""
        cols = self.columns if columns is None else self.columns[columns]
        used = np.unique(cols)
        remap = np.full(len(self.calendars), -1, np.int64)
        remap[used] = np.arange(len(used))
        keep = used.tolist()
        return Sessions(calendars=tuple(self.calendars[g] for g in keep),
                        columns=remap[cols], regular=self.regular[rows][:, used],
                        day=self.day[rows][:, used], tz=tuple(self.tz[g] for g in keep),
                        session_days=tuple(self.session_days[g] for g in keep)
                        if self.session_days else (),
                        session_closes=tuple(self.session_closes[g] for g in keep)
                        if self.session_closes else ())

    def __repr__(self) -> str:
        regular = int(self.regular.sum())
        return (f"Sessions({', '.join(self.calendars)}; {self.n_bars} bars x "
                f"{self.n_symbols} symbols, {regular} regular-hours bar-calendar cells)")

    # ---------------------------------------------------------------- lookups
    def _arrays(self) -> dict[str, np.ndarray]:
        """Precomputed bar lookups, each ``(T + 1, G)`` (row ``T`` is a sentinel)."""
        d = self._derived
        if d:
            return d
        n_t, g = self.regular.shape
        names = ("first_regular", "last_regular", "last_bar", "next_regular", "next_in_day")
        out = {k: np.empty((n_t + 1, g), np.int64) for k in names}
        for k in ("first_regular", "last_regular", "last_bar"):
            out[k][n_t] = NEVER
        out["next_regular"][n_t] = n_t
        out["next_in_day"][n_t] = n_t
        idx = np.arange(n_t, dtype=np.int64)
        for j in range(g):
            reg = self.regular[:, j]
            code = self.day[:, j].view(np.int64)
            inday = code != _NAT
            if n_t:
                start = np.ones(n_t, np.bool_)
                start[1:] = code[1:] != code[:-1]
                starts = np.flatnonzero(start)
                ends = np.append(starts[1:] - 1, n_t - 1)
                if _FAST_ALL_REGULAR and reg.all() and inday.all():
                    # Every bar regular and in a day (date_sessions, the default): each
                    # lookup is its day's first or last bar, or the bar itself. The
                    # general branch's answers without its five wheres and three takes.
                    lengths = ends - starts + 1
                    out["last_bar"][:n_t, j] = out["last_regular"][:n_t, j] = \
                        np.repeat(ends, lengths)
                    out["first_regular"][:n_t, j] = np.repeat(starts, lengths)
                    out["next_regular"][:n_t, j] = out["next_in_day"][:n_t, j] = idx
                    continue
                run = np.cumsum(start) - 1
                last_reg = np.maximum.reduceat(np.where(reg, idx, -1), starts)[run]
                first_reg = np.minimum.reduceat(np.where(reg, idx, n_t), starts)[run]
                out["last_bar"][:n_t, j] = np.where(inday, ends[run], NEVER)
                out["last_regular"][:n_t, j] = np.where(inday & (last_reg >= 0), last_reg,
                                                        NEVER)
                out["first_regular"][:n_t, j] = np.where(inday & (first_reg < n_t),
                                                         first_reg, NEVER)
                out["next_regular"][:n_t, j] = np.minimum.accumulate(
                    np.where(reg, idx, n_t)[::-1])[::-1]
                out["next_in_day"][:n_t, j] = np.minimum.accumulate(
                    np.where(inday, idx, n_t)[::-1])[::-1]
        for a in out.values():
            a.setflags(write=False)
        all_regular = np.asarray(self.regular.all(axis=1), np.bool_)
        all_regular.setflags(write=False)
        out["all_regular"] = all_regular
        in_day = ~np.isnat(self.day)
        in_day.setflags(write=False)
        out["in_day"] = in_day
        d.update(out)
        return d

    def close_bar(self, t: Any, column: Any, extended: Any = False) -> Any:
        """Last bar on which an order that can first trade on bar ``t`` may trade.

        For a regular-hours order: the last regular bar of the first session with a
        regular bar at or after ``t`` (a day order placed after the close waits for the
        next session, as at the venues). With ``extended``: the last bar of the trading
        day of the first bar at or after ``t`` that is in one. :data:`NEVER` when there is
        no such bar. ``t``, ``column`` (symbol column) and ``extended`` may be arrays.
        """
        a = self._arrays()
        if type(t) is int and type(column) is int and type(extended) is bool:
            # One order (the paper broker's case): the same lookups on Python ints.
            g = self.columns.item(column)
            t = min(t, self.n_bars)
            if extended:
                return a["last_bar"].item(a["next_in_day"].item(t, g), g)
            return a["last_regular"].item(a["next_regular"].item(t, g), g)
        g = self.columns[column]
        t = np.minimum(t, self.n_bars)
        regular = a["last_regular"][a["next_regular"][t, g], g]
        if not np.any(extended):
            return regular
        ext = a["last_bar"][a["next_in_day"][t, g], g]
        return np.where(extended, ext, regular)

    def order_window(self, now_ns: Any, first: Any, column: Any,
                     extended: bool = False) -> tuple[Any, Any]:
        """``(first_bar, expire_bar)`` of a ``day`` order accepted at ``now_ns`` that can
        first trade on bar ``first`` (the bar after the one that just closed).

        A regular-hours order belongs to the first session whose regular close is after
        ``now_ns`` (an order placed after the close belongs to the next session, as at
        the venues): it expires after that session's last regular bar. When no regular
        bar of that session is left in the data (the file skips to a later session), the
        order can never trade: ``first_bar`` is :data:`NEVER` and it expires after bar
        ``first``. An extended-hours order, and any order under the date rule, goes by
        bars: ``(first, close_bar(first, column, extended))``. Arrays broadcast.
        """
        expire = self.close_bar(first, column, extended)
        if extended or not self.session_closes:
            return first, expire
        a = self._arrays()
        n_t = self.n_bars
        g = np.broadcast_to(self.columns[column], np.shape(expire))
        now = np.broadcast_to(now_ns, np.shape(expire))
        nxt = a["next_regular"][np.minimum(first, n_t), g]
        day = self.day.view(np.int64)
        ok = np.zeros(np.shape(expire), np.bool_)
        for k in np.unique(g).tolist():
            sel = g == k
            closes, days = self.session_closes[k], self.session_days[k].view(np.int64)
            j = np.searchsorted(closes, now[sel], side="right")
            want = days[np.minimum(j, len(days) - 1)]
            n = nxt[sel]
            got = day[np.minimum(n, n_t - 1), k] if n_t else n
            ok[sel] = (j < len(days)) & (n < n_t) & (got == want)
        first_bar = np.where(ok, first, NEVER)
        expire_bar = np.where(ok, expire, first)
        if np.ndim(expire_bar):
            return first_bar, expire_bar
        return int(first_bar), int(expire_bar)

    def reachable(self, close_ns: np.ndarray) -> np.ndarray:
        """``(T, N)`` bool: whether a regular-hours day order placed at the close of bar
        ``t - 1`` (``close_ns[t - 1]``) may trade on bar ``t`` at all (its session is not
        over: see :meth:`order_window`). Row 0 is True."""
        n_t = self.n_bars
        out = np.ones((n_t, len(self.calendars)), np.bool_)
        if n_t > 1 and self.session_closes:
            first = np.arange(1, n_t, dtype=np.int64)
            for k in range(len(self.calendars)):
                col = int(np.flatnonzero(self.columns == k)[0])
                fb, _ = self.order_window(close_ns[:-1], first, col)
                out[1:, k] = fb != NEVER
        result: np.ndarray = out[:, self.columns]
        return result

    def open_bar(self, t: Any, column: Any) -> Any:
        """Index of the first bar at or after ``t`` that opens a session's regular hours.

        The first regular bar of its session (an opening auction's bar); :data:`NEVER`
        when there is none. ``t`` and ``column`` may be arrays.
        """
        a = self._arrays()
        g = self.columns[column]
        n_t = self.n_bars
        n = a["next_regular"][np.minimum(t, n_t), g]  # n_t: none
        first = a["first_regular"][n, g]
        # Not the session's first regular bar: the first regular bar after its last one.
        after = np.minimum(a["last_regular"][n, g], n_t - 1) + 1
        later = a["next_regular"][after, g]
        out = np.where(n >= n_t, NEVER, np.where(first == n, n,
                                                 np.where(later >= n_t, NEVER, later)))
        return out if np.ndim(out) else int(out)


# ------------------------------------------------------------------ building
def with_calendar(bars: Bars, calendar: CalendarSpec) -> Bars:
    """``bars`` with :class:`Sessions` from exchange calendars attached (a new ``Bars``).

    Parameters
    ----------
    bars
        The panel.
    calendar
        One calendar for every symbol: an ``exchange_calendars`` name (``"XNYS"``,
        ``"CMES"``, an alias like ``"NYSE"``) or an ``ExchangeCalendar`` instance; or a
        mapping ``{symbol: calendar}`` naming one for every symbol (per-symbol
        calendars, e.g. ``{"ES": "CMES", "SPY": "XNYS"}``).

    Raises
    ------
    ConfigError
        ``exchange_calendars`` is not installed (with the install hint), or a calendar
        name is unknown (with the closest names).
    DataError
        The mapping leaves symbols out or names symbols not in the bars.

    Examples
    --------
    >>> import simbroker
    >>> from simbroker.sessions import with_calendar
    >>> bars = simbroker.sample_bars().select(["AAPL"], "2012-01-03", "2012-01-10")
    >>> with_calendar(bars, "XNYS").sessions.regular_hours().all()
    np.True_
    """
    return replace(bars, sessions=_sessions_for(bars, calendar))


def _sessions_for(bars: Bars, calendar: CalendarSpec) -> Sessions:
    symbols = bars.symbols
    if isinstance(calendar, Mapping):
        unknown = [s for s in calendar if s not in bars]
        if unknown:
            raise DataError(f"calendar mapping names symbols that are not in the bars: "
                            f"{', '.join(map(repr, unknown[:10]))}")
        missing = [s for s in symbols if s not in calendar]
        if missing:
            raise DataError(f"calendar mapping gives no calendar for "
                            f"{', '.join(map(repr, missing[:10]))}"
                            + (" ..." if len(missing) > 10 else "")
                            + "; name one for every symbol")
        per_symbol = [calendar[s] for s in symbols]
    else:
        per_symbol = [calendar] * len(symbols)
    keys: dict[Any, int] = {}
    specs: list[Any] = []
    columns = np.empty(len(symbols), np.int64)
    for j, spec in enumerate(per_symbol):
        key = _calendar_key(spec)
        if key not in keys:
            keys[key] = len(specs)
            specs.append(spec)
        columns[j] = keys[key]
    ts = bars.ts_ns
    iv = int(bars.interval.astype(np.int64))
    regular = np.zeros((len(ts), len(specs)), np.bool_)
    day = np.full((len(ts), len(specs)), np.datetime64("NaT"), "datetime64[D]")
    names, tzs, days, closes = [], [], [], []
    for g, spec in enumerate(specs):
        cal = _calendar(spec, ts, iv)
        names.append(str(getattr(cal, "name", spec)))
        tzs.append(str(cal.tz))
        regular[:, g], day[:, g] = _classify(ts, iv, cal)
        _, close_ns, labels, _, _ = _calendar_arrays(cal)
        days.append(labels)
        closes.append(close_ns)
    return Sessions(calendars=tuple(names), columns=columns, regular=regular, day=day,
                    tz=tuple(tzs), session_days=tuple(days), session_closes=tuple(closes))


def _calendar_key(spec: Any) -> Any:
    if isinstance(spec, str):
        return spec.strip().upper()
    if hasattr(spec, "opens") and hasattr(spec, "closes") and hasattr(spec, "tz"):
        return ("instance", id(spec))
    raise ConfigError(f"a calendar is a name such as 'XNYS' or an ExchangeCalendar, got "
                      f"{type(spec).__name__} {spec!r:.60}", key="calendar")


@functools.lru_cache(maxsize=32)
def _named_calendar(name: str, start: str, end: str) -> Any:
    xc = _xcals()
    try:
        with _quiet():
            return xc.get_calendar(name, start=start, end=end)
    except xc.errors.InvalidCalendarName:
        names = xc.get_calendar_names(include_aliases=True)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else (
            "; exchange_calendars.get_calendar_names() lists them")
        raise ConfigError(f"unknown calendar {name!r}{hint}", key="calendar") from None


def _calendar(spec: Any, ts: np.ndarray, iv: int) -> Any:
    if not isinstance(spec, str):
        return spec
    name = spec.strip().upper()
    if len(ts) == 0:
        return _named_calendar(name, "2000-01-01", "2000-12-31")
    lo = pd.Timestamp(int(ts[0]) - 7 * _DAY_NS).year
    hi = pd.Timestamp(int(ts[-1]) + iv + 7 * _DAY_NS).year
    return _named_calendar(name, f"{lo}-01-01", f"{hi}-12-31")  # whole years: cache hits


def _ns(values: Any) -> np.ndarray:
    """A datetime series/index (tz-aware UTC or naive UTC) as int64 ns; NaT -> int64 min."""
    arr = pd.DatetimeIndex(values)
    if arr.tz is not None:
        arr = arr.tz_convert("UTC").tz_localize(None)
    out: np.ndarray = arr.as_unit("ns").asi8
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """exchange_calendars trips pandas deprecation warnings in its own code: not the user's
    to see (and simbroker's tests turn warnings into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _calendar_arrays(cal: Any) -> tuple[np.ndarray, ...]:
    with _quiet():
        opens, closes = _ns(cal.opens), _ns(cal.closes)
        labels = (pd.DatetimeIndex(cal.opens.index).tz_localize(None).values
                  .astype("datetime64[D]"))
        nat = np.full_like(opens, _NAT)
        bs = _ns(cal.break_starts) if getattr(cal, "break_starts", None) is not None else nat
        be = _ns(cal.break_ends) if getattr(cal, "break_ends", None) is not None else nat
    return opens, closes, labels, bs, be


def _classify(ts: np.ndarray, iv: int, cal: Any) -> tuple[np.ndarray, np.ndarray]:
    """Regular-hours flags and trading days of bars opening at ``ts`` (see the module)."""
    opens, closes, labels, bs, be = _calendar_arrays(cal)
    n_t = len(ts)
    nat = np.datetime64("NaT", "D")
    if n_t == 0 or len(opens) == 0:
        return np.zeros(n_t, np.bool_), np.full(n_t, nat, "datetime64[D]")
    if iv >= _DAY_NS:
        end = ts + iv
        lo = np.searchsorted(closes, ts, side="right")  # first session closing after t
        hi = np.searchsorted(opens, end, side="left")   # sessions [lo, hi) overlap
        best = np.full(n_t, -1, np.int64)
        best_ov = np.zeros(n_t, np.int64)
        for k in range(int(np.max(hi - lo, initial=0))):
            s = lo + k
            ok = s < hi
            sc = np.minimum(s, len(opens) - 1)
            ov = np.minimum(closes[sc], end) - np.maximum(opens[sc], ts)
            better = ok & (ov > best_ov)
            best = np.where(better, s, best)
            best_ov = np.where(better, ov, best_ov)
        regular = best >= 0
        day = np.where(regular, labels[np.maximum(best, 0)], nat)
        return regular, day
    s = np.searchsorted(opens, ts, side="right") - 1
    sc = np.maximum(s, 0)
    within = (s >= 0) & (ts < closes[sc])
    in_break = (bs[sc] != _NAT) & (ts >= bs[sc]) & (ts < be[sc])
    regular = within & ~in_break
    day = np.where(within, labels[sc], nat)
    # Outside every session: the session dated by the bar's local date, if there is one.
    out = np.flatnonzero(~within)
    if len(out):
        local = (pd.DatetimeIndex(ts[out].view("datetime64[ns]")).tz_localize("UTC")
                 .tz_convert(str(cal.tz)).tz_localize(None).values.astype("datetime64[D]"))
        k = np.minimum(np.searchsorted(labels, local), len(labels) - 1)
        day[out] = np.where(labels[k] == local, local, nat)
    # Trading days never go back in time (a guard against odd calendars).
    code = day.view(np.int64)
    inday = code != _NAT
    if inday.any():
        mono = np.maximum.accumulate(np.where(inday, code, _NAT))
        day = np.where(inday, mono.view("datetime64[D]"), nat)
    return regular, day


_DATE_SESSIONS: weakref.WeakKeyDictionary[Bars, dict[str, Sessions]] = \
    weakref.WeakKeyDictionary()


def date_sessions(bars: Bars, session_tz: str = "UTC") -> Sessions:
    """The rule without a calendar: every bar regular, trading day = date in ``session_tz``.

    Cached per ``bars`` and time zone (a sweep builds many brokers on one panel).
    """
    cache = _DATE_SESSIONS.setdefault(bars, {})
    got = cache.get(session_tz)
    if got is None:
        days = (bars.index.tz_convert(session_tz).tz_localize(None).values
                .astype("datetime64[D]"))
        n_t = len(days)
        got = Sessions(calendars=(f"date:{session_tz}",),
                       columns=np.zeros(bars.n_symbols, np.int64),
                       regular=np.ones((n_t, 1), np.bool_), day=days.reshape(n_t, 1),
                       tz=(session_tz,))
        cache[session_tz] = got
    return got


# ---------------------------------------------------------------- validation
def validate_sessions(bars: Bars, calendar: CalendarSpec | None = None, *,
                      extended_hours: bool = True, show: int = 5) -> list[str]:
    """Problems of ``bars`` against exchange calendars, one line each (empty: none).

    For each symbol, between its first and last bar:

    * **missing sessions**: calendar sessions with no regular-hours bar;
    * **missing bars** (intraday bars only): expected bar opens, every ``interval`` from
      each session's open to its close (breaks excluded), with no bar, in sessions that
      have some;
    * **bars outside sessions**: bars in no trading day (a weekend or a holiday); with
      ``extended_hours=False`` also pre- and post-market bars.

    Each line gives the count and the first ``show`` dates or times (exchange time).

    Parameters
    ----------
    bars
        The panel.
    calendar
        As for :func:`with_calendar`; ``None`` uses the sessions the bars carry.
    extended_hours
        Whether bars outside regular hours but inside a trading day are expected.
    show
        How many examples each line lists.
    """
    sessions = bars.sessions if calendar is None else _sessions_for(bars, calendar)
    if sessions is None or sessions.calendars[0].startswith("date:"):
        raise ConfigError("validate_sessions needs a calendar (calendar='XNYS') or bars "
                          "with sessions attached (with_calendar)", key="calendar")
    ts = bars.ts_ns
    iv = int(bars.interval.astype(np.int64))
    problems: list[str] = []
    present_all = ~np.isnan(bars.close)
    for j, symbol in enumerate(bars.symbols):
        g = int(sessions.columns[j])
        name, tz = sessions.calendars[g], sessions.tz[g]
        spec = (calendar[symbol] if isinstance(calendar, Mapping)
                else name if calendar is None else calendar)
        rows = np.flatnonzero(present_all[:, j])
        if not len(rows):
            continue
        head = f"{symbol} ({name})"
        day = sessions.day[rows, g]
        reg = sessions.regular[rows, g]
        outside = np.isnat(day) if extended_hours else ~reg
        if outside.any():
            where = "any trading day" if extended_hours else "regular hours"
            problems.append(f"{head}: {_count(int(outside.sum()), 'bar')} outside {where}: "
                            + _times(ts[rows[outside]], tz, show))
        first, last = ts[rows[0]], ts[rows[-1]] + iv
        cal = _calendar(spec, ts, iv)
        opens, closes, labels, bs, be = _calendar_arrays(cal)
        span = np.flatnonzero((closes > first) & (opens < last))
        if not len(span):
            continue
        have = np.unique(day[reg].view(np.int64)).view("datetime64[D]")
        missing = span[~np.isin(labels[span], have)]
        if len(missing):
            problems.append(f"{head}: {_count(len(missing), 'missing session')} of "
                            f"{len(span):,}: " + _dates(labels[missing], show))
        if iv < _DAY_NS:
            kept = span[np.isin(labels[span], have)]
            expected = _expected_opens(opens[kept], closes[kept], bs[kept], be[kept], iv)
            expected = expected[(expected >= first) & (expected < last)]
            gaps = expected[~np.isin(expected, ts[rows])]
            if len(gaps):
                problems.append(
                    f"{head}: {_count(len(gaps), 'missing bar')} in "
                    f"{_count(len(np.unique(_day_of(gaps, tz))), 'session')} (a bar every "
                    f"{pd.Timedelta(iv)} from the open to the close): "
                    + _times(gaps, tz, show))
    return problems


def _expected_opens(opens: np.ndarray, closes: np.ndarray, bs: np.ndarray, be: np.ndarray,
                    iv: int) -> np.ndarray:
    counts = np.maximum(-(-(closes - opens) // iv), 0)
    total = int(counts.sum())
    start = np.cumsum(counts) - counts
    k = np.arange(total, dtype=np.int64) - np.repeat(start, counts)
    out = np.repeat(opens, counts) + k * iv
    b0, b1 = np.repeat(bs, counts), np.repeat(be, counts)
    in_break = (b0 != _NAT) & (out >= b0) & (out < b1)
    result: np.ndarray = out[~in_break]
    return result


def _day_of(ns: np.ndarray, tz: str) -> np.ndarray:
    out: np.ndarray = (pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")
                       .tz_convert(tz).tz_localize(None).values.astype("datetime64[D]"))
    return out


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _times(ns: np.ndarray, tz: str, show: int) -> str:
    idx = pd.DatetimeIndex(ns[:show].view("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
    text = ", ".join(t.strftime("%Y-%m-%d %H:%M %Z") for t in idx)
    return text + (", ..." if len(ns) > show else "")


def _dates(days: np.ndarray, show: int) -> str:
    text = ", ".join(str(d) for d in days[:show])
    return text + (", ..." if len(days) > show else "")
