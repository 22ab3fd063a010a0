"""The paper broker's submission checks and the ``rejected`` records of refused orders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from simbroker._paper_base import EPOCH, PaperState
from simbroker._venue_sides import side_refusal
from simbroker.errors import InvalidOrder
from simbroker.types import Order, OrderInfo, OrderType, TimeInForce

__all__ = ["Checks"]


# Refusals ``stats["n_refused"]`` does not count, as ``backtest_vectorized`` does not:
# invalid orders (no rule) and ``allow_short``. It counts the account's (buying power, a
# cash account's short or good-faith rule, the pattern day trader's) and hard-to-borrow.
_NOT_COUNTED = (None, "allow_short")


class Checks(PaperState):
    """Checks an order passes before it is accepted, and logging refusals."""

    def _check_venue_rules(self, order: Order) -> None:
        """Refuse what the venue ``venue`` refuses (see the class docstring)."""
        if order.extended_hours and order.tif is not TimeInForce.DAY and self.venue != "ibkr":
            raise InvalidOrder(
                f"an extended-hours order for {order.symbol} must be tif='day' (Alpaca's "
                f"rule, enforced {'for' if self.venue else 'by default, the strictest of'} "
                f"the venues; PaperBroker(venue='ibkr') takes IBKR's, which allows "
                f"{order.tif.value})", field="tif", value=order.tif.value,
                symbol=order.symbol)

    def _check_sides(self, order: Order, col: int) -> None:
        """With ``venue="alpaca"``: refuse what Alpaca's one side at a time refuses (an
        order crossing the position through zero, or opening a flat symbol while the
        other side has an open order; :mod:`simbroker._venue_sides`)."""
        refusal = side_refusal(order.symbol, order.side.value, order.qty,
                               self._pos.item(col), self._open_side_qty(col, 1),
                               self._open_side_qty(col, -1))
        if refusal is not None:
            raise refusal

    def _check_replace_sides(self, order_id: str, new: Order, left: float, col: int) -> None:
        """With ``venue="alpaca"``: refuse the replace of ``order_id`` by ``new`` that
        Alpaca's one side at a time refuses.

        Alpaca's replacement is a new order for what is left to trade (``left``: the new
        quantity less the fills so far) that takes the old one's place, so the old order
        (and the live legs of its group, which hold the position once with it) is set
        aside: its own rest is available to its replacement (alpacahq/Alpaca-API issues
        165 and 282)."""
        refusal = side_refusal(new.symbol, new.side.value, left, self._pos.item(col),
                               self._open_side_qty(col, 1, without=order_id),
                               self._open_side_qty(col, -1, without=order_id))
        if refusal is not None:
            raise refusal

    def _open_sell_qty(self, col: int) -> float:
        return self._open_side_qty(col, -1)

    def _open_side_qty(self, col: int, sign: int, without: str | None = None) -> float:
        """What is left of column ``col``'s open orders of one side (``sign`` 1: buys,
        -1: sells), the live legs of one group counted once; ``without`` an order and
        the live legs of its group."""
        book = self._book
        n = book.n
        mask = (book.sym[:n] == col) & (book.sign[:n] == sign)
        if without is not None:
            live = self._groups.live
            key = live.get(without)
            ids = book.ids
            for slot in np.flatnonzero(mask).tolist():
                oid = ids[slot]
                if oid == without or (key is not None and live.get(oid) == key):
                    mask[slot] = False
        total = float(book.qty[:n][mask].sum())
        if self._groups.live:  # the live legs of one group trade the position once
            total -= self._groups_overlap(col, mask)
        return total

    def _groups_overlap(self, col: int, mask: np.ndarray) -> float:
        """Quantity counted twice by live sibling legs among ``mask``'s slots of ``col``."""
        book = self._book
        by_key: dict[str, list[float]] = {}
        for slot in np.flatnonzero(mask).tolist():
            key = self._groups.live.get(book.ids[slot])
            if key is not None:
                by_key.setdefault(key, []).append(float(book.qty[slot]))
        return sum(sum(q) - max(q) for q in by_key.values())

    def _resubmitted(self, order: Order) -> OrderInfo:
        assert order.client_order_id is not None
        state = self._orders[self._by_client_id[order.client_order_id]]
        if state.order != order:
            raise InvalidOrder(
                f"client_order_id {order.client_order_id!r} was already used for a different "
                f"order ({state.order_id}: {state.order.side.value} {state.order.qty:g} "
                f"{state.order.symbol} {state.order.order_type.value})",
                field="client_order_id", value=order.client_order_id, symbol=order.symbol,
                client_order_id=order.client_order_id,
            )
        return state.info()

    def _carried_order(self, entry: Mapping[str, Any]) -> tuple[Order, int | None]:
        """An order to hold from the start, and the bar its stop triggered on (if any)."""
        leg = entry.get("parent_id") is not None  # a leg's own order is simple
        order = Order.create(entry["symbol"], entry["side"], entry["qty"],
                             entry.get("order_type", "market"),
                             limit_price=entry.get("limit_price"),
                             stop_price=entry.get("stop_price"), tif=entry.get("tif", "day"),
                             client_order_id=entry.get("client_order_id"),
                             order_class="simple" if leg else entry.get("order_class", "simple"),
                             take_profit=None if leg else entry.get("take_profit"),
                             stop_loss=None if leg else entry.get("stop_loss"),
                             trail_amount=entry.get("trail_amount"),
                             trail_percent=entry.get("trail_percent"),
                             extended_hours=entry.get("extended_hours", False))
        if order.symbol not in self.bars:
            raise InvalidOrder(f"carried-over order in unknown symbol {order.symbol!r}",
                               field="symbol", value=order.symbol, symbol=order.symbol)
        when = entry.get("triggered_at")
        trig: int | None = None
        if when is not None and order.order_type is OrderType.STOP_LIMIT:
            if not isinstance(when, datetime) or when.tzinfo is None:
                raise InvalidOrder(f"triggered_at must be a tz-aware datetime, got {when!r}",
                                   field="triggered_at", value=when, symbol=order.symbol)
            ns = int((when - EPOCH) / timedelta(microseconds=1)) * 1000
            trig = max(0, int(np.searchsorted(self._ts, ns, side="right")) - 1)
        elif when is not None and order.order_type in (OrderType.STOP, OrderType.TRAILING_STOP) \
                and not leg:
            # A stop that triggered (it filled in part under max_volume_share) is a market
            # order for its rest, as at the venue.
            order = Order.create(order.symbol, order.side.value, order.qty, "market",
                                 tif=order.tif.value, client_order_id=order.client_order_id)
        return order, trig

    def _log_rejected(self, symbol: Any, side: Any, qty: Any, order_type: Any,
                      client_order_id: Any, reason: str, rule: str | None = None) -> None:
        if rule not in _NOT_COUNTED:
            self._n_refused += 1
        if self._log is None:
            return
        def short(text: str) -> str:  # a refused argument may be megabytes of text
            return text if len(text) <= 200 else f"{text[:80]}... ({len(text):,} chars)"

        def plain(x: Any) -> Any:
            if x is None or isinstance(x, bool):
                return x
            if isinstance(x, int):
                # JSON (and str()) refuse ints of more than 4,300 digits: describe those.
                return x if x.bit_length() <= 63 else (
                    f"an integer of about {int(x.bit_length() * 0.30103) + 1:,} digits")
            if isinstance(x, str):
                return short(x)
            if isinstance(x, float):
                return x if math.isfinite(x) else repr(x)
            try:
                return short(repr(x))
            except Exception:  # a hostile __repr__ must not hide the refusal
                return f"<{type(x).__name__}>"
        extra = {} if rule is None else {"rule": rule}
        self._log.write("rejected", self._clock.now(), order_id=None,
                        client_order_id=plain(client_order_id), symbol=plain(symbol),
                        side=plain(side), qty=plain(qty), order_type=plain(order_type),
                        reason=short(reason), **extra)
