"""IBKRBroker with the real client (ib_async, or ib_insync in the .ci/run venv) against
the loopback FakeTWS, at server versions 157 and 178."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _live import HAS_IB, ib_broker_fixture, ib_error_guard, tws_fixture

if not HAS_IB:
    pytest.skip("needs ib_async or ib_insync", allow_module_level=True)

from adapter_scenarios import (
    bar_feed_warms_up_then_streams_bars,
    paper_command_trades,
    sma_in_the_realtime_runner,
    trade_log_replays_to_the_brokers_state,
    wait_until,
)

from simbroker.brokers.ibkr import IBKRBroker
from simbroker.brokers.ibkr.translate import ib_lib
from simbroker.config import IBKRConfig
from simbroker.errors import BrokerConnectionError, ConfigError, OrderRejected, UnknownOrder
from simbroker.testing.checks import check_broker_conformance
from simbroker.testing.fake_tws import FakeTWS, FakeTWSVenue
from simbroker.tradelog import TradeLog, replay_trade_log

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = [157, 178]


no_decoder_errors = ib_error_guard(
    starts=("Error 202", "Error 201", "Error 200", "Error 10147", "Error 326", "Error 103",
            "API connection failed"),
    contains=("Peer closed connection",))
tws = tws_fixture(prices={"AAA": 100.0, "BBB": 20.0}, versions=VERSIONS)
broker = ib_broker_fixture(timeout=5, reconnect_backoff=(0.05, 0.4), ready_wait=None)


def step(tws: FakeTWS, broker: IBKRBroker) -> list[Any]:
    made = tws.step()
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)
    return made


@pytest.mark.parametrize("version", VERSIONS)
def test_conformance(version: int) -> None:
    check_broker_conformance(lambda: FakeTWSVenue(version, timeout=5))


def test_every_order_type_fills_or_rests(tws: FakeTWS, broker: IBKRBroker) -> None:
    mkt = broker.submit_order("AAA", "buy", 10)
    lim = broker.submit_order("AAA", "buy", 5, "limit", limit_price=95.0, tif="gtc")
    stp = broker.submit_order("AAA", "sell", 3, "stop", stop_price=90.0, tif="gtc")
    stl = broker.submit_order("BBB", "buy", 100, "stop_limit", stop_price=21.0,
                              limit_price=21.5, tif="gtc")
    assert (lim["limit_price"], stp["stop_price"]) == (95.0, 90.0)
    assert (stl["limit_price"], stl["stop_price"]) == (21.5, 21.0)
    step(tws, broker)
    assert [f["order_id"] for f in broker.get_fills()] == [mkt["order_id"]]
    tws.set_price("AAA", 94.0)
    tws.set_price("BBB", 21.2)
    step(tws, broker)
    by_order = {f["order_id"]: f for f in broker.get_fills()}
    assert by_order[lim["order_id"]]["price"] == 94.0
    assert by_order[stl["order_id"]]["price"] == 21.2
    assert stp["order_id"] not in by_order
    tws.set_price("AAA", 89.0)
    step(tws, broker)
    assert broker.get_positions() == {"AAA": 12.0, "BBB": 100.0}
    fills = broker.get_fills()
    fees = sum(f["fee"] for f in fills)
    assert fees == pytest.approx(4 * 1.0)  # $1 minimum on each execution
    spent = 10 * 100 + 5 * 94 + 100 * 21.2 - 3 * 89
    assert broker.get_cash() == pytest.approx(100_000 - spent - fees)


def test_cancel_is_idempotent_and_unknown_ids_raise(tws: FakeTWS,
                                                     broker: IBKRBroker) -> None:
    lim = broker.submit_order("AAA", "buy", 5, "limit", limit_price=50.0)
    assert broker.cancel_order(lim["order_id"])["status"] == "canceled"
    assert broker.cancel_order(lim["order_id"])["status"] == "canceled"
    with pytest.raises(UnknownOrder):
        broker.cancel_order("999999")
    with pytest.raises(UnknownOrder):
        broker.cancel_order("not-a-number")


def test_partial_fills_with_commissions(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.partial_fills = 2
    tws.commission_per_share = 0.01
    order = broker.submit_order("AAA", "buy", 400)
    step(tws, broker)
    info = broker.get_order(order["order_id"])
    assert info["status"] == "partially_filled"
    assert info["filled_qty"] == 200
    step(tws, broker)
    fills = broker.get_fills()
    assert [f["qty"] for f in fills] == [200.0, 200.0]
    assert [f["fee"] for f in fills] == [2.0, 2.0]
    assert broker.get_cash() == pytest.approx(100_000 - 400 * 100 - 4.0)


def test_rejections_change_nothing(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.reject_symbols.add("BBB")
    with pytest.raises(OrderRejected, match="error 201"):
        broker.submit_order("BBB", "buy", 1)
    with pytest.raises(OrderRejected, match="error 200"):
        broker.submit_order("NOSUCH", "buy", 1)
    assert broker.get_positions() == {}
    assert broker.get_cash() == 100_000


def test_execution_before_status_is_booked_once(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.exec_before_status = True
    broker.submit_order("AAA", "sell", 7)
    step(tws, broker)
    assert len(broker.get_fills()) == 1
    assert broker.get_positions() == {"AAA": -7.0}


def test_reconnect_recovers_fills_without_duplicates(tws: FakeTWS,
                                                     broker: IBKRBroker) -> None:
    order = broker.submit_order("AAA", "buy", 10, client_order_id="run-1")
    tws.drop_connections()
    wait_until(lambda: broker.state.value != "ready")
    made = tws.step()  # fills while the client is away
    assert len(made) == 1
    wait_until(lambda: broker.reconnects >= 1)
    assert broker.wait_for_fills({made[0].exec_id}, 10)
    fills = broker.get_fills()
    assert len(fills) == 1
    assert fills[0]["fee"] == 1.0
    again = broker.submit_order("AAA", "buy", 10, client_order_id="run-1")
    assert again["order_id"] == order["order_id"]
    assert len(tws.orders) == 1
    assert broker.cancel_order(order["order_id"])["status"] == "filled"


def test_startup_loads_positions_and_open_orders(tws: FakeTWS) -> None:
    tws.positions["AAA"] = 25.0
    first = IBKRBroker("127.0.0.1", tws.port, 7, timeout=5)
    resting = first.submit_order("AAA", "sell", 5, "limit", limit_price=500.0, tif="gtc",
                                 client_order_id="keep-me")
    first.close()  # the process died; the order rests at IB
    wait_until(lambda: 7 not in tws.clients)
    second = IBKRBroker("127.0.0.1", tws.port, 7, timeout=5)
    try:
        assert second.get_positions() == {"AAA": 25.0}
        again = second.submit_order("AAA", "sell", 5, "limit", limit_price=500.0,
                                    tif="gtc", client_order_id="keep-me")
        assert again["order_id"] == resting["order_id"]
        assert len(tws.orders) == 1
    finally:
        second.close()


def test_client_id_in_use_is_a_clear_error(tws: FakeTWS, broker: IBKRBroker) -> None:
    with pytest.raises(BrokerConnectionError, match="client id 1 is already in use"):
        IBKRBroker("127.0.0.1", tws.port, 1, timeout=3)


def test_live_is_refused_without_opt_in() -> None:
    with pytest.raises(ConfigError, match="7496"):
        IBKRBroker("127.0.0.1", 7496, 1)
    cfg = IBKRConfig(host="127.0.0.1", port=4001, client_id=1, trading_mode="live")
    with pytest.raises(ConfigError, match="real money"):
        IBKRBroker.from_config(cfg)


def test_trade_log_replays_to_the_brokers_state(tws: FakeTWS, tmp_path: Path) -> None:
    with TradeLog(tmp_path / "log.jsonl") as tlog:
        b = IBKRBroker("127.0.0.1", tws.port, 3, timeout=5, trade_log=tlog)
        try:
            trade_log_replays_to_the_brokers_state(b, lambda: step(tws, b), tlog.path)
        finally:
            b.close()


def test_bar_feed_warms_up_then_streams_bars(tws: FakeTWS, broker: IBKRBroker) -> None:
    bar_feed_warms_up_then_streams_bars(tws, broker)


def test_end_to_end_sma_in_the_realtime_runner(tmp_path: Path) -> None:
    """The backtested SMA object fills at the backtest's prices; IB's commissions on top."""
    with FakeTWS(cash=10_000_000) as tws, TradeLog(tmp_path / "rt.jsonl") as tlog:
        broker = IBKRBroker("127.0.0.1", tws.port, 1, timeout=5, trade_log=tlog)
        try:
            got = sma_in_the_realtime_runner(tws, broker, lambda: step(tws, broker), tlog)
        finally:
            broker.close()
    assert all(f["fee"] > 0 for f in got)
    assert replay_trade_log(tmp_path / "rt.jsonl").cash == pytest.approx(10_000_000 - sum(
        (1 if f["side"] == "buy" else -1) * f["notional"] + f["fee"] for f in got))


def test_the_paper_command_trades_ibkr(tmp_path: Path) -> None:
    with FakeTWS(cash=10_000_000) as tws:
        paper_command_trades(
            tws, tmp_path, "ibkr",
            f"host: 127.0.0.1\nport: {tws.port}\nclient_id: 5\ntrading_mode: paper\n"
            f"timeout: 5\nbar_poll: 0.1\ntrade_log: {tmp_path / 'ibkr.jsonl'}\n",
            connected=lambda: 5 in tws.clients)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_cancelled_order_is_found_after_a_restart(version: int) -> None:
    """Completed orders come back at start-up: a resubmission of a cancelled order's
    client id returns it instead of placing a new one."""
    with FakeTWS(server_version=version) as tws:
        tws.set_price("AAA", 100.0)
        first = IBKRBroker("127.0.0.1", tws.port, 4, timeout=5)
        order = first.submit_order("AAA", "buy", 3, "limit", limit_price=50.0,
                                   client_order_id="gone-1")
        first.cancel_order(order["order_id"])
        first.close()
        wait_until(lambda: 4 not in tws.clients)
        second = IBKRBroker("127.0.0.1", tws.port, 4, timeout=5)
        try:
            again = second.submit_order("AAA", "buy", 3, "limit", limit_price=50.0,
                                        client_order_id="gone-1")
            assert again["status"] == "canceled"
            assert again["client_order_id"] == "gone-1"
            assert len(tws.orders) == 1
            # Known by its permanent id now; cancelling it again changes nothing.
            assert second.cancel_order(again["order_id"])["status"] == "canceled"
        finally:
            second.close()


def test_delayed_executions_are_booked_once(tws: FakeTWS, broker: IBKRBroker) -> None:
    tws.exec_delay = 0.3  # orderStatus Filled arrives first, the execution later
    broker.submit_order("AAA", "buy", 5)
    step(tws, broker)
    fills = broker.get_fills()
    assert len(fills) == 1
    assert fills[0]["fee"] == 1.0


def test_contract_details_qualify_known_symbols(tws: FakeTWS, broker: IBKRBroker) -> None:
    async def details_of(symbol: str) -> Any:
        return await broker.ib.reqContractDetailsAsync(ib_lib.Stock(symbol, "SMART", "USD"))

    details = broker._run(details_of("AAA"))
    assert details[0].contract.symbol == "AAA"
    assert details[0].contract.primaryExchange == "NASDAQ"
    assert details[0].minTick == 0.01
    assert broker._run(details_of("ZZZ")) == []
