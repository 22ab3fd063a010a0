"""Bar-market mode for :class:`~simbroker.testing.fake_alpaca.FakeAlpaca`: its market is
the bars.

:class:`AlpacaBarMarket` serves ``bars`` as the fake's history (``/v2/stocks/bars``) and,
bar by bar, trades the fake's working orders on them with the paper broker's rules
(:class:`~simbroker.testing._bar_market.BarMatcher`). Alpaca's behaviours stay: each
execution is a ``fill``/``partial_fill`` trade_updates event and a FILL activity, events
are a microsecond apart (the first at the paper fill's time, the open of the bar it filled
on), and no commission is charged (Alpaca's equities are commission-free: give the
matcher ``fees=0`` for a like-for-like backtest). Orders the paper rules cannot take
(``trailing_stop``, a refused quantity) get a ``rejected`` event; a day order the paper
rules expire gets ``expired``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from simbroker.bars import Bars
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import SlippageModel
from simbroker.testing._bar_market import BarFaults, BarMatcher, VenueOrder
from simbroker.testing.fake_alpaca._service import FakeAlpaca

__all__ = ["AlpacaBarMarket"]

_WORKING = ("new", "accepted", "partially_filled", "pending_new")
_TYPES = ("market", "limit", "stop", "stop_limit")


class AlpacaBarMarket:
    """Make ``fake``'s market the historical ``bars``.

    Parameters
    ----------
    fake
        A started :class:`FakeAlpaca`; its history becomes ``bars`` (none released yet).
    bars
        The market.
    slippage, fees
        The paper broker's models for the fills (fees only shape the engine: Alpaca
        reports none).
    """

    def __init__(self, fake: FakeAlpaca, bars: Bars, *,
                 slippage: float | SlippageModel | None = 5.0,
                 fees: float | FeeModel | None = 0.0):
        self.fake = fake
        self.matcher = BarMatcher(bars, slippage, fees)
        fake.set_bars(bars, visible=0)

    def trade_bar(self, faults: BarFaults | None = None) -> list[dict[str, Any]]:
        """The next bar trades: the working orders fill on it by the paper rules.

        Returns the FILL activities made (their ``order_id`` and ``cum_qty`` name the
        fills for the client's ``wait_for_fills``).
        """
        fake = self.fake
        with fake._lock:
            specs: list[VenueOrder] = []
            for o in fake.orders.values():
                if o["status"] not in _WORKING:
                    continue
                if o["type"] not in _TYPES:
                    fake._end(o, "rejected")
                    continue
                specs.append(VenueOrder(
                    o["id"], o["symbol"], o["side"],
                    float(o["qty"]) - float(o["filled_qty"]), o["type"],
                    None if o["limit_price"] is None else float(o["limit_price"]),
                    None if o["stop_price"] is None else float(o["stop_price"]),
                    o["time_in_force"]))
            for key in self.matcher.sync(specs):
                fake._end(fake.orders[str(key)], "rejected")
            made: list[dict[str, Any]] = []
            for bf in self.matcher.trade_bar(faults):
                o = fake.orders[str(bf.key)]
                if o["status"] not in _WORKING:
                    continue
                if not bf.missed:
                    # The venue's clock: events strictly after one another, the first at
                    # the paper fill's time.
                    fake.clock = max(fake.clock, bf.when - timedelta(microseconds=1))
                    made.append(fake._fill(o, bf.qty, bf.price))
                if bf.cancel_rest and o["status"] in _WORKING:
                    fake._end(o, "canceled")
            for key in self.matcher.ended:
                o = fake.orders[str(key)]
                if o["status"] in _WORKING:
                    fake._end(o, "expired")
            return made

    def release_bar(self) -> int:
        """The bar traded last closes: it joins the history. Returns its row."""
        return self.fake.release_bar()
