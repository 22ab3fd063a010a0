"""Reading a shadow's own trade log back: where a restarted shadow takes up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from simbroker.accounts import LoggedFill
from simbroker.errors import TradeLogError
from simbroker.tradelog import cash_after_fill, position_after_fill
from simbroker.tradelog._replay import replay_records
from simbroker.types import Order

if TYPE_CHECKING:
    from simbroker.shadow._broker import ShadowOrder

__all__ = ["Resumed", "resume_point"]


@dataclass
class Resumed:
    """What a shadow log says about where to take up (see :func:`resume_point`)."""

    cash: float
    positions: dict[str, float]
    last_number: int = 0
    seen: list[str] = field(default_factory=list)
    open_orders: list[ShadowOrder] = field(default_factory=list)
    queue: list[tuple[str, ShadowOrder, datetime]] = field(default_factory=list)
    leaving: list[ShadowOrder] = field(default_factory=list)
    account: dict[str, Any] | None = None
    stepped: dict[str, Any] | None = None
    fills: list[LoggedFill] = field(default_factory=list)
    logged: list[tuple[str, datetime, str | None]] = field(default_factory=list)


def resume_point(records: list[dict[str, Any]], session_tz: str) -> Resumed:
    """Cash, positions and open orders (replayed), the client ids seen, the orders and
    cancels mirrored but never weighed (in their order), the account the log names,
    its last ``stepped`` record and what the log holds after it: the fills (to book into
    the account) and the account's own records (not to write twice)."""
    from simbroker.shadow._broker import ShadowOrder

    state = replay_records(records)
    point = Resumed(state.cash, dict(state.positions))
    numbers = [0]
    pending: dict[str, ShadowOrder] = {}
    submitted: dict[str, dict[str, Any]] = {}
    queue: list[tuple[str, str, datetime]] = []
    last_stepped = -1
    for i, rec in enumerate(records):
        event, cid, oid = rec.get("event"), rec.get("client_order_id"), rec.get("order_id")
        if isinstance(oid, str) and oid.startswith("SH") and oid[2:].isdigit() \
                and event in ("submitted", "mirrored"):
            numbers.append(int(oid[2:]))
        if event == "submitted" and isinstance(oid, str):
            submitted[oid] = rec
        if event in ("submitted", "rejected") and isinstance(cid, str):
            point.seen.append(cid)
            for k, p in list(pending.items()):
                if p.order.client_order_id == cid:
                    del pending[k]  # weighed
        elif event == "mirrored" and isinstance(oid, str):
            when = rec["ts"] if isinstance(rec.get("ts"), datetime) else None
            if when is None:
                raise TradeLogError(f"a 'mirrored' record without a time: {rec!r:.120}")
            if rec.get("action") == "submit" and isinstance(cid, str):
                point.seen.append(cid)
                pending[oid] = ShadowOrder(oid, _order(rec, rec["qty"], cid),
                                           rec.get("live_order_id"), when, status="pending")
            queue.append((str(rec.get("action")), oid, when))
        elif event == "account":
            params = rec.get("params")
            point.account = {"model": rec.get("model"),
                             **(params if isinstance(params, dict) else {})}
        elif event == "stepped":
            last_stepped = i
    point.last_number = max(numbers)
    for oid, rec in state.open_orders.items():
        remaining = float(rec["qty"]) - state.filled_qty.get(oid, 0.0)
        cid = rec.get("client_order_id")
        if remaining <= 0 or not isinstance(cid, str) or oid in pending:
            continue
        ts = rec.get("ts")
        placed: datetime = ts if isinstance(ts, datetime) else pd.Timestamp.now("UTC")
        shadow = ShadowOrder(oid, _order(rec, remaining, cid), rec.get("live_order_id"),
                             placed)
        trig = rec.get("triggered_at")
        shadow.triggered_at = trig if isinstance(trig, datetime) else None
        shadow.first_day = pd.Timestamp(placed).tz_convert(session_tz).date()
        point.open_orders.append(shadow)
    live = {s.order_id: s for s in point.open_orders}
    for action, oid, when in queue:
        target = pending.get(oid) if action == "submit" else pending.get(oid, live.get(oid))
        if target is None and action == "cancel" and oid in submitted \
                and any(a == "submit" for a, _, _ in point.queue):
            # canceled at once while orders sent before waited: in the book until then
            rec = submitted[oid]
            target = ShadowOrder(oid, _order(rec, rec["qty"], str(rec["client_order_id"])),
                                 rec.get("live_order_id"), when, status="canceled")
            point.leaving.append(target)
        if target is not None:
            point.queue.append((action, target, when))
    if last_stepped >= 0:
        point.stepped = records[last_stepped]
        _after_stepped(point, records, last_stepped)
    return point


def _order(rec: dict[str, Any], qty: float, cid: str) -> Order:
    return Order.create(rec["symbol"], rec["side"], qty, rec.get("order_type", "market"),
                        limit_price=rec.get("limit_price"), stop_price=rec.get("stop_price"),
                        tif=rec.get("tif", "day"), client_order_id=cid)


def _after_stepped(point: Resumed, records: list[dict[str, Any]], k: int) -> None:
    """The fills after record ``k`` (with cash and position after each) and the
    account's records there."""
    at = replay_records(records[: k + 1])
    cash, pos = at.cash, dict(at.positions)
    for rec in records[k + 1:]:
        event = rec.get("event")
        if event == "filled":
            sym, side = str(rec["symbol"]), str(rec["side"])
            qty, notional, fee = float(rec["qty"]), float(rec["notional"]), float(rec["fee"])
            cash = cash_after_fill(cash, side, notional, fee)
            pos[sym] = position_after_fill(pos.get(sym, 0.0), side, qty)
            point.fills.append(LoggedFill(rec["ts"], sym, side, qty, notional, fee,
                                          pos[sym], cash))
        elif event in ("margin_call", "good_faith_violation") \
                and isinstance(rec.get("ts"), datetime):
            named = rec.get("symbol")
            point.logged.append((str(event), rec["ts"],
                                 named if isinstance(named, str) else None))
