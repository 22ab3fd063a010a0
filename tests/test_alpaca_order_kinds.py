"""Alpaca's native order kinds through AlpacaBroker, against FakeAlpaca, with alpaca-py.

Each kind is checked at the wire (the JSON Alpaca receives is its native order), in the
fake's book (what Alpaca does with it), and in what the adapter reports (``OrderInfo``
with every key, stable ids through replaces, groups' links).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

pytest.importorskip("alpaca")

from _live import ALPACA_KEY, ALPACA_SECRET, alpaca_broker_fixture, alpaca_fixture
from adapter_scenarios import wait_until

from simbroker import OrderManagingBroker
from simbroker.brokers.alpaca import AlpacaBroker, fill_id
from simbroker.errors import InvalidOrder, ReplaceRejected
from simbroker.testing.checks import check_broker_conformance
from simbroker.testing.fake_alpaca import FakeAlpaca, FakeAlpacaVenue
from simbroker.types import OrderInfo

KEY, SECRET = ALPACA_KEY, ALPACA_SECRET


fake = alpaca_fixture(prices={"AAA": 100.0, "HLD": 100.0}, cash=1_000_000,
                      positions={"HLD": 10.0})
broker = alpaca_broker_fixture()


def trade(fake: FakeAlpaca, broker: AlpacaBroker, price: float | None = None,
          symbol: str = "AAA") -> list[dict[str, Any]]:
    """One market step (at ``price``); returns when the broker has booked its fills."""
    if price is not None:
        fake.set_price(symbol, price)
    made = fake.step()
    assert broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 10)
    return made


def last_post(fake: FakeAlpaca) -> dict[str, Any]:
    body: dict[str, Any] = [b for m, p, b in fake.sent if m == "POST"][-1]
    return body


def pos(broker: AlpacaBroker, symbol: str = "AAA") -> float:
    return broker.get_positions().get(symbol, 0.0)


def status(broker: AlpacaBroker, order_id: str) -> str:
    return broker.get_order(order_id)["status"]


def live(fake: FakeAlpaca, symbol: str = "AAA") -> list[dict[str, Any]]:
    """The fake's open orders of ``symbol`` (what could still trade at Alpaca)."""
    from simbroker.testing.fake_alpaca import OPEN

    return [o for o in fake.orders.values() if o["symbol"] == symbol and o["status"] in OPEN]


KEYS = set(OrderInfo.__annotations__)


# ---------------------------------------------------------------------- brackets
def test_a_bracket_is_one_native_request_whose_legs_wait_then_one_exit_fills(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    parent = broker.submit_order("AAA", "buy", 10, order_class="bracket",
                                 take_profit={"limit_price": 110.0},
                                 stop_loss={"stop_price": 95.0})
    body = last_post(fake)
    assert body["order_class"] == "bracket"
    assert body["type"] == "market"
    assert body["take_profit"] == {"limit_price": 110.0}
    assert body["stop_loss"] == {"stop_price": 95.0}
    assert len([1 for m, _, _ in fake.sent if m == "POST"]) == 1  # one request
    assert set(parent) == KEYS
    assert parent["order_class"] == "bracket"
    tp_id, sl_id = parent["legs"]
    tp, sl = broker.get_order(tp_id), broker.get_order(sl_id)
    assert (tp["order_type"], tp["limit_price"], tp["side"]) == ("limit", 110.0, "sell")
    assert (sl["order_type"], sl["stop_price"], sl["side"]) == ("stop", 95.0, "sell")
    assert tp["parent_id"] == sl["parent_id"] == parent["order_id"]
    assert tp["status"] == sl["status"] == "held"
    assert tp["tif"] == sl["tif"] == "day"

    trade(fake, broker, 100.0)  # the entry fills; the exits go live
    assert status(broker, parent["order_id"]) == "filled"
    assert status(broker, tp_id) == status(broker, sl_id) == "new"
    trade(fake, broker, 104.0)  # between the exits: nothing
    assert pos(broker) == 10.0
    trade(fake, broker, 111.0)
    assert status(broker, tp_id) == "filled"
    sl = broker.get_order(sl_id)
    assert sl["status"] == "canceled"
    assert sl["reason"] == f"canceled: its sibling {tp_id} filled"
    assert pos(broker) == 0
    fills = broker.get_fills()
    assert [(f["order_id"], f["side"], f["qty"], f["price"]) for f in fills] == [
        (parent["order_id"], "buy", 10.0, 100.0), (tp_id, "sell", 10.0, 111.0)]
    listed = broker.get_orders()
    assert [i["order_id"] for i in listed] == [parent["order_id"], tp_id, sl_id]
    assert all(set(i) == KEYS for i in listed)
    assert broker.get_orders(open_only=True) == []


def test_the_stop_exit_fills_on_the_way_down_and_the_take_profit_is_canceled(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    parent = broker.submit_order("AAA", "buy", 10, "limit", limit_price=100.0, tif="gtc",
                                 order_class="bracket", take_profit={"limit_price": 110.0},
                                 stop_loss={"stop_price": 95.0, "limit_price": 94.0})
    assert last_post(fake)["stop_loss"] == {"stop_price": 95.0, "limit_price": 94.0}
    tp_id, sl_id = parent["legs"]
    assert broker.get_order(sl_id)["order_type"] == "stop_limit"
    assert broker.get_order(tp_id)["tif"] == "gtc"  # a gtc parent's legs are gtc
    trade(fake, broker, 99.0)
    trade(fake, broker, 94.5)  # through the stop, inside its limit
    assert status(broker, sl_id) == "filled"
    assert broker.get_order(tp_id)["reason"] == f"canceled: its sibling {sl_id} filled"
    assert pos(broker) == 0
    assert live(fake) == []


def test_a_partially_filled_parent_sizes_its_exits_to_what_it_bought(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.partial_fills = 2
    parent = broker.submit_order("AAA", "buy", 10, "limit", limit_price=100.0,
                                 order_class="bracket", take_profit={"limit_price": 110.0},
                                 stop_loss={"stop_price": 95.0})
    tp_id, sl_id = parent["legs"]
    trade(fake, broker, 100.0)  # 5 of 10
    got = broker.get_order(parent["order_id"])
    assert (got["status"], got["filled_qty"], got["remaining_qty"]) == (
        "partially_filled", 5.0, 5.0)
    for leg in (tp_id, sl_id):
        info = broker.get_order(leg)
        assert (info["qty"], info["status"]) == (5.0, "new")  # live, for the 5 held
    broker.cancel_order(parent["order_id"])  # the rest of the entry is not wanted
    assert status(broker, parent["order_id"]) == "canceled"
    assert status(broker, tp_id) == "new"  # the exits protect what was bought
    fake.partial_fills = 1
    trade(fake, broker, 94.0)
    assert broker.get_order(sl_id)["filled_qty"] == 5.0
    assert status(broker, tp_id) == "canceled"
    assert pos(broker) == 0  # never short


def test_canceling_an_unfilled_parent_cancels_its_held_legs(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    parent = broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0,
                                 order_class="bracket", take_profit={"limit_price": 110.0},
                                 stop_loss={"stop_price": 85.0})
    got = broker.cancel_order(parent["order_id"])
    assert got["status"] == "canceled"
    for leg in parent["legs"]:
        info = broker.get_order(leg)
        assert info["status"] == "canceled"
        assert info["reason"] == f"canceled: its parent {parent['order_id']} is canceled"
    assert live(fake) == []


def test_an_oto_entry_brings_its_one_exit(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    parent = broker.submit_order("AAA", "buy", 10, order_class="oto",
                                 stop_loss={"stop_price": 95.0})
    body = last_post(fake)
    assert body["order_class"] == "oto"
    assert "take_profit" not in body
    (sl_id,) = parent["legs"]
    assert status(broker, sl_id) == "held"
    trade(fake, broker, 100.0)
    assert status(broker, sl_id) == "new"
    trade(fake, broker, 94.0)
    assert status(broker, sl_id) == "filled"
    assert pos(broker) == 0


# ---------------------------------------------------------------------- oco
def test_an_oco_is_an_exit_pair_both_live_and_one_fills(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    limit = broker.submit_order("HLD", "sell", 10, "limit", order_class="oco",
                                take_profit={"limit_price": 110.0},
                                stop_loss={"stop_price": 95.0}, tif="gtc")
    body = last_post(fake)
    assert (body["order_class"], body["type"], body["limit_price"]) == ("oco", "limit",
                                                                       110.0)
    assert body["take_profit"] == {"limit_price": 110.0}
    assert body["stop_loss"] == {"stop_price": 95.0}
    assert limit["order_type"] == "limit"
    (stop_id,) = limit["legs"]
    stop = broker.get_order(stop_id)
    assert (stop["order_type"], stop["side"], stop["parent_id"]) == ("stop", "sell",
                                                                    limit["order_id"])
    assert stop["status"] == "new"  # live at once (Alpaca shows it held at home)
    assert fake.orders[stop_id]["status"] == "held"
    trade(fake, broker, 94.0, "HLD")
    assert status(broker, stop_id) == "filled"
    assert pos(broker, "HLD") == 0
    got = broker.get_order(limit["order_id"])
    assert (got["status"], got["reason"]) == ("canceled",
                                              f"canceled: its sibling {stop_id} filled")
    assert pos(broker) == 0
    assert live(fake, "HLD") == []


def test_canceling_one_order_of_an_oco_cancels_the_pair(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    limit = broker.submit_order("HLD", "sell", 10, "limit", order_class="oco",
                                take_profit={"limit_price": 110.0},
                                stop_loss={"stop_price": 95.0})
    broker.cancel_order(limit["legs"][0])
    assert status(broker, limit["order_id"]) == "canceled"
    assert live(fake, "HLD") == []


# ---------------------------------------------------------------------- trailing stops
def test_a_trailing_stop_ratchets_on_the_market_and_never_loosens(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    order = broker.submit_order("HLD", "sell", 10, "trailing_stop", trail_percent=5.0,
                                tif="gtc")
    body = last_post(fake)
    assert (body["type"], body["trail_percent"]) == ("trailing_stop", 5.0)
    assert "trail_price" not in body
    assert order["trail_percent"] == 5.0
    assert order["trail_amount"] is None
    assert order["stop_price"] == 95.0  # from the price at submission
    oid = order["order_id"]
    trade(fake, broker, 110.0, "HLD")
    assert broker.get_order(oid)["stop_price"] == pytest.approx(104.5)
    trade(fake, broker, 106.0, "HLD")  # down, above the stop: the stop stays
    assert broker.get_order(oid)["stop_price"] == pytest.approx(104.5)
    assert fake.orders[oid]["hwm"] == "110"
    trade(fake, broker, 104.0, "HLD")
    got = broker.get_order(oid)
    assert (got["status"], got["avg_fill_price"]) == ("filled", 104.0)


def test_a_trailing_amount_is_alpacas_trail_price(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    order = broker.submit_order("AAA", "buy", 3, "trailing_stop", trail_amount=2.5)
    assert last_post(fake)["trail_price"] == 2.5
    assert (order["trail_amount"], order["stop_price"]) == (2.5, 102.5)
    trade(fake, broker, 97.0)  # a buy trails the low
    assert broker.get_order(order["order_id"])["stop_price"] == 99.5
    trade(fake, broker, 99.5)
    assert status(broker, order["order_id"]) == "filled"


# ---------------------------------------------------------------------- tif, hours
@pytest.mark.parametrize("tif", ["opg", "cls", "ioc", "fok"])
def test_auction_and_immediate_tifs_are_sent_as_alpacas_and_last_one_step(
        fake: FakeAlpaca, broker: AlpacaBroker, tif: str) -> None:
    rests = broker.submit_order("AAA", "buy", 5, "limit", limit_price=90.0, tif=tif)
    assert last_post(fake)["time_in_force"] == tif
    fills = broker.submit_order("AAA", "buy", 5, "limit", limit_price=101.0, tif=tif)
    trade(fake, broker, 100.0)
    assert status(broker, rests["order_id"]) == "canceled"  # its one chance passed
    assert status(broker, fills["order_id"]) == "filled"


def test_fok_is_all_or_nothing_and_ioc_keeps_what_it_got(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.partial_fills = 2
    fok = broker.submit_order("AAA", "buy", 10, tif="fok")
    ioc = broker.submit_order("AAA", "buy", 10, tif="ioc")
    trade(fake, broker, 100.0)
    assert broker.get_order(fok["order_id"])["filled_qty"] == 0.0
    got = broker.get_order(ioc["order_id"])
    assert (got["status"], got["filled_qty"]) == ("canceled", 5.0)


def test_extended_hours_go_out_on_day_limits_and_are_refused_locally_elsewhere(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    ok = broker.submit_order("AAA", "buy", 1, "limit", limit_price=99.0,
                             extended_hours=True)
    assert last_post(fake)["extended_hours"] is True
    assert ok["extended_hours"] is True
    sent = len(fake.sent)
    for kwargs in ({"order_type": "market"},
                   {"order_type": "limit", "limit_price": 99.0, "tif": "gtc"}):
        with pytest.raises(InvalidOrder, match="extended hours") as info:
            broker.submit_order("AAA", "buy", 1, extended_hours=True, **kwargs)
        assert info.value.field == "extended_hours"
    assert len(fake.sent) == sent  # nothing went out


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"order_type": "trailing_stop", "trail_amount": 1.0, "tif": "ioc"}, "tif"),
    ({"order_type": "stop", "stop_price": 101.0, "order_class": "bracket",
      "take_profit": {"limit_price": 120.0}, "stop_loss": {"stop_price": 90.0}},
     "order_type"),
    ({"qty": 1.5, "order_class": "oto", "stop_loss": {"stop_price": 90.0}}, "qty"),
    ({"qty": 1.5, "tif": "gtc"}, "qty"),
])
def test_what_alpaca_refuses_is_refused_before_sending(
        fake: FakeAlpaca, broker: AlpacaBroker, kwargs: dict[str, Any], field: str) -> None:
    sent = len(fake.sent)
    args = {"qty": 2, **kwargs}
    qty = args.pop("qty")
    with pytest.raises(InvalidOrder, match="Alpaca refuses") as info:
        broker.submit_order("AAA", "buy", qty, **args)
    assert info.value.field == field
    assert len(fake.sent) == sent


def test_alpacas_own_refusal_of_a_bracket_is_an_invalid_order_with_its_words(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    # A market entry's exits are checked against the price at Alpaca, not here.
    with pytest.raises(InvalidOrder, match=r"take_profit.limit_price must be >= "
                                           r"base_price \+ 0.01"):
        broker.submit_order("AAA", "buy", 10, order_class="bracket",
                            take_profit={"limit_price": 99.0},
                            stop_loss={"stop_price": 90.0})
    assert fake.orders == {}


# ---------------------------------------------------------------------- replace
def test_a_replace_keeps_the_order_id_while_alpacas_id_changes(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0,
                                client_order_id="mine-1")
    oid = order["order_id"]
    got = broker.replace_order(oid, limit_price=95.0)
    method, path, body = fake.sent[-1]
    assert (method, path) == ("PATCH", f"/v2/orders/{oid}")
    assert body["limit_price"] == 95.0
    assert "qty" not in body
    assert (got["order_id"], got["client_order_id"], got["limit_price"]) == (
        oid, "mine-1", 95.0)
    old = fake.orders[oid]
    new_id = old["replaced_by"]
    assert old["status"] == "replaced"
    assert fake.orders[new_id]["replaces"] == oid
    assert len(live(fake)) == 1
    # The stream's replaced/new events change nothing of that.
    wait_until(lambda: broker.orders.current_id(oid) == new_id)
    assert broker.get_orders(open_only=True) == [broker.get_order(oid)]
    fake.partial_fills = 2
    trade(fake, broker, 94.0)  # 5 of 10 at 94
    # A price change of a partly filled order still sends what is left: Alpaca would
    # give the replacement the whole 10 otherwise.
    got = broker.replace_order(oid, limit_price=94.5)
    assert fake.sent[-1][2]["qty"] == 5
    assert (got["qty"], got["filled_qty"], got["remaining_qty"]) == (10.0, 5.0, 5.0)
    got = broker.replace_order(oid, qty=12)  # the rest becomes 7
    assert fake.sent[-1][2]["qty"] == 7
    assert (got["qty"], got["filled_qty"], got["remaining_qty"]) == (12.0, 5.0, 7.0)
    fake.partial_fills = 1
    trade(fake, broker, 94.0)
    got = broker.get_order(oid)
    assert (got["status"], got["filled_qty"], got["avg_fill_price"]) == ("filled", 12.0,
                                                                       94.0)
    assert got["limit_price"] == 94.5
    assert {f["order_id"] for f in broker.get_fills()} == {oid}
    assert pos(broker) == 12.0
    assert [i["order_id"] for i in broker.get_orders()] == [oid]


def test_a_replace_that_races_a_fill_is_refused_and_the_fill_stands(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=100.0)
    oid = order["order_id"]
    fake.lose_next_events(1)  # the adapter has not heard of the fill when it replaces
    made = fake.step()
    with pytest.raises(ReplaceRejected) as info:
        broker.replace_order(oid, limit_price=99.0)
    assert info.value.status == "filled"
    assert "422" in str(info.value)
    assert broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 10)
    assert broker.get_order(oid)["status"] == "filled"
    assert pos(broker) == 10.0
    assert [m for m, _, _ in fake.sent].count("PATCH") == 1
    # Once the adapter knows, the refusal is local.
    with pytest.raises(ReplaceRejected, match="it is filled"):
        broker.replace_order(oid, limit_price=99.0)
    assert [m for m, _, _ in fake.sent].count("PATCH") == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"stop_price": 90.0}, "stop_price"),
    ({"trail_amount": 1.0}, "trail_amount"),
    ({"qty": 10.5}, "qty"),
    ({"tif": "sometimes"}, "tif"),
    ({}, "qty"),
])
def test_an_invalid_replace_is_refused_locally(
        fake: FakeAlpaca, broker: AlpacaBroker, kwargs: dict[str, Any], field: str) -> None:
    order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0)
    sent = len(fake.sent)
    with pytest.raises(ReplaceRejected) as info:
        broker.replace_order(order["order_id"], **kwargs)
    assert info.value.field == field
    assert len(fake.sent) == sent
    assert broker.get_order(order["order_id"])["limit_price"] == 90.0


def test_a_trailing_stops_trail_and_a_legs_price_are_replaced(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    trail = broker.submit_order("HLD", "sell", 10, "trailing_stop", trail_amount=5.0)
    with pytest.raises(ReplaceRejected, match="trails by an amount"):
        broker.replace_order(trail["order_id"], trail_percent=2.0)
    got = broker.replace_order(trail["order_id"], trail_amount=2.0)
    assert fake.sent[-1][2]["trail"] == 2.0
    assert (got["trail_amount"], got["stop_price"]) == (2.0, 98.0)
    parent = broker.submit_order("AAA", "buy", 10, order_class="bracket",
                                 take_profit={"limit_price": 110.0},
                                 stop_loss={"stop_price": 95.0})
    trade(fake, broker, 100.0)
    tp_id, sl_id = parent["legs"]
    moved = broker.replace_order(tp_id, limit_price=105.0)
    assert (moved["order_id"], moved["parent_id"], moved["limit_price"]) == (
        tp_id, parent["order_id"], 105.0)
    assert broker.get_order(parent["order_id"])["legs"] == [tp_id, sl_id]
    trade(fake, broker, 105.0)
    assert status(broker, tp_id) == "filled"
    assert status(broker, sl_id) == "canceled"
    assert pos(broker, "HLD") == 10.0
    assert pos(broker) == 0


# ---------------------------------------------------------------------- the SDK itself
def test_alpaca_py_itself_speaks_these_orders_with_the_fake(fake: FakeAlpaca) -> None:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderClass, OrderSide, QueryOrderStatus, TimeInForce
    from alpaca.trading.requests import (
        GetOrdersRequest,
        LimitOrderRequest,
        ReplaceOrderRequest,
        StopLossRequest,
        TakeProfitRequest,
    )

    client = TradingClient(KEY, SECRET, paper=True, url_override=fake.rest_url)
    sent = client.submit_order(LimitOrderRequest(
        symbol="AAA", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
        limit_price=99.0, order_class=OrderClass.BRACKET,
        take_profit=TakeProfitRequest(limit_price=110.0),
        stop_loss=StopLossRequest(stop_price=95.0)))
    assert sent.order_class == OrderClass.BRACKET  # type: ignore[union-attr]
    assert [leg.status.value for leg in sent.legs or []] == ["held", "held"]  # type: ignore[union-attr]
    new = client.replace_order_by_id(sent.id, ReplaceOrderRequest(limit_price=98.0))  # type: ignore[union-attr]
    assert new.replaces == sent.id  # type: ignore[union-attr]
    assert len(new.legs or []) == 2  # type: ignore[union-attr]
    nested = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    assert [o.id for o in nested] == [new.id]  # type: ignore[union-attr]
    flat = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert len(flat) == 3


# ---------------------------------------------------------------------- the contract
def test_the_alpaca_broker_is_an_order_managing_broker(broker: AlpacaBroker) -> None:
    assert isinstance(broker, OrderManagingBroker)


def test_the_alpaca_broker_passes_the_conformance_checks() -> None:
    check_broker_conformance(FakeAlpacaVenue)


def test_legs_seen_from_a_restarted_adapter_keep_their_links(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    parent = broker.submit_order("AAA", "buy", 10, order_class="bracket",
                                 take_profit={"limit_price": 110.0},
                                 stop_loss={"stop_price": 95.0})
    trade(fake, broker, 100.0)
    broker.replace_order(parent["legs"][1], stop_price=96.0)
    again = AlpacaBroker.for_fake(fake)
    try:
        assert again.get_orders() == broker.get_orders()
        got = again.get_order(parent["legs"][1])
        assert (got["stop_price"], got["parent_id"]) == (96.0, parent["order_id"])
    finally:
        again.close()


def test_concurrent_replaces_of_one_order_leave_exactly_one_live(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0)
    errors: list[BaseException] = []

    def move(price: float) -> None:
        try:
            broker.replace_order(order["order_id"], limit_price=price)
        except ReplaceRejected as exc:
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(80.0 + i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(live(fake)) == 1
    got = broker.get_order(order["order_id"])
    assert got["status"] == "new"
    assert got["limit_price"] == float(live(fake)[0]["limit_price"])
