"""IBKR native orders (issue 18) with the real client against FakeTWS: each kind goes out
as IB's own order (asserted on the decoded placeOrder fields the fake read), fills as TWS
fills it, and reports the group links, trails and remaining quantities in ``OrderInfo``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from _live import HAS_IB, ib_broker_fixture, ib_error_guard, tws_fixture
from hypothesis import given
from hypothesis import strategies as st

if not HAS_IB:
    pytest.skip("needs ib_async or ib_insync", allow_module_level=True)

from adapter_scenarios import wait_until

from simbroker.broker import OrderManagingBroker
from simbroker.brokers.ibkr import IBKRBroker
from simbroker.brokers.ibkr.orders import OrderEntry
from simbroker.brokers.ibkr.translate import ib_order_of, kind_of
from simbroker.errors import InvalidOrder, OrderRejected, ReplaceRejected
from simbroker.testing.fake_tws import FakeTWS
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log

ALLOWED = ("Error 202", "Error 201", "Error 104", "Error 103", "Error 10147",
           "Error 10148", "Peer closed connection", "API connection failed")


no_decoder_errors = ib_error_guard(contains=ALLOWED)
tws = tws_fixture(prices={"AAA": 100.0}, versions=(157, 178))
broker = ib_broker_fixture(timeout=3.0, reconnect_backoff=(1.0, 30.0), ready_wait=None)


def step(tws: FakeTWS, broker: IBKRBroker) -> None:
    made = tws.step()
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)


def sent(tws: FakeTWS, ref: str) -> list[dict[str, Any]]:
    """The placeOrder messages TWS read for this orderRef."""
    return [p for p in tws.placed if p["order_ref"] == ref]


def status(broker: IBKRBroker, oid: str) -> str:
    return broker.get_order(oid)["status"]


_PRICE = st.floats(0.01, 10_000, allow_nan=False)


@st.composite
def orders(draw: Any) -> OrderEntry:
    """An order of any kind the adapter places (valid as Order.create takes it)."""
    kind = draw(st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop"]))
    tifs = ["day", "gtc", "ioc", "fok"] + (["opg", "cls"] if kind in ("market", "limit")
                                           else [])
    pct = kind == "trailing_stop" and draw(st.booleans())
    return OrderEntry(
        order_id="x", client_order_id="x", symbol="AAA",
        side=draw(st.sampled_from(["buy", "sell"])), qty=draw(st.floats(1, 1e6)),
        order_type=kind, tif=draw(st.sampled_from(tifs)),
        limit_price=draw(_PRICE) if kind in ("limit", "stop_limit") else None,
        stop_price=draw(_PRICE) if kind in ("stop", "stop_limit") else None,
        submitted_at=datetime.now(timezone.utc),
        trail_amount=draw(_PRICE) if kind == "trailing_stop" and not pct else None,
        trail_percent=draw(st.floats(0.01, 99.0)) if pct else None,
        extended_hours=draw(st.booleans()))


@given(orders())
def test_every_order_kind_maps_to_ib_and_back(entry: OrderEntry) -> None:
    """What the adapter sends is read back as the same order (type, tif, prices, trail,
    extended hours), as after a restart from TWS's records."""
    o = ib_order_of(entry, 7)
    back = kind_of(o)
    assert back == {"order_type": entry.order_type, "tif": entry.tif,
                    "limit_price": entry.limit_price, "stop_price": entry.stop_price,
                    "trail_amount": entry.trail_amount, "trail_percent": entry.trail_percent,
                    "extended_hours": entry.extended_hours}
    assert o.orderType in ("MKT", "LMT", "STP", "STP LMT", "TRAIL", "MOC", "LOC")
    assert o.tif in ("DAY", "GTC", "IOC", "FOK", "OPG")


def test_the_adapter_is_an_order_managing_broker(broker: IBKRBroker) -> None:
    assert isinstance(broker, OrderManagingBroker)
    info = broker.submit_order("AAA", "buy", 1, "limit", limit_price=50.0)
    keys = {"order_class", "parent_id", "legs", "trail_amount", "trail_percent",
            "extended_hours", "remaining_qty"}
    assert keys <= set(info)
    assert (info["order_class"], info["parent_id"], info["legs"], info["remaining_qty"],
            info["extended_hours"]) == ("simple", None, [], 1.0, False)


def test_bracket_goes_out_as_ib_parent_and_children_and_fills_one_exit(
        tws: FakeTWS, broker: IBKRBroker) -> None:
    parent = broker.submit_order("AAA", "buy", 10, "limit", limit_price=100.0,
                                 order_class="bracket", take_profit={"limit_price": 110.0},
                                 stop_loss={"stop_price": 95.0}, client_order_id="br")
    assert parent["legs"] == ["br.tp", "br.sl"]
    assert parent["order_class"] == "bracket"
    p, tp, sl = sent(tws, "br")[0], sent(tws, "br.tp")[0], sent(tws, "br.sl")[0]
    assert (p["order_type"], p["lmt"], p["action"], p["transmit"], p["parent_id"]) == (
        "LMT", 100.0, "BUY", False, 0)
    assert (tp["order_type"], tp["lmt"], tp["action"], tp["transmit"], tp["parent_id"]) == (
        "LMT", 110.0, "SELL", False, p["order_id"])
    assert (sl["order_type"], sl["aux"], sl["action"], sl["transmit"], sl["parent_id"]) == (
        "STP", 95.0, "SELL", True, p["order_id"])
    # Children wait for their parent.
    for leg in ("br.tp", "br.sl"):
        info = broker.get_order(leg)
        assert (info["status"], info["parent_id"], info["side"], info["order_class"]) == (
            "held", "br", "sell", "bracket")
    assert {o["order_id"] for o in broker.get_orders(open_only=True)} == {
        "br", "br.tp", "br.sl"}
    tws.set_price("AAA", 99.0)
    step(tws, broker)  # the parent fills; children are released
    wait_until(lambda: status(broker, "br.sl") == "new")
    assert status(broker, "br") == "filled"
    assert status(broker, "br.tp") == "new"
    tws.set_price("AAA", 94.0)
    step(tws, broker)  # the stop fills, the take-profit is canceled by TWS
    wait_until(lambda: status(broker, "br.tp") == "canceled")
    tp_info = broker.get_order("br.tp")
    assert "br.sl" in str(tp_info["reason"])
    assert broker.get_order("br.sl")["filled_qty"] == 10
    assert broker.get_positions() == {}
    assert Counter(o.order_ref for o in tws.orders.values()) == Counter(
        {"br": 1, "br.tp": 1, "br.sl": 1})


def test_bracket_with_stop_limit_exit_and_a_partially_filled_parent(
        tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.partial_fills = 2
    broker.submit_order("AAA", "buy", 10, order_class="bracket",
                        take_profit={"limit_price": 120.0},
                        stop_loss={"stop_price": 90.0, "limit_price": 89.0},
                        client_order_id="pp")
    assert sent(tws, "pp.sl")[0]["order_type"] == "STP LMT"
    assert sent(tws, "pp.sl")[0]["lmt"] == 89.0
    step(tws, broker)  # 5 of 10
    wait_until(lambda: status(broker, "pp.tp") == "new")
    parent = broker.get_order("pp")
    assert (parent["status"], parent["filled_qty"], parent["remaining_qty"]) == (
        "partially_filled", 5.0, 5.0)
    # sized to what the parent filled
    wait_until(lambda: [broker.get_order(x)["qty"] for x in ("pp.tp", "pp.sl")] == [5, 5])
    assert broker.cancel_order("pp")["status"] == "canceled"  # the rest of the entry
    assert status(broker, "pp.sl") == "new"  # the children still protect the 5 shares
    tws.partial_fills = 1
    tws.set_price("AAA", 121.0)
    step(tws, broker)
    wait_until(lambda: status(broker, "pp.sl") == "canceled")
    assert broker.get_order("pp.tp")["filled_qty"] == 5.0
    assert broker.get_positions() == {}


def test_canceling_an_unfilled_parent_cancels_its_children(tws: FakeTWS,
                                                           broker: IBKRBroker) -> None:
    broker.submit_order("AAA", "buy", 3, "limit", limit_price=90.0, order_class="bracket",
                        take_profit={"limit_price": 110.0}, stop_loss={"stop_price": 80.0},
                        client_order_id="cx")
    assert broker.cancel_order("cx")["status"] == "canceled"
    wait_until(lambda: [status(broker, x) for x in ("cx.tp", "cx.sl")] == ["canceled"] * 2)
    for leg in ("cx.tp", "cx.sl"):
        assert "parent cx" in str(broker.get_order(leg)["reason"])
    assert broker.get_orders(open_only=True) == []


def test_oto_is_a_parent_with_one_transmitting_child(tws: FakeTWS,
                                                     broker: IBKRBroker) -> None:
    info = broker.submit_order("AAA", "buy", 4, order_class="oto",
                               stop_loss={"stop_price": 97.0}, client_order_id="oto")
    assert info["legs"] == ["oto.sl"]
    assert [p["transmit"] for p in tws.placed] == [False, True]
    assert sent(tws, "oto.sl")[0]["parent_id"] == sent(tws, "oto")[0]["order_id"]
    assert status(broker, "oto.sl") == "held"
    step(tws, broker)
    wait_until(lambda: status(broker, "oto.sl") == "new")
    tws.set_price("AAA", 96.0)
    step(tws, broker)
    assert status(broker, "oto.sl") == "filled"
    assert broker.get_positions() == {}


def test_oco_is_an_oca_group_of_type_1(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.positions["AAA"] = 5.0
    info = broker.submit_order("AAA", "sell", 5, "limit", order_class="oco",
                               take_profit={"limit_price": 105.0},
                               stop_loss={"stop_price": 95.0}, client_order_id="oc")
    assert (info["limit_price"], info["legs"], info["status"]) == (105.0, ["oc.sl"], "new")
    lim, stp = sent(tws, "oc")[0], sent(tws, "oc.sl")[0]
    assert lim["oca_group"] == stp["oca_group"] != ""
    assert (lim["oca_type"], stp["oca_type"], lim["transmit"], stp["transmit"]) == (
        1, 1, True, True)
    assert (stp["order_type"], stp["action"], stp["parent_id"]) == ("STP", "SELL", 0)
    assert broker.get_order("oc.sl")["status"] == "new"  # both legs live at once
    assert broker.get_order("oc.sl")["parent_id"] is None
    tws.set_price("AAA", 106.0)
    step(tws, broker)
    wait_until(lambda: status(broker, "oc.sl") == "canceled")
    assert status(broker, "oc") == "filled"
    assert "oc" in str(broker.get_order("oc.sl")["reason"])


def test_canceling_an_oco_cancels_both_legs(tws: FakeTWS, broker: IBKRBroker) -> None:
    broker.submit_order("AAA", "sell", 5, "limit", order_class="oco",
                        take_profit={"limit_price": 105.0}, stop_loss={"stop_price": 95.0},
                        client_order_id="oc2")
    assert broker.cancel_order("oc2")["status"] == "canceled"
    wait_until(lambda: status(broker, "oc2.sl") == "canceled")


@pytest.mark.parametrize(("trail", "first", "after"), [
    ({"trail_amount": 2.0}, 98.0, 103.0), ({"trail_percent": 5.0}, 95.0, 99.75)])
def test_trailing_stop_is_ib_trail_and_ratchets_on_the_market(
        tws: FakeTWS, broker: IBKRBroker, trail: dict[str, float], first: float,
        after: float) -> None:
    tws.positions["AAA"] = 3.0
    info = broker.submit_order("AAA", "sell", 3, "trailing_stop", client_order_id="tr",
                               **trail)  # type: ignore[arg-type]
    assert (info["order_type"], info["trail_amount"], info["trail_percent"]) == (
        "trailing_stop", trail.get("trail_amount"), trail.get("trail_percent"))
    wire = sent(tws, "tr")[0]
    assert wire["order_type"] == "TRAIL"
    assert (wire["aux"], wire["trail_pct"]) == (trail.get("trail_amount"),
                                                trail.get("trail_percent"))
    order = next(iter(tws.orders.values()))
    assert order.trail_stop == pytest.approx(first)
    for px in (103.0, 105.0, 104.0):  # up: the stop follows; down: it stays
        tws.set_price("AAA", px)
        step(tws, broker)
    assert order.trail_stop == pytest.approx(after)
    assert status(broker, "tr") == "new"
    tws.set_price("AAA", after - 0.5)
    step(tws, broker)
    assert status(broker, "tr") == "filled"
    assert broker.get_fills()[-1]["price"] == after - 0.5


def test_time_in_force_and_auction_orders_map_to_ib(tws: FakeTWS, broker: IBKRBroker) -> None:
    cases = [("opg", "market", None, "MKT", "OPG"), ("opg", "limit", 99.0, "LMT", "OPG"),
             ("cls", "market", None, "MOC", "DAY"), ("cls", "limit", 101.0, "LOC", "DAY"),
             ("ioc", "limit", 99.0, "LMT", "IOC"), ("fok", "limit", 101.0, "LMT", "FOK")]
    for i, (tif, kind, lmt, ib_type, ib_tif) in enumerate(cases):
        info = broker.submit_order("AAA", "buy", 1, kind, limit_price=lmt, tif=tif,
                                   client_order_id=f"t{i}")
        assert (info["tif"], info["order_type"]) == (tif, kind)
        wire = sent(tws, f"t{i}")[0]
        assert (wire["order_type"], wire["tif"]) == (ib_type, ib_tif)
    step(tws, broker)  # ioc (99 < 100: no fill) is canceled, fok (101) fills
    assert (status(broker, "t4"), status(broker, "t5")) == ("canceled", "filled")
    assert status(broker, "t0") == "new"  # auctions wait for their auction
    made = tws.auction("open")
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)
    wait_until(lambda: status(broker, "t1") == "canceled")  # 100 > 99: the LOO misses
    assert status(broker, "t0") == "filled"
    tws.set_price("AAA", 100.5)
    made = tws.auction("close")
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)
    assert (status(broker, "t2"), status(broker, "t3")) == ("filled", "filled")
    assert broker.get_order("t3")["avg_fill_price"] == 100.5


def test_extended_hours_is_outside_rth(tws: FakeTWS, broker: IBKRBroker) -> None:
    info = broker.submit_order("AAA", "buy", 1, "limit", limit_price=99.0,
                               extended_hours=True, client_order_id="x1")
    assert info["extended_hours"] is True
    assert sent(tws, "x1")[0]["outside_rth"] is True
    broker.submit_order("AAA", "buy", 1, "limit", limit_price=99.0, client_order_id="x2")
    assert sent(tws, "x2")[0]["outside_rth"] is False
    with pytest.raises(InvalidOrder, match="extended_hours"):
        broker.submit_order("AAA", "buy", 1, extended_hours="yes")  # type: ignore[arg-type]


def test_leg_suffixes_are_reserved(broker: IBKRBroker) -> None:
    with pytest.raises(InvalidOrder, match="client_order_id"):
        broker.submit_order("AAA", "buy", 1, client_order_id="mine.sl")


def test_replace_modifies_the_same_ib_order(tws: FakeTWS, broker: IBKRBroker,
                                            tmp_path: Any) -> None:
    info = broker.submit_order("AAA", "buy", 5, "limit", limit_price=90.0,
                               client_order_id="rp")
    new = broker.replace_order("rp", qty=7, limit_price=91.5)
    assert (new["order_id"], new["qty"], new["limit_price"], new["status"]) == (
        "rp", 7.0, 91.5, "new")
    assert info["order_id"] == new["order_id"]
    wires = sent(tws, "rp")
    assert len(wires) == 2
    assert wires[0]["order_id"] == wires[1]["order_id"]
    assert (wires[1]["qty"], wires[1]["lmt"]) == (7.0, 91.5)
    assert len(tws.orders) == 1
    held = next(iter(tws.orders.values()))
    assert (held.qty, held.lmt) == (7.0, 91.5)
    with pytest.raises(ReplaceRejected) as err:
        broker.replace_order("rp", stop_price=80.0)  # a limit order takes no stop
    assert err.value.field == "stop_price"
    with pytest.raises(ReplaceRejected):
        broker.replace_order("rp")
    tws.set_price("AAA", 91.0)
    step(tws, broker)
    n = len(tws.placed)
    with pytest.raises(ReplaceRejected) as err:  # final here: nothing is sent
        broker.replace_order("rp", limit_price=92.0)
    assert err.value.status == "filled"
    assert len(tws.placed) == n


def test_replace_a_trailing_stop_and_a_bracket_child(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.positions["AAA"] = 2.0
    broker.submit_order("AAA", "sell", 2, "trailing_stop", trail_amount=2.0,
                        client_order_id="tt")
    got = broker.replace_order("tt", trail_percent=1.0)
    assert (got["trail_amount"], got["trail_percent"]) == (None, 1.0)
    assert sent(tws, "tt")[-1]["trail_pct"] == 1.0
    assert next(iter(tws.orders.values())).trail_stop == pytest.approx(99.0)
    broker.submit_order("AAA", "buy", 2, "limit", limit_price=90.0, order_class="bracket",
                        take_profit={"limit_price": 110.0}, stop_loss={"stop_price": 80.0},
                        client_order_id="bc")
    moved = broker.replace_order("bc.sl", stop_price=85.0)
    assert (moved["stop_price"], moved["status"]) == (85.0, "held")
    assert sent(tws, "bc.sl")[-1]["transmit"] is True


def test_replace_racing_a_fill_is_refused_with_tws_error_104(tws: FakeTWS,
                                                             broker: IBKRBroker) -> None:
    broker.submit_order("AAA", "buy", 5, "limit", limit_price=100.0, client_order_id="race")
    tws.inject("fill_on_modify")  # TWS fills it just before it reads the modification
    with pytest.raises(ReplaceRejected, match="104") as err:
        broker.replace_order("race", limit_price=99.0)
    assert err.value.status == "filled"
    wait_until(lambda: status(broker, "race") == "filled")
    info = broker.get_order("race")
    assert (info["limit_price"], info["filled_qty"]) == (100.0, 5.0)  # unchanged
    assert len(broker.get_fills()) == 1
    assert broker.get_positions() == {"AAA": 5.0}


def test_refused_modification_leaves_the_order_working(tws: FakeTWS,
                                                       broker: IBKRBroker) -> None:
    broker.submit_order("AAA", "buy", 5, "limit", limit_price=90.0, client_order_id="rf")
    tws.reject_modify = 201
    with pytest.raises(ReplaceRejected, match="201"):
        broker.replace_order("rf", limit_price=91.0)
    tws.reject_modify = 0
    assert broker.get_order("rf")["status"] == "new"
    assert broker.get_order("rf")["limit_price"] == 90.0
    assert broker.replace_order("rf", limit_price=92.0)["limit_price"] == 92.0
    tws.set_price("AAA", 92.0)
    step(tws, broker)
    assert status(broker, "rf") == "filled"


def test_a_rejected_leg_takes_its_group_with_it(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("reject", skip=2)  # the stop-loss, which would transmit the group
    with pytest.raises(OrderRejected, match="201"):
        broker.submit_order("AAA", "buy", 1, "limit", limit_price=90.0,
                            order_class="bracket", take_profit={"limit_price": 110.0},
                            stop_loss={"stop_price": 80.0}, client_order_id="rj")
    for oid in ("rj", "rj.tp", "rj.sl"):
        assert status(broker, oid) == "rejected"
    wait_until(lambda: all(o.status == "Cancelled" for o in tws.orders.values()))
    assert broker.get_orders(open_only=True) == []


def test_group_records_in_the_trade_log(tws: FakeTWS, tmp_path: Any) -> None:
    with TradeLog(tmp_path / "log.jsonl") as tlog:
        b = IBKRBroker("127.0.0.1", tws.port, 1, timeout=3.0, trade_log=tlog)
        try:
            b.submit_order("AAA", "buy", 2, order_class="bracket",
                           take_profit={"limit_price": 110.0},
                           stop_loss={"stop_price": 90.0}, client_order_id="lg")
            step(tws, b)
            wait_until(lambda: status(b, "lg.tp") == "new")
            b.replace_order("lg.tp", limit_price=111.0)
            tws.set_price("AAA", 112.0)
            step(tws, b)
            wait_until(lambda: status(b, "lg.sl") == "canceled")
        finally:
            b.close()
    recs = read_trade_log(tmp_path / "log.jsonl")
    subs = {r["order_id"]: r for r in recs if r["event"] == "submitted"}
    assert list(subs) == ["lg"]  # one record per group, naming its legs
    assert (subs["lg"]["legs"], subs["lg"]["order_class"]) == (["lg.tp", "lg.sl"], "bracket")
    assert (subs["lg"]["take_profit"], subs["lg"]["stop_loss"]) == (
        {"limit_price": 110.0}, {"stop_price": 90.0})
    assert [r["order_id"] for r in recs if r["event"] == "activated"] == ["lg.tp", "lg.sl"]
    assert [r["limit_price"] for r in recs if r["event"] == "replaced"] == [111.0]
    canceled = [r for r in recs if r["event"] == "canceled"]
    assert [r["order_id"] for r in canceled] == ["lg.sl"]
    assert "lg.tp" in canceled[0]["reason"]
    state = replay_trade_log(tmp_path / "log.jsonl")
    assert state.open_orders == {}
    assert state.positions == {}


def test_canceling_a_child_of_a_filled_bracket_cancels_only_it(tws: FakeTWS,
                                                               broker: IBKRBroker) -> None:
    broker.submit_order("AAA", "buy", 2, order_class="bracket",
                        take_profit={"limit_price": 110.0}, stop_loss={"stop_price": 90.0},
                        client_order_id="ch")
    assert [o["order_id"] for o in broker.get_orders()] == ["ch", "ch.tp", "ch.sl"]
    step(tws, broker)
    wait_until(lambda: status(broker, "ch.tp") == "new")
    assert broker.cancel_order("ch.tp")["status"] == "canceled"
    assert broker.get_order("ch.tp")["reason"] is None  # the caller's own cancel
    assert (status(broker, "ch"), status(broker, "ch.sl")) == ("filled", "new")
    tws.set_price("AAA", 89.0)
    step(tws, broker)
    assert status(broker, "ch.sl") == "filled"
    assert broker.get_positions() == {}
