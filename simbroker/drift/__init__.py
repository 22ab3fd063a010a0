"""Drift: why two runs of one strategy differ, fill by fill.

:func:`drift` compares two runs' trade logs (a backtest and its rehearsal, paper and
live, yesterday's live run and its backtest on the same bars) and attributes every
difference to a cause:

- matched fills (paired by client order id, by the real-time runner's order key, else by
  symbol, side and time): the price difference in bps, split into **reference-price
  drift** (the venue used another bar or price to start from), **slippage** (the move
  from that reference) and **fees**, and the time difference;
- fills in one run only (**missed** / **extra**), orders **refused** in one run only
  (with the refusal reason), **partial** fills;
- the equity difference over time, split exactly into those causes plus **timing** (the
  market move on a fill while only one run held it).

See :mod:`simbroker.drift._attribute` for the formulas. ``simbroker drift A B`` prints
the table and gates a deploy on thresholds; :meth:`Drift.report` writes the HTML report.
"""

from __future__ import annotations

from simbroker.drift._attribute import BUCKETS
from simbroker.drift._compare import drift
from simbroker.drift._result import Drift
from simbroker.drift._runs import RunSource

__all__ = ["BUCKETS", "Drift", "RunSource", "drift"]
