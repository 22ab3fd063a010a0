"""Backtest results: fills, orders, equity, positions over time and statistics.

One job per module:

- :mod:`~simbroker.results.result`: :class:`BacktestResult`, what a run produced.
- :mod:`~simbroker.results.build`: per-bar cash, positions and equity from the fills
  (both runners end in :func:`assemble_result`).
- :mod:`~simbroker.results.stats`: :func:`compute_stats`.
- :mod:`~simbroker.results.trips`: :func:`round_trips`, flat to flat per symbol.
- :mod:`~simbroker.results.format`: the statistics as a readable table.
- :mod:`~simbroker.results.columns`: the tables' columns and dtypes.
- :mod:`~simbroker.results.analytics`: the tear sheet's numbers (benchmark, monthly and
  yearly returns, worst drawdowns, rolling Sharpe and volatility, P&L by symbol).
- :mod:`~simbroker.results.persist`: :meth:`BacktestResult.save` and :func:`load_result`.

Plots and the HTML report (:mod:`simbroker.report`) build on this package; nothing here
imports them at load time (``BacktestResult.plot``/``report`` reach them on call).
"""

from __future__ import annotations

from simbroker.results.build import (
    assemble_result,
    build_result,
    cash_after_bars,
    mark_to_market,
    marking_closes,
)
from simbroker.results.columns import orders_frame
from simbroker.results.format import format_stats, stat_rows
from simbroker.results.persist import load_result, save_result
from simbroker.results.result import BacktestResult
from simbroker.results.stats import compute_stats
from simbroker.results.trips import fill_arrays, round_trips, trips_of

__all__ = [
    "BacktestResult",
    "assemble_result",
    "build_result",
    "cash_after_bars",
    "compute_stats",
    "fill_arrays",
    "format_stats",
    "load_result",
    "mark_to_market",
    "marking_closes",
    "orders_frame",
    "round_trips",
    "save_result",
    "stat_rows",
    "trips_of",
]
