"""Checks and sends are serialized: concurrent orders never pass together what one would not."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from simbroker import Bars, PaperBroker, RiskRejected
from simbroker.errors import BrokerAPIError, BrokerTimeout, OrderStatusUnknown
from simbroker.risk import RiskBroker, RiskLimits


def paper() -> PaperBroker:
    ts = np.datetime64("2024-01-02", "ns") + np.arange(5) * np.timedelta64(1, "D")
    px = np.full((5, 1), 100.0)
    inner = PaperBroker(Bars.from_arrays(ts, ["A"], open=px, high=px, low=px, close=px,
                                         volume=np.full((5, 1), 1e6)), slippage=0, fees=0)
    inner.step()
    return inner


class Venue:
    """The paper broker behind a wire: ``submit_order`` waits until every racer has checked.

    The wait makes the race certain instead of likely: with a lock held only around the
    check, all four threads would pass their checks before any order reached the broker.
    A thread blocked in the wrapper's lock does not reach the wait, so the wait has a
    deadline; no assertion depends on its length.
    """

    def __init__(self, inner: PaperBroker, parties: int):
        self.inner = inner
        self.arrived = threading.Semaphore(0)
        self.parties = parties
        self.fail: BaseException | None = None

    def submit_order(self, *args: Any, **kwargs: Any) -> Any:
        self.arrived.release()
        for _ in range(self.parties - 1):
            if not self.arrived.acquire(timeout=0.05):
                break
        if self.fail is not None:
            raise self.fail
        return self.inner.submit_order(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def race(broker: RiskBroker, n: int = 4) -> list[bool]:
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def buy() -> None:
        barrier.wait()
        try:
            broker.submit_order("A", "buy", 100)
            ok = True
        except RiskRejected:
            ok = False
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=buy) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == n
    return results


@pytest.mark.parametrize("trial", range(25))
def test_four_threads_buying_the_limit_get_exactly_one_order_through(trial: int) -> None:
    inner = paper()
    broker = RiskBroker(Venue(inner, 4), RiskLimits(max_position=100))  # type: ignore[arg-type]
    results = race(broker)
    assert sum(results) == 1
    assert [o["qty"] for o in inner.get_orders(open_only=True)] == [100.0]


def test_the_rate_limit_holds_under_concurrency() -> None:
    inner = paper()
    broker = RiskBroker(Venue(inner, 8), RiskLimits(max_orders_per_minute=3))  # type: ignore[arg-type]
    assert sum(race(broker, 8)) == 3
    assert len(inner.get_orders()) == 3


def test_a_refused_send_frees_its_reservation() -> None:
    venue = Venue(paper(), 1)
    broker = RiskBroker(venue, RiskLimits(max_position=100, max_orders_per_minute=1))  # type: ignore[arg-type]
    venue.fail = BrokerAPIError("insufficient buying power", code=201)
    with pytest.raises(BrokerAPIError):
        broker.submit_order("A", "buy", 100)
    venue.fail = None
    broker.submit_order("A", "buy", 100)  # neither exposure nor the rate window kept it


@pytest.mark.parametrize("fault", [BrokerTimeout("submit_order", 5.0),
                                   OrderStatusUnknown("lost answer", order_id=None,
                                                      client_order_id="c1", symbol="A")])
def test_an_order_of_unknown_fate_keeps_counting(fault: BaseException) -> None:
    venue = Venue(paper(), 1)
    broker = RiskBroker(venue, RiskLimits(max_position=100))  # type: ignore[arg-type]
    venue.fail = fault
    with pytest.raises(type(fault)):
        broker.submit_order("A", "buy", 100, client_order_id="c1")
    venue.fail = None
    with pytest.raises(RiskRejected, match="open buy orders 100"):
        broker.submit_order("A", "buy", 1)
    # Resubmitting the same order resolves it: the broker answers with the order.
    info = broker.submit_order("A", "buy", 100, client_order_id="c1")
    assert info["status"] == "new"
    with pytest.raises(RiskRejected, match="open buy orders 100"):
        broker.submit_order("A", "buy", 1)


def test_resubmitting_an_open_order_is_neither_checked_nor_counted_again() -> None:
    inner = paper()
    broker = RiskBroker(inner, RiskLimits(max_position=100, max_orders_per_minute=1))
    first = broker.submit_order("A", "buy", 100, client_order_id="x")
    again = broker.submit_order("A", "buy", 100, client_order_id="x")
    assert again["order_id"] == first["order_id"]
    assert len(inner.get_orders()) == 1
    with pytest.raises(RiskRejected) as exc:  # a different order under the same id is new
        broker.submit_order("A", "buy", 50, client_order_id="x")
    assert exc.value.rule in ("max_position", "max_orders_per_minute")


def test_an_order_of_unknown_fate_found_at_the_broker_counts_once() -> None:
    class PlacesThenLosesTheAnswer(Venue):
        def submit_order(self, *args: Any, **kwargs: Any) -> Any:
            self.inner.submit_order(*args, **kwargs)
            raise OrderStatusUnknown("answer lost", client_order_id=kwargs["client_order_id"])

    inner = paper()
    broker = RiskBroker(PlacesThenLosesTheAnswer(inner, 1),  # type: ignore[arg-type]
                        RiskLimits(max_position=100))
    with pytest.raises(OrderStatusUnknown):
        broker.submit_order("A", "buy", 60, client_order_id="lost")
    inner.step()  # it was placed: it fills
    broker.broker = inner  # the venue answers again
    broker.submit_order("A", "buy", 40)  # held 60, nothing open: 100 fits exactly
    with pytest.raises(RiskRejected, match=r"held 60, open buy orders 40"):
        broker.submit_order("A", "buy", 1)
