"""IBKR groups (brackets, OCO) under the faults FakeTWS injects: never a duplicated or
lost leg, and never a live parent without its stop.

Each test counts, at the fake (the venue's truth), the orders per orderRef that TWS works
or worked (an untransmitted order it held and that was canceled never worked).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from _live import HAS_IB, connect_ib, ib_broker_fixture, ib_error_guard, tws_fixture

if not HAS_IB:
    pytest.skip("needs ib_async or ib_insync", allow_module_level=True)

from adapter_scenarios import wait_until

from simbroker.brokers.ibkr import IBKRBroker
from simbroker.brokers.ibkr.orders import NOT_RECEIVED
from simbroker.errors import BrokerConnectionError, OrderStatusUnknown
from simbroker.testing.fake_tws import FakeTWS
from simbroker.tradelog import TradeLog

EXPECTED = ("Error 202", "Error 201", "Error 10147", "Error 10148", "Peer closed connection",
            "API connection failed", "request timed out", "Socket connection broken")
BRACKET = {"order_class": "bracket", "take_profit": {"limit_price": 110.0},
           "stop_loss": {"stop_price": 95.0}}
LEGS = ("br", "br.tp", "br.sl")


no_decoder_errors = ib_error_guard(contains=EXPECTED)
tws = tws_fixture(prices={"AAA": 100.0}, versions=None)
broker = ib_broker_fixture()


def connect(tws: FakeTWS, client_id: int = 1, **kw: Any) -> IBKRBroker:
    return connect_ib(tws, client_id, **kw)


def worked(tws: FakeTWS) -> Counter[str]:
    """Orders per orderRef that TWS transmitted (works or worked)."""
    return Counter(o.order_ref for o in tws.orders.values() if o.worked)


def step(tws: FakeTWS, broker: IBKRBroker) -> None:
    made = tws.step()
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)


def reconnected(broker: IBKRBroker, n: int = 1) -> None:
    wait_until(lambda: broker.reconnects >= n and broker.state.value == "ready", 15)


def status(broker: IBKRBroker, oid: str) -> str:
    return broker.get_order(oid)["status"]


def place_bracket(broker: IBKRBroker) -> dict[str, Any]:
    return dict(broker.submit_order("AAA", "buy", 10, "limit", limit_price=100.0,
                                    client_order_id="br", **BRACKET))  # type: ignore[arg-type]


def exits_fill_once(tws: FakeTWS, broker: IBKRBroker) -> None:
    """The parent fills, the stop fills, the take-profit is canceled; flat after."""
    tws.set_price("AAA", 99.0)
    step(tws, broker)
    wait_until(lambda: status(broker, "br.sl") == "new")
    tws.set_price("AAA", 94.0)
    step(tws, broker)
    wait_until(lambda: status(broker, "br.tp") == "canceled")
    assert [status(broker, x) for x in LEGS] == ["filled", "canceled", "filled"]
    assert broker.get_positions() == {}
    assert [f["order_id"] for f in broker.get_fills()] == ["br", "br.sl"]
    assert worked(tws) == Counter(dict.fromkeys(LEGS, 1))


def test_drop_before_tws_reads_the_parent(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("drop_before_read")
    with pytest.raises((OrderStatusUnknown, BrokerConnectionError)):
        place_bracket(broker)
    reconnected(broker)
    for oid in LEGS:
        info = broker.get_order(oid)
        assert (info["status"], info["reason"]) == ("rejected", NOT_RECEIVED)
    assert worked(tws) == Counter()
    assert place_bracket(broker)["status"] == "new"  # resubmitting places it, once
    assert place_bracket(broker)["legs"] == ["br.tp", "br.sl"]
    exits_fill_once(tws, broker)


@pytest.mark.parametrize("skip", [1, 2], ids=["before-take-profit", "before-stop-loss"])
def test_drop_between_legs_never_leaves_a_parent_without_its_stop(
        tws: FakeTWS, broker: IBKRBroker, skip: int) -> None:
    """TWS holds the legs it read untransmitted (the stop-loss transmits the group):
    nothing works. On reconnect the group is not received (resubmit places it) and the
    untransmitted legs are canceled at TWS, so no one can transmit them by hand."""
    tws.inject("drop_before_read", skip=skip)
    with pytest.raises((OrderStatusUnknown, BrokerConnectionError)):
        place_bracket(broker)
    held = [o for o in tws.orders.values() if o.order_ref == "br"]
    assert [o.status for o in held] == ["Untransmitted"]
    tws.set_price("AAA", 99.0)
    assert tws.step() == []  # an untransmitted parent never trades
    reconnected(broker)
    assert [status(broker, x) for x in LEGS] == ["rejected"] * 3
    wait_until(lambda: all(o.status == "Cancelled" for o in held))
    assert worked(tws) == Counter()
    tws.set_price("AAA", 100.0)
    assert place_bracket(broker)["status"] == "new"
    exits_fill_once(tws, broker)


def test_drop_after_tws_read_the_last_leg_before_the_ack(tws: FakeTWS,
                                                         broker: IBKRBroker) -> None:
    tws.inject("drop_after_read", skip=2)  # TWS has the whole group; no answer came
    with pytest.raises(OrderStatusUnknown) as err:
        place_bracket(broker)
    assert err.value.order_id == "br"
    reconnected(broker)
    wait_until(lambda: status(broker, "br") == "new")
    assert [status(broker, x) for x in LEGS] == ["new", "held", "held"]
    again = place_bracket(broker)  # answered from IB's records, never placed twice
    assert (again["order_id"], again["legs"]) == ("br", ["br.tp", "br.sl"])
    exits_fill_once(tws, broker)


def test_drop_after_the_ack_of_a_bracket(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("drop_after_ack", skip=2)
    placed = place_bracket(broker)
    assert placed["status"] == "new"
    reconnected(broker)
    assert [status(broker, x) for x in LEGS] == ["new", "held", "held"]
    exits_fill_once(tws, broker)


def test_drop_during_a_childs_fill_books_it_once(tws: FakeTWS, broker: IBKRBroker) -> None:
    place_bracket(broker)
    tws.set_price("AAA", 99.0)
    step(tws, broker)
    wait_until(lambda: status(broker, "br.sl") == "new")
    tws.set_price("AAA", 94.0)
    tws.inject("drop_during_fill")
    made = tws.step()  # the stop's orderStatus and execDetails, then the socket closes
    reconnected(broker)
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)
    wait_until(lambda: status(broker, "br.tp") == "canceled")
    assert "br.sl" in str(broker.get_order("br.tp")["reason"])
    fills = broker.get_fills()
    assert len(fills) == len({f["fill_id"] for f in fills}) == 2
    assert broker.get_positions() == {}
    assert broker.get_cash() == pytest.approx(tws.cash)
    assert worked(tws) == Counter(dict.fromkeys(LEGS, 1))


@pytest.mark.parametrize("fault", ["duplicate", "exec_before_status"])
def test_duplicate_and_reordered_events(tws: FakeTWS, broker: IBKRBroker, fault: str) -> None:
    if fault == "duplicate":
        tws.duplicate_events = True
    else:
        tws.exec_before_status = True
    place_bracket(broker)
    assert [status(broker, x) for x in LEGS] == ["new", "held", "held"]
    tws.partial_fills = 2
    tws.set_price("AAA", 99.0)
    step(tws, broker)
    wait_until(lambda: broker.get_order("br.sl")["qty"] == 5.0)
    step(tws, broker)
    wait_until(lambda: broker.get_order("br.sl")["qty"] == 10.0)
    tws.partial_fills = 1
    tws.set_price("AAA", 111.0)
    step(tws, broker)
    wait_until(lambda: status(broker, "br.sl") == "canceled")
    assert [status(broker, x) for x in LEGS] == ["filled", "filled", "canceled"]
    assert sum(f["qty"] for f in broker.get_fills() if f["order_id"] == "br.tp") == 10
    assert broker.get_positions() == {}
    assert worked(tws) == Counter(dict.fromkeys(LEGS, 1))


@pytest.mark.parametrize("parent_filled", [False, True], ids=["held", "live"])
def test_restart_with_a_resting_bracket(tws: FakeTWS, tmp_path: Any,
                                        parent_filled: bool) -> None:
    with TradeLog(tmp_path / "log.jsonl") as tlog:
        first = connect(tws, 3, trade_log=tlog)
        place = first.submit_order("AAA", "buy", 10, "limit", limit_price=100.0,
                                   tif="gtc", client_order_id="br",
                                   **BRACKET)  # type: ignore[arg-type]
        assert place["tif"] == "gtc"
        if parent_filled:
            tws.set_price("AAA", 99.0)
            step(tws, first)
        first.close()
    wait_until(lambda: 3 not in tws.clients)
    for log in (True, False):  # rebuilt from the trade log, or from IB's records alone
        with TradeLog(tmp_path / ("log.jsonl" if log else f"other{parent_filled}.jsonl")) \
                as tlog:
            second = connect(tws, 3, trade_log=tlog)
            try:
                head = second.get_order("br")
                assert (head["order_class"], head["legs"]) == ("bracket", ["br.tp", "br.sl"])
                for leg in ("br.tp", "br.sl"):
                    info = second.get_order(leg)
                    assert (info["parent_id"], info["order_class"], info["tif"]) == (
                        "br", "bracket", "gtc")
                    assert info["status"] == ("new" if parent_filled else "held")
            finally:
                second.close()
            wait_until(lambda: 3 not in tws.clients)
    third = connect(tws, 3)
    try:
        tws.set_price("AAA", 99.0)
        step(tws, third)
        tws.set_price("AAA", 111.0)
        step(tws, third)
        wait_until(lambda: status(third, "br.sl") == "canceled")
        assert [status(third, x) for x in LEGS] == ["filled", "filled", "canceled"]
        assert third.get_positions() == {}
        assert worked(tws) == Counter(dict.fromkeys(LEGS, 1))
    finally:
        third.close()


def test_oco_drop_between_legs_cancels_the_lone_leg(tws: FakeTWS,
                                                    broker: IBKRBroker) -> None:
    """Both OCO legs transmit on their own: a drop after the first leaves it working
    alone. On reconnect it is canceled (no leg of a group works alone)."""
    tws.positions["AAA"] = 5.0
    tws.inject("drop_before_read", skip=1)
    with pytest.raises((OrderStatusUnknown, BrokerConnectionError)):
        broker.submit_order("AAA", "sell", 5, "limit", order_class="oco",
                            take_profit={"limit_price": 105.0},
                            stop_loss={"stop_price": 95.0}, client_order_id="oc")
    reconnected(broker)
    wait_until(lambda: status(broker, "oc") == "canceled")
    assert "oc.sl" in str(broker.get_order("oc")["reason"])
    assert status(broker, "oc.sl") == "rejected"
    assert [o.status for o in tws.orders.values()] == ["Cancelled"]
    tws.set_price("AAA", 106.0)
    assert tws.step() == []


@pytest.mark.parametrize("fault", ["drop_before_read", "drop_after_read"])
def test_drop_during_a_replace_shows_what_tws_has(tws: FakeTWS, broker: IBKRBroker,
                                                  fault: str) -> None:
    broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0, client_order_id="rp")
    tws.inject(fault)
    with pytest.raises((OrderStatusUnknown, BrokerConnectionError)):
        broker.replace_order("rp", limit_price=91.0, qty=12)
    reconnected(broker)
    at_tws = next(iter(tws.orders.values()))
    wait_until(lambda: broker.get_order("rp")["limit_price"] == at_tws.lmt)
    info = broker.get_order("rp")
    assert (info["qty"], info["limit_price"]) == (
        (12.0, 91.0) if fault == "drop_after_read" else (10.0, 90.0))
    assert broker.replace_order("rp", limit_price=92.0)["limit_price"] == 92.0
    assert worked(tws) == Counter({"rp": 1})
