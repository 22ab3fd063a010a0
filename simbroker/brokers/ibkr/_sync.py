"""The IBKR broker's view of TWS: the events TWS sends (order status, open orders,
executions and commissions, errors and notices), booking each execution once, and the
sync after a (re)connect that reconciles orders, positions and cash with TWS's word and
resolves orders left ``pending_confirm``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from simbroker.brokers.ibkr._base import log
from simbroker.brokers.ibkr._queries import Queries
from simbroker.brokers.ibkr.orders import OrderEntry
from simbroker.brokers.ibkr.translate import (
    CANCELED_CODE,
    INFORMATIONAL,
    NOTICES,
    REJECTING,
    fill_of,
)
from simbroker.types import OrderStatus

__all__ = ["Syncing"]


_FINAL_EVENTS = {OrderStatus.CANCELED: "canceled", OrderStatus.REJECTED: "rejected",
                 OrderStatus.EXPIRED: "expired"}


def _shows(order: Any, change: dict[str, Any]) -> bool:
    """Whether an openOrder's ``order`` carries the modification ``change`` (an openOrder
    TWS sent before it read the modification, e.g. with a fill, does not)."""
    want = {"totalQuantity": change.get("qty"), "lmtPrice": change.get("limit_price"),
            "auxPrice": change.get("stop_price", change.get("trail_amount"))}
    return all(v is None or abs(float(getattr(order, k)) - float(v)) < 1e-9
               for k, v in want.items())


class Syncing(Queries):
    """TWS's events and the reconnect sync of :class:`~simbroker.brokers.ibkr.IBKRBroker`."""

    if TYPE_CHECKING:
        def _check_group(self, entry: OrderEntry) -> list[int]: ...  # Submitting's

    async def _resync(self, reason: str) -> None:
        """Reconcile with what TWS reported (syncing state, IO loop)."""
        ib = self.ib
        if reason == "connect":
            # The client's caches were reset before connecting: all of it is TWS's word,
            # and nothing was sent on this connection yet.
            with self._cond:
                for entry in self.orders.all():  # no message of the old socket comes now
                    entry.refusal, entry.unanswered = None, None
                self._reconcile_orders(ib.trades(), ib.fills(), resolve_upto=self._sent_seq)
                self._rebase(ib.fills())
            return
        # 1101 / 1102: the socket stayed up, TWS's view may not have.
        t = self.timeout
        await asyncio.wait_for(ib.reqPositionsAsync(), t)
        if self.account:
            await asyncio.wait_for(ib.reqAccountUpdatesAsync(self.account), t)
        trades = list(await asyncio.wait_for(ib.reqOpenOrdersAsync(), t))
        trades += list(await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), t))
        await asyncio.wait_for(ib.reqExecutionsAsync(), t)
        with self._cond:
            self._reconcile_orders(trades, ib.fills(), resolve_upto=None)
            self._rebase(ib.fills())

    async def _query_orders(self) -> None:
        """Ask TWS for its open and completed orders and executions now (ready state),
        to resolve orders still pending on a live connection (IO loop).

        TWS answers a client's requests in the order it reads them, so an order written
        before these requests and in none of the answers was not read by TWS.
        """
        upto, t, ib = self._sent_seq, self.timeout, self.ib
        trades = list(await asyncio.wait_for(ib.reqOpenOrdersAsync(), t))
        trades += list(await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), t))
        fills = list(await asyncio.wait_for(ib.reqExecutionsAsync(), t))
        with self._cond:
            self._reconcile_orders(trades, fills, resolve_upto=upto)

    def _reconcile_orders(self, trades: Iterable[Any], fills: Iterable[Any], *,
                          resolve_upto: int | None) -> None:
        """Absorb TWS's orders and executions (under the lock). With ``resolve_upto``,
        pending orders written up to that send and absent from both are not received."""
        at_tws: set[str] = set()
        for trade in trades:
            entry = self.orders.absorb_trade(trade, acknowledged=True)
            if entry is not None:
                at_tws.add(entry.order_id)
                if resolve_upto is not None and entry.status is OrderStatus.PENDING_CONFIRM:
                    entry.status = OrderStatus.NEW  # TWS lists it: it has it
                if entry.group_id is None:  # a group's records wait for its reasons
                    self._log_final(entry)
        fills = list(fills)
        orphans: dict[str, list[Any]] = {}
        for fill in fills:
            ex = fill.execution
            if self.orders.find(str(ex.orderRef or ""), int(ex.permId or 0), 0) is None:
                orphans.setdefault(str(ex.orderRef or f"perm-{ex.permId}"), []).append(fill)
        for order_id, group in orphans.items():
            self.orders.adopt_from_fills(order_id, group)
        for fill in fills:
            self._book(fill)
        stale: list[int] = []
        if resolve_upto is not None:
            for entry in self.orders.pending():
                if entry.order_id not in at_tws and not entry.fill_ids \
                        and 0 < entry.sent_seq <= resolve_upto:
                    if not entry.transmit and entry.ib_order_id:
                        # TWS may hold it untransmitted in its window: cancel it there.
                        stale.append(entry.ib_order_id)
                    self.orders.mark_not_received(entry)
                    log.warning("IBKR order %s resolved: %s", entry.order_id, entry.reason)
                    self._log_final(entry)
        self.orders.relink()
        for entry in self.orders.all():
            if entry.group_id == entry.order_id:
                stale += self._check_group(entry)
                self._relate(entry)
        if stale:
            self._loop.call_soon(self._cancel_ids, stale)
        self._cond.notify_all()

    def _cancel_ids(self, ib_ids: list[int]) -> None:
        """cancelOrder for these IB order ids (IO loop)."""
        for oid in ib_ids:
            try:
                self.ib.client.cancelOrder(oid)
            except ConnectionError:
                log.warning("IBKR: could not cancel order id %d (not connected); the next "
                            "sync checks its group again", oid)
                return

    def _relate(self, entry: OrderEntry) -> None:
        """The group rules after news of ``entry`` (under the lock): held children,
        activations (logged), cancel reasons (before the final record is written)."""
        for child in self.orders.relate(entry):
            if self.trade_log is not None:
                self.trade_log.write("activated", self.now(), order_id=child.order_id,
                                     symbol=child.symbol, qty=child.qty)
        for member in self.orders.members(entry):
            self._log_final(member)

    def _rebase(self, fills: Iterable[Any]) -> None:
        """The books from TWS's figures, which include every execution it just listed
        (under the lock)."""
        ib = self.ib
        self._in_base = {str(f.execution.execId) for f in fills}
        rows = ib.positions(self.account) if self.account else ib.positions()
        self._positions = {str(p.contract.symbol): float(p.position) for p in rows
                           if p.position}
        cash = None
        for v in ib.accountValues(self.account) if self.account else ib.accountValues():
            if v.tag == "TotalCashValue" and v.currency in (self.currency, "BASE"):
                cash = float(v.value)
        self._cash = cash
        self._cond.notify_all()

    def _on_error(self, req_id: int, code: int, text: str, *rest: Any) -> None:
        if req_id == -1 or req_id is None:
            if code in NOTICES:
                self.conn.notice(code)
            elif code == 326:
                self.conn.client_id_in_use()
            elif 2103 <= code <= 2110:
                log.info("IBKR notice %d: %s", code, text)
            return
        if code == 326:
            self.conn.client_id_in_use()
            return
        with self._cond:
            entry = self.orders.by_ib_id(int(req_id))
            if entry is not None and entry.awaits_modify_answer() \
                    and code != CANCELED_CODE and code not in INFORMATIONAL:
                if entry.replacing is not None and entry.replace_answer is None:
                    entry.replace_answer = (code, text)  # the modification's answer
                else:  # the late answer of one replace_order stopped waiting for
                    log.info("IBKR order %s: TWS refused the modification late (error "
                             "%d); the order works on unchanged", entry.order_id, code)
                    entry.unanswered = None
                entry.refusal, entry.repeats_read = (code, text), False
                trade = self._trade_of(entry)
                if trade is not None and trade.log and \
                        getattr(trade.log[-1], "errorCode", 0) == code:
                    entry.replace_log.add(len(trade.log) - 1)
                self._restore_working(entry, trade)
            elif entry is not None and entry.repeats_refusal(code, text):
                log.info("IBKR order %s: TWS repeated its refusal of the modification "
                         "(error %d); the order works on", entry.order_id, code)
                self._restore_working(entry, self._trade_of(entry))
            elif entry is not None:
                if code in REJECTING and entry.status in (OrderStatus.PENDING_CONFIRM,
                                                          OrderStatus.NEW, OrderStatus.HELD):
                    if entry.filled_qty == 0:
                        self.orders.reject(entry, code, text)
                        self._log_final(entry)
                elif code in INFORMATIONAL:
                    log.info("IBKR order %s: notice %d: %s", entry.order_id, code, text)
                elif code != CANCELED_CODE:
                    log.warning("IBKR order %s: error %d: %s", entry.order_id, code, text)
            self._cond.notify_all()

    def _trade_of(self, entry: OrderEntry) -> Any:
        """ib's trade of ``entry`` on this connection, or ``None``."""
        return next((t for t in self.ib.trades() if t.order.orderId == entry.ib_order_id),
                    None)

    def _restore_working(self, entry: OrderEntry, trade: Any) -> None:
        """After an error answering a modification, put ib's trade back to the status
        TWS still works the order in. ib marks it Cancelled (ib_insync issue 502), and
        it would then take TWS's later real Cancelled, the same status, for no change
        and never report it."""
        if trade is not None and entry.is_open and \
                trade.orderStatus.status in ("Cancelled", "ValidationError"):
            trade.orderStatus.status = entry.ib_status or "Submitted"

    def _on_trade(self, trade: Any) -> None:
        with self._cond:
            entry = self.orders.absorb_trade(trade, acknowledged=True)
            if entry is not None:
                self._relate(entry)
            self._cond.notify_all()

    def _on_open_order(self, trade: Any) -> None:
        with self._cond:
            entry = self.orders.by_ib_id(int(trade.order.orderId or 0))
            if entry is not None and entry.replacing is not None \
                    and entry.replace_answer is None and _shows(trade.order, entry.replacing):
                entry.replace_answer = (0, "")  # TWS lists the order as modified
            elif entry is not None and entry.unanswered is not None \
                    and _shows(trade.order, entry.unanswered):
                entry.unanswered = None  # TWS took it late: its fields are read below
        self._on_trade(trade)

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        with self._cond:
            if trade is not None:  # its order first: executions do not carry the type
                self.orders.absorb_trade(trade, acknowledged=True)
            entry = self._book(fill)
            if entry is not None:
                self._relate(entry)
            self._cond.notify_all()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _book(self, fill: Any) -> OrderEntry | None:
        """Book an execution once (with its commission), under the state lock; the
        order it filled, if it was new."""
        ex, report = fill.execution, fill.commissionReport
        exec_id = str(ex.execId)
        if exec_id in self._fills or report is None or not report.execId:
            return None
        ref, perm = str(ex.orderRef or ""), int(ex.permId or 0)
        entry = self.orders.find(ref, perm, 0) or self.orders.by_ib_id(int(ex.orderId or 0))
        if entry is None:
            entry = self.orders.adopt_from_fills(ref or f"perm-{perm}", [fill])
        f = fill_of(fill, entry.order_id)
        exec_time = f["timestamp"]
        # Booked at the local receive time, strictly increasing: TWS's whole-second stamp
        # would put a fill before a cursor taken a moment before its order.
        stamp = max(datetime.now(timezone.utc), self._last_stamp + timedelta(microseconds=1))
        self._last_stamp = f["timestamp"] = stamp
        if self.trade_log is not None:  # write-ahead: the record before the state
            self.trade_log.write("filled", stamp, **f, exec_time=exec_time)
        self._fills[exec_id] = f
        entry.fill_ids.add(exec_id)
        mine = [self._fills[i] for i in entry.fill_ids]
        qty = sum(x["qty"] for x in mine)
        if qty > entry.filled_qty:
            entry.filled_qty = qty
            entry.avg_fill_price = sum(x["notional"] for x in mine) / qty
        if entry.status in (OrderStatus.PENDING_CONFIRM, OrderStatus.NEW, OrderStatus.HELD):
            entry.status = OrderStatus.PARTIALLY_FILLED
        if entry.filled_qty >= entry.qty * (1 - 1e-12) and entry.status.is_open:
            entry.status = OrderStatus.FILLED
        if exec_id not in self._in_base:
            sign = 1.0 if f["side"] == "buy" else -1.0
            pos = self._positions.get(f["symbol"], 0.0) + sign * f["qty"]
            if abs(pos) < 1e-9:
                self._positions.pop(f["symbol"], None)
            else:
                self._positions[f["symbol"]] = pos
            if self._cash is not None:
                self._cash -= sign * f["notional"] + f["fee"]
        return entry

    def _log_final(self, entry: OrderEntry) -> None:
        event = _FINAL_EVENTS.get(entry.status)
        if event is None or self.trade_log is None or entry.order_id in self._logged_final:
            return
        self._logged_final.add(entry.order_id)
        self.trade_log.write(event, self.now(), order_id=entry.order_id,
                             symbol=entry.symbol, reason=entry.reason)

    def flush(self) -> None:
        """Return once every message TWS sent before now has been processed (one round
        trip: TWS answers a request after the messages it sent before it, and the client
        reads them in order). Raises :class:`~simbroker.errors.BrokerError` types."""
        self.conn.require("flush", self.ready_wait)
        ib = self.ib

        async def ask() -> None:
            await ib.reqCurrentTimeAsync()

        self._run(ask(), what="flush")

    def wait_for_fills(self, exec_ids: Iterable[str], timeout: float = 10.0) -> bool:
        """Block until every execution id is booked (with its commission); True if so."""
        wanted = set(exec_ids)
        with self._cond:
            return self._cond.wait_for(lambda: wanted <= set(self._fills), timeout)
