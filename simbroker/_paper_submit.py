"""Submitting orders to the paper broker: checks, the ``submitted`` record, the book.

A simple market order (day or gtc, no client order id, group, trail or extended hours;
a sell only while shorting is allowed) takes a shorter path: the arguments are checked
by their types and values directly, the :class:`~simbroker.types.Order` is built by
:func:`~simbroker.types.market_order` (or, for arguments seen before, the one built then
is taken again: orders are frozen) and booked by
:meth:`~simbroker._paper_place.Placing._place_market`, and the answer copied from a
template kept with the order (:func:`~simbroker._paper_state.market_info`). What weighs
an order against the account (:meth:`Submitting._weigh`: an account, financing,
Alpaca's sides) weighs it on either path, and a refusal is logged alike. Whatever it
does not take goes the general way (``Order.create`` and every check), which also gives
the errors; both give the same order, record and answer. ``_fast_submit = False`` forces
the general path (the tests compare the two).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from simbroker._paper_base import NEVER_BAR
from simbroker._paper_checks import Checks
from simbroker._paper_place import Placing
from simbroker._paper_state import market_info, market_template, order_fields
from simbroker.errors import (
    InsufficientBuyingPower,
    InvalidOrder,
    OrderRejected,
    PatternDayTrading,
    PositionConflict,
    ShortingNotAllowed,
)
from simbroker.types import (
    MAX_QTY,
    Order,
    OrderClass,
    OrderInfo,
    Side,
    TimeInForce,
    market_order,
)

if TYPE_CHECKING:
    from simbroker.paper import PaperBroker

__all__ = ["Submitting"]

_REFUSALS = (InsufficientBuyingPower, PatternDayTrading, PositionConflict, InvalidOrder,
             ShortingNotAllowed)
"""What a submission is refused with (and logged as ``rejected``)."""

_BUY = Side.BUY  # globals: reading Enum.MEMBER off its class is several times slower
_SELL = Side.SELL
_SIMPLE = OrderClass.SIMPLE
_OCO = OrderClass.OCO
_SIDES: dict[str, Side] = {m.value: m for m in Side}
_FAST_TIFS: dict[str, TimeInForce] = {"day": TimeInForce.DAY, "gtc": TimeInForce.GTC}
_MAX_SHARED = 1 << 16
"""At most this many distinct market orders are kept for reuse per broker (a strategy
whose quantities never repeat builds each order, as before, beyond them)."""


class Submitting(Checks, Placing):
    """``submit_order``: the checks, then the record, then the book."""

    _fast_submit: bool
    """Whether a simple market order may take the short path (set at construction; a
    test sets it False to force the general path)."""
    _weighs: bool
    """Whether an account, financing or Alpaca's side rules weigh each order."""
    _fast_cols: dict[str, int]
    """Symbol -> column, for the symbols ``Order.create`` takes (non-blank)."""
    _market_orders: dict[tuple[str, str, float, str], tuple[Order, int, dict[str, Any]]]
    """``(symbol, side, qty, tif)`` as given -> the simple market order the short path
    built for them, its column and its answer's template (:func:`market_template`;
    orders are frozen, so equal ones may be one object)."""

    def submit_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        order_type: str = "market",
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        tif: str = "day",
        client_order_id: str | None = None,
        order_class: str = "simple",
        take_profit: Mapping[str, float] | None = None,
        stop_loss: Mapping[str, float] | None = None,
        trail_amount: float | None = None,
        trail_percent: float | None = None,
        extended_hours: bool = False,
    ) -> OrderInfo:
        """Accept an order; it trades from the next bar on. See :class:`simbroker.Broker`.

        The order kinds of :class:`simbroker.OrderManagingBroker` are keyword-only
        (``order_class`` with ``take_profit``/``stop_loss``, ``trail_amount`` /
        ``trail_percent``, the tifs ``opg``/``cls``/``ioc``/``fok``); how each fills is in
        this module's table. A bracket/OTO returns its parent, whose ``legs`` are its
        ``held`` children; an OCO returns its limit leg, whose ``legs`` is its stop leg.
        """
        if self._fast_submit and limit_price is None and stop_price is None \
                and client_order_id is None and take_profit is None and stop_loss is None \
                and trail_amount is None and trail_percent is None and extended_hours is False \
                and type(order_type) is str and order_type == "market" \
                and order_class == "simple" and type(symbol) is str and type(side) is str \
                and type(tif) is str and (type(qty) is float or type(qty) is int):
            # An order equal to one submitted before is that (frozen) Order again: the
            # lookup is cheaper than building one, and a shared Order is one object
            # fewer for the cyclic GC to track and traverse per order (it was ~18% of a
            # round trip). ``100`` and ``100.0`` are one key and one order.
            key = (symbol, side, qty, tif)
            hit = self._market_orders.get(key)
            if hit is None and 0 < qty <= MAX_QTY:
                col = self._fast_cols.get(symbol)
                side_ = _SIDES.get(side)
                tif_ = _FAST_TIFS.get(tif)
                if col is not None and side_ is not None and tif_ is not None:
                    order = market_order(symbol, side_, float(qty), tif_)
                    hit = (order, col, market_template(order))
                    if len(self._market_orders) < _MAX_SHARED:
                        self._market_orders[key] = hit
            if hit is not None:
                order, col, template = hit
                if order.side is _BUY or self.allow_short:
                    if self._weighs:
                        try:
                            self._weigh(order, col)
                        except _REFUSALS as exc:
                            self._log_refusal(exc, symbol, side, qty, order_type,
                                              client_order_id)
                            raise
                    now = self._clock.now()
                    if self._log is not None:
                        self._log.write("submitted", now, order_id=f"{self._prefix}"
                                        f"{self._n_orders + 1}", **order_fields(order))
                    return market_info(self._place_market(order, now, col), template)
        try:
            order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                                 stop_price=stop_price, tif=tif, client_order_id=client_order_id,
                                 order_class=order_class, take_profit=take_profit,
                                 stop_loss=stop_loss, trail_amount=trail_amount,
                                 trail_percent=trail_percent,
                                 extended_hours=extended_hours)
            if order.extended_hours:  # the venue rules concern only these
                self._check_venue_rules(order)
            col = self._col_of.get(order.symbol)
            if col is None:
                raise InvalidOrder(f"unknown symbol {order.symbol!r}: not in the bars",
                                   field="symbol", value=order.symbol, symbol=order.symbol)
            if order.client_order_id is not None and order.client_order_id in self._by_client_id:
                return self._resubmitted(order)
            if not self.allow_short and order.side is _SELL:
                available = self._pos[col] - self._open_sell_qty(col)
                if order.qty > available * (1 + 1e-12) + 1e-12:
                    raise ShortingNotAllowed(order.symbol, position=float(available),
                                             qty=order.qty)
            if self._weighs:
                self._weigh(order, col)
        except _REFUSALS as exc:
            self._log_refusal(exc, symbol, side, qty, order_type, client_order_id)
            raise

        now = self._clock.now()
        legs = None if order.order_class is _SIMPLE else order.leg_orders()
        if self._log is not None:
            n = self._n_orders
            extra = {"legs": [f"{self._prefix}{n + k}" for k in range(2, len(legs) + 2)]} \
                if legs else {}
            self._log.write("submitted", now, order_id=f"{self._prefix}{n + 1}",
                            **order_fields(order), **extra)
        state = self._place(order, now, NEVER_BAR, col=col)
        if legs:
            self._place_legs(state, legs, now, held=order.order_class is not _OCO)
        return state.info()

    def _weigh(self, order: Order, col: int) -> None:
        """What weighs an order against the account, in this order: Alpaca's one side at
        a time (``venue="alpaca"``), the financing's shorting rules (hard to borrow,
        unlocated) and the account's buying power and PDT rule. Each may refuse."""
        if self.venue == "alpaca":
            self._check_sides(order, col)
        fin = self._financing
        if fin is not None and order.side is _SELL and fin.checks_shorts:
            fin.check_short(cast("PaperBroker", self), order, col)
        if self._account is not None:
            self._account.check(order, col)

    def _log_refusal(self, exc: OrderRejected, symbol: object,
                     side: object, qty: object, order_type: object,
                     client_order_id: str | None) -> None:
        """The ``rejected`` record of a refused submission, with the rule that refused
        it (an account's or the shorting rule's; none for an invalid order)."""
        rule: str | None = None
        if isinstance(exc, (InsufficientBuyingPower, PatternDayTrading, PositionConflict)):
            rule = exc.rule
        elif isinstance(exc, ShortingNotAllowed):
            rule = getattr(exc, "rule", "allow_short")
        self._log_rejected(symbol, side, qty, order_type, client_order_id, str(exc),
                           rule=rule)
