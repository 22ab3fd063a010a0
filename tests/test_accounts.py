"""Account models: Reg T margin, cash accounts with T+1 settlement, the PDT rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import Bars, PaperBroker
from simbroker.accounts import CashAccount, MarginAccount, account_model
from simbroker.errors import InsufficientBuyingPower, OrderRejected, PatternDayTrading
from simbroker.testing.checks import PaperVenue, check_broker_conformance
from simbroker.tradelog import read_trade_log

HOUR = np.timedelta64(3_600_000_000_000, "ns")


def bars_at(times: Sequence[str], closes: Sequence[float], *, opens: Sequence[float] | None = None,
            symbols: Sequence[str] = ("X",)) -> Bars:
    """Bars at ``times`` (UTC), flat at each close unless ``opens`` are given."""
    ts = np.array([np.datetime64(t, "ns") for t in times])
    c = np.array(closes, float).reshape(len(times), 1).repeat(len(symbols), axis=1)
    o = c if opens is None else np.array(opens, float).reshape(-1, 1).repeat(len(symbols), 1)
    return Bars.from_arrays(ts, list(symbols), open=o, high=np.maximum(o, c),
                            low=np.minimum(o, c), close=c, volume=np.full(c.shape, 1e6))


def daily(closes: Sequence[float], **kw: object) -> Bars:
    days = [str(np.datetime64("2024-01-01T21:00") + np.timedelta64(i, "D"))
            for i in range(len(closes))]
    return bars_at(days, closes, **kw)  # type: ignore[arg-type]


def state(b: PaperBroker) -> tuple[float, dict[str, float], int, int]:
    return b.get_cash(), b.get_positions(), len(b.get_orders()), len(b.get_fills())


# ------------------------------------------------------------------ Reg T
def test_reg_t_buy_60k_with_40k_equity_is_allowed_up_to_80k(tmp_path: Path) -> None:
    b = PaperBroker(daily([100.0] * 5), cash=40_000, account="margin", slippage=0, fees=0,
                    trade_log=tmp_path / "log.jsonl")
    b.step()
    acct = b.get_account()
    assert acct["account_type"] == "margin"
    assert acct["buying_power"] == pytest.approx(80_000)  # 40k equity / 50% initial
    b.submit_order("X", "buy", 600)  # $60k: allowed
    assert b.get_account()["buying_power"] == pytest.approx(20_000)  # the order reserves
    before = state(b)
    with pytest.raises(InsufficientBuyingPower) as err:
        b.submit_order("X", "buy", 201)  # $20,100 > $20,000 left
    assert err.value.required == pytest.approx(20_100)
    assert err.value.available == pytest.approx(20_000)
    assert err.value.rule == "buying_power"
    assert "20,100.00" in str(err.value)
    assert "20,000.00" in str(err.value)
    assert isinstance(err.value, OrderRejected)
    assert state(b) == before  # nothing changed
    b.submit_order("X", "buy", 200)  # exactly the rest: allowed
    b.step()
    acct = b.get_account()
    assert acct["cash"] == pytest.approx(-40_000)
    assert acct["equity"] == pytest.approx(40_000)
    assert acct["initial_margin"] == pytest.approx(40_000)
    assert acct["maintenance_margin"] == pytest.approx(20_000)
    assert acct["buying_power"] == pytest.approx(0)
    b.close()
    rejected = [r for r in read_trade_log(tmp_path / "log.jsonl") if r["event"] == "rejected"]
    assert len(rejected) == 1
    assert rejected[0]["rule"] == "buying_power"
    assert "insufficient buying power" in rejected[0]["reason"]


def test_shorts_need_margin_and_closing_needs_none() -> None:
    b = PaperBroker(daily([100.0] * 5), cash=40_000, account="margin", slippage=0, fees=0)
    b.step()
    with pytest.raises(InsufficientBuyingPower):
        b.submit_order("X", "sell", 801)  # an $80,100 short needs $40,050
    b.submit_order("X", "sell", 800)
    b.step()
    assert b.get_account()["short_market_value"] == pytest.approx(-80_000)
    assert b.get_account()["buying_power"] == pytest.approx(0)
    b.submit_order("X", "buy", 800)  # covering opens nothing: needs no margin
    with pytest.raises(InsufficientBuyingPower):  # beyond the cover it opens a long
        b.submit_order("X", "buy", 1)


def test_per_symbol_rates() -> None:
    bars = daily([100.0] * 3, symbols=("X", "Y"))
    acct = MarginAccount(initial_by_symbol={"Y": 1.0}, maintenance_by_symbol={"Y": 1.0})
    b = PaperBroker(bars, cash=40_000, account=acct, slippage=0, fees=0)
    b.step()
    with pytest.raises(InsufficientBuyingPower) as err:
        b.submit_order("Y", "buy", 401)  # non-marginable: $40k buys at most 400
    assert err.value.available == pytest.approx(40_000)
    b.submit_order("X", "buy", 800)
    with pytest.raises(ValueError, match="not in the bars"):
        PaperBroker(bars, account=MarginAccount(initial_by_symbol={"Z": 0.5}))


def test_an_account_object_serves_one_broker() -> None:
    acct = MarginAccount()
    PaperBroker(daily([100.0] * 2), account=acct)
    with pytest.raises(ValueError, match="its own account object"):
        PaperBroker(daily([100.0] * 2), account=acct)
    with pytest.raises(ValueError, match="account must be one of"):
        account_model("portfolio")  # type: ignore[arg-type]


# ------------------------------------------------------------- margin call
def test_margin_call_on_the_bar_equity_falls_below_maintenance(tmp_path: Path) -> None:
    # 800 shares at 100 with 40k: equity 800p - 40k, maintenance 200p; breach below 66.67.
    closes = [100.0, 100.0, 80.0, 70.0, 66.0, 66.0, 66.0]
    b = PaperBroker(daily(closes), cash=40_000, account=MarginAccount(liquidate=True),
                    slippage=0, fees=0, trade_log=tmp_path / "log.jsonl")
    b.step()
    b.submit_order("X", "buy", 800)
    for _ in range(3):
        b.step()
    acct = b.account
    assert acct is not None
    assert isinstance(acct, MarginAccount)
    assert acct.calls == []  # at 70: equity 16,000 >= 14,000
    b.step()  # bar 4 closes at 66
    assert [c["bar"] for c in acct.calls] == [4.0]
    call = acct.calls[0]
    assert call["equity"] == pytest.approx(800 * 66 - 40_000)
    assert call["maintenance_margin"] == pytest.approx(0.25 * 800 * 66)
    records = read_trade_log(tmp_path / "log.jsonl")
    calls = [r for r in records if r["event"] == "margin_call"]
    assert len(calls) == 1
    assert calls[0]["deficit"] == pytest.approx(400)
    assert calls[0]["ts"] == b.now()
    # Liquidation: ceil(400 / (66 x 25%)) = 25 shares, at the next bar's open.
    liq = [o for o in b.get_orders() if (o["client_order_id"] or "").startswith("liquidate-")]
    assert [(o["side"], o["qty"], o["order_type"]) for o in liq] == [("sell", 25.0, "market")]
    b.step()
    assert b.get_positions() == {"X": 775.0}
    assert b.get_fills()[-1]["timestamp"] == b.bars.index[5]
    info = b.get_account()
    assert info["equity"] >= info["maintenance_margin"]
    b.close()


def test_margin_call_without_liquidation_is_an_event_only() -> None:
    b = PaperBroker(daily([100.0, 100.0, 60.0, 50.0]), cash=40_000, account="margin",
                    slippage=0, fees=0)
    b.step()
    b.submit_order("X", "buy", 800)
    b.step()
    b.step()
    b.step()
    acct = b.account
    assert isinstance(acct, MarginAccount)
    assert [c["bar"] for c in acct.calls] == [2.0]  # once per breach
    assert b.get_positions() == {"X": 800.0}


# ----------------------------------------------------------- settlement
MONDAY = ["2024-01-01T14:00", "2024-01-01T15:00", "2024-01-01T16:00", "2024-01-01T17:00"]
TUESDAY = ["2024-01-02T14:00", "2024-01-02T15:00", "2024-01-02T16:00"]


def test_t_plus_1_settlement_in_a_cash_account(tmp_path: Path) -> None:
    bars = bars_at(MONDAY + TUESDAY, [100.0] * 7)
    b = PaperBroker(bars, cash=0.0, positions={"X": 100}, account="cash", slippage=0,
                    fees=0, trade_log=tmp_path / "log.jsonl")
    b.step()
    b.submit_order("X", "sell", 100)
    b.step()  # Monday 15:00: sold for 10,000, unsettled until Tuesday
    acct = b.get_account()
    assert acct["cash"] == pytest.approx(10_000)
    assert acct["settled_cash"] == pytest.approx(0)
    assert acct["buying_power"] == pytest.approx(10_000)  # unsettled funds may buy
    b.submit_order("X", "buy", 50)
    b.step()  # Monday 16:00: 50 bought with unsettled money
    with pytest.raises(InsufficientBuyingPower) as err:
        b.submit_order("X", "sell", 50)  # would trade Monday 17:00: good-faith violation
    assert err.value.rule == "good_faith"
    assert [r["rule"] for r in read_trade_log(tmp_path / "log.jsonl")
            if r["event"] == "rejected"] == ["good_faith"]
    with pytest.raises(InsufficientBuyingPower) as err:
        b.submit_order("X", "buy", 51)  # beyond the cash: free-riding
    assert err.value.rule == "buying_power"
    with pytest.raises(InsufficientBuyingPower) as err:
        b.submit_order("X", "sell", 51)
    assert err.value.rule == "cash_account_short"
    b.step()  # Monday 17:00: the next bar is Tuesday, when the proceeds have settled
    assert b.get_account()["settled_cash"] == pytest.approx(0)
    b.submit_order("X", "sell", 50)  # trades Tuesday: paid for by then
    b.step()
    acct = b.get_account()
    assert acct["settled_cash"] == pytest.approx(5_000)  # Monday's money settled
    assert acct["cash"] == pytest.approx(10_000)  # Tuesday's sale settles Wednesday
    b.close()


def test_good_faith_record_mode_and_margin_accounts_allow_it(tmp_path: Path) -> None:
    bars = bars_at(MONDAY + TUESDAY, [100.0] * 7)
    for account in (CashAccount(good_faith="record"), MarginAccount()):
        b = PaperBroker(bars, cash=0.0, positions={"X": 100}, account=account, slippage=0,
                        fees=0, trade_log=tmp_path / f"{account.account_type}.jsonl")
        b.step()
        b.submit_order("X", "sell", 100)
        b.step()
        b.submit_order("X", "buy", 50)
        b.step()
        b.submit_order("X", "sell", 50)
        b.step()
        assert b.get_positions() == {}
        b.close()
        events = [r["event"] for r in read_trade_log(tmp_path / f"{account.account_type}.jsonl")]
        if isinstance(account, CashAccount):
            assert account.violations == 1
            assert "good_faith_violation" in events
        else:
            assert "good_faith_violation" not in events
            assert b.get_account()["settled_cash"] is None


def test_settlement_counts_trading_days_of_the_calendar() -> None:
    pytest.importorskip("exchange_calendars")
    from simbroker.sessions import with_calendar
    # Friday 2024-03-28 (Thursday before Good Friday), then Monday 2024-04-01: a sale on
    # Thursday settles on Monday, the next XNYS session.
    times = ["2024-03-28T15:00", "2024-03-28T16:00", "2024-03-28T17:00",
             "2024-04-01T15:00", "2024-04-01T16:00"]
    bars = with_calendar(bars_at(times, [100.0] * 5), "XNYS")
    b = PaperBroker(bars, cash=0.0, positions={"X": 10}, account="cash", slippage=0, fees=0)
    b.step()
    b.submit_order("X", "sell", 10)
    b.step()
    b.step()
    assert b.get_account()["settled_cash"] == pytest.approx(0)
    b.step()  # Monday: one trading day later
    assert b.get_account()["settled_cash"] == pytest.approx(1_000)


# --------------------------------------------------------------------- PDT
def day_trading_bars(n_days: int = 2) -> Bars:
    times = [str(np.datetime64(f"2024-01-0{1 + d}T12:00") + h * np.timedelta64(1, "h"))
             for d in range(n_days) for h in range(11)]
    return bars_at(times, [100.0] * len(times))


def round_trip(b: PaperBroker) -> None:
    b.submit_order("X", "buy", 10)
    b.step()
    b.submit_order("X", "sell", 10)
    b.step()


def test_pdt_rule_refuses_the_fourth_day_trade_under_25k() -> None:
    b = PaperBroker(day_trading_bars(), cash=10_000, account="margin", slippage=0, fees=0)
    b.step()
    for _ in range(3):
        round_trip(b)
    assert b.get_account()["day_trades"] == 3
    b.submit_order("X", "buy", 10)
    b.step()
    with pytest.raises(PatternDayTrading) as err:
        b.submit_order("X", "sell", 10)
    assert err.value.day_trades == 3
    assert "3 already" in str(err.value)
    assert "day trade 4" in str(err.value)
    assert b.get_positions() == {"X": 10.0}


def test_pdt_above_25k_flags_the_account_and_gives_4x_intraday() -> None:
    b = PaperBroker(day_trading_bars(), cash=30_000, account="margin", slippage=0, fees=0)
    b.step()
    assert b.get_account()["buying_power"] == pytest.approx(60_000)  # 2x, not flagged
    for _ in range(4):
        round_trip(b)
    acct = b.get_account()
    assert acct["day_trades"] == 4
    assert acct["pattern_day_trader"]
    assert acct["buying_power"] == pytest.approx(120_000)  # 4x intraday
    b.submit_order("X", "buy", 1200)  # $120k intraday: allowed
    with pytest.raises(InsufficientBuyingPower):
        b.submit_order("X", "buy", 1)


def test_pdt_check_is_optional() -> None:
    b = PaperBroker(day_trading_bars(), cash=10_000, account=MarginAccount(pdt_check=False),
                    slippage=0, fees=0)
    b.step()
    for _ in range(4):
        round_trip(b)
    assert b.get_account()["day_trades"] == 4


# ------------------------------------------------------------- properties
ACCOUNTS = st.sampled_from(["cash", "margin", "margin_pdt"])


@st.composite
def sessions(draw: st.DrawFn) -> tuple[str, list[tuple[int, str, str, float, float]]]:
    kind = draw(ACCOUNTS)
    steps = draw(st.lists(st.tuples(
        st.integers(0, 1), st.sampled_from(["buy", "sell"]),
        st.sampled_from(["market", "limit"]), st.floats(1, 400), st.floats(0.9, 1.1)),
        min_size=1, max_size=25))
    return kind, [(c, s, t, math.floor(q), px) for c, s, t, q, px in steps]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions(), st.integers(0, 10_000))
def test_no_account_exceeds_its_buying_power_and_books_balance(
        case: tuple[str, list[tuple[int, str, str, float, float]]], seed: int) -> None:
    kind, steps = case
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=len(steps) + 2, seed=seed)
    account = MarginAccount(pattern_day_trader=True) if kind == "margin_pdt" else kind
    b = PaperBroker(bars, cash=20_000, account=account, fees=2, slippage=5)
    syms = bars.symbols
    for col, side, otype, qty, off in steps:
        b.step()
        info0 = b.get_account()
        before = state(b)
        last = float(bars.close[b.bar_index, col])
        limit = round(last * off, 2) if otype == "limit" else None
        refused: OrderRejected | None = None
        try:
            b.submit_order(syms[col], side, max(qty, 1), otype, limit_price=limit)
        except (InsufficientBuyingPower, PatternDayTrading) as exc:
            refused = exc
        if refused is not None:
            if isinstance(refused, InsufficientBuyingPower):
                assert refused.required > refused.available
            assert state(b) == before
            assert b.get_account() == info0
            continue
        assert b.get_account()["buying_power"] >= -1e-6  # never beyond it when accepted
    while b.has_next:
        b.step()
    fills = b.get_fills()
    sign = {"buy": 1.0, "sell": -1.0}
    cash = 20_000 - sum(sign[f["side"]] * f["notional"] + f["fee"] for f in fills)
    assert b.get_cash() == pytest.approx(cash, rel=1e-12, abs=1e-6)
    for s in syms:
        held = sum(sign[f["side"]] * f["qty"] for f in fills if f["symbol"] == s)
        assert b.get_positions().get(s, 0.0) == pytest.approx(held)
    info = b.get_account()
    assert info["equity"] == pytest.approx(info["cash"] + info["long_market_value"]
                                           + info["short_market_value"])
    if kind == "cash":
        assert all(q >= 0 for q in b.get_positions().values())
        assert info["settled_cash"] is not None
        assert info["settled_cash"] <= info["cash"] + 1e-9


# ------------------------------------------------------------ conformance
@pytest.mark.parametrize("account", ["margin", "cash", None])
def test_conformance_with_accounts(account: str | None) -> None:
    check_broker_conformance(lambda: PaperVenue(account=account, cash=1_000_000))


def test_risk_broker_passes_get_account_through() -> None:
    b = PaperBroker(daily([100.0] * 3), cash=40_000, account="margin")
    r = simbroker.RiskBroker(b, simbroker.RiskLimits())
    b.step()
    assert r.get_account() == b.get_account()
    assert isinstance(r, simbroker.AccountBroker)


def test_default_is_unconstrained() -> None:
    b = PaperBroker(daily([100.0] * 3), cash=1_000)
    b.step()
    b.submit_order("X", "buy", 1_000)  # $100k with $1k: the default never refuses
    assert b.get_account()["account_type"] == "unconstrained"
    assert b.get_account()["buying_power"] == math.inf


def test_replace_cannot_grow_an_order_past_buying_power() -> None:
    b = PaperBroker(daily([100.0] * 4), cash=40_000, account="margin", slippage=0, fees=0)
    b.step()
    o = b.submit_order("X", "buy", 700, "limit", limit_price=100.0)
    b.replace_order(o["order_id"], qty=800)  # $80k: fits
    with pytest.raises(simbroker.ReplaceRejected, match="insufficient buying power"):
        b.replace_order(o["order_id"], qty=801)
    assert b.get_order(o["order_id"])["qty"] == 800


def test_a_flagged_account_under_25k_cannot_day_trade() -> None:
    b = PaperBroker(day_trading_bars(), cash=10_000,
                    account=MarginAccount(pattern_day_trader=True), slippage=0, fees=0)
    b.step()
    b.submit_order("X", "buy", 10)
    b.step()
    with pytest.raises(PatternDayTrading, match="0 already"):
        b.submit_order("X", "sell", 10)


def test_a_partly_filled_order_reserves_what_is_left_of_it() -> None:
    # The volume cap fills 30 of a buy of 100 at 100 (2.5% of 1,200); the 70 left hold
    # 7,000 of the buying power (not 100 - 30 - 30: the book already keeps what is left).
    ts = [str(np.datetime64("2024-01-01T21:00") + np.timedelta64(i, "D")) for i in range(5)]
    bars = bars_at(ts, [100.0] * 5)
    bars = Bars.from_arrays(bars.timestamps, ["X"], open=bars.open, high=bars.high,
                            low=bars.low, close=bars.close, volume=np.full((5, 1), 1_200.0))
    b = PaperBroker(bars, cash=100_000, account="margin", slippage=0, fees=0,
                    max_volume_share=0.025)
    b.step()
    o = b.submit_order("X", "buy", 100, "limit", limit_price=100.0, tif="gtc")
    b.step()
    assert b.get_order(o["order_id"])["filled_qty"] == 30
    a = b.get_account()
    assert (a["equity"], a["initial_margin"]) == (100_000.0, 1_500.0)
    assert a["buying_power"] == pytest.approx((100_000 - 1_500) / 0.5 - 7_000)
