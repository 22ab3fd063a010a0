"""Inline SVG charts for the HTML report: time charts that zoom, bar charts, a heatmap.

A time chart is a *spec* (a JSON-able dict: point labels, panels of series) drawn here
to a static SVG; the report's script (:mod:`simbroker.report.assets`) draws the same
spec again over a zoomed range, with the same layout rules, so the page reads without
a script and zooms with one. Long runs are thinned to at most ``MAX_POINTS`` points per
series, keeping each bucket's lowest and highest value, so drawdowns stay visible.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simbroker.results.format import format_timestamp

__all__ = ["MAX_POINTS", "bar_chart", "heat_colour", "time_chart", "time_spec"]

MAX_POINTS = 3000
WIDTH = 1100
_LEFT, _RIGHT, _BOTTOM, _LEGEND = 74, 12, 26, 18
_AXIS = "#57606a"
_GRID = "#eaeef2"


# --------------------------------------------------------------------------- numbers
def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi, lo = lo + 1.0 if lo == hi else lo, min(lo, hi)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    step = float(step)
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def axis_label(value: float, kind: str, step: float) -> str:
    """A tick label: ``money`` with thousands separators, ``pct`` as a percentage with
    as many decimals as the step needs, ``num`` likewise."""
    if step > 0 and abs(value) < step * 1e-6:
        value = 0.0  # no "-0" from rounding
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if kind == "pct":
        decimals = max(0, -math.floor(math.log10(step * 100))) if step > 0 else 0
        return f"{value * 100:.{decimals}f}%".replace("-", "\u2212")
    if kind == "money":
        return f"{value:,.{min(decimals, 2)}f}".replace("-", "\u2212")
    return f"{value:,.{min(decimals, 3)}f}".replace("-", "\u2212")


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


# --------------------------------------------------------------------------- time charts
def thin(n: int, series: Sequence[np.ndarray], max_points: int = MAX_POINTS) -> np.ndarray:
    """Point positions to draw of ``n`` bars: all when few, else the first and last of
    each bucket with every series' lowest and highest (in time order)."""
    if n <= max_points:
        return np.arange(n)
    buckets = max_points // 4
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [edges[:-1], edges[1:] - 1]
    for y in series:
        v = np.where(np.isfinite(y), y, np.nan)
        for fn in (np.fmin.reduceat, np.fmax.reduceat):
            ext = fn(v, edges[:-1])
            # The first position in each bucket holding its extreme.
            hit = np.flatnonzero(v == np.repeat(ext, np.diff(edges)))
            bucket = np.searchsorted(edges, hit, side="right") - 1
            first = np.flatnonzero(np.append(True, bucket[1:] != bucket[:-1]))
            keep.append(hit[first])
    out: np.ndarray = np.unique(np.concatenate(keep))
    return out


def time_spec(index: pd.DatetimeIndex, panels: list[dict[str, Any]], *,
              height: int = 360) -> dict[str, Any]:
    """A time chart's spec: ``panels`` is a list of ``{"weight", "kind", "series":
    [{"name", "y" (ndarray), "colour", "area"?, "dash"?}]}``; panels share the time axis
    and split ``height`` by weight. Values are thinned and rounded for the page."""
    ys = [np.asarray(s["y"], np.float64) for p in panels for s in p["series"]]
    keep = thin(len(index), ys)
    labels = [format_timestamp(t) for t in pd.DatetimeIndex(index)[keep]]
    inner = height - _BOTTOM
    total = sum(float(p.get("weight", 1)) for p in panels)
    top = 0.0
    out_panels = []
    for p in panels:
        h = inner * float(p.get("weight", 1)) / total
        series = []
        for s in p["series"]:
            y = np.asarray(s["y"], np.float64)[keep]
            series.append({"name": s["name"], "colour": s["colour"],
                           "area": bool(s.get("area", False)),
                           "dash": bool(s.get("dash", False)),
                           "y": [float(f"{v:.6g}") if math.isfinite(v) else None for v in y]})
        out_panels.append({"top": round(top, 1), "h": round(h, 1), "kind": p["kind"],
                           "series": series})
        top += h
    return {"w": WIDTH, "h": height, "left": _LEFT, "right": _RIGHT, "x": labels,
            "panels": out_panels}


def _panel_range(panel: dict[str, Any], i0: int, i1: int) -> tuple[float, float]:
    vals = [v for s in panel["series"] for v in s["y"][i0:i1 + 1] if v is not None]
    if any(s["area"] for s in panel["series"]):
        vals.append(0.0)
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def render_time_chart(spec: dict[str, Any], i0: int, i1: int) -> str:
    """The SVG content of ``spec`` over points ``i0..i1`` (the script's ``draw`` is this
    function in JavaScript)."""
    w, left, right = float(spec["w"]), float(spec["left"]), float(spec["right"])
    span = max(i1 - i0, 1)
    pw = w - left - right

    def px(i: int) -> float:
        return left + (i - i0) / span * pw

    parts: list[str] = []
    for panel in spec["panels"]:
        top, h = panel["top"], panel["h"]
        y_top, y_bot = top + _LEGEND, top + h - 6
        lo, hi = _panel_range(panel, i0, i1)
        ticks = nice_ticks(lo, hi, max(3, int((y_bot - y_top) / 28)))
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0

        def py(v: float, lo: float = lo, hi: float = hi, y_top: float = y_top,
               y_bot: float = y_bot) -> float:
            return y_bot - (v - lo) / (hi - lo) * (y_bot - y_top)

        for t in ticks:
            y = py(t)
            parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{_GRID}"/>')
            parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f'{_esc(axis_label(t, panel["kind"], step))}</text>')
        lx = left + 4
        for s in panel["series"]:
            pts = [(px(i), py(v)) for i, v in enumerate(s["y"][i0:i1 + 1], start=i0)
                   if v is not None]
            d = _path(s["y"], i0, i1, px, py)
            if s["area"] and pts:
                zero = py(0.0)
                parts.append(f'<path d="{d} L{pts[-1][0]:.1f},{zero:.1f} '
                             f'L{pts[0][0]:.1f},{zero:.1f}Z" fill="{s["colour"]}" '
                             f'fill-opacity="0.3" stroke="none"/>')
            dash = ' stroke-dasharray="5 3"' if s["dash"] else ""
            parts.append(f'<path d="{d}" fill="none" stroke="{s["colour"]}" '
                         f'stroke-width="1.4"{dash}/>')
            parts.append(f'<rect x="{lx}" y="{top + 5}" width="12" height="3" '
                         f'fill="{s["colour"]}"/><text x="{lx + 16}" y="{top + 11}">'
                         f'{_esc(s["name"])}</text>')
            lx += 24 + 7 * len(s["name"])
        parts.append(f'<line x1="{left}" x2="{left}" y1="{y_top}" y2="{y_bot}" '
                     f'stroke="{_AXIS}"/>')
    bottom = spec["h"] - _BOTTOM
    parts.append(f'<line x1="{left}" x2="{w - right}" y1="{bottom}" y2="{bottom}" '
                 f'stroke="{_AXIS}"/>')
    n_ticks = 6
    at = sorted({min(i1, round(i0 + k * span / (n_ticks - 1))) for k in range(n_ticks)})
    for k, (i, text) in enumerate(zip(at, x_labels([spec["x"][i] for i in at]), strict=True)):
        anchor = "start" if k == 0 else "end" if k == len(at) - 1 else "middle"
        parts.append(f'<text x="{px(i):.1f}" y="{bottom + 17}" text-anchor="{anchor}">'
                     f'{_esc(text)}</text>')
    return "".join(parts)


def x_labels(labels: list[str]) -> list[str]:
    """Tick labels for the time axis: dates alone when every tick falls on its own day,
    else the times without the `` UTC`` suffix (the page says times are UTC)."""
    dates = [t[:10] for t in labels]
    if len(set(dates)) == len(dates):
        return dates
    return [t.removesuffix(" UTC") for t in labels]


def _path(y: list[float | None], i0: int, i1: int, px: Any, py: Any) -> str:
    out: list[str] = []
    pen = "M"
    for i in range(i0, i1 + 1):
        v = y[i]
        if v is None:
            pen = "M"
            continue
        out.append(f"{pen}{px(i):.1f},{py(v):.1f}")
        pen = "L"
    return "".join(out)


def time_chart(chart_id: str, spec: dict[str, Any], label: str) -> str:
    """A zoomable time chart: the static SVG and its spec for the page's script."""
    n = len(spec["x"])
    body = render_time_chart(spec, 0, max(n - 1, 0)) if n else ""
    data = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    return (f'<figure class="chart"><svg id="{chart_id}" class="tchart" role="img" '
            f'aria-label="{_esc(label)}" viewBox="0 0 {spec["w"]} {spec["h"]}" '
            f'data-spec="{chart_id}-spec">{body}</svg>'
            f'<script type="application/json" id="{chart_id}-spec">{data}</script>'
            f'<figcaption>{_esc(label)}. Drag across to zoom, wheel to zoom, '
            f'double-click to reset.</figcaption></figure>')


# --------------------------------------------------------------------------- bar charts
def bar_chart(labels: Sequence[str], series: Sequence[tuple[str, Any, str]], *,
              kind: str, height: int = 240, width: int = WIDTH,
              colours: Sequence[str] | None = None, label: str = "",
              max_labels: int = 16) -> str:
    """Vertical bars, one group per label, one bar per series (``(name, values,
    colour)``); negative values hang below the zero line. ``colours`` colours the bars of
    a single series one by one (e.g. by sign)."""
    n, k = len(labels), len(series)
    left, right, top, bottom = _LEFT, _RIGHT, _LEGEND + 6, 40
    vals = [float(v) for _, vs, _ in series for v in vs if math.isfinite(float(v))]
    lo, hi = min([0.0, *vals]), max([0.0, *vals])
    if lo == hi:
        hi = lo + 1.0
    pad = (hi - lo) * 0.05
    lo, hi = (lo - pad if lo < 0 else lo), hi + pad
    ticks = nice_ticks(lo, hi, 5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    plot_h = height - top - bottom

    def py(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    parts = []
    for t in ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(t):.1f}" '
                     f'y2="{py(t):.1f}" stroke="{_GRID}"/><text x="{left - 6}" '
                     f'y="{py(t) + 4:.1f}" text-anchor="end">'
                     f'{_esc(axis_label(t, kind, step))}</text>')
    group = (width - left - right) / max(n, 1)
    bar = group * 0.8 / max(k, 1)
    every = max(1, math.ceil(n / max_labels))
    for i, name in enumerate(labels):
        x0 = left + i * group + group * 0.1
        for j, (sname, values, colour) in enumerate(series):
            v = float(values[i])
            if not math.isfinite(v):
                continue
            c = colours[i] if colours is not None and k == 1 else colour
            y1, y2 = sorted((py(v), py(0.0)))
            title = f"{name} {sname}: {axis_label(v, kind, step / 100)}"
            parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{y1:.1f}" width="{bar:.1f}" '
                         f'height="{max(y2 - y1, 0.5):.1f}" fill="{c}">'
                         f'<title>{_esc(title)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x0 + group * 0.4:.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="middle">{_esc(name)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(0.0):.1f}" '
                 f'y2="{py(0.0):.1f}" stroke="{_AXIS}"/>')
    lx = left + 4
    if k > 1 or colours is None:
        for sname, _, colour in series:
            parts.append(f'<rect x="{lx}" y="5" width="12" height="8" fill="{colour}"/>'
                         f'<text x="{lx + 16}" y="13">{_esc(sname)}</text>')
            lx += 28 + 7 * len(sname)
    return (f'<figure class="chart"><svg class="bchart" role="img" aria-label="{_esc(label)}" '
            f'viewBox="0 0 {width} {height}">{"".join(parts)}</svg>'
            + (f"<figcaption>{_esc(label)}</figcaption>" if label else "") + "</figure>")


def heat_colour(value: float, scale: float) -> str:
    """A cell background for a return: green above zero, red below, stronger with
    ``|value| / scale`` (capped at 1); white for zero or NaN."""
    if not math.isfinite(value) or scale <= 0:
        return "#ffffff"
    a = min(abs(value) / scale, 1.0)
    r, g, b = (26, 127, 55) if value > 0 else (207, 34, 46)
    mix = [round(255 + (c - 255) * a * 0.75) for c in (r, g, b)]
    return f"#{mix[0]:02x}{mix[1]:02x}{mix[2]:02x}"
