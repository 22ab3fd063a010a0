"""The IBKR broker's queries: the time, orders, positions, cash, the account and fills as
the adapter's books hold them (TWS's figures at the last sync plus the fills since), and
the connection's state.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from simbroker.brokers.ibkr._base import IBKRState
from simbroker.brokers.ibkr.account import account_info
from simbroker.brokers.ibkr.connection import State
from simbroker.errors import BrokerConnectionError, UnknownOrder
from simbroker.types import AccountInfo, Fill, OrderInfo, OrderStatus

__all__ = ["Queries"]


class Queries(IBKRState):
    """The read-only part of :class:`~simbroker.brokers.ibkr.IBKRBroker`."""

    def now(self) -> datetime:
        """The current time, UTC (the local clock; TWS's is :meth:`IBKRBarFeed.server_now`)."""
        return datetime.now(timezone.utc)

    def get_order(self, order_id: str) -> OrderInfo:
        """The order's current state (``pending_confirm`` while its fate is unknown)."""
        self.conn.require("get_order", self.ready_wait)
        with self._cond:
            entry = self.orders.get(str(order_id))
            if entry is None:
                raise UnknownOrder(str(order_id))
            return entry.info()

    def get_orders(self, *, open_only: bool = False) -> list[OrderInfo]:
        """Every order this account's client id has (only the open ones if asked)."""
        self.conn.require("get_orders", self.ready_wait)
        with self._cond:
            return [e.info() for e in self.orders.all() if e.is_open or not open_only]

    def get_positions(self) -> dict[str, float]:
        """Open positions ``{symbol: signed qty}``: TWS's at the last sync plus the fills
        booked since (so they agree with :meth:`get_fills`). Trades of other client ids
        or of TWS's own window show up at the next sync (reconnect, 1101/1102)."""
        self.conn.require("get_positions", self.ready_wait)
        with self._cond:
            return dict(self._positions)

    def get_cash(self) -> float:
        """``TotalCashValue`` of the account at the last sync, moved by each fill since
        (notional and commission)."""
        self.conn.require("get_cash", self.ready_wait)
        with self._cond:
            if self._cash is None:
                raise BrokerConnectionError("IBKR sent no TotalCashValue for the account")
            return self._cash

    def _held_for_sale(self, symbol: str, skip: str) -> float:
        """The position in ``symbol`` less what the open sell orders (but ``skip``, and
        legs waiting for their parent) have left to sell: what a cash account may
        still sell."""
        with self._cond:
            selling: dict[str, float] = {}  # a group's legs sell the position once
            for e in self.orders.all():
                if e.symbol == symbol and e.side == "sell" and e.is_open \
                        and e.order_id != skip and e.status is not OrderStatus.HELD:
                    key = e.group_id or e.order_id
                    selling[key] = max(selling.get(key, 0.0), e.qty - e.filled_qty)
            return self._positions.get(symbol, 0.0) - sum(selling.values())

    def _equity_now(self) -> float:
        """``NetLiquidation`` from the account values the client already holds (no
        request: this runs on a refusal path); NaN when it holds none."""
        try:
            rows = list(self.ib.accountValues(self.account) if self.account
                        else self.ib.accountValues())
            return next(float(v.value) for v in rows if v.tag == "NetLiquidation"
                        and v.currency in (self.currency, "BASE"))
        except (StopIteration, ValueError, AttributeError, RuntimeError):
            return math.nan

    def get_account(self) -> AccountInfo:
        """The account's figures as TWS reckons them now (see
        :mod:`simbroker.brokers.ibkr.account` for the tag behind each key).

        Each call asks TWS again (``reqAccountUpdates``: TWS answers with the whole
        account and ``accountDownloadEnd``), so the figures are never older than the
        call: a drop before the answer raises
        :class:`~simbroker.errors.BrokerConnectionError`, no answer within ``timeout``
        :class:`~simbroker.errors.BrokerTimeout`; earlier figures are never returned.
        ``pattern_day_trader`` is the ``pattern_day_trader`` given (the API does not
        report the flag) and ``day_trades`` is derived from ``DayTradesRemaining``.
        """
        self.conn.require("get_account", self.ready_wait)
        # The client keeps one pending account download: one request at a time.
        with self._account_lock:
            return self._ask_account()

    def _ask_account(self) -> AccountInfo:
        generation = self.conn.generation
        ib, account = self.ib, self.account

        async def ask() -> list[Any]:
            if not ib.isConnected():
                raise ConnectionError("not connected")
            await ib.reqAccountUpdatesAsync(account)
            if self.conn.generation != generation or not ib.isConnected():
                raise ConnectionError("the connection dropped during the request")
            return list(ib.accountValues(account) if account else ib.accountValues())

        rows = self._run(ask(), what="get_account")
        if self.conn.generation != generation:
            raise BrokerConnectionError("get_account: the IBKR connection dropped during "
                                        "the request; no figures returned")
        return account_info(rows, currency=self.currency, account_type=self.account_type,
                            pattern_day_trader=self.pattern_day_trader)

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """Fills of the account (executions with commissions), in the order booked.

        A fill's ``timestamp`` is when this adapter booked it (UTC, microseconds, strictly
        increasing), not TWS's execution time: TWS stamps executions to the whole second,
        so a cursor taken just before an order would miss its fills, and a fill learned
        at a reconnect would land behind a cursor taken meanwhile. ``since`` is inclusive;
        a fill is never dropped. TWS's own time is the trade log's ``exec_time``.
        """
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC); got a naive datetime")
        self.conn.require("get_fills", self.ready_wait)
        with self._cond:
            fills = sorted(self._fills.values(), key=lambda f: (f["timestamp"], f["fill_id"]))
        return fills if since is None else [f for f in fills if f["timestamp"] >= since]

    @property
    def reconnects(self) -> int:
        """Successful reconnects so far."""
        return self.conn.reconnects

    @property
    def state(self) -> State:
        """The connection state (``ready`` is the only one in which calls answer)."""
        return self.conn.state
