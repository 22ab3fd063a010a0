"""The one-file HTML report of a :class:`~simbroker.BacktestResult`: a tear sheet.

Everything is inline (SVG charts, CSS, one small script of our own), so the file opens
offline, anywhere; with matplotlib installed it also embeds the most traded symbol's
price with its fills and order levels as PNG data (left out without it). Sections:
headline cards, equity and drawdown against a benchmark (zoomable), statistics beside
the benchmark's, monthly returns (heatmap) and yearly returns, the worst drawdowns,
rolling Sharpe and volatility, the distribution of returns, P&L by symbol, the price
panel, and sortable round trips, orders and fills.
"""

from __future__ import annotations

import html
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from simbroker.report import charts
from simbroker.report.assets import CSS, SCRIPT
from simbroker.report.drift_page import drift_section
from simbroker.report.plot import price_png, top_symbol
from simbroker.report.tables import Column, data_table
from simbroker.results import analytics
from simbroker.results.format import format_value, summary_frame
from simbroker.results.result import BacktestResult, BenchmarkSpec
from simbroker.results.stats import compute_stats, stats_series

if TYPE_CHECKING:
    from simbroker.drift import Drift

__all__ = ["benchmark_name", "interval_text", "render_report", "write_report"]

_STRATEGY, _BENCH, _DD = "#0969da", "#8c959f", "#cf222e"
_POS, _NEG = "#1a7f37", "#cf222e"

_TRADE_COLUMNS = [
    Column("symbol", "Symbol"), Column("direction", "Side"), Column("opened", "Opened", "time"),
    Column("closed", "Closed", "time"), Column("qty", "Qty", "qty"),
    Column("entry_notional", "Entry notional", "money"), Column("fees", "Fees", "money"),
    Column("pnl", "P&L", "money"), Column("return", "Return", "pct"),
    Column("holding", "Held", "delta"), Column("bars_held", "Bars", "int"),
]
_FILL_COLUMNS = [
    Column("timestamp", "Time", "time"), Column("symbol", "Symbol"), Column("side", "Side"),
    Column("qty", "Qty", "qty"), Column("price", "Price", "money"), Column("fee", "Fee", "money"),
    Column("notional", "Notional", "money"), Column("order_id", "Order"),
    Column("client_order_id", "Client order id"), Column("fill_id", "Fill"),
]
_ORDER_COLUMNS = [
    Column("submitted_at", "Submitted", "time"), Column("order_id", "Order"),
    Column("client_order_id", "Client order id"), Column("symbol", "Symbol"),
    Column("side", "Side"), Column("qty", "Qty", "qty"), Column("order_type", "Type"),
    Column("limit_price", "Limit", "money"), Column("stop_price", "Stop", "money"),
    Column("tif", "TIF"), Column("status", "Status"), Column("filled_qty", "Filled", "qty"),
    Column("avg_fill_price", "Avg fill price", "money"), Column("reason", "Reason"),
]
_DRAWDOWN_COLUMNS = [
    Column("depth", "Depth", "pct"), Column("start", "Peak", "time"),
    Column("trough", "Trough", "time"), Column("recovery", "Recovered", "time"),
    Column("bars", "Bars", "int"), Column("length", "Length", "delta"),
]
_SYMBOL_COLUMNS = [
    Column("symbol", "Symbol"), Column("total", "Total P&L", "money"),
    Column("realized", "Realized", "money"), Column("unrealized", "Open (marked)", "money"),
    Column("fees", "Fees", "money"), Column("contribution", "Contribution", "pct"),
    Column("trips", "Closed trips", "int"), Column("win_rate", "Win rate", "pct"),
    Column("fills", "Fills", "int"), Column("traded_notional", "Traded notional", "money"),
]
# Statistics that describe an equity curve alone, so the benchmark has them too.
_CURVE_STATS = ("start", "end", "n_bars", "start_equity", "final_equity", "total_return",
                "cagr", "ann_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
                "max_drawdown_duration", "max_drawdown_bars")
_RELATIVE = (("beta", "Beta to benchmark", "{:.3f}"), ("correlation", "Correlation", "{:.3f}"),
             ("alpha", "Alpha (ann.)", "{:.2%}"), ("tracking_error", "Tracking error (ann.)",
                                                   "{:.2%}"),
             ("information_ratio", "Information ratio", "{:.3f}"))


def interval_text(interval: np.timedelta64) -> str:
    """A bar length in words: ``1 day``, ``5 minutes``, ``1 hour``, ``30 seconds``."""
    ns = int(np.timedelta64(interval, "ns").astype(np.int64))
    for size, unit in ((86_400 * 10**9, "day"), (3600 * 10**9, "hour"), (60 * 10**9, "minute"),
                       (10**9, "second"), (10**6, "millisecond")):
        if ns >= size and ns % size == 0:
            k = ns // size
            return f"{k:,} {unit}{'s' if k != 1 else ''}"
    return f"{ns:,} ns"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def benchmark_name(result: BacktestResult, benchmark: BenchmarkSpec) -> str:
    """How the report and the plot name a benchmark: ``buy and hold A, B, equal weight``
    or the given series' name."""
    if isinstance(benchmark, pd.Series):
        return str(benchmark.name) if benchmark.name is not None else "the given series"
    names = ([benchmark] if isinstance(benchmark, str) else
             result.traded_symbols() if benchmark is None else list(benchmark))
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    weight = ", equal weight" if len(names) > 1 else ""
    return f"buy and hold {shown}{weight}"


def _drawdown_of(equity: np.ndarray, start: float) -> np.ndarray:
    peak = np.maximum.accumulate(np.concatenate([[start], equity]))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = equity / peak - 1.0
    return out


def _returns_of(equity: pd.Series, start: float) -> pd.Series:
    eq = equity.to_numpy(np.float64)
    prev = np.concatenate([[start], eq[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        out: pd.Series = pd.Series(eq / prev - 1.0, index=equity.index)
    return out


def _minus(key: object, text: str) -> str:
    """A typographic minus in numbers (not in dates, nor in model reprs)."""
    return text if key in ("start", "end", "slippage", "fees") else text.replace("-", "\u2212")


def _card(label: str, value: str, sub: str = "") -> str:
    return (f"<div class='card'><span>{_esc(label)}</span><b>{_esc(value)}</b>"
            + (f"<span>{_esc(sub)}</span>" if sub else "") + "</div>")


def _stats_table(result: BacktestResult, bench_stats: pd.Series | None,
                 relative: dict[str, float] | None) -> str:
    mine = summary_frame(result.stats, result.config)
    theirs = summary_frame(bench_stats) if bench_stats is not None else None
    head = "<tr><th>Statistic</th><th>Strategy</th>" + (
        "<th>Benchmark</th>" if theirs is not None else "") + "</tr>"
    rows = []
    for key, row in mine.iterrows():
        other = ""
        if theirs is not None:
            other = (str(theirs.loc[key, "value"])
                     if key in _CURVE_STATS and key in theirs.index else "")
            other = f"<td>{_esc(_minus(key, other))}</td>"
        rows.append(f"<tr><td>{_esc(row['label'])}</td><td>{_esc(_minus(key, row['value']))}"
                    f"</td>{other}</tr>")
    for key, label, fmt in _RELATIVE if relative else ():
        v = relative[key] if relative else float("nan")
        text = "n/a" if not math.isfinite(v) else fmt.format(v).replace("-", "\u2212")
        rows.append(f"<tr><td>{_esc(label)}</td><td>{_esc(text)}</td><td></td></tr>")
    return (f"<table class='stats'><thead>{head}</thead><tbody>{''.join(rows)}</tbody>"
            "</table>")


def _heatmap(monthly: pd.DataFrame, yearly: pd.Series, bench_yearly: pd.Series | None) -> str:
    cells = monthly.to_numpy(np.float64)
    finite = np.abs(cells[np.isfinite(cells)])
    scale = float(np.quantile(finite, 0.95)) if len(finite) else 0.0
    head = "<tr><th>Year</th>" + "".join(f"<th>{m}</th>" for m in analytics.MONTHS) + \
        "<th>Year</th>" + ("<th>Bench</th>" if bench_yearly is not None else "") + "</tr>"
    digits = 2 if scale < 0.01 else 1  # small monthly moves need another decimal
    rows = []
    ys = yearly.to_dict()
    bs = bench_yearly.to_dict() if bench_yearly is not None else {}
    for year, values in zip(monthly.index, cells, strict=True):
        tds = "".join(
            f"<td style='background:{charts.heat_colour(v, scale)}'>"
            f"{'' if not math.isfinite(v) else _pct_cell(v, digits)}</td>"
            for v in values)
        y = ys.get(year, float("nan"))
        tds += (f"<td class='year' style='background:{charts.heat_colour(y, scale * 3)}'>"
                f"{format_value('total_return', y).replace('-', chr(0x2212))}</td>")
        if bench_yearly is not None:
            b = bs.get(year, float("nan"))
            tds += f"<td>{format_value('total_return', b).replace('-', chr(0x2212))}</td>"
        rows.append(f"<tr><td>{year}</td>{tds}</tr>")
    return (f"<table class='heat' id='monthly'><thead>{head}</thead><tbody>{''.join(rows)}"
            "</tbody></table><p class='note'>Monthly returns in %, from each month's last "
            "equity to the next; they compound to the year's and the total return.</p>")


def _pct_cell(v: float, digits: int) -> str:
    text = f"{v * 100:.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")  # no "-0.0"
    return text.replace("-", "\u2212")


def _histogram(rets: pd.Series) -> str:
    r = rets[np.isfinite(rets.to_numpy(np.float64))]
    if not len(r) or float(r.min()) == float(r.max()):
        only = f" all {len(r):,} are {float(r.iloc[0]):.2%}" if len(r) else " none"
        return f"<p class='note'>No spread of returns to show:{only}.</p>"
    hist = analytics.returns_histogram(r, bins=41)
    mid = (hist["left"] + hist["right"]).to_numpy() / 2
    labels = [f"{m * 100:.1f}%".replace("-", "\u2212") for m in mid]
    colours = [_POS if lo >= 0 else _NEG if hi <= 0 else _BENCH
               for lo, hi in zip(hist["left"], hist["right"], strict=True)]

    def num(v: float) -> str:
        return f"{v:.2f}" if math.isfinite(v) else "n/a"

    note = (f"{len(r):,} returns: mean {r.mean():.3%}, std {r.std():.3%}, skew "
            f"{num(float(r.skew()))}, excess kurtosis {num(float(r.kurt()))}, worst "
            f"{r.min():.2%}, best {r.max():.2%}").replace("-", "\u2212")
    return charts.bar_chart(labels, [("returns", hist["count"].to_numpy(np.float64),
                                      _STRATEGY)],
                            kind="num", height=240, width=540, colours=colours,
                            label=note, max_labels=7)


def _section(title: str, body: str, anchor: str) -> str:
    return f"<h2 id='{anchor}'>{_esc(title)}</h2>\n{body}"


def _counted(name: str, n: int, max_rows: int, detail: str = "") -> str:
    shown = f"first {max_rows:,} of {n:,}" if n > max_rows else f"{n:,}"
    return f"{name} ({shown}{': ' + detail if detail else ''})"


def _drop_empty(frame: pd.DataFrame, columns: list[Column], optional: tuple[str, ...]
                ) -> list[Column]:
    return [c for c in columns if c.key not in optional
            or (len(frame) and frame[c.key].notna().any())]


def write_report(result: BacktestResult, path: str | os.PathLike[str], *,
                 title: str = "Backtest report", max_rows: int = 1000,
                 benchmark: BenchmarkSpec | Literal[False] = None,
                 drift: Drift | None = None) -> Path:
    """See :meth:`simbroker.BacktestResult.report`; ``drift`` (a
    :func:`simbroker.drift` of this run against another) adds the drift section."""
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")
    doc = render_report(result, title=title, max_rows=max_rows, benchmark=benchmark,
                        drift=drift)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    return out


def render_report(result: BacktestResult, *, title: str = "Backtest report",
                  max_rows: int = 1000, benchmark: BenchmarkSpec | Literal[False] = None,
                  drift: Drift | None = None) -> str:
    """The report as one HTML document (what :func:`write_report` writes)."""
    s = result.stats
    bars = result.bars
    start = float(s["start_equity"])
    eq = result.equity
    index = pd.DatetimeIndex(eq.index)
    ppy = result.periods_per_year
    rets = result.returns
    has_bars = len(eq) > 0

    bench: pd.Series | None = None
    bench_stats: pd.Series | None = None
    relative: dict[str, float] | None = None
    bench_name = ""
    if benchmark is not False and has_bars:
        bench = result.benchmark(benchmark)
        bench_name = benchmark_name(result, benchmark)
        no_fills = result.fills.iloc[:0]
        bench_stats = stats_series(compute_stats(bench, no_fills, start_equity=start,
                                                 interval=bars.interval))
        relative = analytics.relative_stats(rets, _returns_of(bench, start), ppy)

    def f(key: str, stats: pd.Series = s) -> str:
        text = format_value(key, stats.get(key))
        return text if key in ("start", "end") else text.replace("-", "\u2212")

    n_sym = bars.n_symbols
    meta = (f"{len(eq):,} bars x {n_sym} symbol{'s' if n_sym != 1 else ''} "
            f"({', '.join(bars.symbols[:20])}{', ...' if n_sym > 20 else ''}), "
            f"{f('start')} to {f('end')}, interval {interval_text(bars.interval)}"
            f"{' (times in UTC)' if 'UTC' in f('start') else ''}; "
            f"benchmark: {bench_name or 'none'}; "
            f"written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by simbroker")
    def vs(key: str) -> str:
        return f"benchmark {f(key, bench_stats)}" if bench_stats is not None else ""

    cards = "".join([
        _card("Total return", f("total_return"), vs("total_return")),
        _card("CAGR", f("cagr"), vs("cagr")),
        _card("Sharpe", f("sharpe"), vs("sharpe")),
        _card("Max drawdown", f("max_drawdown"), vs("max_drawdown")),
        _card("Volatility (ann.)", f("ann_volatility"), vs("ann_volatility")),
        _card("Final equity", f("final_equity"), f"from {f('start_equity')}"),
        _card("Fills", f("n_fills"), f"fees {f('fees_paid')}"),
    ])
    parts = [f"<h1>{_esc(title)}</h1>", f"<p class='meta'>{_esc(meta)}</p>",
             f"<div class='cards'>{cards}</div>"]

    if has_bars:
        dd = result.drawdown.to_numpy(np.float64)
        eq_series: list[dict[str, Any]] = [
            {"name": "strategy", "y": eq.to_numpy(np.float64), "colour": _STRATEGY}]
        dd_series: list[dict[str, Any]] = [
            {"name": "strategy drawdown", "y": dd, "colour": _DD, "area": True}]
        if bench is not None:
            b = bench.to_numpy(np.float64)
            eq_series.append({"name": f"benchmark: {bench_name}", "y": b, "colour": _BENCH,
                              "dash": True})
            dd_series.append({"name": "benchmark drawdown", "y": _drawdown_of(b, start),
                              "colour": _BENCH, "dash": True})
        spec = charts.time_spec(index, [
            {"weight": 3, "kind": "money", "series": eq_series},
            {"weight": 1.3, "kind": "pct", "series": dd_series}], height=430)
        parts.append(charts.time_chart("equity-chart", spec, "Equity and drawdown"))

    monthly = result.monthly_returns()
    yearly = result.yearly_returns()
    bench_yearly = analytics.yearly_returns(bench, start) if bench is not None else None
    year_series: list[tuple[str, Any, str]] = [("strategy", yearly.to_numpy(np.float64), _STRATEGY)]
    if bench_yearly is not None:
        year_series.append(("benchmark", bench_yearly.to_numpy(np.float64), _BENCH))
    yearly_chart = (charts.bar_chart([str(y) for y in yearly.index], year_series, kind="pct",
                                     height=220, width=540, label="Yearly returns")
                    if len(yearly) else "")
    parts.append("<div class='grid wide'><div>" + _section(
        "Statistics", _stats_table(result, bench_stats, relative), "statistics")
        + "</div><div>" + _section("Monthly returns", _heatmap(monthly, yearly, bench_yearly),
                                   "monthly")
        + yearly_chart + "</div></div>")

    worst = result.drawdowns(10)
    n_dd = len(result.drawdowns(None))
    parts.append("<div class='grid'><div>" + _section(
        f"Worst drawdowns ({min(10, n_dd)} of {n_dd})",
        data_table(worst, _DRAWDOWN_COLUMNS, table_id="drawdowns",
                   missing={"recovery": "open"}), "drawdowns")
        + "<p class='note'>From a peak (the start counts) until equity is back at it; "
          "length to the recovery, or to the last bar while open.</p></div><div>"
        + _section("Distribution of returns", _histogram(rets), "distribution")
        + "</div></div>")

    if len(eq) >= 4:
        window = analytics.default_window(len(eq), ppy)
        sharpe: list[dict[str, Any]] = [
            {"name": "strategy Sharpe", "y": result.rolling_sharpe(window).to_numpy(),
             "colour": _STRATEGY}]
        vol: list[dict[str, Any]] = [
            {"name": "strategy volatility", "y": result.rolling_volatility(window).to_numpy(),
             "colour": "#8250df"}]
        if bench is not None:
            br = _returns_of(bench, start)
            sharpe.append({"name": "benchmark Sharpe", "y": analytics.rolling_sharpe(
                br, window, ppy).to_numpy(), "colour": _BENCH, "dash": True})
            vol.append({"name": "benchmark volatility", "y": analytics.rolling_volatility(
                br, window, ppy).to_numpy(), "colour": _BENCH, "dash": True})
        spec = charts.time_spec(index, [{"weight": 1, "kind": "num", "series": sharpe},
                                        {"weight": 1, "kind": "pct", "series": vol}],
                                height=330)
        parts.append(_section(
            f"Rolling Sharpe and volatility ({window:,} bars, annualized at "
            f"{ppy:,.1f} bars a year)",
            charts.time_chart("rolling-chart", spec, "Rolling Sharpe and volatility"),
            "rolling"))

    pnl = result.symbol_pnl().reset_index()
    change = float(s["final_equity"]) - start
    if len(pnl):
        pnl["contribution"] = pnl["total"] / start if start else np.nan
        chart = charts.bar_chart(
            pnl["symbol"].astype(str).tolist(), [("P&L", pnl["total"].to_numpy(), _STRATEGY)],
            kind="money", height=200, colours=[_POS if v >= 0 else _NEG for v in pnl["total"]],
            label="P&L by symbol, net of fees (open positions marked to the last close)")
        total = float(pnl["total"].sum())
        parts.append(_section(
            f"P&L by symbol ({len(pnl):,})",
            chart + data_table(pnl, _SYMBOL_COLUMNS, table_id="symbols",
                               sign_colour=("total", "realized", "unrealized", "contribution"))
            + f"<p class='note'>Sum {total:,.2f}; equity change {change:,.2f}.</p>",
            "symbols"))

    png = price_png(result)
    if png is not None:
        parts.append(_section(
            f"{top_symbol(result)}: fills and order levels on the price (the most traded)",
            f"<img class='plot' alt='close, fills and order levels' "
            f"src='data:image/png;base64,{png}'>", "price"))
    if drift is not None:
        parts.append(drift_section(drift, max_rows=max_rows))
    trips = result.trades
    n_open = int(trips["is_open"].sum()) if len(trips) else 0
    parts.append(_section(
        _counted("Round trips", len(trips), max_rows,
                 f"{len(trips) - n_open:,} closed, {n_open:,} open" if len(trips) else ""),
        data_table(trips, _TRADE_COLUMNS, table_id="trades", max_rows=max_rows,
                   sign_colour=("pnl", "return"), missing={"closed": "open"})
        + "<p class='note'>Flat to flat per symbol; P&L net of fees; open trips are marked "
          "to the last close and left out of the trip statistics.</p>", "trades"))
    orders = result.orders
    parts.append(_section(
        _counted("Orders", len(orders), max_rows),
        data_table(orders, _drop_empty(orders, _ORDER_COLUMNS, ("client_order_id", "reason",
                                                                "limit_price", "stop_price")),
                   table_id="orders", max_rows=max_rows), "orders"))
    fills = result.fills
    parts.append(_section(
        _counted("Fills", len(fills), max_rows),
        data_table(fills, _drop_empty(fills, _FILL_COLUMNS, ("client_order_id",)),
                   table_id="fills", max_rows=max_rows), "fills"))

    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n")
