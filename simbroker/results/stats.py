"""Performance statistics of an equity curve, its fills and round trips."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

_YEAR_NS = 365.25 * 86_400e9


def compute_stats(
    equity: pd.Series,
    fills: pd.DataFrame,
    *,
    start_equity: float,
    interval: np.timedelta64,
    n_orders: int = 0,
    gross_exposure: np.ndarray | None = None,
    trips: pd.DataFrame | None = None,
    periods_per_year: float | None = None,
    dividends: float | None = None,
    borrow_fees: float | None = None,
    interest: float | None = None,
) -> dict[str, Any]:
    """Performance statistics of an equity curve, its fills and round trips.

    Per-bar returns include the step from ``start_equity`` to the first bar's equity.
    Annualization, by default, uses the observed bar frequency: bars per year = bars /
    calendar years spanned (251.8 on the bundled sample, about 252 for daily bars of one
    exchange), and CAGR compounds over the calendar years spanned. With
    ``periods_per_year`` (e.g. 252, as empyrical and quantstats assume for daily bars)
    both use that fixed count instead: years = bars / periods_per_year. Sharpe and
    Sortino assume a zero risk-free rate and target return.

    Parameters
    ----------
    periods_per_year
        A fixed number of bars per year for annualization; ``None`` (default) measures
        it from the index.
    gross_exposure
        Sum of ``|position x close|`` over symbols after each bar; gives ``exposure``
        (share of bars with a position) and ``avg_gross_exposure`` (mean of gross / equity).
    trips
        :func:`round_trips` of the run; gives the per-trip statistics (closed trips only).
    dividends
        Net dividend cash the run received (paid on longs minus paid on shorts), for runs
        on bars with corporate actions; adds ``dividends`` after ``fees_paid``.
    borrow_fees, interest
        Borrow fees paid and net interest paid (credits negative), for runs with a
        borrow or interest model (:mod:`simbroker.financing`); added after ``fees_paid``.

    Returns
    -------
    dict
        ``start, end, n_bars, start_equity, final_equity, total_return, cagr,
        ann_volatility, sharpe, sortino, calmar, max_drawdown, max_drawdown_duration``
        (longest time from a peak until equity is back above it, or to the end; a
        Timedelta), ``max_drawdown_bars, exposure, avg_gross_exposure, n_orders, n_fills,
        fees_paid, traded_notional, turnover`` (traded notional / mean equity),
        ``round_trips, win_rate, profit_factor`` (gross profit / gross loss of closed
        trips), ``avg_trip_return, avg_holding`` (a Timedelta) ``, avg_bars_held``.
    """
    eq = equity.to_numpy(np.float64)
    n = len(eq)
    out: dict[str, Any] = {
        "start": equity.index[0] if n else None,
        "end": equity.index[-1] if n else None,
        "n_bars": n,
        "start_equity": float(start_equity),
        "final_equity": float(eq[-1]) if n else float(start_equity),
    }
    nan = float("nan")
    if n == 0:
        out.update(total_return=0.0, cagr=nan, ann_volatility=nan, sharpe=nan, sortino=nan,
                   calmar=nan, max_drawdown=0.0, max_drawdown_duration=pd.Timedelta(0),
                   max_drawdown_bars=0)
    else:
        span_ns = float((equity.index[-1] - equity.index[0]).value) + float(
            interval.astype(np.int64))
        if periods_per_year is not None:
            if not (math.isfinite(periods_per_year) and periods_per_year > 0):
                raise ValueError(f"periods_per_year must be a positive number, got "
                                 f"{periods_per_year!r}")
            years = n / float(periods_per_year)
        else:
            years = span_ns / _YEAR_NS
        # Long runs (500k minute bars) make every temporary array count: one scratch
        # buffer serves returns, downside returns, drawdown and exposure in turn.
        buf = np.empty(n)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.divide(eq[1:], eq[:-1], out=buf[1:])
            buf[0] = eq[0] / start_equity
            buf -= 1.0
            rets = buf
            growth = eq[-1] / start_equity
            total = growth - 1.0
            cagr = (growth ** (1.0 / years) - 1.0 if growth > 0 else -1.0) if years > 0 else nan
            per_year = (float(periods_per_year) if periods_per_year is not None
                        else n / years if years > 0 else nan)
            mu = float(np.mean(rets))
            # Sum of squares about the mean without a temporary array (np.std makes one).
            ss = float(np.dot(rets, rets)) - n * mu * mu
            sd = math.sqrt(max(ss, 0.0) / (n - 1)) if n > 1 and math.isfinite(ss) else nan
            vol = sd * math.sqrt(per_year) if per_year == per_year else nan
            sharpe = (mu / sd * math.sqrt(per_year)
                      if sd and sd == sd and per_year == per_year else nan)
            neg = np.minimum(rets, 0.0, out=buf)
            downside = math.sqrt(float(np.dot(neg, neg)) / n)
            sortino = (mu / downside * math.sqrt(per_year)
                       if downside and downside == downside and per_year == per_year
                       else nan)
            peak = np.maximum.accumulate(eq, out=buf)
            np.maximum(peak, start_equity, out=peak)
            dd_bars, dd_time = _drawdown_duration(eq, peak, pd.DatetimeIndex(equity.index),
                                                  interval)
            dd = min(float(np.min(np.divide(eq, peak, out=buf))) - 1.0, 0.0)
            calmar = float(cagr) / -dd if dd < 0 else nan
        out.update(total_return=float(total), cagr=float(cagr), ann_volatility=float(vol),
                   sharpe=float(sharpe), sortino=float(sortino), calmar=float(calmar),
                   max_drawdown=dd, max_drawdown_duration=dd_time, max_drawdown_bars=dd_bars)
        if gross_exposure is not None:
            gross = np.asarray(gross_exposure, np.float64)
            positive = eq > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.divide(gross, eq, out=buf)
            n_pos = int(np.count_nonzero(positive))
            if n_pos < n:
                ratio[~positive] = 0.0
            out.update(exposure=np.count_nonzero(gross) / n,
                       avg_gross_exposure=float(np.sum(ratio)) / n_pos if n_pos else nan)
    traded = float(fills["notional"].sum()) if len(fills) else 0.0
    mean_eq = float(np.mean(eq)) if n else float(start_equity)
    out.update(
        n_orders=int(n_orders),
        n_fills=len(fills),
        fees_paid=float(fills["fee"].sum()) if len(fills) else 0.0,
        **({} if dividends is None else {"dividends": float(dividends)}),
        **({} if borrow_fees is None else {"borrow_fees": float(borrow_fees)}),
        **({} if interest is None else {"interest": float(interest)}),
        traded_notional=traded,
        turnover=traded / mean_eq if mean_eq > 0 else nan,
    )
    if trips is not None:
        out.update(_trip_stats(trips))
    return out


def stats_series(stats: Mapping[str, Any]) -> pd.Series:
    """Statistics as the Series :attr:`BacktestResult.stats` holds (object dtype, so each
    value keeps its own type: ``int`` counts, ``float`` ratios, timestamps)."""
    out: pd.Series = pd.Series(list(stats.values()), index=pd.Index(list(stats), dtype=object),
                               dtype=object, name="stats")
    return out


def _trip_stats(trips: pd.DataFrame) -> dict[str, Any]:
    # Columns, not trips[mask]: that would copy the string columns too.
    done = ~trips["is_open"].to_numpy(bool)
    pnl = trips["pnl"].to_numpy(np.float64)[done]
    nan = float("nan")
    if not len(pnl):
        return {"round_trips": 0, "win_rate": nan, "profit_factor": nan,
                "avg_trip_return": nan, "avg_holding": pd.NaT, "avg_bars_held": nan}
    gain, loss = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    factor = gain / loss if loss > 0 else (math.inf if gain > 0 else nan)
    ret = trips["return"].to_numpy(np.float64)[done]
    return {
        "round_trips": len(pnl),
        "win_rate": float(np.mean(pnl > 0)),
        "profit_factor": factor,
        "avg_trip_return": float(np.mean(ret)) if np.isfinite(ret).all() else nan,
        "avg_holding": trips["holding"][done].mean(),
        "avg_bars_held": float(trips["bars_held"][done].mean()),
    }


def _drawdown_duration(eq: np.ndarray, peak: np.ndarray, index: pd.DatetimeIndex,
                       interval: np.timedelta64) -> tuple[int, pd.Timedelta]:
    """Longest stretch under a previous peak, in bars and in time.

    ``peak`` is the running maximum of the starting equity and ``eq``. A drawdown lasts
    from the bar of the peak (the start counts as one bar before the first) until the
    first bar back at or above it, or the last bar.
    """
    under = eq < peak
    if not under.any():
        return 0, pd.Timedelta(0)
    # Point 0 is the start (never under water), then one point per bar: stretches under
    # water start right after a point at its peak and end at the next one back at it.
    under = np.concatenate([[False], under])
    edges = np.diff(under.view(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) + 1
    if under[-1]:
        ends = np.append(ends, len(under) - 1)
    lengths = ends - starts
    k = int(np.argmax(lengths))
    step = int(interval.astype(np.int64))

    def at(point: int) -> int:  # ns since the epoch, whatever the index's unit
        return int(index[point - 1].value) if point else int(index[0].value) - step

    return int(lengths[k]), pd.Timedelta(at(int(ends[k])) - at(int(starts[k])), unit="ns")


