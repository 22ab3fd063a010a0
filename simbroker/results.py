"""Backtest results: fills, orders, equity, positions over time and statistics.

Equity is marked to each bar's close: ``equity[t] = cash[t] + sum(position[t] * close[t])``,
with a symbol's last known close carried forward over bars where it did not trade.
Cash and positions over time come from the broker's own per-fill ledger, so the last row
equals the broker's state exactly.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd

from simbroker.bars import Bars

if TYPE_CHECKING:
    from simbroker.paper import PaperBroker

__all__ = ["BacktestResult", "build_result", "compute_stats"]

_YEAR_NS = 365.25 * 86_400e9
_FILL_COLUMNS = ["timestamp", "symbol", "side", "qty", "price", "fee", "notional", "order_id",
                 "client_order_id", "fill_id"]


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
    stats : dict
        See :func:`compute_stats`.
    config : dict
        What ran: starting cash, slippage and fee models (their reprs).
    bars : Bars
        The panel that was replayed.
    """

    fills: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.Series
    cash: pd.Series
    positions: pd.DataFrame
    stats: dict[str, Any]
    config: dict[str, Any]
    bars: Bars = field(repr=False)

    @property
    def final_positions(self) -> dict[str, float]:
        """Positions after the last bar (flat symbols left out)."""
        last = self.positions.iloc[-1]
        return {str(k): float(v) for k, v in last.items() if v != 0}

    @property
    def final_cash(self) -> float:
        """Cash after the last bar."""
        return float(self.cash.iloc[-1])

    def format_summary(self) -> str:
        """The statistics as a readable two-column table."""
        return format_stats(self.stats, self.config)

    def summary(self, file: TextIO | None = None) -> None:
        """Print the statistics table (to stdout by default)."""
        print(self.format_summary(), file=file if file is not None else sys.stdout)

    def __str__(self) -> str:
        return self.format_summary()

    def __repr__(self) -> str:
        s = self.stats
        return (f"BacktestResult({s['n_bars']} bars x {self.bars.n_symbols} symbols, "
                f"{s['n_fills']} fills, total_return={s['total_return']:.4%}, "
                f"sharpe={s['sharpe']:.3f})")


def build_result(broker: PaperBroker) -> BacktestResult:
    """Assemble a :class:`BacktestResult` from a paper broker that has replayed its bars.

    Bars not yet replayed are left out (the result ends at the broker's current bar).
    """
    bars = broker.bars
    t_end = broker.bar_index + 1
    n = bars.n_symbols
    index = bars.index[:t_end]

    ledger_bar = np.asarray(broker._ledger_bar, np.int64)
    ledger_sym = np.asarray(broker._ledger_sym, np.int64)
    ledger_cash = np.asarray(broker._ledger_cash, np.float64)
    ledger_pos = np.asarray(broker._ledger_pos, np.float64)

    # Cash after each bar: the cash after that bar's last fill, carried forward.
    last_fill = np.searchsorted(ledger_bar, np.arange(t_end), side="right") - 1
    cash = np.where(last_fill >= 0, ledger_cash[np.maximum(last_fill, 0)] if len(ledger_cash)
                    else 0.0, broker.initial_cash)

    # Positions after each bar: row 0 holds the starting positions, then the position
    # after the last fill of each (bar, symbol), carried forward.
    pos = np.full((t_end + 1, n), np.nan)
    init = np.zeros(n)
    for sym, qty in broker.initial_positions.items():
        init[bars.symbol_index(sym)] = qty
    pos[0] = init
    if len(ledger_bar):
        key = ledger_bar * n + ledger_sym
        # The last fill of each (bar, symbol) decides; unique() on the reversed keys finds it.
        _, first_rev = np.unique(key[::-1], return_index=True)
        last = len(key) - 1 - first_rev
        pos[ledger_bar[last] + 1, ledger_sym[last]] = ledger_pos[last]
    pos = _ffill(pos)[1:]

    close = _ffill(bars.close[:t_end].copy())
    close = _bfill(close)
    with np.errstate(invalid="ignore"):
        held = np.where(pos != 0, pos * close, 0.0)
    equity = cash + np.nansum(held, axis=1)
    first_close = close[0] if t_end else np.zeros(n)
    start_equity = broker.initial_cash + float(np.nansum(np.where(init != 0, init * first_close,
                                                                  0.0)))

    fills = _fills_frame(broker.get_fills())
    orders = pd.DataFrame(broker.get_orders())
    equity_s = pd.Series(equity, index=index, name="equity")
    stats = compute_stats(equity_s, fills, start_equity=start_equity, interval=bars.interval,
                          n_orders=len(orders))
    config = {"cash": broker.initial_cash, "slippage": repr(broker.slippage),
              "fees": repr(broker.fees), "allow_short": broker.allow_short}
    return BacktestResult(
        fills=fills,
        orders=orders,
        equity=equity_s,
        cash=pd.Series(cash, index=index, name="cash"),
        positions=pd.DataFrame(pos, index=index, columns=pd.Index(bars.symbols, name="symbol")),
        stats=stats,
        config=config,
        bars=bars,
    )


def compute_stats(
    equity: pd.Series,
    fills: pd.DataFrame,
    *,
    start_equity: float,
    interval: np.timedelta64,
    n_orders: int = 0,
) -> dict[str, Any]:
    """Performance statistics of an equity curve and its fills.

    Per-bar returns include the step from ``start_equity`` to the first bar's equity.
    Annualization uses the observed bar frequency: bars per year = bars / years spanned
    (about 252 for daily bars of one exchange). Sharpe assumes a zero risk-free rate.

    Returns
    -------
    dict
        ``start, end, n_bars, start_equity, final_equity, total_return, cagr,
        ann_volatility, sharpe, max_drawdown, n_orders, n_fills, fees_paid,
        traded_notional, turnover`` (turnover = traded notional / mean equity).
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
        out.update(total_return=0.0, cagr=nan, ann_volatility=nan, sharpe=nan,
                   max_drawdown=0.0)
    else:
        span_ns = float((equity.index[-1] - equity.index[0]).value) + float(
            interval.astype(np.int64))
        years = span_ns / _YEAR_NS
        curve = np.concatenate([[start_equity], eq])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rets = curve[1:] / curve[:-1] - 1.0
            growth = eq[-1] / start_equity
            total = growth - 1.0
            cagr = (growth ** (1.0 / years) - 1.0 if growth > 0 else -1.0) if years > 0 else nan
            per_year = n / years if years > 0 else nan
            sd = float(np.std(rets, ddof=1)) if n > 1 else nan
            vol = sd * math.sqrt(per_year) if per_year == per_year else nan
            sharpe = (float(np.mean(rets)) / sd * math.sqrt(per_year)
                      if sd and sd == sd and per_year == per_year else nan)
            peak = np.maximum.accumulate(curve)
            dd = float(np.min(curve / peak - 1.0))
        out.update(total_return=float(total), cagr=float(cagr), ann_volatility=float(vol),
                   sharpe=float(sharpe), max_drawdown=dd)
    traded = float(fills["notional"].sum()) if len(fills) else 0.0
    mean_eq = float(np.mean(eq)) if n else float(start_equity)
    out.update(
        n_orders=int(n_orders),
        n_fills=len(fills),
        fees_paid=float(fills["fee"].sum()) if len(fills) else 0.0,
        traded_notional=traded,
        turnover=traded / mean_eq if mean_eq > 0 else nan,
    )
    return out


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
    ("max_drawdown", "Max drawdown", "{:.2%}"),
    ("n_orders", "Orders", "{:,}"),
    ("n_fills", "Fills", "{:,}"),
    ("fees_paid", "Fees paid", "{:,.2f}"),
    ("traded_notional", "Traded notional", "{:,.2f}"),
    ("turnover", "Turnover", "{:.2f}x"),
]


def format_stats(stats: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """Render statistics (and optionally the run's configuration) as an aligned table."""
    rows: list[tuple[str, str]] = []
    for key, label, fmt in _LABELS:
        if key in stats:
            value = stats[key]
            if isinstance(value, float) and math.isnan(value):
                text = "n/a"
            elif isinstance(value, pd.Timestamp):
                text = value.isoformat()
            else:
                text = fmt.format(value)
            rows.append((label, text))
    for key in sorted(set(stats) - {k for k, _, _ in _LABELS}):
        rows.append((key, str(stats[key])))
    if config:
        rows.append(("Slippage", str(config.get("slippage"))))
        rows.append(("Fees", str(config.get("fees"))))
    width = max(len(label) for label, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    rule = "-" * (width + vwidth + 3)
    return "\n".join([rule, *(f"{label:<{width}}   {v:>{vwidth}}" for label, v in rows), rule])


def _fills_frame(fills: list[Any]) -> pd.DataFrame:
    """Fills as a DataFrame with the same columns and dtypes whether empty or not."""
    cols: dict[str, Any] = {c: [f[c] for f in fills] for c in _FILL_COLUMNS}
    frame = pd.DataFrame({
        c: (pd.to_datetime(v, utc=True).as_unit("ns") if c == "timestamp"
            else np.asarray(v, np.float64) if c in ("qty", "price", "fee", "notional")
            else pd.Series(v, dtype=object))
        for c, v in cols.items()
    })
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    out: pd.DataFrame = frame
    return out


def _ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN down each column (vectorized)."""
    if a.size == 0:
        return a
    idx = np.where(np.isnan(a), 0, np.arange(a.shape[0])[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    out: np.ndarray = a[idx, np.arange(a.shape[1])]
    return out


def _bfill(a: np.ndarray) -> np.ndarray:
    """Back-fill NaN up each column (vectorized)."""
    return _ffill(a[::-1])[::-1]
