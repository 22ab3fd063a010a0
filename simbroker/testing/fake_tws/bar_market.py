"""Bar-market mode for :class:`~simbroker.testing.fake_tws.FakeTWS`: its market is the bars.

:class:`TWSBarMarket` serves ``bars`` as the fake's history and, bar by bar, trades the
fake's working orders on them with the paper broker's rules
(:class:`~simbroker.testing._bar_market.BarMatcher`). TWS's behaviours stay: executions go
out as orderStatus + execDetails + commissionReport to the owning client, stamped to the
whole second (here: the paper fill's time, the open of the bar it filled on), with the
paper fee model's fee as the commission. Orders the paper rules cannot take (``TRAIL``,
``MOC``/``LOC``, a refused quantity) are rejected with error 201; a day order the paper
rules expire is cancelled (orderStatus ``Cancelled``), as TWS does at the day's end.
"""

from __future__ import annotations

from collections.abc import Hashable

from simbroker.bars import Bars
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import SlippageModel
from simbroker.testing._bar_market import BarFaults, BarMatcher, VenueOrder
from simbroker.testing.fake_tws.messages import Order
from simbroker.testing.fake_tws.server import FakeTWS

__all__ = ["TWSBarMarket"]

_TYPES = {"MKT": "market", "LMT": "limit", "STP": "stop", "STP LMT": "stop_limit"}
_TIFS = {"DAY": "day", "GTC": "gtc", "IOC": "ioc", "FOK": "fok", "OPG": "opg"}


class TWSBarMarket:
    """Make ``fake``'s market the historical ``bars``.

    Parameters
    ----------
    fake
        A started :class:`FakeTWS`; its history becomes ``bars`` (none released yet).
    bars
        The market.
    slippage, fees
        The paper broker's models for the fills (and the commissions TWS reports).
    """

    def __init__(self, fake: FakeTWS, bars: Bars, *,
                 slippage: float | SlippageModel | None = 5.0,
                 fees: float | FeeModel | None = 1.0):
        self.fake = fake
        self.matcher = BarMatcher(bars, slippage, fees)
        fake.set_bars(bars, visible=0)

    def trade_bar(self, faults: BarFaults | None = None) -> list[str]:
        """The next bar trades: the working orders fill on it by the paper rules.

        Returns the execution ids sent (for the client's ``wait_for_fills``).
        """
        return list(self.fake._run(self._trade, faults))

    def release_bar(self) -> int:
        """The bar traded last closes: it joins the history. Returns its row."""
        return self.fake.release_bar()

    def _spec(self, o: Order) -> VenueOrder | None:
        kind, tif = _TYPES.get(o.order_type), _TIFS.get(o.tif)
        if kind is None or tif is None or o.order_type in ("MOC", "LOC"):
            return None
        return VenueOrder(o.order_id, o.symbol, "buy" if o.action == "BUY" else "sell",
                          o.qty - o.filled, kind, o.lmt if kind in ("limit", "stop_limit")
                          else None, o.aux if kind in ("stop", "stop_limit") else None, tif)

    def _trade(self, faults: BarFaults | None) -> list[str]:
        fake = self.fake
        with fake._lock:
            specs: list[VenueOrder] = []
            for o in fake.orders.values():
                if o.status != "Submitted":
                    continue
                spec = self._spec(o)
                if spec is None:
                    self._reject(o, f"the bar market matches {', '.join(_TYPES)} orders "
                                    f"({o.order_type} {o.tif} is not)")
                else:
                    specs.append(spec)
            for key, reason in self.matcher.sync(specs).items():
                self._reject(fake.orders[self._oid(key)], reason)
            made: list[str] = []
            for bf in self.matcher.trade_bar(faults):
                o = fake.orders[self._oid(bf.key)]
                if o.status != "Submitted":
                    continue
                if not bf.missed:
                    ex = fake._fill(o, bf.qty, bf.price, when=bf.when, commission=bf.fee)
                    made.append(ex.exec_id)
                if bf.cancel_rest and o.status == "Submitted":
                    fake._cancel_one(o)
            for key in self.matcher.ended:
                o = fake.orders[self._oid(key)]
                if o.status == "Submitted":
                    fake._cancel_one(o)
            return made

    @staticmethod
    def _oid(key: Hashable) -> int:
        assert isinstance(key, int)
        return key

    def _reject(self, o: Order, reason: str) -> None:
        fake = self.fake
        fake._cancel_one(o)
        for conn in fake._owners(o):
            fake._error(conn, o.order_id, 201, f"Order rejected - reason:{reason}")
