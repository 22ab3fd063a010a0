"""A matplotlib figure of a :class:`~simbroker.drift.Drift`: the equity difference by
cause over time, and each matched fill's price difference split into its parts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simbroker.report.plot import _matplotlib, _naive_utc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from simbroker.drift import Drift

__all__ = ["CAUSE_COLOURS", "plot_drift"]

#: The colour of each cause, in the plot and the HTML report alike.
CAUSE_COLOURS = {"start": "#8c959f", "reference": "#0969da", "slippage": "#bc4c00",
                 "price": "#9a6700", "fees": "#8250df", "timing": "#0a7ea4",
                 "partial": "#bf3989", "missed": "#cf222e", "extra": "#1a7f37"}


def _draw(fig: Figure, d: Drift) -> None:
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 2))
    eq = d.equity
    if len(eq):
        x = _naive_utc(pd.DatetimeIndex(eq.index))
        for cause, colour in CAUSE_COLOURS.items():
            y = eq[cause].to_numpy(np.float64)
            if np.nanmax(np.abs(y), initial=0.0) > 1e-6:
                top.plot(x, y, color=colour, lw=1.2, label=cause)
        top.plot(x, eq["difference"].to_numpy(np.float64), color="black", lw=1.8,
                 label="difference (b - a)")
        top.axhline(0, color="#57606a", lw=0.6)
        top.legend(loc="upper left", fontsize=8, ncols=5, frameon=False)
    top.set_title(f"Equity of {d.names[1]} minus {d.names[0]}, by cause", fontsize=10,
                  loc="left")
    f = d.fills
    if len(f):
        pos = np.arange(len(f))
        ref = np.nan_to_num(f["ref_drift_bps"].to_numpy(np.float64))
        slip = np.nan_to_num(f["slippage_bps"].to_numpy(np.float64))
        unsplit = np.where(f["ref_drift_bps"].isna(), f["price_diff_bps"], 0.0)
        fee = f["fee_bps"].to_numpy(np.float64)
        parts = [(v, label, colour) for v, label, colour in (
            (ref, "reference", CAUSE_COLOURS["reference"]),
            (slip, "slippage", CAUSE_COLOURS["slippage"]),
            (unsplit, "price (no reference)", CAUSE_COLOURS["price"]),
            (fee, "fees", CAUSE_COLOURS["fees"])) if np.abs(v).max() > 1e-9]
        width = 0.8 / max(len(parts), 1)
        for k, (values, label, colour) in enumerate(parts):
            bottom.bar(pos + (k - (len(parts) - 1) / 2) * width, values, width=width,
                       color=colour, label=label)
        bottom.axhline(0, color="#57606a", lw=0.6)
        bottom.set_xlabel("matched fills, in time order")
        bottom.legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
    bottom.set_ylabel("bps (cost to b)")
    bottom.set_title(f"{len(f)} matched fills, {len(d.only_a)} missed, {len(d.only_b)} "
                     f"extra, {len(d.refusals)} refused in one run", fontsize=10, loc="left")


def plot_drift(d: Drift, path: str | os.PathLike[str] | None = None) -> Figure:
    """See :meth:`simbroker.drift.Drift.plot`."""
    _matplotlib()
    if path is None:
        import matplotlib.pyplot as plt

        fig: Figure = plt.figure(figsize=(11, 7), layout="constrained")
        _draw(fig, d)
        return fig
    from matplotlib.figure import Figure as _Figure

    fig = _Figure(figsize=(11, 7), layout="constrained")
    _draw(fig, d)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return fig
