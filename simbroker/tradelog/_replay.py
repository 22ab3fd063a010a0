"""Rebuilding account state from a trade log, every field it uses checked first."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from simbroker.errors import InvalidOrder, TradeLogError
from simbroker.tradelog._reader import read_trade_log
from simbroker.types import Order, OrderClass

__all__ = ["ReplayState", "apply_order_change", "cash_after_fill", "legs_of", "order_fields",
           "position_after_fill", "replay_records", "replay_trade_log"]

_SIDES = ("buy", "sell")
_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


def cash_after_fill(cash: float, side: str, notional: float, fee: float) -> float:
    """Cash after a fill: ``cash - notional - fee`` (buy) or ``cash + notional - fee`` (sell)."""
    if side == "buy":
        return cash - notional - fee
    return cash + notional - fee


def position_after_fill(position: float, side: str, qty: float) -> float:
    """Position after a fill, snapped to exactly 0 when only float dust is left."""
    new = position + qty if side == "buy" else position - qty
    if abs(new) <= 1e-12 * max(abs(position), qty):
        return 0.0
    return new


class _Bad(ValueError):
    """A field of one record is missing or mistyped (turned into TradeLogError)."""


def _number(rec: Mapping[str, Any], key: str, *, positive: bool = False,
            optional: bool = False) -> float | None:
    value = rec.get(key)
    if value is None and optional:
        return None
    # A string is taken when it is a number: the runner logs a live order's arguments as
    # the strategy passed them, and a broker accepts "10" for 10.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Bad(f"field {key!r} must be a number, got {_short.repr(value)}")
    try:
        f = float(value)
    except (OverflowError, ValueError):
        raise _Bad(f"field {key!r} must be a finite number, got {_short.repr(value)}") from None
    if not math.isfinite(f) or (positive and not f > 0):
        raise _Bad(f"field {key!r} must be a finite number{' > 0' if positive else ''}, "
                   f"got {_short.repr(value)}")
    return f


def _required(rec: Mapping[str, Any], key: str, *, positive: bool = False) -> float:
    value = _number(rec, key, positive=positive)
    if value is None:  # pragma: no cover - _number refuses None unless optional
        raise _Bad(f"field {key!r} is missing")
    return value


def _text(rec: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = rec.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _Bad(f"field {key!r} must be a non-empty string, got {_short.repr(value)}")
    return value


def _order_id(rec: Mapping[str, Any], key: str = "order_id", *,
              optional: bool = True) -> str | None:
    value = rec.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Bad(f"field {key!r} must be an id (string), got {_short.repr(value)}")
    return str(value)


def _side(rec: Mapping[str, Any]) -> str:
    side = rec.get("side")
    if not isinstance(side, str) or side.lower() not in _SIDES:
        raise _Bad(f"field 'side' must be 'buy' or 'sell', got {_short.repr(side)}")
    return side.lower()


def order_fields(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The checked order of a ``submitted`` record (or a ``start`` record's open order).

    The fields of the order kinds (``order_class``, ``take_profit``, ``stop_loss``,
    ``trail_amount``, ``trail_percent``) and of their state (``parent_id``, ``legs``,
    ``status``, ``trail_extreme``) are included when the record has them. Raises
    ``ValueError`` naming the bad field.
    """
    fields: dict[str, Any] = {
        "order_id": _order_id(rec, optional=False),
        "client_order_id": _order_id(rec, "client_order_id"),
        "symbol": _text(rec, "symbol"),
        "side": _side(rec),
        "qty": _number(rec, "qty", positive=True),
        "order_type": (_text(rec, "order_type", optional=True) or "market").lower(),
        "limit_price": _number(rec, "limit_price", positive=True, optional=True),
        "stop_price": _number(rec, "stop_price", positive=True, optional=True),
        "tif": (_text(rec, "tif", optional=True) or "day").lower(),
        "extended_hours": rec.get("extended_hours") is True,
    }
    if rec.get("order_class") is not None:
        fields["order_class"] = str(_text(rec, "order_class")).lower()
    for key in ("trail_amount", "trail_percent", "trail_extreme"):
        if rec.get(key) is not None:
            fields[key] = _number(rec, key, positive=True)
    for key, prices in (("take_profit", ("limit_price",)),
                        ("stop_loss", ("stop_price", "limit_price"))):
        leg = rec.get(key)
        if leg is None:
            continue
        if not isinstance(leg, Mapping):
            raise _Bad(f"field {key!r} must be a mapping, got {_short.repr(leg)}")
        fields[key] = {k: _number(leg, k, positive=True) for k in prices
                       if leg.get(k) is not None}
    if rec.get("parent_id") is not None:
        fields["parent_id"] = _order_id(rec, "parent_id")
    if rec.get("legs"):
        legs = rec["legs"]
        if not isinstance(legs, list) or not all(isinstance(x, str) and x for x in legs):
            raise _Bad(f"field 'legs' must be a list of order ids, got {_short.repr(legs)}")
        fields["legs"] = list(legs)
    if rec.get("status") is not None:
        fields["status"] = _text(rec, "status")
    return fields


def legs_of(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The leg orders a ``submitted`` record of a group brings, as open-order entries.

    Bracket/OTO children are ``held`` (their parent has not filled); an OCO's stop leg is
    live. Each is built by :meth:`simbroker.types.Order.leg_orders`, as the broker built
    it, and named by the record's ``legs``.
    """
    ids = rec.get("legs") or []
    if not ids:
        return []
    f = order_fields(rec)
    try:
        order = Order.create(f["symbol"], f["side"], f["qty"], f["order_type"],
                             limit_price=f["limit_price"], stop_price=f["stop_price"],
                             tif=f["tif"], order_class=f.get("order_class", "simple"),
                             take_profit=f.get("take_profit"), stop_loss=f.get("stop_loss"))
    except InvalidOrder as exc:
        raise _Bad(f"the group's order is invalid: {exc}") from None
    legs = order.leg_orders()
    if len(legs) != len(f["legs"]):
        raise _Bad(f"field 'legs' names {len(f['legs'])} orders, the order brings {len(legs)}")
    held = order.order_class is not OrderClass.OCO
    entries = []
    for oid, leg in zip(f["legs"], legs, strict=True):
        entries.append({
            "event": "submitted", "ts": rec.get("ts"), "order_id": oid,
            "client_order_id": None, "symbol": leg.symbol, "side": leg.side.value,
            "qty": leg.qty, "order_type": leg.order_type.value,
            "limit_price": leg.limit_price, "stop_price": leg.stop_price,
            "tif": leg.tif.value, "order_class": order.order_class.value,
            "parent_id": f["order_id"], **({"status": "held"} if held else {}),
        })
    return entries


@dataclass
class ReplayState:
    """Account state rebuilt from a trade log.

    ``open_orders`` maps each open order id to its ``submitted`` record (for an order
    carried over by a resumed session's ``start`` record: that entry, with the start's
    ``ts``), updated by the records since (``activated`` drops a child's
    ``status="held"``, ``replaced`` changes the fields it names, ``trailed`` sets a
    trailing stop's ``trail_extreme``); a group's legs are entries of their own with
    ``parent_id``. ``filled_qty`` is how much of each open order has filled.
    ``dividends_receivable`` maps ``"SYMBOL ex_date"`` to each ``dividend`` record whose
    entitlement is fixed but whose pay date has not come; ``dividends`` is the net
    dividend cash received. ``borrow_fees`` is the borrow fee paid and ``interest`` the
    net interest paid (credits negative), from ``borrow_fee`` and ``interest`` records.
    For the ``k``-th entry of ``fills``, ``fill_lines[k]`` is its record's 1-based
    position in the log and ``fill_positions[k]`` / ``fill_cash[k]`` the symbol's position
    and the cash right after it (what an account model books a fill with).
    """

    cash: float = 0.0
    positions: dict[str, float] = field(default_factory=dict)
    open_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    n_records: int = 0
    last_ts: datetime | None = None
    filled_qty: dict[str, float] = field(default_factory=dict)
    dividends_receivable: dict[str, dict[str, Any]] = field(default_factory=dict)
    dividends: float = 0.0
    borrow_fees: float = 0.0
    interest: float = 0.0
    fill_lines: list[int] = field(default_factory=list)
    fill_positions: list[float] = field(default_factory=list)
    fill_cash: list[float] = field(default_factory=list)


def replay_trade_log(source: str | Path | Iterable[dict[str, Any]]) -> ReplayState:
    """Rebuild cash, positions, open orders and fills from a trade log (path or records).

    A ``start`` record begins a session: it sets cash and positions and replaces the open
    orders with its own ``open_orders`` (the orders a resumed session carried over, none
    for a fresh one). Each ``submitted`` record opens an order (and a group's record the
    legs it names in ``legs``); ``activated``, ``replaced``, ``trailed`` and
    ``triggered`` update it; ``canceled``, ``expired`` and ``rejected`` close it; each
    ``filled`` record applies :func:`cash_after_fill` and :func:`position_after_fill` in
    file order (a repeated ``fill_id`` is applied once).
    A ``split`` record multiplies the position by its ``ratio`` and adjusts the symbol's
    open orders (``qty * ratio``, prices ``/ ratio``); a ``dividend`` record with
    ``stage="paid"`` adds its ``amount`` to cash (``"entitled"`` notes it as receivable),
    as the paper broker applies them (:mod:`simbroker.actions`). A ``borrow_fee`` or
    ``interest`` record subtracts its ``amount`` from cash (an interest credit's amount is
    negative), as the paper broker does (:mod:`simbroker.financing`).

    Every field used is checked: a missing or mistyped one, or cash that leaves the
    finite range, raises :class:`~simbroker.errors.TradeLogError` naming the line (the
    record's 1-based position).
    """
    if isinstance(source, (str, Path)):
        return replay_records(read_trade_log(source), path=str(source))
    return replay_records(source)


def replay_records(records: Iterable[Any], *, path: str | None = None) -> ReplayState:
    """:func:`replay_trade_log` of records already read, errors naming ``path``."""
    state = ReplayState()
    seen: set[str] = set()
    for lineno, rec in enumerate(records, start=1):
        try:
            _apply(state, rec, seen)
        except _Bad as exc:
            event = rec.get("event") if isinstance(rec, Mapping) else None
            what = f"{event!r} record" if isinstance(event, str) else "record"
            raise TradeLogError(f"{what}: {exc}", path=path, line=lineno) from None
    return state


def _apply(state: ReplayState, rec: Any, seen: set[str]) -> None:
    if not isinstance(rec, Mapping):
        raise _Bad(f"a record must be a mapping, got {type(rec).__name__}")
    state.n_records += 1
    ts = rec.get("ts")
    if isinstance(ts, datetime):
        state.last_ts = ts
    event = rec.get("event")
    if event == "start":
        # A new session (a fresh broker, or a resumed one) starts from its own snapshot.
        seen.clear()
        state.filled_qty = {}
        state.dividends_receivable = {}  # a new session carries none (as the broker)
        state.cash = _number(rec, "cash", optional=True) or 0.0
        positions = rec.get("positions") or {}
        if not isinstance(positions, Mapping):
            raise _Bad(f"field 'positions' must be a mapping, got {_short.repr(positions)}")
        state.positions = {}
        for sym, qty in positions.items():
            q = _required({"qty": qty}, "qty")
            if q:
                state.positions[str(sym)] = q
        carried = rec.get("open_orders") or []
        if not isinstance(carried, list):
            raise _Bad(f"field 'open_orders' must be a list, got {_short.repr(carried)}")
        state.open_orders = {}
        for entry in carried:
            if not isinstance(entry, Mapping):
                raise _Bad(f"an entry of 'open_orders' is not a mapping: {_short.repr(entry)}")
            order = order_fields(entry)
            state.open_orders[order["order_id"]] = {**entry, "event": "submitted",
                                                    "ts": rec.get("ts")}
    elif event == "submitted":
        state.open_orders[str(order_fields(rec)["order_id"])] = dict(rec)
        for leg in legs_of(rec):
            state.open_orders[leg["order_id"]] = leg
    elif event in ("activated", "replaced", "trailed"):
        apply_order_change(state.open_orders, rec, str(event))
    elif event in ("canceled", "expired", "rejected"):
        oid = _order_id(rec)
        if oid is not None:
            state.open_orders.pop(oid, None)
            state.filled_qty.pop(oid, None)
    elif event == "triggered":
        oid = _order_id(rec, optional=False)
        if oid in state.open_orders:
            state.open_orders[str(oid)] = {**state.open_orders[str(oid)],
                                           "triggered_at": rec.get("bar", rec.get("ts"))}
    elif event == "filled":
        _fill(state, rec, seen)
    elif event in ("split", "dividend"):
        _corporate_action(state, rec)
    elif event in ("borrow_fee", "interest"):
        _financing(state, rec)


def apply_order_change(open_orders: dict[str, dict[str, Any]], rec: Mapping[str, Any],
                       event: str) -> None:
    """Apply an ``activated``, ``replaced`` or ``trailed`` record to its open order.

    Raises ``ValueError`` naming a bad field.
    """
    oid = str(_order_id(rec, optional=False))
    entry = open_orders.get(oid)
    if entry is None:
        return  # an order this log does not hold open (e.g. before a resumed start)
    entry = dict(entry)
    if event == "activated":
        entry.pop("status", None)
        entry["qty"] = _required(rec, "qty", positive=True)
    elif event == "trailed":
        entry["trail_extreme"] = _required(rec, "trail_extreme", positive=True)
    else:
        for key in ("qty", "limit_price", "stop_price", "trail_amount", "trail_percent"):
            if key in rec:
                entry[key] = _number(rec, key, positive=True, optional=key != "qty")
        if "tif" in rec:
            entry["tif"] = str(_text(rec, "tif")).lower()
        if entry.get("order_class") == "oco" and "limit_price" in rec and \
                isinstance(entry.get("take_profit"), Mapping):
            entry["take_profit"] = {"limit_price": entry["limit_price"]}
    open_orders[oid] = entry


def _fill(state: ReplayState, rec: Mapping[str, Any], seen: set[str]) -> None:
    fill_id = _order_id(rec, "fill_id")
    side = _side(rec)
    qty = _required(rec, "qty", positive=True)
    notional = _required(rec, "notional")
    fee = _required(rec, "fee")
    sym = str(_text(rec, "symbol"))
    oid = _order_id(rec)
    if fill_id is not None:
        if fill_id in seen:
            return
        seen.add(fill_id)
    cash = cash_after_fill(state.cash, side, notional, fee)
    if not math.isfinite(cash):
        raise _Bad(f"cash leaves the finite range ({state.cash!r} after this fill)")
    state.cash = cash
    new = position_after_fill(state.positions.get(sym, 0.0), side, qty)
    if not math.isfinite(new):
        raise _Bad(f"the {sym} position leaves the finite range")
    if new == 0.0:
        state.positions.pop(sym, None)
    else:
        state.positions[sym] = new
    state.fills.append(dict(rec))
    state.fill_lines.append(state.n_records)
    state.fill_positions.append(new)
    state.fill_cash.append(cash)
    if oid is not None and oid in state.open_orders:
        done = state.filled_qty.get(oid, 0.0) + qty
        if done >= float(state.open_orders[oid]["qty"]) * (1 - 1e-12):
            del state.open_orders[oid]
            state.filled_qty.pop(oid, None)
        else:
            state.filled_qty[oid] = done


def _corporate_action(state: ReplayState, rec: Mapping[str, Any]) -> None:
    """Apply a ``split`` or ``dividend`` record, with the paper broker's arithmetic."""
    sym = str(_text(rec, "symbol"))
    if rec.get("event") == "split":
        ratio = _required(rec, "ratio", positive=True)
        new = state.positions.get(sym, 0.0) * ratio
        if not math.isfinite(new):
            raise _Bad(f"the {sym} position leaves the finite range")
        if new == 0.0:
            state.positions.pop(sym, None)
        else:
            state.positions[sym] = new
        for oid, order in list(state.open_orders.items()):
            if order.get("symbol") != sym:
                continue
            adjusted = dict(order)
            adjusted["qty"] = _required(order, "qty", positive=True) * ratio
            for key in ("limit_price", "stop_price", "trail_amount", "trail_extreme"):
                price = _number(order, key, positive=True, optional=True)
                if price is not None or key in order:
                    adjusted[key] = None if price is None else price / ratio
            for key in ("take_profit", "stop_loss"):  # a group's legs, held with it
                leg = order.get(key)
                if isinstance(leg, Mapping):
                    adjusted[key] = {k: v / ratio for k, v in leg.items()
                                     if isinstance(v, (int, float)) and not isinstance(v, bool)}
            state.open_orders[oid] = adjusted
            if oid in state.filled_qty:
                state.filled_qty[oid] *= ratio
        return
    amount = _required(rec, "amount")
    key = f"{sym} {rec.get('ex_date')}"
    stage = rec.get("stage", "paid")
    if stage == "entitled":
        state.dividends_receivable[key] = dict(rec)
    elif stage == "paid":
        cash = state.cash + amount
        if not math.isfinite(cash):
            raise _Bad(f"cash leaves the finite range ({state.cash!r} after this dividend)")
        state.cash = cash
        state.dividends += amount
        state.dividends_receivable.pop(key, None)
    else:
        raise _Bad(f"field 'stage' must be 'entitled' or 'paid', got {_short.repr(stage)}")


def _financing(state: ReplayState, rec: Mapping[str, Any]) -> None:
    """Apply a ``borrow_fee`` or ``interest`` record: ``cash - amount``, as the broker."""
    amount = _required(rec, "amount")
    cash = state.cash - amount
    if not math.isfinite(cash):
        raise _Bad(f"cash leaves the finite range ({state.cash!r} after this accrual)")
    state.cash = cash
    if rec.get("event") == "borrow_fee":
        state.borrow_fees += amount
    else:
        state.interest += amount
