"""The one exception hierarchy of simbroker.

Grouped by *where* a failure happened::

    SimbrokerError                  anything simbroker raises on purpose
    ├── ConfigError                 a configuration file or value is wrong
    │   └── FeeScheduleError        an unknown or malformed fee schedule (also ValueError)
    ├── DataError                   bars failed to load or validate
    │   (DataWarning, a UserWarning: bars loaded but deserve a look, e.g. zero volume)
    ├── ClockError                  a clock was asked to go backwards, or is unset
    ├── TradeLogError               a trade log could not be written, or read back intact
    ├── StrategyError               the user's strategy raised (bar, timestamp attached)
    ├── UnknownOrder                an order id the broker has never seen
    ├── OrderRejected               an order was refused; nothing was sent or changed
    │   ├── InvalidOrder            the order itself is malformed (qty, side, prices...)
    │   ├── ShortingNotAllowed      it would open or grow a short position
    │   │   └── HardToBorrow        a hard-to-borrow short beyond what was located
    │   ├── InsufficientBuyingPower the account cannot pay for it (required > available)
    │   ├── PatternDayTrading       it would be a 4th day trade in 5 days under $25,000
    │   ├── PositionConflict        it would cross a position through zero, or open a side
    │   │                           while the other side has an open order (Alpaca's rule)
    │   ├── ReplaceRejected         a replace was refused (order closed, or bad change)
    │   └── RiskRejected            a pre-trade risk rule refused it
    └── BrokerError                 the broker (or the way to it) failed
        ├── BrokerConnectionError   could not connect, or the connection dropped
        │   └── BrokerTimeout       a call had no answer before its deadline
        ├── OrderStatusUnknown      an order's fate is unknown until the venue confirms it
        └── BrokerAPIError          the broker answered with an error
            └── BrokerRateLimited   the broker refused for rate; ``retry_after`` seconds

Every exception carries the fields that explain it (``symbol``, ``order_id``, ``rule``,
values) as attributes and builds one readable sentence from them. None ever carries a
secret: adapters translate their library's errors into these before raising.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrokerAPIError",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerRateLimited",
    "BrokerTimeout",
    "ClockError",
    "ConfigError",
    "DataError",
    "DataWarning",
    "FeeScheduleError",
    "HardToBorrow",
    "InsufficientBuyingPower",
    "InvalidOrder",
    "OrderRejected",
    "OrderStatusUnknown",
    "PatternDayTrading",
    "PositionConflict",
    "ReplaceRejected",
    "RiskRejected",
    "ShortingNotAllowed",
    "SimbrokerError",
    "StrategyError",
    "TradeLogError",
    "UnknownOrder",
]


class SimbrokerError(Exception):
    """Base class of every error simbroker raises on purpose."""


class ConfigError(SimbrokerError):
    """A configuration file or value is wrong.

    Parameters
    ----------
    message
        What is wrong, naming the key and the file (never a secret value).
    key, path
        The offending key and the file it came from, when known.
    """

    def __init__(self, message: str, *, key: str | None = None, path: str | None = None):
        self.key = key
        self.path = path
        super().__init__(message)


class FeeScheduleError(ConfigError, ValueError):
    """A fee schedule is unknown, malformed, or has no version for a date.

    The message names the schedule (with the closest known names for an unknown one) and
    the date or field at fault. Also a ``ValueError``, as every bad model parameter is.
    """


class DataError(SimbrokerError):
    """Bars failed to load or validate.

    ``problems`` lists the first offending rows as dicts with the keys ``row``,
    ``symbol``, ``timestamp``, ``field`` and ``reason``; the message shows them.
    """

    def __init__(self, message: str, *, problems: list[dict[str, Any]] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            lines = [message]
            for p in self.problems:
                where = ", ".join(
                    f"{k}={p[k]}" for k in ("row", "symbol", "timestamp", "field")
                    if p.get(k) is not None
                )
                lines.append(f"  - {where}: {p.get('reason', '')}")
            message = "\n".join(lines)
        super().__init__(message)


class DataWarning(UserWarning):
    """Bars loaded, but something in them deserves a look (not an exception).

    Raised as a warning (``warnings.warn``) by :func:`simbroker.load_bars`: a symbol with
    zero volume on most bars (pass ``volume="unknown"`` if the source does not report
    it), columns the loader did not use, an ``Adj Close`` column next to the raw close.
    The message names the file, the symbol or column, and the fix.
    """


class ClockError(SimbrokerError):
    """A clock was asked to move backwards, or was read before it was set."""


class TradeLogError(SimbrokerError):
    """A trade log could not be written, or what was read back is not intact.

    Parameters
    ----------
    message
        What went wrong.
    path
        The trade log file, when known.
    line
        The 1-based line number of the offending record, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {line}" if line is not None else "") + ": "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)


class StrategyError(SimbrokerError):
    """The user's strategy raised; the original exception is ``__cause__``.

    ``strategy`` names the strategy, ``bar`` is the index of the bar being handled and
    ``timestamp`` its time (``None`` when it failed before the first bar, in
    ``indicators``), ``where`` the ``file:line`` in the strategy's own code where it
    failed. ``result`` holds the run up to the bar before, when the engine could build
    one (a :class:`~simbroker.BacktestResult`), else ``None``.
    """

    def __init__(self, strategy: str, *, bar: int | None = None, timestamp: Any = None,
                 error: BaseException | None = None, where: str | None = None):
        self.strategy = strategy
        self.bar = bar
        self.timestamp = timestamp
        self.where = where
        self.result: Any = None
        what = f"{type(error).__name__}: {error}" if error is not None else "an error"
        at = f" at bar {bar}" if bar is not None else " before the first bar"
        at += f" ({timestamp})" if timestamp is not None else ""
        at += f", in {where}" if where else ""
        super().__init__(f"strategy {strategy} raised {what}{at}")


class UnknownOrder(SimbrokerError):
    """The broker has no order with this id."""

    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(f"unknown order id {order_id!r}")


class OrderRejected(SimbrokerError):
    """An order was refused before it reached the market; nothing was changed.

    Parameters
    ----------
    reason
        One readable sentence.
    symbol, order_id, client_order_id
        What was rejected, when known.
    """

    def __init__(
        self,
        reason: str,
        *,
        symbol: str | None = None,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ):
        self.reason = reason
        self.symbol = symbol
        self.order_id = order_id
        self.client_order_id = client_order_id
        super().__init__(reason)


class InvalidOrder(OrderRejected):
    """The order is malformed: unknown symbol, side or type, bad qty, missing price...

    ``field`` names the argument that was wrong and ``value`` holds what was given.
    """

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        value: Any = None,
        symbol: str | None = None,
        client_order_id: str | None = None,
    ):
        self.field = field
        self.value = value
        super().__init__(reason, symbol=symbol, client_order_id=client_order_id)


class ShortingNotAllowed(OrderRejected):
    """A sell would take the position below zero on a broker that forbids shorting.

    ``position`` is the position net of open sell orders, ``qty`` the order's; ``rule``
    is ``"allow_short"`` (the broker's ``allow_short=False``), as in the ``rejected``
    record the paper broker writes.
    """

    rule = "allow_short"

    def __init__(self, symbol: str, *, position: float, qty: float, order_id: str | None = None):
        self.position = position
        self.qty = qty
        super().__init__(
            f"shorting is not allowed: selling {qty:g} {symbol} against a position of "
            f"{position:g} (net of open sell orders) would go short",
            symbol=symbol,
            order_id=order_id,
        )


class HardToBorrow(ShortingNotAllowed):
    """A short sale in a hard-to-borrow symbol that no locate covers.

    ``short`` is the short position the order would leave (net of open sell orders),
    ``located`` the shares located for the symbol, ``position`` the position net of open
    sell orders before it and ``qty`` the order's; ``rule`` is ``"hard_to_borrow"``.
    """

    rule = "hard_to_borrow"

    def __init__(self, symbol: str, *, short: float, located: float, position: float,
                 qty: float, order_id: str | None = None):
        self.short = short
        self.located = located
        self.position = position
        self.qty = qty
        OrderRejected.__init__(
            self,
            f"{symbol} is hard to borrow: a short of {short:g} shares needs a locate, and "
            f"{located:g} are located (locate more with broker.locate({symbol!r}, qty) or "
            f"BorrowModel(located={{{symbol!r}: qty}}))",
            symbol=symbol,
            order_id=order_id,
        )


class InsufficientBuyingPower(OrderRejected):
    """The account's buying power does not cover the order, as a venue would refuse it
    (Alpaca's 403 "insufficient buying power", IB's error 201).

    ``required`` is what the order would commit (its notional at the worst price it can
    fill at, times the margin requirement), ``available`` the buying power left after the
    open orders' reservations, and ``rule`` names the account rule that refused it
    (``"buying_power"``, ``"good_faith"``, ``"free_riding"``, ``"pattern_day_trader"``).
    ``day_trades`` is the day-trade count when the PDT rule refused it.
    """

    def __init__(
        self,
        symbol: str,
        *,
        required: float,
        available: float,
        rule: str = "buying_power",
        detail: str | None = None,
        day_trades: int | None = None,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ):
        self.required = required
        self.available = available
        self.rule = rule
        self.day_trades = day_trades
        text = (f"insufficient buying power for {symbol}: the order requires "
                f"{required:,.2f}, available {available:,.2f}")
        if detail:
            text = f"{text} ({detail})"
        super().__init__(text, symbol=symbol, order_id=order_id,
                         client_order_id=client_order_id)


class PatternDayTrading(OrderRejected):
    """The pattern-day-trader rule refused the order (FINRA Rule 4210): it would be the
    account's ``day_trades + 1``-th day trade in five trading days while its equity is
    under ``min_equity`` (25,000), as Alpaca's PDT protection refuses it."""

    def __init__(self, symbol: str, *, day_trades: int, equity: float,
                 min_equity: float = 25_000.0, client_order_id: str | None = None):
        self.day_trades = day_trades
        self.equity = equity
        self.min_equity = min_equity
        self.rule = "pattern_day_trader"
        super().__init__(
            f"pattern day trader protection: closing {symbol} today would be day trade "
            f"{day_trades + 1} in 5 trading days ({day_trades} already) with equity "
            f"{equity:,.2f} under {min_equity:,.2f}", symbol=symbol,
            client_order_id=client_order_id)


class PositionConflict(OrderRejected):
    """Alpaca's one-side-at-a-time rule refused the order (HTTP 403, code 40310000).

    ``rule`` is ``"qty_available"`` when a closing order is larger than what is left of
    the position after the open closing orders (``available``): a long cannot become a
    short in one sell, nor a short a long in one buy ("insufficient qty available for
    order"); or ``"opposite_side_open"`` when an order would open a flat symbol's side
    while an order of the other side is open ("cannot open a short sell while a long buy
    order is open"). ``requested`` is the order's quantity, ``position`` the signed
    position (NaN when the adapter does not know it). The paper broker applies the rule
    with ``venue="alpaca"``; IBKR takes such orders.
    """

    def __init__(self, symbol: str, *, rule: str, side: str, requested: float,
                 available: float, position: float, venue: str = "Alpaca",
                 order_id: str | None = None, client_order_id: str | None = None):
        self.rule = rule
        self.side = side
        self.requested = requested
        self.available = available
        self.position = position
        if rule == "qty_available":
            held = "long" if side == "sell" else "short"
            size = "" if position != position else f" ({abs(position):g})"  # NaN: unknown
            text = (f"{venue} refuses {side}ing {requested:g} {symbol}: only {available:g} "
                    f"of the {held} position{size} is left to close after the open "
                    f"orders, and one order may not cross the position through zero "
                    f"(close it first, then open the other side)")
        else:
            other = "buy" if side == "sell" else "sell"
            text = (f"{venue} refuses a {side} of {requested:g} {symbol} that opens a "
                    f"position while a {other} order of {symbol} is open (one side at a "
                    f"time: cancel it or wait for it to finish)")
        super().__init__(text, symbol=symbol, order_id=order_id,
                         client_order_id=client_order_id)


class ReplaceRejected(OrderRejected):
    """A ``replace_order`` was refused; the order is unchanged.

    Either the order is no longer open (``status`` holds its final status: a replace
    that races a fill fails, as at Alpaca) or the change is invalid (``field`` names
    it: a quantity below the filled quantity, a field the order type does not take), or
    an account or venue rule refused the replacement (``rule`` names it; the refusal,
    e.g. :class:`InsufficientBuyingPower` with its amounts, is the ``__cause__``).

    Parameters
    ----------
    order_id
        The order that was to be replaced.
    reason
        One readable sentence.
    status
        The order's status when the replace was refused.
    field
        The replace argument that was wrong, if that was why.
    """

    def __init__(
        self,
        order_id: str,
        reason: str,
        *,
        status: str | None = None,
        field: str | None = None,
        symbol: str | None = None,
        client_order_id: str | None = None,
    ):
        self.status = status
        self.field = field
        super().__init__(f"cannot replace order {order_id!r}: {reason}", symbol=symbol,
                         order_id=order_id, client_order_id=client_order_id)

    @property
    def rule(self) -> str | None:
        """The account or venue rule that refused the replacement, when one did: the
        ``rule`` of the refusal it was raised from (``"buying_power"``, ``"good_faith"``,
        ``"pattern_day_trader"``, ``"qty_available"``, ...), else ``None``."""
        rule = getattr(self.__cause__, "rule", None)
        return rule if isinstance(rule, str) else None


class RiskRejected(OrderRejected):
    """A pre-trade risk rule refused the order.

    ``rule`` names the rule, ``limit`` its configured bound and ``value`` what the order
    would have reached.
    """

    def __init__(
        self,
        rule: str,
        reason: str,
        *,
        limit: float | None = None,
        value: float | None = None,
        symbol: str | None = None,
    ):
        self.rule = rule
        self.limit = limit
        self.value = value
        super().__init__(f"risk rule {rule!r}: {reason}", symbol=symbol)


class BrokerError(SimbrokerError):
    """The broker, or the connection to it, failed."""


class BrokerConnectionError(BrokerError):
    """Could not connect to the broker, or the connection dropped."""


class BrokerTimeout(BrokerConnectionError):
    """A call to the broker had no answer before its deadline.

    ``operation`` names the call and ``timeout`` the deadline in seconds. Whether the
    broker acted on the request is unknown (see :class:`OrderStatusUnknown` for orders).
    """

    def __init__(self, operation: str, timeout: float, *, detail: str | None = None):
        self.operation = operation
        self.timeout = timeout
        super().__init__(f"{operation}: no answer from the broker within {timeout:g} s"
                         + (f" ({detail})" if detail else ""))


class OrderStatusUnknown(BrokerError):
    """The broker may or may not hold this order; it is resolved on reconnect.

    Raised when an order was sent but neither an acknowledgement nor a refusal came back
    (a dropped connection, a lost answer). The adapter keeps the order as
    ``pending_confirm`` and resolves it from the venue's own records before it sends any
    new order; resubmitting the same ``client_order_id`` is always safe.
    """

    def __init__(self, message: str, *, order_id: str | None = None,
                 client_order_id: str | None = None, symbol: str | None = None):
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.symbol = symbol
        super().__init__(message)


class BrokerAPIError(BrokerError):
    """The broker answered with an error; ``code`` is the broker's own code, if any."""

    def __init__(self, message: str, *, code: int | str | None = None):
        self.code = code
        super().__init__(message if code is None else f"{message} (code {code})")


class BrokerRateLimited(BrokerAPIError):
    """The broker refused the request for its rate limit; retry after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 code: int | str | None = 429):
        self.retry_after = retry_after
        if retry_after is not None:
            message = f"{message}; retry after {retry_after:g} s"
        super().__init__(message, code=code)
