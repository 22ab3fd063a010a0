"""AlpacaBroker with the real alpaca-py clients against the loopback FakeAlpaca."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from _live import ALPACA_KEY, ALPACA_SECRET, alpaca_broker_fixture, alpaca_fixture, connect_alpaca
from adapter_scenarios import (
    bar_feed_warms_up_then_streams_bars,
    paper_command_trades,
    sma_in_the_realtime_runner,
    trade_log_replays_to_the_brokers_state,
    wait_until,
)

from simbroker.brokers.alpaca import AlpacaBroker, fill_id
from simbroker.config import AlpacaConfig, Secret
from simbroker.errors import (
    BrokerAPIError,
    ConfigError,
    InvalidOrder,
    OrderRejected,
    UnknownOrder,
)
from simbroker.testing.checks import check_broker_conformance
from simbroker.testing.fake_alpaca import FakeAlpaca, FakeAlpacaVenue
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log

# Made up per run: nothing that looks like a credential is kept in the repository.
KEY, SECRET = ALPACA_KEY, ALPACA_SECRET
ROOT = Path(__file__).resolve().parents[1]


fake = alpaca_fixture(prices={"AAA": 100.0, "BBB": 20.0}, cash=100_000)
broker = alpaca_broker_fixture(ready="listening")


def connect(fake: FakeAlpaca, **kwargs: Any) -> AlpacaBroker:
    """A broker on ``fake`` whose trade stream is listening."""
    return connect_alpaca(fake, ready="listening", **kwargs)


def step(fake: FakeAlpaca, broker: AlpacaBroker) -> list[dict[str, Any]]:
    made = fake.step()
    assert broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 10)
    return made


def test_conformance() -> None:
    check_broker_conformance(FakeAlpacaVenue)


def test_every_order_type_fills_or_rests(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    mkt = broker.submit_order("AAA", "buy", 10)
    lim = broker.submit_order("AAA", "buy", 5, "limit", limit_price=95.0, tif="gtc")
    stl = broker.submit_order("BBB", "buy", 7, "stop_limit", stop_price=21.0,
                              limit_price=21.5, tif="gtc")
    step(fake, broker)
    fills = broker.get_fills()
    assert [f["order_id"] for f in fills] == [mkt["order_id"]]
    assert fills[0]["price"] == 100.0
    # Once long, a sell closes (while flat with a buy open Alpaca would refuse it).
    stp = broker.submit_order("AAA", "sell", 3, "stop", stop_price=90.0, tif="gtc")
    fake.set_price("AAA", 94.0)   # the limit fills at its limit or better: 94
    fake.set_price("BBB", 21.2)   # the stop-limit triggers at 21 and fills under 21.5
    step(fake, broker)
    by_order = {f["order_id"]: f for f in broker.get_fills()}
    assert by_order[lim["order_id"]]["price"] == 94.0
    assert by_order[stl["order_id"]]["price"] == 21.2
    assert stp["order_id"] not in by_order
    fake.set_price("AAA", 89.0)   # the sell stop triggers
    step(fake, broker)
    by_order = {f["order_id"]: f for f in broker.get_fills()}
    assert by_order[stp["order_id"]]["qty"] == 3
    assert broker.get_positions() == {"AAA": 12.0, "BBB": 7.0}
    spent = 10 * 100 + 5 * 94 + 7 * 21.2 - 3 * 89
    assert broker.get_cash() == pytest.approx(100_000 - spent)
    assert all(f["fee"] == 0.0 for f in broker.get_fills())


def test_cancel_is_idempotent_and_unknown_ids_raise(fake: FakeAlpaca,
                                                     broker: AlpacaBroker) -> None:
    lim = broker.submit_order("AAA", "buy", 5, "limit", limit_price=50.0)
    first = broker.cancel_order(lim["order_id"])
    second = broker.cancel_order(lim["order_id"])
    assert first["status"] == second["status"] == "canceled"
    with pytest.raises(UnknownOrder):
        broker.cancel_order("not-a-uuid")
    with pytest.raises(UnknownOrder):
        broker.cancel_order("00000000-0000-4000-8000-000000000000")
    step(fake, broker)
    assert broker.get_fills() == []


def test_partial_fills_count_once_each(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.partial_fills = 2
    fake.duplicate_events = True  # every stream event arrives twice
    order = broker.submit_order("AAA", "buy", 10)
    step(fake, broker)
    info = broker.orders.by_client_id(order["client_order_id"])
    assert info is not None
    assert info["status"] == "partially_filled"
    assert info["filled_qty"] == 5
    step(fake, broker)
    fills = broker.get_fills()
    assert [f["qty"] for f in fills] == [5.0, 5.0]
    assert len({f["fill_id"] for f in fills}) == 2
    broker.reconcile()  # REST agrees: still two fills, not four
    assert len(broker.get_fills()) == 2
    assert broker.get_positions() == {"AAA": 10.0}


def test_http_errors_map_to_simbroker_errors(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    with pytest.raises(OrderRejected, match="insufficient buying power") as info:
        broker.submit_order("AAA", "buy", 10_000)
    assert info.value.symbol == "AAA"
    fake.reject_symbols.add("BBB")
    with pytest.raises(InvalidOrder, match="not tradable"):
        broker.submit_order("BBB", "buy", 1)
    fake.fail_next(503, message="service unavailable", method="POST")
    with pytest.raises(BrokerAPIError, match="503"):
        broker.submit_order("AAA", "buy", 1)
    assert broker.get_positions() == {}
    assert len(fake.orders) == 0  # nothing reached the market


def test_bad_keys_are_named_but_never_shown(fake: FakeAlpaca) -> None:
    wrong_key, wrong_secret = secrets.token_hex(10), secrets.token_urlsafe(20)
    with pytest.raises(BrokerAPIError, match="401") as info:
        AlpacaBroker(wrong_key, wrong_secret, url_override=fake.rest_url, stream=False)
    assert wrong_secret not in str(info.value)
    assert wrong_key not in str(info.value)


def test_secrets_stay_out_of_reprs_logs_and_the_trade_log(
        fake: FakeAlpaca, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with TradeLog(tmp_path / "log.jsonl") as tlog:
        b = connect(fake, trade_log=tlog)
        b.submit_order("AAA", "buy", 1)
        step(fake, b)
        b.close()
    text = (tmp_path / "log.jsonl").read_text() + repr(b) + caplog.text
    assert SECRET not in text
    assert KEY not in text


def test_a_lost_answer_is_recognised_not_resent(fake: FakeAlpaca,
                                                broker: AlpacaBroker) -> None:
    fake.lose_next_response()  # placed, but answered 504; the SDK retries, gets 422
    info = broker.submit_order("AAA", "buy", 4, client_order_id="run1-20240304T1500Z-1")
    assert len(fake.orders) == 1
    assert info["client_order_id"] == "run1-20240304T1500Z-1"


def test_resubmission_after_a_crash_returns_the_same_order(fake: FakeAlpaca) -> None:
    first = AlpacaBroker.for_fake(fake)
    placed = first.submit_order("AAA", "buy", 4, client_order_id="run1-20240304T1500Z-1")
    first.close()  # the process died here
    second = AlpacaBroker.for_fake(fake)
    again = second.submit_order("AAA", "buy", 4, client_order_id="run1-20240304T1500Z-1")
    assert again["order_id"] == placed["order_id"]
    assert len(fake.orders) == 1
    with pytest.raises(InvalidOrder, match="different order"):
        second.submit_order("AAA", "sell", 4, client_order_id="run1-20240304T1500Z-1")
    second.close()


def test_stream_drop_recovers_missed_fills_from_rest(fake: FakeAlpaca,
                                                     broker: AlpacaBroker) -> None:
    broker.submit_order("AAA", "buy", 2)
    step(fake, broker)
    fake.drop_stream()
    wait_until(lambda: fake.listeners == 0)
    broker.submit_order("AAA", "buy", 3)
    made = fake.step()  # fills while nobody listens: the event is lost
    assert len(made) == 1
    wait_until(lambda: broker.stream_connects == 2)  # reconnected (backoff 0.05-0.5 s)
    fills = broker.get_fills()  # reconciles from REST after the reconnect
    assert sorted(f["qty"] for f in fills) == [2.0, 3.0]
    assert len(broker.get_fills()) == 2
    assert fake.stream_connections == 2  # one reconnect, no storm


def test_live_is_refused_without_opt_in(fake: FakeAlpaca) -> None:
    cfg = AlpacaConfig(api_key=Secret(KEY), secret_key=Secret(SECRET), paper=False,
                       url_override=fake.rest_url)
    with pytest.raises(ConfigError, match="paper: false"):
        AlpacaBroker.from_config(cfg)
    assert SECRET not in repr(cfg)
    ok = AlpacaBroker.from_config(cfg, allow_live=True, stream=False)
    assert not ok.paper
    ok.close()


def test_trade_log_replays_to_the_brokers_state(fake: FakeAlpaca, tmp_path: Path) -> None:
    with TradeLog(tmp_path / "log.jsonl") as tlog:
        b = connect(fake, trade_log=tlog)
        try:
            trade_log_replays_to_the_brokers_state(b, lambda: step(fake, b), tlog.path)
        finally:
            b.close()


def test_bar_feed_warms_up_then_streams_bars(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    bar_feed_warms_up_then_streams_bars(fake, broker)


def test_end_to_end_sma_in_the_realtime_runner(tmp_path: Path) -> None:
    """The backtested SMA object fills like the backtest (Alpaca charges no fees)."""
    with FakeAlpaca(KEY, SECRET, cash=10_000_000) as fake, \
            TradeLog(tmp_path / "rt.jsonl") as tlog:
        broker = connect(fake, trade_log=tlog)
        try:
            got = sma_in_the_realtime_runner(fake, broker, lambda: step(fake, broker), tlog)
        finally:
            broker.close()
    assert replay_trade_log(tmp_path / "rt.jsonl").cash == pytest.approx(10_000_000 - sum(
        (1 if f["side"] == "buy" else -1) * f["notional"] for f in got))


def test_the_paper_command_trades_alpaca(tmp_path: Path) -> None:
    with FakeAlpaca(KEY, SECRET, cash=10_000_000) as fake:
        paper_command_trades(
            fake, tmp_path, "alpaca",
            "api_key: ${ALPACA_API_KEY}\nsecret_key: ${ALPACA_SECRET_KEY}\npaper: true\n"
            f"url_override: {fake.rest_url}\nstream_url: {fake.stream_url}\n"
            f"bar_poll: 0.1\ntrade_log: {tmp_path / 'alpaca.jsonl'}\n",
            connected=lambda: fake.listeners > 0,
            env={"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET}, secrets=(KEY, SECRET))


def test_fills_page_through_rest_activities(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.max_page_size = 2  # the service pages smaller than asked
    for _ in range(5):
        broker.submit_order("AAA", "buy", 1)
    step(fake, broker)
    # A new process knows nothing the stream said: REST alone must find all five.
    with AlpacaBroker.for_fake(fake, stream=False) as fresh:
        assert len(fresh.get_fills()) == 5
        assert fresh.get_fills() == broker.get_fills()


def test_delayed_events_still_arrive(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    fake.event_delay = 0.3
    broker.submit_order("AAA", "buy", 1)
    made = fake.step()
    assert broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 5)
    assert len(broker.get_fills()) == 1


def test_an_order_rejected_after_acceptance(fake: FakeAlpaca, tmp_path: Path) -> None:
    fake.reject_later_symbols.add("AAA")
    with TradeLog(tmp_path / "log.jsonl") as tlog:
        b = connect(fake, trade_log=tlog)
        order = b.submit_order("AAA", "buy", 1)
        fake.step()
        wait_until(lambda: any(r["event"] == "rejected"
                               for r in read_trade_log(tmp_path / "log.jsonl")))
        assert b.cancel_order(order["order_id"])["status"] == "rejected"
        b.close()
    assert replay_trade_log(tmp_path / "log.jsonl").open_orders == {}


def test_a_stream_that_cannot_log_back_in_falls_back_to_rest_polling(
        fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    assert broker.get_fills() == []
    fake.refuse_stream = True  # the stream goes down and cannot log back in
    fake.drop_stream()
    wait_until(lambda: not broker.stream_connected)
    broker.submit_order("AAA", "buy", 2)
    made = fake.step()  # its event is lost: nobody listens
    ids = {fill_id(a["order_id"], a["cum_qty"]) for a in made}
    # No call of ours reads REST here: the broker's own poller finds the fill.
    assert broker.wait_for_fills(ids, 10, reconcile=False)
    assert [f["qty"] for f in broker.get_fills()] == [2.0]


def test_orders_are_listed_and_read_back_as_alpaca_holds_them(fake: FakeAlpaca,
                                                              broker: AlpacaBroker) -> None:
    from simbroker.risk import RiskBroker, RiskLimits

    rest = broker.submit_order("AAA", "buy", 5, "limit", limit_price=50.0, tif="gtc")
    mkt = broker.submit_order("AAA", "buy", 2)
    step(fake, broker)
    open_ids = [o["order_id"] for o in broker.get_orders(open_only=True)]
    assert open_ids == [rest["order_id"]]
    assert [o["order_id"] for o in broker.get_orders()] == [rest["order_id"], mkt["order_id"]]
    assert broker.get_order(mkt["order_id"])["status"] == "filled"
    # Canceled at the venue behind the adapter's back: the listing does not call it open.
    fake.orders[rest["order_id"]]["status"] = "canceled"
    assert broker.get_orders(open_only=True) == []
    assert broker.get_order(rest["order_id"])["status"] == "canceled"
    with pytest.raises(UnknownOrder):
        broker.get_order("00000000-0000-4000-8000-000000000000")
    with pytest.raises(UnknownOrder):
        broker.get_order("not-a-uuid")
    risk = RiskBroker(broker, RiskLimits(max_order_qty=100))
    assert risk.get_order(mkt["order_id"])["status"] == "filled"
