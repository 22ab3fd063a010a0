"""What a backtest produced: :class:`BacktestResult`.

Equity is marked to each bar's close: ``equity[t] = cash[t] + sum(position[t] * close[t])``,
with a symbol's last known close carried forward over bars where it did not trade.
Cash and positions over time come from the broker's own per-fill ledger, so the last row
equals the broker's state exactly (see :mod:`simbroker.results.build`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import numpy as np
import pandas as pd

from simbroker.actions._paper import empty_dividends
from simbroker.bars import Bars
from simbroker.results import analytics
from simbroker.results.format import format_stats, result_html, summary_frame
from simbroker.results.stats import compute_stats, stats_series
from simbroker.results.trips import _empty_trips

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: What a benchmark may be given as: ``None`` (buy and hold of the traded symbols), a
#: symbol or symbols of the bars (bought and held equal-weighted), or a price/equity
#: Series; ``False`` (plots and report only) leaves the benchmark out.
BenchmarkSpec = pd.Series | str | Sequence[str] | None


def _empty_series(name: str) -> pd.Series:
    out: pd.Series = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=np.float64,
                               name=name)
    return out


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
    dividends : DataFrame
        One row per dividend the account was entitled to (bars with corporate actions):
        ``symbol, ex_date, pay_date, qty`` (held into the ex-date; negative = short),
        ``per_share, amount`` (``qty * per_share``, paid to a long, charged to a short)
        and ``paid`` (when the cash moved; ``NaT`` when the pay date is after the last
        bar). Paid amounts are in :attr:`cash` and :attr:`equity`; their sum is
        ``stats["dividends"]``. Empty without corporate actions.
    borrow_fees : Series
        Borrow fee charged at each bar (the last bar of each trading day; 0 elsewhere)
        for runs with a :class:`~simbroker.financing.BorrowModel`; its sum is
        ``stats["borrow_fees"]``. Empty without one.
    interest : Series
        Interest at each bar: positive paid on a debit balance, negative credited, for
        runs with an :class:`~simbroker.financing.InterestModel`; its sum is
        ``stats["interest"]``. Empty without one. Both are in :attr:`cash` and
        :attr:`equity`.
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
    dividends: pd.DataFrame = field(default_factory=empty_dividends, repr=False)
    borrow_fees: pd.Series = field(default_factory=lambda: _empty_series("borrow_fees"),
                                   repr=False)
    interest: pd.Series = field(default_factory=lambda: _empty_series("interest"),
                                repr=False)

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
                               periods_per_year=periods_per_year,
                               dividends=self.stats.get("dividends"),
                               borrow_fees=self.stats.get("borrow_fees"),
                               interest=self.stats.get("interest"))
        return stats_series(values)

    def _gross_exposure(self) -> np.ndarray:
        pos = self.positions.to_numpy(np.float64)
        from simbroker.results.build import mark_to_market, marking_closes

        _, gross = mark_to_market(pos, marking_closes(self.bars.close[:len(pos)]))
        return gross

    def format_summary(self) -> str:
        """The statistics as a readable two-column table.

        Ends with a note when the bars' volume is unknown (``Bars.volume_known`` False):
        fills then assumed every bar with a close was tradable.
        """
        text = format_stats(self.stats, self.config)
        if not self.bars.volume_known:
            text += ("\nNote: volume unknown (volume='unknown'): fills assumed every bar with "
                     "a close was tradable")
        return text

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

    # ------------------------------------------------------------------ tear sheet
    @property
    def periods_per_year(self) -> float:
        """Bars per calendar year spanned, as the statistics annualize by default."""
        return analytics.bars_per_year(pd.DatetimeIndex(self.equity.index),
                                       self.bars.interval)

    def traded_symbols(self) -> list[str]:
        """Symbols with a fill or a starting position, in the bars' order (all of the
        bars' symbols when there is neither)."""
        held = set(self.fills["symbol"].astype(str)) | set(self.config.get("positions", {}))
        return [s for s in self.bars.symbols if s in held] or list(self.bars.symbols)

    def benchmark(self, benchmark: BenchmarkSpec = None) -> pd.Series:
        """A benchmark's equity on this run's bars, starting at the run's start equity.

        Parameters
        ----------
        benchmark
            ``None`` (default): buy and hold of the traded symbols, equal-weighted from
            the start (:func:`~simbroker.results.analytics.buy_and_hold`); a symbol or
            a list of symbols of the bars: buy and hold of those; a Series of prices or
            equity indexed by time: aligned to the bars and rescaled
            (:func:`~simbroker.results.analytics.align_benchmark`).
        """
        start = float(self.stats["start_equity"])
        if isinstance(benchmark, pd.Series):
            return analytics.align_benchmark(benchmark, pd.DatetimeIndex(self.equity.index),
                                             start)
        names = ([benchmark] if isinstance(benchmark, str) else
                 self.traded_symbols() if benchmark is None else list(benchmark))
        return analytics.buy_and_hold(self.bars, start, names).iloc[:len(self.equity)]

    def monthly_returns(self) -> pd.DataFrame:
        """Returns by calendar month: years x ``Jan`` ... ``Dec`` (see
        :func:`~simbroker.results.analytics.monthly_returns`)."""
        return analytics.monthly_returns(self.equity, float(self.stats["start_equity"]))

    def yearly_returns(self) -> pd.Series:
        """Returns by calendar year, compounding to the total return."""
        return analytics.yearly_returns(self.equity, float(self.stats["start_equity"]))

    def drawdowns(self, n: int | None = 5) -> pd.DataFrame:
        """The worst ``n`` drawdowns, deepest first (all with ``None``): start, trough,
        recovery, depth, bars, length (see
        :func:`~simbroker.results.analytics.drawdown_periods`)."""
        return analytics.drawdown_periods(self.equity, float(self.stats["start_equity"]), n,
                                          interval=self.bars.interval)

    def rolling_sharpe(self, window: int | None = None, *,
                       periods_per_year: float | None = None) -> pd.Series:
        """Sharpe ratio over the trailing ``window`` bars (default
        :func:`~simbroker.results.analytics.default_window`: 126 for daily bars),
        annualized as :attr:`stats` (or with ``periods_per_year``)."""
        ppy, w = self._rolling_args(window, periods_per_year)
        return analytics.rolling_sharpe(self.returns, w, ppy)

    def rolling_volatility(self, window: int | None = None, *,
                           periods_per_year: float | None = None) -> pd.Series:
        """Annualized volatility over the trailing ``window`` bars (as
        :meth:`rolling_sharpe`)."""
        ppy, w = self._rolling_args(window, periods_per_year)
        return analytics.rolling_volatility(self.returns, w, ppy)

    def _rolling_args(self, window: int | None, periods_per_year: float | None
                      ) -> tuple[float, int]:
        ppy = self.periods_per_year if periods_per_year is None else float(periods_per_year)
        w = analytics.default_window(len(self.equity), ppy) if window is None else window
        return ppy, w

    def symbol_pnl(self) -> pd.DataFrame:
        """P&L by symbol, realized and open, net of fees; the totals sum to the equity
        change (see :func:`~simbroker.results.analytics.symbol_pnl`)."""
        return analytics.symbol_pnl(self.trades, self.fills)

    def plot(self, path: str | os.PathLike[str] | None = None, *, symbol: str | None = None,
             title: str | None = None, benchmark: BenchmarkSpec | Literal[False] = None,
             log: bool = False) -> Figure:
        """Draw equity, drawdown and fills with matplotlib.

        Three panels share the time axis: equity beside a benchmark (dashed), with a
        marker at each fill (shape by side; colour by symbol when up to eight symbols
        traded); the drawdown; and one symbol's close with its fills at their prices
        and its orders' limit and stop levels (``symbol``, by default the most traded).
        Axes use thousands separators. Needs ``matplotlib``
        (``pip install 'simbroker[plot]'``).

        Parameters
        ----------
        path
            Save the figure there (PNG, or what the suffix says) and close it.
        symbol
            The symbol for the price panel.
        title
            Figure title; default: the strategy's headline numbers.
        benchmark
            As :meth:`benchmark` takes it (default: buy and hold of the traded
            symbols); ``False`` draws none.
        log
            A log scale for the equity panel.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from simbroker.report import plot_result

        return plot_result(self, path, symbol=symbol, title=title, benchmark=benchmark,
                           log=log)

    def report(self, path: str | os.PathLike[str], *, title: str = "Backtest report",
               max_rows: int = 1000, benchmark: BenchmarkSpec | Literal[False] = None
               ) -> Path:
        """Write a self-contained HTML report, a tear sheet that opens offline.

        Statistics beside the benchmark's, equity and drawdown against the benchmark
        (drag to zoom, wheel to zoom, double-click to reset), monthly and yearly returns,
        the worst drawdowns, rolling Sharpe and volatility, the distribution of returns,
        P&L by symbol, and sortable tables of round trips, orders and fills (the first
        ``max_rows`` rows each; the heading says when cut). One file: inline SVG, CSS
        and a small script of our own, no network.

        Parameters
        ----------
        benchmark
            As :meth:`benchmark` takes it (default: buy and hold of the traded
            symbols); ``False`` leaves it out.

        Returns
        -------
        Path
            Where the report was written.
        """
        from simbroker.report import write_report

        return write_report(self, path, title=title, max_rows=max_rows, benchmark=benchmark)

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


