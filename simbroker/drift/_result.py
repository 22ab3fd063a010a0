"""The :class:`Drift` object: the tables of a comparison, its summary, a text table and a
deploy gate."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Drift"]

_TABLE_COLUMNS = ["symbol", "side", "qty", "time_a", "time_diff", "price_a", "price_b",
                  "price_diff_bps", "ref_drift_bps", "slippage_bps", "fee_bps"]


def _fsum(values: pd.Series) -> float:
    v = values.to_numpy(np.float64)
    return math.fsum(v[np.isfinite(v)].tolist())


@dataclass(frozen=True, eq=False)
class Drift:
    """Two runs compared fill by fill (what :func:`simbroker.drift` returns).

    Every signed figure reads "run ``b`` relative to run ``a``": a positive ``*_bps`` is
    a cost (``b`` executed worse), a positive ``*_pnl`` or equity column is money ``b``
    has more of. ``drift(b, a)`` negates each of them and swaps ``only_a``/``only_b``.

    Attributes
    ----------
    fills : DataFrame
        One row per order both runs filled: ``symbol, side, order_type, qty`` (filled by
        both), ``notional`` (the bps base, ``qty`` x mean reference price), ``time_a,
        time_b, time_diff`` (first fills; ``b - a``), ``price_a, price_b`` (volume-weighted),
        ``ref_a, ref_b`` (reference prices) and ``bar_a, bar_b`` (the bars they came from),
        ``slip_bps_a, slip_bps_b`` (each run's own slippage from its reference),
        ``price_diff_bps = ref_drift_bps + slippage_bps``, ``fee_bps``, ``total_bps``, the
        same as money (``price_pnl, ref_pnl, slippage_pnl, fee_pnl``), the order ids and
        ``matched_by`` (``client_order_id``, ``runner key`` or ``time window``).
    only_a, only_b : DataFrame
        Orders filled in one run only (``only_a``: missed by ``b``; ``only_b``: extra in
        ``b``), with ``other_status`` and a ``reason`` naming what the other run did (its
        refusal reason, expired unfilled, no such order).
    refusals : DataFrame
        Orders refused in one run only: ``refused_in`` (``"a"``/``"b"``), the order, the
        refusal ``reason`` and ``rule``, and the other run's ``other_status``.
    partials : DataFrame
        Orders both runs filled, in different quantities or short of the order.
    equity : DataFrame
        Indexed by time (bar open times with bars, else fill times): ``equity_a,
        equity_b, difference`` (``b - a``) and the difference split exactly into
        ``start, reference, slippage, price, fees, timing, partial, missed, extra`` (see
        :mod:`simbroker.drift`).
    names : tuple of str
        The runs' names.
    reference : str
        Where the reference prices came from: ``"bars"``, ``"recorded"`` (the fills'
        ``ref_price``) or ``"none"`` (price differences are then not split).
    """

    fills: pd.DataFrame
    only_a: pd.DataFrame
    only_b: pd.DataFrame
    refusals: pd.DataFrame
    partials: pd.DataFrame
    equity: pd.DataFrame
    names: tuple[str, str] = ("a", "b")
    reference: str = "none"
    reference_rule: str = field(default="rule", repr=False)

    @cached_property
    def summary(self) -> pd.Series:
        """The comparison in numbers (signed ones read ``b`` relative to ``a``).

        ``matched, missed, extra, refused_in_a, refused_in_b, partials``; notional-weighted
        means ``price_diff_bps, ref_drift_bps, slippage_bps, fee_bps, total_bps``;
        ``max_abs_price_diff_bps``; ``time_diff`` (mean) and ``max_abs_time_diff``;
        ``equity_diff`` (the last difference) and its split ``pnl_<cause>``.
        """
        f = self.fills
        base = _fsum(f["notional"]) if len(f) else 0.0

        def mean_bps(col: str) -> float:
            if not base or not len(f) or not np.isfinite(f[col].to_numpy(np.float64)).any():
                return math.nan
            return -_fsum(f[col]) / base * 1e4 + 0.0

        td = (pd.to_timedelta(f["time_diff"]).dt.as_unit("ns").astype("int64").tolist()
              if len(f) else [])
        last = self.equity.iloc[-1] if len(self.equity) else None
        out: dict[str, Any] = {
            "a": self.names[0], "b": self.names[1], "reference": self.reference,
            "matched": len(f), "missed": len(self.only_a), "extra": len(self.only_b),
            "refused_in_a": int((self.refusals["refused_in"] == "a").sum()),
            "refused_in_b": int((self.refusals["refused_in"] == "b").sum()),
            "partials": len(self.partials),
            "price_diff_bps": mean_bps("price_pnl"), "ref_drift_bps": mean_bps("ref_pnl"),
            "slippage_bps": mean_bps("slippage_pnl"), "fee_bps": mean_bps("fee_pnl"),
        }
        out["total_bps"] = (out["price_diff_bps"] + out["fee_bps"]) if len(f) else math.nan
        diffs = f["price_diff_bps"].abs().to_numpy(np.float64) if len(f) else np.array([])
        out["max_abs_price_diff_bps"] = float(diffs.max()) if len(diffs) else 0.0
        out["time_diff"] = pd.Timedelta(round(sum(td) / len(td))) if td else pd.Timedelta(0)
        out["max_abs_time_diff"] = pd.Timedelta(max(abs(x) for x in td)) if td else \
            pd.Timedelta(0)
        out["equity_diff"] = float(last["difference"]) if last is not None else 0.0
        from simbroker.drift._attribute import BUCKETS

        for name in BUCKETS:
            out[f"pnl_{name}"] = float(last[name]) if last is not None else 0.0
        series: pd.Series = pd.Series(out, dtype=object, name="drift")
        return series

    # ------------------------------------------------------------------ the gate
    def breaches(self, *, max_drift_bps: float | None = None,
                 max_missed: int | None = None) -> list[str]:
        """Why this drift fails a deploy gate; empty when it passes.

        ``max_drift_bps`` bounds every matched fill's ``|price_diff_bps|`` (reference
        drift plus slippage; fees are reported apart); ``max_missed`` bounds the fills in
        one run only (missed plus extra).
        """
        out = []
        if max_drift_bps is not None:
            if not max_drift_bps >= 0:
                raise ValueError(f"max_drift_bps must be >= 0, got {max_drift_bps!r}")
            f = self.fills
            over = f[f["price_diff_bps"].abs() > max_drift_bps]
            if len(over):
                worst = over.loc[over["price_diff_bps"].abs().idxmax()]
                out.append(f"{len(over)} matched fill(s) drift more than {max_drift_bps:g} "
                           f"bps (worst {worst['price_diff_bps']:+.2f} bps: {worst['side']} "
                           f"{worst['qty']:g} {worst['symbol']} at {worst['time_a']})")
        if max_missed is not None:
            if max_missed < 0:
                raise ValueError(f"max_missed must be >= 0, got {max_missed!r}")
            n = len(self.only_a) + len(self.only_b)
            if n > max_missed:
                out.append(f"{n} fill(s) in one run only ({len(self.only_a)} missed, "
                           f"{len(self.only_b)} extra) > {max_missed}")
        return out

    # ------------------------------------------------------------------ output
    def table(self, max_rows: int = 20) -> str:
        """The comparison as text: the summary, then the largest drifts and every
        difference in kind (missed, extra, refused, partial), ``max_rows`` of each."""
        s = self.summary
        lines = [f"Drift of {s['b']} against {s['a']} (reference prices: {s['reference']})",
                 f"  matched {s['matched']}, missed {s['missed']}, extra {s['extra']}, "
                 f"refused only in a {s['refused_in_a']}, only in b {s['refused_in_b']}, "
                 f"partial {s['partials']}"]
        if s["matched"]:
            lines.append(
                f"  price diff {s['price_diff_bps']:+.2f} bps = reference "
                f"{s['ref_drift_bps']:+.2f} + slippage {s['slippage_bps']:+.2f}; fees "
                f"{s['fee_bps']:+.2f} bps; worst |price diff| "
                f"{s['max_abs_price_diff_bps']:.2f} bps; time diff mean {s['time_diff']}, "
                f"max {s['max_abs_time_diff']}")
        lines.append(f"  equity difference (b - a) {s['equity_diff']:+,.2f}: " + ", ".join(
            f"{name} {s[f'pnl_{name}']:+,.2f}" for name in (
                "start", "reference", "slippage", "price", "fees", "timing", "partial",
                "missed", "extra") if s[f"pnl_{name}"] != 0.0))
        with pd.option_context("display.width", 160, "display.max_columns", 30,
                               "display.float_format", "{:,.4f}".format):
            f = self.fills
            if len(f):
                top = f.reindex(f["price_diff_bps"].abs().sort_values(
                    ascending=False, kind="stable").index).head(max_rows)
                lines += ["", f"Matched fills, largest drift first ({min(max_rows, len(f))} "
                          f"of {len(f)}):", top[_TABLE_COLUMNS].to_string(index=False)]
            for title, frame, cols in (
                    ("Missed (filled in a only)", self.only_a,
                     ["time", "symbol", "side", "qty", "price", "reason"]),
                    ("Extra (filled in b only)", self.only_b,
                     ["time", "symbol", "side", "qty", "price", "reason"]),
                    ("Refused in one run only", self.refusals,
                     ["refused_in", "time", "symbol", "side", "qty", "reason",
                      "other_status"]),
                    ("Partial fills", self.partials,
                     ["symbol", "side", "time_a", "ordered_a", "filled_a", "filled_b",
                      "qty_diff"])):
                if len(frame):
                    lines += ["", f"{title} ({len(frame)}):",
                              frame[cols].head(max_rows).to_string(index=False)]
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """The equity difference over time split by cause, and each matched fill's drift
        (matplotlib, ``pip install 'simbroker[plot]'``); saved to ``path`` when given.
        Returns the figure."""
        from simbroker.report.drift_plot import plot_drift

        return plot_drift(self, path)

    def report(self, path: str | os.PathLike[str], *, title: str | None = None,
               max_rows: int = 1000) -> Path:
        """Write the drift report (one self-contained HTML file) to ``path``."""
        from simbroker.report.drift_page import drift_report

        return drift_report(self, path, title=title, max_rows=max_rows)

    def _repr_html_(self) -> str:
        from simbroker.report.drift_page import drift_section

        return drift_section(self, max_rows=50)

    def __repr__(self) -> str:
        s = self.summary
        bps = (f", price diff {s['price_diff_bps']:+.2f} bps (reference "
               f"{s['ref_drift_bps']:+.2f}, slippage {s['slippage_bps']:+.2f}), fees "
               f"{s['fee_bps']:+.2f} bps" if s["matched"] else "")
        return (f"Drift({s['b']!s} vs {s['a']!s}: {s['matched']} matched, {s['missed']} "
                f"missed, {s['extra']} extra, {s['refused_in_a'] + s['refused_in_b']} "
                f"refused in one run, {s['partials']} partial{bps}; equity diff "
                f"{s['equity_diff']:+,.2f})")
