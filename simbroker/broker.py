"""The Broker protocol: the one interface every broker in simbroker satisfies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

from simbroker.types import AccountInfo, Fill, OrderInfo

__all__ = ["AccountBroker", "Broker", "OrderManagingBroker"]


@runtime_checkable
class Broker(Protocol):
    """Six methods that are all a strategy may ask of a broker.

    The paper broker, the IBKR and Alpaca adapters and the risk wrapper all satisfy this
    protocol exactly, so the same strategy object runs in a backtest, on paper and live.
    Extensions to :meth:`submit_order` are keyword-only, so every call written against
    the six methods stays valid.

    Orders flow as: validate -> submit -> track ``order_id`` -> fills (polled or
    streamed) -> positions and cash update on each fill. A refused order raises an
    :class:`~simbroker.errors.OrderRejected` subclass and changes nothing.

    Examples
    --------
    >>> import simbroker
    >>> bars = simbroker.synthetic_bars(n_symbols=1, n_bars=3, seed=7)
    >>> broker = simbroker.PaperBroker(bars, cash=10_000, slippage=0, fees=0)
    >>> order = broker.submit_order("SYM000", "buy", 10)
    >>> order["status"]
    'new'
    >>> broker.step()  # bar 0 closes; the order filled at its open
    0
    >>> broker.get_positions()
    {'SYM000': 10.0}
    >>> isinstance(broker, simbroker.Broker)
    True
    """

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
        extended_hours: bool = False,
    ) -> OrderInfo:
        """Send an order; return its state (see :class:`~simbroker.types.OrderInfo`).

        Parameters
        ----------
        symbol
            The instrument, as the broker names it.
        side
            ``"buy"`` or ``"sell"``.
        qty
            Quantity, finite and > 0 (fractions allowed where the venue allows them).
        order_type
            ``"market"``, ``"limit"``, ``"stop"`` or ``"stop_limit"``.
        limit_price, stop_price
            Required by (and only by) the types that use them.
        tif
            ``"day"`` (default) or ``"gtc"``.
        client_order_id
            The caller's id. Submitting an id the broker already knows returns that
            order instead of placing a second one: resubmission after a crash is safe.
        extended_hours
            Also trade outside regular hours (pre- and post-market); limit orders only.
            Without it an order never trades on a bar outside regular hours (when the
            bars carry sessions, see :mod:`simbroker.sessions`). IBKR sends it as
            ``outsideRth``, Alpaca as ``extended_hours`` (day orders only there).

        Raises
        ------
        InvalidOrder
            A malformed order (names the field and value).
        OrderRejected
            Any other refusal; nothing was sent and no state changed.
        """
        ...

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel an open order and return its state.

        Idempotent: cancelling an order that is already canceled, filled, expired or
        rejected returns its (unchanged) final state. Raises
        :class:`~simbroker.errors.UnknownOrder` for an id the broker never issued.
        """
        ...

    def get_positions(self) -> dict[str, float]:
        """Open positions, ``{symbol: signed quantity}``; flat symbols are left out."""
        ...

    def get_cash(self) -> float:
        """Cash balance in account currency (negative when borrowing)."""
        ...

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """Executions in time order; with ``since``, only those at or after it.

        ``since`` is inclusive; ``fill_id`` is unique, so callers that keep a cursor
        can de-duplicate exactly.
        """
        ...

    def now(self) -> datetime:
        """The broker's current time, tz-aware UTC (simulated in a backtest)."""
        ...


@runtime_checkable
class OrderManagingBroker(Broker, Protocol):
    """A :class:`Broker` that also lists and replaces orders, and takes every order kind.

    Every simbroker broker satisfies it (the paper broker, the IBKR and Alpaca adapters,
    the risk wrapper). Strategies that only need the six :class:`Broker` methods should
    keep asking for a ``Broker``; ``isinstance(b, OrderManagingBroker)`` tells whether the
    extras are there (``simbroker.testing.checks.check_broker_conformance`` checks them).

    ``submit_order`` takes, besides the :class:`Broker` arguments, the keyword-only
    order kinds of :meth:`simbroker.types.Order.create`: ``order_class`` (``"simple"``,
    ``"bracket"``, ``"oto"``, ``"oco"``) with ``take_profit={"limit_price": x}`` and
    ``stop_loss={"stop_price": y[, "limit_price": z]}``, ``order_type="trailing_stop"``
    with ``trail_amount`` or ``trail_percent``, the tifs ``"opg"``, ``"cls"``, ``"ioc"``
    and ``"fok"``, and ``extended_hours``. A bracket or OTO returns its parent, whose
    ``legs`` lists the children (``held`` until the parent fills); one leg filling
    cancels its siblings.
    """

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
        extended_hours: bool = False,
        order_class: str = "simple",
        take_profit: Mapping[str, float] | None = None,
        stop_loss: Mapping[str, float] | None = None,
        trail_amount: float | None = None,
        trail_percent: float | None = None,
    ) -> OrderInfo:
        """Send an order of any kind; see :class:`Broker` and :meth:`Order.create`."""
        ...

    def get_order(self, order_id: str) -> OrderInfo:
        """The current state of one order; :class:`~simbroker.errors.UnknownOrder` if none."""
        ...

    def get_orders(self, *, open_only: bool = False) -> list[OrderInfo]:
        """Every order this broker knows, in submission order (children after their
        parent), or with ``open_only=True`` only those still open (``held`` included)."""
        ...

    def replace_order(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
        trail_amount: float | None = None,
        trail_percent: float | None = None,
        tif: str | None = None,
    ) -> OrderInfo:
        """Change an open order in place, keeping its ``order_id``; return its new state.

        Only the fields given change. Fills already made stay; the paper broker applies
        the change from the next bar on. Raises
        :class:`~simbroker.errors.ReplaceRejected` when the order is no longer open (a
        replace racing a fill fails) or the change is invalid (a ``qty`` below the filled
        quantity, a field the order type does not take), and
        :class:`~simbroker.errors.UnknownOrder` for an id never issued.
        """
        ...


@runtime_checkable
class AccountBroker(Protocol):
    """A broker that reports its account: ``get_account() -> AccountInfo``.

    The paper broker, the live adapters and the risk wrapper have it, so a strategy can
    size positions from ``buying_power`` and ``equity`` the same way in every mode.
    ``isinstance(b, AccountBroker)`` tells whether a broker has it;
    ``simbroker.testing.checks.check_broker_conformance`` checks its keys.
    """

    def get_account(self) -> AccountInfo:
        """The account now (see :class:`~simbroker.types.AccountInfo`)."""
        ...
