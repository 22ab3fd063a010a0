"""Corporate actions: the table, attaching it to bars, splits and dividends in both
engines, adjusted prices, and the trade log."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from simbroker.actions import CorporateActions, attach_actions, schedule
from simbroker.bars import Bars
from simbroker.errors import DataError

DAYS = pd.date_range("2014-06-02", periods=10, freq="B", tz="UTC")


def _aapl() -> Bars:
    """Ten daily bars around a 7:1 split on Monday 2014-06-09 (bar 5)."""
    close = np.array([630.0, 637.0, 644.0, 647.0, 645.5, 92.2, 93.0, 94.0, 93.5, 92.5])
    open_ = np.array([628.0, 631.0, 637.0, 645.0, 647.0, 92.7, 92.0, 93.0, 94.0, 93.0])
    c = close.reshape(-1, 1)
    o = open_.reshape(-1, 1)
    return Bars.from_arrays(DAYS, ["AAPL"], open=o, high=np.maximum(o, c) + 1,
                            low=np.minimum(o, c) - 1, close=c, volume=np.full_like(c, 1e6))


def _aapl_actions() -> CorporateActions:
    return CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL", "AAPL"], "ex_date": ["2014-06-09", "2014-06-11"],
        "split": [7.0, 0.0], "dividend": [0.0, 0.47]}))


# ------------------------------------------------------------------------- table
def test_from_frame_reads_splits_and_dividends_in_one_frame() -> None:
    acts = _aapl_actions()
    assert len(acts) == 2
    frame = acts.frame()
    assert frame["kind"].tolist() == ["split", "dividend"]
    assert frame["value"].tolist() == [7.0, 0.47]
    assert frame["pay_date"].tolist() == frame["ex_date"].tolist()  # default = ex-date


def test_from_frame_yfinance_shape_with_index_and_symbol_argument() -> None:
    idx = pd.DatetimeIndex(["2014-05-08 00:00:00-04:00", "2014-06-09 00:00:00-04:00"])
    frame = pd.DataFrame({"Dividends": [3.29, 0.0], "Stock Splits": [0.0, 7.0]}, index=idx)
    acts = CorporateActions.from_frame(frame, symbol="AAPL", tz="America/New_York")
    assert acts.ex_date.tolist() == [np.datetime64("2014-05-08"), np.datetime64("2014-06-09")]
    assert acts.kinds.tolist() == ["dividend", "split"]


def test_from_frame_long_form_and_pay_date() -> None:
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["KO", "KO"], "ex_date": ["2020-03-13", "2020-06-12"],
        "kind": ["dividend", "dividend"], "value": [0.41, 0.41],
        "pay_date": ["2020-04-01", None]}))
    assert acts.pay_date.tolist() == [np.datetime64("2020-04-01"), np.datetime64("2020-06-12")]


@pytest.mark.parametrize(("column", "value", "field"), [
    ("dividend", -0.5, "dividend"), ("split", -2.0, "split"), ("dividend", "abc", "dividend"),
    ("ex_date", "not a date", "ex_date")])
def test_bad_rows_are_named(column: str, value: object, field: str) -> None:
    frame = pd.DataFrame({"symbol": ["A", "A"], "ex_date": ["2020-01-02", "2020-01-03"],
                          "dividend": [0.1, 0.2], "split": [0.0, 0.0]})
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    with pytest.raises(DataError) as err:
        CorporateActions.from_frame(frame)
    assert err.value.problems[0]["row"] == 1
    assert err.value.problems[0]["field"] == field
    assert f"field={field}" in str(err.value)


def test_pay_before_ex_and_duplicates_are_refused() -> None:
    with pytest.raises(DataError, match="pay date"):
        CorporateActions.from_frame(pd.DataFrame({
            "symbol": ["A"], "ex_date": ["2020-01-10"], "dividend": [0.1],
            "pay_date": ["2020-01-02"]}))
    with pytest.raises(DataError, match="second dividend"):
        CorporateActions.from_frame(pd.DataFrame({
            "symbol": ["A", "A"], "ex_date": ["2020-01-10", "2020-01-10"],
            "dividend": [0.1, 0.2]}))


def test_from_rows_takes_only_real_actions() -> None:
    ts = DAYS.asi8[:4]
    acts = CorporateActions.from_rows(["A", "A", "B", "B"], ts,
                                      dividend=np.array([0.0, 0.5, np.nan, 0.0]),
                                      split=np.array([0.0, 1.0, 7.0, np.nan]))
    assert acts.frame()[["symbol", "kind", "value"]].values.tolist() == [
        ["A", "dividend", 0.5], ["B", "split", 7.0]]
    with pytest.raises(DataError) as err:
        CorporateActions.from_rows(["A"], ts[:1], dividend=np.array([-1.0]))
    assert err.value.problems[0]["row"] == 0


def test_read_csv_and_parquet(tmp_path: object) -> None:
    from pathlib import Path
    base = Path(str(tmp_path))
    frame = _aapl_actions().frame()
    frame.to_csv(base / "a.csv", index=False)
    frame.to_parquet(base / "a.parquet")
    for name in ("a.csv", "a.parquet"):
        got = CorporateActions.read(base / name)
        assert got.frame().equals(_aapl_actions().frame())
    with pytest.raises(DataError, match="not found"):
        CorporateActions.read(base / "missing.csv")


def test_table_is_read_only() -> None:
    acts = _aapl_actions()
    with pytest.raises(ValueError, match="read-only"):
        acts.value[0] = 2.0
    with pytest.raises(AttributeError):
        acts.tz = "X"  # type: ignore[misc]


# ----------------------------------------------------------------------- attaching
def test_attach_carries_through_select_and_rows() -> None:
    bars = attach_actions(_aapl(), _aapl_actions())
    assert bars.actions is not None
    assert bars.actions.prices == "raw"
    assert bars.rows(0, 5).actions is bars.actions
    assert bars.select(["AAPL"]).actions is not None
    assert _aapl().actions is None


def test_attach_names_unknown_symbols() -> None:
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["MSFT"], "ex_date": ["2014-06-09"], "dividend": [0.28]}))
    with pytest.raises(DataError, match="'MSFT'"):
        attach_actions(_aapl(), acts)
    assert len(attach_actions(_aapl(), acts, unknown_symbols="drop").actions or ()) == 0


def test_attach_refuses_adjusted_prices_next_to_split_factors() -> None:
    raw = _aapl()
    k = np.where(np.arange(10) < 5, 1 / 7, 1.0).reshape(-1, 1)
    adjusted = Bars.from_arrays(DAYS, ["AAPL"], open=raw.open * k, high=raw.high * k,
                                low=raw.low * k, close=raw.close * k, volume=raw.volume)
    with pytest.raises(DataError, match="already split-adjusted") as err:
        attach_actions(adjusted, _aapl_actions())
    assert err.value.problems[0]["symbol"] == "AAPL"
    told = attach_actions(adjusted, _aapl_actions(), prices="adjusted")
    assert told.actions is not None
    assert told.actions.prices == "adjusted"


def test_schedule_ex_bar_and_pay_bar() -> None:
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL", "AAPL", "AAPL"],
        "ex_date": ["2014-06-07", "2014-06-11", "2014-01-01"],  # a Saturday; one before
        "kind": ["split", "dividend", "dividend"], "value": [7.0, 0.47, 1.0],
        "pay_date": [None, "2014-06-14", None]}))
    sched = schedule(_aapl(), acts)
    assert sched.t.tolist() == [5, 7]  # Monday 2014-06-09 is bar 5; before-data dropped
    assert sched.pay_t.tolist() == [5, 10]  # paid on a Saturday: after the last bar (index 9)


# ------------------------------------------------------------ the paper broker
import math  # noqa: E402
from pathlib import Path  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import simbroker  # noqa: E402
from simbroker.paper import PaperBroker  # noqa: E402
from simbroker.tradelog import read_trade_log, replay_trade_log  # noqa: E402
from simbroker.vectorized import TargetPositions, backtest_vectorized  # noqa: E402


def _run_to_end(broker: PaperBroker) -> None:
    while broker.has_next:
        broker.step()


def test_split_multiplies_position_and_open_orders_and_keeps_equity() -> None:
    bars = attach_actions(_aapl(), _aapl_actions())
    broker = PaperBroker(bars, cash=100_000, slippage=0, fees=0)
    broker.submit_order("AAPL", "buy", 100)
    lim = broker.submit_order("AAPL", "sell", 50, "limit", limit_price=700.0, tif="gtc")
    stop = broker.submit_order("AAPL", "sell", 30, "stop_limit", stop_price=560.0,
                               limit_price=553.0, tif="gtc")
    for _ in range(5):
        broker.step()  # bars 0..4: bought 100 at bar 0's open (628)
    assert broker.get_positions() == {"AAPL": 100.0}
    equity_before = broker.get_cash() + 100 * 645.5
    broker.step()  # bar 5: the 7:1 split applies before it trades
    assert broker.get_positions() == {"AAPL": 700.0}
    # At the same price in new shares (645.5 / 7), the account is worth what it was.
    assert broker.get_cash() + 700 * (645.5 / 7) == pytest.approx(equity_before, rel=1e-15)
    assert broker.get_cash() == 100_000 - 100 * 628.0
    got = broker.get_order(lim["order_id"])
    assert (got["qty"], got["limit_price"]) == (350.0, 100.0)
    got = broker.get_order(stop["order_id"])
    assert got["qty"] == 210.0
    assert got["stop_price"] == pytest.approx(80.0)
    assert got["limit_price"] == pytest.approx(79.0)


def test_dividend_credited_on_ex_date_to_holders_into_it() -> None:
    bars = attach_actions(_aapl(), _aapl_actions())
    broker = PaperBroker(bars, cash=100_000, slippage=0, fees=0)
    broker.submit_order("AAPL", "buy", 100)
    _run_to_end(broker)
    # 700 post-split shares held into 2014-06-11 (bar 7): 700 * 0.47.
    assert broker.get_cash() == 100_000 - 100 * 628.0 + 700 * 0.47
    result = simbroker.results.build_result(broker)
    assert result.dividends["amount"].tolist() == [700 * 0.47]
    assert result.stats["dividends"] == 700 * 0.47
    assert result.cash.iloc[7] - result.cash.iloc[6] == pytest.approx(329.0)
    assert "Dividends received" in result.format_summary()


def test_short_pays_the_dividend() -> None:
    bars = attach_actions(_aapl(), _aapl_actions())
    broker = PaperBroker(bars, cash=100_000, slippage=0, fees=0)
    for _ in range(6):
        broker.step()
    broker.submit_order("AAPL", "sell", 200)  # at bar 5's close; fills at bar 6's open
    _run_to_end(broker)
    assert broker.get_positions() == {"AAPL": -200.0}
    assert broker.get_cash() == 100_000 + 200 * 92.0 - 200 * 0.47


def test_entitlement_is_fixed_at_the_ex_date_and_paid_later() -> None:
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL"], "ex_date": ["2014-06-04"], "dividend": [3.29],
        "pay_date": ["2014-06-10"]}))
    bars = attach_actions(_aapl(), acts)
    broker = PaperBroker(bars, cash=100_000, slippage=0, fees=0)
    broker.submit_order("AAPL", "buy", 10)
    for _ in range(3):
        broker.step()  # through bar 2 (ex-date 2014-06-04): 10 shares held into it
    broker.submit_order("AAPL", "sell", 10)  # sold before the pay date
    cash_sold = None
    for _ in range(3):
        broker.step()
        cash_sold = broker.get_cash() if cash_sold is None else cash_sold
    assert broker.get_positions() == {}
    assert broker.get_cash() == cash_sold  # 06-06 .. 06-09: nothing paid yet
    broker.step()  # bar 6 opens 2014-06-10: paid
    assert broker.get_cash() == cash_sold + 10 * 3.29


def test_actions_are_trade_log_events_and_replay_rebuilds_the_state(tmp_path: Path) -> None:
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL"] * 3, "ex_date": ["2014-06-04", "2014-06-09", "2014-06-11"],
        "kind": ["dividend", "split", "dividend"], "value": [3.29, 7.0, 0.47],
        "pay_date": ["2014-06-12", None, None]}))
    bars = attach_actions(_aapl(), acts)
    log = tmp_path / "log.jsonl"
    broker = PaperBroker(bars, cash=50_000, trade_log=log)
    broker.submit_order("AAPL", "buy", 40)
    broker.submit_order("AAPL", "sell", 10, "limit", limit_price=900.0, tif="gtc")
    for _ in range(3):
        broker.step()
    broker.submit_order("AAPL", "sell", 75)  # short 35 into the split
    _run_to_end(broker)
    broker.close()
    events = [r["event"] for r in read_trade_log(log)]
    assert events.count("split") == 1
    assert [r.get("stage") for r in read_trade_log(log) if r["event"] == "dividend"] == [
        "entitled", "paid", "paid"]
    state = replay_trade_log(log)
    assert state.cash == broker.get_cash()
    assert state.positions == broker.get_positions()
    (open_order,) = broker.get_orders(open_only=True)
    replayed = state.open_orders[open_order["order_id"]]
    assert (replayed["qty"], replayed["limit_price"]) == (
        open_order["qty"], open_order["limit_price"])
    assert state.dividends == pytest.approx(40 * 3.29 + (-35 * 7) * 0.47)
    # Write-ahead: every split/dividend record precedes the cash it moved.
    assert state.dividends_receivable == {}


def test_prices_adjusted_does_not_split_positions_again() -> None:
    """The issue's case: split factors applied to already-adjusted prices inflated profit
    by the ratio. Refused without prices=; with prices='adjusted' the P&L is real."""
    raw = _aapl()
    k = np.where(np.arange(10) < 5, 1 / 7, 1.0).reshape(-1, 1)
    adjusted = Bars.from_arrays(DAYS, ["AAPL"], open=raw.open * k, high=raw.high * k,
                                low=raw.low * k, close=raw.close * k, volume=raw.volume)
    with pytest.raises(DataError, match="already split-adjusted"):
        attach_actions(adjusted, _aapl_actions())
    told = attach_actions(adjusted, _aapl_actions(), prices="adjusted")
    on_raw = attach_actions(raw, _aapl_actions())

    def buy(shares: float) -> simbroker.BacktestResult:
        def on_bar(broker: simbroker.Broker, history: simbroker.History) -> None:
            if history.t == 0:
                broker.submit_order("AAPL", "buy", shares)
        return simbroker.backtest(on_bar, told if shares == 700 else on_raw, slippage=0,
                                  fees=0)

    adj_run, raw_run = buy(700), buy(100)  # 700 adjusted shares = 100 raw shares
    assert adj_run.final_positions == {"AAPL": 700.0}  # not 4,900
    assert raw_run.final_positions == {"AAPL": 700.0}
    assert adj_run.equity.iloc[-1] == pytest.approx(raw_run.equity.iloc[-1], rel=1e-12)
    profit = raw_run.equity.iloc[-1] - 100_000
    assert profit == pytest.approx(700 * 92.5 - 100 * 631.0 + 700 * 0.47)  # bought at bar 1


# ------------------------------------------------------------ a year like AAPL 2014
def _aapl_2014() -> tuple[Bars, CorporateActions]:
    days = pd.bdate_range("2014-01-02", "2014-12-31", tz="UTC")
    rng = np.random.default_rng(2014)
    split_at = int(np.searchsorted(days, pd.Timestamp("2014-06-09", tz="UTC")))
    moves = np.exp(np.cumsum(rng.normal(0.0005, 0.012, len(days))))
    close = 550.0 * moves
    close[split_at:] /= 7.0
    open_ = np.concatenate([[close[0]], close[:-1] * np.exp(rng.normal(0, 0.004,
                                                                       len(days) - 1))])
    open_[split_at] = close[split_at - 1] / 7.0 * 1.002
    c, o = close.reshape(-1, 1), open_.reshape(-1, 1)
    bars = Bars.from_arrays(days, ["AAPL"], open=o, high=np.maximum(o, c) * 1.004,
                            low=np.minimum(o, c) * 0.996, close=c,
                            volume=np.full_like(c, 5e7))
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": "AAPL",
        "ex_date": ["2014-02-06", "2014-05-08", "2014-06-09", "2014-08-07", "2014-11-06"],
        "dividend": [3.05, 3.29, 0.0, 0.47, 0.47],
        "split": [0.0, 0.0, 7.0, 0.0, 0.0],
        "pay_date": ["2014-02-13", "2014-05-15", None, "2014-08-14", "2014-11-13"]}))
    return bars, acts


def test_a_year_of_aapl_buy_and_hold_collects_every_dividend() -> None:
    bars, acts = _aapl_2014()
    bars = attach_actions(bars, acts)
    targets = pd.DataFrame(np.nan, index=bars.index, columns=["AAPL"])
    targets.iloc[0] = 100.0
    event = simbroker.backtest(TargetPositions(targets), bars)
    fast = backtest_vectorized(bars, targets=targets)
    assert event.dividends["qty"].tolist() == [100.0, 100.0, 700.0, 700.0]
    assert event.stats["dividends"] == pytest.approx(100 * (3.05 + 3.29) + 700 * 0.94)
    assert event.final_positions == {"AAPL": 700.0}
    for name in ("fills", "orders", "equity", "cash", "positions", "dividends", "stats"):
        assert getattr(event, name).equals(getattr(fast, name)), name
    # Equity includes the cash received: final equity = cash + shares x last close.
    assert event.equity.iloc[-1] == event.cash.iloc[-1] + 700 * bars.close[-1, 0]


def test_targets_are_in_the_shares_of_the_time_they_are_decided() -> None:
    bars = attach_actions(_aapl(), _aapl_actions())
    targets = pd.DataFrame(np.nan, index=bars.index, columns=["AAPL"])
    targets.iloc[4] = 100.0  # decided before the split: becomes 700 new shares
    targets.iloc[6] = 100.0  # decided after it: sells 600
    fast = backtest_vectorized(bars, targets=targets)
    assert fast.positions["AAPL"].tolist() == [0, 0, 0, 0, 0, 700, 700, 100, 100, 100]
    assert fast.orders["qty"].tolist() == [700.0, 600.0]
    event = simbroker.backtest(TargetPositions(targets), bars)
    assert event.orders.equals(fast.orders)


# -------------------------------------------------------------------- properties
RATIOS = st.sampled_from([2.0, 3.0, 7.0, 1.5, 4.0, 10.0, 0.5, 0.1, 1 / 3])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ratio=RATIOS, qty=st.floats(-1e5, 1e5).filter(lambda q: abs(q) > 1e-3),
       price=st.floats(1.0, 5000.0), cash=st.floats(-1e6, 1e6))
def test_split_leaves_equity_unchanged(ratio: float, qty: float, price: float,
                                       cash: float) -> None:
    days = pd.date_range("2020-01-06", periods=2, freq="D", tz="UTC")
    o = np.array([[price], [price / ratio]])
    bars = attach_actions(
        Bars.from_arrays(days, ["X"], open=o, high=o, low=o, close=o, volume=o * 0 + 1),
        CorporateActions.from_frame(pd.DataFrame({"symbol": ["X"], "ex_date": ["2020-01-07"],
                                                  "split": [ratio]})), prices="raw")
    broker = PaperBroker(bars, cash=cash, positions={"X": qty})
    broker.step()
    before = broker.get_cash() + qty * price
    broker.step()
    (after_qty,) = broker.get_positions().values()
    assert after_qty == qty * ratio
    assert broker.get_cash() == cash
    assert broker.get_cash() + after_qty * (price / ratio) == pytest.approx(before, rel=1e-12,
                                                                            abs=1e-6)


def _random_case(data: st.DataObject, n_bars: int = 14) -> tuple[Bars, pd.DataFrame]:
    n_sym = data.draw(st.integers(1, 2))
    bars = simbroker.synthetic_bars(n_symbols=n_sym, n_bars=n_bars,
                                    seed=data.draw(st.integers(0, 10_000)))
    dates = pd.DatetimeIndex(bars.index).tz_localize(None).normalize()
    rows = []
    for s in bars.symbols:
        for _ in range(data.draw(st.integers(0, 3))):
            i = data.draw(st.integers(1, n_bars - 1))
            kind = data.draw(st.sampled_from(["split", "dividend"]))
            value = data.draw(RATIOS) if kind == "split" else data.draw(st.floats(0.01, 2.0))
            lag = data.draw(st.integers(0, 4))
            rows.append({"symbol": s, "ex_date": dates[i], "kind": kind, "value": value,
                         "pay_date": dates[min(i + lag, n_bars - 1)] if lag else None})
    frame = pd.DataFrame(rows, columns=["symbol", "ex_date", "kind", "value", "pay_date"])
    frame = frame.drop_duplicates(["symbol", "ex_date", "kind"])
    acts = CorporateActions.from_frame(frame) if len(frame) else CorporateActions.empty()
    # Scale the prices after each split as a raw series would drop.
    price_k = np.ones((n_bars, n_sym))
    for r in frame.itertuples():
        if r.kind == "split":
            i = int(np.searchsorted(dates, r.ex_date))
            price_k[i:, bars.symbol_index(r.symbol)] /= r.value
    raw = Bars.from_arrays(bars.index, bars.symbols, open=bars.open * price_k,
                           high=bars.high * price_k, low=bars.low * price_k,
                           close=bars.close * price_k, volume=bars.volume)
    attached = attach_actions(raw, acts, prices="raw")
    tgt = data.draw(st.lists(st.one_of(st.none(), st.floats(-300, 300).map(round)),
                             min_size=n_bars * n_sym, max_size=n_bars * n_sym))
    targets = pd.DataFrame(np.array([np.nan if v is None else v for v in tgt],
                                    np.float64).reshape(n_bars, n_sym),
                           index=bars.index, columns=list(bars.symbols))
    return attached, targets


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_event_driven_equals_vectorized_with_actions(data: st.DataObject) -> None:
    bars, targets = _random_case(data)
    event = simbroker.backtest(TargetPositions(targets), bars)
    fast = backtest_vectorized(bars, targets=targets)
    for name in ("fills", "orders", "equity", "cash", "positions", "dividends", "stats"):
        assert getattr(event, name).equals(getattr(fast, name)), name
    weights = targets / 1000.0
    event = simbroker.backtest(TargetPositions(weights=weights), bars)
    fast = backtest_vectorized(bars, weights=weights)
    for name in ("fills", "equity", "cash", "positions", "dividends"):
        assert getattr(event, name).equals(getattr(fast, name)), name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_dividends_conserve_cash_and_replay_equals_the_broker(data: st.DataObject,
                                                             tmp_path_factory: Any) -> None:
    bars, targets = _random_case(data)
    log = Path(tmp_path_factory.mktemp("log")) / "log.jsonl"
    result = simbroker.backtest(TargetPositions(targets), bars, trade_log=log)
    fills = result.fills
    signed = np.where(fills["side"] == "buy", fills["notional"], -fills["notional"])
    paid = result.dividends[result.dividends["paid"].notna()]["amount"]
    expected = math.fsum([100_000.0, *(-signed), *(-fills["fee"]), *paid])
    assert result.final_cash == pytest.approx(expected, rel=1e-12, abs=1e-7)
    # Exactly: the same additions in the broker's order, read from its trade log.
    cash = 100_000.0
    for rec in read_trade_log(log):
        if rec["event"] == "filled":
            cash = simbroker.tradelog.cash_after_fill(cash, rec["side"], rec["notional"],
                                                      rec["fee"])
        elif rec["event"] == "dividend" and rec["stage"] == "paid":
            cash = cash + rec["amount"]
    assert cash == result.final_cash
    state = replay_trade_log(log)
    assert state.cash == result.final_cash
    assert state.positions == result.final_positions


# ------------------------------------------------------------- adjusted prices
from simbroker.actions import adjusted_bars, adjustment_factors  # noqa: E402


def test_forward_adjusted_prices_are_continuous_and_causal() -> None:
    bars, acts = _aapl_2014()
    split_at = int(np.searchsorted(bars.timestamps, np.datetime64("2014-06-09")))
    only_splits = adjusted_bars(attach_actions(bars, acts, adjust="splits"))
    assert only_splits.actions is None  # never traded on
    jump = only_splits.open[split_at, 0] / only_splits.close[split_at - 1, 0]
    assert jump == pytest.approx(1.002)
    np.testing.assert_array_equal(only_splits.close[:split_at], bars.close[:split_at])
    total = adjusted_bars(attach_actions(bars, acts, adjust="all"))
    assert bool(np.all(total.close >= only_splits.close))  # dividends reinvested
    # No look-ahead: dropping the actions after bar t changes no row up to t.
    t = 150
    early = acts.frame()
    early = early[early["ex_date"] <= pd.Timestamp(bars.timestamps[t])]
    cut = adjusted_bars(attach_actions(bars, CorporateActions.from_frame(early), adjust="all"))
    np.testing.assert_array_equal(cut.close[: t + 1], total.close[: t + 1])


def test_history_adjusted_is_the_point_in_time_view() -> None:
    bars = attach_actions(_aapl(), _aapl_actions(), adjust="splits")
    history = simbroker.History(bars)
    history.t = 6
    adj = history.adjusted("close")
    assert adj[-1, 0] == bars.close[6, 0]  # the raw price at t
    assert adj[4, 0] == pytest.approx(645.5 / 7)  # before the split, in new shares
    history.t = 3
    np.testing.assert_array_equal(history.adjusted("close"), bars.close[:4])  # no split yet
    assert history.adjusted("volume")[0, 0] == bars.volume[0, 0]
    price, split = adjustment_factors(bars)
    assert price[-1, 0] == 7.0
    assert split[-1, 0] == 7.0


def test_indicators_see_adjusted_bars_and_fills_use_raw_prices() -> None:
    bars = attach_actions(_aapl(), _aapl_actions(), adjust="splits")
    seen: dict[str, np.ndarray] = {}

    class Strategy:
        def indicators(self, b: Bars) -> dict[str, np.ndarray]:
            seen["close"] = b.close
            return {"close_adj": b.close}

        def on_bar(self, broker: simbroker.Broker, history: simbroker.History) -> None:
            if history.t == 5:
                broker.submit_order("AAPL", "buy", 10)

    result = simbroker.backtest(Strategy(), bars, slippage=0)
    assert seen["close"][5, 0] == pytest.approx(92.2 * 7)  # continuous through the split
    assert result.fills["price"].tolist() == [bars.open[6, 0]]  # raw
    # TargetPositions keeps raw prices (its shares and equity are in them).
    targets = pd.DataFrame(np.nan, index=bars.index, columns=["AAPL"])
    targets.iloc[0] = 0.5
    event = simbroker.backtest(TargetPositions(weights=targets), bars)
    assert event.equity.equals(backtest_vectorized(bars, weights=targets).equity)


def test_a_saved_result_keeps_its_dividends_and_actions(tmp_path: Path) -> None:
    bars, acts = _aapl_2014()
    bars = attach_actions(bars, acts, adjust="splits")
    targets = pd.DataFrame(np.nan, index=bars.index, columns=["AAPL"])
    targets.iloc[0] = 100.0
    result = backtest_vectorized(bars, targets=targets)
    back = simbroker.load_result(result.save(tmp_path / "run"))
    assert back.dividends.equals(result.dividends)
    assert back.stats["dividends"] == result.stats["dividends"]
    assert back.bars.actions is not None
    assert back.bars.actions.frame().equals(acts.frame())
    assert back.bars.actions.adjust == "splits"


def test_sweep_vectorized_counts_dividends() -> None:
    bars, acts = _aapl_2014()
    bars = attach_actions(bars, acts)

    def hold(b: Bars, size: float) -> np.ndarray:
        out = np.full((len(b), 1), np.nan)
        out[0] = size
        return out

    table = simbroker.sweep_vectorized(hold, {"size": [100.0, 200.0]}, bars)
    by_size = table.set_index("size")
    alone = backtest_vectorized(bars, targets=hold(bars, 200.0))
    assert by_size.loc[200.0, "dividends"] == alone.stats["dividends"]
    assert by_size.loc[200.0, "final_equity"] == alone.stats["final_equity"]


def test_concat_and_attach_from_a_path(tmp_path: Path) -> None:
    a = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL"], "ex_date": ["2014-06-09"], "split": [7.0]}))
    b = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL"], "ex_date": ["2014-06-11"], "dividend": [0.47]}))
    both = CorporateActions.concat([b, a])
    assert both.frame().equals(_aapl_actions().frame())
    with pytest.raises(DataError, match="second split"):
        CorporateActions.concat([a, a])
    path = tmp_path / "actions.csv"
    both.frame().to_csv(path, index=False)
    attached = attach_actions(_aapl(), str(path))
    assert attached.actions is not None
    assert len(attached.actions) == 2
