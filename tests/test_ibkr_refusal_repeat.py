"""TWS's refusal of a modification answers that one modification: a repeat of it is not a
refusal of the order, and the next modification's answer is its own even in the same
words (``OrderEntry.refusal`` lives from its answer to the next modification).

Each test counts what a strategy would see: the ``ReplaceRejected`` raised (one per
refused replace: none lost, none doubled), the orders working at TWS by client order id
(the original, once) and the adapter's view of them. Faults: the refusal sent twice, the
socket dropped right after it, the refusal sent after the adapter stopped waiting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from _live import HAS_IB, connect_ib, ib_error_guard
from adapter_scenarios import wait_until

from simbroker.errors import OrderStatusUnknown, ReplaceRejected

pytestmark = pytest.mark.skipif(not HAS_IB, reason="needs ib_async or ib_insync")

no_decoder_errors = ib_error_guard(starts=("Error 201", "Error 202"),
                                   contains=("Peer closed connection",))

REFUSED = "Order rejected - reason:the modification is not accepted"
"""FakeTWS's text for every modification refused with ``reject_modify``: the same words
each time."""


class Seen:
    """A broker on a FakeTWS, and the outcomes of its replaces."""

    def __init__(self, **broker_kw: object) -> None:
        from simbroker.testing.fake_tws import FakeTWS

        self.fake = FakeTWS(server_version=178, commission_per_share=0.0,
                            min_commission=0.0).start()
        self.fake.set_price("AAA", 100.0)
        self.broker = connect_ib(self.fake, **broker_kw)
        self.outcomes: Counter[str] = Counter()

    def replace(self, order_id: str, **change: float) -> None:
        try:
            self.broker.replace_order(order_id, **change)
        except ReplaceRejected as exc:
            self.outcomes["refused" if exc.order_id == order_id else "refused other"] += 1
        except OrderStatusUnknown:
            self.outcomes["unknown"] += 1
        else:
            self.outcomes["taken"] += 1

    def working_at_tws(self) -> Counter[str]:
        with self.fake._lock:
            return Counter(o.order_ref for o in self.fake.orders.values()
                           if o.status in ("PreSubmitted", "Submitted"))

    def assert_working(self, order_id: str, qty: float, limit: float) -> None:
        self.broker.flush()
        info = self.broker.get_order(order_id)
        assert (info["status"], info["qty"], info["limit_price"]) == ("new", qty, limit)
        assert self.working_at_tws() == Counter({order_id: 1})
        assert [o["order_id"] for o in self.broker.get_orders(open_only=True)] == [order_id]

    def close(self) -> None:
        self.broker.close()
        self.fake.stop()


@pytest.fixture
def seen() -> Iterator[Seen]:
    s = Seen()
    yield s
    s.close()


def _sent_modifications(s: Seen, order_id: str) -> int:
    return sum(1 for p in s.fake.placed if p["order_ref"] == order_id) - 1


def test_one_modification_refused_twice_is_one_refusal(seen: Seen) -> None:
    seen.broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0,
                             client_order_id="one")
    seen.fake.reject_modify = 201
    seen.fake.inject("repeat_refusal")
    seen.replace("one", limit_price=91.0)
    assert seen.fake.faults_injected["repeat_refusal"] == 1
    assert seen.outcomes == Counter({"refused": 1})
    seen.assert_working("one", 10, 90.0)
    seen.fake.reject_modify = 0
    seen.replace("one", limit_price=92.0)  # the repeat is not taken for this answer
    assert seen.outcomes == Counter({"refused": 1, "taken": 1})
    seen.assert_working("one", 10, 92.0)
    assert _sent_modifications(seen, "one") == 2


def test_two_modifications_each_refused_in_the_same_words_are_two_refusals(
        seen: Seen) -> None:
    seen.broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0,
                             client_order_id="two")
    seen.fake.reject_modify = 201
    seen.fake.inject("repeat_refusal")
    seen.replace("two", limit_price=91.0)
    seen.fake.inject("repeat_refusal")
    seen.replace("two", limit_price=93.0)
    seen.replace("two", qty=12)  # a third, not repeated
    assert seen.fake.faults_injected["repeat_refusal"] == 2
    assert seen.outcomes == Counter({"refused": 3})
    seen.assert_working("two", 10, 90.0)
    seen.fake.reject_modify = 0
    seen.fake.set_price("AAA", 89.0)
    made = seen.fake.step()
    assert seen.broker.wait_for_fills({e.exec_id for e in made}, 10)
    assert seen.broker.get_order("two")["status"] == "filled"
    assert seen.broker.get_positions() == {"AAA": 10.0}
    assert len(seen.broker.get_fills()) == 1


def test_a_201_for_the_order_after_a_later_modification_is_the_orders(seen: Seen) -> None:
    """The text of an answered refusal is forgotten at the next modification: a later
    201 in the same words, sent for the order when no modification is pending (TWS
    refusing the working order), ends it instead of passing for a repeat."""
    seen.broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0,
                             client_order_id="late")
    seen.fake.reject_modify = 201
    seen.replace("late", limit_price=91.0)
    seen.fake.reject_modify = 0
    seen.replace("late", limit_price=92.0)
    assert seen.outcomes == Counter({"refused": 1, "taken": 1})
    fake = seen.fake
    o = next(iter(fake.orders.values()))

    def refuse_the_order() -> None:
        o.status = "Cancelled"
        for conn in fake._owners(o):
            fake._error(conn, o.order_id, 201, REFUSED)

    fake._run(refuse_the_order)
    wait_until(lambda: seen.broker.get_order("late")["status"] == "rejected")
    assert seen.broker.get_orders(open_only=True) == []


def test_a_drop_right_after_a_repeated_refusal_loses_nothing(seen: Seen) -> None:
    seen.broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0,
                             client_order_id="drop")
    seen.fake.reject_modify = 201
    seen.fake.inject("repeat_refusal")
    seen.fake.inject("drop_after_refusal")
    before = seen.broker.reconnects
    seen.replace("drop", limit_price=91.0)
    wait_until(lambda: seen.broker.reconnects > before
               and seen.broker.state.value == "ready", 15)
    seen.assert_working("drop", 10, 90.0)
    seen.replace("drop", limit_price=92.0)  # refused again, after the reconnect
    assert seen.outcomes == Counter({"refused": 2})
    seen.assert_working("drop", 10, 90.0)
    seen.fake.reject_modify = 0
    seen.replace("drop", limit_price=93.0)
    seen.assert_working("drop", 10, 93.0)


def test_a_refusal_sent_after_the_adapter_stopped_waiting_leaves_the_order_working(
) -> None:
    """The late refusal answers the modification replace_order gave up on; it is not a
    refusal of the order (which would be reported rejected while TWS works it), and the
    next modification's refusal in the same words is its own."""
    s = Seen(timeout=0.5)
    try:
        s.broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0,
                              client_order_id="slow")
        s.fake.reject_modify = 201
        s.fake.inject("stall_refusal", delay=1.0)
        s.replace("slow", limit_price=91.0)
        assert s.outcomes == Counter({"unknown": 1})
        with pytest.raises(ReplaceRejected, match="still unanswered"):
            s.broker.replace_order("slow", limit_price=92.0)  # nothing sent
        assert _sent_modifications(s, "slow") == 1
        wait_until(lambda: s.broker.get_order("slow")["limit_price"] == 90.0
                   and s.broker.orders.get("slow").unanswered is None)
        s.assert_working("slow", 10, 90.0)
        s.replace("slow", limit_price=92.0)  # refused in the same words: its own answer
        assert s.outcomes == Counter({"unknown": 1, "refused": 1})
        s.assert_working("slow", 10, 90.0)
        s.fake.reject_modify = 0
        s.replace("slow", limit_price=93.0)
        s.assert_working("slow", 10, 93.0)
        assert _sent_modifications(s, "slow") == 3
    finally:
        s.close()


def test_a_stalled_round_trip_after_a_refusal_is_made_up_before_the_next_modification(
) -> None:
    """The round trip that reads TWS's repeats of a refusal timed out: the refusal
    stands, and the next replace first completes one (or, if TWS still does not answer,
    sends nothing and says so), so an unread repeat is never taken for its answer."""
    from simbroker.errors import BrokerTimeout

    s = Seen(timeout=1.0)
    try:
        s.broker.submit_order("AAA", "buy", 10, "limit", limit_price=90.0,
                              client_order_id="rt")
        s.fake.reject_modify = 201
        # The round trip after the refusal, then the one before the next modify. Any
        # later answer proves the repeats were read, so the first one's late answer must
        # not land inside the second's wait (else that round trip rightly completes): 5 s
        # against a wait that ends about 2 s in, with room for a loaded machine.
        s.fake.inject("stall_time", delay=5.0)
        s.fake.inject("stall_time", delay=2.5)
        s.replace("rt", limit_price=91.0)
        assert s.outcomes == Counter({"refused": 1})
        with pytest.raises(BrokerTimeout, match="nothing was sent"):
            s.broker.replace_order("rt", limit_price=92.0)
        assert _sent_modifications(s, "rt") == 1
        assert s.fake.faults_injected["stall_time"] == 2
        s.fake.reject_modify = 0
        s.replace("rt", limit_price=93.0)  # the round trip completes first, then it goes
        assert s.outcomes == Counter({"refused": 1, "taken": 1})
        s.assert_working("rt", 10, 93.0)
        assert _sent_modifications(s, "rt") == 2
    finally:
        s.close()
