"""IBKRBroker under the faults FakeTWS injects: never a lost, duplicated or aliased order.

Each test injects one fault with the real client library on a real loopback socket and
counts, at the fake (the venue's truth), the orders carrying each client order id.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from _live import HAS_IB, connect_ib, ib_broker_fixture, ib_error_guard, tws_fixture
from hypothesis import given
from hypothesis import strategies as st

if not HAS_IB:
    pytest.skip("needs ib_async or ib_insync", allow_module_level=True)

from adapter_scenarios import wait_until

from simbroker.brokers.ibkr import IBKRBroker
from simbroker.brokers.ibkr.connection import backoff_delay
from simbroker.brokers.ibkr.orders import NOT_RECEIVED
from simbroker.errors import (
    BrokerConnectionError,
    BrokerTimeout,
    OrderRejected,
    OrderStatusUnknown,
    SimbrokerError,
)
from simbroker.testing.fake_tws import FakeTWS
from simbroker.tradelog import TradeLog

# What the client library logs at ERROR level when the faults do what they should.
EXPECTED = ("Error 202", "Error 201", "Peer closed connection", "API connection failed",
            "request timed out", "Error 1100", "Socket connection broken",
            "completed orders request timed out")


no_decoder_errors = ib_error_guard(contains=EXPECTED)
tws = tws_fixture(prices={"AAA": 100.0, "HELD": 50.0}, versions=None,
                  positions={"HELD": 25.0})
broker = ib_broker_fixture()


def connect(tws: FakeTWS, client_id: int = 1, **kw: Any) -> IBKRBroker:
    return connect_ib(tws, client_id, **kw)


def at_venue(tws: FakeTWS) -> Counter[str]:
    """How many orders TWS holds per orderRef (the client order id)."""
    return Counter(o.order_ref for o in tws.orders.values())


def step(tws: FakeTWS, broker: IBKRBroker) -> None:
    made = tws.step()
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)


def reconnected(broker: IBKRBroker, n: int = 1) -> None:
    wait_until(lambda: broker.reconnects >= n and broker.state.value == "ready", 15)


def test_drop_before_tws_reads_the_order(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("drop_before_read")
    with pytest.raises((OrderStatusUnknown, BrokerConnectionError)):
        broker.submit_order("AAA", "buy", 10, client_order_id="a-1")
    reconnected(broker)
    assert at_venue(tws)["a-1"] == 0
    info = broker.get_order("a-1")
    assert (info["status"], info["reason"]) == ("rejected", NOT_RECEIVED)
    again = broker.submit_order("AAA", "buy", 10, client_order_id="a-1")
    assert (again["order_id"], again["status"]) == ("a-1", "new")
    assert broker.submit_order("AAA", "buy", 10, client_order_id="a-1")["order_id"] == "a-1"
    assert at_venue(tws) == Counter({"a-1": 1})
    step(tws, broker)
    assert broker.get_positions()["AAA"] == 10.0


@pytest.mark.parametrize("backoff", [(1.0, 1.0), (0.01, 0.01)], ids=["slow", "fast"])
def test_drop_after_tws_read_the_order_before_the_ack(tws: FakeTWS,
                                                      backoff: tuple[float, float]) -> None:
    """A slow reconnect: the submit raises OrderStatusUnknown; a fast one resolves the
    order before the submit returns. Either way it exists once, under its own id."""
    broker = connect(tws, reconnect_backoff=backoff)
    try:
        tws.inject("drop_after_read")
        if backoff[0] >= 1.0:
            with pytest.raises(OrderStatusUnknown) as err:
                broker.submit_order("AAA", "buy", 10, "limit", limit_price=99.0,
                                    client_order_id="b-1")
            assert err.value.order_id == "b-1"
            assert isinstance(err.value, SimbrokerError)
        else:
            try:
                got = broker.submit_order("AAA", "buy", 10, "limit", limit_price=99.0,
                                          client_order_id="b-1")
                assert got["status"] == "new"
            except OrderStatusUnknown:
                pass
        reconnected(broker)
        resolved_and_cancelled(tws, broker)
    finally:
        broker.close()


def resolved_and_cancelled(tws: FakeTWS, broker: IBKRBroker) -> None:
    info = broker.get_order("b-1")
    assert (info["status"], info["order_type"], info["limit_price"]) == ("new", "limit", 99.0)
    assert broker.submit_order("AAA", "buy", 10, "limit", limit_price=99.0,
                               client_order_id="b-1")["status"] == "new"
    assert at_venue(tws) == Counter({"b-1": 1})
    assert broker.cancel_order("b-1")["status"] == "canceled"
    assert next(iter(tws.orders.values())).status == "Cancelled"


def test_drop_after_the_ack(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("drop_after_ack")
    placed = broker.submit_order("AAA", "buy", 5, client_order_id="c-1")
    assert placed["status"] == "new"
    reconnected(broker)
    step(tws, broker)
    assert broker.submit_order("AAA", "buy", 5, client_order_id="c-1")["status"] == "filled"
    assert at_venue(tws) == Counter({"c-1": 1})
    assert [f["order_id"] for f in broker.get_fills()] == ["c-1"]


def test_drop_during_fill_delivery_books_the_fill_once(tws: FakeTWS,
                                                       broker: IBKRBroker) -> None:
    broker.submit_order("AAA", "buy", 10, client_order_id="d-1")
    tws.partial_fills = 2
    tws.inject("drop_during_fill")
    made = tws.step()  # orderStatus and execDetails arrive, then the socket closes
    reconnected(broker)
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)
    step(tws, broker)
    fills = broker.get_fills()
    assert len(fills) == len({f["fill_id"] for f in fills}) == 2
    assert sum(f["qty"] for f in fills) == 10
    assert broker.get_positions() == {"AAA": 10.0, "HELD": 25.0}
    assert broker.get_cash() == pytest.approx(tws.cash)
    assert broker.get_order("d-1")["status"] == "filled"


def test_second_drop_during_the_sync_is_one_loop_with_bounded_attempts(
        tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("drop_during_sync")
    tws.inject("drop_during_sync")
    opened = tws.connections_made
    tws.drop_connections()
    reconnected(broker)
    assert tws.faults_injected["drop_during_sync"] == 2
    assert broker.conn.outages == 1
    assert broker.conn.attempts_per_outage == [3]
    assert tws.connections_made - opened == 3
    assert broker.get_positions() == {"HELD": 25.0}


def test_slow_startup_answer_does_not_flap(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("stall_sync", delay=3.0)  # longer than the 2 s request deadline
    opened = tws.connections_made
    tws.drop_connections()
    reconnected(broker)
    assert tws.faults_injected["stall_sync"] == 1
    assert tws.connections_made - opened == 2
    assert broker.conn.attempts_per_outage == [2]


def test_reconnect_gives_up_after_bounded_attempts_then_retries_on_demand(
        tws: FakeTWS) -> None:
    b = connect(tws, max_reconnect_attempts=3, ready_wait=0.2, timeout=0.5)
    try:
        tws.silent = True  # TWS accepts but never answers
        opened = tws.connections_made
        tws.drop_connections()
        wait_until(lambda: b.conn.gave_up, 20)
        assert tws.connections_made - opened == 3
        assert b.state.value == "lost"
        with pytest.raises(BrokerConnectionError, match="not ready"):
            b.get_cash()  # asks for one more loop, which cannot succeed yet
        tws.silent = False
        b.ready_wait = 10.0
        assert b.get_positions() == {"HELD": 25.0}  # the re-armed loop got through
        assert b.conn.outages == 2
    finally:
        b.close()


def test_late_ack_is_pending_then_resolved_before_the_next_order(tws: FakeTWS,
                                                                 broker: IBKRBroker) -> None:
    tws.inject("stall_ack", delay=3.0)
    with pytest.raises(OrderStatusUnknown):
        broker.submit_order("AAA", "buy", 1, client_order_id="e-1")
    assert broker.get_order("e-1")["status"] == "pending_confirm"
    # The next AAA order waits for e-1's answer before it goes out.
    nxt = broker.submit_order("AAA", "buy", 2, client_order_id="e-2")
    assert broker.get_order("e-1")["status"] == "new"
    assert nxt["status"] == "new"
    assert broker.submit_order("AAA", "buy", 1, client_order_id="e-1")["status"] == "new"
    assert at_venue(tws) == Counter({"e-1": 1, "e-2": 1})


def test_rejection_201_is_typed_and_changes_nothing(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("reject")
    with pytest.raises(OrderRejected, match="error 201"):
        broker.submit_order("AAA", "buy", 1, client_order_id="f-1")
    assert broker.get_order("f-1")["status"] == "rejected"
    assert broker.get_positions() == {"HELD": 25.0}
    assert broker.get_cash() == 100_000


def test_cancel_202_cancels_exactly_that_order(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.inject("drop_before_read")
    with pytest.raises(SimbrokerError):
        broker.submit_order("AAA", "buy", 1, "limit", limit_price=50.0, client_order_id="g-1")
    reconnected(broker)
    # IB resets its id counter to nextValidId: the next order may get g-1's IB id.
    h = broker.submit_order("AAA", "buy", 2, "limit", limit_price=50.0, client_order_id="h-1")
    assert broker.get_order("g-1")["status"] == "rejected"
    assert broker.cancel_order("g-1")["status"] == "rejected"  # not h-1
    assert [o.status for o in tws.orders.values()] == ["Submitted"]
    assert broker.cancel_order(h["order_id"])["status"] == "canceled"
    assert [o.status for o in tws.orders.values()] == ["Cancelled"]


def test_reads_while_reconnecting_raise_instead_of_lying(tws: FakeTWS) -> None:
    b = connect(tws, ready_wait=0.3)
    try:
        rest = b.submit_order("HELD", "sell", 5, "limit", limit_price=500.0, tif="gtc",
                              client_order_id="r-1")
        tws.silent = True
        tws.drop_connections()
        wait_until(lambda: b.state.value != "ready")
        with pytest.raises(BrokerConnectionError):
            b.get_positions()  # never {} for an account holding 25 shares
        with pytest.raises(BrokerConnectionError):
            b.cancel_order(rest["order_id"])  # not UnknownOrder
        with pytest.raises(BrokerConnectionError):
            b.get_cash()
        with pytest.raises(BrokerConnectionError):
            b.get_fills()
        with pytest.raises(BrokerConnectionError):
            b.submit_order("AAA", "buy", 1, client_order_id="r-2")
        tws.silent = False
        wait_until(lambda: b.state.value == "ready", 15)
        assert b.get_positions() == {"HELD": 25.0}
        assert b.cancel_order("r-1")["status"] == "canceled"
        assert at_venue(tws) == Counter({"r-1": 1})
    finally:
        b.close()


def test_notice_1100_then_1102_and_1101(tws: FakeTWS) -> None:
    b = connect(tws, ready_wait=0.3)
    try:
        tws.notice(1100)
        wait_until(lambda: b.state.value == "lost")
        with pytest.raises(BrokerConnectionError, match="lost"):
            b.submit_order("AAA", "buy", 1)
        assert tws.connections_made == 1  # the socket is healthy: never torn down
        tws.notice(1102)
        wait_until(lambda: b.state.value == "ready")
        b.submit_order("AAA", "buy", 3, client_order_id="n-1")
        step(tws, b)
        tws.notice(1100)
        wait_until(lambda: b.state.value == "lost")
        tws.notice(1101)
        wait_until(lambda: b.state.value == "ready")
        assert b.get_positions() == {"AAA": 3.0, "HELD": 25.0}
        assert len(b.get_fills()) == 1
        tws.notice(2104)  # a farm notice changes nothing
        assert b.state.value == "ready"
        assert tws.connections_made == 1
    finally:
        b.close()


def test_a_port_that_never_answers_is_a_typed_timeout(tws: FakeTWS) -> None:
    tws.silent = True
    with pytest.raises(BrokerTimeout, match="connect to IBKR"):
        connect(tws, timeout=0.5)


def test_get_fills_since_a_cursor_taken_just_before_the_order(tws: FakeTWS,
                                                              broker: IBKRBroker) -> None:
    for i in range(5):
        cursor = broker.now()
        broker.submit_order("AAA", "buy", 1, client_order_id=f"s-{i}")
        step(tws, broker)
        got = broker.get_fills(since=cursor)
        assert [f["client_order_id"] for f in got] == [f"s-{i}"]
    stamps = [f["timestamp"] for f in broker.get_fills()]
    assert stamps == sorted(stamps)
    assert all(t.tzinfo is not None and t.microsecond is not None for t in stamps)
    assert all(e.time.microsecond == 0 for e in tws.executions)  # TWS: whole seconds
    assert broker.get_fills(since=datetime.now(timezone.utc)) == []


def test_events_go_to_the_connection_holding_the_client_id() -> None:
    with FakeTWS(master_client_id=9) as tws:
        tws.set_price("AAA", 100.0)
        one, two, master = connect(tws, 1), connect(tws, 2), connect(tws, 9)
        try:
            one.submit_order("AAA", "buy", 4, client_order_id="mine")
            made = tws.step()
            assert one.wait_for_fills({e.exec_id for e in made}, 10)
            assert master.wait_for_fills({e.exec_id for e in made}, 10)
            assert [f["client_order_id"] for f in one.get_fills()] == ["mine"]
            assert two.get_fills() == []
            assert not two.wait_for_fills({e.exec_id for e in made}, 0.2)
        finally:
            for b in (one, two, master):
                b.close()


@pytest.mark.parametrize("version", [157, 163, 166, 170, 176, 178])
def test_restart_keeps_ids_and_order_types_at_every_server_version(version: int) -> None:
    """Completed orders at 157..178: a cancelled order keeps its id (not a permId), a
    filled limit order stays a limit order after a restart."""
    with FakeTWS(server_version=version) as tws:
        tws.set_price("AAA", 100.0)
        first = connect(tws, 4)
        gone = first.submit_order("AAA", "buy", 3, "limit", limit_price=50.0,
                                  client_order_id="gone")
        first.cancel_order(gone["order_id"])
        first.submit_order("AAA", "buy", 2, "limit", limit_price=101.0,
                           client_order_id="done")
        step(tws, first)
        first.close()
        wait_until(lambda: 4 not in tws.clients)
        second = connect(tws, 4)
        try:
            g = second.submit_order("AAA", "buy", 3, "limit", limit_price=50.0,
                                    client_order_id="gone")
            assert (g["order_id"], g["status"]) == ("gone", "canceled")
            assert second.cancel_order("gone")["status"] == "canceled"
            d = second.get_order("done")
            assert (d["status"], d["order_type"], d["limit_price"]) == ("filled", "limit",
                                                                        101.0)
            assert [f["order_id"] for f in second.get_fills()] == ["done"]
            assert at_venue(tws) == Counter({"gone": 1, "done": 1})
        finally:
            second.close()


def test_an_order_known_only_by_its_fills_keeps_its_type_from_the_trade_log(
        tws: FakeTWS, tmp_path: Any) -> None:
    """TWS lists completed orders of the current day only: after that, executions are
    all it has; the trade log restores the order's real type, never a made-up market."""
    with TradeLog(tmp_path / "log.jsonl") as tlog:
        first = connect(tws, 6, trade_log=tlog)
        first.submit_order("AAA", "sell", 2, "stop_limit", stop_price=101.0,
                           limit_price=100.5, tif="gtc", client_order_id="stl-1")
        tws.set_price("AAA", 101.0)
        step(tws, first)  # triggers
        tws.set_price("AAA", 100.5)
        step(tws, first)  # fills
        first.close()
    wait_until(lambda: 6 not in tws.clients)
    tws.list_completed = False
    with TradeLog(tmp_path / "log.jsonl") as tlog:
        second = connect(tws, 6, trade_log=tlog)
        try:
            info = second.get_order("stl-1")
            assert (info["order_type"], info["stop_price"], info["limit_price"],
                    info["tif"]) == ("stop_limit", 101.0, 100.5, "gtc")
            assert (info["status"], info["filled_qty"]) == ("filled", 2.0)
        finally:
            second.close()
    with TradeLog(tmp_path / "other.jsonl") as tlog:  # no earlier record: not invented
        third = connect(tws, 6, trade_log=tlog)
        try:
            assert third.get_order("stl-1")["order_type"] == "unknown"
        finally:
            third.close()


@given(attempt=st.integers(1, 200), lo=st.floats(0.001, 10), hi=st.floats(0.001, 300),
       u=st.floats(0, 1, exclude_max=True))
def test_backoff_is_bounded_and_never_zero(attempt: int, lo: float, hi: float,
                                           u: float) -> None:
    d = backoff_delay(attempt, lo, hi, u)
    cap = min(hi, lo * 2 ** min(attempt - 1, 60))
    assert cap / 2 <= d <= cap <= hi
    assert d > 0


def test_an_ack_that_never_comes_is_resolved_by_asking_tws(tws: FakeTWS,
                                                           broker: IBKRBroker) -> None:
    """On a healthy connection an unanswered order is looked up in TWS's open orders,
    completed orders and executions, rather than waited for forever."""
    tws.inject("stall_ack", delay=3600.0)
    with pytest.raises(OrderStatusUnknown):
        broker.submit_order("AAA", "buy", 1, client_order_id="q-1")
    assert broker.submit_order("AAA", "buy", 1, client_order_id="q-1")["status"] == "new"
    assert broker.submit_order("AAA", "sell", 1, client_order_id="q-2")["status"] == "new"
    step(tws, broker)
    assert broker.get_order("q-1")["status"] == "filled"
    assert at_venue(tws) == Counter({"q-1": 1, "q-2": 1})
    assert tws.connections_made == 1
