"""backtest_vectorized(account=) equals the event-driven twin on accounts that refuse.

Small cash and big targets make the cash and margin accounts refuse often; the runs must
agree on every fill, order, cash, position, equity figure and refusal, bit for bit, with
fee schedules, volume caps, weights, borrow and interest, and intraday bars (the pattern
day trader's rules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import simbroker
import simbroker._vector_account as vector_account
from simbroker import Bars
from simbroker.accounts import Account, CashAccount, MarginAccount
from simbroker.actions import CorporateActions, attach_actions
from simbroker.bars import FIELDS
from simbroker.errors import StrategyError
from simbroker.financing import BorrowModel, InterestModel
from simbroker.results import BacktestResult
from simbroker.testing.strategies import bar_panels, fee_models, slippage_models, target_frames
from simbroker.vectorized import TargetPositions, backtest_vectorized

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Fresh account objects (one per broker) for a panel's symbols: the named ones and the
# rules' variants.
Maker = Callable[[tuple[str, ...]], str | Account | None]
ACCOUNTS: list[Maker] = [
    lambda syms: "margin",
    lambda syms: "cash",
    lambda syms: None,
    lambda syms: MarginAccount(pattern_day_trader=True, pdt_equity=1_000.0),
    lambda syms: MarginAccount(initial=0.8, maintenance=0.3, market_buffer=0.02,
                               initial_by_symbol={syms[0]: 1.0}),
    lambda syms: MarginAccount(pdt_check=False, day_trade_rate=0.3),
    lambda syms: CashAccount(good_faith="record"),
    lambda syms: CashAccount(settlement_days=2, market_buffer=0.01),
    lambda syms: CashAccount(settlement_days=0),
]

BIG = st.one_of(st.just(np.nan), st.integers(-400, 400).map(float),
                st.floats(-300, 300, allow_nan=False, allow_subnormal=False),
                st.sampled_from([0.1, 0.3, 1e-12, 3.0000000001]))


def intraday(bars: Bars) -> Bars:
    """The same panel as one-minute bars (one trading day: day trades, PDT)."""
    minute = np.timedelta64(60_000_000_000, "ns")
    return Bars(timestamps=np.datetime64("2021-03-01T14:30", "ns") + minute * np.arange(len(bars)),
                symbols=bars.symbols, interval=minute,
                **{f: bars.field(f) for f in FIELDS})


def run_both(bars: Bars, make_account: Maker | str, *,
             targets: pd.DataFrame | None = None, weights: pd.DataFrame | None = None,
             integer: bool = False, **kw: Any
             ) -> tuple[BacktestResult, BacktestResult, TargetPositions, pd.DataFrame | None]:
    """The event-driven twin's result, the vectorized one, the twin, and the vectorized
    run's refusal table."""
    def account() -> str | Account | None:
        return make_account if isinstance(make_account, str) else make_account(bars.symbols)

    twin = TargetPositions(targets, weights=weights, integer=integer)
    event = simbroker.backtest(twin, bars, account=account(), **kw)
    seen: list[pd.DataFrame] = []
    real = vector_account.refused_frame

    def spy(*args: Any) -> pd.DataFrame:
        out = real(*args)
        seen.append(out)
        return out

    with mock.patch.object(vector_account, "refused_frame", spy):
        fast = backtest_vectorized(bars, targets=targets, weights=weights, integer=integer,
                                   account=account(), **kw)
    return event, fast, twin, seen[-1] if seen else None


def assert_identical(event: BacktestResult, fast: BacktestResult, twin: TargetPositions,
                     refused: pd.DataFrame | None) -> None:
    pd.testing.assert_frame_equal(fast.fills, event.fills, check_exact=True)
    pd.testing.assert_frame_equal(fast.orders, event.orders, check_exact=True)
    for name in ("cash", "equity", "borrow_fees", "interest"):
        pd.testing.assert_series_equal(getattr(fast, name), getattr(event, name),
                                       check_exact=True)
    pd.testing.assert_frame_equal(fast.positions, event.positions, check_exact=True)
    pd.testing.assert_frame_equal(fast.trades, event.trades, check_exact=True)
    assert fast.config == event.config
    stats = fast.stats
    assert list(stats.keys()) == list(event.stats.keys())
    for key, value in event.stats.items():
        got = stats[key]
        assert got == value or (got is pd.NaT and value is pd.NaT) or (
            isinstance(value, float) and np.isnan(value) and np.isnan(got)), key
    if "n_refused" not in fast.stats:  # no account: nothing refused, nothing counted
        assert twin.n_refused == 0
        assert refused is None
    elif refused is None:  # screened: the unconstrained run stood, nothing refused
        assert fast.stats["n_refused"] == twin.n_refused == 0
    else:
        assert fast.stats["n_refused"] == twin.n_refused == len(refused)
        pd.testing.assert_frame_equal(refused, twin.refused, check_exact=True)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Bars, pd.DataFrame, Maker, dict[str, Any]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 4), n_bars=st.integers(1, 25),
                           allow_zero_volume=True, allow_missing=draw(st.booleans())))
    if draw(st.booleans()):
        bars = intraday(bars)
    targets = draw(target_frames(bars, elements=BIG))
    kw: dict[str, Any] = {
        "slippage": draw(slippage_models()),
        "fees": draw(st.one_of(fee_models(), st.sampled_from(["ibkr_fixed", "alpaca"]))),
        "cash": draw(st.sampled_from([2_000.0, 12_345.678, 100_000.0])),
        "clip_to_bar": draw(st.booleans()),
        "max_volume_share": draw(st.sampled_from([None, None, 0.5, 1e-3])),
    }
    if draw(st.booleans()):
        kw["borrow"] = BorrowModel(rate=draw(st.sampled_from([0.03, 0.5])))
    if draw(st.booleans()):
        kw["interest"] = InterestModel(debit=0.08, credit=draw(st.sampled_from([0.0, 0.02])))
    return bars, targets, draw(st.sampled_from(ACCOUNTS)), kw


@settings(FAST, max_examples=80)
@given(cases())
def test_event_driven_equals_vectorized_on_accounts_that_refuse(case: Any) -> None:
    bars, targets, make_account, kw = case
    event, fast, twin, refused = run_both(bars, make_account, targets=targets, **kw)
    assert_identical(event, fast, twin, refused)


@settings(FAST, max_examples=40)
@given(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 20), allow_missing=True),
       st.sampled_from(ACCOUNTS), st.data())
def test_event_driven_equals_vectorized_for_weights_on_accounts(
        bars: Bars, make_account: Maker, data: st.DataObject) -> None:
    w = data.draw(hnp.arrays(np.float64, (len(bars), bars.n_symbols), elements=st.one_of(
        st.just(np.nan), st.floats(-1.5, 1.5, allow_nan=False, allow_subnormal=False))))
    weights = pd.DataFrame(w, index=bars.index, columns=list(bars.symbols))
    kw = {"fees": data.draw(st.sampled_from([1.0, "ibkr_fixed"])),
          "max_volume_share": data.draw(st.sampled_from([None, 0.1]))}
    event, fast, twin, refused = run_both(bars, make_account, weights=weights,
                                          integer=data.draw(st.booleans()), **kw)
    assert_identical(event, fast, twin, refused)


# ------------------------------------------------------------ hand-computed cases
def flat_bars(n_bars: int, prices: list[float], *, volume: float = 1e6) -> Bars:
    """Every bar opens and closes at its symbol's price (no slippage effects)."""
    ts = pd.date_range("2024-01-02", periods=n_bars, freq="D", tz="UTC")
    px = np.tile(np.asarray(prices, np.float64), (n_bars, 1))
    return Bars.from_arrays(ts, [f"S{k}" for k in range(len(prices))], open=px, high=px,
                            low=px, close=px, volume=np.full_like(px, volume),
                            interval="1D")


def frame(bars: Bars, rows: dict[int, list[float]]) -> pd.DataFrame:
    out = pd.DataFrame(np.nan, index=bars.index, columns=list(bars.symbols))
    for t, values in rows.items():
        out.iloc[t] = values
    return out


def test_margin_reservations_go_in_column_order_and_the_target_is_retried() -> None:
    # 10,000 cash, Reg T 50%: 20,000 of buying power. At bar 0's close S0's 150 shares
    # at 100 (15,000 notional, 7,500 margin) pass; S1's 100 at 100 would need 5,000 more
    # of 2,500 left: refused. At bar 1's close S1 is retried with 50 shares: 2,500 fits.
    bars = flat_bars(4, [100.0, 100.0])
    targets = frame(bars, {0: [150.0, 100.0], 1: [150.0, 50.0]})
    kw: dict[str, Any] = {"cash": 10_000.0, "slippage": None, "fees": None}
    event, fast, twin, refused = run_both(bars, "margin", targets=targets, **kw)
    assert_identical(event, fast, twin, refused)
    assert fast.fills[["symbol", "qty"]].values.tolist() == [["S0", 150.0], ["S1", 50.0]]
    assert refused is not None
    assert refused[["symbol", "qty", "rule"]].values.tolist() == [["S1", 100.0,
                                                                   "buying_power"]]
    assert refused["required"].tolist() == [10_000.0]
    assert refused["available"].tolist() == [5_000.0]  # 2,500 excess / 50%
    assert fast.stats["n_refused"] == 1
    assert fast.orders["order_id"].tolist() == ["O1", "O2"]  # no id for the refused one


def test_a_closing_sell_needs_no_margin_and_a_flip_needs_it_for_the_new_short() -> None:
    # Long 150 at 100 with 10,000 cash: equity 10,000, initial margin 7,500, excess
    # 2,500 -> 5,000 of new exposure. Selling 150 + 60 opens a short of 60 (6,000):
    # refused; selling 150 + 40 (4,000) passes.
    bars = flat_bars(4, [100.0])
    kw: dict[str, Any] = {"cash": 10_000.0, "slippage": None, "fees": None}
    refused_flip = frame(bars, {0: [150.0], 1: [-60.0]})
    event, fast, twin, refused = run_both(bars, "margin", targets=refused_flip, **kw)
    assert_identical(event, fast, twin, refused)
    assert fast.final_positions == {"S0": 150.0}
    assert refused is not None
    assert refused["required"].tolist() == [6_000.0]
    ok_flip = frame(bars, {0: [150.0], 1: [-40.0]})
    event, fast, twin, refused = run_both(bars, "margin", targets=ok_flip, **kw)
    assert_identical(event, fast, twin, refused)
    assert fast.final_positions == {"S0": -40.0}


def test_cash_account_refuses_free_riding_shorts_and_good_faith_sales() -> None:
    # 1,000 cash at 10 a share, proceeds settling T+3. Close 0: buy 100 S0 (all the
    # cash). Close 1: sell them; buying 1 S1 is refused (the cash is 0 until the sale
    # fills: no free-riding). Close 2: buy 100 S1 with the unsettled proceeds (allowed;
    # the shares are unpaid until day 5). Close 3: a short of S0 is refused, and selling
    # the S1 shares (filling on day 4) is a good-faith violation, refused.
    bars = flat_bars(8, [10.0, 10.0])
    targets = frame(bars, {0: [100.0, np.nan], 1: [0.0, 1.0], 2: [np.nan, 100.0],
                           3: [-5.0, 0.0]})
    kw: dict[str, Any] = {"cash": 1_000.0, "slippage": None, "fees": None}

    def t3(syms: tuple[str, ...]) -> CashAccount:
        return CashAccount(settlement_days=3)

    event, fast, twin, refused = run_both(bars, t3, targets=targets, **kw)
    assert_identical(event, fast, twin, refused)
    assert refused is not None
    assert refused[["symbol", "side", "rule"]].values.tolist() == [
        ["S1", "buy", "buying_power"], ["S0", "sell", "cash_account_short"],
        ["S1", "sell", "good_faith"]]
    assert fast.final_positions == {"S1": 100.0}
    # Retried at close 4, the sale fills on day 5, when the money has settled.
    later = frame(bars, {0: [100.0, np.nan], 1: [0.0, np.nan], 2: [np.nan, 100.0],
                         3: [np.nan, 0.0], 4: [np.nan, 0.0]})
    event, fast, twin, refused = run_both(bars, t3, targets=later, **kw)
    assert_identical(event, fast, twin, refused)
    assert fast.final_positions == {}
    assert refused is not None
    assert refused["rule"].tolist() == ["good_faith"]


def test_pattern_day_trader_rule_refuses_the_fourth_day_trade() -> None:
    # One-minute bars in one trading day, 5,000 equity (< 25,000): three round trips are
    # three day trades; the sell closing the fourth is refused, and retried at every
    # close after it.
    bars = intraday(flat_bars(12, [10.0]))
    rows = {t: [100.0 if t % 2 == 0 else 0.0] for t in range(10)}
    targets = frame(bars, rows)
    kw: dict[str, Any] = {"cash": 5_000.0, "slippage": None, "fees": None}
    event, fast, twin, refused = run_both(bars, "margin", targets=targets, **kw)
    assert_identical(event, fast, twin, refused)
    assert refused is not None
    assert set(refused["rule"]) == {"pattern_day_trader"}
    assert fast.fills["side"].tolist() == ["buy", "sell"] * 3 + ["buy"]
    assert fast.final_positions == {"S0": 100.0}


def test_twin_can_raise_on_a_refusal() -> None:
    bars = flat_bars(3, [100.0])
    targets = frame(bars, {0: [1_000.0]})
    with pytest.raises(StrategyError) as info:
        simbroker.backtest(TargetPositions(targets, on_refused="raise"), bars,
                           cash=1_000.0, account="margin")
    assert "insufficient buying power" in str(info.value.__cause__)
    with pytest.raises(ValueError, match="on_refused"):
        TargetPositions(targets, on_refused="ignore")
    assert TargetPositions(targets).refused.empty


def test_what_the_vectorized_accounts_do_not_model_is_refused_with_the_way_out() -> None:
    bars = flat_bars(3, [100.0])
    targets = frame(bars, {0: [1.0]})

    class Custom(Account):
        pass

    cases: list[tuple[dict[str, Any], str]] = [
        ({"account": Custom()}, "Custom has its own rules"),
        ({"account": MarginAccount(liquidate=True)}, "liquidate=True"),
        ({"account": "margin", "stop_loss": 0.05}, "TargetExits"),
        ({"account": MarginAccount(initial_by_symbol={"XYZ": 1.0})}, "XYZ"),
        ({"max_volume_share": 0.1, "stop_loss": 0.05}, "max_volume_share"),
        ({"account": "brokerage"}, "account must be one of"),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            backtest_vectorized(bars, targets=targets, **kw)


def test_target_exits_skip_refused_orders_event_driven() -> None:
    # The vectorized runner refuses account= with exits; the twin runs it and records.
    from simbroker.vectorized_exits import TargetExits

    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=60, seed=4)
    rng = np.random.default_rng(7)
    cells = np.where(rng.random((60, 3)) < 0.2, rng.integers(-200, 200, (60, 3)), np.nan)
    targets = pd.DataFrame(cells.astype(float), index=bars.index, columns=list(bars.symbols))
    twin = TargetExits(targets, stop_loss=0.02)
    result = simbroker.backtest(twin, bars, cash=5_000.0, account="cash")
    assert twin.n_refused == len(twin.refused) > 0
    assert set(twin.refused["rule"]) <= {"buying_power", "cash_account_short", "good_faith"}
    assert (result.positions.to_numpy() >= 0).all()  # a cash account never went short
    with pytest.raises(StrategyError):
        simbroker.backtest(TargetExits(targets, stop_loss=0.02, on_refused="raise"), bars,
                           cash=5_000.0, account="cash")


# ---------------------------------------------------- corporate actions in the loop
def split_and_dividend_case(data: st.DataObject, n_bars: int = 14
                            ) -> tuple[Bars, pd.DataFrame]:
    """Raw bars with random splits and dividends attached, and round share targets."""
    n_sym = data.draw(st.integers(1, 2))
    bars = simbroker.synthetic_bars(n_symbols=n_sym, n_bars=n_bars,
                                    seed=data.draw(st.integers(0, 10_000)))
    dates = pd.DatetimeIndex(bars.index).tz_localize(None).normalize()
    rows = []
    for s in bars.symbols:
        for _ in range(data.draw(st.integers(0, 3))):
            i = data.draw(st.integers(1, n_bars - 1))
            kind = data.draw(st.sampled_from(["split", "dividend"]))
            value = (data.draw(st.sampled_from([2.0, 3.0, 0.5, 1.5])) if kind == "split"
                     else data.draw(st.floats(0.01, 2.0)))
            lag = data.draw(st.integers(0, 4))
            rows.append({"symbol": s, "ex_date": dates[i], "kind": kind, "value": value,
                         "pay_date": dates[min(i + lag, n_bars - 1)] if lag else None})
    table = pd.DataFrame(rows, columns=["symbol", "ex_date", "kind", "value", "pay_date"])
    table = table.drop_duplicates(["symbol", "ex_date", "kind"])
    acts = CorporateActions.from_frame(table) if len(table) else CorporateActions.empty()
    scale = np.ones((n_bars, n_sym))  # raw prices drop at each split
    for r in table.itertuples():
        if r.kind == "split":
            scale[int(np.searchsorted(dates, r.ex_date)):, bars.symbol_index(r.symbol)] /= \
                r.value
    raw = Bars.from_arrays(bars.index, bars.symbols, open=bars.open * scale,
                           high=bars.high * scale, low=bars.low * scale,
                           close=bars.close * scale, volume=bars.volume)
    cells = data.draw(hnp.arrays(np.float64, (n_bars, n_sym), elements=st.one_of(
        st.just(np.nan), st.integers(-400, 400).map(float))))
    targets = pd.DataFrame(cells, index=bars.index, columns=list(bars.symbols))
    return attach_actions(raw, acts, prices="raw"), targets


@settings(FAST, max_examples=30)
@given(st.data())
def test_event_driven_equals_vectorized_with_actions_accounts_and_caps(
        data: st.DataObject) -> None:
    bars, targets = split_and_dividend_case(data)
    make_account = data.draw(st.sampled_from(ACCOUNTS))
    kw = {"cash": data.draw(st.sampled_from([3_000.0, 100_000.0])),
          "max_volume_share": data.draw(st.sampled_from([None, 1e-4, 0.01])),
          "fees": data.draw(st.sampled_from([1.0, "alpaca"]))}
    if data.draw(st.booleans()):
        kw["interest"] = InterestModel(debit=0.1, credit=0.01)
    event, fast, twin, refused = run_both(bars, make_account, targets=targets, **kw)
    assert_identical(event, fast, twin, refused)
    pd.testing.assert_frame_equal(fast.dividends, event.dividends, check_exact=True)


# ------------------------------------------------- the screen and the exact loop
@settings(FAST, max_examples=40)
@given(cases(), st.sampled_from([1e3, 1e5, 1e8]))
def test_the_screen_passes_only_runs_the_exact_loop_agrees_with(case: Any,
                                                               cash: float) -> None:
    # Where the screen lets the unconstrained run stand, the exact loop finds the same.
    bars, targets, make_account, kw = case
    kw = {**kw, "cash": cash, "max_volume_share": None}
    account = make_account(bars.symbols)
    screened = backtest_vectorized(bars, targets=targets, account=account, **kw)
    with mock.patch.object(vector_account, "first_doubtful_close", return_value=0):
        looped = backtest_vectorized(bars, targets=targets, account=make_account(bars.symbols),
                                     **kw)
    for name in ("fills", "orders", "positions"):
        pd.testing.assert_frame_equal(getattr(screened, name), getattr(looped, name),
                                      check_exact=True)
    for name in ("cash", "equity", "borrow_fees", "interest"):
        pd.testing.assert_series_equal(getattr(screened, name), getattr(looped, name),
                                       check_exact=True)
    assert screened.stats.get("n_refused") == looped.stats.get("n_refused")


def test_enough_cash_keeps_the_whole_panel_path() -> None:
    # The SMA-style run with plenty of cash is screened, never looped.
    bars = simbroker.synthetic_bars(n_symbols=20, n_bars=300, seed=9)
    close = bars.frame("close")
    targets = pd.DataFrame(np.where(close > close.rolling(20).mean(), 100.0, 0.0),
                           index=close.index, columns=close.columns)
    for account in ("margin", "cash"):
        with mock.patch.object(vector_account, "run_account",
                               side_effect=AssertionError("looped")):
            fast = backtest_vectorized(bars, targets=targets, cash=1e7, account=account)
        assert fast.stats["n_refused"] == 0
        event = simbroker.backtest(TargetPositions(targets), bars, cash=1e7, account=account)
        pd.testing.assert_frame_equal(fast.fills, event.fills, check_exact=True)
        pd.testing.assert_series_equal(fast.equity, event.equity, check_exact=True)
