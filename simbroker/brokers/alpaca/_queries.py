"""The Alpaca broker's queries: orders, positions, cash, the account and fills, and the
state of the stream and the venue's clock.
"""

from __future__ import annotations

from datetime import datetime

from simbroker.brokers.alpaca import connection
from simbroker.brokers.alpaca._records import _is_uuid
from simbroker.brokers.alpaca._sync import Syncing
from simbroker.brokers.alpaca.account import account_info
from simbroker.brokers.alpaca.translate import VenueOrder, utc, venue_order
from simbroker.errors import UnknownOrder
from simbroker.types import AccountInfo, Fill, OrderInfo, OrderStatus

__all__ = ["Queries"]


def _ids(v: VenueOrder) -> set[str]:
    """The Alpaca ids of an order and its nested legs."""
    out = {v.order_id}
    for leg in v.legs:
        out |= _ids(leg)
    return out


class Queries(Syncing):
    """The read-only part of :class:`~simbroker.brokers.alpaca.AlpacaBroker`."""

    def get_order(self, order_id: str) -> OrderInfo:
        """The order's current state, read from Alpaca (``UnknownOrder`` if it has none).

        ``order_id`` stays the order's id through replaces; its latest Alpaca order is
        read (following ``replaced_by``)."""
        if not _is_uuid(order_id):
            raise UnknownOrder(order_id)
        return self._refresh(order_id)

    def get_orders(self, *, open_only: bool = False) -> list[OrderInfo]:
        """The orders this adapter has seen, in submission order (each group's legs after
        its parent), with Alpaca's open orders read afresh.

        An order this adapter still holds as open but Alpaca no longer lists as open (its
        end missed on the stream) is read by id, so no order is reported open after
        Alpaca has closed it.
        """
        raw = self._get("/orders", "get_orders", params={
            "status": "open", "limit": 500, "direction": "asc", "nested": "true"}) or []
        listed: set[str] = set()
        for r in raw:
            v = venue_order(r)
            self._remember(v)
            listed.update(_ids(v))
        for info in self.orders.all():
            if OrderStatus(info["status"]).is_open and \
                    self.orders.current_id(info["order_id"]) not in listed:
                self._refresh(info["order_id"])
        return [i for i in self.orders.all()
                if not open_only or OrderStatus(i["status"]).is_open]

    def get_positions(self) -> dict[str, float]:
        """Open positions ``{symbol: signed qty}``."""
        from alpaca.trading.models import Position

        out: dict[str, float] = {}
        for raw in self._get("/positions", "get_positions") or []:
            p = Position(**raw)
            qty = float(p.qty)
            if qty:
                out[str(p.symbol)] = qty
        return out

    def get_account(self) -> AccountInfo:
        """The account's figures as Alpaca reckons them now: one ``GET /v2/account``
        per call (see :mod:`simbroker.brokers.alpaca.account` for the field behind each
        key), so they are never older than the call. No answer within ``timeout``
        raises :class:`~simbroker.errors.BrokerTimeout`, a failed connection
        :class:`~simbroker.errors.BrokerConnectionError`; earlier figures are never
        returned instead."""
        return account_info(self._get("/account", "get_account"))

    def get_cash(self) -> float:
        """The account's cash balance."""
        return float(self._get("/account", "get_cash").get("cash") or 0.0)

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """The account's fills from :attr:`fills_since` on (the current trading day by
        default, including those of an earlier process), in time order, each once.

        With ``since``: those at or after it (inclusive; fill times are milliseconds, the
        resolution of Alpaca's activities). A ``since`` older than :attr:`fills_since`
        reads the older fills from REST first, so none is ever left out. While the stream
        is not ready, REST is read before answering (and its failure raised).
        """
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC); got a naive datetime")
        if since is not None and since < self._loaded_from:
            self._load_orders(since)
            self._reconcile(since, log_before=self._session_start)
            self._loaded_from = since
        elif self._stream_state != connection.READY or self._sync_needed:
            self._reconcile()
        with self._fill_cond:
            keys = dict(self._fill_keys)
            fills = [self._fills[k] for k in sorted(keys, key=keys.__getitem__)]
        return fills if since is None else [f for f in fills if f["timestamp"] >= since]

    @property
    def stream_state(self) -> str:
        """``connecting``/``syncing``/``ready``/``lost``/``failed``/``closed``."""
        return self._stream_state

    @property
    def stream_connected(self) -> bool:
        """True while the trade_updates stream is subscribed."""
        return self._stream_state in (connection.SYNCING, connection.READY)

    @property
    def stream_connects(self) -> int:
        """Successful stream subscriptions so far."""
        return self._stream.connects if self._stream is not None else 0

    def server_clock(self) -> datetime | None:
        """Alpaca's clock in UTC, or ``None`` when it does not answer in time."""
        try:
            return utc(self._get("/clock", "get_clock")["timestamp"])
        except Exception:
            return None

    def pending_orders(self) -> list[str]:
        """client_order_ids of orders sent whose fate is not yet known."""
        return [p.client_order_id for p in self.orders.pending()]
