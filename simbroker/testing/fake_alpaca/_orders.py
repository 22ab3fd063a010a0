"""The fake's order book: what Alpaca does with an order once it has accepted it.

Validation at submission and replace (422/403 with Alpaca's codes), the order classes
(``simple``, ``bracket``, ``oto``, ``oco``), trailing stops, replaces, cancels, the day's
end, and the matching of one market step. The transport (HTTP, the stream, faults) is
:mod:`simbroker.testing.fake_alpaca._service`; it mixes this in.

How the order classes behave, as Alpaca documents and shows them:

- **bracket / oto**: one ``POST`` with ``take_profit`` and/or ``stop_loss``; the answer is
  the entry (parent) order, its exit orders in ``legs`` (take-profit first). The legs are
  ``held`` until the parent trades; on the parent's first execution the take-profit leg
  becomes ``new`` and the stop-loss leg stays ``held`` but is armed (Alpaca keeps stop legs
  of a group held at home and routes them only when triggered). Both legs are sized to the
  parent's filled quantity less what the exits sold, growing with each parent execution.
  An execution of one exit shrinks its sibling to what the group still holds; an exit's
  full fill cancels its sibling.
- **oco**: an exit pair on an existing position: the answer is the take-profit limit
  order (``new``), the stop in its ``legs`` (``held``, armed at once).
- Canceling an unfilled parent cancels its held legs; a parent that expires or is
  rejected takes them with it; canceling one leg of a group cancels its sibling too.
- **trailing_stop**: ``hwm`` starts at the price at submission and ratchets with each
  step's price (up for a sell, down for a buy); ``stop_price`` follows it, never
  loosening; a step at or through the stop fills at the step's price.
- **replace** (``PATCH /v2/orders/{id}``): an open order is replaced by a new order (new
  id, ``replaces`` = the old id) that takes the old one's place in its group; the old
  one becomes ``replaced`` (``replaced_by`` = the new id). The stream reports
  ``pending_replace`` and ``replaced`` for the old order, then ``new`` for the new one.
  ``qty`` is the replacement's own quantity (the old order's fills stay with it); without
  one the replacement takes the old order's whole ``qty`` even if it was partly filled,
  as Alpaca does (alpacahq/Alpaca-API issue 165), so a client must send what is left. A
  filled, canceled, expired or replaced order answers 422. The replacement passes one
  side at a time as a new order would, the old order set aside (its rest is available
  to it): a sell raised beyond the shares available answers 403 40310000
  "insufficient qty available for order (requested: Q, available: A)". Then it is
  weighed against the buying power like a new order, the old one's claim set aside
  (Alpaca: "the account's buying power is reduced by the larger of the two orders"):
  one that claims more than is left answers 403 40310000 "insufficient buying power"
  and the old order keeps working.
- **tif**: ``ioc`` trades at the next step what it can, the rest is canceled; ``fok``
  fills whole at the next step or is canceled; ``opg``/``cls`` are auction orders, filled
  whole at the next step (a limit only if the price satisfies it) or canceled (the fake
  has no sessions: the next step is the auction).
"""

from __future__ import annotations

import abc
import math
import threading
import uuid
from datetime import datetime
from typing import Any

from simbroker._venue_sides import alpaca_message, side_refusal

__all__ = ["OPEN", "ApiError", "OrderBook"]

OPEN = ("new", "accepted", "partially_filled", "pending_new", "held", "pending_replace")
"""Alpaca's statuses of an open order (listed by ``status=open``, cancelable)."""

_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
_TIFS = ("day", "gtc", "opg", "cls", "ioc", "fok")
_CLASSES = ("simple", "bracket", "oto", "oco")


class ApiError(Exception):
    """An HTTP error answer: status, Alpaca's code and message."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _invalid(message: str, code: int = 40010001) -> ApiError:
    return ApiError(422, code, message)


def num(x: float) -> str:
    """A number the way Alpaca writes it (a string, no needless ``.0``)."""
    return repr(float(x)) if x != int(x) else str(int(x)) if abs(x) < 1e15 else repr(x)


def iso(when: datetime) -> str:
    """A time as Alpaca writes it (UTC, ``Z``)."""
    from datetime import timezone

    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _price(req: dict[str, Any], key: str, where: str = "") -> float | None:
    raw = req.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _invalid(f"{where}{key} is not a number: {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise _invalid(f"{where}{key} must be > 0")
    return value


def _f(x: Any) -> float:
    return float(x) if x is not None else 0.0


class OrderBook(abc.ABC):
    """Mixed into :class:`~simbroker.testing.fake_alpaca.FakeAlpaca`: the orders and the
    market. The service sets these attributes in its ``__init__``."""

    _lock: threading.RLock
    orders: dict[str, dict[str, Any]]
    activities: list[dict[str, Any]]
    prices: dict[str, float]
    positions: dict[str, float]
    cash: float
    clock: datetime
    partial_fills: int
    reject_symbols: set[str]
    reject_later_symbols: set[str]
    quiet_sibling_cancels: bool
    refuse_before_duplicate: bool
    """Cancel a filled exit's sibling without a stream event (as alpaca-py issue 198
    reports Alpaca doing after a take-profit fill)."""

    @abc.abstractmethod
    def _emit(self, data: dict[str, Any]) -> None:
        """Send a trade_updates event (the service's stream)."""

    @abc.abstractmethod
    def _tick(self) -> datetime:
        """The time of a new event, strictly after the previous one."""

    @abc.abstractmethod
    def _check_buying_power(self, sym: str, side: str, qty: float, kind: str,
                            limit: float | None, stop: float | None) -> None:
        """Raise Alpaca's 403 when the account cannot take the order (the account's)."""

    @abc.abstractmethod
    def _check_replace_buying_power(self, old: dict[str, Any], qty: float,
                                    limit: float | None, stop: float | None) -> None:
        """Raise Alpaca's 403 when the replacement of ``old`` needs more buying power
        than is left with ``old`` set aside (the account's)."""

    @abc.abstractmethod
    def _check_sides(self, sym: str, side: str, qty: float) -> None:
        """Raise Alpaca's 403 for an order that breaks one side at a time (the account's)."""

    @abc.abstractmethod
    def _check_borrow(self, sym: str, side: str, qty: float,
                      old: dict[str, Any] | None = None) -> None:
        """Raise Alpaca's 403 for a short sale off the easy-to-borrow list (the
        account's)."""

    @abc.abstractmethod
    def _open_qty(self, sym: str) -> tuple[float, float]:
        """What is left of ``sym``'s open buy and sell orders, a group's legs once (the
        account's)."""

    # ------------------------------------------------------------------ views
    def _public(self, o: dict[str, Any], nested: bool = True) -> dict[str, Any]:
        """The order's JSON (its legs nested under ``legs`` unless ``nested`` is false)."""
        out = {k: v for k, v in o.items() if not k.startswith("_")}
        legs = o.get("_legs") or []
        out["legs"] = [self._public(self.orders[c]) for c in legs] if legs and nested \
            else None
        return out

    def _event(self, event: str, o: dict[str, Any], when: str, **extra: Any) -> None:
        # A leg's event shows the leg; a parent's shows its legs nested, as Alpaca does.
        self._emit({"event": event, "order": self._public(o), "timestamp": when, **extra})

    # ------------------------------------------------------------------ submit
    def _submit(self, req: dict[str, Any]) -> dict[str, Any]:
        sym = str(req.get("symbol") or "")
        side, kind = req.get("side"), req.get("type") or req.get("order_type")
        tif = req.get("time_in_force")
        klass = req.get("order_class") or "simple"
        try:
            qty = float(req.get("qty"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _invalid("qty is required") from None
        if not sym or side not in ("buy", "sell") or qty <= 0 or not math.isfinite(qty):
            raise _invalid(f"invalid order: symbol={sym!r} side={side!r} "
                           f"qty={req.get('qty')!r}")
        if kind not in _TYPES:
            raise _invalid(f"invalid order type {kind!r}")
        if tif not in _TIFS:
            raise _invalid(f"invalid time_in_force {tif!r}")
        if klass not in _CLASSES:
            raise _invalid(f"invalid order_class {klass!r}")
        limit, stop = _price(req, "limit_price"), _price(req, "stop_price")
        trail_price, trail_pct = _price(req, "trail_price"), _price(req, "trail_percent")
        if klass == "oco" and limit is None and isinstance(req.get("take_profit"), dict):
            limit = _price(req["take_profit"], "limit_price", "take_profit.")
        if kind in ("limit", "stop_limit") and limit is None:
            raise _invalid("limit_price is required")
        if kind in ("stop", "stop_limit") and stop is None:
            raise _invalid("stop_price is required")
        if kind in ("market", "stop", "trailing_stop") and limit is not None:
            raise _invalid(f"{kind} orders must not have limit_price")
        if kind in ("market", "limit", "trailing_stop") and stop is not None:
            raise _invalid(f"{kind} orders must not have stop_price")
        if kind == "trailing_stop":
            if (trail_price is None) == (trail_pct is None):
                raise _invalid("trailing stop orders require exactly one of trail_price or "
                               "trail_percent")
            if tif not in ("day", "gtc"):
                raise _invalid("trailing stop orders must be day or gtc orders", 42210000)
        elif trail_price is not None or trail_pct is not None:
            raise _invalid(f"{kind} orders must not have trail_price or trail_percent")
        if tif in ("opg", "cls") and kind not in ("market", "limit"):
            raise _invalid(f"{tif} orders must be market or limit orders", 42210000)
        if req.get("extended_hours") and not (kind == "limit" and tif == "day"
                                              and klass == "simple"):
            raise _invalid("extended hours order must be DAY limit orders", 42210000)
        if qty != int(qty):
            if klass != "simple":
                raise _invalid("fractional orders must be simple orders", 42210000)
            if tif != "day":
                raise _invalid("fractional orders must be DAY orders", 42210000)
            if kind == "trailing_stop":
                raise _invalid("fractional orders must be market, limit, stop or "
                               "stop_limit orders", 42210000)
        tp, sl = self._exit_legs(req, klass, kind, tif, side, limit, sym)
        cid = req.get("client_order_id") or str(uuid.uuid4())
        if not self.refuse_before_duplicate:
            self._check_client_id(cid)
        if sym in self.reject_symbols:
            raise _invalid(f"asset {sym} is not tradable", 42210000)
        px = self.prices.get(sym)
        if klass != "oco":
            self._check_buying_power(sym, str(side), qty, str(kind), limit, stop)
        else:  # an OCO closes a position: no buying power, but one side at a time
            self._check_sides(sym, str(side), qty)
        if self.refuse_before_duplicate:
            self._check_client_id(cid)
        now = iso(self._tick())
        exit_side = "sell" if side == "buy" else "buy"
        if klass == "oco":  # the limit leg is the order; the stop its leg
            assert sl is not None
            o = self._new(sym, side, qty, "limit", tif, cid, now, klass, limit=limit)
            o["_size"] = qty
            leg = self._new(sym, side, qty, "stop_limit" if sl[1] is not None else "stop",
                            tif, str(uuid.uuid4()), now, klass, stop=sl[0], limit=sl[1],
                            status="held")
            leg["_parent"], leg["_armed"], o["_legs"] = o["id"], True, [leg["id"]]
            self._event("new", o, now)
            return self._public(o)
        o = self._new(sym, side, qty, kind, tif, cid, now, klass, limit=limit, stop=stop,
                      trail_price=trail_price, trail_pct=trail_pct,
                      extended_hours=bool(req.get("extended_hours")))
        if kind == "trailing_stop" and px is not None:
            self._trail(o, px)
        legs = []
        if tp is not None:
            legs.append(self._new(sym, exit_side, qty, "limit", tif, str(uuid.uuid4()),
                                  now, klass, limit=tp, status="held"))
        if sl is not None:
            legs.append(self._new(sym, exit_side, qty,
                                  "stop_limit" if sl[1] is not None else "stop", tif,
                                  str(uuid.uuid4()), now, klass, stop=sl[0], limit=sl[1],
                                  status="held"))
        for leg in legs:
            leg["_parent"] = o["id"]
        o["_legs"] = [leg["id"] for leg in legs]
        self._event("new", o, now)
        return self._public(o)

    def _exit_legs(self, req: dict[str, Any], klass: str, kind: str, tif: str, side: str,
                   limit: float | None,
                   sym: str) -> tuple[float | None, tuple[float, float | None] | None]:
        """The take-profit limit and the stop-loss (stop, limit) of a group, validated."""
        raw_tp, raw_sl = req.get("take_profit"), req.get("stop_loss")
        if klass == "simple":
            if raw_tp or raw_sl:
                raise _invalid("take_profit and stop_loss are only for bracket, oto and "
                               "oco orders")
            return None, None
        if tif not in ("day", "gtc"):
            raise _invalid(f"{klass} orders must be DAY or GTC orders", 42210000)
        if klass == "oco":
            if kind != "limit":
                raise _invalid("oco orders must be limit orders", 42210000)
        elif kind not in ("market", "limit"):
            raise _invalid(f"{klass} orders must be market or limit orders", 42210000)
        tp = _price(raw_tp, "limit_price", "take_profit.") if isinstance(raw_tp, dict) \
            else None
        sl_stop = _price(raw_sl, "stop_price", "stop_loss.") if isinstance(raw_sl, dict) \
            else None
        sl_limit = _price(raw_sl, "limit_price", "stop_loss.") if isinstance(raw_sl, dict) \
            else None
        if raw_tp is not None and tp is None:
            raise _invalid("take_profit.limit_price is required")
        if raw_sl is not None and sl_stop is None:
            raise _invalid("stop_loss.stop_price is required")
        if klass in ("bracket", "oco") and (tp is None or sl_stop is None):
            raise _invalid(f"{klass} orders require take_profit.limit_price and "
                           f"stop_loss.stop_price")
        if klass == "oto" and (tp is None) == (sl_stop is None):
            raise _invalid("oto orders require one of take_profit or stop_loss")
        # The exits sit on the far sides of the entry (the OCO's own side is the exit).
        up = side == "buy" if klass != "oco" else side == "sell"
        base = limit if klass != "oco" and limit is not None else self.prices.get(sym)
        if klass == "oco":
            assert tp is not None
            assert sl_stop is not None
            if (up and tp <= sl_stop) or (not up and tp >= sl_stop):
                raise _invalid(f"take_profit.limit_price must be "
                               f"{'>' if up else '<'} stop_loss.stop_price", 42210000)
        elif base is not None:
            if tp is not None and (tp < base + 0.01 if up else tp > base - 0.01):
                raise _invalid(f"take_profit.limit_price must be "
                               f"{'>= base_price + 0.01' if up else '<= base_price - 0.01'}",
                               42210000)
            if sl_stop is not None and (sl_stop > base - 0.01 if up
                                        else sl_stop < base + 0.01):
                raise _invalid(f"stop_loss.stop_price must be "
                               f"{'<= base_price - 0.01' if up else '>= base_price + 0.01'}",
                               42210000)
        return tp, None if sl_stop is None else (sl_stop, sl_limit)

    def _check_client_id(self, cid: str) -> None:
        if len(cid) > 128:
            raise _invalid("client_order_id must be at most 128 characters")
        if any(o["client_order_id"] == cid for o in self.orders.values()):
            raise _invalid("client_order_id must be unique")

    def _new(self, sym: str, side: str, qty: float, kind: str, tif: str, cid: str, now: str,
             klass: str, *, limit: float | None = None, stop: float | None = None,
             trail_price: float | None = None, trail_pct: float | None = None,
             extended_hours: bool = False, status: str = "new") -> dict[str, Any]:
        oid = str(uuid.uuid4())
        o: dict[str, Any] = {
            "id": oid, "client_order_id": cid, "created_at": now, "updated_at": now,
            "submitted_at": now, "filled_at": None, "expired_at": None, "canceled_at": None,
            "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, sym)), "symbol": sym,
            "asset_class": "us_equity", "notional": None, "qty": num(qty),
            "filled_qty": "0", "filled_avg_price": None, "order_class": klass,
            "order_type": kind, "type": kind, "side": side, "time_in_force": tif,
            "limit_price": None if limit is None else num(limit),
            "stop_price": None if stop is None else num(stop),
            "trail_price": None if trail_price is None else num(trail_price),
            "trail_percent": None if trail_pct is None else num(trail_pct),
            "hwm": None, "status": status, "extended_hours": extended_hours, "legs": None,
            "_legs": [], "_parent": None, "_armed": False,
        }
        self.orders[oid] = o
        return o

    # ------------------------------------------------------------------ replace
    def _replace(self, oid: str, req: dict[str, Any]) -> dict[str, Any]:
        old = self.orders.get(oid)
        if old is None:
            raise ApiError(404, 40410000, "order not found")
        if old["status"] not in OPEN or old["status"] == "pending_replace":
            raise _invalid(f"order is not replaceable (status {old['status']})", 42210000)
        kind = old["type"]
        limit, stop, trail = (_price(req, "limit_price"), _price(req, "stop_price"),
                              _price(req, "trail"))
        if limit is not None and kind not in ("limit", "stop_limit"):
            raise _invalid(f"{kind} orders must not have limit_price")
        if stop is not None and kind not in ("stop", "stop_limit"):
            raise _invalid(f"{kind} orders must not have stop_price")
        if trail is not None and kind != "trailing_stop":
            raise _invalid(f"{kind} orders must not have trail")
        tif = req.get("time_in_force") or old["time_in_force"]
        if tif not in _TIFS:
            raise _invalid(f"invalid time_in_force {tif!r}")
        # Without a qty the replacement gets the old order's whole qty, even when part of
        # it is filled: what Alpaca does (alpacahq/Alpaca-API issue 165, open).
        qty = float(old["qty"])
        if req.get("qty") is not None:
            try:
                qty = float(req["qty"])
            except (TypeError, ValueError):
                raise _invalid(f"qty is not a number: {req['qty']!r}") from None
            if not qty > 0 or not math.isfinite(qty):
                raise _invalid("qty must be > 0")
        cid = req.get("client_order_id") or str(uuid.uuid4())
        self._check_client_id(cid)
        if not _is_waiting(old):  # a leg waiting for its parent holds nothing yet
            self._check_replace_sides(old, qty)
            self._check_borrow(str(old["symbol"]), str(old["side"]), qty, old)
            self._check_replace_buying_power(
                old, qty, limit if limit is not None else _num_or_none(old["limit_price"]),
                stop if stop is not None else _num_or_none(old["stop_price"]))
        was_held = old["status"] == "held"
        now = iso(self._tick())
        old["status"] = "pending_replace"
        old["updated_at"] = now
        self._event("pending_replace", old, now)
        new = self._new(old["symbol"], old["side"], qty, kind, tif, cid, iso(self._tick()),
                        old["order_class"],
                        limit=limit if limit is not None else _num_or_none(old["limit_price"]),
                        stop=stop if stop is not None or kind == "trailing_stop"
                        else _num_or_none(old["stop_price"]),
                        extended_hours=old["extended_hours"],
                        status="held" if was_held else "new")
        if kind == "trailing_stop":
            pct = old["trail_percent"] is not None
            value = trail if trail is not None else float(old["trail_percent" if pct
                                                              else "trail_price"])
            new["trail_percent" if pct else "trail_price"] = num(value)
            new["hwm"] = old["hwm"]
            self._trail(new, None)
        new["replaces"], new["_armed"] = oid, old["_armed"]
        new["_legs"], new["_parent"] = old["_legs"], old["_parent"]
        for c in new["_legs"]:
            self.orders[c]["_parent"] = new["id"]
        parent = self.orders.get(old["_parent"] or "")
        if parent is not None:
            parent["_legs"] = [new["id"] if c == oid else c for c in parent["_legs"]]
        old["_legs"], old["_parent"] = [], None
        when = iso(self._tick())
        old.update(status="replaced", replaced_by=new["id"], replaced_at=when,
                   updated_at=when)
        self._event("replaced", old, when)
        self._event("new", new, new["submitted_at"])
        return self._public(new)

    def _check_replace_sides(self, old: dict[str, Any], qty: float) -> None:
        """Raise Alpaca's 403 when the replacement of ``old`` by an order of ``qty``
        breaks one side at a time.

        The replacement is a new order (alpacahq/Alpaca-API issue 165: a partly filled
        sell replaced with its original qty "is trying to sell more than one has
        shares"), weighed with ``old`` set aside: what is left of ``old`` (its group's
        one claim, for a leg) counts as available to it, so a replace that keeps or
        lowers the qty passes (issue 282 reports the opposite as a bug) and one that
        raises a sell beyond the shares held net of the other open sells is refused
        "insufficient qty available for order (requested: Q, available: A)", 403
        40310000."""
        sym, side = old["symbol"], str(old["side"])
        buys, sells = self._open_qty(sym)
        own = self._own_rest(old)
        if side == "buy":
            buys -= own
        else:
            sells -= own
        refusal = side_refusal(sym, side, qty, self.positions.get(sym, 0.0), buys, sells)
        if refusal is not None:
            raise ApiError(403, 40310000, alpaca_message(refusal))

    def _own_rest(self, old: dict[str, Any]) -> float:
        """What ``old`` holds of its side's open quantity: its rest, or for a leg its
        group's one claim (the largest rest of its live members)."""
        if old["_parent"] is None and old["order_class"] != "oco":
            return float(old["qty"]) - float(old["filled_qty"])
        return max((float(m["qty"]) - float(m["filled_qty"]) for m in self._group(old)
                    if m["status"] in OPEN and not _is_waiting(m)), default=0.0)

    # ------------------------------------------------------------------ cancel, expire
    def _cancel(self, oid: str) -> None:
        o = self.orders.get(oid)
        if o is None:
            raise ApiError(404, 40410000, "order not found")
        if o["status"] not in OPEN:
            raise _invalid("order is not cancelable", 42210000)
        self._end(o, "canceled")
        parent = self.orders[o["_parent"]] if o["_parent"] is not None else None
        if o["order_class"] == "oco":  # either order of the pair: both go
            members = self._group(o)
        elif parent is not None:  # a leg: its sibling goes with it
            members = [self.orders[c] for c in parent["_legs"]]
        elif float(o["filled_qty"]) == 0:  # an unfilled parent: its held legs
            members = [self.orders[c] for c in o["_legs"]]
        else:
            members = []
        for m in members:
            if m["status"] in OPEN:
                self._end(m, "canceled")

    def _group(self, o: dict[str, Any]) -> list[dict[str, Any]]:
        """The exit orders ``o`` belongs with: an OCO's pair, or a bracket's legs."""
        root = self.orders[o["_parent"]] if o["_parent"] is not None else o
        members = [root] if root["order_class"] == "oco" else []
        return members + [self.orders[c] for c in root["_legs"]]

    def _end(self, o: dict[str, Any], status: str, *, event: bool = True) -> None:
        """Close an open order as ``canceled``/``expired``/``rejected`` (with its event)."""
        when = iso(self._tick())
        o["status"] = status
        o[{"canceled": "canceled_at", "expired": "expired_at",
           "rejected": "failed_at"}[status]] = when
        o["updated_at"] = when
        if event:
            self._event(status, o, when)

    def _end_waiting_legs(self, parent: dict[str, Any], status: str) -> None:
        """A parent that ends unfilled takes its held legs with it."""
        for c in parent["_legs"]:
            leg = self.orders[c]
            if leg["status"] in OPEN and parent["order_class"] != "oco":
                self._end(leg, "canceled" if status == "rejected" else status)

    def expire_day_orders(self) -> None:
        """End the trading day: every open ``day`` order expires (with an event), its
        unfilled parent's held legs too."""
        with self._lock:
            for o in list(self.orders.values()):
                if o["status"] in OPEN and o["time_in_force"] == "day":
                    self._end(o, "expired")
                    if float(o["filled_qty"]) == 0:
                        self._end_waiting_legs(o, "expired")

    # ------------------------------------------------------------------ matching
    def step(self) -> list[dict[str, Any]]:
        """The market trades once at the current prices; returns the fills it made."""
        from datetime import timedelta

        made: list[dict[str, Any]] = []
        with self._lock:
            self.clock += timedelta(minutes=1)
            # Legs armed by a fill in this step trade from the next one.
            live = [o for o in self.orders.values()
                    if o["status"] in OPEN and not _is_waiting(o)]
            for order in live:
                if order["status"] not in OPEN:
                    continue  # canceled in this step (an OCO sibling's fill)
                if order["symbol"] in self.reject_later_symbols:
                    self._end(order, "rejected")
                    self._end_waiting_legs(order, "rejected")
                    continue
                fill = self._match(order)
                if fill is not None:
                    made.append(fill)
                if order["status"] in OPEN and order["time_in_force"] in (
                        "ioc", "fok", "opg", "cls"):
                    self._end(order, "canceled")  # one chance: the next step
                    if float(order["filled_qty"]) == 0:
                        self._end_waiting_legs(order, "canceled")
        return made

    def _trail(self, o: dict[str, Any], px: float | None) -> None:
        """Ratchet a trailing stop's ``hwm`` on ``px`` and move its stop with it."""
        sell = o["side"] == "sell"
        if px is not None:
            hwm = o["hwm"]
            if hwm is None or (px > float(hwm) if sell else px < float(hwm)):
                o["hwm"] = num(px)
        if o["hwm"] is None:
            return
        hwm = float(o["hwm"])
        if o["trail_percent"] is not None:
            k = float(o["trail_percent"]) / 100
            level = hwm * (1 - k) if sell else hwm * (1 + k)
        else:
            d = float(o["trail_price"])
            level = hwm - d if sell else hwm + d
        old = o["stop_price"]
        if old is not None and (level < float(old) if sell else level > float(old)):
            level = float(old)  # never loosens (a replace with a wider trail included)
        o["stop_price"] = num(round(level, 6))

    def _match(self, o: dict[str, Any]) -> dict[str, Any] | None:
        px = self.prices.get(o["symbol"])
        if px is None:
            return None
        buy = o["side"] == "buy"
        kind = o["type"]
        if kind == "trailing_stop":
            self._trail(o, px)
        limit = float(o["limit_price"]) if o["limit_price"] is not None else None
        stop = float(o["stop_price"]) if o["stop_price"] is not None else None
        if kind in ("stop", "stop_limit", "trailing_stop") and not o.get("_triggered"):
            if (buy and px >= stop) or (not buy and px <= stop):  # type: ignore[operator]
                o["_triggered"] = True
            else:
                return None
        if kind in ("limit", "stop_limit"):
            assert limit is not None
            if (buy and px > limit) or (not buy and px < limit):
                return None
            price = min(px, limit) if buy else max(px, limit)
        else:
            price = px
        qty = float(o["qty"])
        left = qty - float(o["filled_qty"])
        part = qty / self.partial_fills
        size = left if left <= part * (1 + 1e-12) else part
        if o["time_in_force"] in ("fok", "opg", "cls") and size < left:
            return None  # all or nothing: canceled after this step
        return self._fill(o, size, price)

    def _fill(self, o: dict[str, Any], size: float, price: float) -> dict[str, Any]:
        sign = 1.0 if o["side"] == "buy" else -1.0
        filled = float(o["filled_qty"]) + size
        prev = _f(o["filled_avg_price"]) * float(o["filled_qty"])
        o["filled_qty"] = num(filled)
        o["filled_avg_price"] = num((prev + size * price) / filled)
        done = filled >= float(o["qty"]) * (1 - 1e-12)
        o["status"] = "filled" if done else "partially_filled"
        when = self._tick()
        now = iso(when)
        o["updated_at"] = now
        if done:
            o["filled_at"] = now
        self.cash -= sign * size * price
        pos = self.positions.get(o["symbol"], 0.0) + sign * size
        if abs(pos) < 1e-12:
            self.positions.pop(o["symbol"], None)
        else:
            self.positions[o["symbol"]] = pos
        self._group_after_fill(o, filled, done)
        exec_id = str(uuid.uuid4())
        activity = {
            # Activities carry milliseconds (the stream's events microseconds).
            "id": f"{when:%Y%m%d%H%M%S}{when.microsecond // 1000:03d}::{exec_id}",
            "activity_type": "FILL",
            "transaction_time": iso(when.replace(microsecond=when.microsecond // 1000
                                                 * 1000)),
            "type": "fill" if done else "partial_fill", "price": num(price),
            "qty": num(size), "side": o["side"], "symbol": o["symbol"],
            "leaves_qty": num(float(o["qty"]) - filled), "cum_qty": num(filled),
            "order_id": o["id"], "order_status": o["status"],
        }
        self.activities.append(activity)
        self._event("fill" if done else "partial_fill", o, now, price=num(price),
                    qty=num(size), position_qty=num(pos), execution_id=exec_id)
        if o["_parent"] is not None or o["order_class"] == "oco":
            self._after_exit_fill(o, done)
        return activity

    def _group_after_fill(self, o: dict[str, Any], filled: float, done: bool) -> None:
        """A parent traded: its legs are sized to what it holds, and go live."""
        if o["_parent"] is not None or o["order_class"] == "oco":
            return
        legs = [self.orders[c] for c in o["_legs"]]
        if any(leg["status"] == "filled" for leg in legs):
            return  # the exit is done; what the entry buys now is not protected
        for leg in legs:
            if leg["status"] not in OPEN:
                continue
            if leg["type"] in ("stop", "stop_limit"):
                leg["_armed"] = True  # stays "held" at Alpaca, but live
            elif leg["status"] == "held":
                leg["status"] = "new"
        self._size_exits(legs, filled)

    def _size_exits(self, members: list[dict[str, Any]], total: float) -> None:
        """Each open exit of a group may sell what the group still holds: ``total`` (what
        the entry bought, or an OCO's size) less what its exits sold; one with nothing
        left to sell is canceled."""
        left = max(0.0, total - sum(float(m["filled_qty"]) for m in members))
        for m in members:
            if m["status"] not in OPEN:
                continue
            if left <= 1e-12:
                self._end(m, "canceled")
                continue
            m["qty"] = num(float(m["filled_qty"]) + left)
            m["updated_at"] = iso(self.clock)

    def _after_exit_fill(self, leg: dict[str, Any], done: bool) -> None:
        """One exit traded: its siblings keep only what is left (none: canceled)."""
        group = self._group(leg)
        root = self.orders[leg["_parent"]] if leg["_parent"] is not None else leg
        if done:
            for sib in group:
                if sib is not leg and sib["status"] in OPEN:
                    self._end(sib, "canceled", event=not self.quiet_sibling_cancels)
            return
        total = float(root["_size"]) if root["order_class"] == "oco" \
            else float(root["filled_qty"])
        self._size_exits(group, total)


def _num_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


def _is_waiting(o: dict[str, Any]) -> bool:
    """A held leg whose parent has not traded yet (not armed): it cannot trade."""
    return o["status"] == "held" and not o["_armed"]
