"""Alpaca's regulatory fees rounded up once a day (per fee type, per account), the CAT
fee it passes on from 2026-07-01, and the fee models' running ledgers across runs and
restarts (the tiered month's volume too)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_accounts_resume import Crash, CrashAt, Script
from test_partial_fills_retry import FailingLog
from test_vectorized import assert_exact

import simbroker
from simbroker import Bars
from simbroker.errors import FeeScheduleError, TradeLogError
from simbroker.feeds import ReplayFeed
from simbroker.models import AlpacaFee, IBKRTieredFee, fee_schedule
from simbroker.models.schedules import _loader
from simbroker.models.schedules._daily import new_york_days
from simbroker.runner import RealtimeRunner, paper_broker_from_log, read_resume_point
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.tradelog._learn import learn_logged_fills
from simbroker.vectorized import TargetPositions, backtest_vectorized
from simbroker.vectorized_exits import TargetExits

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUY, SELL = 1.0, -1.0
SEC_2026, TAF_2026, CAT_2026 = 20.60e-6, 0.000195, 0.000003


def ns(*stamps: str) -> np.ndarray:
    return np.array(stamps, "datetime64[ns]").astype(np.int64)


def up(x: float) -> float:
    """Dollars rounded up to the cent, as an independent reference (within the models'
    1e-9 of a cent: 0.1 * 100 is 10.000000000000002, not a reason for another cent)."""
    return max(math.ceil(x * 100.0 - 1e-9), 0) / 100.0


# -- hand-computed -------------------------------------------------------------------------
def test_three_small_sells_on_one_day_pay_the_days_totals_rounded_up_once() -> None:
    m = fee_schedule("alpaca")
    # Sell 100 x $10 three times on 2026-08-03 (proceeds $1,000 each):
    #   SEC $20.60/M: $0.0206 a sell; TAF $0.000195 x 100 = $0.0195; CAT $0.0003.
    #   1st: ceil(0.0206) + ceil(0.0195) + ceil(0.0003)             = 0.03 + 0.02 + 0.01
    #   2nd: ceil(0.0412) - 0.03, ceil(0.039) - 0.02, ceil(0.0006) - 0.01 = 0.02 + 0.02 + 0
    #   3rd: ceil(0.0618) - 0.05, ceil(0.0585) - 0.04, 0            = 0.02 + 0.02 + 0
    got = [m.fees(np.array([SELL]), np.array([100.0]), np.array([10.0]),
                  when=ns("2026-08-03T14:00"))[0] for _ in range(3)]
    np.testing.assert_allclose(got, [0.06, 0.04, 0.04], atol=1e-12)
    # The day's charges: each total rounded up once ($0.07 + $0.06 + $0.01 = $0.14), where
    # a round-up per fill would have charged 3 x $0.06 = $0.18.
    assert sum(got) == pytest.approx(up(3 * 0.0206) + up(3 * 0.0195) + up(3 * 0.0003))
    assert m.day_total("sec_fee", "2026-08-03") == pytest.approx(3 * 0.0206)
    assert m.day_total("finra_cat", "2026-08-03") == pytest.approx(3 * 0.0003)
    # The next day starts again: a buy pays the CAT fee rounded up, a cent.
    nxt = m.fees(np.array([BUY]), np.array([100.0]), np.array([10.0]),
                 when=ns("2026-08-04T14:00"))
    assert nxt[0] == pytest.approx(0.01)
    # One call with the three sells gives the same as three calls.
    again = fee_schedule("alpaca").fees(np.full(3, SELL), np.full(3, 100.0), np.full(3, 10.0),
                                        when=np.repeat(ns("2026-08-03T14:00"), 3))
    np.testing.assert_array_equal(again, got)


def test_undated_calls_are_pure_and_price_a_fill_as_its_days_only_one() -> None:
    m = fee_schedule("alpaca")
    one = (np.array([SELL]), np.array([100.0]), np.array([10.0]))
    assert m.fees(*one)[0] == pytest.approx(0.06)  # newest rates, all three parts
    assert m.fees(*one)[0] == pytest.approx(0.06)  # and again: nothing was counted
    assert m.day_total("sec_fee", "2026-08-03") == 0.0
    assert m.fee("buy", 100, 10.0) == pytest.approx(0.01)  # the CAT fee on a buy


def test_the_cat_fee_starts_at_alpaca_on_2026_07_01() -> None:
    m = fee_schedule("alpaca")
    # A buy of 1,000 the day before pays nothing, the day of it $0.003 -> $0.01.
    before = m.fees(np.array([BUY]), np.array([1000.0]), np.array([10.0]),
                    when=ns("2026-06-30T15:00"))
    on = m.fees(np.array([BUY]), np.array([1000.0]), np.array([10.0]),
                when=ns("2026-07-01T15:00"))
    assert (before[0], on[0]) == (0.0, pytest.approx(0.01))
    cat = [s for s in m.sources() if s["part"] == "finra_cat"]
    assert [str(s["effective"]) for s in cat] == ["2026-07-01"]
    assert "alpaca passes this fee on from 2026-07-01" in cat[0]["note"]
    assert "finra_cat@none" in fee_schedule("alpaca", as_of="2026-06-30").version


def test_the_day_is_new_yorks_date() -> None:
    # 00:30 UTC on 2026-01-06 is 19:30 EST on 2026-01-05 (after hours): the same trading
    # day as a sell at 15:00 UTC on 2026-01-05. In July (EDT) 03:30 UTC is 23:30 the day
    # before. New York's offset is whole hours.
    days = new_york_days(ns("2026-01-05T15:00", "2026-01-06T00:30", "2026-01-06T05:00",
                            "2026-07-02T03:30", "2026-03-08T06:59", "2026-03-08T07:00"))
    base = int(np.datetime64("2026-01-05", "D").astype(np.int64))
    july = int(np.datetime64("2026-07-01", "D").astype(np.int64))
    mar7 = int(np.datetime64("2026-03-07", "D").astype(np.int64))
    assert days.tolist() == [base, base, base + 1, july, mar7 + 1, mar7 + 1]
    m = fee_schedule("alpaca")
    got = m.fees(np.full(2, SELL), np.full(2, 100.0), np.full(2, 10.0),
                 when=ns("2026-01-05T15:00", "2026-01-06T00:30"))
    # 2026-01-05: SEC $0.00/M; TAF 0.0195 twice: ceil(0.0195) then ceil(0.039) - 0.02
    np.testing.assert_allclose(got, [0.02, 0.02], atol=1e-12)
    assert m.day_total("finra_taf", "2026-01-05") == pytest.approx(0.039)


def test_a_partial_fill_pays_through_the_ledger_too() -> None:
    m = fee_schedule("alpaca")
    side, qty, price = np.full(2, SELL), np.full(2, 100.0), np.full(2, 10.0)
    done = np.array([0.0, 100.0])
    got = m.order_fees(side, qty, price, done, done * 10.0,
                       when=np.repeat(ns("2026-08-03T14:00"), 2))
    np.testing.assert_allclose(got, [0.06, 0.04], atol=1e-12)


# -- properties ----------------------------------------------------------------------------
FILLS = st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.floats(0.0, 5_000.0),
                           st.floats(0.5, 500.0), st.integers(0, 3), st.integers(0, 23)),
                 min_size=1, max_size=30)


def _arrays(fills: list[tuple[Any, ...]]) -> tuple[np.ndarray, ...]:
    fills = sorted(fills, key=lambda f: (f[3], f[4]))  # in time order
    side = np.array([f[0] for f in fills])
    qty = np.array([f[1] for f in fills])
    price = np.array([f[2] for f in fills])
    when = np.array([ns("2026-08-03T00:00")[0] + (f[3] * 24 + f[4]) * 3_600 * 10**9
                     for f in fills], np.int64)
    return side, qty, price, when


@PROPS
@given(fills=FILLS, cuts=st.lists(st.integers(0, 30), max_size=6))
def test_a_days_charges_add_up_to_its_totals_rounded_up_however_the_calls_split(
        fills: list[tuple[Any, ...]], cuts: list[int]) -> None:
    side, qty, price, when = _arrays(fills)
    whole = fee_schedule("alpaca").fees(side, qty, price, when=when)
    m = fee_schedule("alpaca")
    bounds = sorted({0, len(qty), *[min(c, len(qty)) for c in cuts]})
    parts = [m.fees(side[a:b], qty[a:b], price[a:b], when=when[a:b])
             for a, b in itertools.pairwise(bounds)]
    split = np.concatenate(parts)
    np.testing.assert_array_equal(split, whole)  # bit for bit: the paper broker's bars
    assert np.all(whole >= 0)
    assert np.all(whole[qty == 0] == 0)
    per_fill = fee_schedule("alpaca")
    alone = np.array([per_fill.fees(side[k:k + 1], qty[k:k + 1], price[k:k + 1])[0]
                      for k in range(len(qty))])
    day = new_york_days(when)
    for d in np.unique(day).tolist():
        sel = day == d
        q, p, sell = qty[sel], price[sel], side[sel] < 0
        sec = up(float(np.sum(np.where(sell, SEC_2026 * q * p, 0.0))))
        taf = up(float(np.sum(np.where(sell, np.minimum(TAF_2026 * q, 9.79), 0.0))))
        cat = up(float(np.sum(CAT_2026 * q)))
        assert whole[sel].sum() == pytest.approx(sec + taf + cat, abs=1e-9)
        # never more than a round-up per fill would charge (undated: each fill alone)
        assert whole[sel].sum() <= alone[sel].sum() + 1e-9


# -- runs, reused models and restarts ------------------------------------------------------
def one_day(n_symbols: int = 3) -> Bars:
    ts = pd.date_range("2026-08-03 14:30", periods=6, freq="h", tz="UTC")
    px = np.full((6, n_symbols), 10.0) + np.arange(n_symbols)
    return Bars.from_arrays(ts, [f"S{k}" for k in range(n_symbols)], open=px, high=px,
                            low=px, close=px, volume=np.full(px.shape, 1e6), interval="1h")


def targets_of(bars: Bars) -> pd.DataFrame:
    t = pd.DataFrame(np.nan, index=bars.index, columns=list(bars.symbols))
    t.iloc[0] = 100.0
    t.iloc[2] = 0.0
    return t


@pytest.mark.parametrize("name", ["alpaca", "ibkr_tiered"])
def test_a_model_reused_by_runs_prices_each_alike(name: str) -> None:
    bars = one_day()
    model = fee_schedule(name)
    twin = TargetPositions(targets_of(bars))
    first = simbroker.backtest(twin, bars, fees=model, slippage=0)
    second = simbroker.backtest(TargetPositions(targets_of(bars)), bars, fees=model,
                                slippage=0)
    fast = backtest_vectorized(bars, targets=targets_of(bars), fees=model, slippage=0)
    again = backtest_vectorized(bars, targets=targets_of(bars), fees=model, slippage=0)
    for other in (second, fast, again):
        np.testing.assert_array_equal(other.fills["fee"].to_numpy(),
                                      first.fills["fee"].to_numpy())
    if name == "alpaca":
        # 3 buys then 3 sells on one day: the buys' CAT $0.0003 each -> one cent in all
        assert first.fills["fee"].iloc[:3].sum() == pytest.approx(0.01)


def test_a_vectorized_run_that_falls_back_to_the_account_loop_prices_once() -> None:
    # The screened unconstrained pass prices the fills, the account loop again: the loop
    # must not find the day's totals already counted (it charged nothing before).
    bars = one_day(1)
    t = pd.DataFrame(np.nan, index=bars.index, columns=list(bars.symbols))
    t.iloc[0] = -1.0
    ev = simbroker.backtest(TargetPositions(t), bars, fees="alpaca", slippage=0,
                            account="margin", cash=2_000.0)
    fast = backtest_vectorized(bars, targets=t, fees="alpaca", slippage=0, account="margin",
                               cash=2_000.0)
    pd.testing.assert_frame_equal(fast.fills, ev.fills, check_exact=True)
    assert ev.fills["fee"].iloc[0] == pytest.approx(0.03)  # SEC, TAF, CAT: a cent each


def realtime(bars: Bars, plan: Mapping[int, Sequence[tuple[str, str, float]]], path: Path,
             fees: str, crash: int | None) -> None:
    resume = read_resume_point(path)
    with TradeLog(path) as log:
        broker = paper_broker_from_log(bars, resume, trade_log=log, slippage=0, fees=fees)
        with contextlib.suppress(Crash):
            RealtimeRunner(CrashAt(Script(plan), crash), broker, ReplayFeed(bars),
                           trade_log=log, resume=resume or False, handle_signals=False,
                           run_id="fees").run()


def fills_of(path: Path) -> list[tuple[Any, ...]]:
    return [(r["symbol"], r["side"], r["qty"], r["fee"]) for r in read_trade_log(path)
            if r["event"] == "filled"]


@pytest.mark.parametrize("fees", ["alpaca", "ibkr_tiered"])
@pytest.mark.parametrize("crash", [0, 1, 2, 3])
def test_a_run_restarted_mid_day_charges_what_the_uninterrupted_run_does(
        tmp_path: Path, fees: str, crash: int) -> None:
    bars = one_day(2)
    # Sells of 400,000 shares (tiered: a month at 800,000 shares is past the first tier)
    # and small Alpaca sells whose cents depend on what the day already counted.
    big = 400_000.0 if fees == "ibkr_tiered" else 100.0
    plan = {0: [("S0", "buy", big), ("S1", "buy", big)], 1: [("S0", "sell", big)],
            2: [("S1", "sell", big)], 3: [("S0", "buy", big)], 4: [("S0", "sell", big)]}
    whole = tmp_path / "whole.jsonl"
    realtime(bars, plan, whole, fees, None)
    path = tmp_path / "crashed.jsonl"
    realtime(bars, plan, path, fees, crash)
    assert len(fills_of(path)) < len(fills_of(whole))
    realtime(bars, plan, path, fees, None)
    assert fills_of(path) == fills_of(whole)
    assert len(fills_of(whole)) == 6


def test_learning_from_a_log_refuses_a_record_it_cannot_read() -> None:
    m = fee_schedule("alpaca")
    with pytest.raises(TradeLogError, match="lacks 'price'"):
        learn_logged_fills(m, [{"side": "sell", "qty": 1.0, "ts": "2026-08-03T14:00:00Z"}])
    with pytest.raises(TradeLogError, match="timestamp"):
        learn_logged_fills(m, [{"side": "sell", "qty": 1.0, "price": 1.0, "ts": 5}])
    learn_logged_fills(m, [{"side": "sell", "qty": 100.0, "price": 10.0,
                            "ts": "2026-08-03T14:00:00+00:00"}])
    assert m.day_total("finra_taf", "2026-08-03") == pytest.approx(0.0195)
    tiered = fee_schedule("ibkr_tiered")
    learn_logged_fills(tiered, [{"side": "buy", "qty": 300_000.0, "price": 10.0,
                                 "timestamp": "2026-08-03T14:00:00+00:00"}])
    assert isinstance(tiered, IBKRTieredFee)
    assert tiered.month_volume("2026-08") == 300_000


# -- the loader ----------------------------------------------------------------------------
def _load_with(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> Any:
    data = dict(_loader.load_schedule_data("alpaca"))
    data.update(changes)
    real = _loader.load_schedule_data

    def fake(name: str) -> dict[str, Any]:
        return data if name == "alpaca" else real(name)

    monkeypatch.setattr(_loader, "load_schedule_data", fake)
    _loader._load.cache_clear()
    try:
        return _loader._load("alpaca")
    finally:
        monkeypatch.undo()
        _loader._load.cache_clear()


def test_the_loader_refuses_a_rounding_it_does_not_know(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    with pytest.raises(FeeScheduleError, match="'regulatory_rounding' must be fill or daily"):
        _load_with(monkeypatch, regulatory_rounding="weekly")
    with pytest.raises(FeeScheduleError, match="needs 'round_regulatory_up_to_cent: true'"):
        _load_with(monkeypatch, round_regulatory_up_to_cent=False)
    with pytest.raises(FeeScheduleError, match="needs 'part', 'from' and 'source'"):
        _load_with(monkeypatch, regulatory=["sec_fee", {"part": "finra_cat"}])
    # passed on from before the fee existed: the table as it is (nothing before it)
    early = _load_with(monkeypatch, regulatory=[
        {"part": "finra_cat", "from": "2020-01-01", "source": "x"}])
    assert [str(d) for d in early.regulatory["finra_cat"].effective] == [
        "2024-09-01", "2025-12-01", "2026-05-01"]
    per_fill = _load_with(monkeypatch, regulatory_rounding="fill")
    assert per_fill.daily_round_up is False
    assert AlpacaFee(per_fill)._daily is None


def test_a_part_passed_on_from_a_date_inside_a_version_is_redated() -> None:
    # The CAT table's 2024-09-01 version is in effect on 2025-01-02: passed on from then.
    base = fee_schedule("ibkr_tiered").schedule.regulatory["finra_cat"]
    table = _loader._passed_from("demo", base, np.datetime64("2025-01-02", "D"),
                                 {"source": "s"})
    assert [str(d) for d in table.effective] == ["2025-01-02", "2025-12-01", "2026-05-01"]
    days = np.array(["2025-01-01", "2025-01-02", "2026-01-05", "2026-07-01"],
                    "datetime64[D]")
    assert table.index(days).tolist() == [-1, 0, 1, 2]
    assert table.columns["per_share"].tolist() == [0.000035, 0.0, 0.000003]


def test_the_cat_fee_paused_from_december_2025_to_april_2026() -> None:
    # IBKR passes the CAT fee on: $0.000035 x 1,000 on 2025-11-28, nothing in the billing
    # pause, $0.000003 x 1,000 from 2026-05-01 (a buy of 1,000 at $10: commission $5).
    m = fee_schedule("ibkr_fixed")
    got = m.fees(np.full(4, BUY), np.full(4, 1000.0), np.full(4, 10.0),
                 when=ns("2025-11-28T15:00", "2025-12-01T15:00", "2026-04-30T15:00",
                         "2026-05-01T15:00"))
    np.testing.assert_allclose(got, [5.035, 5.0, 5.0, 5.003], rtol=0, atol=1e-12)


def test_the_shipped_alpaca_file_says_daily_and_names_the_cat_source() -> None:
    text = Path(_loader.__file__).with_name("alpaca.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert data["regulatory_rounding"] == "daily"
    cat = [e for e in data["regulatory"] if isinstance(e, dict)]
    assert cat
    assert cat[0]["part"] == "finra_cat"
    assert cat[0]["source"].startswith("https://")
    model = fee_schedule("alpaca")
    assert dataclasses.replace(model.schedule).daily_round_up


@PROPS
@given(seed=st.integers(0, 10_000), fees=st.sampled_from(["alpaca", "ibkr_tiered"]),
       stop=st.sampled_from([None, 0.01, 0.03]))
def test_event_driven_equals_vectorized_with_the_ledgers_on_hourly_2026_bars(
        seed: int, fees: str, stop: float | None) -> None:
    # Many fills a day on several symbols: each fill's cents depend on the fills before
    # it that day, so both engines must price in the same (booking) order.
    bars = simbroker.synthetic_bars(n_symbols=4, n_bars=40, seed=seed, freq="1h",
                                    start="2026-08-03", volatility=0.8)
    rng = np.random.default_rng(seed)
    entries = pd.DataFrame(rng.random((40, 4)) < 0.2, index=bars.index,
                           columns=list(bars.symbols))
    exits = pd.DataFrame(rng.random((40, 4)) < 0.2, index=bars.index,
                         columns=list(bars.symbols))
    kw: dict[str, Any] = {"fees": fees, "slippage": 5.0}
    if stop is None:
        fast = backtest_vectorized(bars, entries=entries, exits=exits, size=37.0, **kw)
        twin = TargetExits(entries=entries, exits=exits, size=37.0)
    else:
        fast = backtest_vectorized(bars, entries=entries, exits=exits, size=37.0,
                                   stop_loss=stop, **kw)
        twin = TargetExits(entries=entries, exits=exits, size=37.0, stop_loss=stop)
    assert_exact(simbroker.backtest(twin, bars, **kw), fast)


@pytest.mark.parametrize("fees", ["alpaca", "ibkr_tiered"])
@pytest.mark.parametrize("small_book", [0, 10**9], ids=["numpy", "small"])
def test_a_bar_stepped_again_after_a_failed_write_counts_its_fills_once(
        tmp_path: Path, fees: str, small_book: int) -> None:
    # Four fills on one bar, the k-th one's record fails, the bar is stepped again: the
    # fills booked before the failure stay counted, the others are priced once more and
    # must pay what they would have (Alpaca's day cents, the tiered month's tier).
    bars = one_day(4)
    qty = 100_000.0 if fees == "ibkr_tiered" else 100.0  # 4 x 100,000 crosses 300,000

    def run(fail_at: int | None) -> list[tuple[Any, ...]]:
        log = TradeLog(tmp_path / f"{fees}{small_book}{fail_at}.jsonl")
        b = simbroker.PaperBroker(bars, cash=1e9, trade_log=log, fees=fees, slippage=0)
        b._small_book = small_book
        if fail_at is not None:
            b._log = FailingLog(log, fail_at)  # type: ignore[assignment]
        for t in range(len(bars)):
            if t in (0, 2):
                for sym in bars.symbols:
                    b.submit_order(sym, "buy" if t == 0 else "sell", qty)
            try:
                b.step()
            except TradeLogError:
                b.step()
        b.close()
        return [(f["fill_id"], f["qty"], f["price"], f["fee"]) for f in b.get_fills()]

    whole = run(None)
    assert len(whole) == 8
    for k in range(1, 9):
        assert run(k) == whole, k
