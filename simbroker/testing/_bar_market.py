"""The paper broker as a fake venue's matching engine: a market made of historical bars.

Both fakes (:mod:`~simbroker.testing.fake_tws`, :mod:`~simbroker.testing.fake_alpaca`) can
trade their open orders on the bars they replay instead of at a set price. Rather than
re-implement the fill rules, a :class:`BarMatcher` runs one
:class:`~simbroker.PaperBroker` over the same bars as the venue's engine: each venue order
is mirrored into it (the venue keeps its own book, statuses and wire protocol), and when
the venue's next bar trades the paper broker's own rules decide every fill (market orders
at the bar's open, limits and stops by its high and low, with the paper broker's slippage
and fee models). So a rehearsal against a fake in bar-market mode fills exactly as the
backtest of the same bars does, unless a fault says otherwise.

The matcher knows nothing of wire formats: the venue tells it which of its orders are
open (:meth:`BarMatcher.sync`), and it answers with the :class:`BarFill` s of the bar it
trades (:meth:`BarMatcher.trade_bar`). Per-bar faults (:class:`BarFaults`) change what
the venue then delivers: an extra slippage, a fill that never happens, a partial fill.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from simbroker.bars import Bars
from simbroker.errors import SimbrokerError
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import SlippageModel
from simbroker.paper import PaperBroker

__all__ = ["BarFaults", "BarFill", "BarMatcher", "VenueOrder"]


@dataclass(frozen=True)
class VenueOrder:
    """An open venue order as the matcher mirrors it (the paper broker's vocabulary).

    ``key`` is the venue's own order id; ``remaining`` what is left to fill.
    """

    key: Hashable
    symbol: str
    side: str
    remaining: float
    order_type: str
    limit_price: float | None
    stop_price: float | None
    tif: str


@dataclass(frozen=True)
class BarFill:
    """One execution the venue is to deliver.

    Attributes
    ----------
    key
        The venue order it fills.
    qty, price, fee
        What executed (the price with the paper broker's slippage and any planted extra;
        the fee by the paper broker's fee model).
    ref_price
        The price before slippage (the bar's rule price).
    when
        The paper fill's time: the open of the bar it filled on.
    cancel_rest
        The venue cancels what is left of the order after this fill (a planted partial).
    missed
        A planted miss: the venue delivers nothing and cancels the order instead.
    """

    key: Hashable
    qty: float
    price: float
    fee: float
    ref_price: float
    when: datetime
    cancel_rest: bool = False
    missed: bool = False


@dataclass
class BarFaults:
    """What to change in one bar's fills (all off by default).

    Attributes
    ----------
    extra_slippage_bps
        Each fill executes this many bps of its reference price worse.
    miss
        No fill is delivered; the venue cancels the orders instead.
    partial
        Each fill delivers this fraction of its quantity and the venue cancels the rest
        (``None``: whole fills).
    """

    extra_slippage_bps: float = 0.0
    miss: bool = False
    partial: float | None = None


@dataclass
class _Mirror:
    spec: VenueOrder
    paper_id: str
    delivered: float = 0.0


@dataclass
class BarMatcher:
    """A :class:`~simbroker.PaperBroker` over ``bars`` matching a venue's orders.

    Parameters
    ----------
    bars
        The bars the venue replays (the same panel, in the same order).
    slippage, fees
        The paper broker's models (as :func:`simbroker.backtest` takes them).
    """

    bars: Bars
    slippage: float | SlippageModel | None = 5.0
    fees: float | FeeModel | None = 1.0
    _paper: PaperBroker = field(init=False, repr=False)
    _mirrors: dict[Hashable, _Mirror] = field(init=False, default_factory=dict, repr=False)
    _by_paper: dict[str, Hashable] = field(init=False, default_factory=dict, repr=False)
    _seen: int = field(init=False, default=0, repr=False)
    ended: list[Hashable] = field(init=False, default_factory=list)
    """Venue orders the last :meth:`trade_bar` ended unfilled by the paper rules (a day
    order past its day, the rest of an ioc): the venue expires or cancels them."""

    def __post_init__(self) -> None:
        # The venue checks buying power and shorting; the engine only matches.
        self._paper = PaperBroker(self.bars, cash=1e18, slippage=self.slippage,
                                  fees=self.fees, allow_short=True)

    @property
    def bars_traded(self) -> int:
        """How many bars the engine has traded (the next one is this index)."""
        return int(self._paper._t) + 1

    def sync(self, open_orders: Iterable[VenueOrder]) -> dict[Hashable, str]:
        """Mirror the venue's open orders: new ones enter the engine (they trade from its
        next bar), ended ones leave it, changed ones (a modification) are re-entered.

        Returns ``{key: reason}`` for the orders the paper rules refuse (the venue then
        rejects them).
        """
        refused: dict[Hashable, str] = {}
        now = {o.key: o for o in open_orders}
        for key in [k for k in self._mirrors if k not in now]:
            self._drop(key)
        for key, spec in now.items():
            mirror = self._mirrors.get(key)
            if mirror is not None:
                left = mirror.spec.remaining - mirror.delivered
                same = (abs(left - spec.remaining) <= 1e-9 * max(1.0, spec.remaining)
                        and (spec.limit_price, spec.stop_price, spec.tif)
                        == (mirror.spec.limit_price, mirror.spec.stop_price, mirror.spec.tif))
                if same:
                    continue
                self._drop(key)
            try:
                info = self._paper.submit_order(
                    spec.symbol, spec.side, spec.remaining, spec.order_type,
                    limit_price=spec.limit_price, stop_price=spec.stop_price, tif=spec.tif)
            except (SimbrokerError, ValueError, TypeError) as exc:
                refused[key] = str(exc)
                continue
            self._mirrors[key] = _Mirror(spec, info["order_id"])
            self._by_paper[info["order_id"]] = key
        return refused

    def _drop(self, key: Hashable) -> None:
        mirror = self._mirrors.pop(key)
        self._by_paper.pop(mirror.paper_id, None)
        self._paper.cancel_order(mirror.paper_id)

    def _rule_price(self, spec: VenueOrder, buy: bool, price: float) -> float:
        """The paper broker's price before slippage on the bar just traded: the open for
        a market order, capped by a limit, or the stop's price when the open is past it."""
        t = self._paper._t
        o = float(self.bars.open[t, self.bars.symbol_index(spec.symbol)])
        if not math.isfinite(o):
            return price
        lim, stp = spec.limit_price, spec.stop_price
        if spec.order_type in ("stop", "stop_limit") and stp is not None:
            o = max(o, stp) if buy else min(o, stp)
        if spec.order_type in ("limit", "stop_limit") and lim is not None:
            o = min(o, lim) if buy else max(o, lim)
        return o

    def trade_bar(self, faults: BarFaults | None = None) -> list[BarFill]:
        """Trade the next bar: the fills the venue is to deliver, in the engine's order."""
        self._paper.step()
        new = self._paper.get_fills()[self._seen:]
        self._seen += len(new)
        out: list[BarFill] = []
        f = faults or BarFaults()
        for fill in new:
            key = self._by_paper.get(fill["order_id"])
            if key is None:
                continue
            mirror = self._mirrors[key]
            qty, price, fee = float(fill["qty"]), float(fill["price"]), float(fill["fee"])
            buy = fill["side"] == "buy"
            ref = self._rule_price(mirror.spec, buy, price)
            if f.extra_slippage_bps:
                price += (1.0 if buy else -1.0) * ref * f.extra_slippage_bps * 1e-4
            cancel_rest = False
            if f.partial is not None:
                part = math.floor(qty * f.partial)
                if part > 0:
                    fee *= part / qty
                    qty = float(part)
                cancel_rest = True
            mirror.delivered += qty
            out.append(BarFill(key, qty, price, fee, ref, fill["timestamp"],
                               cancel_rest or f.miss, f.miss))
        for bf in out:  # the venue ends these orders: the engine lets them go
            if bf.cancel_rest and bf.key in self._mirrors:
                self._drop(bf.key)
        self.ended = []
        for key, mirror in list(self._mirrors.items()):
            status = self._paper.get_order(mirror.paper_id)["status"]
            if status in ("expired", "canceled", "rejected"):
                self.ended.append(key)
                del self._mirrors[key]
                self._by_paper.pop(mirror.paper_id, None)
        return out
