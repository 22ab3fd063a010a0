"""The paper broker's matching of trailing stops and auction orders.

Arrays in, arrays out, across all open orders of one kind at once: the broker calls these
only when such orders are open, so plain market/limit/stop runs never pay for them.

Book codes of the order kinds handled here (the plain ones are 0-3):
``4`` trailing stop by amount, ``5`` trailing stop by percent, ``6`` an opening-auction
order (``tif="opg"``), ``7`` a closing-auction order (``tif="cls"``); the auction codes
carry a limit (or NaN for market).
"""

from __future__ import annotations

import numpy as np

from simbroker._replace import replaced_order

__all__ = ["AT_CLOSE", "AT_OPEN", "TRAIL_AMOUNT", "TRAIL_PERCENT", "auction_fill",
           "replaced_order", "trail_fill", "trail_levels", "trailed_extremes"]

TRAIL_AMOUNT = 4
TRAIL_PERCENT = 5
AT_OPEN = 6
AT_CLOSE = 7


def trail_levels(buy: np.ndarray, pct: np.ndarray, trail: np.ndarray,
                 extreme: np.ndarray) -> np.ndarray:
    """The stop level of trailing stops from their extreme (bars before this one).

    Sell: ``extreme - trail`` or ``extreme * (1 - trail / 100)``; buy mirrored
    (``extreme + trail``, ``extreme * (1 + trail / 100)``).
    """
    dist = np.where(pct, extreme * trail / 100.0, trail)
    return np.where(buy, extreme + dist, extreme - dist)


def trail_fill(buy: np.ndarray, level: np.ndarray, o: np.ndarray, h: np.ndarray,
               lo: np.ndarray, tradable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trigger mask and reference price of trailing stops on one bar.

    A sell triggers when ``low <= level`` and fills from ``min(open, level)`` (a gap
    through the level fills at the open); a buy mirrored.
    """
    hit = tradable & np.where(buy, h >= level, lo <= level)
    ref = np.where(buy, np.maximum(o, level), np.minimum(o, level))
    return hit, ref


def trailed_extremes(buy: np.ndarray, extreme: np.ndarray, h: np.ndarray, lo: np.ndarray,
                     tradable: np.ndarray) -> np.ndarray:
    """The extremes after a bar: the high folded in for a sell, the low for a buy.

    Bars where nothing traded (zero or no volume) leave the extreme as it was.
    """
    moved = np.where(buy, np.fmin(extreme, lo), np.fmax(extreme, h))
    return np.where(tradable, moved, extreme)


def auction_fill(otype: np.ndarray, buy: np.ndarray, lim: np.ndarray, o: np.ndarray,
                 c: np.ndarray, tradable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill mask and reference price of auction orders on their auction's bar.

    Opening auction: the open; closing auction: the close. A limit fills only if that
    price satisfies it (a buy at or below its limit, a sell at or above); a market
    (limit NaN) always, when the bar traded.
    """
    px = np.where(otype == AT_OPEN, o, c)
    ok = np.isnan(lim) | np.where(buy, px <= lim, px >= lim)
    return tradable & ok, px


