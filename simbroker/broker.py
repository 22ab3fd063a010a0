"""The Broker protocol: the one interface every broker in simbroker satisfies."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from simbroker.types import Fill, OrderInfo

__all__ = ["Broker"]


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
