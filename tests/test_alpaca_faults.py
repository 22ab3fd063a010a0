"""AlpacaBroker under the faults FakeAlpaca injects, with the real alpaca-py models.

Each test injects one kind of fault and counts what matters to money: orders at the
venue per client_order_id (duplicates), orders the caller was told about but the venue
lacks (losses), and fills booked once each.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from _live import ALPACA_KEY, ALPACA_SECRET, alpaca_broker_fixture, alpaca_fixture, connect_alpaca
from adapter_scenarios import wait_until

from simbroker.brokers.alpaca import AlpacaBroker, fill_id
from simbroker.errors import (
    BrokerConnectionError,
    BrokerRateLimited,
    BrokerTimeout,
    OrderStatusUnknown,
)
from simbroker.testing.fake_alpaca import FakeAlpaca, stop_sdk_stream
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log

KEY, SECRET = ALPACA_KEY, ALPACA_SECRET


fake = alpaca_fixture(prices={"AAA": 100.0, "BBB": 20.0}, cash=1_000_000)
broker = alpaca_broker_fixture()


def connect(fake: FakeAlpaca, **kwargs: Any) -> AlpacaBroker:
    """A broker on ``fake`` whose trade stream is ready."""
    return connect_alpaca(fake, **kwargs)


def ids(made: list[dict[str, Any]]) -> set[str]:
    return {fill_id(a["order_id"], a["cum_qty"]) for a in made}


def duplicates(fake: FakeAlpaca) -> int:
    """Orders beyond the first under any one client_order_id at the venue."""
    counts = Counter(cid for cid, _ in fake.orders_by_client_id())
    return sum(n - 1 for n in counts.values())


def requests_during(fake: FakeAlpaca, fn: Callable[[], Any]) -> tuple[Any, list[Any]]:
    before = len(fake.requests)
    out = fn()
    return out, fake.requests[before:]


# ---------------------------------------------------------------------- deadlines, locks
def test_a_stalled_submit_blocks_neither_reads_nor_the_stream(fake: FakeAlpaca) -> None:
    broker = connect(fake, timeout=60.0)  # the stalled call waits; nothing else may
    try:
        broker.submit_order("BBB", "buy", 1)
        fake.stall_next(60.0, method="POST", path="/v2/orders")  # taken, answered late
        result: dict[str, Any] = {}
        sender = threading.Thread(target=lambda: result.update(
            broker.submit_order("AAA", "buy", 5, client_order_id="stalled-1")))
        sender.start()
        wait_until(lambda: any(c == "stalled-1" for c, _ in fake.orders_by_client_id()))
        # The send is still waiting for its answer; another thread reads at once ...
        assert broker.get_positions() == {}
        assert broker.get_cash() == 1_000_000
        # ... and the stream books fills meanwhile.
        made = fake.step()
        assert broker.wait_for_fills(ids(made), 10, reconcile=False)
        assert sender.is_alive()  # the stall lasts until released: this is not timing
        fake.release_stalls()
        sender.join(10)
        assert result["client_order_id"] == "stalled-1"
        assert broker.get_positions() == {"AAA": 5.0, "BBB": 1.0}
        assert duplicates(fake) == 0
    finally:
        fake.release_stalls()
        broker.close()


def test_a_read_past_its_deadline_is_a_typed_timeout(fake: FakeAlpaca) -> None:
    broker = connect(fake, timeout=0.3)
    try:
        fake.stall_next(30.0, method="GET", path="/v2/positions")
        with pytest.raises(BrokerTimeout) as info:
            broker.get_positions()
        assert isinstance(info.value, BrokerConnectionError)
        assert info.value.operation == "get_positions"
        assert info.value.timeout == 0.3
        fake.release_stalls()
        assert broker.get_positions() == {}  # the next call is fine
    finally:
        fake.release_stalls()
        broker.close()


def test_a_submit_that_times_out_is_resolved_by_its_client_order_id(
        fake: FakeAlpaca) -> None:
    broker = connect(fake, timeout=0.3)
    try:
        fake.stall_next(30.0, method="POST", path="/v2/orders")
        info, sent = requests_during(fake, lambda: broker.submit_order(
            "AAA", "buy", 3, client_order_id="slow-1"))
        assert info["client_order_id"] == "slow-1"
        assert info["status"] in ("new", "filled", "partially_filled")
        assert sent == [("POST", "/v2/orders"), ("GET", "/v2/orders:by_client_order_id")]
        assert broker.pending_orders() == []
        assert len(fake.orders) == 1
    finally:
        fake.release_stalls()
        broker.close()


def test_lost_answer_and_lost_lookup_are_pending_confirm_until_resolved(
        fake: FakeAlpaca) -> None:
    broker = connect(fake, timeout=0.3, pending_grace=600)
    try:
        # The send reaches Alpaca only once released; every lookup meanwhile stalls.
        fake.stall_next(30.0, method="POST", path="/v2/orders", before=True)
        fake.stall_next(30.0, n=50, method="GET", path="/v2/orders:by_client_order_id")
        with pytest.raises(OrderStatusUnknown) as info:
            broker.submit_order("AAA", "buy", 3, client_order_id="dark-1")
        assert info.value.client_order_id == "dark-1"
        assert info.value.symbol == "AAA"
        assert broker.pending_orders() == ["dark-1"]
        # No new order of that symbol goes out while its fate is unknown ...
        with pytest.raises(BrokerConnectionError, match="awaits confirmation"):
            broker.submit_order("AAA", "buy", 1, client_order_id="next-1")
        assert fake.orders == {}
        # ... other symbols trade.
        broker.submit_order("BBB", "buy", 1, client_order_id="other-1")
        fake.release_stalls()
        again = broker.submit_order("AAA", "buy", 3, client_order_id="dark-1")
        assert again["client_order_id"] == "dark-1"
        assert broker.pending_orders() == []
        broker.submit_order("AAA", "buy", 1, client_order_id="next-1")
        assert duplicates(fake) == 0
        assert len(fake.orders) == 3
    finally:
        fake.release_stalls()
        broker.close()


def test_the_background_resolver_confirms_a_pending_order(fake: FakeAlpaca) -> None:
    # No stream: its "new" event would resolve the order; here REST lookups must.
    broker = connect(fake, timeout=0.3, pending_grace=600, stream=False)
    try:
        fake.stall_next(30.0, method="POST", path="/v2/orders")
        fake.stall_next(30.0, n=1, method="GET", path="/v2/orders:by_client_order_id")
        with pytest.raises(OrderStatusUnknown):
            broker.submit_order("AAA", "buy", 2, client_order_id="dark-2")
        fake.release_stalls()
        wait_until(lambda: broker.pending_orders() == [])
        assert broker.orders.by_client_id("dark-2") is not None
    finally:
        fake.release_stalls()
        broker.close()


# ---------------------------------------------------------------------- idempotent sends
def test_the_happy_path_sends_once_and_looks_nothing_up(fake: FakeAlpaca,
                                                        broker: AlpacaBroker) -> None:
    info, sent = requests_during(fake, lambda: broker.submit_order(
        "AAA", "buy", 1, client_order_id="happy-1"))
    assert sent == [("POST", "/v2/orders")]
    # Resubmitting a client_order_id the broker knows costs no request at all.
    again, sent = requests_during(fake, lambda: broker.submit_order(
        "AAA", "buy", 1, client_order_id="happy-1"))
    assert sent == []
    assert again["order_id"] == info["order_id"]


def test_a_504_after_the_order_was_taken_is_looked_up_not_resent(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.lose_next_response()
    info, sent = requests_during(fake, lambda: broker.submit_order(
        "AAA", "buy", 4, client_order_id="lost-1"))
    assert info["client_order_id"] == "lost-1"
    assert sent == [("POST", "/v2/orders"), ("GET", "/v2/orders:by_client_order_id")]
    assert fake.faults["lost_answer_504"] == 1
    assert len(fake.orders) == 1


def test_a_duplicate_refused_by_alpaca_returns_the_order_it_holds(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    placed = broker.submit_order("AAA", "buy", 2, client_order_id="dup-1")
    # A process that never loaded that order (it predates its window) sends it again.
    later = fake.clock + timedelta(hours=1)
    with AlpacaBroker.for_fake(fake, stream=False, fills_since=later) as other:
        info, sent = requests_during(fake, lambda: other.submit_order(
            "AAA", "buy", 2, client_order_id="dup-1"))
    assert info["order_id"] == placed["order_id"]
    assert sent == [("POST", "/v2/orders"), ("GET", "/v2/orders:by_client_order_id")]
    assert duplicates(fake) == 0


# ---------------------------------------------------------------------- rate limits
def test_a_429_raises_at_once_with_alpacas_wait_and_honours_it(fake: FakeAlpaca,
                                                               broker: AlpacaBroker) -> None:
    fake.rate_limit_next(1, retry_after=30)
    with pytest.raises(BrokerRateLimited) as info:
        broker.submit_order("AAA", "buy", 1, client_order_id="rl-1")
    assert info.value.retry_after == 30
    assert len(fake.orders) == 0
    # Within the wait nothing is sent at all.
    before = len(fake.requests)
    with pytest.raises(BrokerRateLimited) as again:
        broker.get_positions()
    assert again.value.retry_after is not None
    assert 0 < again.value.retry_after <= 30
    assert len(fake.requests) == before
    assert fake.faults["rate_limited"] == 1


def test_after_a_short_429_the_same_client_order_id_goes_through(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.rate_limit_next(1, retry_after=0.2)
    placed: dict[str, Any] = {}

    def attempt() -> bool:
        try:
            placed.update(broker.submit_order("AAA", "buy", 1, client_order_id="rl-2"))
        except BrokerRateLimited:
            return False
        return True

    wait_until(attempt)
    assert placed["client_order_id"] == "rl-2"
    assert len(fake.orders) == 1


# ---------------------------------------------------------------------- the stream
def test_a_silent_stream_is_detected_reconnected_and_reconciled(fake: FakeAlpaca) -> None:
    broker = connect(fake, heartbeat=0.4)
    try:
        broker.submit_order("AAA", "buy", 2)
        fake.silence_stream()  # open, but no events and no pongs
        made = fake.step()  # the fill event goes nowhere
        assert broker.wait_for_fills(ids(made), 10, reconcile=False)
        wait_until(lambda: broker.stream_connects == 2 and broker.stream_state == "ready")
        assert fake.listeners == 1
        broker.submit_order("AAA", "buy", 1)
        made = fake.step()  # the new connection delivers
        assert broker.wait_for_fills(ids(made), 10, reconcile=False)
        assert [f["qty"] for f in broker.get_fills()] == [2.0, 1.0]
    finally:
        broker.close()


def test_an_event_lost_on_a_live_stream_is_found_by_the_periodic_reconcile(
        fake: FakeAlpaca) -> None:
    broker = connect(fake, reconcile_interval=0.3)
    try:
        broker.submit_order("AAA", "buy", 1)
        fake.lose_next_events(1)  # its fill event is never sent
        lost = fake.step()
        broker.submit_order("AAA", "buy", 2)
        delivered = fake.step()  # a later fill does arrive, before any reconcile
        assert broker.wait_for_fills(ids(delivered), 10, reconcile=False)
        assert broker.wait_for_fills(ids(lost), 10, reconcile=False)
        assert broker.stream_connects == 1  # the stream never looked unwell
        assert [f["qty"] for f in broker.get_fills()] == [1.0, 2.0]
    finally:
        broker.close()


def test_duplicated_and_reordered_events_count_each_fill_once(fake: FakeAlpaca,
                                                              broker: AlpacaBroker) -> None:
    fake.duplicate_events = True
    fake.reorder_events = True
    fake.partial_fills = 3
    orders = [broker.submit_order("AAA", "buy", 3) for _ in range(3)]
    for _ in range(3):
        made = fake.step()
        assert broker.wait_for_fills(ids(made), 10, reconcile=False)
    fills = broker.get_fills()
    assert len(fills) == 9
    assert len({f["fill_id"] for f in fills}) == 9
    wait_until(lambda: all(
        (broker.orders.get(o["order_id"]) or {}).get("status") == "filled" for o in orders))
    assert fake.faults["reordered_events"] > 0
    assert broker.get_positions() == {"AAA": 9.0}
    broker.reconcile()  # REST agrees
    assert len(broker.get_fills()) == 9


# ---------------------------------------------------------------------- restarts
def test_a_venue_restart_loses_nothing_and_doubles_nothing(fake: FakeAlpaca,
                                                           broker: AlpacaBroker) -> None:
    broker.submit_order("AAA", "buy", 1, client_order_id="r-1")
    assert broker.wait_for_fills(ids(fake.step()), 10)
    fake.stop()  # down: connections refused (or a pooled one found dead)
    with pytest.raises((BrokerConnectionError, OrderStatusUnknown)):
        broker.submit_order("AAA", "buy", 2, client_order_id="r-2")
    assert broker.pending_orders() in ([], ["r-2"])
    fake.start()  # back on the same ports with the same state
    wait_until(lambda: broker.stream_connects == 2 and broker.stream_state == "ready")
    broker.submit_order("AAA", "buy", 2, client_order_id="r-2")
    fake.restart()
    wait_until(lambda: broker.stream_connects == 3 and broker.stream_state == "ready")
    assert broker.wait_for_fills(ids(fake.step()), 10)
    assert [f["qty"] for f in broker.get_fills()] == [1.0, 2.0]
    assert broker.get_positions() == {"AAA": 3.0}
    assert duplicates(fake) == 0
    assert len(fake.orders) == 2


def test_an_adapter_restart_returns_the_days_fills_with_the_same_ids(
        fake: FakeAlpaca, tmp_path: Path) -> None:
    fake.partial_fills = 2
    with TradeLog(tmp_path / "first.jsonl") as log1:
        first = connect(fake, trade_log=log1)
        for i in range(3):
            first.submit_order("AAA", "buy", 4, client_order_id=f"day-{i}")
        for _ in range(2):
            assert first.wait_for_fills(ids(fake.step()), 10)
        before = first.get_fills()
        first.close()  # the process ends
    assert len(before) == 6
    with TradeLog(tmp_path / "second.jsonl") as log2:
        second = connect(fake, trade_log=log2)
        try:
            after = second.get_fills()
            assert after == before  # same ids, times, prices and client ids, once each
            # A resubmission after the restart returns the order, places nothing.
            again = second.submit_order("AAA", "buy", 4, client_order_id="day-1")
            assert again["status"] == "filled"
            assert len(fake.orders) == 3
            fake.partial_fills = 1
            second.submit_order("AAA", "sell", 2)
            assert second.wait_for_fills(ids(fake.step()), 10)
            assert len(second.get_fills()) == 7
            state = replay_trade_log(log2.path)
            assert state.positions == second.get_positions() == {"AAA": 10.0}
        finally:
            second.close()
    # The earlier fills are in the start snapshot, not logged again.
    assert [r["event"] for r in read_trade_log(tmp_path / "second.jsonl")].count(
        "filled") == 1


def test_get_fills_since_is_inclusive_and_reaches_before_the_window(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    broker.submit_order("AAA", "buy", 1)
    assert broker.wait_for_fills(ids(fake.step()), 10)
    broker.submit_order("AAA", "buy", 2)
    assert broker.wait_for_fills(ids(fake.step()), 10)
    first, second = broker.get_fills()
    assert broker.get_fills(since=second["timestamp"]) == [second]
    assert broker.get_fills(since=first["timestamp"]) == [first, second]
    # A process whose window starts after the first fill still finds it when asked.
    window = second["timestamp"] - timedelta(milliseconds=1)
    with AlpacaBroker.for_fake(fake, stream=False, fills_since=window) as late:
        assert late.get_fills() == [second]
        assert late.get_fills(since=first["timestamp"]) == [first, second]


# ---------------------------------------------------------------------- the fake itself
def test_the_fake_speaks_to_the_raw_sdk(fake: FakeAlpaca) -> None:
    """alpaca-py's own clients, unchanged, against the fake: the fake is the venue's
    shape, not only our adapter's."""
    import warnings

    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from alpaca.trading.stream import TradingStream

    tc = TradingClient(KEY, SECRET, paper=True, url_override=fake.rest_url)
    events: list[Any] = []

    async def on_update(update: Any) -> None:
        events.append(update)

    stream = TradingStream(KEY, SECRET, paper=True, url_override=fake.stream_url)
    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: fake.listeners == 1)
        o = tc.submit_order(MarketOrderRequest(symbol="AAA", qty=3, side=OrderSide.BUY,
                                               time_in_force=TimeInForce.DAY,
                                               client_order_id="raw-1"))
        lim = tc.submit_order(LimitOrderRequest(symbol="AAA", qty=1, side=OrderSide.BUY,
                                                time_in_force=TimeInForce.GTC,
                                                limit_price=1.0))
        assert tc.get_order_by_client_id("raw-1").id == o.id
        fake.step()
        def event(e: Any) -> str:
            return str(getattr(e.event, "value", e.event))

        wait_until(lambda: any(event(e) == "fill" for e in events))
        fill = next(e for e in events if event(e) == "fill")
        assert fill.execution_id is not None
        assert fill.qty == 3
        assert float(tc.get_order_by_id(o.id).filled_qty) == 3
        tc.cancel_order_by_id(lim.id)
        assert str(tc.get_order_by_id(lim.id).status.value) == "canceled"
        acts = tc.get("/account/activities/FILL", {"direction": "asc"})
        assert [(a["order_id"], a["cum_qty"]) for a in acts] == [(str(o.id), "3")]
        assert [p.symbol for p in tc.get_all_positions()] == ["AAA"]
        assert tc.get_clock().is_open
    finally:
        stop_sdk_stream(fake, stream, thread)
