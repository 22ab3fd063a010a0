"""The Alpaca broker's view of the venue: fills booked once (from the trade stream or the
REST account activities), the periodic reconcile, and the worker that keeps the stream
and the order records in step with Alpaca.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from simbroker.brokers.alpaca import connection
from simbroker.brokers.alpaca._base import log
from simbroker.brokers.alpaca._records import Records
from simbroker.brokers.alpaca.translate import fill_from_activity, fill_from_update
from simbroker.errors import BrokerRateLimited, UnknownOrder
from simbroker.types import Fill

__all__ = ["Syncing"]


# Each reconcile re-reads the activities from this long before the newest one REST has
# shown, for activities that Alpaca publishes a little after their transaction time.
_OVERLAP = timedelta(seconds=60)


class Syncing(Records):
    """Fills, the reconcile and the stream of :class:`~simbroker.brokers.alpaca.AlpacaBroker`."""

    def _add_fill(self, fill: Fill, *, log_it: bool = True) -> bool:
        fid = fill["fill_id"]
        fill["order_id"] = self.orders.order_id_of(fill["order_id"])  # through replaces
        with self._fill_cond:
            if fid in self._fills:
                return False
            if fill["client_order_id"] is None:
                fill["client_order_id"] = self.orders.client_id_of(fill["order_id"])
            self._fills[fid] = fill
            cum = float(fid.rsplit("-", 1)[1])
            self._fill_keys[fid] = (fill["timestamp"], fill["order_id"], cum)
            if log_it and self.trade_log is not None:
                self.trade_log.write("filled", fill["timestamp"], **fill)
            self._fill_cond.notify_all()
        return True

    def reconcile(self) -> int:
        """Read the FILL activities from REST; add what is missing. Returns how many
        fills were new."""
        return self._reconcile()

    def _reconcile(self, since: datetime | None = None,
                   log_before: datetime | None = None) -> int:
        """Page through FILL activities after ``since`` (default: the newest seen minus
        an overlap, else :attr:`fills_since`). Fills before ``log_before`` happened
        before this session's start snapshot and are not written to the trade log."""
        self._sync_needed = False
        if since is None:
            newest = self._newest_activity
            since = self.fills_since if newest is None else max(self.fills_since,
                                                                newest - _OVERLAP)
        # ``after`` is exclusive at Alpaca: start one millisecond early.
        params: dict[str, Any] = {"direction": "asc", "page_size": 100,
                                  "after": (since - timedelta(milliseconds=1)).isoformat()}
        added = 0
        try:
            while True:
                page = self._get("/account/activities/FILL", "get_fill_activities",
                                 params=params) or []
                for a in page:
                    added += self._activity(a, log_before)
                if not page:
                    break
                params["page_token"] = str(page[-1]["id"])
        except BaseException:
            self._sync_needed = True
            raise
        self.reconciles += 1
        self._last_sync = time.monotonic()
        return added

    def _activity(self, a: dict[str, Any], log_before: datetime | None) -> int:
        oid = str(a["order_id"])
        if not self.orders.knows(oid):
            with contextlib.suppress(UnknownOrder):
                self._remember(self._get(f"/orders/{oid}", "get_order", order_id=oid))
        fill = fill_from_activity(a, self.orders.client_id_of(oid))
        newest = self._newest_activity
        if newest is None or fill["timestamp"] > newest:
            self._newest_activity = fill["timestamp"]
        before = log_before is not None and fill["timestamp"] <= log_before
        return int(self._add_fill(fill, log_it=not before))

    def wait_for_fills(self, fill_ids: Iterable[str], timeout: float = 10.0, *,
                       reconcile: bool = True) -> bool:
        """Block until every id in ``fill_ids`` is known; True if so. Past ``timeout``,
        REST is read once more (unless ``reconcile`` is false)."""
        wanted = set(fill_ids)
        deadline = time.monotonic() + timeout
        with self._fill_cond:
            while not wanted <= self._fills.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._fill_cond.wait(min(left, 0.5))
            done = wanted <= self._fills.keys()
        if not done and reconcile:
            self._reconcile()
            with self._fill_cond:
                done = wanted <= self._fills.keys()
        return done

    def _on_event(self, data: dict[str, Any]) -> None:
        from alpaca.trading.models import TradeUpdate

        update = TradeUpdate(**data)
        info = self._remember(update.order, fetch=False)
        fill = fill_from_update(update)
        if fill is not None and (info["parent_id"] is not None or info["legs"]):
            # A group's fill ends or resizes its siblings, and Alpaca does not always
            # say so on the stream (alpaca-py issue 198): read them from REST.
            with self._stale_lock:
                self._stale.update(self.orders.group_of(info["order_id"]))
            self._wake.set()
        if fill is not None:
            # Not a REST cursor: a fill the stream dropped before this one must still be
            # inside the next reconcile's window.
            self._add_fill(fill)

    def _on_stream_state(self, state: str) -> None:
        self._stream_state = state
        if state in (connection.SYNCING, connection.LOST, connection.FAILED):
            self._sync_needed = True
            self._wake.set()

    def _maintain(self) -> None:
        """The reconcile thread: sync after each (re)connect, poll while the stream is not
        ready, reconcile every ``reconcile_interval``, resolve pending sends."""
        while not self._closed:
            ready = self._stream is not None and self._stream_state == connection.READY
            wait = self._reconcile_interval if ready and not self.orders.pending() \
                else self._fallback_poll
            self._wake.wait(max(0.0, min(wait, self._last_sync + wait - time.monotonic())))
            self._wake.clear()
            if self._closed:
                break
            stream = self._stream
            try:
                if self.orders.pending():
                    self._resolve_pending(None)
                if self.orders.missing():
                    self._read_missing()
                self._read_stale()
                due = time.monotonic() - self._last_sync >= (
                    self._reconcile_interval if self._stream_state == connection.READY
                    else self._fallback_poll)
                if self._sync_needed or due or stream is None or \
                        self._stream_state != connection.READY:
                    syncing = self._stream_state == connection.SYNCING
                    self._reconcile()
                    if syncing and stream is not None:
                        stream.mark_ready()
            except BrokerRateLimited as exc:
                self._wake.wait(exc.retry_after or 1.0)
            except Exception as exc:
                log.warning("Alpaca reconcile failed (%s); retrying", exc)
                self._wake.wait(min(self._fallback_poll, 1.0))
