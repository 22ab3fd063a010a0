"""Published fee schedules (IBKR Pro fixed and tiered, Alpaca) as dated data, by name.

Hand-computed fees, the properties every schedule keeps, effective-date selection,
the tiered month volume, selection by name in code/YAML/CLI, and reconciliation.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_vectorized import assert_exact

import simbroker
from simbroker import Bars
from simbroker.config import PaperConfig
from simbroker.errors import ConfigError, DataError, FeeScheduleError
from simbroker.models import (
    AlpacaFee,
    IBKRFixedFee,
    IBKRTieredFee,
    NoFee,
    ScheduleFee,
    fee_model,
    fee_model_from_dict,
    fee_schedule,
    reconcile_commissions,
)
from simbroker.models.schedules import SCHEDULE_NAMES, FeeSchedule
from simbroker.models.schedules._loader import DatedTable
from simbroker.testing.checks import check_fee_model
from simbroker.testing.strategies import bar_panels, target_frames
from simbroker.vectorized import TargetPositions, backtest_vectorized

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = list(SCHEDULE_NAMES)
BUY, SELL = 1.0, -1.0


def day(text: str) -> np.ndarray:
    return np.array([text], "datetime64[ns]")


# -- hand-computed -------------------------------------------------------------------------


def test_ibkr_fixed_small_buy_pays_the_minimum() -> None:
    # 100 x $0.005 = $0.50 < $1.00 minimum; 1% cap = $25.00 does not bite. A buy pays no
    # SEC fee or TAF, but the CAT fee on every execution: none before 2024-09-01,
    # $0.000003 x 100 = $0.0003 on the newest rates.
    assert fee_schedule("ibkr_fixed", as_of="2024-06-03").fee("buy", 100, 25.0) == 1.00
    assert fee_schedule("ibkr_fixed").fee("buy", 100, 25.0) == pytest.approx(1.0003,
                                                                           abs=1e-12)


def test_ibkr_fixed_cheap_shares_are_capped_at_one_percent() -> None:
    # 1,000 x $0.005 = $5.00; 1% of $500 = $5.00: the cap holds it at $5.00.
    m = fee_schedule("ibkr_fixed", as_of="2024-06-03")  # before the CAT fee
    assert m.fee("buy", 1000, 0.50) == pytest.approx(5.00, abs=1e-12)
    # At $0.30 the cap ($3.00) wins over the rate and the $1.00 minimum loses to it too.
    assert m.fee("buy", 1000, 0.30) == pytest.approx(3.00, abs=1e-12)
    assert m.fee("buy", 10, 5.0) == pytest.approx(0.50, abs=1e-12)
    # The cap is on the commission: the CAT fee comes on top ($0.000003 x 1,000).
    new = fee_schedule("ibkr_fixed")
    assert new.fee("buy", 1000, 0.30) == pytest.approx(3.00 + 0.003, abs=1e-12)


def test_alpaca_sell_pays_sec_fee_and_taf_rounded_up_to_the_cent() -> None:
    m = fee_schedule("alpaca")
    # Sell 1,000 shares at $100 on 2024-06-03: proceeds $100,000.
    #   SEC fee: $27.80 per $1M (from 2024-05-22) x $100,000 = $2.78 (already whole cents)
    #   TAF: $0.000166 x 1,000 = $0.166, under the $8.30 cap, rounded up to $0.17
    #   commission $0: total $2.95
    fee = m.fees(np.array([SELL]), np.array([1000.0]), np.array([100.0]), when=day("2024-06-03"))
    assert fee[0] == pytest.approx(2.78 + 0.17, abs=1e-12)
    # The same sell on 2025-06-02, after the SEC rate went to $0.00 (2025-05-14): TAF only.
    fee = m.fees(np.array([SELL]), np.array([1000.0]), np.array([100.0]), when=day("2025-06-02"))
    assert fee[0] == pytest.approx(0.17, abs=1e-12)
    # A buy is free at Alpaca.
    assert m.fees(np.array([BUY]), np.array([1000.0]), np.array([100.0]),
                  when=day("2024-06-03"))[0] == 0.0
    # TAF cap: 100,000 shares x $0.000166 = $16.60 -> $8.30.
    big = m.fees(np.array([SELL]), np.array([100_000.0]), np.array([1.0]), when=day("2025-06-02"))
    assert big[0] == pytest.approx(8.30, abs=1e-12)


def test_alpaca_sells_in_2026_across_the_sec_rate_and_the_taf_holiday() -> None:
    m = fee_schedule("alpaca")
    when = np.array(["2025-12-31", "2026-01-02", "2026-04-03", "2026-04-06", "2026-09-30",
                     "2026-10-01", "2026-12-31", "2027-01-04"], "datetime64[ns]")
    n = len(when)
    fee = m.fees(np.full(n, SELL), np.full(n, 1000.0), np.full(n, 100.0), when=when)
    # Sell 1,000 at $100 (proceeds $100,000), each fee rounded up to the cent:
    #   2025-12-31: SEC $0.00/M, TAF 1,000 x $0.000166 = $0.166 -> $0.17
    #   2026-01-02 .. 04-03: SEC $0.00/M, TAF 1,000 x $0.000195 = $0.195 -> $0.20
    #   2026-04-06 .. 09-30: SEC $20.60/M x $100,000 = $2.06, TAF $0.20: $2.26
    #   2026-10-01 .. 12-31: the TAF holiday, SEC only: $2.06
    #   2027-01-04: the TAF resumes at $0.000195: $2.26
    #   and from 2026-07-01 the CAT fee, 1,000 x $0.000003 = $0.003 -> $0.01
    # (one sell a day: the day's total rounded up is the fill's own fee rounded up)
    np.testing.assert_allclose(fee, [0.17, 0.20, 0.20, 2.26, 2.27, 2.07, 2.07, 2.27],
                               atol=1e-12)
    # The 2026 cap: 60,000 shares x $0.000195 = $11.70 -> $9.79 (the cap binds from
    # 50,206 shares); SEC $20.60/M x $60,000 = $1.236 -> $1.24.
    big = m.fees(np.array([SELL]), np.array([60_000.0]), np.array([1.0]),
                 when=np.array(["2026-06-01"], "datetime64[ns]"))
    assert big[0] == pytest.approx(9.79 + 1.24, abs=1e-12)


def test_ibkr_fixed_sell_adds_the_regulatory_fees_unrounded() -> None:
    # Sell 1,000 at $100 on 2024-06-03: commission $5.00 (1,000 x 0.005, over $1, under the
    # $1,000 cap) + SEC 0.0000278 x 100,000 = $2.78 + TAF 0.000166 x 1,000 = $0.166.
    fee = fee_schedule("ibkr_fixed").fees(np.array([SELL]), np.array([1000.0]),
                                          np.array([100.0]), when=day("2024-06-03"))
    assert fee[0] == pytest.approx(5.00 + 2.78 + 0.166, abs=1e-12)


def test_ibkr_tiered_month_crossing_a_tier() -> None:
    m = fee_schedule("ibkr_tiered")
    # Three buys at $10 in June 2024 (before the CAT fee's 2024-09-01 start), one in July.
    when = np.array(["2024-06-03", "2024-06-04", "2024-06-05", "2024-07-01"], "datetime64[ns]")
    qty = np.array([250_000.0, 50_000.0, 1_000.0, 1_000.0])
    fee = m.fees(np.full(4, BUY), qty, np.full(4, 10.0), when=when)
    pass_through = 1 + 0.000175 + 0.00056  # NYSE + FINRA, on the IB commission
    per_share = 0.00020 + 0.0030  # clearing + exchange
    # 1) month volume 0: 250,000 x 0.0035 = $875
    # 2) month volume 250,000, still tier 1: 50,000 x 0.0035 = $175
    # 3) month volume 300,000: the 300,001st share is tier 2: 1,000 x 0.002 = $2.00
    # 4) July starts again at tier 1: 1,000 x 0.0035 = $3.50
    ib = np.array([875.0, 175.0, 2.0, 3.5])
    np.testing.assert_allclose(fee, ib * pass_through + per_share * qty, rtol=0, atol=1e-9)
    assert m.month_volume("2024-06") == 301_000
    # The next call carries June's volume: tier 2 at once.
    more = m.fees(np.array([BUY]), np.array([1_000.0]), np.array([10.0]),
                  when=np.array(["2024-07-02"], "datetime64[ns]"))
    assert more[0] == pytest.approx(3.5 * pass_through + per_share * 1000)  # July: tier 1
    # The $0.35 minimum; in September the CAT fee ($0.000035/share) is on.
    small = m.fees(np.array([BUY]), np.array([10.0]), np.array([10.0]),
                   when=np.array(["2024-09-03"], "datetime64[ns]"))
    assert small[0] == pytest.approx(0.35 * pass_through + per_share * 10 + 0.000035 * 10)


def test_ibkr_tiered_month_volume_argument_is_pure() -> None:
    m = fee_schedule("ibkr_tiered")
    side, qty, price = np.full(2, BUY), np.full(2, 1000.0), np.full(2, 10.0)
    a = m.fees(side, qty, price, month_volume=np.array([0.0, 3_000_000.0]))
    b = m.fees(side, qty, price, month_volume=np.array([0.0, 3_000_000.0]))
    np.testing.assert_array_equal(a, b)
    extra = (0.00020 + 0.0030 + 0.000003) * 1000  # clearing, exchange, CAT (newest)
    pt = 1 + 0.000175 + 0.000565  # NYSE and FINRA pass-throughs (newest)
    np.testing.assert_allclose(a, [3.5 * pt + extra, 1.5 * pt + extra])
    assert m.month_volume("2024-06") == 0  # undated calls learn nothing
    with pytest.raises(FeeScheduleError, match="month_volume"):
        m.fees(side, qty, price, month_volume=np.array([-1.0, 0.0]))


def test_a_reused_tiered_model_starts_a_new_ledger_when_time_goes_back() -> None:
    m = fee_schedule("ibkr_tiered")
    args = (np.array([BUY]), np.array([400_000.0]), np.array([10.0]))
    first = m.fees(*args, when=day("2024-06-03"))
    m.fees(*args, when=day("2024-06-04"))
    again = m.fees(*args, when=day("2024-06-03"))  # a second run with the same model
    np.testing.assert_array_equal(first, again)
    m.reset()
    assert m.month_volume("2024-06") == 0


# -- effective dates -----------------------------------------------------------------------


def test_each_fill_pays_the_rate_effective_on_its_own_date() -> None:
    m = fee_schedule("ibkr_fixed")
    when = np.array(["2024-05-21", "2024-05-22", "2025-05-13", "2025-05-14", "2010-01-04"],
                    "datetime64[ns]")
    fee = m.fees(np.full(5, SELL), np.full(5, 1000.0), np.full(5, 100.0), when=when)
    base = 5.00 + 0.166
    # $8.00/M until 2024-05-21, $27.80/M from 2024-05-22, $0.00/M from 2025-05-14; 2010 is
    # before the first SEC version here and pays the oldest one recorded ($8.00). The CAT
    # fee (1,000 x $0.000035 from 2024-09-01) is on in 2025 only: none before it existed.
    cat = np.array([0.0, 0.0, 0.035, 0.035, 0.0])
    np.testing.assert_allclose(fee, base + cat + np.array([0.8, 2.78, 2.78, 0.0, 0.8]),
                               atol=1e-12)
    # int64 ns (what the engines pass) gives the same.
    ns = m.fees(np.full(5, SELL), np.full(5, 1000.0), np.full(5, 100.0),
                when=when.astype(np.int64))
    np.testing.assert_array_equal(fee, ns)


def test_as_of_prices_undated_fills_and_names_the_versions() -> None:
    old = fee_schedule("ibkr_fixed", as_of="2024-06-01")
    new = fee_schedule("ibkr_fixed")
    assert old.fee("sell", 1000, 100.0) == pytest.approx(5.0 + 2.78 + 0.166)
    # The newest versions: SEC $20.60/M (from 2026-04-04), the TAF as it resumes in 2027
    # and the CAT fee at $0.000003 x 1,000.
    assert new.fee("sell", 1000, 100.0) == pytest.approx(5.0 + 2.06 + 0.195 + 0.003)
    holiday = fee_schedule("ibkr_fixed", as_of="2026-11-02")
    assert holiday.fee("sell", 1000, 100.0) == pytest.approx(5.0 + 2.06 + 0.0 + 0.003)
    assert "sec_fee@2024-05-22" in repr(old)
    assert "as_of='2024-06-01'" in repr(old)
    assert repr(new).startswith("IBKRFixedFee(name='ibkr_fixed', version='ibkr_fixed@2019-10")
    assert "sec_fee@2026-04-04" in repr(new)
    assert "finra_taf@2026-10-01" in repr(holiday)


def test_a_date_before_every_version_is_refused_where_the_table_says_so() -> None:
    table = DatedTable("demo", np.array(["2024-01-01", "2025-01-01"], "datetime64[D]"),
                       {"x": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(
        table.index(np.array(["2024-06-01", "2025-01-01"], "datetime64[D]")), [0, 1])
    with pytest.raises(FeeScheduleError, match=r"demo: no version effective on 2023-12-31"):
        table.index(np.array(["2023-12-31"], "datetime64[D]"))
    zero = DatedTable("cat", table.effective, table.columns, before_first="zero")
    assert zero.index(np.array(["2023-12-31"], "datetime64[D]"))[0] == -1


def test_every_version_names_its_source_and_date() -> None:
    for name in NAMES:
        sources = fee_schedule(name).sources()
        assert sources
        for s in sources:
            assert str(s["source"]).startswith("http"), (name, s)
            assert s["effective"], (name, s)


def test_every_version_says_whether_it_is_confirmed_and_what_is_not() -> None:
    seen = {}
    for name in NAMES:
        for s in fee_schedule(name).sources():
            assert isinstance(s["confirmed"], bool), (name, s)
            if not s["confirmed"]:  # an unconfirmed figure says what could not be
                assert "confirmed" in str(s.get("note", "")).lower(), (name, s)
            seen[(s["part"], str(s["effective"]))] = s["confirmed"]
    # The SEC fee's FY2023-FY2026 rates are sourced, the TAF's 2026 step and its holiday
    # too; the 2024 TAF step's date and the rate it resumes at in 2027 are not.
    for sec in ("2023-02-27", "2024-05-22", "2025-05-14", "2026-04-04"):
        assert seen[("sec_fee", sec)] is True, sec
    assert seen[("finra_taf", "2024-01-01")] is False
    assert seen[("finra_taf", "2026-01-01")] is True
    assert seen[("finra_taf", "2026-10-01")] is True
    assert seen[("finra_taf", "2027-01-01")] is False


def test_a_version_that_does_not_say_whether_it_is_confirmed_is_refused() -> None:
    from simbroker.models.schedules._loader import _table

    good = {"effective": "2024-01-01", "source": "https://x", "confirmed": True,
            "per_share": 0.1}
    assert _table("t", [good], ("per_share",)).meta[0]["confirmed"] is True
    for bad in ({k: v for k, v in good.items() if k != "confirmed"},
                {**good, "confirmed": "yes"}):
        with pytest.raises(FeeScheduleError, match="'confirmed'"):
            _table("t", [bad], ("per_share",))


def test_schedule_files_ship_as_package_data() -> None:
    root = resources.files("simbroker.models.schedules")
    for name in [*NAMES, "us_regulatory"]:
        assert root.joinpath(f"{name}.yaml").is_file()
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert '"models/schedules/*.yaml"' in pyproject.read_text()


# -- the loader's errors -------------------------------------------------------------------


def test_unknown_schedule_is_named_with_did_you_mean() -> None:
    with pytest.raises(FeeScheduleError, match=r"unknown fee schedule 'ibkr_fixd'; did you "
                                               r"mean 'ibkr_fixed'"):
        fee_schedule("ibkr_fixd")
    with pytest.raises(FeeScheduleError, match=r"'alpacca'; did you mean 'alpaca'"):
        fee_model("alpacca")
    with pytest.raises(FeeScheduleError, match="known: alpaca, ibkr_fixed, ibkr_tiered"):
        fee_schedule("schwab")
    with pytest.raises(FeeScheduleError, match="not a broker schedule"):
        fee_schedule("us_regulatory")
    with pytest.raises(FeeScheduleError, match="not a date"):
        fee_schedule("alpaca", as_of="yesterday")
    assert issubclass(FeeScheduleError, ValueError)
    assert issubclass(FeeScheduleError, ConfigError)


# -- properties ----------------------------------------------------------------------------


def _caps(name: str, side: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
    """An upper bound per fill: the commission cap plus every regulatory maximum."""
    notional = qty * price
    sell = side < 0
    sec = np.where(sell, 27.80e-6 * notional + 0.01, 0.0)
    taf = np.where(sell, 9.80, 0.0)  # the largest TAF maximum ($9.79, 2026) and a cent
    if name == "alpaca":  # and the CAT fee at the largest rate, rounded up
        return sec + taf + 0.000035 * qty + 0.01
    cap = 0.01 * notional + 0.000035 * qty  # the commission cap and the largest CAT rate
    if name == "ibkr_tiered":
        cap = 0.01 * notional * (1 + 0.000175 + 0.000565) + (0.0032 + 0.000035) * qty
    return cap + sec + taf + 1e-9


def _alone(m: ScheduleFee, side: np.ndarray, qty: np.ndarray, price: np.ndarray,
           when: np.ndarray, kw: dict[str, np.ndarray]) -> np.ndarray:
    """Each fill priced as the only one of its day (Alpaca's daily round-up would
    otherwise charge the later fills of one day what they add to the day's total)."""
    if not isinstance(m, AlpacaFee):
        return m.fees(side, qty, price, when=when, **kw)
    out = []
    for k in range(len(qty)):
        m.reset()
        out.append(m.fees(side[k:k + 1], qty[k:k + 1], price[k:k + 1], when=when[k:k + 1]))
    return np.concatenate(out)


@PROPS
@given(name=st.sampled_from(NAMES),
       side=st.sampled_from([BUY, SELL]),
       qty=st.lists(st.floats(0.0, 5e6, allow_nan=False), min_size=2, max_size=8),
       price=st.floats(0.01, 5_000.0),
       when=st.sampled_from(["2019-12-02", "2024-06-03", "2024-10-01", "2025-06-02",
                             "2026-06-01", "2026-11-02", "2030-01-02"]),
       volume=st.floats(0.0, 2e8))
def test_fees_are_monotone_non_negative_and_within_caps(name: str, side: float,
                                                        qty: list[float], price: float,
                                                        when: str, volume: float) -> None:
    m = fee_schedule(name)
    q = np.sort(np.array(qty))
    n = len(q)
    kw = {"month_volume": np.full(n, volume)} if name == "ibkr_tiered" else {}
    fee = _alone(m, np.full(n, side), q, np.full(n, price), np.full(n, day(when)[0]), kw)
    assert np.all(fee >= 0)
    assert np.all(np.diff(fee) >= -1e-9), "not monotone in qty"
    assert np.all(fee[q == 0] == 0)
    assert np.all(fee <= _caps(name, np.full(n, side), q, np.full(n, price))), "over the cap"
    # The minimum holds unless the 1% cap undercuts it.
    if name != "alpaca":
        minimum = 1.0 if name == "ibkr_fixed" else 0.35
        traded = q > 0
        floor = np.minimum(minimum, 0.01 * q * price)
        assert np.all(fee[traded] >= floor[traded] - 1e-12)
    # Monotone in price (notional) at a fixed qty.
    prices = np.sort(np.array([price, price * 1.5, price * 3.0]))
    by_price = _alone(m, np.full(3, side), np.full(3, q[-1]), prices,
                      np.full(3, day(when)[0]), {"month_volume": np.full(3, volume)}
                      if name == "ibkr_tiered" else {})
    assert np.all(np.diff(by_price) >= -1e-9), "not monotone in price"


@pytest.mark.parametrize("name", NAMES)
def test_the_project_fee_model_checks_pass(name: str) -> None:
    check_fee_model(fee_schedule(name), settings=settings(max_examples=40, deadline=None))
    check_fee_model(fee_schedule(name, as_of="2024-06-03"),
                    settings=settings(max_examples=20, deadline=None))


@PROPS
@given(qty=st.lists(st.floats(0.0, 2e6, allow_nan=False), min_size=1, max_size=12),
       split=st.integers(0, 12))
def test_tiered_running_volume_is_the_same_in_one_call_or_many(qty: list[float],
                                                               split: int) -> None:
    # The paper broker prices bar by bar, the vectorized runner all fills at once.
    q = np.array(qty)
    n = len(q)
    when = (np.datetime64("2024-06-03", "ns")
            + np.arange(n) * np.timedelta64(86_400 * 10**9 // 4, "ns"))  # crosses into July
    side, price = np.full(n, BUY), np.full(n, 20.0)
    whole = fee_schedule("ibkr_tiered").fees(side, q, price, when=when)
    parts = fee_schedule("ibkr_tiered")
    k = min(split, n)
    pieces = [parts.fees(side[:k], q[:k], price[:k], when=when[:k]),
              parts.fees(side[k:], q[k:], price[k:], when=when[k:])]
    np.testing.assert_array_equal(whole, np.concatenate(pieces))


# -- selection by name ---------------------------------------------------------------------


def test_fee_model_resolves_names_and_specs() -> None:
    assert isinstance(fee_model("ibkr_fixed"), IBKRFixedFee)
    assert isinstance(fee_model("IBKR_Tiered"), IBKRTieredFee)
    assert isinstance(fee_model("alpaca"), AlpacaFee)
    assert isinstance(fee_model("none"), NoFee)
    assert fee_model("alpaca@2024-06-01") == fee_schedule("alpaca", as_of="2024-06-01")
    spec = fee_model_from_dict({"model": "schedule", "schedule": "ibkr_fixed",
                                "as_of": "2024-06-01"})
    assert spec == fee_schedule("ibkr_fixed", "2024-06-01")
    assert fee_model_from_dict(spec.to_dict()) == spec
    assert isinstance(fee_model_from_dict({"model": "alpaca"}), AlpacaFee)
    with pytest.raises(ValueError, match="unknown parameter"):
        fee_model_from_dict({"model": "alpaca", "rate": 1})
    with pytest.raises(TypeError):
        fee_model("1")  # a quoted number stays a mistake


def test_paper_broker_and_backtests_take_a_schedule_name() -> None:
    bars = simbroker.sample_bars()
    broker = simbroker.PaperBroker(bars, fees="ibkr_fixed")
    assert isinstance(broker.fees, IBKRFixedFee)
    targets = pd.DataFrame(np.nan, index=bars.index, columns=list(bars.symbols))
    targets.iloc[5] = 100.0
    targets.iloc[40] = 0.0
    ev = simbroker.backtest(TargetPositions(targets), bars, fees="alpaca", slippage=0)
    fast = backtest_vectorized(bars, targets=targets, fees="alpaca", slippage=0)
    assert_exact(ev, fast)
    fills = ev.fills
    assert (fills.loc[fills["side"] == "buy", "fee"] == 0).all()
    sells = fills[fills["side"] == "sell"]
    # 2008 sells pay the oldest SEC version recorded ($8.00/M) and the TAF; Alpaca rounds
    # each fee type's daily total up to the cent, so a day's fills add up to that.
    assert (sells["fee"] >= 0).all()
    days = pd.to_datetime(sells["timestamp"], utc=True).dt.tz_convert("America/New_York")
    assert sells["timestamp"].nunique() < len(sells)  # several sells share a day
    for _, g in sells.groupby(days.dt.date):
        sec = np.ceil((8e-6 * g["qty"] * g["price"]).sum() * 100 - 1e-9) / 100
        taf = np.ceil((0.000166 * g["qty"]).sum() * 100 - 1e-9) / 100
        assert g["fee"].sum() == pytest.approx(sec + taf, abs=1e-9)
    assert "AlpacaFee(name='alpaca'" in str(ev.config)


def _bars(n_days: int, n_sym: int) -> Bars:
    ts = np.datetime64("2024-06-03", "ns") + np.arange(n_days) * np.timedelta64(86_400 * 10**9,
                                                                                  "ns")
    px = np.full((n_days, n_sym), 10.0) + np.arange(n_days)[:, None] * 0.01
    return Bars(timestamps=ts, symbols=[f"S{j}" for j in range(n_sym)],
                interval=np.timedelta64(86_400 * 10**9, "ns"), open=px, high=px * 1.01,
                low=px * 0.99, close=px, volume=np.full((n_days, n_sym), 1e9))


@pytest.mark.parametrize("name", NAMES)
def test_event_driven_equals_vectorized_across_a_tier_and_a_rate_change(name: str) -> None:
    # 60 daily bars from 2024-06-03: big flips cross IBKR's 300,000-share tier within June
    # and roll into July (60 days: the 2024-09-01 CAT fee is not reached).
    bars = _bars(60, 2)
    targets = pd.DataFrame(np.nan, index=bars.index, columns=list(bars.symbols))
    targets.iloc[::3, 0] = 120_000.0
    targets.iloc[1::3, 0] = 0.0
    targets.iloc[::5, 1] = -50_000.0
    targets.iloc[2::5, 1] = 10.0
    kw = {"fees": name, "slippage": 0, "cash": 1e8}
    ev = simbroker.backtest(TargetPositions(targets), bars, **kw)
    fast = backtest_vectorized(bars, targets=targets, **kw)
    assert_exact(ev, fast)
    if name == "ibkr_tiered":  # the tier was crossed: later June buys pay less per share
        june = ev.fills[(ev.fills["timestamp"] < "2024-07-01") & (ev.fills["symbol"] == "S0")
                        & (ev.fills["side"] == "buy")]
        per_share = (june["fee"] / june["qty"]).to_numpy()
        assert per_share[0] > per_share[-1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 20)),
       name=st.sampled_from(NAMES), data=st.data())
def test_parity_with_every_schedule(bars: Bars, name: str, data: st.DataObject) -> None:
    targets = data.draw(target_frames(bars))
    kw = {"fees": name, "slippage": 0}
    assert_exact(simbroker.backtest(TargetPositions(targets), bars, **kw),
                 backtest_vectorized(bars, targets=targets, **kw))


@pytest.mark.parametrize("value", ["ibkr_fixed", {"model": "schedule", "schedule": "alpaca",
                                                  "as_of": "2024-06-01"}])
def test_yaml_fees_key_takes_a_schedule(tmp_path: Path, value: object) -> None:
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump({"cash": 1000, "fees": value}))
    from simbroker.config import load_broker_config

    config = load_broker_config("paper", path=path)
    assert isinstance(config, PaperConfig)
    assert config.fees == value


def test_yaml_unknown_schedule_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "paper.yaml"
    path.write_text("fees: ibkr_fixt\n")
    from simbroker.config import load_broker_config

    with pytest.raises(ConfigError, match=r"key 'fees'.*did you mean 'ibkr_fixed'"):
        load_broker_config("paper", path=path)


def test_cli_backtest_fees_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simbroker.cli import main

    examples = Path(__file__).resolve().parents[1] / "examples"
    strategy = next(examples.glob("sma*.py"), None)
    if strategy is None:
        pytest.skip("no SMA example")
    out = tmp_path / "out"
    code = main(["backtest", f"{strategy}:SmaCrossover", "--data", "sample", "--fees",
                 "ibkr_fixed", "--out", str(out)])
    assert code == 0
    from simbroker.results import BacktestResult

    fills = BacktestResult.load(out).fills
    assert len(fills)
    assert (fills["fee"] >= 1.0 - 1e-12).all()  # IBKR's $1 minimum, never bps of notional
    assert main(["backtest", f"{strategy}:SmaCrossover", "--data", "sample", "--fees",
                 "ibkr_fxed"]) != 0
    assert "did you mean 'ibkr_fixed'" in capsys.readouterr().err


# -- reconciliation ------------------------------------------------------------------------


def test_reconcile_commissions_on_a_hand_made_ibkr_log(tmp_path: Path) -> None:
    log = [
        {"event": "submitted", "ts": "2024-06-03T14:30:00Z", "order_id": "1"},
        # $1.00 minimum, as IB charged
        {"event": "filled", "ts": "2024-06-03T14:30:01Z", "fill_id": "1-1", "order_id": "1",
         "symbol": "AAPL", "side": "buy", "qty": 100, "price": 25.0, "fee": 1.00,
         "timestamp": "2024-06-03T14:30:01+00:00"},
        # 1,000 sold at $100 on 2024-06-04: 5.00 + SEC 2.78 + TAF 0.166 = 7.946; IB said 7.95
        {"event": "filled", "ts": "2024-06-04T15:00:00Z", "fill_id": "2-1", "order_id": "2",
         "symbol": "AAPL", "side": "sell", "qty": 1000, "price": 100.0, "fee": 7.95,
         "timestamp": "2024-06-04T15:00:00+00:00"},
        # a fill IB overcharged by 50 cents
        {"event": "filled", "ts": "2024-06-05T15:00:00Z", "fill_id": "3-1", "order_id": "3",
         "symbol": "MSFT", "side": "buy", "qty": 400, "price": 400.0, "fee": 2.50,
         "timestamp": "2024-06-05T15:00:00+00:00"},
    ]
    path = tmp_path / "ib.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in log))
    for source in (log, pd.DataFrame(log)):
        r = reconcile_commissions(source, "ibkr_fixed", tolerance=0.01)
        assert list(r.fills["fill_id"]) == ["1-1", "2-1", "3-1"]
        np.testing.assert_allclose(r.fills["expected"], [1.00, 7.946, 2.00], atol=1e-9)
        np.testing.assert_allclose(r.fills["difference"], [0.0, 0.004, 0.50], atol=1e-9)
        assert list(r.fills["over"]) == [False, False, True]
        s = r.summary
        assert s["count"] == 3
        assert s["over_tolerance"] == 1
        assert s["total_drift"] == pytest.approx(0.504)
        assert s["max_abs"] == pytest.approx(0.50)
        assert s["max_abs_fill_id"] == "3-1"
        assert s["reported_total"] == pytest.approx(11.45)
        assert "IBKRFixedFee" in s["model"]
    # A fixed model reconciled against the tiered schedule drifts on every fill.
    tiered = reconcile_commissions(log, fee_schedule("ibkr_tiered"))
    assert tiered.summary["over_tolerance"] >= 2


def test_reconcile_refuses_bad_fills_by_row_and_field() -> None:
    good = {"side": "buy", "qty": 1, "price": 1.0, "fee": 1.0}
    with pytest.raises(DataError, match="'fee'"):
        reconcile_commissions([{"side": "buy", "qty": 1, "price": 1.0}], "ibkr_fixed")
    with pytest.raises(DataError, match=r"row 1 has side='short'"):
        reconcile_commissions([good, {**good, "side": "short"}], "ibkr_fixed")
    with pytest.raises(DataError, match=r"row 0 has qty=-5"):
        reconcile_commissions([{**good, "qty": -5}], "ibkr_fixed")
    with pytest.raises(FeeScheduleError, match="did you mean"):
        reconcile_commissions([good], "ibkr_fixd")


def test_models_are_schedule_fees_with_a_schedule() -> None:
    for name in NAMES:
        m = fee_schedule(name)
        assert isinstance(m, ScheduleFee)
        assert isinstance(m.schedule, FeeSchedule)
        assert m.schedule.name == name


# -- per-order minimums over partial fills (FeeModel.order_fees, from acct-volume) ----------


def test_ibkr_fixed_minimum_is_charged_once_per_order_over_three_parts() -> None:
    m = fee_schedule("ibkr_fixed")
    # A 300-share buy at $25 filling 100 + 100 + 100. The whole order costs
    # max(300 x 0.005, 1.00) = $1.50: part 1 pays the $1.00 minimum, part 2 nothing
    # (F(200) = 1.00 - 1.00), part 3 the remaining $0.50 (F(300) = 1.50 - 1.00).
    side, qty, price = np.full(3, BUY), np.full(3, 100.0), np.full(3, 25.0)
    done = np.array([0.0, 100.0, 200.0])
    fee = m.order_fees(side, qty, price, done, done * 25.0)
    # The CAT fee is per fill: $0.000003 x 100 on each part (newest rates).
    np.testing.assert_allclose(fee, np.array([1.00, 0.0, 0.50]) + 0.0003, atol=1e-12)
    assert fee.sum() == pytest.approx(m.fee("buy", 300, 25.0))
    # A first part costs exactly what fees() says.
    np.testing.assert_array_equal(m.order_fees(side, qty, price, np.zeros(3), np.zeros(3)),
                                  m.fees(side, qty, price))


@PROPS
@given(name=st.sampled_from(NAMES), side=st.sampled_from([BUY, SELL]),
       parts=st.lists(st.floats(1.0, 2e5), min_size=1, max_size=5),
       price=st.floats(0.05, 500.0))
def test_parts_of_an_order_add_up_to_the_commission_of_the_whole(
        name: str, side: float, parts: list[float], price: float) -> None:
    m = fee_schedule(name, as_of="2024-06-03")
    q = np.array(parts)
    done = np.concatenate([[0.0], np.cumsum(q)[:-1]])
    n = len(q)
    fee = m.order_fees(np.full(n, side), q, np.full(n, price), done, done * price)
    assert np.all(fee >= 0)
    whole = m.fee("buy" if side > 0 else "sell", float(q.sum()), price)
    # Commissions add up exactly; per-fill regulatory terms (TAF cap, cent rounding) can
    # only make the parts cost more than the whole.
    assert fee.sum() >= whole - 1e-9
    if side > 0 and name != "ibkr_tiered":
        assert fee.sum() == pytest.approx(whole, abs=1e-9)
