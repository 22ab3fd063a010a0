"""Orders, fills and their vocabularies.

The enums are ``str`` subclasses, so ``Side.BUY == "buy"``; the dicts a broker returns
hold the plain string values, which keeps them JSON-ready and comparable to literals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypedDict

import numpy as np

from simbroker.errors import InvalidOrder

__all__ = [
    "AccountInfo",
    "Fill",
    "Order",
    "OrderClass",
    "OrderInfo",
    "OrderStatus",
    "OrderType",
    "Side",
    "StopLoss",
    "TakeProfit",
    "TimeInForce",
    "market_order",
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
    TRAILING_STOP = "trailing_stop"


class TimeInForce(str, Enum):
    """How long an unfilled order lives.

    ``DAY`` expires at the end of the trading day on which it first could trade;
    ``GTC`` rests until filled or canceled. ``OPG`` trades only in the opening auction
    (the open of the next session's first bar) and ``CLS`` only in the closing auction
    (the close of the session's last bar); both take market and limit orders only, and
    are canceled when their auction did not fill them. ``IOC`` (immediate or cancel) and
    ``FOK`` (fill or kill) are tested against the next bar only and canceled after it if
    unfilled.
    """

    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


class OrderClass(str, Enum):
    """How an order is linked to others.

    ``SIMPLE``: alone. ``BRACKET``: an entry with two exits (a take-profit limit and a
    stop-loss), held until the entry fills; one exit filling cancels the other.
    ``OTO`` (one triggers other): an entry with one exit. ``OCO`` (one cancels other): two
    live exits, a limit and a stop, of which only one ever fills.
    """

    SIMPLE = "simple"
    BRACKET = "bracket"
    OTO = "oto"
    OCO = "oco"


class OrderStatus(str, Enum):
    """Where an order is in its life.

    ``NEW``, ``PARTIALLY_FILLED`` and ``PENDING_CONFIRM`` are open; the others are
    terminal and final. ``HELD`` is open too: a bracket or OTO child waiting for its
    parent to fill (it cannot trade yet, and becomes ``NEW`` when the parent fills).
    ``PENDING_CONFIRM`` is a live adapter's word for an order that was
    sent but whose fate is not yet known (a dropped connection before the answer): it may
    be at the venue, and it is resolved from the venue's records on reconnect.
    """

    NEW = "new"
    HELD = "held"
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
                        OrderStatus.PENDING_CONFIRM, OrderStatus.HELD)


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
        Why the order was rejected, expired or canceled by the broker (a sibling's fill,
        its parent's end), else ``None``.
    order_class : str
        An :class:`OrderClass` value (``"simple"`` for an order outside any group).
    parent_id : str | None
        For a bracket/OTO child, its parent's ``order_id``; else ``None``.
    legs : list[str]
        The ``order_id`` of each child (bracket: take-profit then stop-loss; OTO: its one
        leg; an OCO's limit leg lists its stop leg); empty for the others.
    trail_amount, trail_percent : float | None
        A trailing stop's trail (one of them is set), else ``None``.
    extended_hours : bool
        Whether the order may trade outside regular hours.
    remaining_qty : float
        ``qty - filled_qty``.
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
    order_class: str
    parent_id: str | None
    legs: list[str]
    trail_amount: float | None
    trail_percent: float | None
    extended_hours: bool
    remaining_qty: float


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


class AccountInfo(TypedDict):
    """What ``get_account`` returns: the account's money as the broker reckons it.

    The same keys in every mode (paper, IBKR, Alpaca), so a strategy sizes positions
    identically everywhere. Amounts are in account currency.

    Keys
    ----
    cash : float
        Cash balance (negative when borrowing on margin).
    equity : float
        ``cash + long_market_value + short_market_value`` (net liquidation value).
    buying_power : float
        The notional the account may still commit to new orders now (open orders
        already reserved; ``inf`` for an unconstrained account).
    maintenance_margin : float
        Equity the positions require to be kept (a margin call below it).
    initial_margin : float
        Equity the positions required when opened.
    long_market_value : float
        Sum of long positions x last price, >= 0.
    short_market_value : float
        Sum of short positions x last price, <= 0.
    settled_cash : float | None
        Cash settled and free to withdraw or to buy without a good-faith risk;
        ``None`` where the venue does not say.
    day_trades : int | None
        Day trades in the last five trading days; ``None`` where the venue does not say.
    pattern_day_trader : bool
        Whether the account is flagged a pattern day trader.
    account_type : str
        ``"cash"``, ``"margin"`` or ``"unconstrained"`` (the paper broker's default:
        no buying-power check at all).
    """

    cash: float
    equity: float
    buying_power: float
    maintenance_margin: float
    initial_margin: float
    long_market_value: float
    short_market_value: float
    settled_cash: float | None
    day_trades: int | None
    pattern_day_trader: bool
    account_type: str


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


_MEMBERS: dict[type[Enum], dict[Any, Enum]] = {}


def _enum(cls: type[Enum], value: Any, field: str, symbol: str | None) -> Any:
    table = _MEMBERS.get(cls)
    if table is None:  # members by value: a str enum's member hashes (and equals) as it
        table = _MEMBERS[cls] = {m.value: m for m in cls}
    try:
        member = table.get(value)
    except TypeError:  # unhashable: refused below with the message naming it
        member = None
    if member is not None:
        return member
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
class TakeProfit:
    """The take-profit exit of a bracket, OTO or OCO: a limit order at ``limit_price``."""

    limit_price: float

    def to_dict(self) -> dict[str, float]:
        """As ``submit_order``'s ``take_profit=`` argument takes it."""
        return {"limit_price": self.limit_price}


@dataclass(frozen=True)
class StopLoss:
    """The stop-loss exit of a bracket, OTO or OCO: a stop, or a stop-limit with a limit."""

    stop_price: float
    limit_price: float | None = None

    def to_dict(self) -> dict[str, float]:
        """As ``submit_order``'s ``stop_loss=`` argument takes it."""
        d = {"stop_price": self.stop_price}
        if self.limit_price is not None:
            d["limit_price"] = self.limit_price
        return d


def _leg(value: Any, field: str, symbol: str, keys: tuple[str, ...],
         required: tuple[str, ...]) -> dict[str, float]:
    """A leg mapping (or leg object) as ``{key: price}``, checked key by key."""
    if isinstance(value, (TakeProfit, StopLoss)):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise InvalidOrder(
            f"{field} for {symbol} must be a mapping like {{{required[0]!r}: price}}, "
            f"got {_shown(value)}", field=field, value=value, symbol=symbol)
    extra = [k for k in value if k not in keys]
    if extra:
        raise InvalidOrder(
            f"{field} for {symbol} takes only {', '.join(map(repr, keys))}; got "
            f"{_shown(extra[0])}", field=f"{field}.{extra[0]}", value=value, symbol=symbol)
    out: dict[str, float] = {}
    for key in keys:
        if value.get(key) is None:
            if key in required:
                raise InvalidOrder(f"{field} for {symbol} needs {key!r}",
                                   field=f"{field}.{key}", value=value, symbol=symbol)
            continue
        out[key] = _number(value[key], f"{field}.{key}", symbol, MAX_PRICE)
    return out


# Module-level aliases of enum members for the hot paths: reading ``Enum.MEMBER`` goes
# through the enum class's attribute lookup, several times slower than a global.
_BUY = Side.BUY
_DAY = TimeInForce.DAY
_GTC = TimeInForce.GTC
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_OCO = OrderClass.OCO
_SELL = Side.SELL
_SIMPLE = OrderClass.SIMPLE
_STOP = OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_TRAILING_STOP = OrderType.TRAILING_STOP
# Members by value, for Order.create's fast path (a str enum member hashes as its value)
_SIDES: dict[str, Side] = {m.value: m for m in Side}
_TYPES: dict[str, OrderType] = {m.value: m for m in OrderType}
_TIFS: dict[str, TimeInForce] = {m.value: m for m in TimeInForce}


@dataclass(frozen=True, slots=True)
class Order:
    """A validated order request, the same for every broker.

    Build it with :meth:`Order.create`, which checks every field and raises
    :class:`~simbroker.errors.InvalidOrder` naming the one that is wrong.

    ``take_profit`` / ``stop_loss`` are the exits of a bracket (both), an OTO (one) or an
    OCO (both; the OCO order itself is its limit leg, so its ``limit_price`` is the
    take-profit's). ``trail_amount`` / ``trail_percent`` belong to trailing stops only.
    """

    symbol: str
    side: Side
    qty: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.DAY
    client_order_id: str | None = None
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    trail_amount: float | None = None
    trail_percent: float | None = None
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
        order_class: str = "simple",
        take_profit: Mapping[str, float] | TakeProfit | None = None,
        stop_loss: Mapping[str, float] | StopLoss | None = None,
        trail_amount: float | None = None,
        trail_percent: float | None = None,
        extended_hours: bool = False,
    ) -> Order:
        """Validate the arguments of ``Broker.submit_order`` and return an ``Order``.

        ``qty`` and the prices must be numbers (Python or numpy; not ``bool``, not text),
        finite and > 0, ``qty`` at most :data:`MAX_QTY` and prices at most
        :data:`MAX_PRICE`. Anything else raises :class:`~simbroker.errors.InvalidOrder`
        naming the field, whatever the value (an integer of 10**309 included).

        The order kinds:

        - ``order_type="trailing_stop"`` takes exactly one of ``trail_amount`` (a price
          distance) or ``trail_percent`` (in (0, 100)) and neither ``limit_price`` nor
          ``stop_price``; the trail is taken by no other type.
        - ``order_class="bracket"`` needs ``take_profit={"limit_price": x}`` and
          ``stop_loss={"stop_price": y}`` (plus ``"limit_price"`` for a stop-limit exit);
          the exits sell after a buy entry, so a buy bracket's take-profit is above its
          stop (a sell bracket's below). ``"oto"`` takes exactly one of the two legs.
        - ``order_class="oco"`` needs both legs and ``order_type="limit"``: the order is
          the take-profit leg (``limit_price`` defaults to the take-profit's limit and
          must equal it when given) and the stop leg is placed beside it on the same
          side; a sell OCO's take-profit is above its stop.
        - ``tif="opg"`` / ``"cls"`` take market and limit orders only, and no groups;
          ``"ioc"`` / ``"fok"`` take no groups (brackets, OTO and OCO are day or gtc).
        - ``extended_hours`` (trade in pre- and post-market too) is a ``bool``, and only for
          limit orders, as at IBKR and Alpaca.
        """
        if not isinstance(symbol, str) or not symbol.strip():
            raise InvalidOrder(
                f"symbol must be a non-empty string, got {_shown(symbol)}", field="symbol",
                value=symbol,
            )
        # Fast paths for the common arguments (a member's value as a str, a float or int
        # quantity in range); anything else takes the general, checking conversions.
        side_ = _SIDES.get(side) if type(side) is str else None
        if side_ is None:
            side_ = _enum(Side, side, "side", symbol)
        type_ = _TYPES.get(order_type) if type(order_type) is str else None
        if type_ is None:
            type_ = _enum(OrderType, order_type, "order_type", symbol)
        tif_ = _TIFS.get(tif) if type(tif) is str else None
        if tif_ is None:
            tif_ = _enum(TimeInForce, tif, "tif", symbol)
        class_ = _SIMPLE if order_class == "simple" else _enum(
            OrderClass, order_class, "order_class", symbol)
        # NaN and inf fail the comparison; an int up to MAX_QTY (< 2**53) is exact as a float
        qty_ = float(qty) if (type(qty) is float or type(qty) is int) and 0 < qty <= MAX_QTY \
            else _number(qty, "qty", symbol, MAX_QTY)
        tp = None if take_profit is None else _leg(
            take_profit, "take_profit", symbol, ("limit_price",), ("limit_price",))
        sl = None if stop_loss is None else _leg(
            stop_loss, "stop_loss", symbol, ("stop_price", "limit_price"), ("stop_price",))
        if class_ is _OCO:
            if type_ is not _LIMIT:
                raise InvalidOrder(
                    f"an oco order for {symbol} is its take-profit limit leg: order_type "
                    f"must be 'limit', got {type_.value!r}", field="order_type",
                    value=order_type, symbol=symbol)
            if tp is not None and limit_price is None:
                limit_price = tp["limit_price"]
        limit_ = stop_ = None
        if type_ is not _MARKET or limit_price is not None or stop_price is not None:
            needs_limit = type_ in (_LIMIT, _STOP_LIMIT)
            needs_stop = type_ in (_STOP, _STOP_LIMIT)
            for name, value, needed in (("limit_price", limit_price, needs_limit),
                                        ("stop_price", stop_price, needs_stop)):
                if needed and value is None:
                    raise InvalidOrder(f"a {type_.value} order for {symbol} needs {name}",
                                       field=name, value=None, symbol=symbol)
                if not needed and value is not None:
                    raise InvalidOrder(
                        f"a {type_.value} order for {symbol} takes no {name} "
                        f"(got {_shown(value)})", field=name, value=value, symbol=symbol,
                    )
            limit_ = None if limit_price is None else _number(limit_price, "limit_price",
                                                              symbol, MAX_PRICE)
            stop_ = None if stop_price is None else _number(stop_price, "stop_price", symbol,
                                                            MAX_PRICE)
        trail_a = trail_p = None
        if type_ is _TRAILING_STOP or trail_amount is not None \
                or trail_percent is not None:
            trail_a, trail_p = _trail(type_, trail_amount, trail_percent, symbol)
        if class_ is not _SIMPLE or tp is not None or sl is not None \
                or tif_ not in (_DAY, _GTC):
            _check_class(class_, type_, tif_, side_, tp, sl, limit_, symbol)
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
        if extended_hours and type_ is not _LIMIT:
            raise InvalidOrder(f"extended_hours is only for limit orders (as at IBKR and "
                               f"Alpaca); {symbol} is a {type_.value} order",
                               field="extended_hours", value=True, symbol=symbol)
        # Every field is checked above: fill a twin of the class with the same slots by
        # plain attribute stores, then make it an Order (see _OrderFill): what the
        # dataclass __init__ does without its fourteen object.__setattr__ calls.
        order = _OrderFill()
        order.symbol = symbol
        order.side = side_
        order.qty = qty_
        order.order_type = type_
        order.limit_price = limit_
        order.stop_price = stop_
        order.tif = tif_
        order.client_order_id = client_order_id
        order.order_class = class_
        order.take_profit = None if tp is None else TakeProfit(tp["limit_price"])
        order.stop_loss = None if sl is None else StopLoss(sl["stop_price"], sl.get("limit_price"))
        order.trail_amount = trail_a
        order.trail_percent = trail_p
        order.extended_hours = bool(extended_hours)
        order.__class__ = cls  # type: ignore[assignment]
        return order  # type: ignore[return-value]

    def leg_orders(self) -> list[Order]:
        """The orders this one brings with it, take-profit first.

        Bracket/OTO: the exits, on the opposite side, for the same ``qty`` and ``tif``
        (a broker sizes them to the parent's filled quantity). OCO: the stop leg, on the
        same side (the order itself is the limit leg). Simple orders: none. The legs are
        simple orders with no ``client_order_id``.
        """
        if self.order_class is _SIMPLE:
            return []
        side = self.side if self.order_class is _OCO else (
            _SELL if self.side is _BUY else _BUY)
        legs: list[Order] = []
        if self.take_profit is not None and self.order_class is not _OCO:
            legs.append(Order(self.symbol, side, self.qty, _LIMIT,
                              limit_price=self.take_profit.limit_price, tif=self.tif))
        if self.stop_loss is not None:
            sl = self.stop_loss
            legs.append(Order(
                self.symbol, side, self.qty,
                _STOP if sl.limit_price is None else _STOP_LIMIT,
                limit_price=sl.limit_price, stop_price=sl.stop_price, tif=self.tif))
        return legs


def market_order(symbol: str, side: Side, qty: float, tif: TimeInForce) -> Order:
    """A simple market order from fields already checked, without :meth:`Order.create`.

    For a broker's fast path: ``symbol`` a known non-empty symbol, ``side`` and ``tif``
    members (``tif`` day or gtc), ``qty`` a float in ``(0, MAX_QTY]``. Nothing is checked
    here; the order equals the one ``Order.create(symbol, side.value, qty,
    tif=tif.value)`` builds.
    """
    order = _OrderFill()
    order.symbol = symbol
    order.side = side
    order.qty = qty
    order.order_type = _MARKET
    order.limit_price = None
    order.stop_price = None
    order.tif = tif
    order.client_order_id = None
    order.order_class = _SIMPLE
    order.take_profit = None
    order.stop_loss = None
    order.trail_amount = None
    order.trail_percent = None
    order.extended_hours = False
    order.__class__ = Order  # type: ignore[assignment]
    return order  # type: ignore[return-value]


class _OrderFill:
    """:meth:`Order.create`'s scratch object: the slots of :class:`Order` (same names,
    same order, so the layouts match and ``__class__`` may be switched to ``Order``), but
    not frozen, so each field is one plain attribute store. A slotted Order is ~150 bytes
    where one with a ``__dict__`` filled by ``update`` was ~530, and filling it this way
    is faster than ``__dict__.update``."""

    __slots__ = Order.__slots__
    symbol: str
    side: Side
    qty: float
    order_type: OrderType
    limit_price: float | None
    stop_price: float | None
    tif: TimeInForce
    client_order_id: str | None
    order_class: OrderClass
    take_profit: TakeProfit | None
    stop_loss: StopLoss | None
    trail_amount: float | None
    trail_percent: float | None
    extended_hours: bool


def _trail(type_: OrderType, amount: Any, percent: Any,
           symbol: str) -> tuple[float | None, float | None]:
    """A trailing stop's trail, checked: exactly one of amount and percent, only there."""
    if type_ is not OrderType.TRAILING_STOP:
        for name, value in (("trail_amount", amount), ("trail_percent", percent)):
            if value is not None:
                raise InvalidOrder(
                    f"a {type_.value} order for {symbol} takes no {name} (got {_shown(value)}); "
                    "use order_type='trailing_stop'", field=name, value=value, symbol=symbol)
        return None, None
    if (amount is None) == (percent is None):
        raise InvalidOrder(
            f"a trailing_stop order for {symbol} needs exactly one of trail_amount and "
            f"trail_percent (got {_shown(amount)} and {_shown(percent)})",
            field="trail_amount" if amount is not None else "trail_percent",
            value=amount if amount is not None else percent, symbol=symbol)
    if amount is not None:
        return _number(amount, "trail_amount", symbol, MAX_PRICE), None
    pct = _number(percent, "trail_percent", symbol, 100.0)
    if pct >= 100.0:
        raise InvalidOrder(f"trail_percent for {symbol} must be below 100, got {_shown(percent)}",
                           field="trail_percent", value=percent, symbol=symbol)
    return None, pct


def _check_class(class_: OrderClass, type_: OrderType, tif_: TimeInForce, side_: Side,
                 tp: dict[str, float] | None, sl: dict[str, float] | None,
                 limit: float | None, symbol: str) -> None:
    """The order-class rules of :meth:`Order.create`; ``InvalidOrder`` naming the field."""
    if class_ is OrderClass.SIMPLE:
        for name, leg in (("take_profit", tp), ("stop_loss", sl)):
            if leg is not None:
                raise InvalidOrder(
                    f"a simple order for {symbol} takes no {name}; use order_class="
                    "'bracket', 'oto' or 'oco'", field=name, value=leg, symbol=symbol)
        if tif_ in (TimeInForce.OPG, TimeInForce.CLS) and type_ not in (
                OrderType.MARKET, OrderType.LIMIT):
            raise InvalidOrder(
                f"tif {tif_.value!r} takes market and limit orders only; got a {type_.value} "
                f"order for {symbol}", field="tif", value=tif_.value, symbol=symbol)
        return
    if tif_ not in (TimeInForce.DAY, TimeInForce.GTC):
        raise InvalidOrder(
            f"a {class_.value} order for {symbol} must be day or gtc, got tif {tif_.value!r}",
            field="tif", value=tif_.value, symbol=symbol)
    if type_ is OrderType.TRAILING_STOP:
        raise InvalidOrder(
            f"a {class_.value} order for {symbol} cannot be a trailing_stop",
            field="order_type", value=type_.value, symbol=symbol)
    if class_ is OrderClass.OTO:
        if (tp is None) == (sl is None):
            raise InvalidOrder(
                f"an oto order for {symbol} needs exactly one of take_profit and stop_loss",
                field="stop_loss" if tp is not None else "take_profit",
                value=sl if tp is not None else None, symbol=symbol)
        return
    if tp is None or sl is None:
        name = "take_profit" if tp is None else "stop_loss"
        raise InvalidOrder(f"a {class_.value} order for {symbol} needs {name}",
                           field=name, value=None, symbol=symbol)
    # The exits' side: a bracket's is opposite to its entry, an OCO's is its own.
    exit_sells = (side_ is Side.BUY) if class_ is OrderClass.BRACKET else (side_ is Side.SELL)
    above = tp["limit_price"] > sl["stop_price"]
    if above != exit_sells:
        what = (f"a {'buy' if side_ is Side.BUY else 'sell'} {class_.value}")
        where = "above" if exit_sells else "below"
        raise InvalidOrder(
            f"{what} for {symbol} needs its take-profit limit ({tp['limit_price']:g}) "
            f"{where} its stop-loss stop ({sl['stop_price']:g})",
            field="take_profit.limit_price", value=tp["limit_price"], symbol=symbol)
    if class_ is OrderClass.OCO and limit != tp["limit_price"]:
        raise InvalidOrder(
            f"an oco order for {symbol} is its take-profit leg: limit_price ({limit:g}) must "
            f"equal take_profit's ({tp['limit_price']:g}) or be left out",
            field="limit_price", value=limit, symbol=symbol)
