"""IBKRBroker.get_account and TWS's buying-power refusal (error 201), with the real
client (ib_async, or ib_insync in the .ci/run venv) against the loopback FakeTWS at
server versions 157 and 178."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _live import (
    HAS_IB,
    IB_VERSIONS,
    connect_ib,
    ib_broker_fixture,
    ib_error_guard,
    tws_fixture,
)

if not HAS_IB:
    pytest.skip("needs ib_async or ib_insync", allow_module_level=True)

from adapter_scenarios import wait_until

from simbroker.broker import AccountBroker
from simbroker.brokers.ibkr import IBKRBroker
from simbroker.brokers.ibkr.account import (
    account_info,
    buying_power_refusal,
    pattern_day_trader_refusal,
)
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    BrokerTimeout,
    InsufficientBuyingPower,
    OrderRejected,
    PatternDayTrading,
)
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.testing.fake_tws import FakeTWS
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.types import AccountInfo

VERSIONS = list(IB_VERSIONS)
KEYS = set(AccountInfo.__annotations__)

# A malformed message is swallowed by the client's decoder: fail on its ERROR logs (TWS's
# error 201 is logged by the client, and is what these tests provoke).
no_decoder_errors = ib_error_guard(starts=("Error 201", "Error 202", "API connection failed"),
                                   contains=("Peer closed connection",))
tws = tws_fixture(prices={"AAA": 100.0, "BBB": 20.0})
broker = ib_broker_fixture(timeout=3.0)


def connect(tws: FakeTWS, **kw: Any) -> IBKRBroker:
    return connect_ib(tws, **{"timeout": 3.0, **kw})


def fill(tws: FakeTWS, broker: IBKRBroker) -> None:
    made = tws.step()
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)


def test_get_account_is_twss_figures(tws: FakeTWS, broker: IBKRBroker) -> None:
    assert isinstance(broker, AccountBroker)
    a = broker.get_account()
    assert set(a) == KEYS
    assert a == {"cash": 100_000.0, "equity": 100_000.0, "buying_power": 200_000.0,
                 "maintenance_margin": 0.0, "initial_margin": 0.0,
                 "long_market_value": 0.0, "short_market_value": 0.0,
                 "settled_cash": 100_000.0, "day_trades": None,
                 "pattern_day_trader": False, "account_type": "margin"}
    broker.submit_order("AAA", "buy", 10)  # 1,000 at 100, commission 1
    broker.submit_order("BBB", "sell", 50)  # short 1,000 at 20, commission 1
    fill(tws, broker)
    tws.set_price("AAA", 110.0)  # TWS marks to market; the adapter asks again
    a = broker.get_account()
    # By hand: cash 100,000 - 1,000 - 1 + 1,000 - 1 = 99,998; long 1,100, short -1,000;
    # gross 2,100: Reg T initial 1,050, maintenance 525; equity 99,998 + 100 = 100,098;
    # buying power (100,098 - 1,050) / 0.5 = 198,096.
    assert a["cash"] == pytest.approx(99_998.0)
    assert a["long_market_value"] == pytest.approx(1_100.0)
    assert a["short_market_value"] == pytest.approx(-1_000.0)
    assert a["equity"] == pytest.approx(100_098.0)
    assert a["initial_margin"] == pytest.approx(1_050.0)
    assert a["maintenance_margin"] == pytest.approx(525.0)
    assert a["buying_power"] == pytest.approx(198_096.0)
    assert a["equity"] == pytest.approx(a["cash"] + a["long_market_value"]
                                        + a["short_market_value"])
    assert broker.get_cash() == pytest.approx(a["cash"])  # one book


def test_cash_account_and_day_trades(tws: FakeTWS) -> None:
    with FakeTWS(server_version=tws.server_version, account_type="cash",
                 day_trades_remaining=1) as fake:
        fake.set_price("AAA", 50.0)
        b = connect(fake)
        try:
            a = b.get_account()
            assert a["account_type"] == "cash"
            assert a["buying_power"] == 100_000.0
            assert a["day_trades"] == 2  # three allowed in five days, one left
            with pytest.raises(InsufficientBuyingPower) as info:
                b.submit_order("AAA", "buy", 2_001)  # 100,050 > 100,000 of cash
            assert info.value.required == pytest.approx(100_050.0)
            assert info.value.available == pytest.approx(100_000.0)
            assert b.submit_order("AAA", "buy", 2_000)["status"] == "new"
        finally:
            b.close()
    with FakeTWS(server_version=tws.server_version) as fake:
        b = connect(fake, account_type="cash")  # the caller says what TWS does not
        try:
            assert b.get_account()["account_type"] == "cash"
        finally:
            b.close()


def test_too_large_order_is_refused_by_tws_with_201_and_changes_nothing(
        tws: FakeTWS, tmp_path: Path) -> None:
    with TradeLog(tmp_path / "ib.jsonl") as log:
        refused_and_nothing_changed(tws, log)


def refused_and_nothing_changed(tws: FakeTWS, log: TradeLog) -> None:
    broker = connect(tws, trade_log=log)
    try:
        before = broker.get_account()
        with pytest.raises(InsufficientBuyingPower) as info:
            broker.submit_order("AAA", "buy", 2_001, client_order_id="big-1")
        err = info.value
        assert isinstance(err, OrderRejected)
        # TWS's own figures: equity with loan value 100,000, initial margin after the
        # order 50% of 200,100.
        assert err.available == pytest.approx(100_000.0)
        assert err.required == pytest.approx(100_050.0)
        assert err.symbol == "AAA"
        assert err.client_order_id == "big-1"
        assert "201" in str(err)
        assert "EQUITY WITH LOAN VALUE" in str(err)
        assert broker.get_order("big-1")["status"] == "rejected"
        # The venue holds nothing, nothing was booked, the figures are unchanged.
        assert not [o for o in tws.orders.values() if o.status in ("Submitted",
                                                                  "PreSubmitted")]
        assert tws.step() == []
        assert broker.get_positions() == {}
        assert broker.get_fills() == []
        assert broker.get_account() == before
        records = read_trade_log(log.path)
        rejected = [r for r in records if r["event"] == "rejected"]
        assert len(rejected) == 1
        assert rejected[0]["order_id"] == "big-1"
        assert "EQUITY WITH LOAN VALUE" in rejected[0]["reason"]
        # Within buying power it goes through; a sell that only reduces always does.
        assert broker.submit_order("AAA", "buy", 1_990)["status"] == "new"
        fill(tws, broker)
        assert broker.get_account()["buying_power"] < 2_000
        assert broker.submit_order("AAA", "sell", 1_990)["status"] == "new"
        fill(tws, broker)
        assert broker.get_positions() == {}
        # A limit order is judged at its limit price, a short like a buy.
        with pytest.raises(InsufficientBuyingPower):
            broker.submit_order("BBB", "sell", 20_000, "limit", limit_price=20.0)
    finally:
        broker.close()


def test_a_drop_during_get_account_raises_and_never_returns_old_figures(
        tws: FakeTWS, broker: IBKRBroker) -> None:
    old = broker.get_account()
    tws.cash += 5_000.0  # a deposit TWS knows of and the client has not heard
    tws.inject("drop_during_account")
    with pytest.raises(BrokerConnectionError):
        broker.get_account()
    assert tws.faults_injected["drop_during_account"] == 1
    wait_until(lambda: broker.reconnects >= 1 and broker.state.value == "ready", 15)
    fresh = broker.get_account()
    assert fresh["cash"] == old["cash"] + 5_000.0
    assert tws.connections_made == 2


def test_a_stalled_answer_times_out(tws: FakeTWS) -> None:
    broker = connect(tws, timeout=1.0)
    try:
        tws.inject("stall_account", delay=2.5)
        t0 = time.monotonic()
        with pytest.raises(BrokerTimeout):
            broker.get_account()
        assert time.monotonic() - t0 < 2.0
        time.sleep(2.0)  # the late answer arrives and changes nothing
        tws.cash -= 1.0
        assert broker.get_account()["cash"] == 99_999.0
    finally:
        broker.close()


def test_get_account_only_when_ready(tws: FakeTWS) -> None:
    broker = connect(tws, ready_wait=0.3, reconnect_backoff=(5.0, 5.0))
    try:
        broker.get_account()
        tws.drop_connections()
        wait_until(lambda: broker.state.value != "ready")
        t0 = time.monotonic()
        with pytest.raises(BrokerConnectionError, match="get_account"):
            broker.get_account()
        assert time.monotonic() - t0 < 3.0
    finally:
        broker.close()


def test_risk_broker_passes_get_account_through(tws: FakeTWS, broker: IBKRBroker) -> None:
    risk = RiskBroker(broker, RiskLimits(max_position=10_000))
    assert risk.get_account() == broker.get_account()


def test_account_values_parse_and_refusal_texts() -> None:
    class V:
        def __init__(self, tag: str, value: str, currency: str) -> None:
            self.tag, self.value, self.currency = tag, value, currency

    rows = [V("NetLiquidation", "5000", "USD"), V("NetLiquidation", "9", "EUR"),
            V("TotalCashValue", "1000", "BASE"), V("TotalCashValue", "900", "USD"),
            V("BuyingPower", "2000", "USD"), V("AvailableFunds", "2000", "USD"),
            V("InitMarginReq", "2000", "USD"), V("MaintMarginReq", "1000", "USD"),
            V("DayTradesRemaining", "3", "")]
    a = account_info(rows)
    assert a["cash"] == 900.0
    assert a["equity"] == 5000.0
    assert a["account_type"] == "cash"
    assert a["day_trades"] == 0
    assert a["long_market_value"] == 0.0
    assert a["settled_cash"] is None
    with pytest.raises(BrokerAPIError, match="BuyingPower"):
        account_info(rows[:4])
    err = buying_power_refusal(
        "Order rejected - reason:Your order is not accepted. In order to obtain the "
        "desired position your Equity with Loan Value [1,000.50 USD] must exceed the new "
        "total Initial Margin of [1500]", symbol="X")
    assert err is not None
    assert err.available == 1000.5
    assert err.required == 1500.0
    assert buying_power_refusal("Order rejected - reason:X is not allowed",
                                symbol="X") is None


def test_concurrent_calls_each_get_an_answer(tws: FakeTWS, broker: IBKRBroker) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: broker.get_account(), range(8)))
    assert all(a == answers[0] for a in answers)


@pytest.mark.parametrize("account", ["margin", "cash"])
def test_paper_and_tws_refuse_the_same_order(tws: FakeTWS, account: str) -> None:
    """The paper broker's account model and TWS refuse the same orders: TWS names
    margin (Reg T's 50 % for a margin account, all of it for cash), the paper broker the
    notional, so their amounts differ by exactly the initial rate."""
    import simbroker
    from simbroker import PaperBroker

    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=3, seed=7)
    sym = bars.symbols[0]
    rate = 0.5 if account == "margin" else 1.0
    with FakeTWS(server_version=tws.server_version, account_type=account) as fake:
        fake.set_price(sym, 100.0)
        live = connect(fake)
        try:
            for qty in (2_001, 1_990, 999):
                paper = PaperBroker(bars, cash=100_000, slippage=0, fees=0, account=account)
                try:
                    paper.submit_order(sym, "buy", qty, "limit", limit_price=100.0)
                    refused = None
                except InsufficientBuyingPower as exc:
                    refused = exc
                if refused is None:
                    info = live.submit_order(sym, "buy", qty, "limit", limit_price=100.0)
                    assert info["status"] == "new"
                    live.cancel_order(info["order_id"])
                    continue
                with pytest.raises(InsufficientBuyingPower) as at_tws:
                    live.submit_order(sym, "buy", qty, "limit", limit_price=100.0)
                assert at_tws.value.required == pytest.approx(refused.required * rate)
                assert at_tws.value.available == pytest.approx(refused.available * rate)
        finally:
            live.close()


# ------------------------------------------------------------------ day trades
def values(fake: FakeTWS) -> dict[str, str]:
    return {k: v for k, v, _ in fake._values() if k.startswith("DayTradesRemaining")}


DAYS = ("DayTradesRemaining", "DayTradesRemainingT+1", "DayTradesRemainingT+2",
        "DayTradesRemainingT+3", "DayTradesRemainingT+4")


def test_a_pattern_day_trader_reports_unlimited_day_trades_at_25k_or_more(
        tws: FakeTWS) -> None:
    with FakeTWS(server_version=tws.server_version, pattern_day_trader=True) as fake:
        fake.set_price("AAA", 100.0)
        assert values(fake) == dict.fromkeys(DAYS, "-1")  # as an unflagged one does
        b = connect(fake)
        flagged = connect(fake, client_id=2, pattern_day_trader=True)
        try:
            a = b.get_account()
            assert a["day_trades"] is None  # unlimited: no count to report
            assert a["pattern_day_trader"] is False  # the API cannot tell: not claimed
            assert flagged.get_account()["pattern_day_trader"] is True  # the caller's
            assert b.submit_order("AAA", "buy", 10)["status"] == "new"
        finally:
            b.close()
            flagged.close()


def test_under_25k_a_flagged_account_may_only_close(tws: FakeTWS, tmp_path: Path) -> None:
    # Equity 20,000 (10,000 of cash and 100 AAA at 100): flagged, TWS shows no day
    # trade left in any of the five days and refuses whatever opens a position.
    with FakeTWS(server_version=tws.server_version, cash=10_000.0,
                 positions={"AAA": 100.0}, pattern_day_trader=True) as fake, \
            TradeLog(tmp_path / "ib.jsonl") as log:
        fake.set_price("AAA", 100.0)
        fake.set_price("BBB", 20.0)
        assert values(fake) == dict.fromkeys(DAYS, "0")
        b = connect(fake, trade_log=log, pattern_day_trader=True)
        try:
            a = b.get_account()
            assert (a["day_trades"], a["pattern_day_trader"]) == (3, True)
            for args in (("AAA", "buy", 1), ("BBB", "sell", 5), ("AAA", "sell", 101)):
                with pytest.raises(PatternDayTrading) as err:
                    b.submit_order(*args, client_order_id=f"pdt-{args[0]}-{args[2]}")
                assert err.value.rule == "pattern_day_trader"
                assert err.value.equity == pytest.approx(20_000.0)
                assert isinstance(err.value, OrderRejected)
            assert not [o for o in fake.orders.values() if o.status in ("Submitted",
                                                                       "PreSubmitted")]
            assert b.get_account() == a  # nothing changed
            assert b.submit_order("AAA", "sell", 40)["status"] == "new"  # closing: fine
            fill(fake, b)
            assert b.get_positions() == {"AAA": 60.0}
        finally:
            b.close()
        rejected = [r for r in read_trade_log(log.path) if r["event"] == "rejected"]
        assert len(rejected) == 3
        assert all("PATTERN DAY TRADER" in r["reason"] for r in rejected)


@pytest.mark.parametrize(("left", "refused"), [(2, False), (0, True)])
def test_under_25k_an_unflagged_account_counts_its_day_trades(tws: FakeTWS, left: int,
                                                             refused: bool) -> None:
    with FakeTWS(server_version=tws.server_version, cash=20_000.0,
                 day_trades_remaining=left) as fake:
        fake.set_price("AAA", 100.0)
        assert values(fake) == dict.fromkeys(DAYS, str(left))
        b = connect(fake)
        try:
            a = b.get_account()
            assert (a["day_trades"], a["pattern_day_trader"]) == (3 - left, False)
            if refused:  # IB's "potential pattern day trader": its three are used
                with pytest.raises(PatternDayTrading):
                    b.submit_order("AAA", "buy", 1)
            else:
                assert b.submit_order("AAA", "buy", 1)["status"] == "new"
        finally:
            b.close()
    # Above 25,000 the same account's day trades are unlimited again.
    with FakeTWS(server_version=tws.server_version, cash=30_000.0,
                 day_trades_remaining=left) as fake:
        assert values(fake) == dict.fromkeys(DAYS, "-1")


def test_a_pdt_refusal_survives_a_drop_and_a_restart_and_never_places_the_order(
        tws: FakeTWS) -> None:
    """Fault test: the refusal is the same on the connection the drop forced and on a
    restarted adapter; the refused order is never at the venue, the closing one once."""
    with FakeTWS(server_version=tws.server_version, cash=20_000.0,
                 day_trades_remaining=0, positions={"AAA": 10.0}) as fake:
        fake.set_price("AAA", 100.0)
        b = connect(fake)
        try:
            fake.inject("drop_after_ack")
            assert b.submit_order("AAA", "sell", 4, client_order_id="close-1")["status"] \
                in ("new", "pending_confirm")
            wait_until(lambda: b.reconnects >= 1 and b.state.value == "ready", 15)
            with pytest.raises(PatternDayTrading):
                b.submit_order("AAA", "buy", 1, client_order_id="open-1")
        finally:
            b.close()
        b = connect(fake)  # a restart: same client id, state from TWS
        try:
            with pytest.raises(PatternDayTrading):
                b.submit_order("AAA", "buy", 1, client_order_id="open-1")
            refs = [o.order_ref for o in fake.orders.values()]
            assert refs.count("close-1") == 1  # not lost, not doubled
            assert "open-1" not in refs
            fill(fake, b)
            assert b.get_positions() == {"AAA": 6.0}
            assert len(b.get_fills()) == 1
        finally:
            b.close()


def test_pdt_refusal_text() -> None:
    err = pattern_day_trader_refusal("Order rejected - reason:Potential Pattern Day "
                                     "Trader", symbol="X", equity=1.0)
    assert isinstance(err, PatternDayTrading)
    assert pattern_day_trader_refusal("Order rejected - reason:X is not allowed",
                                      symbol="X", equity=1.0) is None
