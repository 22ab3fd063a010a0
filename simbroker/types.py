"""Orders, fills and their vocabularies.

The enums are ``str`` subclasses, so ``Side.BUY == "buy"``; the dicts a broker returns
hold the plain string values, which keeps them JSON-ready and comparable to literals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypedDict

import numpy as np

from simbroker.errors import InvalidOrder

__all__ = [
    "Fill",
    "Order",
    "OrderInfo",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
]


class Side(str, Enum):
    """Which way an order trades."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1


class OrderType(str, Enum):
    """How an order is priced."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(str, Enum):
    """How long an unfilled order lives.

    ``DAY`` expires at the end of the trading day on which it first could trade;
    ``GTC`` rests until filled or canceled.
    """

    DAY = "day"
    GTC = "gtc"


class OrderStatus(str, Enum):
    """Where an order is in its life.

    ``NEW``, ``PARTIALLY_FILLED`` and ``PENDING_CONFIRM`` are open; the others are
    terminal and final. ``PENDING_CONFIRM`` is a live adapter's word for an order that was
    sent but whose fate is not yet known (a dropped connection before the answer): it may
    be at the venue, and it is resolved from the venue's records on reconnect.
    """

    NEW = "new"
    PENDING_CONFIRM = "pending_confirm"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        """True while the order can still fill."""
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED,
                        OrderStatus.PENDING_CONFIRM)


class OrderInfo(TypedDict):
    """What ``submit_order`` and ``cancel_order`` return: the order's current state.

    Keys
    ----
    order_id : str
        The broker's id; pass it to ``cancel_order``.
    client_order_id : str | None
        The caller's id, echoed back; resubmitting it returns the same order.
    symbol, side, order_type, tif : str
        As submitted (``side`` is ``"buy"``/``"sell"``).
    qty : float
        Ordered quantity, always positive.
    limit_price, stop_price : float | None
        Set for limit / stop / stop_limit orders.
    status : str
        An :class:`OrderStatus` value.
    filled_qty : float
        Quantity filled so far.
    avg_fill_price : float | None
        Volume-weighted fill price, ``None`` until something filled.
    submitted_at : datetime
        The broker clock when the order was accepted (tz-aware UTC).
    reason : str | None
        Why the order was rejected or expired, else ``None``.
    """

    order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    qty: float
    order_type: str
    limit_price: float | None
    stop_price: float | None
    tif: str
    status: str
    filled_qty: float
    avg_fill_price: float | None
    submitted_at: datetime
    reason: str | None


class Fill(TypedDict):
    """One execution, as ``get_fills`` returns it.

    Keys
    ----
    fill_id : str
        Unique per execution; use it to de-duplicate.
    order_id, client_order_id : str, str | None
        The order this execution belongs to.
    timestamp : datetime
        When it executed (tz-aware UTC). For bar simulation: the open time of the bar
        the order filled on.
    symbol, side : str
    qty : float
        Executed quantity, always positive.
    price : float
        Execution price per share, slippage included.
    fee : float
        Fees charged for this execution, in account currency, >= 0.
    notional : float
        ``qty * price``.
    """

    fill_id: str
    order_id: str
    client_order_id: str | None
    timestamp: datetime
    symbol: str
    side: str
    qty: float
    price: float
    fee: float
    notional: float


MAX_QTY = 1e15
"""Largest order quantity :meth:`Order.create` accepts (a quadrillion shares or units)."""
MAX_PRICE = 1e15
"""Largest limit or stop price :meth:`Order.create` accepts.

With both bounds ``qty x price`` is at most 1e30, so an order's notional, its fee and any
realistic sum of them stay finite (float overflows near 1.8e308): a quantity of 1e308
would otherwise be accepted and then turn cash into ``-inf``.
"""

_NUMBER_ERRORS = (TypeError, ValueError, ArithmeticError)  # ArithmeticError: Overflow, Decimal


def _shown(value: Any) -> str:
    """A short repr of ``value`` that can always be computed.

    An integer of thousands of digits has no ``repr`` (Python refuses to convert it to
    text), and a megabyte string should not become a megabyte error message.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    try:
        text = repr(value)
    except Exception:  # a caller's object whose __repr__ fails still gets a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else f"{text[:77]}..."


def _enum(cls: type[Enum], value: Any, field: str, symbol: str | None) -> Any:
    try:
        return cls(value.lower() if isinstance(value, str) else value)
    except (ValueError, TypeError):
        allowed = ", ".join(repr(m.value) for m in cls)
        raise InvalidOrder(
            f"unknown {field} {_shown(value)} for {symbol}: expected one of {allowed}",
            field=field, value=value, symbol=symbol,
        ) from None


def _number(value: Any, field: str, symbol: str, upper: float) -> float:
    """``value`` as a float in ``(0, upper]``, or ``InvalidOrder`` naming ``field``.

    Python and numpy numbers (and ``Decimal``/``Fraction``) are taken; booleans and text
    are not numbers here, even though ``float(True)`` and ``float("5")`` work.
    """
    if isinstance(value, (bool, np.bool_, str, bytes, bytearray)):
        raise InvalidOrder(f"{field} for {symbol} must be a number, got {_shown(value)}",
                           field=field, value=value, symbol=symbol)
    try:
        number = float(value)
    except OverflowError:  # an int (or Fraction, Decimal) beyond the float range
        try:
            number = math.inf if value > 0 else -math.inf
        except _NUMBER_ERRORS:
            number = math.nan
    except _NUMBER_ERRORS:
        raise InvalidOrder(f"{field} for {symbol} must be a number, got {_shown(value)}",
                           field=field, value=value, symbol=symbol) from None
    if math.isnan(number) or number <= 0 or (math.isinf(number) and isinstance(value, float)):
        raise InvalidOrder(
            f"{field} for {symbol} must be a finite number > 0, got {_shown(value)}",
            field=field, value=value, symbol=symbol,
        )
    if number > upper:
        raise InvalidOrder(
            f"{field} for {symbol} must be at most {upper:g}, got {_shown(value)}",
            field=field, value=value, symbol=symbol,
        )
    return number


@dataclass(frozen=True)
class Order:
    """A validated order request, the same for every broker.

    Build it with :meth:`Order.create`, which checks every field and raises
    :class:`~simbroker.errors.InvalidOrder` naming the one that is wrong.
    """

    symbol: str
    side: Side
    qty: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.DAY
    client_order_id: str | None = None
    extended_hours: bool = False

    @classmethod
    def create(
        cls,
        symbol: str,
        side: str,
        qty: float,
        order_type: str = "market",
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        tif: str = "day",
        client_order_id: str | None = None,
        extended_hours: bool = False,
    ) -> Order:
        """Validate the arguments of ``Broker.submit_order`` and return an ``Order``.

        ``qty`` and the prices must be numbers (Python or numpy; not ``bool``, not text),
        finite and > 0, ``qty`` at most :data:`MAX_QTY` and prices at most
        :data:`MAX_PRICE`. Anything else raises :class:`~simbroker.errors.InvalidOrder`
        naming the field, whatever the value (an integer of 10**309 included).
        ``extended_hours`` (trade in pre- and post-market too) is a ``bool``, and only for
        limit orders, as at IBKR and Alpaca.
        """
        if not isinstance(symbol, str) or not symbol.strip():
            raise InvalidOrder(
                f"symbol must be a non-empty string, got {_shown(symbol)}", field="symbol",
                value=symbol,
            )
        side_ = _enum(Side, side, "side", symbol)
        type_ = _enum(OrderType, order_type, "order_type", symbol)
        tif_ = _enum(TimeInForce, tif, "tif", symbol)
        qty_ = _number(qty, "qty", symbol, MAX_QTY)
        needs_limit = type_ in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = type_ in (OrderType.STOP, OrderType.STOP_LIMIT)
        for name, value, needed in (("limit_price", limit_price, needs_limit),
                                    ("stop_price", stop_price, needs_stop)):
            if needed and value is None:
                raise InvalidOrder(f"a {type_.value} order for {symbol} needs {name}",
                                   field=name, value=None, symbol=symbol)
            if not needed and value is not None:
                raise InvalidOrder(
                    f"a {type_.value} order for {symbol} takes no {name} (got {_shown(value)})",
                    field=name, value=value, symbol=symbol,
                )
        if client_order_id is not None and (
            not isinstance(client_order_id, str) or not client_order_id
        ):
            raise InvalidOrder(
                f"client_order_id must be a non-empty string, got {_shown(client_order_id)}",
                field="client_order_id", value=client_order_id, symbol=symbol,
            )
        if not isinstance(extended_hours, (bool, np.bool_)):
            raise InvalidOrder(f"extended_hours for {symbol} must be True or False, got "
                               f"{_shown(extended_hours)}", field="extended_hours",
                               value=extended_hours, symbol=symbol)
        if extended_hours and type_ is not OrderType.LIMIT:
            raise InvalidOrder(f"extended_hours is only for limit orders (as at IBKR and "
                               f"Alpaca); {symbol} is a {type_.value} order",
                               field="extended_hours", value=True, symbol=symbol)
        return cls(
            symbol=symbol,
            side=side_,
            qty=qty_,
            order_type=type_,
            limit_price=None if limit_price is None else _number(limit_price, "limit_price",
                                                                 symbol, MAX_PRICE),
            stop_price=None if stop_price is None else _number(stop_price, "stop_price",
                                                               symbol, MAX_PRICE),
            tif=tif_,
            client_order_id=client_order_id,
            extended_hours=bool(extended_hours),
        )
