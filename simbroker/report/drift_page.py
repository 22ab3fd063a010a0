"""The drift section of the HTML report, and the one-file drift report around it.

:func:`drift_section` is a block of HTML (cards, the equity difference by cause as a
zoomable inline-SVG time chart, and sortable tables of matched fills, missed, extra,
refused and partial fills); :func:`drift_report` wraps it in a page with the report's
own CSS and script, so it opens offline anywhere, like the backtest report.
"""

from __future__ import annotations

import html
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simbroker.report import charts
from simbroker.report.assets import CSS, SCRIPT
from simbroker.report.drift_plot import CAUSE_COLOURS
from simbroker.report.tables import Column, data_table

if TYPE_CHECKING:
    from simbroker.drift import Drift

__all__ = ["drift_report", "drift_section"]

_FILLS = [
    Column("time_a", "Time (a)", "time"), Column("symbol", "Symbol"), Column("side", "Side"),
    Column("qty", "Qty", "qty"), Column("time_diff", "Time diff", "delta"),
    Column("price_a", "Price a", "money"), Column("price_b", "Price b", "money"),
    Column("ref_a", "Ref a", "money"), Column("ref_b", "Ref b", "money"),
    Column("price_diff_bps", "Price diff (bps)", "num"),
    Column("ref_drift_bps", "Reference (bps)", "num"),
    Column("slippage_bps", "Slippage (bps)", "num"), Column("fee_bps", "Fees (bps)", "num"),
    Column("price_pnl", "Price P&L", "money"), Column("fee_pnl", "Fee P&L", "money"),
    Column("matched_by", "Matched by"),
]
_ONLY = [
    Column("time", "Time", "time"), Column("symbol", "Symbol"), Column("side", "Side"),
    Column("qty", "Qty", "qty"), Column("price", "Price", "money"), Column("fee", "Fee", "money"),
    Column("order_id", "Order"), Column("client_order_id", "Client order id"),
    Column("reason", "In the other run"),
]
_REFUSALS = [
    Column("refused_in", "Refused in"), Column("time", "Time", "time"),
    Column("symbol", "Symbol"), Column("side", "Side"), Column("qty", "Qty", "qty"),
    Column("order_type", "Type"), Column("reason", "Reason"), Column("rule", "Rule"),
    Column("other_status", "Other run"), Column("other_filled_qty", "Filled there", "qty"),
]
_PARTIALS = [
    Column("time_a", "Time (a)", "time"), Column("symbol", "Symbol"), Column("side", "Side"),
    Column("ordered_a", "Ordered a", "qty"), Column("filled_a", "Filled a", "qty"),
    Column("ordered_b", "Ordered b", "qty"), Column("filled_b", "Filled b", "qty"),
    Column("qty_diff", "Diff (b - a)", "qty"), Column("n_fills_a", "Fills a", "int"),
    Column("n_fills_b", "Fills b", "int"),
]
_CAUSES = ("start", "reference", "slippage", "price", "fees", "timing", "partial", "missed",
           "extra")


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _card(label: str, value: str, sub: str = "") -> str:
    return (f"<div class='card'><span>{_esc(label)}</span><b>{_esc(value)}</b>"
            + (f"<span>{_esc(sub)}</span>" if sub else "") + "</div>")


def _bps(v: Any) -> str:
    return "n/a" if not isinstance(v, float) or math.isnan(v) else \
        f"{v:+.2f} bps".replace("-", "\u2212")


def _money(v: float) -> str:
    return f"{v:+,.2f}".replace("-", "\u2212")


def drift_section(d: Drift, *, max_rows: int = 1000) -> str:
    """The drift section: an ``<h2>`` and everything under it, as HTML."""
    s = d.summary
    cards = "".join([
        _card("Matched fills", f"{s['matched']:,}", f"{s['partials']:,} partial"),
        _card("Missed / extra", f"{s['missed']:,} / {s['extra']:,}", "fills in one run only"),
        _card("Refused in one run", f"{s['refused_in_a'] + s['refused_in_b']:,}",
              f"a {s['refused_in_a']:,}, b {s['refused_in_b']:,}"),
        _card("Price diff", _bps(s["price_diff_bps"]),
              f"reference {_bps(s['ref_drift_bps'])}, slippage {_bps(s['slippage_bps'])}"),
        _card("Fees", _bps(s["fee_bps"]), f"worst price diff "
              f"{s['max_abs_price_diff_bps']:.2f} bps"),
        _card("Equity difference", _money(s["equity_diff"]), "b \u2212 a, last time"),
    ])
    parts = [f"<h2 id='drift'>Drift: {_esc(d.names[1])} against {_esc(d.names[0])}</h2>",
             f"<p class='meta'>Reference prices: {_esc(d.reference)}"
             + (f" ({_esc(d.reference_rule)})" if d.reference == "bars" else "")
             + "; signs read b relative to a: bps are costs to b, money is b's gain.</p>",
             f"<div class='cards'>{cards}</div>"]
    eq = d.equity
    if len(eq) >= 2:
        series: list[dict[str, Any]] = [
            {"name": "difference (b \u2212 a)", "y": eq["difference"].to_numpy(np.float64),
             "colour": "#24292f"}]
        for cause in _CAUSES:
            y = eq[cause].to_numpy(np.float64)
            if np.nanmax(np.abs(y), initial=0.0) > 1e-9:
                series.append({"name": cause, "y": y, "colour": CAUSE_COLOURS[cause]})
        spec = charts.time_spec(pd.DatetimeIndex(eq.index),
                                [{"weight": 1, "kind": "money", "series": series}],
                                height=320)
        parts.append(charts.time_chart("drift-chart", spec,
                                       "Equity difference by cause"))
    split = "".join(f"<tr><td>{_esc(c)}</td><td class='num'>{_money(float(s[f'pnl_{c}']))}"
                    f"</td></tr>" for c in _CAUSES)
    parts.append("<table class='stats'><thead><tr><th>Cause</th><th>Equity effect on b"
                 f"</th></tr></thead><tbody>{split}<tr><td><b>difference</b></td><td "
                 f"class='num'><b>{_money(float(s['equity_diff']))}</b></td></tr></tbody>"
                 "</table><p class='note'>Reference, slippage, price and fees are booked "
                 "when the later of a matched pair filled; missed, extra and partial fills "
                 "are marked to market from their fill on; timing is the market move on a "
                 "matched fill while only one run held it.</p>")
    f = d.fills
    if len(f):
        worst = f.reindex(f["price_diff_bps"].abs().sort_values(
            ascending=False, kind="stable").index)
        parts.append(f"<h3>Matched fills ({len(f):,}), largest drift first</h3>"
                     + data_table(worst, _FILLS, table_id="drift-fills", max_rows=max_rows,
                                  sign_colour=("price_pnl", "fee_pnl")))
    for title, frame, cols, tid in (
            (f"Missed: filled in {d.names[0]} only", d.only_a, _ONLY, "drift-missed"),
            (f"Extra: filled in {d.names[1]} only", d.only_b, _ONLY, "drift-extra"),
            ("Refused in one run only", d.refusals, _REFUSALS, "drift-refusals"),
            ("Partial fills", d.partials, _PARTIALS, "drift-partials")):
        if len(frame):
            parts.append(f"<h3>{_esc(title)} ({len(frame):,})</h3>"
                         + data_table(frame, cols, table_id=tid, max_rows=max_rows))
        else:
            parts.append(f"<h3>{_esc(title)}</h3><p class='note'>None.</p>")
    return "\n".join(parts)


def drift_report(d: Drift, path: str | os.PathLike[str], *, title: str | None = None,
                 max_rows: int = 1000) -> Path:
    """Write :func:`drift_section` as a one-file HTML page at ``path``; return the path."""
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")
    title = title or f"Drift report: {d.names[1]} against {d.names[0]}"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
           f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>\n"
           f"<h1>{_esc(title)}</h1><p class='meta'>written {stamp} by simbroker</p>\n"
           f"{drift_section(d, max_rows=max_rows)}\n<script>{SCRIPT}</script>\n"
           f"</body></html>\n")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    return out
