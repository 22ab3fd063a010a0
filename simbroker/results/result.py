"""What a backtest produced: :class:`BacktestResult`.

Equity is marked to each bar's close: ``equity[t] = cash[t] + sum(position[t] * close[t])``,
with a symbol's last known close carried forward over bars where it did not trade.
Cash and positions over time come from the broker's own per-fill ledger, so the last row
equals the broker's state exactly (see :mod:`simbroker.results.build`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd

from simbroker.bars import Bars
from simbroker.results.format import format_stats, result_html, summary_frame
from simbroker.results.stats import compute_stats, stats_series
from simbroker.results.trips import _empty_trips

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _empty_trips_factory() -> pd.DataFrame:
    return _empty_trips()


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """What a backtest produced.

    Attributes
    ----------
    fills : DataFrame
        One row per execution: ``timestamp, symbol, side, qty, price, fee, notional,
        order_id, client_order_id, fill_id`` (timestamp = the fill bar's open, UTC).
    orders : DataFrame
        Every order with its final status.
    equity : Series
        Account value marked to each bar's close, indexed by bar timestamp.
    cash : Series
        Cash after each bar.
    positions : DataFrame
        Position per symbol after each bar (timestamps x symbols).
    stats : Series
        The statistics by name (object dtype: floats, ints, timestamps, timedeltas), as
        backtesting.py and vectorbt show them; ``stats["sharpe"]``, ``stats.to_dict()``.
        See :func:`~simbroker.results.compute_stats`.
    config : dict
        What ran: starting cash, slippage and fee models (their reprs).
    bars : Bars
        The panel that was replayed.
    trades : DataFrame
        Round trips, flat to flat per symbol (see :func:`round_trips`).
    """

    fills: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.Series
    cash: pd.Series
    positions: pd.DataFrame
    stats: pd.Series
    config: dict[str, Any]
    bars: Bars = field(repr=False)
    trades: pd.DataFrame = field(default_factory=_empty_trips_factory, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.stats, pd.Series):  # a plain mapping is accepted too
            object.__setattr__(self, "stats", stats_series(self.stats))

    @property
    def final_positions(self) -> dict[str, float]:
        """Positions after the last bar (flat symbols left out)."""
        last = self.positions.iloc[-1]
        return {str(k): float(v) for k, v in last.items() if v != 0}

    @property
    def final_cash(self) -> float:
        """Cash after the last bar."""
        return float(self.cash.iloc[-1])

    @property
    def returns(self) -> pd.Series:
        """Per-bar simple returns of equity; the first is from the starting equity."""
        eq = self.equity.to_numpy(np.float64)
        start = float(self.stats.get("start_equity", eq[0] if len(eq) else 0.0))
        prev = np.concatenate([[start], eq[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            rets = eq / prev - 1.0
        out: pd.Series = pd.Series(rets, index=self.equity.index, name="returns")
        return out

    def stats_for(self, *, periods_per_year: float | None = None) -> pd.Series:
        """The statistics recomputed with another annualization.

        ``periods_per_year=252`` annualizes as empyrical and quantstats do for daily
        bars; the default (``None``) is what :attr:`stats` holds: bars per calendar year
        spanned.
        """
        values = compute_stats(self.equity, self.fills,
                               start_equity=float(self.stats["start_equity"]),
                               interval=self.bars.interval, n_orders=len(self.orders),
                               gross_exposure=self._gross_exposure(), trips=self.trades,
                               periods_per_year=periods_per_year)
        return stats_series(values)

    def _gross_exposure(self) -> np.ndarray:
        pos = self.positions.to_numpy(np.float64)
        from simbroker.results.build import mark_to_market, marking_closes

        _, gross = mark_to_market(pos, marking_closes(self.bars.close[:len(pos)]))
        return gross

    def format_summary(self) -> str:
        """The statistics as a readable two-column table."""
        return format_stats(self.stats, self.config)

    def summary(self, file: TextIO | None = None) -> pd.DataFrame:
        """Print the statistics table (to stdout by default) and return it.

        Returns
        -------
        DataFrame
            One row per statistic: its ``label`` and formatted ``value``, indexed by the
            statistic's key (the cost models last, under ``slippage`` and ``fees``).
        """
        print(self.format_summary(), file=file if file is not None else sys.stdout)
        return summary_frame(self.stats, self.config)

    def _repr_html_(self) -> str:
        """A notebook's view: the headline statistics beside a small equity sparkline."""
        return result_html(self)

    def __str__(self) -> str:
        return self.format_summary()

    @property
    def drawdown(self) -> pd.Series:
        """Equity over its running peak, minus one (0 at a new high, negative below)."""
        eq = self.equity.to_numpy(np.float64)
        start = float(self.stats.get("start_equity", eq[0] if len(eq) else 0.0))
        peak = np.maximum.accumulate(np.concatenate([[start], eq]))[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = eq / peak - 1.0
        return pd.Series(dd, index=self.equity.index, name="drawdown")

    def plot(self, path: str | os.PathLike[str] | None = None, *, symbol: str | None = None,
             title: str | None = None) -> Figure:
        """Draw equity, drawdown and fills with matplotlib.

        Three panels share the time axis: equity with buy/sell markers at each fill, the
        drawdown, and one symbol's close with its fills at their prices (``symbol``, by
        default the most traded). Needs ``matplotlib`` (``pip install 'simbroker[plot]'``).

        Parameters
        ----------
        path
            Save the figure there (PNG, or what the suffix says) and close it.
        symbol
            The symbol for the price panel.
        title
            Figure title; default: the strategy's headline numbers.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from simbroker.report import plot_result

        return plot_result(self, path, symbol=symbol, title=title)

    def report(self, path: str | os.PathLike[str], *, title: str = "Backtest report",
               max_rows: int = 1000) -> Path:
        """Write a self-contained HTML report: statistics, plots, round trips and fills.

        The plots are embedded as PNG data; the file opens offline, anywhere. Tables show
        the first ``max_rows`` rows (the count says so when cut).

        Returns
        -------
        Path
            Where the report was written.
        """
        from simbroker.report import write_report

        return write_report(self, path, title=title, max_rows=max_rows)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the result to ``directory``: Parquet tables and a JSON manifest.

        ``fills``, ``orders``, ``trades``, ``equity`` (with ``cash``), ``positions`` and
        the replayed ``bars`` as Parquet; ``stats`` and ``config`` in ``result.json``.
        :meth:`load` reads it back with the same values and dtypes. Files are written
        beside and renamed into place, so a crash never leaves a half-written table.
        """
        from simbroker.results.persist import save_result

        return save_result(self, Path(directory))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> BacktestResult:
        """Read a result written by :meth:`save`."""
        from simbroker.results.persist import load_result

        return load_result(directory)

    def __repr__(self) -> str:
        s = self.stats
        return (f"BacktestResult({s['n_bars']} bars x {self.bars.n_symbols} symbols, "
                f"{s['n_fills']} fills, total_return={s['total_return']:.4%}, "
                f"sharpe={s['sharpe']:.3f})")


