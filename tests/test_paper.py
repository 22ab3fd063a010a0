"""Hand-computed cases for every matching rule of the paper broker."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import simbroker
from simbroker import (
    Bars,
    BpsOfNotional,
    Broker,
    ClockError,
    FixedBps,
    InvalidOrder,
    PaperBroker,
    ShortingNotAllowed,
    UnknownOrder,
)
from simbroker.tradelog import read_trade_log, replay_trade_log

UTC = timezone.utc


def make_bars(*rows: tuple[float, float, float, float, float], symbol: str = "X",
              start: str = "2024-01-01", freq: str = "1D") -> Bars:
    """One symbol; each row is (open, high, low, close, volume)."""
    a = np.array(rows, dtype=float)
    ts = np.datetime64(start, "ns") + np.arange(len(rows)) * np.timedelta64(
        int(np.timedelta64(1, "D") / np.timedelta64(1, "ns")) if freq == "1D" else 60_000_000_000,
        "ns")
    return Bars.from_arrays(ts, [symbol], open=a[:, :1], high=a[:, 1:2], low=a[:, 2:3],
                            close=a[:, 3:4], volume=a[:, 4:5])


FLAT = (100.0, 100.0, 100.0, 100.0, 1000.0)
BAR = (100.0, 105.0, 95.0, 101.0, 1000.0)  # the bar orders are matched against


def broker_for(*rows: tuple[float, float, float, float, float], **kw: object) -> PaperBroker:
    kw.setdefault("slippage", 0)
    kw.setdefault("fees", 0)
    return PaperBroker(make_bars(*rows), cash=100_000, **kw)  # type: ignore[arg-type]


def submit_then_step(rows: list[tuple[float, float, float, float, float]], *args: object,
                     **kw: object) -> tuple[PaperBroker, dict[str, object]]:
    """Close bar 0, submit, then close bar 1 (and any later bars)."""
    b = broker_for(*rows)
    b.step()
    info = b.submit_order("X", *args, **kw)  # type: ignore[arg-type]
    while b.has_next:
        b.step()
    return b, dict(b.get_order(info["order_id"]))


def fill_price(broker: PaperBroker) -> float | None:
    fills = broker.get_fills()
    return fills[0]["price"] if fills else None


# ------------------------------------------------------------------ protocol / clock
def test_paper_broker_satisfies_the_protocol() -> None:
    assert isinstance(broker_for(FLAT), Broker)


def test_clock_reads_first_open_then_each_close() -> None:
    b = broker_for(FLAT, FLAT)
    assert b.now() == datetime(2024, 1, 1, tzinfo=UTC)
    assert b.step() == 0
    assert b.now() == datetime(2024, 1, 2, tzinfo=UTC)  # bar 0 closed
    b.step()
    with pytest.raises(ClockError, match="all 2 bars"):
        b.step()
    assert b.now().tzinfo is not None


# ------------------------------------------------------------------ market
def test_market_order_fills_at_next_open_not_current_close() -> None:
    b, info = submit_then_step([(50, 60, 40, 55, 1000), BAR], "buy", 10)
    assert info["status"] == "filled"
    assert fill_price(b) == 100.0
    fill = b.get_fills()[0]
    assert fill["timestamp"] == datetime(2024, 1, 2, tzinfo=UTC)  # bar 1's open
    assert b.get_positions() == {"X": 10.0}
    assert b.get_cash() == 100_000 - 1000


def test_order_before_first_step_fills_on_bar_zero() -> None:
    b = broker_for(BAR)
    b.submit_order("X", "buy", 1)
    b.step()
    assert fill_price(b) == 100.0


# ------------------------------------------------------------------ limits
@pytest.mark.parametrize(
    ("side", "limit", "expected"),
    [
        ("buy", 97.0, 97.0),     # low 95 <= 97: fills at the limit
        ("buy", 101.0, 100.0),   # limit above the open: min(open, limit)
        ("buy", 95.0, 95.0),     # touching the low counts
        ("buy", 94.0, None),     # never reached
        ("sell", 103.0, 103.0),  # high 105 >= 103
        ("sell", 99.0, 100.0),   # limit below the open: max(open, limit)
        ("sell", 105.0, 105.0),  # touching the high counts
        ("sell", 106.0, None),
    ],
)
def test_limit_orders(side: str, limit: float, expected: float | None) -> None:
    b, info = submit_then_step([FLAT, BAR], side, 10, "limit", limit_price=limit)
    assert fill_price(b) == expected
    assert info["status"] == ("filled" if expected is not None else "expired")


def test_buy_limit_gap_down_fills_at_open() -> None:
    b, _ = submit_then_step([FLAT, (90, 92, 88, 91, 1000)], "buy", 1, "limit", limit_price=95)
    assert fill_price(b) == 90.0


def test_buy_limit_gap_up_above_limit_does_not_fill() -> None:
    b, info = submit_then_step([FLAT, (110, 112, 108, 111, 1000)], "buy", 1, "limit",
                               limit_price=105)
    assert fill_price(b) is None
    assert info["status"] == "expired"


# ------------------------------------------------------------------ stops
@pytest.mark.parametrize(
    ("side", "stop", "expected"),
    [
        ("buy", 103.0, 103.0),   # high 105 >= 103: at the stop
        ("buy", 98.0, 100.0),    # open already above the stop: at the open
        ("buy", 106.0, None),
        ("sell", 97.0, 97.0),    # low 95 <= 97
        ("sell", 102.0, 100.0),  # open already below: at the open
        ("sell", 94.0, None),
    ],
)
def test_stop_orders(side: str, stop: float, expected: float | None) -> None:
    b, _ = submit_then_step([FLAT, BAR], side, 10, "stop", stop_price=stop)
    assert fill_price(b) == expected


def test_sell_stop_gap_down_fills_at_open() -> None:
    b, _ = submit_then_step([FLAT, (90, 92, 85, 91, 1000)], "sell", 1, "stop", stop_price=95)
    assert fill_price(b) == 90.0


def test_stop_slippage_is_not_capped() -> None:
    b = PaperBroker(make_bars(FLAT, BAR), slippage=FixedBps(bps=10), fees=0)
    b.step()
    b.submit_order("X", "buy", 1, "stop", stop_price=103)
    b.step()
    assert fill_price(b) == pytest.approx(103 * 1.001, rel=1e-15)


# ------------------------------------------------------------------ stop-limits
def test_buy_stop_limit_triggered_inside_bar_fills_at_stop() -> None:
    b, _ = submit_then_step([FLAT, BAR], "buy", 1, "stop_limit", stop_price=103,
                            limit_price=104)
    assert fill_price(b) == 103.0


def test_buy_stop_limit_gap_through_fills_as_limit_from_open() -> None:
    # Open 100 gaps through the stop 98 and the limit 99; the low 97 comes back to 99.
    b, _ = submit_then_step([FLAT, (100, 101, 97, 100, 1000)], "buy", 1, "stop_limit",
                            stop_price=98, limit_price=99)
    assert fill_price(b) == 99.0


def test_buy_stop_limit_gap_above_limit_rests_then_fills_next_bar() -> None:
    rows = [FLAT, (100, 101, 99.5, 100, 1000), (99.8, 100, 98, 99, 1000)]
    b, info = submit_then_step(rows, "buy", 1, "stop_limit", stop_price=98, limit_price=99,
                               tif="gtc")
    assert fill_price(b) == 99.0
    assert b.get_fills()[0]["timestamp"] == datetime(2024, 1, 3, tzinfo=UTC)
    assert info["status"] == "filled"


def test_stop_limit_with_limit_below_stop_waits_for_next_bar() -> None:
    # Triggered at 103 inside bar 1; whether 102 traded afterwards is unknown -> no fill.
    rows = [FLAT, BAR, (104, 106, 101, 103, 1000)]
    b, _ = submit_then_step(rows, "buy", 1, "stop_limit", stop_price=103, limit_price=102,
                            tif="gtc")
    fills = b.get_fills()
    assert len(fills) == 1
    assert fills[0]["price"] == 102.0  # next bar: min(open 104, limit 102)
    assert fills[0]["timestamp"] == datetime(2024, 1, 3, tzinfo=UTC)


def test_sell_stop_limit() -> None:
    b, _ = submit_then_step([FLAT, BAR], "sell", 1, "stop_limit", stop_price=97,
                            limit_price=96)
    assert fill_price(b) == 97.0


def test_untriggered_stop_limit_expires() -> None:
    b, info = submit_then_step([FLAT, BAR], "buy", 1, "stop_limit", stop_price=110,
                               limit_price=111)
    assert info["status"] == "expired"
    assert b.get_fills() == []


# ------------------------------------------------------------------ slippage and fees
def test_market_slippage_against_trader_both_sides() -> None:
    b = PaperBroker(make_bars(FLAT, BAR), slippage=FixedBps(bps=10), fees=0)
    b.step()
    buy = b.submit_order("X", "buy", 1)
    sell = b.submit_order("X", "sell", 1)
    b.step()
    prices = {f["order_id"]: f["price"] for f in b.get_fills()}
    assert prices[buy["order_id"]] == pytest.approx(100.1, rel=1e-15)
    assert prices[sell["order_id"]] == pytest.approx(99.9, rel=1e-15)


def test_limit_never_fills_worse_than_limit_despite_slippage() -> None:
    b = PaperBroker(make_bars(FLAT, BAR), slippage=FixedBps(bps=10), fees=0)
    b.step()
    b.submit_order("X", "buy", 1, "limit", limit_price=100.05)  # open 100 * 1.001 > limit
    b.submit_order("X", "buy", 1, "limit", limit_price=97)      # touched: exactly the limit
    b.step()
    assert sorted(f["price"] for f in b.get_fills()) == [97.0, 100.05]


def test_slippage_not_clipped_by_default_but_clippable() -> None:
    bar = (100.0, 100.0, 100.0, 100.0, 1000.0)
    for clip, expected in ((False, 100 * 1.001), (True, 100.0)):
        b = PaperBroker(make_bars(FLAT, bar), slippage=10, fees=0, clip_to_bar=clip)
        b.submit_order("X", "buy", 1)
        b.step()
        b.step()
        assert fill_price(b) == pytest.approx(expected, rel=1e-15)


def test_fee_on_fill_notional_and_cash_conserved() -> None:
    b = PaperBroker(make_bars(FLAT, BAR), cash=50_000, slippage=FixedBps(bps=5),
                    fees=BpsOfNotional(bps=1))
    b.step()
    b.submit_order("X", "buy", 100)
    b.step()
    fill = b.get_fills()[0]
    price = 100 * (1 + 0.0005)
    assert fill["price"] == pytest.approx(price, rel=1e-15)
    assert fill["fee"] == pytest.approx(100 * price * 1e-4, rel=1e-12)
    assert fill["notional"] == pytest.approx(100 * price, rel=1e-15)
    assert b.get_cash() == pytest.approx(50_000 - 100 * price - fill["fee"], rel=1e-15)


def test_numbers_mean_bps() -> None:
    b = PaperBroker(make_bars(FLAT), slippage=7, fees=2)
    assert b.slippage == FixedBps(bps=7)
    assert b.fees == BpsOfNotional(bps=2)


# ------------------------------------------------------------------ time in force
def test_gtc_rests_until_reached() -> None:
    rows = [FLAT, BAR, BAR, (96, 97, 90, 92, 1000)]
    b, info = submit_then_step(rows, "buy", 1, "limit", limit_price=91, tif="gtc")
    assert info["status"] == "filled"
    assert b.get_fills()[0]["timestamp"] == datetime(2024, 1, 4, tzinfo=UTC)


def test_day_order_expires_after_its_day_and_logs(tmp_path: object) -> None:
    b = broker_for(FLAT, BAR, (96, 97, 90, 92, 1000))
    b.step()
    info = b.submit_order("X", "buy", 1, "limit", limit_price=91)
    b.step()
    assert b.get_order(info["order_id"])["status"] == "expired"
    b.step()
    assert b.get_fills() == []


def test_intraday_day_order_lives_until_session_end() -> None:
    # Two sessions of three minute bars; the limit is reached on the 3rd bar of day 1.
    day1 = np.datetime64("2024-01-02T14:30", "ns") + np.arange(3) * np.timedelta64(1, "m")
    day2 = np.datetime64("2024-01-03T14:30", "ns") + np.arange(3) * np.timedelta64(1, "m")
    ts = np.concatenate([day1, day2])
    lows = np.array([[100.0], [100], [99], [99], [95], [95]])
    o = np.full((6, 1), 100.0)
    bars = Bars.from_arrays(ts, ["X"], open=o, high=o + 1, low=lows, close=o,
                            volume=np.full((6, 1), 10.0))
    b = PaperBroker(bars, slippage=0, fees=0)
    b.step()
    early = b.submit_order("X", "buy", 1, "limit", limit_price=99)
    late = b.submit_order("X", "buy", 1, "limit", limit_price=95)  # only reached on day 2
    while b.has_next:
        b.step()
    assert b.get_order(early["order_id"])["status"] == "filled"
    assert b.get_order(late["order_id"])["status"] == "expired"


# ------------------------------------------------------------------ cancel
def test_cancel_is_idempotent_and_prevents_fill() -> None:
    b = broker_for(FLAT, BAR)
    b.step()
    info = b.submit_order("X", "buy", 1)
    first = b.cancel_order(info["order_id"])
    again = b.cancel_order(info["order_id"])
    assert first["status"] == again["status"] == "canceled"
    b.step()
    assert b.get_fills() == []
    assert b.get_positions() == {}


def test_cancel_filled_order_returns_final_state() -> None:
    b = broker_for(FLAT, BAR)
    info = b.submit_order("X", "buy", 1)
    b.step()
    assert b.cancel_order(info["order_id"])["status"] == "filled"


def test_cancel_unknown_order() -> None:
    with pytest.raises(UnknownOrder, match="nope"):
        broker_for(FLAT).cancel_order("nope")


# ------------------------------------------------------------------ liquidity
def test_zero_volume_and_missing_bars_fill_nothing() -> None:
    ts = np.datetime64("2024-01-01", "ns") + np.arange(3) * np.timedelta64(1, "D")
    o = np.array([[100.0, 100.0], [100.0, np.nan], [100.0, 100.0]])
    vol = np.array([[10.0, 10.0], [0.0, np.nan], [10.0, 10.0]])
    bars = Bars.from_arrays(ts, ["A", "B"], open=o, high=o, low=o, close=o, volume=vol)
    b = PaperBroker(bars, slippage=0, fees=0)
    b.step()
    a = b.submit_order("A", "buy", 1, tif="gtc")
    bb = b.submit_order("B", "buy", 1, tif="gtc")
    b.step()
    assert b.get_fills() == []
    b.step()
    assert {f["order_id"] for f in b.get_fills()} == {a["order_id"], bb["order_id"]}


# ------------------------------------------------------------------ shorting
def test_short_allowed_by_default() -> None:
    b, _ = submit_then_step([FLAT, BAR], "sell", 5)
    assert b.get_positions() == {"X": -5.0}
    assert b.get_cash() == 100_000 + 500


def test_short_refused_when_switched_off_counting_open_sells() -> None:
    b = broker_for(FLAT, BAR, BAR, allow_short=False)
    with pytest.raises(ShortingNotAllowed, match="X"):
        b.submit_order("X", "sell", 1)
    b.submit_order("X", "buy", 100)
    b.step()
    b.submit_order("X", "sell", 60)
    with pytest.raises(ShortingNotAllowed):
        b.submit_order("X", "sell", 50)
    b.submit_order("X", "sell", 40)
    b.step()
    assert b.get_positions() == {}


# ------------------------------------------------------------------ invalid orders
@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("Y", "buy", 1), {}, "symbol"),
        (("X", "buy", 0), {}, "qty"),
        (("X", "buy", -3), {}, "qty"),
        (("X", "buy", math.nan), {}, "qty"),
        (("X", "buy", math.inf), {}, "qty"),
        (("X", "buy", True), {}, "qty"),
        (("X", "buy", "ten"), {}, "qty"),
        (("X", "hold", 1), {}, "side"),
        (("X", "buy", 1, "iceberg"), {}, "order_type"),
        (("X", "buy", 1, "limit"), {}, "limit_price"),
        (("X", "buy", 1, "stop"), {}, "stop_price"),
        (("X", "buy", 1, "stop_limit"), {"stop_price": 1.0}, "limit_price"),
        (("X", "buy", 1), {"limit_price": 1.0}, "limit_price"),
        (("X", "buy", 1, "limit"), {"limit_price": -1.0}, "limit_price"),
        (("X", "buy", 1, "limit"), {"limit_price": math.nan}, "limit_price"),
        (("X", "buy", 1), {"tif": "fak"}, "tif"),
        (("", "buy", 1), {}, "symbol"),
    ],
)
def test_invalid_orders_raise_and_change_nothing(tmp_path, args, kwargs, field) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "log.jsonl"
    b = PaperBroker(make_bars(FLAT, BAR), trade_log=log)
    b.step()
    with pytest.raises(InvalidOrder) as exc:
        b.submit_order(*args, **kwargs)
    assert exc.value.field == field
    assert field in str(exc.value) or str(args[0]) in str(exc.value)
    b.step()
    assert b.get_orders() == []
    assert b.get_fills() == []
    assert b.get_positions() == {}
    assert b.get_cash() == 100_000
    b.close()
    events = [r["event"] for r in read_trade_log(log)]
    assert events == ["start", "rejected"]


def test_invalid_order_message_names_symbol_and_value() -> None:
    b = broker_for(FLAT)
    with pytest.raises(InvalidOrder, match=r"qty for X must be a finite number > 0, got -3"):
        b.submit_order("X", "buy", -3)


# ------------------------------------------------------------------ ids and fills
def test_client_order_id_resubmission_is_idempotent() -> None:
    b = broker_for(FLAT, BAR)
    first = b.submit_order("X", "buy", 5, client_order_id="abc")
    again = b.submit_order("X", "buy", 5, client_order_id="abc")
    assert again["order_id"] == first["order_id"]
    with pytest.raises(InvalidOrder, match="already used"):
        b.submit_order("X", "buy", 6, client_order_id="abc")
    b.step()
    assert len(b.get_fills()) == 1
    assert b.get_fills()[0]["client_order_id"] == "abc"


def test_get_fills_since_is_inclusive_cursor() -> None:
    b = broker_for(FLAT, BAR, BAR, BAR)
    seen: list[str] = []
    cursor = b.now()
    for _ in range(3):
        b.submit_order("X", "buy", 1)
        b.step()
        new = b.get_fills(since=cursor)
        seen += [f["fill_id"] for f in new]
        cursor = b.now()
    b.step()
    seen += [f["fill_id"] for f in b.get_fills(since=cursor)]
    assert len(seen) == len(set(seen)) == 3
    assert b.get_fills(since=datetime(2030, 1, 1, tzinfo=UTC)) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        b.get_fills(since=datetime(2024, 1, 1))


def test_several_symbols_fill_in_one_bar() -> None:
    bars = simbroker.synthetic_bars(n_symbols=5, n_bars=3, seed=2)
    b = PaperBroker(bars, slippage=0, fees=0)
    b.step()
    for sym in bars.symbols:
        b.submit_order(sym, "buy", 2)
    b.step()
    fills = b.get_fills()
    assert [f["symbol"] for f in fills] == list(bars.symbols)
    assert [f["price"] for f in fills] == list(bars.open[1])
    assert b.get_positions() == {s: 2.0 for s in bars.symbols}


# ------------------------------------------------------------------ trade log
def test_trade_log_records_every_event_and_replays(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "run.jsonl"
    b = PaperBroker(make_bars(FLAT, BAR, BAR), trade_log=log, slippage=5, fees=1)
    b.step()
    b.submit_order("X", "buy", 10)
    c = b.submit_order("X", "buy", 1, "limit", limit_price=1)
    keep = b.submit_order("X", "sell", 3, "limit", limit_price=1000, tif="gtc")
    b.cancel_order(c["order_id"])
    b.step()
    b.step()
    b.cancel_order(keep["order_id"])
    b.close()
    records = read_trade_log(log)
    assert [r["event"] for r in records] == [
        "start", "submitted", "submitted", "submitted", "canceled", "filled", "canceled"]
    assert [r["seq"] for r in records] == list(range(1, 8))
    state = replay_trade_log(log)
    assert state.cash == b.get_cash()
    assert state.positions == b.get_positions()
    assert records[-1]["ts"] == b.now()


def test_expired_event_logged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "run.jsonl"
    b = PaperBroker(make_bars(FLAT, BAR), trade_log=log)
    b.step()
    b.submit_order("X", "buy", 1, "limit", limit_price=1)
    b.step()
    b.close()
    assert [r["event"] for r in read_trade_log(log)][-1] == "expired"


def test_repr_and_unknown_bars_type() -> None:
    assert "PaperBroker(1 symbols" in repr(broker_for(FLAT))
    with pytest.raises(TypeError, match="load_bars"):
        PaperBroker("data.csv")  # type: ignore[arg-type]


def test_run_until_steps_through_closed_bars() -> None:
    b = broker_for(FLAT, FLAT, FLAT)
    assert b.run_until(datetime(2024, 1, 3, tzinfo=UTC)) == 1
    assert b.now() == datetime(2024, 1, 3, tzinfo=UTC)
    assert b.run_until(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=30)) == 2
