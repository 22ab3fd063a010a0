"""Matplotlib figures of a :class:`~simbroker.BacktestResult`: equity, drawdown, fills.

Needs matplotlib (``pip install 'simbroker[plot]'``). Figures are built on the object
API (``matplotlib.figure.Figure``) when written to a file, so saving a plot works on a
machine without a display and leaves no figure open; without a path the figure comes
from ``pyplot`` so it shows in a notebook or with ``plt.show()``.
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from simbroker.results.format import format_value
from simbroker.results.result import BacktestResult, BenchmarkSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["SYMBOL_COLOURS", "plot_result", "price_png"]

_BUY, _SELL = "#1a7f37", "#cf222e"
_EQUITY, _BENCH = "#0969da", "#8c959f"
#: One colour per traded symbol on the equity panel (up to this many symbols).
SYMBOL_COLOURS = ("#0969da", "#bf3989", "#bc4c00", "#8250df", "#1a7f37", "#9a6700",
                  "#0a7ea4", "#cf222e")


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'simbroker[plot]'") from None
    return matplotlib


def top_symbol(result: BacktestResult) -> str | None:
    """The symbol with the most traded notional (the first symbol without fills)."""
    fills = result.fills
    if len(fills):
        traded = fills.groupby("symbol", observed=True)["notional"].sum()
        return str(traded.idxmax())
    return result.bars.symbols[0] if result.bars.n_symbols else None


def headline(result: BacktestResult) -> str:
    """``total return 12.34%, CAGR 2.10%, Sharpe 0.812, max drawdown -13.06%`` (``n/a``
    where a number is undefined)."""
    s = result.stats
    return ", ".join(f"{label} {format_value(key, s.get(key))}" for key, label in (
        ("total_return", "total return"), ("cagr", "CAGR"), ("sharpe", "Sharpe"),
        ("max_drawdown", "max drawdown")))


def _thousands(ax: Axes) -> None:
    from matplotlib.ticker import FuncFormatter

    def fmt(v: float, _pos: int) -> str:
        if not math.isfinite(v):
            return ""
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}".rstrip("0").rstrip(".")

    ax.yaxis.set_major_formatter(FuncFormatter(fmt))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))


def _naive_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return index.tz_convert("UTC").tz_localize(None) if index.tz else index


def _draw(fig: Figure, result: BacktestResult, symbol: str | None, title: str | None,
          benchmark: BenchmarkSpec | Literal[False], log: bool) -> None:
    axes: list[Axes] = list(fig.subplots(3, 1, sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1.2, 2]}))
    ax_eq, ax_dd, ax_px = axes
    eq = result.equity
    index = pd.DatetimeIndex(eq.index)
    times = _naive_utc(index)
    ax_eq.plot(times, eq.to_numpy(), color=_EQUITY, lw=1.2, label="strategy")
    if benchmark is not False and len(eq):
        from simbroker.report.page import benchmark_name

        bench = result.benchmark(benchmark)
        name = benchmark_name(result, benchmark)
        ax_eq.plot(times, bench.to_numpy(), color=_BENCH, lw=1.0, ls="--",
                   label=_short(f"benchmark: {name}"))
    fills = result.fills
    if len(fills):
        # A marker on the equity curve at each bar with a fill: shape by side, colour by
        # symbol when few symbols traded (else by side).
        stamps = index.as_unit("ns").asi8
        fill_ns = fills["timestamp"].to_numpy("datetime64[ns]").astype(np.int64)
        pos = np.clip(np.searchsorted(stamps, fill_ns, side="right") - 1, 0, len(eq) - 1)
        syms = fills["symbol"].to_numpy(object)
        traded = [s for s in result.bars.symbols if s in set(syms)]
        by_symbol = len(traded) <= len(SYMBOL_COLOURS)
        side = fills["side"].to_numpy(object)
        y = eq.to_numpy()
        groups = ([(s, SYMBOL_COLOURS[i]) for i, s in enumerate(traded)] if by_symbol
                  else [(None, "")])
        for sym, colour in groups:
            for side_name, side_colour, marker in (("buy", _BUY, "^"), ("sell", _SELL, "v")):
                m = (side == side_name) & ((syms == sym) if sym is not None else True)
                if m.any():
                    label = (f"{sym} {side_name} ({int(m.sum())})" if sym is not None
                             else f"{side_name} ({int(m.sum())})")
                    ax_eq.scatter(times[pos[m]], y[pos[m]], color=colour or side_colour,
                                  marker=marker, s=20, zorder=3, label=label,
                                  edgecolors="white", linewidths=0.4)
    ax_eq.set_ylabel("equity")
    if log:
        ax_eq.set_yscale("log")
    _thousands(ax_eq)
    ax_eq.legend(loc="upper left", fontsize=7, frameon=False,
                 ncol=max(1, math.ceil(len(ax_eq.get_legend_handles_labels()[1]) / 6)))
    ax_eq.grid(alpha=0.3)

    dd = result.drawdown.to_numpy() * 100
    ax_dd.fill_between(times, dd, 0, color=_SELL, alpha=0.35, lw=0)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.grid(alpha=0.3)

    sym = symbol if symbol is not None else top_symbol(result)
    if sym is not None:
        if sym not in result.bars:
            raise ValueError(f"symbol {sym!r} is not in the result's bars "
                             f"({', '.join(result.bars.symbols)})")
        _price_panel(ax_px, result, sym, times)
    ax_px.grid(alpha=0.3)
    fig.suptitle(title if title is not None else headline(result), fontsize=10)
    fig.autofmt_xdate()


def _price_panel(ax: Axes, result: BacktestResult, sym: str, times: pd.DatetimeIndex
                 ) -> None:
    close = result.bars.close[:len(times), result.bars.symbol_index(sym)]
    ax.plot(times, close, color="#57606a", lw=1.0, label=f"{sym} close")
    fills = result.fills
    mine: pd.DataFrame = fills[fills["symbol"] == sym] if len(fills) else fills
    for side, color, marker in (("buy", _BUY, "^"), ("sell", _SELL, "v")):
        pick: pd.DataFrame = mine[mine["side"] == side] if len(mine) else mine
        if len(pick):
            ax.scatter(pick["timestamp"].to_numpy("datetime64[ns]"),
                       pick["price"].to_numpy(np.float64), color=color, marker=marker,
                       s=22, zorder=3, label=f"{sym} {side} fills ({len(pick)})")
    # Order levels: each limit / stop order's price, from submission to its last fill
    # (or one bar when it never filled), as a short horizontal segment.
    orders = result.orders
    mine_o = orders[orders["symbol"] == sym] if len(orders) else orders
    step = pd.Timedelta(result.bars.interval)
    last_fill = (mine.groupby("order_id", observed=True)["timestamp"].max()
                 if len(mine) else pd.Series(dtype="datetime64[ns, UTC]"))
    for col, colour, name in (("limit_price", "#0969da", "limit"),
                              ("stop_price", "#bc4c00", "stop")):
        o = mine_o[mine_o[col].notna()] if len(mine_o) else mine_o
        if not len(o):
            continue
        start = pd.DatetimeIndex(o["submitted_at"]).tz_convert("UTC").tz_localize(None)
        ends = pd.DatetimeIndex(o["order_id"].map(last_fill).astype("datetime64[ns, UTC]"))
        end = ends.tz_convert("UTC").tz_localize(None)
        end = end.where(~end.isna() & (end > start), start + step)
        ax.hlines(o[col].to_numpy(np.float64), start, end, colors=colour, lw=1.6,
                  linestyles="-" if name == "limit" else "--",
                  label=f"{name} levels ({len(o)})")
    ax.set_ylabel(f"{sym} price")
    _thousands(ax)
    ax.legend(loc="upper left", fontsize=7, frameon=False)


def price_png(result: BacktestResult, symbol: str | None = None) -> str | None:
    """One symbol's close with its fills and order levels (default: the most traded) as
    base64 PNG data for the report; ``None`` without matplotlib or bars."""
    try:
        from matplotlib.figure import Figure as _Figure
    except ImportError:
        return None
    sym = symbol if symbol is not None else top_symbol(result)
    if sym is None or not len(result.equity):
        return None
    fig = _Figure(figsize=(11, 3.4), layout="constrained")
    ax = fig.subplots()
    _price_panel(ax, result, sym, _naive_utc(pd.DatetimeIndex(result.equity.index)))
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def plot_result(result: BacktestResult, path: str | os.PathLike[str] | None = None, *,
                symbol: str | None = None, title: str | None = None,
                benchmark: BenchmarkSpec | Literal[False] = None,
                log: bool = False) -> Figure:
    """See :meth:`simbroker.BacktestResult.plot`."""
    _matplotlib()
    if path is None:
        import matplotlib.pyplot as plt

        fig: Figure = plt.figure(figsize=(11, 7.5), layout="constrained")
        _draw(fig, result, symbol, title, benchmark, log)
        return fig
    from matplotlib.figure import Figure as _Figure

    fig = _Figure(figsize=(11, 7.5), layout="constrained")
    _draw(fig, result, symbol, title, benchmark, log)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return fig
