"""Attach a :class:`CorporateActions` table to bars, checking what the prices are."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simbroker.actions._schedule import schedule
from simbroker.actions._table import CorporateActions
from simbroker.errors import DataError

if TYPE_CHECKING:
    from simbroker.bars import Bars

__all__ = ["attach_actions", "split_jumps"]


def split_jumps(bars: Bars, actions: CorporateActions) -> pd.DataFrame:
    """What the prices do at each split ex-date inside the bars.

    One row per split that falls inside the bars (with a bar before it): ``symbol,
    ex_date, ratio, jump`` (previous close / ex-bar open) and ``looks`` (``"raw"`` when the
    jump is nearer the ratio than 1 on a log scale, else ``"adjusted"``).
    """
    sched = schedule(bars, actions.splits)
    rows: list[dict[str, Any]] = []
    for k in range(len(sched.t)):
        t, j, r = int(sched.t[k]), int(sched.col[k]), float(sched.value[k])
        col_close = bars.close[:t, j]
        seen = np.flatnonzero(~np.isnan(col_close))
        if not len(seen):
            continue
        prev = float(col_close[seen[-1]])
        ref = float(bars.open[t, j])
        if not (np.isfinite(ref) and ref > 0 and prev > 0):
            ref = float(bars.close[t, j])
        jump = prev / ref if ref > 0 else float("nan")
        raw = abs(np.log(jump) - np.log(r)) < abs(np.log(jump)) if np.isfinite(jump) else True
        rows.append({"symbol": bars.symbols[j], "ex_date": sched.ex_date[k], "ratio": r,
                     "jump": jump, "looks": "raw" if raw else "adjusted"})
    out: pd.DataFrame = pd.DataFrame(rows, columns=["symbol", "ex_date", "ratio", "jump",
                                                    "looks"])
    return out


def attach_actions(bars: Bars, actions: CorporateActions | pd.DataFrame | str | Path | None, *,
                   prices: str | None = None, adjust: str | None = None,
                   unknown_symbols: str = "raise") -> Bars:
    """Bars carrying ``actions``: splits and dividends the engines apply.

    Parameters
    ----------
    bars
        The panel.
    actions
        A :class:`CorporateActions` table, a frame for :meth:`CorporateActions.from_frame`
        or a CSV/Parquet path for :meth:`CorporateActions.read`; ``None`` removes any.
    prices : {"raw", "adjusted"} or None
        What the bars' prices are. ``"raw"``: as traded, dropping by the ratio at a split
        (the engines then split positions and open orders). ``"adjusted"``: already
        split-adjusted (continuous through splits, as Yahoo's ``Close``): the engines do
        **not** split positions or orders again (that would multiply the position by the
        ratio a second time and inflate profit); dividends are credited per share of
        these units. ``None`` (default): found from the data; when a split's ex-date shows
        no price jump (the prices look adjusted), the call is refused with the symbols and
        dates, since guessing either way is a silent error of the split ratio in P&L.
    adjust : {"splits", "all"} or None
        Adjusted prices for the strategy's indicators (fills always use the bars' own
        prices): ``"splits"`` removes the split jumps, ``"all"`` also the dividend drops
        (a total-return price). See :func:`simbroker.actions.adjusted_bars`.
    unknown_symbols : {"raise", "drop"}
        What to do with actions of symbols that are not in the bars.

    Raises
    ------
    DataError
        Actions of unknown symbols (named), prices that look split-adjusted next to split
        factors when ``prices`` is not given, a bad ``prices`` or ``adjust``.
    """
    from simbroker.bars import Bars

    if not isinstance(bars, Bars):
        raise DataError(f"attach_actions needs Bars, got {type(bars).__name__}")
    if actions is None:
        return dataclasses.replace(bars, actions=None)
    if isinstance(actions, pd.DataFrame):
        actions = CorporateActions.from_frame(actions)
    elif isinstance(actions, (str, Path)):
        actions = CorporateActions.read(actions)
    if not isinstance(actions, CorporateActions):
        raise DataError(f"actions must be CorporateActions or a DataFrame, got "
                        f"{type(actions).__name__}")
    if prices not in (None, "raw", "adjusted"):
        raise DataError(f"prices must be 'raw', 'adjusted' or None, got {prices!r}")
    if adjust not in (None, "splits", "all"):
        raise DataError(f"adjust must be 'splits', 'all' or None, got {adjust!r}")
    if unknown_symbols not in ("raise", "drop"):
        raise DataError(f"unknown_symbols must be 'raise' or 'drop', got {unknown_symbols!r}")
    unknown = [s for s in actions.symbols if s not in bars]
    if unknown:
        if unknown_symbols == "raise":
            shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
            raise DataError(f"corporate actions for symbols not in the bars: {shown}; the "
                            f"bars have {', '.join(bars.symbols[:10])}"
                            + (" ..." if bars.n_symbols > 10 else "")
                            + " (unknown_symbols='drop' ignores them)")
        actions = actions.for_symbols(bars.symbols)
    if prices is None:
        jumps = split_jumps(bars, actions)
        adjusted = jumps[jumps["looks"] == "adjusted"]
        if len(adjusted):
            problems = [{"symbol": r.symbol, "timestamp": str(r.ex_date), "field": "split",
                         "reason": f"a {r.ratio:g}:1 split, but the price moved only "
                                   f"{r.jump:.3g}x across its ex-date"}
                        for r in adjusted.head(10).itertuples()]
            raise DataError(
                "the prices look already split-adjusted next to split factors; applying "
                "the splits to positions as well would count each split twice. Pass "
                "prices='adjusted' (splits not applied to positions) or prices='raw' "
                "(they are as traded)", problems=problems)
        prices = "raw"
    table = dataclasses.replace(actions, prices=prices, adjust=adjust)
    return dataclasses.replace(bars, actions=table)
