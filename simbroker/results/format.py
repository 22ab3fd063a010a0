"""Statistics as readable text: labels, number formats, the summary table."""

from __future__ import annotations

import math
from typing import Any

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
    ("traded_notional", "Traded notional", "{:,.2f}"),
    ("turnover", "Turnover", "{:.2f}x"),
    ("round_trips", "Round trips (closed)", "{:,}"),
    ("win_rate", "Win rate", "{:.2%}"),
    ("profit_factor", "Profit factor", "{:.3f}"),
    ("avg_trip_return", "Avg trip return", "{:.2%}"),
    ("avg_holding", "Avg holding time", "{}"),
    ("avg_bars_held", "Avg bars held", "{:.1f}"),
]


def format_stats(stats: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """Render statistics (and optionally the run's configuration) as an aligned table."""
    rows = stat_rows(stats, config)
    width = max(len(label) for label, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    rule = "-" * (width + vwidth + 3)
    return "\n".join([rule, *(f"{label:<{width}}   {v:>{vwidth}}" for label, v in rows), rule])


def stat_rows(stats: dict[str, Any], config: dict[str, Any] | None = None
              ) -> list[tuple[str, str]]:
    """Statistics (and the run's cost models) as ``(label, formatted value)`` rows."""
    rows: list[tuple[str, str]] = []
    for key, label, fmt in _LABELS:
        if key in stats:
            value = stats[key]
            if value is None or value is pd.NaT or (isinstance(value, float)
                                                     and math.isnan(value)):
                text = "n/a"
            elif isinstance(value, pd.Timestamp):
                text = value.isoformat()
            elif isinstance(value, pd.Timedelta):
                text = _format_timedelta(value)
            else:
                text = fmt.format(value)
            rows.append((label, text))
    for key in sorted(set(stats) - {k for k, _, _ in _LABELS}):
        rows.append((key, str(stats[key])))
    if config:
        rows.append(("Slippage", str(config.get("slippage"))))
        rows.append(("Fees", str(config.get("fees"))))
    return rows


def _format_timedelta(value: pd.Timedelta) -> str:
    """``12d 03:00`` / ``03:25:00``: days and clock time, no nanosecond noise."""
    secs = round(value.total_seconds())
    if secs >= 86_400:
        secs = 60 * round(secs / 60)  # minutes are enough beside days
    days, rest = divmod(secs, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")
    if days and not (hours or minutes or seconds):
        return f"{days}d"
    return f"{days}d {clock}" if days else clock


