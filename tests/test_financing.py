"""Borrow fees, hard-to-borrow refusals and interest: hand-computed days, conservation,
event-driven == vectorized, replay == broker."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import BorrowModel, HardToBorrow, InterestModel, PaperBroker, ShortingNotAllowed
from simbroker.bars import Bars
from simbroker.errors import ConfigError, TradeLogError
from simbroker.testing.strategies import bar_panels, fee_models, slippage_models, target_frames
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log
from simbroker.vectorized import TargetPositions, backtest_vectorized

# Thursday 2024-01-04, Friday, Monday 2024-01-08, Tuesday: one weekend inside.
DAYS = pd.DatetimeIndex(["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"], tz="UTC")


def _bars(close: list[float], symbols: tuple[str, ...] = ("XYZ",)) -> Bars:
    c = np.repeat(np.array(close, np.float64).reshape(-1, 1), len(symbols), axis=1)
    return Bars.from_arrays(DAYS[: len(close)], list(symbols), open=c, high=c + 1, low=c - 1,
                            close=c, volume=np.full_like(c, 1e6), interval="1D")


# ----------------------------------------------------------------- hand-computed
def test_borrow_fee_on_a_short_over_a_weekend(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    bars = _bars([50.0, 60.0, 40.0, 40.0])
    broker = PaperBroker(bars, cash=100_000, slippage=0, fees=0, trade_log=log,
                         borrow=BorrowModel(rate=0.36))
    broker.submit_order("XYZ", "sell", 100)
    broker.step()  # Thursday: short 100 at 50; 1 day at the close of 50
    assert broker.get_cash() == pytest.approx(105_000 - 100 * 50 * 0.36 / 360)  # 5.00
    broker.step()  # Friday: 3 days (Fri, Sat, Sun) at the close of 60
    assert broker.get_cash() == pytest.approx(105_000 - 5.0 - 18.0)
    broker.submit_order("XYZ", "buy", 100)
    broker.step()  # Monday: covered at the open (40): flat at the close, no fee
    broker.step()
    broker.close()
    assert broker.get_cash() == pytest.approx(105_000 - 23.0 - 4_000)
    recs = [r for r in read_trade_log(log) if r["event"] == "borrow_fee"]
    assert [r["days"] for r in recs] == [1.0, 3.0]
    assert [r["amount"] for r in recs] == pytest.approx([5.0, 18.0])
    assert recs[1]["fees"] == {"XYZ": pytest.approx(18.0)}
    assert recs[1]["positions"] == {"XYZ": -100.0}
    assert replay_trade_log(log).cash == broker.get_cash()  # exactly
    assert replay_trade_log(log).borrow_fees == pytest.approx(23.0)


def test_per_symbol_rates_and_a_rates_file(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("symbol,rate,hard_to_borrow\nAAA,0.72,false\nBBB,0.036,true\n")
    model = BorrowModel.from_csv(path, rate=0.0)
    assert model.rates == {"AAA": 0.72, "BBB": 0.036}
    assert model.hard_to_borrow == frozenset({"BBB"})
    bars = _bars([10.0, 10.0], symbols=("AAA", "BBB", "CCC"))
    broker = PaperBroker(bars, cash=0, slippage=0, fees=0,
                         borrow=dataclass_replace(model, located={"BBB": 1000}))
    for sym in ("AAA", "BBB", "CCC"):
        broker.submit_order(sym, "sell", 1000)
    broker.step()  # 10,000 short in each; 1 day
    assert broker.get_cash() == pytest.approx(30_000 - 10_000 * (0.72 + 0.036) / 360)
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,rate\nAAA,abc\n")
    with pytest.raises(ConfigError, match="line 2"):
        BorrowModel.from_csv(bad)


def dataclass_replace(model: BorrowModel, **kw: Any) -> BorrowModel:
    import dataclasses

    return dataclasses.replace(model, **kw)


def test_debit_interest_on_a_margin_buy(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    bars = _bars([50.0, 50.0, 50.0])
    broker = PaperBroker(bars, cash=10_000, slippage=0, fees=0, trade_log=log,
                         interest=InterestModel(debit=0.072))
    broker.submit_order("XYZ", "buy", 300)  # 15,000 on 10,000 of cash: a 5,000 debit
    broker.step()
    assert broker.get_cash() == pytest.approx(-5_000 - 5_000 * 0.072 / 360)  # -5,001
    broker.step()  # Friday: 3 days on 5,001
    assert broker.get_cash() == pytest.approx(-5_001 - 5_001 * 0.072 * 3 / 360)
    broker.close()
    recs = [r for r in read_trade_log(log) if r["event"] == "interest"]
    assert [r["kind"] for r in recs] == ["debit", "debit"]
    assert recs[0]["balance"] == -5_000.0
    assert recs[0]["rate"] == 0.072
    assert replay_trade_log(log).cash == broker.get_cash()


def test_credit_interest_compounds_daily_and_act_365() -> None:
    bars = _bars([50.0, 50.0, 50.0, 50.0])
    broker = PaperBroker(bars, cash=100_000, slippage=0, fees=0,
                         interest=InterestModel(credit=0.036))
    cash = 100_000.0
    for days in (1, 3, 1, 1):
        broker.step()
        cash = cash + cash * 0.036 * days / 360
        assert broker.get_cash() == pytest.approx(cash, rel=1e-13)
    broker365 = PaperBroker(bars, cash=100_000, slippage=0, fees=0,
                            interest=InterestModel(credit=0.0365, day_count=365))
    broker365.step()
    assert broker365.get_cash() == pytest.approx(100_010.0)


def test_results_show_borrow_fees_and_interest() -> None:
    bars = _bars([50.0, 60.0, 40.0, 40.0])
    targets = pd.DataFrame({"XYZ": [-100.0, np.nan, np.nan, np.nan]}, index=bars.index)
    kw: dict[str, Any] = dict(slippage=0, fees=0, cash=0.0, borrow=BorrowModel(rate=0.36),
                              interest=InterestModel(debit=0.1))
    result = simbroker.backtest(TargetPositions(targets), bars, **kw)
    assert result.borrow_fees.tolist() == pytest.approx([0.0, 6.0 * 3, 4.0, 4.0])
    assert result.stats["borrow_fees"] == pytest.approx(26.0)
    assert result.stats["interest"] == 0.0  # cash stays positive (short proceeds)
    assert "Borrow fees paid" in result.format_summary()
    # Sold at the second bar's open (60), marked at 40.
    assert result.equity.iloc[-1] == pytest.approx(6_000 - 26.0 - 4_000)


# ------------------------------------------------------------- hard to borrow
def test_a_hard_to_borrow_short_is_refused_unless_located(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    bars = _bars([50.0, 50.0, 50.0])
    broker = PaperBroker(bars, cash=100_000, slippage=0, fees=0, trade_log=log,
                         positions={"XYZ": 30},
                         borrow=BorrowModel(rate=0.1, hard_to_borrow={"XYZ"},
                                            located={"XYZ": 20}))
    broker.submit_order("XYZ", "sell", 30)  # selling a long is never a short
    broker.submit_order("XYZ", "sell", 20)  # short 20: located
    with pytest.raises(HardToBorrow, match="XYZ is hard to borrow") as info:
        broker.submit_order("XYZ", "sell", 1)  # open sells count: 21 short
    assert isinstance(info.value, ShortingNotAllowed)
    assert info.value.symbol == "XYZ"
    assert info.value.short == 21
    assert info.value.located == 20
    assert len(broker.get_orders()) == 2  # nothing placed
    assert broker.locate("XYZ", 5) == 25
    broker.submit_order("XYZ", "sell", 5)
    broker.step()
    assert broker.get_positions() == {"XYZ": -25.0}
    broker.close()
    recs = list(read_trade_log(log))
    rejected = [r for r in recs if r["event"] == "rejected"]
    assert len(rejected) == 1
    assert rejected[0]["rule"] == "hard_to_borrow"
    assert [r["located"] for r in recs if r["event"] == "located"] == [25.0]
    with pytest.raises(ConfigError, match="borrow model"):
        PaperBroker(bars).locate("XYZ", 1)


def test_bad_models_are_refused_naming_the_value() -> None:
    with pytest.raises(ConfigError, match="rates\\['A'\\]"):
        BorrowModel(rates={"A": -0.1})
    with pytest.raises(ConfigError, match="debit"):
        InterestModel(debit=float("nan"))
    with pytest.raises(ConfigError, match="unknown keys"):
        InterestModel.from_dict({"debit": 0.05, "credt": 0.01})
    with pytest.raises(TypeError, match="BorrowModel"):
        PaperBroker(_bars([1.0]), borrow=0.03)  # type: ignore[arg-type]


# --------------------------------------------------------------- properties
def _business_days(bars: Bars) -> Bars:
    """The same panel on business days (weekends between bars)."""
    ts = pd.bdate_range("2024-01-03", periods=len(bars), tz="UTC")
    return Bars.from_arrays(ts, list(bars.symbols), open=bars.open, high=bars.high,
                            low=bars.low, close=bars.close, volume=bars.volume,
                            interval="1D")


@st.composite
def cases(draw: st.DrawFn) -> tuple[Bars, pd.DataFrame, dict[str, Any]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 20),
                           allow_missing=draw(st.booleans())))
    layout = draw(st.sampled_from(["daily", "business", "intraday"]))
    if layout == "business":
        bars = _business_days(bars)
    elif layout == "intraday":  # hourly bars over a few days: one accrual per date
        ts = pd.date_range("2024-01-05 14:00", periods=len(bars), freq="7h", tz="UTC")
        bars = Bars.from_arrays(ts, list(bars.symbols), open=bars.open, high=bars.high,
                                low=bars.low, close=bars.close, volume=bars.volume,
                                interval="1h")
    targets = draw(target_frames(bars))
    rate = st.sampled_from([0.0, 0.03, 0.5])
    borrow = BorrowModel(rate=draw(rate), rates={"A": draw(rate)})
    interest = InterestModel(debit=draw(rate), credit=draw(st.sampled_from([0.0, 0.02])))
    kw = {"slippage": draw(slippage_models()), "fees": draw(fee_models()),
          "cash": draw(st.sampled_from([100_000.0, 1_234.5678, 0.0])),
          "borrow": draw(st.sampled_from([borrow, None])),
          "interest": draw(st.sampled_from([interest, None]))}
    if kw["borrow"] is None and kw["interest"] is None:
        kw["borrow"] = borrow
    return bars, targets, kw


def _assert_conserved(result: simbroker.BacktestResult, cash0: float) -> None:
    f = result.fills
    signed = float(np.where(f["side"] == "buy", f["notional"], -f["notional"]).sum())
    expected = (cash0 - signed - float(f["fee"].sum()) - float(result.borrow_fees.sum())
                - float(result.interest.sum()))
    scale = cash0 + float(f["notional"].abs().sum()) + 1.0
    assert math.isclose(result.final_cash, expected, rel_tol=0, abs_tol=1e-9 * scale)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_cash_conserved_event_driven_equals_vectorized_and_replay(
        tmp_path_factory: pytest.TempPathFactory,
        case: tuple[Bars, pd.DataFrame, dict[str, Any]]) -> None:
    bars, targets, kw = case
    log = tmp_path_factory.mktemp("fin") / "log.jsonl"
    event = simbroker.backtest(TargetPositions(targets), bars, trade_log=log, **kw)
    fast = backtest_vectorized(bars, targets=targets, **kw)
    for name in ("cash", "equity", "borrow_fees", "interest"):
        pd.testing.assert_series_equal(getattr(fast, name), getattr(event, name),
                                       check_exact=True)
    pd.testing.assert_frame_equal(fast.positions, event.positions, check_exact=True)
    assert fast.stats["borrow_fees"] == event.stats["borrow_fees"]
    _assert_conserved(event, kw["cash"])
    state = replay_trade_log(log)
    assert state.cash == event.final_cash  # bit for bit
    assert {k: v for k, v in state.positions.items() if v} == event.final_positions
    if kw["borrow"] is not None:
        assert math.isclose(state.borrow_fees, event.stats["borrow_fees"], rel_tol=1e-12,
                            abs_tol=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 20)), st.data())
def test_weights_event_driven_equals_vectorized(bars: Bars, data: st.DataObject) -> None:
    bars = _business_days(bars)
    w = data.draw(hnp.arrays(np.float64, (len(bars), bars.n_symbols), elements=st.one_of(
        st.just(np.nan), st.floats(-1.5, 1.5, allow_nan=False, allow_subnormal=False))))
    weights = pd.DataFrame(w, index=bars.index, columns=list(bars.symbols))
    kw: dict[str, Any] = dict(borrow=BorrowModel(rate=0.2),
                              interest=InterestModel(debit=0.08, credit=0.03))
    event = simbroker.backtest(TargetPositions(weights=weights), bars, **kw)
    fast = backtest_vectorized(bars, weights=weights, **kw)
    pd.testing.assert_series_equal(fast.cash, event.cash, check_exact=True)
    pd.testing.assert_series_equal(fast.equity, event.equity, check_exact=True)
    pd.testing.assert_series_equal(fast.interest, event.interest, check_exact=True)


def test_paper_config_yaml_keys() -> None:
    from simbroker.config import PaperConfig

    cfg = PaperConfig.from_dict({"borrow": {"rate": 0.03, "hard_to_borrow": ["GME"],
                                            "located": {"GME": 100}},
                                 "interest": {"debit": 0.06, "credit": 0.01}})
    borrow, interest = cfg.financing()
    assert borrow == BorrowModel(rate=0.03, hard_to_borrow={"GME"}, located={"GME": 100})
    assert interest == InterestModel(debit=0.06, credit=0.01)
    with pytest.raises(ConfigError, match=r"key 'interest'.*debit"):
        PaperConfig.from_dict({"interest": {"debit": -1}})
    with pytest.raises(ConfigError, match="unknown keys \\['rat'\\]"):
        PaperConfig.from_dict({"borrow": {"rat": 0.03}})


class _FailOnce(TradeLog):
    """A trade log whose first write of ``event`` fails (a full disk, say)."""

    def __init__(self, path: Path, event: str):
        super().__init__(path)
        self.fail_event: str | None = event

    def write(self, event: str, ts: Any, **fields: Any) -> Any:
        if event == self.fail_event:
            self.fail_event = None
            raise TradeLogError("disk full", path=str(self.path))
        return super().write(event, ts, **fields)


@pytest.mark.parametrize("event", ["borrow_fee", "interest"])
def test_a_failed_accrual_write_changes_nothing_and_the_step_redoes_it_once(
        tmp_path: Path, event: str) -> None:
    bars = _bars([50.0, 60.0, 40.0])
    log = _FailOnce(tmp_path / "log.jsonl", event)
    kw: dict[str, Any] = dict(cash=1_000, slippage=0, fees=0, borrow=BorrowModel(rate=0.36),
                              interest=InterestModel(debit=0.1, credit=0.05))
    broker = PaperBroker(bars, trade_log=log, **kw)
    twin = PaperBroker(bars, **kw)
    for b in (broker, twin):
        b.submit_order("XYZ", "sell", 100)
    twin.step()
    cash = broker.get_cash()
    with pytest.raises(TradeLogError):
        broker.step()
    if event == "borrow_fee":  # the fill is booked, nothing of the accrual
        assert broker.get_cash() == 1_000 + 5_000
    assert broker.bar_index == -1
    broker.step()
    assert broker.get_cash() == twin.get_cash() != cash
    for _ in range(2):
        broker.step()
        twin.step()
    assert broker.get_cash() == twin.get_cash()
    log.close()
    recs = list(read_trade_log(tmp_path / "log.jsonl"))
    assert sum(r["event"] == event for r in recs) == 3  # one per day, none twice
    assert replay_trade_log(tmp_path / "log.jsonl").cash == broker.get_cash()


def test_results_round_trip_through_save(tmp_path: Path) -> None:
    bars = _bars([50.0, 60.0, 40.0, 40.0])
    targets = pd.DataFrame({"XYZ": [-100.0, np.nan, np.nan, np.nan]}, index=bars.index)
    result = simbroker.backtest(TargetPositions(targets), bars, borrow=BorrowModel(rate=0.1),
                                interest=InterestModel(credit=0.02))
    loaded = simbroker.load_result(result.save(tmp_path / "run"))
    pd.testing.assert_series_equal(loaded.borrow_fees, result.borrow_fees, check_freq=False)
    pd.testing.assert_series_equal(loaded.interest, result.interest, check_freq=False)
    assert loaded.stats["borrow_fees"] == result.stats["borrow_fees"]
