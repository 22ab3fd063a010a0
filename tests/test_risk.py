"""Every risk rule at, just under and just over its limit; the kill switch; no leaks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simbroker import Bars, Broker, ConfigError, InvalidOrder, PaperBroker, RiskRejected
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.tradelog import read_trade_log

CLOSE = 100.0


def paper(n_bars: int = 5, **kw: Any) -> PaperBroker:
    ts = np.datetime64("2024-01-02", "ns") + np.arange(n_bars) * np.timedelta64(1, "D")
    px = np.full((n_bars, 2), CLOSE)
    bars = Bars.from_arrays(ts, ["A", "B"], open=px, high=px, low=px, close=px,
                            volume=np.full((n_bars, 2), 1e6))
    kw.setdefault("slippage", 0)
    kw.setdefault("fees", 0)
    b = PaperBroker(bars, **kw)
    b.step()  # bar 0 closed: last price known
    return b


def guarded(**limits: Any) -> tuple[RiskBroker, PaperBroker]:
    inner = paper()
    return RiskBroker(inner, RiskLimits(**limits)), inner


def test_is_a_broker() -> None:
    assert isinstance(guarded()[0], Broker)


@pytest.mark.parametrize(
    ("limits", "ok", "over", "rule"),
    [
        ({"max_order_qty": 10}, 10, 10.5, "max_order_qty"),
        ({"max_order_qty": 10}, 9.99, 11, "max_order_qty"),
        ({"max_order_notional": 1000}, 10, 10.01, "max_order_notional"),
        ({"max_position": 20}, 20, 20.5, "max_position"),
        ({"max_position_notional": 2000}, 20, 20.01, "max_position_notional"),
        ({"max_gross_exposure": 3000}, 30, 30.01, "max_gross_exposure"),
    ],
)
def test_size_rules_at_and_over_the_limit(limits: dict[str, Any], ok: float, over: float,
                                          rule: str) -> None:
    broker, _ = guarded(**limits)
    broker.submit_order("A", "buy", ok)  # at (or just under) the limit: accepted
    broker2, inner2 = guarded(**limits)
    with pytest.raises(RiskRejected) as exc:
        broker2.submit_order("A", "buy", over)
    assert exc.value.rule == rule
    assert exc.value.symbol == "A"
    assert inner2.get_orders() == []  # nothing reached the broker
    assert exc.value.limit == next(iter(limits.values()))
    assert exc.value.value is not None
    assert exc.value.value > exc.value.limit


def test_position_rules_count_held_and_open_orders() -> None:
    broker, inner = guarded(max_position=100)
    broker.submit_order("A", "buy", 60)
    inner.step()  # filled: held 60
    broker.submit_order("A", "buy", 30)  # open: 90
    with pytest.raises(RiskRejected, match=r"position would reach 101 \(held 60, open buy "
                       r"orders 30, this order 11\) > limit 100"):
        broker.submit_order("A", "buy", 11)
    broker.submit_order("A", "buy", 10)  # exactly 100
    broker.submit_order("A", "sell", 150)  # reduces toward -50: |.| under 100 ... fine
    assert len(inner.get_orders(open_only=True)) == 3


def test_gross_exposure_sums_symbols() -> None:
    broker, inner = guarded(max_gross_exposure=5000)
    broker.submit_order("A", "buy", 30)
    inner.step()
    broker.submit_order("B", "sell", 20)  # |3000| + |-2000| = 5000
    with pytest.raises(RiskRejected, match=r"gross exposure would reach 5,100\.00"):
        broker.submit_order("B", "sell", 1)


def test_symbol_lists() -> None:
    broker, _ = guarded(allowed_symbols=["A"])
    broker.submit_order("A", "buy", 1)
    with pytest.raises(RiskRejected, match="B is not an allowed symbol"):
        broker.submit_order("B", "buy", 1)
    broker, _ = guarded(blocked_symbols=["B"])
    broker.submit_order("A", "buy", 1)
    with pytest.raises(RiskRejected, match="B is blocked"):
        broker.submit_order("B", "buy", 1)


def test_price_collar_against_last_price() -> None:
    broker, _ = guarded(price_collar=0.05)
    broker.submit_order("A", "buy", 1, "limit", limit_price=105)  # exactly 5 %
    broker.submit_order("A", "sell", 1, "stop", stop_price=95.5)
    with pytest.raises(RiskRejected, match=r"limit price 106 is 6.00% from the last price 100"):
        broker.submit_order("A", "buy", 1, "limit", limit_price=106)
    with pytest.raises(RiskRejected, match="stop price 1 "):
        broker.submit_order("A", "sell", 1, "stop", stop_price=1)


def test_orders_per_minute() -> None:
    broker, inner = guarded(max_orders_per_minute=3)
    for _ in range(3):
        broker.submit_order("A", "buy", 1)
    with pytest.raises(RiskRejected, match="3 orders in the last minute; limit 3"):
        broker.submit_order("A", "buy", 1)
    inner.step()  # a day later: the window has passed
    broker.submit_order("A", "buy", 1)


def test_shorting_switch_counts_open_sells() -> None:
    broker, inner = guarded(allow_short=False)
    with pytest.raises(RiskRejected, match="would go short"):
        broker.submit_order("A", "sell", 1)
    broker.submit_order("A", "buy", 10)
    inner.step()
    broker.submit_order("A", "sell", 6)
    with pytest.raises(RiskRejected) as exc:
        broker.submit_order("A", "sell", 5)
    assert exc.value.rule == "allow_short"
    broker.submit_order("A", "sell", 4)


def test_kill_switch_on_daily_loss_blocks_and_cancels() -> None:
    ts = np.datetime64("2024-01-02T14:30", "ns") + np.arange(4) * np.timedelta64(1, "m")
    close = np.array([[100.0], [100.0], [90.0], [90.0]])
    bars = Bars.from_arrays(ts, ["A"], open=close, high=close, low=close, close=close,
                            volume=np.full((4, 1), 1e6))
    inner = PaperBroker(bars, cash=10_000, slippage=0, fees=0)
    inner.step()
    broker = RiskBroker(inner, RiskLimits(max_daily_loss=500))
    broker.submit_order("A", "buy", 100)  # day start equity 10,000
    inner.step()  # filled at 100
    resting = broker.submit_order("A", "buy", 1, "limit", limit_price=50, tif="gtc")
    inner.step()  # close 90: equity 9,000, loss 1,000
    with pytest.raises(RiskRejected, match=r"daily loss 1,000.00 > limit 500.00") as exc:
        broker.submit_order("A", "sell", 1)
    assert exc.value.rule == "max_daily_loss"
    assert broker.killed is not None
    assert inner.get_order(resting["order_id"])["status"] == "canceled"
    with pytest.raises(RiskRejected, match="kill switch engaged"):
        broker.submit_order("A", "sell", 100)
    broker.reset_kill()
    broker.submit_order("A", "sell", 100)


class ProtocolOnly:
    """Exposes the six protocol methods and nothing else (like a live adapter)."""

    def __init__(self, inner: PaperBroker):
        self.submit_order = inner.submit_order
        self.cancel_order = inner.cancel_order
        self.get_positions = inner.get_positions
        self.get_cash = inner.get_cash
        self.get_fills = inner.get_fills
        self.now = inner.now


def test_kill_switch_trips_on_price_update_without_orders() -> None:
    inner = paper()
    broker = RiskBroker(ProtocolOnly(inner), RiskLimits(max_daily_loss=50))  # type: ignore[arg-type]
    broker.update_prices({"A": 100.0})
    broker.submit_order("A", "buy", 10)
    inner.step()
    broker.update_prices({"A": 100.0})  # held 10 at 100: no loss yet
    assert broker.killed is None
    broker.update_prices({"A": 94.0})  # loss 60
    assert broker.killed is not None
    assert "daily loss 60.00" in broker.killed


def test_notional_rules_refuse_unknown_prices() -> None:
    inner = paper()
    inner2 = PaperBroker(inner.bars)  # bar 0 not closed yet: no last price
    broker = RiskBroker(inner2, RiskLimits(max_order_notional=1e6))
    with pytest.raises(RiskRejected, match="no price known for A") as exc:
        broker.submit_order("A", "buy", 1)
    assert exc.value.rule == "price_unknown"
    broker.submit_order("A", "buy", 1, "limit", limit_price=100)  # its own price counts


def test_rejection_is_logged_with_rule_and_sends_nothing(tmp_path: Any) -> None:
    log = tmp_path / "risk.jsonl"
    inner = paper(trade_log=log)
    broker = RiskBroker(inner, RiskLimits(max_order_qty=1))
    with pytest.raises(RiskRejected):
        broker.submit_order("A", "buy", 2, client_order_id="c-1")
    inner.close()
    records = read_trade_log(log)
    assert [r["event"] for r in records] == ["start", "rejected"]
    assert records[-1]["rule"] == "max_order_qty"
    assert records[-1]["client_order_id"] == "c-1"
    assert inner.get_orders() == []


def test_invalid_limits_and_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="max_order_qty must be a finite number > 0"):
        RiskLimits(max_order_qty=-1)
    with pytest.raises(ConfigError, match="max_orders_per_minute must be a positive integer"):
        RiskLimits(max_orders_per_minute=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown risk limit\(s\) 'max_lots' in risk.yaml"):
        RiskLimits.from_dict({"max_lots": 3}, source="risk.yaml")
    limits = RiskLimits(max_order_qty=5, allowed_symbols=["B", "A"])
    assert RiskLimits.from_dict(limits.to_dict()) == limits
    assert limits.is_set
    assert not RiskLimits(allowed_symbols=["A"]).is_set


def test_position_tracking_without_get_order_uses_fills() -> None:
    inner = paper()
    broker = RiskBroker(ProtocolOnly(inner), RiskLimits(max_position=10))  # type: ignore[arg-type]
    broker.submit_order("A", "buy", 6)
    with pytest.raises(RiskRejected, match="position would reach 12"):
        broker.submit_order("A", "buy", 6)  # 6 open + 6
    inner.step()  # the first order fills: held 6, nothing open
    broker.submit_order("A", "buy", 4)
    with pytest.raises(RiskRejected, match=r"position would reach 11 \(held 6, open buy orders 4,"):
        broker.submit_order("A", "buy", 1)


def test_a_failing_cancel_does_not_hide_the_kill(tmp_path: Any) -> None:
    from simbroker.errors import BrokerConnectionError

    inner = paper()
    wrapped = ProtocolOnly(inner)

    def cancel(order_id: str) -> Any:
        raise BrokerConnectionError("connection lost")

    wrapped.cancel_order = cancel  # type: ignore[assignment]
    broker = RiskBroker(wrapped, RiskLimits(max_daily_loss=10))  # type: ignore[arg-type]
    broker.update_prices({"A": 100.0})
    broker.submit_order("A", "buy", 1, "limit", limit_price=50, tif="gtc")
    assert broker.kill("by hand") == []  # the cancel failed: logged, not raised
    with pytest.raises(RiskRejected, match="kill switch engaged"):
        broker.submit_order("A", "buy", 1)


def test_daily_loss_refuses_an_order_it_could_not_mark() -> None:
    inner = PaperBroker(paper().bars)  # no bar closed: no last price
    broker = RiskBroker(inner, RiskLimits(max_daily_loss=100))
    with pytest.raises(RiskRejected, match="could not mark") as exc:
        broker.submit_order("A", "buy", 1, "limit", limit_price=100)
    assert exc.value.rule == "price_unknown"


def test_malformed_orders_are_logged_as_rejected(tmp_path: Any) -> None:
    log = tmp_path / "risk.jsonl"
    inner = paper(trade_log=log)
    broker = RiskBroker(inner, RiskLimits(max_order_qty=10))
    with pytest.raises(InvalidOrder):
        broker.submit_order("A", "buy", -1)
    inner.close()
    last = read_trade_log(log)[-1]
    assert (last["event"], last["qty"]) == ("rejected", -1)
    assert inner.get_orders() == []
