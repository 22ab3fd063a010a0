"""Corporate actions: splits and cash dividends, applied by the paper broker and the
vectorized runner, and adjusted prices for indicators.

* :class:`CorporateActions` is the immutable table (``from_frame``, ``read``,
  ``from_rows``); :func:`attach_actions` checks it against bars and attaches it
  (``Bars.actions``).
* When each action takes effect is fixed in :mod:`simbroker.actions._schedule`: an action
  dated ``D`` applies before the symbol's first bar on or after ``D`` trades.
"""

from simbroker.actions._adjust import adjusted_bars, adjustment_factors
from simbroker.actions._attach import attach_actions, split_jumps
from simbroker.actions._schedule import Schedule, schedule
from simbroker.actions._table import KINDS, CorporateActions

__all__ = ["KINDS", "CorporateActions", "Schedule", "adjusted_bars", "adjustment_factors",
           "attach_actions", "schedule", "split_jumps"]
