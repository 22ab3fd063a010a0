"""Statistics as readable text: labels, number formats, the summary table."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

_LABELS = [
    ("start", "Start", "{}"),
    ("end", "End", "{}"),
    ("n_bars", "Bars", "{:,}"),
    ("start_equity", "Start equity", "{:,.2f}"),
    ("final_equity", "Final equity", "{:,.2f}"),
    ("total_return", "Total return", "{:.2%}"),
    ("cagr", "CAGR", "{:.2%}"),
    ("ann_volatility", "Volatility (ann.)", "{:.2%}"),
    ("sharpe", "Sharpe", "{:.3f}"),
    ("sortino", "Sortino", "{:.3f}"),
    ("calmar", "Calmar", "{:.3f}"),
    ("max_drawdown", "Max drawdown", "{:.2%}"),
    ("max_drawdown_duration", "Max drawdown duration", "{}"),
    ("max_drawdown_bars", "Max drawdown bars", "{:,}"),
    ("exposure", "Exposure (bars held)", "{:.2%}"),
    ("avg_gross_exposure", "Avg gross exposure", "{:.2%}"),
    ("n_orders", "Orders", "{:,}"),
    ("n_fills", "Fills", "{:,}"),
    ("fees_paid", "Fees paid", "{:,.2f}"),
    ("dividends", "Dividends received", "{:,.2f}"),
    ("borrow_fees", "Borrow fees paid", "{:,.2f}"),
    ("interest", "Interest paid (net)", "{:,.2f}"),
    ("traded_notional", "Traded notional", "{:,.2f}"),
    ("turnover", "Turnover", "{:.2f}x"),
    ("round_trips", "Round trips (closed)", "{:,}"),
    ("win_rate", "Win rate", "{:.2%}"),
    ("profit_factor", "Profit factor", "{:.3f}"),
    ("avg_trip_return", "Avg trip return", "{:.2%}"),
    ("avg_holding", "Avg holding time", "{}"),
    ("avg_bars_held", "Avg bars held", "{:,.1f}"),
]


def format_stats(stats: Mapping[str, Any] | pd.Series,
                 config: Mapping[str, Any] | None = None) -> str:
    """Render statistics (and optionally the run's configuration) as an aligned table."""
    rows = stat_rows(stats, config)
    width = max(len(label) for label, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    rule = "-" * (width + vwidth + 3)
    return "\n".join([rule, *(f"{label:<{width}}   {v:>{vwidth}}" for label, v in rows), rule])


def format_value(key: str, value: Any) -> str:
    """One statistic as the summary and the report show it (``n/a`` when undefined)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, pd.Timestamp):
        return format_timestamp(value)
    if isinstance(value, pd.Timedelta):
        return _format_timedelta(value)
    fmt = _FORMATS.get(key)
    if fmt is None:
        return str(value)
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def format_timestamp(value: pd.Timestamp) -> str:
    """A bar time at its resolution: ``2013-12-31`` for midnight (daily bars), else
    ``2024-01-02 14:30`` (UTC, seconds only when they are not zero)."""
    if value.tzinfo is not None:
        value = value.tz_convert("UTC")
    if (value.hour, value.minute, value.second, value.microsecond, value.nanosecond) == (
            0, 0, 0, 0, 0):
        return value.strftime("%Y-%m-%d")
    text = value.strftime("%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M")
    return text + (" UTC" if value.tzinfo is not None else "")


_FORMATS = {key: fmt for key, _, fmt in _LABELS}


def stat_rows(stats: Mapping[str, Any] | pd.Series, config: Mapping[str, Any] | None = None
              ) -> list[tuple[str, str]]:
    """Statistics (and the run's cost models) as ``(label, formatted value)`` rows."""
    return [(label, text) for _, label, text in _keyed_rows(stats, config)]


def _keyed_rows(stats: Mapping[str, Any] | pd.Series, config: Mapping[str, Any] | None
                ) -> list[tuple[str, str, str]]:
    # .keys(): iterating a Series yields its values, not its labels.
    keys = [str(k) for k in stats.keys()]  # noqa: SIM118
    rows: list[tuple[str, str, str]] = []
    for key, label, _ in _LABELS:
        if key in keys:
            rows.append((key, label, format_value(key, stats[key])))
    known = {k for k, _, _ in _LABELS}
    for key in sorted(set(keys) - known):
        rows.append((key, key, str(stats[key])))
    if config:
        rows.append(("slippage", "Slippage", str(config.get("slippage"))))
        rows.append(("fees", "Fees", str(config.get("fees"))))
    return rows


def summary_frame(stats: Mapping[str, Any] | pd.Series,
                  config: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The summary table as a DataFrame: ``label`` and formatted ``value`` by key."""
    rows = _keyed_rows(stats, config)
    frame: pd.DataFrame = pd.DataFrame(
        {"label": [r[1] for r in rows], "value": [r[2] for r in rows]},
        index=pd.Index([r[0] for r in rows], name="stat"))
    return frame


_HEADLINE = ("total_return", "cagr", "sharpe", "max_drawdown", "ann_volatility", "n_fills",
             "win_rate", "fees_paid")


def sparkline_svg(values: np.ndarray, *, width: int = 220, height: int = 48) -> str:
    """An inline SVG polyline of ``values`` (NaN skipped), for tables and notebooks."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) > 400:  # a sparkline needs no more points than pixels
        v = v[np.linspace(0, len(v) - 1, 400).astype(np.int64)]
    if len(v) < 2:
        return ""
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or 1.0
    xs = np.linspace(1, width - 1, len(v))
    ys = height - 1 - (v - lo) / span * (height - 2)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    colour = "#1a7f37" if v[-1] >= v[0] else "#cf222e"
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="equity"><polyline fill="none" stroke="{colour}" '
            f'stroke-width="1.5" points="{points}"/></svg>')


def result_html(result: Any) -> str:
    """A small HTML card of a result: headline statistics and an equity sparkline."""
    stats = result.stats
    cells = "".join(
        f"<tr><td style='text-align:left;color:#57606a'>{html.escape(label)}</td>"
        f"<td style='text-align:right'>{html.escape(format_value(key, stats[key]))}</td></tr>"
        for key, label, _ in _LABELS if key in _HEADLINE and key in stats)
    n_sym = result.bars.n_symbols
    span = (f"{format_value('start', stats.get('start'))} to "
            f"{format_value('end', stats.get('end'))}")
    head = (f"<b>BacktestResult</b>: {stats.get('n_bars', 0):,} bars x {n_sym} "
            f"symbol{'s' if n_sym != 1 else ''}, {html.escape(span)}")
    return (f"<div>{head}<div style='display:flex;gap:16px;align-items:center'>"
            f"<table>{cells}</table>"
            f"<div>{sparkline_svg(result.equity.to_numpy(np.float64))}</div></div></div>")


def _format_timedelta(value: pd.Timedelta) -> str:
    """``71.1 days`` / ``12 days`` / ``03:25``: days beyond one day (a clock time means
    nothing in an average of daily holdings), else clock time, no nanosecond noise."""
    secs = value.total_seconds()
    if abs(secs) >= 86_400:
        days = secs / 86_400
        if abs(days - round(days)) < 0.05:
            return "1 day" if round(days) == 1 else f"{days:,.0f} days"
        return f"{days:,.1f} days"
    secs = round(secs)
    hours, rest = divmod(secs, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")
