"""AlpacaBroker.get_account and Alpaca's buying-power refusals (403 40310000), against the
loopback FakeAlpaca; alpaca-py's own TradingClient checks that the fake answers as Alpaca
does."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from _live import ALPACA_KEY, ALPACA_SECRET, alpaca_broker_fixture, alpaca_fixture, connect_alpaca
from adapter_scenarios import wait_until
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest

from simbroker.broker import AccountBroker
from simbroker.brokers.alpaca import AlpacaBroker
from simbroker.brokers.alpaca.account import account_info
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    BrokerTimeout,
    InsufficientBuyingPower,
    OrderRejected,
    PositionConflict,
    ShortingNotAllowed,
    SimbrokerError,
)
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.testing.fake_alpaca import FakeAlpaca
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.types import AccountInfo

KEY, SECRET = ALPACA_KEY, ALPACA_SECRET
KEYS = set(AccountInfo.__annotations__)


fake = alpaca_fixture(prices={"AAA": 100.0, "BBB": 20.0}, cash=100_000)
broker = alpaca_broker_fixture(stream=False)


def connect(fake: FakeAlpaca, **kw: Any) -> AlpacaBroker:
    return connect_alpaca(fake, stream=False, **kw)


def sdk(fake: FakeAlpaca) -> TradingClient:
    return TradingClient(fake.key, fake.secret, paper=True, url_override=fake.rest_url)


def test_get_account_is_alpacas_figures(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    assert isinstance(broker, AccountBroker)
    a = broker.get_account()
    assert set(a) == KEYS
    assert a == {"cash": 100_000.0, "equity": 100_000.0, "buying_power": 200_000.0,
                 "maintenance_margin": 0.0, "initial_margin": 0.0,
                 "long_market_value": 0.0, "short_market_value": 0.0,
                 "settled_cash": None, "day_trades": 0, "pattern_day_trader": False,
                 "account_type": "margin"}
    broker.submit_order("AAA", "buy", 10)
    broker.submit_order("BBB", "sell", 50)  # a short: Reg T margin allows it
    fake.step()
    fake.set_price("AAA", 110.0)
    a = broker.get_account()
    # By hand: cash 100,000 - 1,000 + 1,000 = 100,000 (no commission); long 1,100,
    # short -1,000; equity 100,100; gross 2,100: initial 1,050, maintenance 630;
    # buying power 2 x (100,100 - 1,050) = 198,100.
    assert a["cash"] == pytest.approx(100_000.0)
    assert a["long_market_value"] == pytest.approx(1_100.0)
    assert a["short_market_value"] == pytest.approx(-1_000.0)
    assert a["equity"] == pytest.approx(100_100.0)
    assert a["initial_margin"] == pytest.approx(1_050.0)
    assert a["maintenance_margin"] == pytest.approx(630.0)
    assert a["buying_power"] == pytest.approx(198_100.0)
    # alpaca-py's own client reads the same account from the fake.
    acct = sdk(fake).get_account()
    assert float(acct.buying_power) == a["buying_power"]  # type: ignore[union-attr, arg-type]
    assert float(acct.equity) == a["equity"]  # type: ignore[union-attr, arg-type]
    assert acct.multiplier == "2"  # type: ignore[union-attr]


@pytest.mark.parametrize(("multiplier", "kind", "power", "pdt"),
                         [(1, "cash", 100_000.0, False), (4, "margin", 400_000.0, True)])
def test_multiplier_sets_the_account_type(multiplier: int, kind: str, power: float,
                                          pdt: bool) -> None:
    with FakeAlpaca(KEY, SECRET, cash=100_000, multiplier=multiplier,
                    daytrade_count=3) as fake:
        b = connect(fake)
        try:
            a = b.get_account()
            assert a["account_type"] == kind
            assert a["buying_power"] == power
            assert a["pattern_day_trader"] is pdt
            assert a["day_trades"] == 3
        finally:
            b.close()


def test_too_large_order_is_refused_with_403_and_changes_nothing(
        fake: FakeAlpaca, tmp_path: Path) -> None:
    # The venue's answer, through alpaca-py itself: 403, code 40310000.
    with pytest.raises(APIError) as raw:
        sdk(fake).submit_order(LimitOrderRequest(symbol="AAA", qty=2_001, limit_price=100,
                                                 side=OrderSide.BUY,
                                                 time_in_force=TimeInForce.DAY))
    assert raw.value.status_code == 403
    assert raw.value.code == 40310000
    assert raw.value.message == "insufficient buying power"
    with TradeLog(tmp_path / "alpaca.jsonl") as log:
        b = connect(fake, trade_log=log)
        try:
            refused_and_nothing_changed(fake, b, log)
        finally:
            b.close()


def refused_and_nothing_changed(fake: FakeAlpaca, broker: AlpacaBroker,
                                log: TradeLog) -> None:
    before, orders = broker.get_account(), len(fake.orders)
    with pytest.raises(InsufficientBuyingPower) as info:
        broker.submit_order("AAA", "buy", 2_001, "limit", limit_price=100.0,
                            client_order_id="big-1")
    err = info.value
    assert isinstance(err, OrderRejected)
    assert err.required == pytest.approx(200_100.0)  # 2,001 x the limit
    assert err.available == pytest.approx(200_000.0)  # Alpaca's buying_power
    assert err.symbol == "AAA"
    assert err.client_order_id == "big-1"
    assert "40310000" in str(err)
    assert len(fake.orders) == orders
    assert broker.get_orders() == []
    assert broker.get_account() == before
    records = read_trade_log(log.path)
    assert [r["event"] for r in records] == ["start", "rejected"]
    assert records[1]["client_order_id"] == "big-1"
    assert records[1]["order_id"] is None
    assert "insufficient buying power" in records[1]["reason"]
    # A market order: Alpaca does not say its cost, the buying power it does.
    with pytest.raises(InsufficientBuyingPower) as info:
        broker.submit_order("AAA", "buy", 5_000)
    assert math.isnan(info.value.required)
    assert info.value.available == pytest.approx(200_000.0)
    # Open orders hold buying power back, as at Alpaca.
    broker.submit_order("AAA", "buy", 1_500, "limit", limit_price=90.0, tif="gtc")
    assert broker.get_account()["buying_power"] == pytest.approx(65_000.0)
    with pytest.raises(InsufficientBuyingPower):
        broker.submit_order("BBB", "buy", 3_300, "limit", limit_price=20.0)
    assert broker.submit_order("BBB", "buy", 3_200, "limit", limit_price=20.0)["status"]


def test_cash_account_refuses_a_short(tmp_path: Path) -> None:
    # A short from flat: "account is not allowed to short" (alpacahq/alpaca-trade-api-js
    # issue 57). Selling 8 of a long 5 crosses the position through zero, which Alpaca
    # refuses as "insufficient qty available" in any account, before the shorting rule
    # (alpacahq/alpaca-trade-api-python issues 74 and 129), as the paper broker does.
    with FakeAlpaca(KEY, SECRET, cash=10_000, multiplier=1,
                    positions={"AAA": 5}) as fake, TradeLog(tmp_path / "c.jsonl") as log:
        fake.set_price("AAA", 100.0)
        fake.set_price("BBB", 50.0)
        b = connect(fake, trade_log=log)
        try:
            with pytest.raises(ShortingNotAllowed) as info:
                b.submit_order("BBB", "sell", 8)
            assert (info.value.position, info.value.qty) == (0.0, 8)
            with pytest.raises(PositionConflict) as crossing:
                b.submit_order("AAA", "sell", 8)
            assert (crossing.value.rule, crossing.value.requested,
                    crossing.value.available) == ("qty_available", 8, 5)
            assert b.submit_order("AAA", "sell", 5)["status"]  # closing is fine
            assert [r["event"] for r in read_trade_log(log.path)][:3] == [
                "start", "rejected", "rejected"]
        finally:
            b.close()


def test_faults_during_get_account_raise_and_never_return_old_figures(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    old = broker.get_account()
    fake.cash += 5_000.0  # a deposit
    fake.fail_next(503, message="service unavailable", method="GET")
    with pytest.raises(BrokerAPIError, match="503"):
        broker.get_account()
    fake.stall_next(3.0, path="/v2/account", before=True)
    t0 = time.monotonic()
    with pytest.raises(BrokerTimeout):
        broker.get_account()
    assert time.monotonic() - t0 < 2.9
    fake.release_stalls()
    fake.stop()
    with pytest.raises(BrokerConnectionError):
        broker.get_account()
    fake.start()
    assert broker.get_account()["cash"] == old["cash"] + 5_000.0


def test_risk_broker_passes_get_account_through(fake: FakeAlpaca,
                                                broker: AlpacaBroker) -> None:
    risk = RiskBroker(broker, RiskLimits(max_position=10_000))
    assert risk.get_account() == broker.get_account()


def test_account_json_is_checked() -> None:
    with pytest.raises(BrokerAPIError, match="malformed"):
        account_info({"cash": "1"})
    with pytest.raises(BrokerAPIError, match="buying_power"):
        account_info({"id": "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0001", "account_number": "P",
                      "status": "ACTIVE", "cash": "1", "equity": "1"})
    with pytest.raises(BrokerAPIError, match="not a number"):
        account_info({"id": "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0001", "account_number": "P",
                      "status": "ACTIVE", "cash": "x", "equity": "1",
                      "buying_power": "1"})


@pytest.mark.parametrize(("account", "multiplier"), [("margin", 2), ("cash", 1)])
def test_paper_and_alpaca_refuse_the_same_orders(account: str, multiplier: int) -> None:
    """The paper broker's account model and Alpaca refuse the same orders with the same
    amounts, open orders' reservations included."""
    import simbroker
    from simbroker import PaperBroker

    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=3, seed=7)
    sym = bars.symbols[0]
    paper = PaperBroker(bars, cash=100_000, slippage=0, fees=0, account=account)
    with FakeAlpaca(KEY, SECRET, cash=100_000, multiplier=multiplier) as fake:
        fake.set_price(sym, 100.0)
        live = connect(fake)
        try:
            for qty in (2_001, 1_990, 999, 10):
                try:
                    paper.submit_order(sym, "buy", qty, "limit", limit_price=100.0)
                    refused = None
                except InsufficientBuyingPower as exc:
                    refused = exc
                if refused is None:
                    assert live.submit_order(sym, "buy", qty, "limit", limit_price=100.0,
                                             tif="gtc")["status"]
                    continue
                with pytest.raises(InsufficientBuyingPower) as at_alpaca:
                    live.submit_order(sym, "buy", qty, "limit", limit_price=100.0)
                assert at_alpaca.value.required == pytest.approx(refused.required)
                assert at_alpaca.value.available == pytest.approx(refused.available)
            assert live.get_account()["buying_power"] == pytest.approx(
                paper.get_account()["buying_power"])
        finally:
            live.close()


def test_an_account_without_the_removed_pdt_fields_is_read_across_a_restart() -> None:
    """Alpaca removed ``pattern_day_trader``, ``daytrade_count`` and
    ``daytrading_buying_power`` on 2026-07-06: the account still reads, before and after
    a venue restart (a fault), with ``day_trades`` unknown and no flag claimed."""
    with FakeAlpaca(KEY, SECRET, cash=50_000, pdt_fields=False) as fake:
        fake.set_price("AAA", 100.0)
        raw = sdk(fake).get("/account")
        assert isinstance(raw, dict)
        assert not {"pattern_day_trader", "daytrade_count",
                    "daytrading_buying_power"} & set(raw)
        b = connect(fake)
        try:
            a = b.get_account()
            assert (a["pattern_day_trader"], a["day_trades"]) == (False, None)
            assert a["buying_power"] == pytest.approx(100_000)
            fake.restart()
            wait_until(lambda: _readable(b))
            assert b.get_account() == a
        finally:
            b.close()


def _readable(b: AlpacaBroker) -> bool:
    try:
        b.get_account()
    except SimbrokerError:  # refused or timed out while the venue is down
        return False
    return True
