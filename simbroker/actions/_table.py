"""``CorporateActions``: an immutable, validated table of splits and cash dividends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simbroker.errors import DataError

__all__ = ["DIVIDEND", "KINDS", "SPLIT", "CorporateActions"]

SPLIT = 0
DIVIDEND = 1
#: Action kinds by code, as the ``kind`` column names them.
KINDS: tuple[str, ...] = ("split", "dividend")
_MAX_PROBLEMS = 10

# Column names recognised by from_frame/read (lower-cased, spaces and dashes as "_").
_SYMBOL = ("symbol", "ticker")
_EX = ("ex_date", "exdate", "date", "timestamp")
_PAY = ("pay_date", "paydate", "payment_date")
_DIV = ("dividend", "dividends", "cash_dividend")
_SPLIT = ("split", "splits", "stock_splits", "stock_split", "split_factor", "split_ratio")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class CorporateActions:
    """Splits and cash dividends per symbol: one row per action, sorted, read-only.

    Attributes
    ----------
    symbol : ndarray of str (object), shape (K,)
    ex_date : ndarray of datetime64[D], shape (K,)
        The ex-date: the first trading day on which the stock trades without the
        dividend, or in post-split shares. A calendar date in ``tz``.
    kind : ndarray of int8, shape (K,)
        ``0`` split, ``1`` dividend (see :attr:`kinds`).
    value : ndarray of float64, shape (K,)
        A split's ratio of new to old shares (``7.0`` for a 7:1 split, ``0.1`` for a
        1:10 reverse split); a dividend's cash per share (in the shares of its ex-date).
    pay_date : ndarray of datetime64[D], shape (K,)
        When a dividend's cash is credited (debited, for a short). Defaults to the
        ex-date; equals the ex-date for splits.
    tz : str
        The time zone whose calendar dates ``ex_date`` and ``pay_date`` are: an action
        dated ``D`` takes effect before the first bar whose open, in ``tz``, falls on
        ``D`` or later. Default ``"UTC"``; use the exchange's zone
        (``"America/New_York"``) for intraday bars.
    prices : {"raw", "adjusted"} or None
        What the bars' prices are, as :func:`attach_actions` was told or found (``None``
        until attached).
    adjust : {"splits", "all"} or None
        Which adjusted prices strategies' indicators are computed on (see
        :func:`attach_actions`).

    Rows are sorted by ex-date, then symbol, then kind (splits before dividends): a
    dividend sharing its ex-date with a split is paid per post-split share.

    Build with :meth:`from_frame`, :meth:`read` or :meth:`from_rows`; every constructor
    validates and raises :class:`~simbroker.errors.DataError` naming the row and field.
    """

    symbol: np.ndarray
    ex_date: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    pay_date: np.ndarray
    tz: str = "UTC"
    prices: str | None = None
    adjust: str | None = None
    _symbols: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sym = np.asarray([str(s) for s in np.asarray(self.symbol, dtype=object).ravel()],
                         dtype=object)
        ex = np.asarray(self.ex_date, dtype="datetime64[D]").ravel()
        kind = np.asarray(self.kind, dtype=np.int8).ravel()
        value = np.asarray(self.value, dtype=np.float64).ravel()
        pay = np.asarray(self.pay_date, dtype="datetime64[D]").ravel()
        k = len(sym)
        if not (len(ex) == len(kind) == len(value) == len(pay) == k):
            raise DataError("corporate actions: symbol, ex_date, kind, value and pay_date "
                            "must have the same length")
        _validate(sym, ex, kind, value, pay, np.arange(k))
        order = np.lexsort((kind, sym.astype(str) if k else sym, ex))
        for name, arr in (("symbol", sym), ("ex_date", ex), ("kind", kind),
                          ("value", value), ("pay_date", pay)):
            object.__setattr__(self, name, _readonly(arr[order].copy()))
        if self.prices not in (None, "raw", "adjusted"):
            raise DataError(f"prices must be 'raw', 'adjusted' or None, got {self.prices!r}")
        if self.adjust not in (None, "splits", "all"):
            raise DataError(f"adjust must be 'splits', 'all' or None, got {self.adjust!r}")
        try:
            pd.Timestamp("2000-01-01").tz_localize(self.tz)
        except Exception:
            raise DataError(f"corporate actions: unknown time zone tz={self.tz!r}") from None
        object.__setattr__(self, "_symbols", tuple(sorted(set(self.symbol.tolist()))))

    # ------------------------------------------------------------ constructors
    @classmethod
    def empty(cls, *, tz: str = "UTC") -> CorporateActions:
        """A table with no actions."""
        return cls(symbol=np.array([], object), ex_date=np.array([], "datetime64[D]"),
                   kind=np.array([], np.int8), value=np.array([], np.float64),
                   pay_date=np.array([], "datetime64[D]"), tz=tz)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, symbol: str | None = None,
                   tz: str = "UTC") -> CorporateActions:
        """Build from a DataFrame, one row per date (and symbol).

        Parameters
        ----------
        frame
            Columns (case-insensitive): ``symbol`` (or pass ``symbol=``), ``ex_date``
            (also ``date``; or a DatetimeIndex), and ``dividend`` (cash per share) and/or
            ``split`` (also ``stock splits``, ``split_factor``: new shares per old, 7.0
            for 7:1); optional ``pay_date``. A row with a dividend > 0 is a dividend, a
            split ratio not in {0, 1, NaN} a split (yfinance writes 0 on rows without
            one); a row may hold both. Alternatively, long form with ``kind``
            (``"split"``/``"dividend"``) and ``value`` columns.
        symbol
            The symbol of every row, for a frame without a symbol column.
        tz
            The time zone of the dates (see :class:`CorporateActions`). Tz-aware
            timestamps are converted to it, then their date is taken.

        Raises
        ------
        DataError
            A missing column, or rows with a bad value: each problem names the row
            (0-based position in ``frame``), the symbol and the field.
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"corporate actions must be a DataFrame, got {type(frame).__name__}")
        cols = {_canon(c): c for c in frame.columns}
        index_dates = isinstance(frame.index, pd.DatetimeIndex)
        n = len(frame)
        ex_col = _first(cols, _EX)
        if ex_col is None and not index_dates:
            raise DataError("corporate actions need an 'ex_date' column (or a DatetimeIndex); "
                            f"columns are {', '.join(map(str, frame.columns)) or 'none'}")
        ex_raw: Any = frame[ex_col] if ex_col is not None else frame.index.to_series()
        sym_col = _first(cols, _SYMBOL)
        if sym_col is None:
            if symbol is None:
                raise DataError("corporate actions need a 'symbol' column, or symbol='XYZ' "
                                f"for a single-symbol frame; columns are "
                                f"{', '.join(map(str, frame.columns))}")
            syms = np.full(n, str(symbol), dtype=object)
        else:
            syms = frame[sym_col].to_numpy(dtype=object)
        problems: list[dict[str, Any]] = []
        bad_sym = [i for i in range(n) if not isinstance(syms[i], str) or not syms[i].strip()]
        for i in bad_sym[:_MAX_PROBLEMS]:
            problems.append(_problem(i, None, "symbol", f"not a symbol: {syms[i]!r}"))
        ex = _dates(ex_raw, tz, "ex_date", problems)
        pay_col = _first(cols, _PAY)
        pay = (_dates(frame[pay_col], tz, "pay_date", problems, optional=True)
               if pay_col is not None else np.full(n, np.datetime64("NaT"), "datetime64[D]"))
        if problems:
            raise DataError("bad corporate action rows in DataFrame", problems=problems)
        rows = np.arange(n)
        kind_col, value_col = cols.get("kind"), cols.get("value")
        if kind_col is not None and value_col is not None:
            kinds_raw = frame[kind_col].astype(str).str.strip().str.lower().to_numpy()
            unknown = [i for i in range(n) if kinds_raw[i] not in KINDS]
            if unknown:
                raise DataError("bad corporate action rows in DataFrame", problems=[
                    _problem(i, syms[i], "kind",
                             f"kind must be 'split' or 'dividend', got {kinds_raw[i]!r}")
                    for i in unknown[:_MAX_PROBLEMS]])
            kind = np.where(kinds_raw == "split", SPLIT, DIVIDEND).astype(np.int8)
            value = _numbers(frame[value_col], "value", syms, problems)
            if problems:
                raise DataError("bad corporate action rows in DataFrame", problems=problems)
            return cls._checked(syms, ex, kind, value, pay, rows, tz)
        div_col, split_col = _first(cols, _DIV), _first(cols, _SPLIT)
        if div_col is None and split_col is None:
            raise DataError("corporate actions need a 'dividend' and/or 'split' column (or "
                            "'kind' and 'value'); columns are "
                            f"{', '.join(map(str, frame.columns))}")
        div = (_numbers(frame[div_col], "dividend", syms, problems)
               if div_col is not None else None)
        split = (_numbers(frame[split_col], "split", syms, problems)
                 if split_col is not None else None)
        if problems:
            raise DataError("bad corporate action rows in DataFrame", problems=problems)
        return cls._from_columns(syms, ex, pay, div, split, rows, tz)

    @classmethod
    def read(cls, path: str | Path, *, symbol: str | None = None,
             tz: str = "UTC") -> CorporateActions:
        """Read a CSV or Parquet file of actions (columns as for :meth:`from_frame`)."""
        p = Path(path)
        if not p.exists():
            raise DataError(f"corporate actions file not found: {p}")
        try:
            if p.suffix.lower() in (".parquet", ".pq"):
                frame = pd.read_parquet(p)
            else:
                frame = pd.read_csv(p)
        except Exception as exc:  # pandas/pyarrow raise many types for a bad file
            raise DataError(f"cannot read corporate actions from {p}: {exc}") from None
        try:
            return cls.from_frame(frame, symbol=symbol, tz=tz)
        except DataError as exc:
            raise DataError(f"{p}: {exc}", problems=None) from None

    @classmethod
    def from_rows(cls, symbols: Sequence[str] | np.ndarray, timestamps_ns: np.ndarray, *,
                  dividend: np.ndarray | None = None, split: np.ndarray | None = None,
                  tz: str = "UTC") -> CorporateActions:
        """Actions from per-row arrays, as a loader has them next to the bars.

        Parameters
        ----------
        symbols
            The symbol of each row.
        timestamps_ns
            Each row's bar timestamp, int64 nanoseconds since the epoch (UTC); its date
            in ``tz`` is the ex-date.
        dividend, split
            Per-row cash dividend and split ratio (new/old shares). Rows with a dividend
            > 0 or a split not in {0, 1, NaN} become actions; a negative or non-finite
            dividend, or a negative split, is an error naming the row.
        tz
            See :class:`CorporateActions`.
        """
        syms = np.asarray(symbols, dtype=object).ravel()
        ts = np.asarray(timestamps_ns, dtype=np.int64).ravel()
        if len(syms) != len(ts):
            raise DataError(f"from_rows: {len(syms)} symbols for {len(ts)} timestamps")
        ex = _ns_to_dates(ts, tz)
        n = len(ts)
        div = None if dividend is None else np.asarray(dividend, np.float64).ravel()
        spl = None if split is None else np.asarray(split, np.float64).ravel()
        for name, arr in (("dividend", div), ("split", spl)):
            if arr is not None and len(arr) != n:
                raise DataError(f"from_rows: {name} has {len(arr)} rows, expected {n}")
        pay = np.full(n, np.datetime64("NaT"), "datetime64[D]")
        return cls._from_columns(syms, ex, pay, div, spl, np.arange(n), tz)

    @classmethod
    def _from_columns(cls, syms: np.ndarray, ex: np.ndarray, pay: np.ndarray,
                      div: np.ndarray | None, split: np.ndarray | None, rows: np.ndarray,
                      tz: str) -> CorporateActions:
        problems: list[dict[str, Any]] = []
        parts: list[tuple[np.ndarray, int]] = []
        if div is not None:
            bad = ~(np.isnan(div) | (np.isfinite(div) & (div >= 0)))
            for i in np.flatnonzero(bad)[:_MAX_PROBLEMS].tolist():
                problems.append(_problem(int(rows[i]), syms[i], "dividend",
                                         f"a dividend must be >= 0 cash per share, got "
                                         f"{div[i]!r}"))
            parts.append((np.flatnonzero(np.nan_to_num(div, nan=0.0) > 0), DIVIDEND))
        if split is not None:
            bad = ~(np.isnan(split) | (np.isfinite(split) & (split >= 0)))
            for i in np.flatnonzero(bad)[:_MAX_PROBLEMS].tolist():
                problems.append(_problem(int(rows[i]), syms[i], "split",
                                         f"a split ratio must be > 0 new shares per old "
                                         f"(0 or 1 = none), got {split[i]!r}"))
            s = np.nan_to_num(split, nan=0.0)
            parts.append((np.flatnonzero((s != 0) & (s != 1) & np.isfinite(s) & (s > 0)),
                          SPLIT))
        if problems:
            raise DataError("bad corporate action rows", problems=problems)
        take = np.concatenate([p for p, _ in parts]) if parts else np.array([], np.int64)
        kind = np.concatenate([np.full(len(p), k, np.int8) for p, k in parts]) \
            if parts else np.array([], np.int8)
        value = np.concatenate([(div if k == DIVIDEND else split)[p]  # type: ignore[index]
                                for p, k in parts]) if parts else np.array([], np.float64)
        return cls._checked(syms[take], ex[take], kind, value, pay[take], rows[take], tz)

    @classmethod
    def _checked(cls, syms: np.ndarray, ex: np.ndarray, kind: np.ndarray, value: np.ndarray,
                 pay: np.ndarray, rows: np.ndarray, tz: str) -> CorporateActions:
        _validate(syms, ex, kind, value, pay, rows)
        pay = np.where(np.isnat(pay) | (kind == SPLIT), ex, pay)
        return cls(symbol=syms, ex_date=ex, kind=kind, value=value, pay_date=pay, tz=tz)

    @classmethod
    def concat(cls, tables: Iterable[CorporateActions]) -> CorporateActions:
        """One table of several (e.g. a file's actions and a loader's columns).

        They must share one ``tz``; an action given twice (same symbol, ex-date and kind)
        is refused, naming it.
        """
        parts = list(tables)
        if not parts:
            return cls.empty()
        tzs = {p.tz for p in parts}
        if len(tzs) > 1:
            raise DataError(f"corporate action tables in different time zones: "
                            f"{', '.join(sorted(tzs))}")
        return cls(symbol=np.concatenate([p.symbol for p in parts]),
                   ex_date=np.concatenate([p.ex_date for p in parts]),
                   kind=np.concatenate([p.kind for p in parts]),
                   value=np.concatenate([p.value for p in parts]),
                   pay_date=np.concatenate([p.pay_date for p in parts]), tz=parts[0].tz)

    # ---------------------------------------------------------------- views
    def __len__(self) -> int:
        return len(self.symbol)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols with at least one action, sorted."""
        return self._symbols

    @property
    def kinds(self) -> np.ndarray:
        """``kind`` as strings (``"split"``/``"dividend"``)."""
        out: np.ndarray = np.asarray(KINDS, dtype=object)[self.kind.astype(np.int64)]
        return out

    @property
    def splits(self) -> CorporateActions:
        """Only the splits."""
        return self._take(self.kind == SPLIT)

    @property
    def dividends(self) -> CorporateActions:
        """Only the dividends."""
        return self._take(self.kind == DIVIDEND)

    def for_symbols(self, symbols: Iterable[str]) -> CorporateActions:
        """The actions of some symbols only (others dropped)."""
        keep = set(symbols)
        return self._take(np.array([s in keep for s in self.symbol.tolist()], np.bool_))

    def _take(self, mask: np.ndarray) -> CorporateActions:
        if bool(mask.all()):
            return self
        return CorporateActions(symbol=self.symbol[mask], ex_date=self.ex_date[mask],
                                kind=self.kind[mask], value=self.value[mask],
                                pay_date=self.pay_date[mask], tz=self.tz, prices=self.prices,
                                adjust=self.adjust)

    def frame(self) -> pd.DataFrame:
        """The table as a DataFrame: ``symbol, ex_date, kind, value, pay_date``."""
        out: pd.DataFrame = pd.DataFrame({
            "symbol": pd.Series(self.symbol, dtype=object),
            "ex_date": pd.DatetimeIndex(self.ex_date.astype("datetime64[ns]")),
            "kind": pd.Series(self.kinds, dtype=object),
            "value": self.value,
            "pay_date": pd.DatetimeIndex(self.pay_date.astype("datetime64[ns]")),
        })
        return out

    def __repr__(self) -> str:
        n_split = int(np.count_nonzero(self.kind == SPLIT))
        extra = "".join(f", {k}={v!r}" for k, v in (("prices", self.prices),
                                                     ("adjust", self.adjust)) if v)
        return (f"CorporateActions({n_split} splits, {len(self) - n_split} dividends, "
                f"{len(self._symbols)} symbols, tz={self.tz!r}{extra})")


# ------------------------------------------------------------------ helpers
def _canon(label: object) -> str:
    return str(label).strip().lower().replace(" ", "_").replace("-", "_")


def _first(cols: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in cols:
            return cols[name]
    return None


def _problem(row: int, symbol: Any, field_name: str, reason: str) -> dict[str, Any]:
    return {"row": row, "symbol": symbol, "field": field_name, "reason": reason}


def _ns_to_dates(ns: np.ndarray, tz: str) -> np.ndarray:
    idx = pd.DatetimeIndex(np.asarray(ns, np.int64).view("M8[ns]")).tz_localize("UTC")
    if tz != "UTC":
        try:
            idx = idx.tz_convert(tz)
        except Exception:
            raise DataError(f"corporate actions: unknown time zone tz={tz!r}") from None
    out: np.ndarray = idx.tz_localize(None).normalize().values.astype("datetime64[D]")
    return out


def _dates(col: Any, tz: str, name: str, problems: list[dict[str, Any]], *,
           optional: bool = False) -> np.ndarray:
    """Calendar dates (in ``tz``) of a column of dates or timestamps."""
    series = pd.Series(np.asarray(col, dtype=object) if not isinstance(
        col, (pd.Series, pd.Index)) else col)
    series = series.reset_index(drop=True)
    missing = series.isna().to_numpy()
    try:
        parsed = pd.to_datetime(series, errors="coerce", utc=False, format="mixed")
    except (TypeError, ValueError):  # mixed naive and aware values
        parsed = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert(tz).dt.tz_localize(None)
    bad = parsed.isna().to_numpy() & (~missing if optional else np.ones(len(series), bool))
    for i in np.flatnonzero(bad)[:_MAX_PROBLEMS].tolist():
        problems.append(_problem(i, None, name, f"not a date: {series.iloc[i]!r}"))
    out: np.ndarray = parsed.dt.normalize().to_numpy().astype("datetime64[D]")
    return out


def _numbers(col: pd.Series, name: str, syms: np.ndarray,
             problems: list[dict[str, Any]]) -> np.ndarray:
    raw = col.reset_index(drop=True)
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna().to_numpy() & ~raw.isna().to_numpy()
    for i in np.flatnonzero(bad)[:_MAX_PROBLEMS].tolist():
        problems.append(_problem(i, syms[i], name, f"not a number: {raw.iloc[i]!r}"))
    out: np.ndarray = num.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _validate(sym: np.ndarray, ex: np.ndarray, kind: np.ndarray, value: np.ndarray,
              pay: np.ndarray, rows: np.ndarray) -> None:
    """Refuse bad rows, naming each (``rows`` maps positions to the caller's rows)."""
    problems: list[dict[str, Any]] = []

    def add(i: int, field_name: str, reason: str) -> None:
        if len(problems) < _MAX_PROBLEMS:
            problems.append(_problem(int(rows[i]), sym[i], field_name, reason))

    for i in range(len(sym)):
        s, k, v = sym[i], int(kind[i]), float(value[i])
        if not isinstance(s, str) or not s.strip():
            add(i, "symbol", f"not a symbol: {s!r}")
        if np.isnat(ex[i]):
            add(i, "ex_date", "missing ex-date")
        if k not in (SPLIT, DIVIDEND):
            add(i, "kind", f"kind code must be 0 (split) or 1 (dividend), got {k}")
        elif k == SPLIT and not (np.isfinite(v) and v > 0 and v != 1):
            add(i, "split", f"a split ratio must be finite, > 0 and not 1, got {v!r}")
        elif k == DIVIDEND and not (np.isfinite(v) and v > 0):
            add(i, "dividend", f"a dividend must be finite cash per share > 0, got {v!r}")
        if not np.isnat(pay[i]) and not np.isnat(ex[i]) and pay[i] < ex[i]:
            add(i, "pay_date", f"pay date {pay[i]} is before the ex-date {ex[i]}")
    if not problems and len(sym):
        key = pd.DataFrame({"s": sym, "e": ex, "k": kind})
        dup = key.duplicated(keep=False).to_numpy()
        for i in np.flatnonzero(dup).tolist():
            add(i, KINDS[int(kind[i])] if int(kind[i]) in (0, 1) else "kind",
                f"a second {KINDS[int(kind[i]) % 2]} for {sym[i]} on ex-date {ex[i]}")
    if problems:
        raise DataError("bad corporate actions", problems=problems)
