"""Sessions from exchange calendars: regular hours, day expiry, extended hours (issue 17)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker.bars import Bars
from simbroker.cli import main
from simbroker.errors import ConfigError, DataError, InvalidOrder
from simbroker.sessions import NEVER, Sessions, validate_sessions, with_calendar
from simbroker.vectorized import TargetPositions, backtest_vectorized

xcals = pytest.importorskip("exchange_calendars")


def xcal(name: str, start: str, end: str):
    """An exchange_calendars calendar, built without its pandas deprecation warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return xcals.get_calendar(name, start=start, end=end)

ET = "America/New_York"
CT = "America/Chicago"


def _bars(index: pd.DatetimeIndex, symbols: list[str], *, price: float = 100.0,
          lows: dict[pd.Timestamp, float] | None = None, seed: int | None = None) -> Bars:
    n = len(index)
    if seed is None:
        close = np.full((n, len(symbols)), price)
    else:
        rng = np.random.default_rng(seed)
        close = price * np.exp(np.cumsum(rng.normal(0, 0.002, (n, len(symbols))), axis=0))
    open_ = close.copy()
    high = close + 0.5
    low = close - 0.5
    for when, value in (lows or {}).items():
        low[index.get_loc(when)] = value
    return Bars.from_arrays(index, symbols, open=open_, high=high, low=low, close=close,
                            volume=np.full_like(close, 1_000.0), interval="1min")


def _minutes(day: str, start: str, end: str, tz: str) -> pd.DatetimeIndex:
    """Minute bar opens ``start <= t < end`` local time on ``day``."""
    return pd.date_range(f"{day} {start}", f"{day} {end}", freq="1min", tz=tz,
                         inclusive="left")


def spy_minutes(*days: str) -> pd.DatetimeIndex:
    """SPY-like minute bars 04:00-20:00 ET (pre-market, regular, post-market)."""
    return _minutes(days[0], "04:00", "20:00", ET).append(
        [_minutes(d, "04:00", "20:00", ET) for d in days[1:]])


def at(tz: str, text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=tz)


def run_to(broker: simbroker.PaperBroker, when: pd.Timestamp) -> None:
    """Step until the clock reads ``when`` (the close of the bar opening a minute before)."""
    broker.run_until(when.to_pydatetime())
    assert broker.now() == when


# --------------------------------------------------------------- the SPY day
@pytest.fixture(scope="module")
def spy() -> Bars:
    index = spy_minutes("2024-11-26", "2024-11-27")
    # Only the 16:15 ET post-market bar trades down to 90.
    return with_calendar(_bars(index, ["SPY"], lows={at(ET, "2024-11-26 16:15"): 90.0}),
                         "XNYS")


def test_classifies_pre_regular_and_post_market(spy: Bars) -> None:
    s = spy.sessions
    assert isinstance(s, Sessions)
    assert s.calendars == ("XNYS",)
    frame = pd.DataFrame({"regular": s.regular[:, 0], "day": s.day[:, 0]},
                         index=spy.index.tz_convert(ET))
    day1 = frame.loc["2024-11-26"]
    assert day1["regular"].sum() == 390  # 09:30-15:59
    assert (day1["day"] == np.datetime64("2024-11-26")).all()  # pre and post too
    assert day1.index[day1["regular"]][0] == at(ET, "2024-11-26 09:30")
    assert day1.index[day1["regular"]][-1] == at(ET, "2024-11-26 15:59")


def test_day_limit_placed_at_15_does_not_fill_post_market_and_expires_at_16(spy: Bars) -> None:
    broker = simbroker.PaperBroker(spy, slippage=0, fees=0)
    run_to(broker, at(ET, "2024-11-26 15:00"))
    order = broker.submit_order("SPY", "buy", 10, "limit", limit_price=95.0)
    run_to(broker, at(ET, "2024-11-26 15:59"))
    assert broker.get_order(order["order_id"])["status"] == "new"
    broker.step()  # the 15:59 bar closes at 16:00: the regular session is over
    assert broker.now() == at(ET, "2024-11-26 16:00")
    info = broker.get_order(order["order_id"])
    assert info["status"] == "expired"
    assert "session" in (info["reason"] or "")
    run_to(broker, at(ET, "2024-11-26 17:00"))
    assert broker.get_fills() == []


def test_extended_hours_day_limit_fills_post_market(spy: Bars) -> None:
    broker = simbroker.PaperBroker(spy, slippage=0, fees=0)
    run_to(broker, at(ET, "2024-11-26 15:00"))
    order = broker.submit_order("SPY", "buy", 10, "limit", limit_price=95.0,
                                extended_hours=True)
    run_to(broker, at(ET, "2024-11-26 16:16"))
    (fill,) = broker.get_fills()
    assert fill["order_id"] == order["order_id"]
    assert fill["timestamp"] == at(ET, "2024-11-26 16:15")
    assert fill["price"] == 95.0  # min(open 100, limit 95)


def test_extended_hours_day_order_expires_at_the_end_of_post_market(spy: Bars) -> None:
    broker = simbroker.PaperBroker(spy, slippage=0, fees=0)
    run_to(broker, at(ET, "2024-11-26 17:00"))
    order = broker.submit_order("SPY", "buy", 10, "limit", limit_price=50.0,
                                extended_hours=True)
    run_to(broker, at(ET, "2024-11-26 19:59"))
    assert broker.get_order(order["order_id"])["status"] == "new"
    broker.step()  # 19:59 bar, the trading day's last
    assert broker.get_order(order["order_id"])["status"] == "expired"


def test_day_order_placed_after_the_close_waits_for_the_next_session(spy: Bars) -> None:
    broker = simbroker.PaperBroker(spy, slippage=0, fees=0)
    run_to(broker, at(ET, "2024-11-26 17:00"))
    order = broker.submit_order("SPY", "buy", 10)  # market, regular hours only
    run_to(broker, at(ET, "2024-11-27 09:30"))  # post-market and pre-market pass
    assert broker.get_fills() == []
    broker.step()
    (fill,) = broker.get_fills()
    assert fill["order_id"] == order["order_id"]
    assert fill["timestamp"] == at(ET, "2024-11-27 09:30")


def test_stops_do_not_trigger_outside_regular_hours(spy: Bars) -> None:
    broker = simbroker.PaperBroker(spy, slippage=0, fees=0, positions={"SPY": 10})
    run_to(broker, at(ET, "2024-11-26 16:00"))
    order = broker.submit_order("SPY", "sell", 10, "stop", stop_price=95.0, tif="gtc")
    run_to(broker, at(ET, "2024-11-27 10:00"))
    assert broker.get_order(order["order_id"])["status"] == "new"
    assert broker.get_fills() == []


def test_session_lookups_for_auctions(spy: Bars) -> None:
    broker = simbroker.PaperBroker(spy)
    ts = spy.index.tz_convert(ET)
    i = int(ts.get_loc(at(ET, "2024-11-26 12:00")))
    col = spy.symbol_index("SPY")
    assert ts[broker._session_close_bar(i, col)] == at(ET, "2024-11-26 15:59")
    assert ts[broker._session_close_bar(i, col, True)] == at(ET, "2024-11-26 19:59")
    assert ts[broker._session_open_bar(i, col)] == at(ET, "2024-11-27 09:30")
    pre = int(ts.get_loc(at(ET, "2024-11-26 05:00")))
    assert ts[broker._session_open_bar(pre, col)] == at(ET, "2024-11-26 09:30")
    last = int(ts.get_loc(at(ET, "2024-11-27 17:00")))
    assert broker._session_open_bar(last, col) == NEVER
    assert broker._session_close_bar(last, col) == NEVER  # no regular bar left


def test_without_a_calendar_the_utc_date_rule_stays() -> None:
    bars = _bars(spy_minutes("2024-11-26"), ["SPY"])
    assert bars.sessions is None
    broker = simbroker.PaperBroker(bars, slippage=0, fees=0)
    run_to(broker, at(ET, "2024-11-26 15:00"))
    order = broker.submit_order("SPY", "buy", 10, "limit", limit_price=1.0)
    run_to(broker, at(ET, "2024-11-26 18:59"))
    assert broker.get_order(order["order_id"])["status"] == "new"
    broker.step()  # the 18:59 ET bar is the UTC date's last: 19:00 ET is 00:00 UTC
    assert broker.get_order(order["order_id"])["status"] == "expired"
    i = int(bars.index.get_loc(at(ET, "2024-11-26 12:00")))
    assert bars.index[broker._session_open_bar(i, 0)] == at(ET, "2024-11-26 19:00")
    # session_tz still sets the date rule.
    broker = simbroker.PaperBroker(bars, session_tz=ET)
    assert bars.index[broker._session_close_bar(i, 0)] == at(ET, "2024-11-26 19:59")
    assert broker._session_open_bar(i, 0) == NEVER


# ----------------------------------------------------------------- half day
def test_half_day_closes_at_13_et() -> None:
    index = spy_minutes("2024-11-29")
    bars = with_calendar(_bars(index, ["SPY"], lows={at(ET, "2024-11-29 13:30"): 90.0}), "XNYS")
    regular = bars.index.tz_convert(ET)[bars.sessions.regular[:, 0]]
    assert regular[0] == at(ET, "2024-11-29 09:30")
    assert regular[-1] == at(ET, "2024-11-29 12:59")
    broker = simbroker.PaperBroker(bars, slippage=0, fees=0)
    run_to(broker, at(ET, "2024-11-29 12:00"))
    order = broker.submit_order("SPY", "buy", 1, "limit", limit_price=95.0)
    run_to(broker, at(ET, "2024-11-29 13:00"))
    assert broker.get_order(order["order_id"])["status"] == "expired"
    run_to(broker, at(ET, "2024-11-29 14:00"))
    assert broker.get_fills() == []


# ------------------------------------------------------------ CME futures
def es_minutes() -> pd.DatetimeIndex:
    """ES-like minutes: Friday to 16:00 CT, the Sunday 17:00 CT open into MLK Monday
    (early close 12:00 CT), Monday's 17:00 CT reopen for Tuesday, and bars during the
    Christmas-like gap a real file would not have."""
    return (_minutes("2024-01-12", "14:00", "16:00", CT)
            .append(_minutes("2024-01-14", "17:00", "23:59", CT))
            .append(_minutes("2024-01-15", "00:00", "16:00", CT))
            .append(_minutes("2024-01-15", "17:00", "20:00", CT)))


def test_cme_sunday_evening_and_monday_are_one_trading_day() -> None:
    bars = with_calendar(_bars(es_minutes(), ["ES"]), "CMES")
    s = bars.sessions
    local = bars.index.tz_convert(CT)
    day = pd.Series(s.day[:, 0], index=local)
    regular = pd.Series(s.regular[:, 0], index=local)
    mlk = np.datetime64("2024-01-15")
    assert (day["2024-01-14 17:00":"2024-01-15 11:59"] == mlk).all()
    assert regular["2024-01-14 17:00":"2024-01-15 11:59"].all()
    # The MLK early close: 12:00-16:00 CT is post-market of the same trading day.
    assert not regular["2024-01-15 12:00":"2024-01-15 15:59"].any()
    assert (day["2024-01-15 12:00":"2024-01-15 15:59"] == mlk).all()
    # Monday 17:00 CT opens Tuesday's session.
    assert (day["2024-01-15 17:00":] == np.datetime64("2024-01-16")).all()
    assert regular["2024-01-15 17:00":].all()
    assert (day["2024-01-12"] == np.datetime64("2024-01-12")).all()


def test_cme_day_order_lives_across_midnight_and_expires_at_the_holiday_close() -> None:
    bars = with_calendar(_bars(es_minutes(), ["ES"], price=4800.0,
                               lows={at(CT, "2024-01-15 13:00"): 4700.0}), "CMES")
    broker = simbroker.PaperBroker(bars, slippage=0, fees=0)
    run_to(broker, at(CT, "2024-01-14 18:00"))
    order = broker.submit_order("ES", "buy", 1, "limit", limit_price=4750.0)
    run_to(broker, at(CT, "2024-01-15 11:59"))
    assert broker.get_order(order["order_id"])["status"] == "new"  # past midnight
    broker.step()
    assert broker.get_order(order["order_id"])["status"] == "expired"
    run_to(broker, at(CT, "2024-01-15 14:00"))
    assert broker.get_fills() == []  # the 13:00 dip is after the close


def test_cme_friday_order_does_not_expire_over_the_weekend_when_gtc() -> None:
    bars = with_calendar(_bars(es_minutes(), ["ES"], price=4800.0), "CMES")
    broker = simbroker.PaperBroker(bars, slippage=0, fees=0)
    run_to(broker, at(CT, "2024-01-12 15:30"))
    day = broker.submit_order("ES", "buy", 1, "limit", limit_price=1.0)
    gtc = broker.submit_order("ES", "buy", 1, "limit", limit_price=1.0, tif="gtc")
    run_to(broker, at(CT, "2024-01-14 17:01"))
    assert broker.get_order(day["order_id"])["status"] == "expired"
    assert broker.get_order(gtc["order_id"])["status"] == "new"


def test_christmas_bars_are_in_no_trading_day() -> None:
    index = (_minutes("2023-12-25", "10:00", "11:00", CT)
             .append(_minutes("2023-12-25", "17:00", "18:00", CT)))
    bars = with_calendar(_bars(index, ["ES"]), "CMES")
    s = bars.sessions
    assert np.isnat(s.day[:60, 0]).all()
    assert not s.regular[:60, 0].any()
    assert (s.day[60:, 0] == np.datetime64("2023-12-26")).all()
    broker = simbroker.PaperBroker(bars, slippage=0, fees=0)
    broker.step()
    broker.submit_order("ES", "buy", 1, "limit", limit_price=1e6, extended_hours=True)
    run_to(broker, at(CT, "2023-12-25 11:00"))
    assert broker.get_fills() == []  # no trading day: not even extended hours
    broker.step()
    assert broker.get_fills()[0]["timestamp"] == at(CT, "2023-12-25 17:00")


# ------------------------------------------------------------ per symbol
def test_per_symbol_calendars_are_stored_per_calendar() -> None:
    index = spy_minutes("2024-01-16").union(es_minutes())
    bars = _bars(index, ["ES", "NQ", "SPY"])
    panel = with_calendar(bars, {"ES": "CMES", "NQ": "cmes", "SPY": "XNYS"})
    s = panel.sessions
    assert s.calendars == ("CMES", "XNYS")
    assert s.columns.tolist() == [0, 0, 1]
    assert s.regular.shape == (len(index), 2)
    rth = s.regular_hours()
    assert rth.shape == (len(index), 3)
    assert (rth[:, 0] == rth[:, 1]).all()
    assert not (rth[:, 0] == rth[:, 2]).all()
    only = panel.select(["SPY"])
    assert only.sessions.calendars == ("XNYS",)
    assert (only.sessions.regular[:, 0] == s.regular[:, 1]).all()
    with pytest.raises(DataError, match="'NQ'"):
        with_calendar(bars, {"ES": "CMES", "SPY": "XNYS"})
    with pytest.raises(DataError, match="'QQQ'"):
        with_calendar(bars, {"ES": "CMES", "NQ": "CMES", "SPY": "XNYS", "QQQ": "XNYS"})


def test_select_and_rows_carry_sessions(spy: Bars) -> None:
    part = spy.select(start="2024-11-26 21:00", end="2024-11-27 15:00")
    assert part.sessions is not None
    assert part.sessions.n_bars == len(part)
    local = part.index.tz_convert(ET)
    assert local[part.sessions.regular[:, 0]][0] == at(ET, "2024-11-27 09:30")
    head = spy.rows(0, 10)
    assert head.sessions is not None
    assert head.sessions.n_bars == 10
    broker = simbroker.PaperBroker(part)  # the cut session ends at its last bar
    assert broker._session_close_bar(0, 0) == len(part) - 1


# -------------------------------------------------------------- daily bars
def test_daily_bars_on_a_calendar() -> None:
    index = pd.date_range("2024-11-25", "2024-12-03", freq="D", tz="UTC")
    n = len(index)
    c = np.full((n, 1), 10.0)
    bars = Bars.from_arrays(index, ["SPY"], open=c, high=c, low=c, close=c, volume=c,
                            interval="1D")
    s = with_calendar(bars, "XNYS").sessions
    days = pd.Series(s.day[:, 0], index=index.date)
    assert s.regular[:, 0].tolist() == [d.weekday() < 5 and str(d) != "2024-11-28"
                                        for d in index.date]
    assert days[s.regular[:, 0]].astype(str).tolist() == [
        str(d) for d, r in zip(index.date, s.regular[:, 0], strict=True) if r]
    # Midnight exchange time is the same session; on CMES too (which opens the evening
    # before).
    local = Bars.from_arrays(index.tz_localize(None).tz_localize(CT), ["ES"], open=c,
                             high=c, low=c, close=c, volume=c, interval="1D")
    cme = with_calendar(local, "CMES").sessions
    weekday = index.day_of_week < 5
    assert (cme.day[weekday, 0] == index.tz_localize(None).values.astype("M8[D]")[weekday]
            ).all()
    # A Sunday bar (some vendors have one) is the Monday session's evening start.
    sunday = np.flatnonzero(index.day_of_week == 6)
    assert (cme.day[sunday, 0] == cme.day[sunday + 1, 0]).all()
    assert np.isnat(cme.day[index.day_of_week == 5, 0]).all()


# -------------------------------------------------------------- order rules
def test_extended_hours_only_for_limit_orders(spy: Bars) -> None:
    broker = simbroker.PaperBroker(spy)
    for kind, kw in (("market", {}), ("stop", {"stop_price": 90.0}),
                     ("stop_limit", {"stop_price": 90.0, "limit_price": 89.0})):
        with pytest.raises(InvalidOrder, match="only for limit orders") as exc:
            broker.submit_order("SPY", "buy", 1, kind, extended_hours=True, **kw)
        assert exc.value.field == "extended_hours"
    with pytest.raises(InvalidOrder, match="True or False"):
        broker.submit_order("SPY", "buy", 1, "limit", limit_price=1.0,
                            extended_hours="yes")  # type: ignore[arg-type]
    assert broker.get_orders() == []


def test_extended_hours_tif_rule_per_venue(spy: Bars) -> None:
    for venue in (None, "alpaca"):
        broker = simbroker.PaperBroker(spy, venue=venue)
        with pytest.raises(InvalidOrder, match="tif='day'") as exc:
            broker.submit_order("SPY", "buy", 1, "limit", limit_price=1.0, tif="gtc",
                                extended_hours=True)
        assert exc.value.field == "tif"
    ibkr = simbroker.PaperBroker(spy, venue="ibkr")
    info = ibkr.submit_order("SPY", "buy", 1, "limit", limit_price=1.0, tif="gtc",
                             extended_hours=True)
    assert info["status"] == "new"
    with pytest.raises(ValueError, match="venue"):
        simbroker.PaperBroker(spy, venue="nyse")


def test_extended_hours_goes_to_the_trade_log_and_resumes(spy: Bars, tmp_path) -> None:
    from simbroker.tradelog import read_trade_log, replay_trade_log

    path = tmp_path / "log.jsonl"
    broker = simbroker.PaperBroker(spy, trade_log=path)
    run_to(broker, at(ET, "2024-11-26 15:00"))
    broker.submit_order("SPY", "buy", 1, "limit", limit_price=95.0, extended_hours=True,
                        client_order_id="eh")
    broker.close()
    (rec,) = [r for r in read_trade_log(path) if r["event"] == "submitted"]
    assert rec["extended_hours"] is True
    state = replay_trade_log(path)
    (open_order,) = state.open_orders.values()
    resumed = simbroker.PaperBroker(spy, open_orders=[{
        k: v for k, v in open_order.items() if k in (
            "symbol", "side", "qty", "order_type", "limit_price", "tif", "client_order_id",
            "extended_hours")}], start_at=at(ET, "2024-11-26 15:00").to_pydatetime(),
        slippage=0, fees=0)
    run_to(resumed, at(ET, "2024-11-26 16:16"))
    assert resumed.get_fills()[0]["timestamp"] == at(ET, "2024-11-26 16:15")


# ------------------------------------------------------- Hypothesis property
# XNYS sessions of 2024-11-27 and 2024-11-29 (Thanksgiving closed; the 29th a half day).
XNYS_OPENS = pd.DatetimeIndex([at(ET, "2024-11-27 09:30"), at(ET, "2024-11-29 09:30")])
XNYS_CLOSES = pd.DatetimeIndex([at(ET, "2024-11-27 16:00"), at(ET, "2024-11-29 13:00")])


@pytest.fixture(scope="module")
def two_days() -> Bars:
    index = spy_minutes("2024-11-27", "2024-11-29")[::5]  # 5-minute spacing, 1-min bars
    return with_calendar(_bars(index, ["SPY", "QQQ"], seed=5), "XNYS")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_day_orders_never_trade_after_the_session_close(two_days: Bars,
                                                         data: st.DataObject) -> None:
    bars = two_days
    n = len(bars)
    plan = data.draw(st.lists(st.tuples(
        st.integers(0, n - 2), st.sampled_from(bars.symbols), st.sampled_from(["buy", "sell"]),
        st.sampled_from(["market", "limit", "stop"]), st.floats(0.97, 1.03), st.booleans()),
        min_size=1, max_size=25))
    by_bar: dict[int, list[tuple]] = {}
    for p in plan:
        by_bar.setdefault(p[0], []).append(p)
    broker = simbroker.PaperBroker(bars, slippage=0, fees=0)
    submitted: dict[str, tuple[pd.Timestamp, bool]] = {}
    for t in range(n):
        broker.step()
        for _, sym, side, kind, frac, ext in by_bar.get(t, []):
            ref = float(bars.close[t, bars.symbol_index(sym)])
            ext = ext and kind == "limit"
            kw = ({"limit_price": ref * frac} if kind == "limit" else
                  {"stop_price": ref * frac} if kind == "stop" else {})
            info = broker.submit_order(sym, side, 1, kind, extended_hours=ext, **kw)
            submitted[info["order_id"]] = (pd.Timestamp(broker.now()), ext)
    for fill in broker.get_fills():
        when, ext = submitted[fill["order_id"]]
        filled_at = pd.Timestamp(fill["timestamp"])
        assert filled_at >= when  # never before submission
        if ext:
            # Within the trading day of the first bar it could trade on (pre-market to
            # post-market of one session date): never a later day's bar.
            first_bar = bars.index[bars.index >= when][0].tz_convert(ET)
            assert filled_at.tz_convert(ET).normalize() == first_bar.normalize()
        else:
            # In regular hours, before the close of the first session closing after it.
            k = int(np.searchsorted(XNYS_CLOSES, when, side="right"))
            assert XNYS_OPENS[k] <= filled_at < XNYS_CLOSES[k]


# ------------------------------------------------- event-driven == vectorized
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), density=st.floats(0.05, 0.9))
def test_event_driven_equals_vectorized_with_a_calendar(two_days: Bars, seed: int,
                                                        density: float) -> None:
    bars = two_days
    rng = np.random.default_rng(seed)
    shape = (len(bars), bars.n_symbols)
    targets = np.where(rng.random(shape) < density,
                       rng.integers(-5, 6, shape).astype(float), np.nan)
    frame = pd.DataFrame(targets, index=bars.index, columns=list(bars.symbols))
    event = simbroker.backtest(TargetPositions(frame), bars, progress=False)
    fast = backtest_vectorized(bars, targets=frame)
    pd.testing.assert_frame_equal(event.fills, fast.fills)
    pd.testing.assert_frame_equal(event.orders, fast.orders)
    assert event.equity.equals(fast.equity)
    assert event.cash.equals(fast.cash)
    rth = bars.sessions.regular_hours()
    ts = bars.index
    for _, f in fast.fills.iterrows():
        assert rth[ts.get_loc(f["timestamp"]), bars.symbol_index(f["symbol"])]


def test_vectorized_reports_expired_at_the_close_and_canceled_otherwise(spy: Bars) -> None:
    frame = pd.DataFrame(np.nan, index=spy.index, columns=["SPY"])
    zero = spy.volume.copy()
    close_bar = int(spy.index.get_loc(at(ET, "2024-11-26 15:59")))
    zero[close_bar] = 0.0  # the order for the last regular bar cannot fill
    bars = with_calendar(Bars.from_arrays(spy.index, ["SPY"], open=spy.open, high=spy.high,
                                          low=spy.low, close=spy.close, volume=zero,
                                          interval="1min"), "XNYS")
    frame.iloc[close_bar - 1] = 5.0
    frame.iloc[int(spy.index.get_loc(at(ET, "2024-11-26 17:00")))] = 7.0
    fast = backtest_vectorized(bars, targets=frame)
    event = simbroker.backtest(TargetPositions(frame), bars, progress=False)
    pd.testing.assert_frame_equal(event.orders, fast.orders)
    assert fast.orders["status"].tolist() == ["expired", "canceled"]
    assert fast.fills.empty


# ------------------------------------------------------------- validation
def test_validate_sessions_finds_missing_sessions_minutes_and_outside_bars() -> None:
    index = spy_minutes("2024-11-25", "2024-11-26", "2024-11-27", "2024-11-28")
    local = index.tz_convert(ET)
    keep = ((local.normalize() != at(ET, "2024-11-26"))  # a missing session
            & ~((local >= at(ET, "2024-11-27 10:00")) & (local < at(ET, "2024-11-27 10:03"))))
    bars = _bars(index[keep], ["SPY"])
    problems = validate_sessions(bars, "XNYS")
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert "1 missing session of 3: 2024-11-26" in text
    assert "3 missing bars in 1 session" in text
    assert "2024-11-27 10:00 EST" in text
    assert "960 bars outside any trading day: 2024-11-28 04:00 EST" in text
    strict = validate_sessions(bars, "XNYS", extended_hours=False)
    assert any("outside regular hours" in p for p in strict)
    clean = _bars(_minutes("2024-11-25", "09:30", "16:00", ET), ["SPY"])
    assert validate_sessions(clean, "XNYS") == []
    assert validate_sessions(with_calendar(clean, "XNYS")) == []
    with pytest.raises(ConfigError, match="needs a calendar"):
        validate_sessions(clean)


def test_cli_data_validate_with_a_calendar(tmp_path, capsys) -> None:
    index = _minutes("2024-11-25", "09:30", "16:00", ET)
    good = _bars(index, ["SPY"]).to_frame()
    path = tmp_path / "spy.csv"
    good.to_csv(path, index=False)
    assert main(["data", "validate", str(path), "--calendar", "XNYS"]) == 0
    assert "no session problems" in capsys.readouterr().out
    bad = _bars(index.delete([10, 11]), ["SPY"]).to_frame()
    bad.to_csv(path, index=False)
    assert main(["data", "validate", str(path), "--calendar", "XNYS"]) == 1
    out = capsys.readouterr().out
    assert "2 missing bars in 1 session" in out


def test_cli_backtest_with_a_calendar(tmp_path) -> None:
    path = tmp_path / "spy.csv"
    _bars(spy_minutes("2024-11-26"), ["SPY"]).to_frame().to_csv(path, index=False)
    strategy = tmp_path / "strat.py"
    strategy.write_text(
        "def on_bar(broker, history):\n"
        "    if history.t == 0:\n"
        "        broker.submit_order('SPY', 'buy', 1)\n")
    out = tmp_path / "out"
    assert main(["backtest", f"{strategy}:on_bar", "--data", str(path), "--calendar", "XNYS",
                 "--out", str(out)]) == 0
    fills = pd.read_parquet(out / "fills.parquet")
    # Submitted at 04:01 ET, pre-market: it waits for the regular open.
    assert pd.Timestamp(fills["timestamp"].iloc[0]).tz_convert(ET) == at(ET, "2024-11-26 09:30")
    assert main(["backtest", f"{strategy}:on_bar", "--data", str(path), "--calendar",
                 "XNYZ"]) == 2


# ---------------------------------------------------------------- errors
def test_unknown_calendar_names_the_closest() -> None:
    bars = _bars(_minutes("2024-11-25", "09:30", "10:00", ET), ["SPY"])
    with pytest.raises(ConfigError, match=r"unknown calendar 'XNYZ'.*'XNYS'"):
        with_calendar(bars, "XNYZ")
    with pytest.raises(ConfigError, match="a calendar is a name"):
        with_calendar(bars, 42)


def test_missing_exchange_calendars_gives_the_install_hint(monkeypatch) -> None:
    from simbroker import sessions

    sessions._named_calendar.cache_clear()
    monkeypatch.setitem(sys.modules, "exchange_calendars", None)
    bars = _bars(_minutes("2024-11-25", "09:30", "10:00", ET), ["SPY"])
    with pytest.raises(ConfigError, match=r'pip install "simbroker\[calendars\]"'):
        with_calendar(bars, "XNYS")
    monkeypatch.undo()
    sessions._named_calendar.cache_clear()


def test_a_calendar_instance_is_accepted() -> None:
    cal = xcal("XNYS", "2024-11-01", "2024-11-30")
    bars = _bars(spy_minutes("2024-11-26"), ["SPY"])
    a = with_calendar(bars, cal).sessions
    b = with_calendar(bars, "XNYS").sessions
    assert a.calendars == ("XNYS",)
    assert (a.regular == b.regular).all()
    assert (a.day == b.day).all()
