"""The broker conformance check: any :class:`~simbroker.Broker` driven through one scripted
session on a :class:`ConformanceVenue`, every answer checked against the protocol.

Public through :mod:`simbroker.testing.checks` (``check_broker_conformance``,
``ConformanceVenue``, ``PaperVenue``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

import numpy as np

from simbroker.bars import Bars
from simbroker.broker import AccountBroker, Broker, OrderManagingBroker
from simbroker.errors import InvalidOrder, ReplaceRejected, UnknownOrder
from simbroker.paper import PaperBroker
from simbroker.testing._property import fail
from simbroker.types import AccountInfo, Fill, OrderInfo, OrderStatus

__all__ = ["ConformanceVenue", "PaperVenue", "check_broker_conformance"]


@runtime_checkable
class ConformanceVenue(Protocol):
    """A market the conformance check can move, with a broker under test attached.

    ``step()`` lets the market trade once at the current prices: market orders fill at
    the price, resting limit and stop orders the price reaches fill; it returns only
    after the broker under test has observed every resulting event.
    """

    broker: Broker

    def set_price(self, symbol: str, price: float) -> None:
        """Where ``symbol`` trades from the next step on."""

    def step(self) -> None:
        """Trade once at the current prices."""

    def close(self) -> None:
        """Disconnect and release everything."""


class PaperVenue:
    """A :class:`ConformanceVenue` for the :class:`~simbroker.PaperBroker`.

    Prices set with :meth:`set_price` become the next bar (open = high = low = close,
    ample volume); :meth:`step` closes it. Up to ``horizon`` steps.
    """

    def __init__(self, symbols: Sequence[str] = ("AAA", "BBB"), *, horizon: int = 512,
                 start_price: float = 100.0, **broker_kwargs: Any):
        n = len(symbols)
        self._px = np.full((horizon, n), float(start_price))
        self._vol = np.full((horizon, n), 1e9)
        # Read-only views of buffers this venue keeps writing: Bars shares them, so the
        # broker sees each bar's prices once they are set.
        px, vol = self._px.view(), self._vol.view()
        px.setflags(write=False)
        vol.setflags(write=False)
        ts = np.datetime64("2024-01-02T14:30", "ns") + np.arange(horizon) * np.timedelta64(
            60_000_000_000, "ns")
        bars = Bars(timestamps=ts, symbols=tuple(symbols), open=px, high=px, low=px,
                    close=px, volume=vol, interval=np.timedelta64(60_000_000_000, "ns"))
        self.broker: PaperBroker = PaperBroker(bars, **broker_kwargs)
        self._col = {s: i for i, s in enumerate(symbols)}

    def set_price(self, symbol: str, price: float) -> None:
        """Set where ``symbol`` trades on the next step (and after, until changed)."""
        t = self.broker.bar_index + 1
        if t >= len(self._px):
            raise RuntimeError("PaperVenue: horizon reached; make it longer")
        self._px[t:, self._col[symbol]] = float(price)

    def step(self) -> None:
        """Close the next bar at the current prices."""
        self.broker.step()

    def close(self) -> None:
        """Close the broker's trade log, if any."""
        self.broker.close()


_ORDER_KEYS = set(OrderInfo.__annotations__)
_FILL_KEYS = set(Fill.__annotations__)
_ACCOUNT_KEYS = set(AccountInfo.__annotations__)
_ACCOUNT_TYPES = {"cash", "margin", "unconstrained"}
_STATUSES = {s.value for s in OrderStatus}
_OPEN = {s.value for s in OrderStatus if s.is_open}


@dataclass
class _Session:
    venue: ConformanceVenue
    symbol: str
    broker: Broker

    def fills_of(self, order_id: str) -> list[Fill]:
        return [f for f in self.broker.get_fills() if f["order_id"] == order_id]


def _check_order_info(info: Any, what: str) -> None:
    if not isinstance(info, dict):
        raise fail("submit_order/cancel_order return an OrderInfo dict",
                    f"{what} returned {type(info).__name__}")
    missing = _ORDER_KEYS - set(info)
    if missing:
        raise fail("OrderInfo has every documented key", f"{what}: missing {sorted(missing)}")
    if info["status"] not in _STATUSES:
        raise fail("status is an OrderStatus value", f"{what}: status {info['status']!r}")
    when = info["submitted_at"]
    if not isinstance(when, datetime) or when.utcoffset() != timedelta(0):
        raise fail("submitted_at is a tz-aware UTC datetime", f"{what}: {when!r}")
    if not isinstance(info["order_id"], str) or not info["order_id"]:
        raise fail("order_id is a non-empty string", f"{what}: {info['order_id']!r}")


def _check_account(broker: Broker, when: str, rtol: float) -> None:
    """``get_account`` keeps its keys and sums, when the broker has it."""
    if not isinstance(broker, AccountBroker):
        return
    try:
        info: Any = broker.get_account()
    except AttributeError:  # a wrapper (RiskBroker) around a broker without it
        return
    if not isinstance(info, dict):
        raise fail("get_account returns an AccountInfo dict",
                    f"{when}: {type(info).__name__}")
    missing = _ACCOUNT_KEYS - set(info)
    if missing:
        raise fail("AccountInfo has every documented key", f"{when}: missing {sorted(missing)}")
    for key in ("cash", "equity", "buying_power", "maintenance_margin", "initial_margin",
                "long_market_value", "short_market_value"):
        if not isinstance(info[key], (int, float)) or math.isnan(info[key]):
            raise fail("AccountInfo amounts are numbers", f"{when}: {key}={info[key]!r}")
    if info["account_type"] not in _ACCOUNT_TYPES:
        raise fail("account_type is cash, margin or unconstrained",
                    f"{when}: {info['account_type']!r}")
    if info["long_market_value"] < 0 or info["short_market_value"] > 0:
        raise fail("long value >= 0 and short value <= 0", f"{when}: {info}")
    total = info["cash"] + info["long_market_value"] + info["short_market_value"]
    scale = abs(info["cash"]) + info["long_market_value"] - info["short_market_value"]
    if not math.isclose(info["equity"], total, rel_tol=rtol, abs_tol=1e-6 + rtol * scale):
        raise fail("equity = cash + long value + short value", f"{when}: {info}")
    cash = broker.get_cash()
    if not math.isclose(info["cash"], cash, rel_tol=rtol, abs_tol=1e-6):
        raise fail("get_account cash equals get_cash", f"{when}: {info['cash']!r} vs {cash!r}")


def _check_fill(fill: Any) -> None:
    missing = _FILL_KEYS - set(fill)
    if missing:
        raise fail("Fill has every documented key", f"missing {sorted(missing)} in {fill}")
    when = fill["timestamp"]
    if not isinstance(when, datetime) or when.utcoffset() != timedelta(0):
        raise fail("fill timestamp is tz-aware UTC", f"{when!r} in {fill}")
    if not (fill["qty"] > 0 and math.isfinite(fill["price"]) and fill["price"] > 0):
        raise fail("a fill has a positive quantity and price", str(fill))
    if not fill["fee"] >= 0:
        raise fail("fees are non-negative", str(fill))
    if not math.isclose(fill["notional"], fill["qty"] * fill["price"], rel_tol=1e-9):
        raise fail("fill notional is qty x price", str(fill))


@contextmanager
def _unchanged(broker: Broker, what: str) -> Iterator[None]:
    cash, pos, n_fills = broker.get_cash(), broker.get_positions(), len(broker.get_fills())
    yield
    if broker.get_cash() != cash or broker.get_positions() != pos \
            or len(broker.get_fills()) != n_fills:
        raise fail("a rejected or repeated request changes nothing",
                    f"{what} changed cash {cash!r} -> {broker.get_cash()!r}, positions "
                    f"{pos} -> {broker.get_positions()}")


def check_broker_conformance(make_venue: Callable[[], ConformanceVenue], *,
                             symbol: str = "AAA", price: float = 100.0,
                             qty: float = 10.0, rtol: float = 1e-9,
                             order_kinds: bool = True) -> None:
    """Drive a broker through a scripted session and check it keeps the contract.

    ``make_venue()`` returns a fresh :class:`ConformanceVenue` whose ``broker`` is the
    broker under test, flat or not. The session: a market buy fills at the next step;
    resubmitting its ``client_order_id`` returns the same order; a far limit rests; it
    cancels, and cancelling again changes nothing; cancelling an unknown id raises
    :class:`~simbroker.UnknownOrder`; an invalid order raises
    :class:`~simbroker.InvalidOrder` and changes nothing; a market sell flattens.
    Throughout: result keys and types, status values and transitions, cash moving by
    exactly notional and fee, positions by the filled quantity, and ``get_fills(since)``
    returning the fills at or after ``since``.

    With ``order_kinds`` (the default; every simbroker broker passes it), the broker must
    be an :class:`~simbroker.OrderManagingBroker` and the session goes on: ``get_order``
    and ``get_orders(open_only=)`` agree with what happened (``remaining_qty`` too); a
    bracket's children are listed ``held`` with ``parent_id`` and become live when the
    entry fills; the price rising through the take-profit fills exactly that leg and
    cancels the stop; an OCO's stop leg fills on a drop and cancels its limit leg; a
    trailing sell stop follows a rise and fills on the fall; a far limit is replaced
    (same ``order_id``, new quantity and price) and a replace of a closed order raises
    :class:`~simbroker.ReplaceRejected` changing nothing; an ``ioc`` limit that cannot
    fill is closed after one step. The position ends where it started and cash moves by
    the section's fills exactly.

    A broker with ``get_account`` (an :class:`~simbroker.AccountBroker`) must return
    every :class:`~simbroker.types.AccountInfo` key, numbers where numbers are due,
    ``equity = cash + long_market_value + short_market_value`` and
    ``get_account()["cash"] == get_cash()``, before and after the session's first fill.

    Raises
    ------
    AssertionError
        Naming the property and the step of the session where it failed.
    """
    venue = make_venue()
    try:
        session = _Session(venue, symbol, venue.broker)
        _conformance_session(session, price, qty, rtol)
        if order_kinds:
            _order_kinds_session(session, price, qty, rtol)
    except AssertionError:
        raise
    except Exception as exc:
        raise fail("the broker completes the conformance session",
                    f"{type(exc).__name__}: {exc}") from exc
    finally:
        venue.close()


def _conformance_session(s: _Session, price: float, qty: float, rtol: float) -> None:
    b, sym, venue = s.broker, s.symbol, s.venue
    if not isinstance(b, Broker):
        raise fail("the broker satisfies simbroker.Broker", f"{type(b).__name__} does not")
    now = b.now()
    if not isinstance(now, datetime) or now.utcoffset() != timedelta(0):
        raise fail("now() is tz-aware UTC", repr(now))
    venue.set_price(sym, price)
    _check_account(b, "before the first order", rtol)
    cash0, pos0 = b.get_cash(), b.get_positions().get(sym, 0.0)
    before = {f["fill_id"] for f in b.get_fills()}

    # 1. A market buy: accepted open, then filled at the next step.
    cid = f"conformance-{datetime.now(timezone.utc):%H%M%S%f}"
    buy = b.submit_order(sym, "buy", qty, "market", client_order_id=cid)
    _check_order_info(buy, "market buy")
    if buy["status"] not in _OPEN | {"filled", "partially_filled"}:
        raise fail("a new market order is open (or already filled)", str(buy))
    if buy["client_order_id"] != cid or buy["qty"] != qty or buy["side"] != "buy":
        raise fail("OrderInfo echoes what was submitted", str(buy))
    with _unchanged(b, "resubmitting a client_order_id"):
        again = b.submit_order(sym, "buy", qty, "market", client_order_id=cid)
    if again["order_id"] != buy["order_id"]:
        raise fail("a repeated client_order_id returns the same order",
                    f"{buy['order_id']!r} then {again['order_id']!r}")
    venue.step()
    fills = s.fills_of(buy["order_id"])
    if not fills or abs(sum(f["qty"] for f in fills) - qty) > 1e-9 * qty:
        raise fail("a market order fills at the next step",
                    f"fills for {buy['order_id']!r}: {fills}")
    for f in fills:
        _check_fill(f)
        if f["fill_id"] in before:
            raise fail("fill ids are unique", f"{f['fill_id']!r} seen before")
        if f["client_order_id"] != cid or f["symbol"] != sym or f["side"] != "buy":
            raise fail("a fill names its order", str(f))
    spent = sum(f["notional"] + f["fee"] for f in fills)
    if not math.isclose(b.get_cash(), cash0 - spent, rel_tol=rtol, abs_tol=rtol * spent):
        raise fail("cash moves by notional plus fees",
                    f"cash {cash0!r} -> {b.get_cash()!r} after buying for {spent!r}")
    if not math.isclose(b.get_positions().get(sym, 0.0), pos0 + qty, abs_tol=1e-9 * qty):
        raise fail("positions move by the filled quantity",
                    f"{sym} {pos0!r} -> {b.get_positions().get(sym)!r} after buying {qty!r}")
    _check_account(b, "after the market buy filled", rtol)
    with _unchanged(b, "cancelling a filled order"):
        try:
            done = b.cancel_order(buy["order_id"])
        except Exception as exc:
            raise fail("cancelling a final order returns it unchanged",
                        f"cancelling filled {buy['order_id']!r} raised "
                        f"{type(exc).__name__}: {exc}") from exc
    _check_order_info(done, "cancel of a filled order")
    if done["status"] != "filled":
        raise fail("a filled order stays filled", str(done))

    # 2. get_fills(since): inclusive cursor.
    last = max(f["timestamp"] for f in fills)
    since = b.get_fills(since=last)
    if not {f["fill_id"] for f in fills if f["timestamp"] >= last} <= \
            {f["fill_id"] for f in since}:
        raise fail("get_fills(since) includes fills at since", f"since={last}: {since}")
    if any(f["timestamp"] < last for f in since):
        raise fail("get_fills(since) returns nothing before since", f"since={last}: {since}")
    later = b.get_fills(since=last + timedelta(microseconds=1))
    if any(f["fill_id"] in {g["fill_id"] for g in fills} for f in later):
        raise fail("get_fills(since) excludes fills before since", str(later))

    # 3. A far limit rests; cancel is idempotent.
    limit = b.submit_order(sym, "buy", qty, "limit", limit_price=round(price * 0.5, 2),
                           tif="gtc")
    _check_order_info(limit, "far limit buy")
    with _unchanged(b, "a step with a far limit resting"):
        venue.step()
    resting = s.fills_of(limit["order_id"])
    if resting:
        raise fail("a limit the price never reaches does not fill", str(resting))
    canceled = b.cancel_order(limit["order_id"])
    _check_order_info(canceled, "cancel")
    if canceled["status"] != "canceled":
        raise fail("cancel of an open order ends canceled", str(canceled))
    with _unchanged(b, "cancelling twice"):
        try:
            twice = b.cancel_order(limit["order_id"])
        except Exception as exc:
            raise fail("cancel is idempotent", f"cancelling {limit['order_id']!r} a second "
                        f"time raised {type(exc).__name__}: {exc}") from exc
    if twice["status"] != "canceled" or twice["order_id"] != limit["order_id"]:
        raise fail("cancel is idempotent", f"second cancel returned {twice}")
    with _unchanged(b, "cancelling an unknown order"):
        try:
            b.cancel_order("no-such-order-id")
        except UnknownOrder:
            pass
        else:
            raise fail("cancelling an unknown id raises UnknownOrder", "it returned")

    # 4. Invalid orders are refused before anything happens.
    for bad, what in (({"qty": 0.0}, "qty 0"), ({"qty": -qty}, "negative qty"),
                      ({"order_type": "limit"}, "limit without a price"),
                      ({"side": "hold"}, "side 'hold'")):
        args: dict[str, Any] = {"symbol": sym, "side": "sell", "qty": qty,
                                "order_type": "market"} | bad
        with _unchanged(b, f"an invalid order ({what})"):
            try:
                b.submit_order(args.pop("symbol"), args.pop("side"), args.pop("qty"),
                               args.pop("order_type"))
            except InvalidOrder:
                pass
            else:
                raise fail("an invalid order raises InvalidOrder", f"{what} was accepted")

    # 5. A market sell flattens what the buy added.
    cash1 = b.get_cash()
    sell = b.submit_order(sym, "sell", qty, "market")
    _check_order_info(sell, "market sell")
    venue.step()
    sfills = s.fills_of(sell["order_id"])
    if abs(sum(f["qty"] for f in sfills) - qty) > 1e-9 * qty:
        raise fail("a market sell fills at the next step", str(sfills))
    for f in sfills:
        _check_fill(f)
    got = sum(f["notional"] - f["fee"] for f in sfills)
    if not math.isclose(b.get_cash(), cash1 + got, rel_tol=rtol, abs_tol=rtol * got):
        raise fail("cash moves by notional less fees",
                    f"cash {cash1!r} -> {b.get_cash()!r} after selling for {got!r}")
    if not math.isclose(b.get_positions().get(sym, 0.0), pos0, abs_tol=1e-9 * qty):
        raise fail("positions move by the filled quantity",
                    f"{sym} should be back at {pos0!r}, is {b.get_positions().get(sym)!r}")
    if pos0 == 0 and sym in b.get_positions():
        raise fail("flat symbols are left out of get_positions", str(b.get_positions()))


def _open_ids(b: OrderManagingBroker) -> set[str]:
    listed = b.get_orders(open_only=True)
    for info in listed:
        _check_order_info(info, "get_orders(open_only=True)")
        if info["status"] not in _OPEN:
            raise fail("get_orders(open_only=True) lists only open orders", str(info))
    return {o["order_id"] for o in listed}


def _status(b: OrderManagingBroker, order_id: str) -> str:
    info = b.get_order(order_id)
    _check_order_info(info, f"get_order({order_id!r})")
    if not math.isclose(info["remaining_qty"], info["qty"] - info["filled_qty"],
                        abs_tol=1e-9 * info["qty"]):
        raise fail("remaining_qty is qty - filled_qty", str(info))
    return str(info["status"])


def _order_kinds_session(s: _Session, price: float, qty: float, rtol: float) -> None:
    b0, sym, venue = s.broker, s.symbol, s.venue
    if not isinstance(b0, OrderManagingBroker):
        raise fail("the broker satisfies simbroker.OrderManagingBroker",
                    f"{type(b0).__name__} lacks get_order, get_orders or replace_order")
    b: OrderManagingBroker = b0
    cash0, pos0 = b.get_cash(), b.get_positions().get(sym, 0.0)
    seen = {f["fill_id"] for f in b.get_fills()}
    with _unchanged(b, "get_order of an unknown id"):
        try:
            b.get_order("no-such-order-id")
        except UnknownOrder:
            pass
        else:
            raise fail("get_order of an unknown id raises UnknownOrder", "it returned")
    every = {o["order_id"] for o in b.get_orders()}

    # 6. A bracket: held children, born on the entry's fill; one exit fills.
    venue.set_price(sym, price)
    parent = b.submit_order(sym, "buy", qty, "market", order_class="bracket",
                            take_profit={"limit_price": round(price * 1.1, 2)},
                            stop_loss={"stop_price": round(price * 0.9, 2)}, tif="gtc")
    _check_order_info(parent, "bracket")
    legs = list(parent["legs"])
    if parent["order_class"] != "bracket" or len(legs) != 2:
        raise fail("a bracket lists its two legs", str(parent))
    for leg in legs:
        info = b.get_order(leg)
        if info["parent_id"] != parent["order_id"] or info["side"] != "sell":
            raise fail("a bracket's legs name their parent and sell", str(info))
        if parent["status"] not in ("filled", "partially_filled") and info["status"] != "held":
            raise fail("a bracket's legs are held until the entry fills", str(info))
    if not set(legs) | {parent["order_id"]} <= _open_ids(b) | {
            o["order_id"] for o in b.get_orders() if o["status"] == "filled"}:
        raise fail("get_orders(open_only=True) lists a bracket and its held legs",
                    str(b.get_orders(open_only=True)))
    venue.step()
    if _status(b, parent["order_id"]) != "filled":
        raise fail("a bracket's market entry fills at the next step",
                    str(b.get_order(parent["order_id"])))
    if any(_status(b, leg) not in ("new", "pending_confirm") for leg in legs):
        raise fail("a bracket's legs are live once the entry filled",
                    str([b.get_order(leg) for leg in legs]))
    venue.set_price(sym, round(price * 1.2, 2))
    venue.step()
    states = [_status(b, leg) for leg in legs]
    if states != ["filled", "canceled"]:
        raise fail("the price rising through the take-profit fills it and cancels the stop",
                    f"leg statuses {states}")
    if not math.isclose(b.get_positions().get(sym, 0.0), pos0, abs_tol=1e-9 * qty):
        raise fail("a bracket's exit closes exactly what its entry opened",
                    f"{sym} {b.get_positions().get(sym)!r}, started at {pos0!r}")

    # 7. An OCO on a held position: the stop fills on a drop, the limit is canceled.
    venue.set_price(sym, price)
    buy = b.submit_order(sym, "buy", qty, "market")
    venue.step()
    oco = b.submit_order(sym, "sell", qty, "limit", order_class="oco",
                         take_profit={"limit_price": round(price * 1.1, 2)},
                         stop_loss={"stop_price": round(price * 0.9, 2)}, tif="gtc")
    _check_order_info(oco, "oco")
    if len(oco["legs"]) != 1 or b.get_order(oco["legs"][0])["status"] == "held":
        raise fail("an OCO's limit leg lists its stop leg, live at once", str(oco))
    venue.set_price(sym, round(price * 0.85, 2))
    venue.step()
    states = [_status(b, oco["order_id"]), _status(b, oco["legs"][0])]
    if states != ["canceled", "filled"]:
        raise fail("a drop through an OCO's stop fills it and cancels the limit leg",
                    f"limit, stop statuses {states}")

    # 8. A trailing sell stop follows a rise, then fills on the fall.
    venue.set_price(sym, price)
    b.submit_order(sym, "buy", qty, "market")
    venue.step()
    trail = b.submit_order(sym, "sell", qty, "trailing_stop", trail_percent=5.0, tif="gtc")
    _check_order_info(trail, "trailing stop")
    if trail["trail_percent"] != 5.0 or trail["trail_amount"] is not None:
        raise fail("a trailing stop echoes its trail", str(trail))
    venue.set_price(sym, round(price * 1.1, 2))
    venue.step()
    if _status(b, trail["order_id"]) not in _OPEN:
        raise fail("a trailing stop does not fill on a rise", str(b.get_order(trail["order_id"])))
    venue.set_price(sym, round(price * 0.9, 2))
    venue.step()
    if _status(b, trail["order_id"]) != "filled":
        raise fail("a trailing sell stop fills when the price falls through its trail",
                    str(b.get_order(trail["order_id"])))

    # 9. Replace keeps the order id; a replace of a closed order changes nothing.
    venue.set_price(sym, price)
    far = b.submit_order(sym, "buy", qty, "limit", limit_price=round(price * 0.5, 2),
                         tif="gtc")
    new = b.replace_order(far["order_id"], qty=qty / 2, limit_price=round(price * 0.6, 2))
    _check_order_info(new, "replace_order")
    if new["order_id"] != far["order_id"]:
        raise fail("replace_order keeps the order id", f"{far['order_id']!r} -> {new}")
    venue.step()
    now = b.get_order(far["order_id"])
    if not (math.isclose(now["qty"], qty / 2) and math.isclose(
            float(now["limit_price"] or 0), round(price * 0.6, 2))):
        raise fail("a replace changes the order's quantity and price", str(now))
    b.cancel_order(far["order_id"])
    with _unchanged(b, "replacing a canceled order"):
        try:
            b.replace_order(far["order_id"], qty=qty)
        except ReplaceRejected:
            pass
        else:
            raise fail("a replace of a closed order raises ReplaceRejected", "it returned")

    # 10. An ioc limit that cannot fill is closed after one step.
    ioc = b.submit_order(sym, "buy", qty, "limit", limit_price=round(price * 0.5, 2),
                         tif="ioc")
    venue.step()
    if _status(b, ioc["order_id"]) in _OPEN:
        raise fail("an ioc order is closed after the step it could not fill in",
                    str(b.get_order(ioc["order_id"])))

    # Accounting over the section; every order submitted is listed.
    if not math.isclose(b.get_positions().get(sym, 0.0), pos0, abs_tol=1e-9 * qty):
        raise fail("the order kinds leave the position where it started",
                    f"{sym} {b.get_positions().get(sym)!r}, started at {pos0!r}")
    fills = [f for f in b.get_fills() if f["fill_id"] not in seen]
    for f in fills:
        _check_fill(f)
    flow = sum((f["notional"] if f["side"] == "sell" else -f["notional"]) - f["fee"]
               for f in fills)
    scale = sum(f["notional"] for f in fills) or 1.0
    if not math.isclose(b.get_cash(), cash0 + flow, rel_tol=rtol, abs_tol=rtol * scale):
        raise fail("cash moves by the fills' notional and fees",
                    f"cash {cash0!r} -> {b.get_cash()!r}, fills say {cash0 + flow!r}")
    ids = {o["order_id"] for o in b.get_orders()} - every
    wanted = {parent["order_id"], *legs, buy["order_id"], oco["order_id"], *oco["legs"],
              trail["order_id"], far["order_id"], ioc["order_id"]}
    if not wanted <= ids:
        raise fail("get_orders() lists every order", f"missing {sorted(wanted - ids)}")
