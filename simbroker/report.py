"""Plots and a self-contained HTML report of a :class:`~simbroker.BacktestResult`.

Needs matplotlib (``pip install 'simbroker[plot]'``). Figures are built on the object
API (``matplotlib.figure.Figure``) when written to a file, so saving a plot works on a
machine without a display and leaves no figure open; without a path the figure comes
from ``pyplot`` so it shows in a notebook or with ``plt.show()``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simbroker.results.format import stat_rows
from simbroker.results.result import BacktestResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_result", "write_report"]

_BUY, _SELL = "#1a7f37", "#cf222e"


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'simbroker[plot]'") from None
    return matplotlib


def _top_symbol(result: BacktestResult) -> str | None:
    fills = result.fills
    if len(fills):
        traded = fills.groupby("symbol", observed=True)["notional"].sum()
        return str(traded.idxmax())
    return result.bars.symbols[0] if result.bars.n_symbols else None


def _headline(result: BacktestResult) -> str:
    s = result.stats

    def pct(key: str) -> str:
        v = s.get(key)
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2%}"

    sharpe = s.get("sharpe", float("nan"))
    return (f"total return {pct('total_return')}, CAGR {pct('cagr')}, "
            f"Sharpe {sharpe:.2f}, max drawdown {pct('max_drawdown')}")


def _draw(fig: Figure, result: BacktestResult, symbol: str | None, title: str | None) -> None:
    axes: list[Axes] = list(fig.subplots(3, 1, sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1.2, 2]}))
    ax_eq, ax_dd, ax_px = axes
    eq = result.equity
    index = pd.DatetimeIndex(eq.index)
    times = index.tz_convert("UTC").tz_localize(None) if index.tz else index
    ax_eq.plot(times, eq.to_numpy(), color="#0969da", lw=1.2, label="equity")
    fills = result.fills
    if len(fills):
        # A marker on the equity curve at each bar with a fill, by side.
        stamps = index.as_unit("ns").asi8
        fill_ns = fills["timestamp"].to_numpy("datetime64[ns]").astype(np.int64)
        pos = np.searchsorted(stamps, fill_ns, side="right") - 1
        pos = np.clip(pos, 0, len(eq) - 1)
        for side, color, marker in (("buy", _BUY, "^"), ("sell", _SELL, "v")):
            m = (fills["side"] == side).to_numpy()
            if m.any():
                ax_eq.scatter(times[pos[m]], eq.to_numpy()[pos[m]], color=color, marker=marker,
                              s=18, zorder=3, label=f"{side} ({int(m.sum())})")
    ax_eq.set_ylabel("equity")
    ax_eq.legend(loc="upper left", fontsize=8, frameon=False)
    ax_eq.grid(alpha=0.3)

    dd = result.drawdown.to_numpy() * 100
    ax_dd.fill_between(times, dd, 0, color=_SELL, alpha=0.35, lw=0)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.grid(alpha=0.3)

    sym = symbol if symbol is not None else _top_symbol(result)
    if sym is not None:
        if sym not in result.bars:
            raise ValueError(f"symbol {sym!r} is not in the result's bars "
                             f"({', '.join(result.bars.symbols)})")
        close = result.bars.close[:, result.bars.symbol_index(sym)]
        ax_px.plot(times, close, color="#57606a", lw=1.0, label=f"{sym} close")
        mine: pd.DataFrame = fills[fills["symbol"] == sym] if len(fills) else fills
        for side, color, marker in (("buy", _BUY, "^"), ("sell", _SELL, "v")):
            pick: pd.DataFrame = mine[mine["side"] == side] if len(mine) else mine
            if len(pick):
                ax_px.scatter(pick["timestamp"].to_numpy("datetime64[ns]"),
                              pick["price"].to_numpy(np.float64), color=color, marker=marker,
                              s=22, zorder=3, label=f"{side} fills")
        ax_px.set_ylabel("price")
        ax_px.legend(loc="upper left", fontsize=8, frameon=False)
    ax_px.grid(alpha=0.3)
    fig.suptitle(title if title is not None else _headline(result), fontsize=10)
    fig.autofmt_xdate()


def plot_result(result: BacktestResult, path: str | os.PathLike[str] | None = None, *,
                symbol: str | None = None, title: str | None = None) -> Figure:
    """See :meth:`simbroker.BacktestResult.plot`."""
    _matplotlib()
    if path is None:
        import matplotlib.pyplot as plt

        fig: Figure = plt.figure(figsize=(11, 7), layout="constrained")
        _draw(fig, result, symbol, title)
        return fig
    from matplotlib.figure import Figure as _Figure

    fig = _Figure(figsize=(11, 7), layout="constrained")
    _draw(fig, result, symbol, title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return fig


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _cell(value: Any) -> str:
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _table(frame: pd.DataFrame, max_rows: int, caption: str) -> str:
    n = len(frame)
    shown = frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False, name=None))
    note = (f" (first {max_rows:,} of {n:,})" if n > max_rows else f" ({n:,})")
    return (f"<h2>{html.escape(caption)}{note}</h2>\n<div class='scroll'><table>"
            f"<thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table></div>")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#1f2328;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
td,th{padding:3px 10px;border-bottom:1px solid #d0d7de;text-align:right;white-space:nowrap}
th{background:#f6f8fa;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
.scroll{max-height:480px;overflow:auto;border:1px solid #d0d7de}
.stats td:first-child{color:#57606a}img{max-width:100%}.meta{color:#57606a;font-size:13px}
"""


def write_report(result: BacktestResult, path: str | os.PathLike[str], *,
                 title: str = "Backtest report", max_rows: int = 1000) -> Path:
    """See :meth:`simbroker.BacktestResult.report`."""
    _matplotlib()
    from matplotlib.figure import Figure as _Figure

    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")
    fig = _Figure(figsize=(11, 7), layout="constrained")
    _draw(fig, result, None, None)
    image = _png(fig)
    stats_rows = "\n".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(value)}</td></tr>"
        for label, value in stat_rows(result.stats, result.config))
    bars = result.bars
    meta = (f"{len(bars):,} bars x {bars.n_symbols} symbols "
            f"({html.escape(', '.join(bars.symbols[:20]))}"
            f"{', ...' if bars.n_symbols > 20 else ''}); interval "
            f"{html.escape(str(pd.Timedelta(bars.interval)))}; written "
            f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by simbroker")
    body = "\n".join([
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{meta}</p>",
        f"<img alt='equity, drawdown and fills' src='data:image/png;base64,{image}'>",
        "<h2>Statistics</h2>",
        f"<table class='stats'><tbody>\n{stats_rows}\n</tbody></table>",
        _table(result.trades, max_rows, "Round trips"),
        _table(result.fills, max_rows, "Fills"),
    ])
    doc = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
           f"<body>\n{body}\n</body></html>\n")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    return out
