"""Tear-sheet numbers of a run: benchmark, period returns, drawdowns, rolling risk, P&L.

Pure, vectorized functions of an equity curve (or its returns), the bars and the round
trips; :class:`~simbroker.results.BacktestResult` exposes them as methods and the HTML
report draws them. Conventions, as in :mod:`~simbroker.results.stats`:

- ``equity[t]`` is the account value at bar ``t``'s close; ``start_equity`` is the value
  before the first bar, so the first return is ``equity[0] / start_equity - 1``.
- Calendar periods (months, years) are taken in UTC from the bars' timestamps.
- Annualization multiplies by ``periods_per_year`` (bars per year): measured by default
  as bars per calendar year spanned, or a fixed number (252 for daily bars, as empyrical
  and quantstats assume).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from simbroker.bars import Bars
from simbroker.results.columns import _ffill

__all__ = [
    "MONTHS",
    "align_benchmark",
    "bars_per_year",
    "buy_and_hold",
    "default_window",
    "drawdown_periods",
    "monthly_returns",
    "relative_stats",
    "returns_histogram",
    "rolling_sharpe",
    "rolling_volatility",
    "symbol_pnl",
    "yearly_returns",
]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_YEAR_NS = 365.25 * 86_400e9


def bars_per_year(index: pd.DatetimeIndex, interval: np.timedelta64) -> float:
    """Bars per calendar year spanned: ``len(index) / years``, where the span runs from
    the first bar's open to the last bar's close (``NaN`` without bars)."""
    if not len(index):
        return float("nan")
    span = float((index[-1] - index[0]).value) + float(np.timedelta64(interval, "ns")
                                                       .astype(np.int64))
    return len(index) / (span / _YEAR_NS) if span > 0 else float("nan")


def default_window(n_bars: int, periods_per_year: float) -> int:
    """The rolling window the report uses: half a year of bars (126 for daily bars of
    one exchange), shortened to a quarter of the run when the run is shorter than two
    years, and at least 2 bars."""
    half = round(periods_per_year / 2) if math.isfinite(periods_per_year) else n_bars
    return int(max(2, min(half, n_bars // 4 if n_bars < 4 * half else half)))


# --------------------------------------------------------------------------- benchmark
def buy_and_hold(bars: Bars, start_equity: float,
                 symbols: Sequence[str] | None = None) -> pd.Series:
    """Equity of buying ``symbols`` equal-weighted with ``start_equity`` and holding them.

    Each symbol gets ``start_equity / len(symbols)`` at its first known close (the first
    bar's, unless it starts trading later; until then its share stays in cash), and that
    sleeve then follows ``close / first close``, carried over bars without a close. No
    costs, no rebalancing. With one symbol that trades from the first bar, the benchmark
    is ``start_equity * close / close[0]``.

    Parameters
    ----------
    bars
        The replayed panel.
    start_equity
        What is invested at the start.
    symbols
        The symbols to hold; default all of ``bars``.

    Returns
    -------
    Series
        Indexed like the bars (UTC), named ``benchmark``.
    """
    names = list(bars.symbols if symbols is None else symbols)
    if not names:
        raise ValueError("buy_and_hold needs at least one symbol")
    cols = [bars.symbol_index(s) for s in names]
    close = _ffill(np.array(bars.close[:, cols], np.float64))
    valid = ~np.isnan(close)
    has = valid.any(axis=0)
    first_row = np.argmax(valid, axis=0)
    first = np.where(has, close[first_row, np.arange(len(cols))], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        sleeve = np.where(valid, close / first, 1.0)
    value = float(start_equity) * sleeve.mean(axis=1)
    out: pd.Series = pd.Series(value, index=bars.index, name="benchmark")
    return out


def align_benchmark(series: pd.Series, index: pd.DatetimeIndex,
                    start_equity: float) -> pd.Series:
    """A given price or equity series as a benchmark equity on the bars' ``index``.

    Each bar takes the series' last value at or before its timestamp (tz-naive series
    are read as UTC); the result is rescaled so its first known value equals
    ``start_equity``, and held flat at ``start_equity`` before the series starts.

    Raises
    ------
    ValueError
        The series is not indexed by time, holds a non-positive value, or has no value
        at or before any bar.
    """
    if not isinstance(series.index, pd.DatetimeIndex):
        raise ValueError(f"a benchmark series needs a DatetimeIndex, got "
                         f"{type(series.index).__name__}")
    s = series.astype(np.float64).dropna()
    s_index = pd.DatetimeIndex(s.index)
    s_index = s_index.tz_localize("UTC") if s_index.tz is None else s_index.tz_convert("UTC")
    s = pd.Series(s.to_numpy(np.float64), index=s_index).sort_index()
    s = s[~s.index.duplicated(keep="last")]
    if (s <= 0).any():
        raise ValueError("a benchmark series must be positive (prices or equity)")
    target = pd.DatetimeIndex(index)
    pos = np.searchsorted(s.index.as_unit("ns").asi8, target.as_unit("ns").asi8,
                          side="right") - 1
    if not len(s) or pos[-1] < 0:
        span = f"{s.index[0]} to {s.index[-1]}" if len(s) else "no values"
        raise ValueError(f"the benchmark series ({span}) has no value at or before the "
                         f"last bar ({target[-1] if len(target) else 'none'})")
    values = np.where(pos >= 0, s.to_numpy()[np.maximum(pos, 0)], np.nan)
    base = values[np.argmax(~np.isnan(values))]
    scaled = np.where(np.isnan(values), 1.0, values / base) * float(start_equity)
    out: pd.Series = pd.Series(scaled, index=target, name="benchmark")
    return out


def relative_stats(returns: pd.Series, benchmark_returns: pd.Series,
                   periods_per_year: float) -> dict[str, float]:
    """How the strategy's per-bar returns relate to a benchmark's (same bars):
    ``beta`` (cov / benchmark variance), ``correlation``, ``alpha`` (annualized mean
    return not explained by beta: ``(mean - beta * mean_benchmark) * periods_per_year``),
    ``tracking_error`` (annualized std of the difference) and ``information_ratio``
    (annualized mean difference / tracking error). ``NaN`` where undefined."""
    a = returns.to_numpy(np.float64)
    b = benchmark_returns.to_numpy(np.float64)
    if len(a) != len(b):
        raise ValueError(f"returns ({len(a)}) and benchmark returns ({len(b)}) differ in "
                         f"length")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    nan = float("nan")
    if len(a) < 2:
        return {"beta": nan, "correlation": nan, "alpha": nan, "tracking_error": nan,
                "information_ratio": nan}
    cov = np.cov(a, b, ddof=1)
    var_a, var_b, c = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    beta = c / var_b if var_b > 0 else nan
    corr = c / math.sqrt(var_a * var_b) if var_a > 0 and var_b > 0 else nan
    diff = a - b
    te_bar = float(np.std(diff, ddof=1))
    return {
        "beta": beta,
        "correlation": corr,
        "alpha": (float(a.mean()) - beta * float(b.mean())) * periods_per_year,
        "tracking_error": te_bar * math.sqrt(periods_per_year),
        "information_ratio": (float(diff.mean()) / te_bar * math.sqrt(periods_per_year)
                              if te_bar > 0 else nan),
    }


# --------------------------------------------------------------------------- periods
def _period_returns(equity: pd.Series, start_equity: float, months: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Period keys (``year * 12 + month - 1``, floored to ``months``) and each period's
    return from the previous period's last equity (``start_equity`` for the first)."""
    idx = pd.DatetimeIndex(equity.index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC")
    key = (np.asarray(idx.year, np.int64) * 12 + np.asarray(idx.month, np.int64) - 1)
    key = key // months * months
    eq = equity.to_numpy(np.float64)
    if not len(eq):
        return key, np.array([], np.float64)
    last = np.flatnonzero(np.append(key[1:] != key[:-1], True))
    ends = eq[last]
    base = np.concatenate([[float(start_equity)], ends[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = ends / base - 1.0
    return key[last], rets


def monthly_returns(equity: pd.Series, start_equity: float) -> pd.DataFrame:
    """Returns by calendar month: one row per year, one column per month (``Jan`` ...
    ``Dec``), ``NaN`` for months without bars.

    A month's return runs from the previous month's last equity (the starting equity
    for the first month) to its own last, so the cells compound to the total return.
    """
    keys, rets = _period_returns(equity, start_equity, 1)
    years = keys // 12
    first = int(years[0]) if len(years) else 0
    n_years = int(years[-1]) - first + 1 if len(years) else 0
    table = np.full((n_years, 12), np.nan)
    table[years - first, keys % 12] = rets
    frame: pd.DataFrame = pd.DataFrame(
        table, index=pd.Index(range(first, first + n_years), name="year"),
        columns=pd.Index(MONTHS, name="month"))
    return frame


def yearly_returns(equity: pd.Series, start_equity: float) -> pd.Series:
    """Returns by calendar year (from the previous year's last equity), indexed by year;
    they compound to the total return."""
    keys, rets = _period_returns(equity, start_equity, 12)
    out: pd.Series = pd.Series(rets, index=pd.Index(keys // 12, name="year"), name="return")
    return out


# --------------------------------------------------------------------------- drawdowns
def drawdown_periods(equity: pd.Series, start_equity: float, n: int | None = 5, *,
                     interval: np.timedelta64 | None = None) -> pd.DataFrame:
    """The worst ``n`` drawdowns (all with ``n=None``), deepest first.

    A drawdown runs from a peak (a new high of equity, the starting equity included)
    until equity is back at or above it. Depth and length agree with
    :attr:`~simbroker.results.BacktestResult.drawdown` and the ``max_drawdown`` and
    ``max_drawdown_bars`` / ``max_drawdown_duration`` statistics.

    Returns
    -------
    DataFrame
        ``start`` (the bar of the peak; the first bar when the peak is the starting
        equity), ``trough`` (the bar of the lowest equity), ``recovery`` (the first bar
        back at the peak, ``NaT`` while open), ``depth`` (trough / peak - 1, negative),
        ``bars`` (from the peak to the recovery or the last bar), ``length`` (the same
        as a Timedelta; a peak at the starting equity counts from one ``interval``
        before the first bar, as the statistics do) and ``is_open``.
    """
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n!r}")
    idx = pd.DatetimeIndex(equity.index)
    # Point 0 is the starting equity, then one point per bar.
    p = np.concatenate([[float(start_equity)], equity.to_numpy(np.float64)])
    peak = np.maximum.accumulate(p)
    under = p < peak
    edges = np.diff(under.view(np.int8))
    starts = np.flatnonzero(edges == 1)  # the last point at the peak
    ends = np.flatnonzero(edges == -1) + 1  # the first point back at it
    is_open = np.zeros(len(starts), bool)
    if len(starts) and under[-1]:
        ends = np.append(ends, len(p) - 1)
        is_open[-1] = True
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = p / peak - 1.0
    seg = np.cumsum(np.concatenate([[0], edges == 1])) - 1  # stretch of each point
    inside = under & (seg >= 0)
    pts = np.flatnonzero(inside)
    # Deepest point per stretch: sort by (stretch, depth), take each stretch's first.
    order = pts[np.lexsort((dd[pts], seg[pts]))]
    first = np.flatnonzero(np.append(True, seg[order][1:] != seg[order][:-1]))
    trough = order[first] if len(order) else np.array([], np.int64)
    depth = dd[trough]
    rank = np.argsort(depth, kind="stable")
    if n is not None:
        rank = rank[:n]
    if interval is None:  # the bar length: the smallest step between bars
        step = int(np.diff(idx.as_unit("ns").asi8).min()) if len(idx) > 1 else 0
    else:
        step = int(np.timedelta64(interval, "ns").astype(np.int64))
    ns = idx.as_unit("ns").asi8 if len(idx) else np.array([], np.int64)

    def at(point: np.ndarray) -> np.ndarray:  # a point's time; the start is a bar before
        return np.where(point > 0, ns[np.maximum(point - 1, 0)],
                        ns[0] - step if len(ns) else 0)

    s, e, t = starts[rank], ends[rank], trough[rank]
    bar_of = np.maximum(s - 1, 0)
    tz = idx.tz if idx.tz is not None else None

    def stamps(values: np.ndarray) -> pd.DatetimeIndex:
        out = pd.DatetimeIndex(values.astype("datetime64[ns]"))
        aware: pd.DatetimeIndex = (out.tz_localize("UTC").tz_convert(tz) if tz is not None
                                   else out)
        return aware

    recovery = np.where(is_open[rank], np.iinfo(np.int64).min,
                        ns[np.maximum(e - 1, 0)] if len(ns) else 0)
    frame: pd.DataFrame = pd.DataFrame({
        "start": stamps(ns[bar_of] if len(ns) else bar_of),
        "trough": stamps(ns[t - 1] if len(ns) else t),
        "recovery": stamps(recovery),
        "depth": depth[rank],
        "bars": (e - s).astype(np.int64),
        "length": pd.to_timedelta(at(e) - at(s), unit="ns"),
        "is_open": is_open[rank],
    })
    return frame


# --------------------------------------------------------------------------- rolling
def rolling_volatility(returns: pd.Series, window: int, periods_per_year: float
                       ) -> pd.Series:
    """Annualized standard deviation (ddof 1) of ``returns`` over the trailing
    ``window`` bars; ``NaN`` for the first ``window - 1`` bars."""
    _check_window(window)
    out: pd.Series = (returns.astype(np.float64).rolling(window).std(ddof=1)
                      * math.sqrt(periods_per_year)).rename("volatility")
    return out


def rolling_sharpe(returns: pd.Series, window: int, periods_per_year: float) -> pd.Series:
    """Annualized Sharpe ratio (zero risk-free rate) over the trailing ``window`` bars:
    ``mean / std * sqrt(periods_per_year)``, as the ``sharpe`` statistic over the whole
    run; ``NaN`` where the window has too few bars or no variation."""
    _check_window(window)
    r = returns.astype(np.float64).rolling(window)
    mean, sd = r.mean(), r.std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sd.to_numpy() > 1e-14 * (1 + np.abs(mean.to_numpy())),
                         mean.to_numpy() / sd.to_numpy(), np.nan)
    out: pd.Series = pd.Series(ratio * math.sqrt(periods_per_year), index=returns.index,
                               name="sharpe")
    return out


def _check_window(window: int) -> None:
    if not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"window must be an integer >= 2 bars, got {window!r}")


# --------------------------------------------------------------------------- distribution
def returns_histogram(returns: pd.Series, bins: int = 40) -> pd.DataFrame:
    """The distribution of per-bar returns: ``bins`` equal-width bins over the finite
    returns, as ``left, right, count`` rows (no rows without finite returns)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins!r}")
    r = returns.to_numpy(np.float64)
    r = r[np.isfinite(r)]
    if not len(r):
        empty: pd.DataFrame = pd.DataFrame({"left": np.array([], np.float64),
                                            "right": np.array([], np.float64),
                                            "count": np.array([], np.int64)})
        return empty
    counts, edges = np.histogram(r, bins=bins)
    frame: pd.DataFrame = pd.DataFrame({"left": edges[:-1], "right": edges[1:],
                                        "count": counts.astype(np.int64)})
    return frame


# --------------------------------------------------------------------------- per symbol
def symbol_pnl(trades: pd.DataFrame, fills: pd.DataFrame) -> pd.DataFrame:
    """P&L by symbol from the round trips: realized (closed trips), unrealized (the open
    trip marked to the last known close), both net of fees, so ``total`` sums over
    symbols to the equity change of the run.

    Returns
    -------
    DataFrame
        Indexed by ``symbol``, largest total first: ``total, realized, unrealized, fees,
        trips`` (closed), ``win_rate`` (of closed trips), ``fills`` and
        ``traded_notional``.
    """
    sym = trades["symbol"].to_numpy(object)
    names = pd.unique(np.concatenate([sym, fills["symbol"].to_numpy(object)]))
    codes_t = pd.Index(names).get_indexer(sym)
    codes_f = pd.Index(names).get_indexer(fills["symbol"].to_numpy(object))
    k = len(names)
    done = ~trades["is_open"].to_numpy(bool)
    pnl = trades["pnl"].to_numpy(np.float64)
    realized = np.bincount(codes_t[done], pnl[done], minlength=k)
    unrealized = np.bincount(codes_t[~done], pnl[~done], minlength=k)
    n_trips = np.bincount(codes_t[done], minlength=k)
    wins = np.bincount(codes_t[done], (pnl[done] > 0).astype(np.float64), minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        win_rate = np.where(n_trips > 0, wins / n_trips, np.nan)
    frame: pd.DataFrame = pd.DataFrame({
        "total": realized + unrealized,
        "realized": realized,
        "unrealized": unrealized,
        "fees": np.bincount(codes_f, fills["fee"].to_numpy(np.float64), minlength=k),
        "trips": n_trips.astype(np.int64),
        "win_rate": win_rate,
        "fills": np.bincount(codes_f, minlength=k).astype(np.int64),
        "traded_notional": np.bincount(codes_f, fills["notional"].to_numpy(np.float64),
                                       minlength=k),
    }, index=pd.Index(pd.Series([str(s) for s in names], dtype=trades["symbol"].dtype),
                      name="symbol"))
    ranked: pd.DataFrame = frame.sort_values("total", ascending=False, kind="stable")
    return ranked
