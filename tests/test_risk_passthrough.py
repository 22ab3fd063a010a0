"""The wrapper passes the broker's read-only extras through, and nothing that sends orders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simbroker import Bars, Broker, History, PaperBroker, RiskRejected
from simbroker.feeds import ReplayFeed
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.runner import RealtimeRunner, paper_broker_from_log
from simbroker.tradelog import TradeLog, read_trade_log


def bars(n: int = 12) -> Bars:
    ts = np.datetime64("2024-01-02", "ns") + np.arange(n) * np.timedelta64(1, "D")
    px = np.full((n, 1), 100.0)
    return Bars.from_arrays(ts, ["A"], open=px, high=px, low=px, close=px,
                            volume=np.full((n, 1), 1e6))


def test_get_orders_and_get_order_pass_through() -> None:
    inner = PaperBroker(bars(), slippage=0, fees=0)
    inner.step()
    broker = RiskBroker(inner, RiskLimits(max_position=100))
    info = broker.submit_order("A", "buy", 10)
    assert broker.get_orders() == inner.get_orders()  # type: ignore[attr-defined]
    assert broker.get_orders(open_only=True)[0]["order_id"] == info["order_id"]  # type: ignore[attr-defined]
    assert broker.get_order(info["order_id"]) == info  # type: ignore[attr-defined]
    assert broker.bars is inner.bars  # type: ignore[attr-defined]
    assert isinstance(broker, Broker)


class ManagesItsOrders:
    """Looks up its own orders each bar and cancels stale ones (needs get_orders)."""

    def on_bar(self, broker: Broker, history: History) -> None:
        for o in broker.get_orders(open_only=True):  # type: ignore[attr-defined]
            assert broker.get_order(o["order_id"])["status"] == "new"  # type: ignore[attr-defined]
            broker.cancel_order(o["order_id"])
        broker.submit_order("A", "buy", 60, "limit", limit_price=50, tif="gtc")
        broker.submit_order("A", "buy", 60, "limit", limit_price=50, tif="gtc")  # refused


def test_a_strategy_using_order_lookups_runs_with_limits_set(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    b = bars()
    with TradeLog(path) as log:
        broker = paper_broker_from_log(b, None, trade_log=log)
        runner = RealtimeRunner(ManagesItsOrders(), broker, ReplayFeed(b), trade_log=log,
                                risk=RiskLimits(max_position=100), handle_signals=False)
        report = runner.run()
    assert report.stopped_by == "feed ended"
    assert len(report.errors) == len(b)  # the second order of every bar, refused
    assert all("max_position" in e for e in report.errors)
    records = read_trade_log(path)
    assert sum(r["event"] == "rejected" and r["rule"] == "max_position" for r in records) \
        == len(b)
    assert sum(r["event"] == "submitted" for r in records) == len(b)  # nothing else sent
    assert sum(r["event"] == "canceled" for r in records) == len(b) - 1


class Replaces:
    """A broker with an extra that changes an order: it must not go around the checks."""

    def __init__(self, inner: PaperBroker):
        self.inner = inner

    def modify_order(self, order_id: str, qty: float) -> Any:
        raise AssertionError("reached the broker")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_order_changing_extras_are_not_forwarded() -> None:
    inner = PaperBroker(bars(), slippage=0, fees=0)
    inner.step()
    broker = RiskBroker(Replaces(inner), RiskLimits(max_position=100))  # type: ignore[arg-type]
    # replace_order is the wrapper's own (checked: tests/test_orders_risk.py); another
    # extra that changes an order is not forwarded.
    assert not hasattr(broker, "modify_order")
    with pytest.raises(AttributeError, match="around the risk checks"):
        broker.modify_order  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError):
        broker.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_refusals_are_logged_and_send_nothing(tmp_path: Path) -> None:
    inner = PaperBroker(bars(), slippage=0, fees=0, trade_log=tmp_path / "log.jsonl")
    inner.step()
    broker = RiskBroker(inner, RiskLimits(max_order_notional=1_000))
    with pytest.raises(RiskRejected):
        broker.submit_order("A", "sell", 100, "limit", limit_price=0.01, client_order_id="x")
    assert broker.get_orders() == []  # type: ignore[attr-defined]
    inner.close()
    last = read_trade_log(tmp_path / "log.jsonl")[-1]
    assert (last["event"], last["rule"], last["client_order_id"]) == (
        "rejected", "max_order_notional", "x")
