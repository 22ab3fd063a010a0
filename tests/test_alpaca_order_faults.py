"""Brackets and replaces under the faults FakeAlpaca injects, counting what matters.

In the style of ``test_alpaca_faults.py``: orders at the venue per client_order_id
(duplicates), live versions of one replaced order (exactly one), fills booked once each,
and the trade log replaying to the account.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from _live import ALPACA_KEY, ALPACA_SECRET, alpaca_broker_fixture, alpaca_fixture, connect_alpaca
from adapter_scenarios import wait_until

from simbroker.brokers.alpaca import AlpacaBroker, fill_id
from simbroker.errors import OrderStatusUnknown
from simbroker.testing.fake_alpaca import OPEN, FakeAlpaca
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log

KEY, SECRET = ALPACA_KEY, ALPACA_SECRET
BRACKET: dict[str, Any] = {"order_class": "bracket", "take_profit": {"limit_price": 110.0},
                           "stop_loss": {"stop_price": 95.0}}


fake = alpaca_fixture(prices={"AAA": 100.0}, cash=1_000_000)
broker = alpaca_broker_fixture()


def connect(fake: FakeAlpaca, **kwargs: Any) -> AlpacaBroker:
    return connect_alpaca(fake, **kwargs)


def duplicates(fake: FakeAlpaca) -> int:
    counts = Counter(cid for cid, _ in fake.orders_by_client_id())
    return sum(n - 1 for n in counts.values())


def parents(fake: FakeAlpaca) -> list[dict[str, Any]]:
    """Group parents and simple orders at the venue (legs excluded)."""
    return [o for o in fake.orders.values() if o["_parent"] is None]


def live_versions(fake: FakeAlpaca, first_id: str) -> list[dict[str, Any]]:
    """The open Alpaca orders of one replace chain, starting at ``first_id``."""
    chain, oid = [], first_id
    while oid is not None:
        chain.append(fake.orders[oid])
        oid = fake.orders[oid]["replaced_by"]
    return [o for o in chain if o["status"] in OPEN]


def trade(fake: FakeAlpaca, broker: AlpacaBroker, price: float) -> None:
    fake.set_price("AAA", price)
    made = fake.step()
    assert broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 10)


# ---------------------------------------------------------------------- groups
def test_a_bracket_whose_answer_is_lost_after_the_ack_is_found_not_resent(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.lose_next_response()
    parent = broker.submit_order("AAA", "buy", 10, client_order_id="br-1", **BRACKET)
    assert [m for m, _, _ in fake.sent].count("POST") == 1
    assert len(parents(fake)) == 1
    assert len(parent["legs"]) == 2
    assert all(broker.get_order(c)["parent_id"] == parent["order_id"]
               for c in parent["legs"])
    assert duplicates(fake) == 0
    # Resubmitting the id (a caller that saw an error) returns the same group.
    again = broker.submit_order("AAA", "buy", 10, client_order_id="br-1", **BRACKET)
    assert again["order_id"] == parent["order_id"]
    assert len(fake.orders) == 3


def test_a_bracket_sent_across_a_drop_before_the_ack_is_never_doubled(
        fake: FakeAlpaca) -> None:
    broker = connect(fake, timeout=0.3, pending_grace=600)
    try:
        fake.stall_next(30.0, method="POST", path="/v2/orders", before=True)
        fake.stall_next(30.0, n=50, method="GET", path="/v2/orders:by_client_order_id")
        with pytest.raises(OrderStatusUnknown):
            broker.submit_order("AAA", "buy", 10, client_order_id="br-2", **BRACKET)
        assert broker.pending_orders() == ["br-2"]
        fake.release_stalls()  # the send lands now
        got = broker.submit_order("AAA", "buy", 10, client_order_id="br-2", **BRACKET)
        assert broker.pending_orders() == []
        assert duplicates(fake) == 0
        assert len(parents(fake)) == 1
        assert len(fake.orders) == 3  # the parent and its two legs, once
        assert [broker.get_order(c)["status"] for c in got["legs"]] == ["held", "held"]
    finally:
        fake.release_stalls()
        broker.close()


def test_duplicated_and_reordered_events_of_a_group_book_each_fill_once(
        fake: FakeAlpaca, broker: AlpacaBroker, tmp_path: Path) -> None:
    broker.close()
    log = TradeLog(tmp_path / "t.jsonl")
    broker = connect(fake, trade_log=log)
    try:
        fake.duplicate_events = True
        fake.reorder_events = True
        fake.partial_fills = 2
        parent = broker.submit_order("AAA", "buy", 10, **BRACKET)
        tp_id, sl_id = parent["legs"]
        trade(fake, broker, 100.0)
        trade(fake, broker, 100.0)
        trade(fake, broker, 111.0)
        trade(fake, broker, 111.0)
        wait_until(lambda: [broker.orders.get(c)["status"]  # type: ignore[index]
                            for c in (tp_id, sl_id)] == ["filled", "canceled"])
        fills = broker.get_fills()
        assert len(fills) == 4
        assert len({f["fill_id"] for f in fills}) == 4
        assert sum(f["qty"] for f in fills if f["order_id"] == tp_id) == 10.0
        assert broker.get_positions() == {}
        assert fake.faults["duplicate_event"] > 0
    finally:
        broker.close()
        log.close()
    state = replay_trade_log(tmp_path / "t.jsonl")
    assert state.positions == {}
    assert state.open_orders == {}  # the canceled sibling closed in the log too
    events = Counter(r["event"] for r in read_trade_log(tmp_path / "t.jsonl"))
    assert events["submitted"] == 3
    assert events["activated"] == 2  # each leg once, however often the stream said so
    assert events["canceled"] == 1


def test_a_leg_fill_missed_on_a_dropped_stream_is_reconciled(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    parent = broker.submit_order("AAA", "buy", 10, **BRACKET)
    tp_id, sl_id = parent["legs"]
    trade(fake, broker, 100.0)
    fake.drop_stream()
    fake.set_price("AAA", 94.0)
    made = fake.step()  # the stop leg fills while nobody listens
    assert broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 10)
    assert [o["order_id"] for o in broker.get_orders(open_only=True)] == []
    assert broker.get_order(sl_id)["status"] == "filled"
    assert broker.get_order(tp_id)["status"] == "canceled"
    assert broker.get_positions() == {}


# ---------------------------------------------------------------------- replace
def test_a_replace_whose_answer_is_lost_resolves_to_exactly_one_live_order(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0)
    oid = order["order_id"]
    fake.lose_next_response()  # replaced at Alpaca, the answer a 504
    got = broker.replace_order(oid, limit_price=95.0)
    assert [m for m, _, _ in fake.sent].count("PATCH") == 1
    assert (got["order_id"], got["limit_price"], got["status"]) == (oid, 95.0, "new")
    (current,) = live_versions(fake, oid)
    assert broker.orders.current_id(oid) == current["id"]
    trade(fake, broker, 94.0)
    assert broker.get_order(oid)["status"] == "filled"
    assert broker.get_positions() == {"AAA": 10.0}


def test_a_replace_stalled_past_its_deadline_is_unknown_then_one_live_order(
        fake: FakeAlpaca) -> None:
    broker = connect(fake, timeout=0.3)
    try:
        order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0)
        oid = order["order_id"]
        fake.stall_next(30.0, method="PATCH", before=True)  # lands only when released
        with pytest.raises(OrderStatusUnknown, match="shows which version is live"):
            broker.replace_order(oid, limit_price=95.0)
        assert len(live_versions(fake, oid)) == 1
        fake.release_stalls()
        wait_until(lambda: fake.orders[oid]["status"] == "replaced")
        # Repeating the replace is safe: Alpaca refuses the replaced version, the
        # adapter follows replaced_by and applies the change to the live one.
        got = broker.replace_order(oid, limit_price=95.0)
        assert (got["order_id"], got["limit_price"]) == (oid, 95.0)
        (current,) = live_versions(fake, oid)
        assert current["limit_price"] == "95"
        assert broker.get_orders(open_only=True) == [broker.get_order(oid)]
        trade(fake, broker, 95.0)
        assert broker.get_order(oid)["filled_qty"] == 10.0
        assert broker.get_positions() == {"AAA": 10.0}
    finally:
        fake.release_stalls()
        broker.close()


def test_a_replace_learned_only_from_the_stream_events_is_followed(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.requests import ReplaceOrderRequest

    order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0)
    oid = order["order_id"]
    # Another program (or a restart's predecessor) replaces it; the stream tells.
    client = TradingClient(KEY, SECRET, paper=True, url_override=fake.rest_url)
    new = client.replace_order_by_id(oid, ReplaceOrderRequest(limit_price=92.0))
    wait_until(lambda: broker.orders.get(oid)["limit_price"] == 92.0)  # type: ignore[index]
    assert broker.orders.current_id(oid) == str(new.id)  # type: ignore[union-attr]
    trade(fake, broker, 91.0)
    fills = broker.get_fills()
    assert [(f["order_id"], f["qty"]) for f in fills] == [(oid, 10.0)]


def test_an_adapter_restart_after_replaces_keeps_the_first_id_and_its_fills(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.partial_fills = 2
    order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=100.0)
    oid = order["order_id"]
    trade(fake, broker, 100.0)  # 5
    broker.replace_order(oid, limit_price=101.0)
    fake.partial_fills = 1
    trade(fake, broker, 100.0)  # the other 5, on the replacement
    before = broker.get_fills()
    again = connect(fake)
    try:
        after = again.get_fills()
        assert [(f["fill_id"], f["order_id"]) for f in after] == [
            (f["fill_id"], f["order_id"]) for f in before]
        assert {f["order_id"] for f in after} == {oid}
        got = again.get_order(oid)
        assert (got["status"], got["filled_qty"], got["limit_price"]) == ("filled", 10.0,
                                                                        101.0)
        assert [i["order_id"] for i in again.get_orders()] == [oid]
    finally:
        again.close()


def test_replaces_under_duplicated_and_reordered_events_converge_to_alpacas_state(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.duplicate_events = True
    fake.reorder_events = True
    order = broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0)
    oid = order["order_id"]
    for price in (91.0, 92.0, 93.0):
        broker.replace_order(oid, limit_price=price)
    (current,) = live_versions(fake, oid)
    wait_until(lambda: broker.orders.current_id(oid) == current["id"])
    fake.partial_fills = 2
    trade(fake, broker, 93.0)
    trade(fake, broker, 93.0)
    wait_until(lambda: broker.orders.get(oid)["status"] == "filled")  # type: ignore[index]
    got = broker.orders.get(oid)
    assert got is not None
    assert (got["filled_qty"], got["limit_price"], got["qty"]) == (10.0, 93.0, 10.0)
    fills = broker.get_fills()
    assert [(f["order_id"], f["qty"]) for f in fills] == [(oid, 5.0), (oid, 5.0)]
    assert fake.faults["reordered_events"] > 0
    assert fake.faults["duplicate_event"] > 0


def test_a_venue_restart_between_entry_and_exit_loses_and_doubles_nothing(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    parent = broker.submit_order("AAA", "buy", 10, **BRACKET)
    tp_id, sl_id = parent["legs"]
    trade(fake, broker, 100.0)
    fake.restart(downtime=0.3)
    fake.set_price("AAA", 111.0)
    made = fake.step()  # the take-profit fills while the adapter reconnects
    assert broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 15)
    wait_until(lambda: broker.stream_state == "ready", 15)
    assert broker.get_order(tp_id)["status"] == "filled"
    assert broker.get_order(sl_id)["status"] == "canceled"
    assert len(broker.get_fills()) == 2
    assert broker.get_positions() == {}
    assert duplicates(fake) == 0


def test_a_sibling_cancel_the_stream_never_reports_is_read_from_rest(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.quiet_sibling_cancels = True  # as alpaca-py issue 198 reports of Alpaca
    parent = broker.submit_order("AAA", "buy", 10, **BRACKET)
    tp_id, sl_id = parent["legs"]
    trade(fake, broker, 100.0)
    trade(fake, broker, 111.0)
    wait_until(lambda: broker.orders.get(sl_id)["status"] == "canceled")  # type: ignore[index]
    assert broker.orders.get(tp_id)["status"] == "filled"  # type: ignore[index]
