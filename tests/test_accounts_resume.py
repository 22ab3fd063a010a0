"""Accounts across restarts: a real-time run killed at any bar and resumed from its trade
log refuses, settles and calls exactly as the uninterrupted run."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker import Bars, Broker, History
from simbroker.accounts import CashAccount, MarginAccount
from simbroker.errors import TradeLogError
from simbroker.feeds import ReplayFeed
from simbroker.financing import BorrowModel, InterestModel
from simbroker.runner import RealtimeRunner, paper_broker_from_log, read_resume_point
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log

Orders = Mapping[int, Sequence[tuple[Any, ...]]]


def hourly(days: int, per_day: int = 8, symbols: Sequence[str] = ("X", "Y"),
           closes: Sequence[float] | None = None) -> Bars:
    """``per_day`` hourly bars from 10:00 UTC on each of ``days`` consecutive days."""
    ts = np.array([np.datetime64("2024-01-01T10:00", "ns") + np.timedelta64(d, "D")
                   + np.timedelta64(h, "h") for d in range(days) for h in range(per_day)])
    n = len(ts)
    c = np.full((n, len(symbols)), 100.0) if closes is None else \
        np.array(closes, float).reshape(n, 1).repeat(len(symbols), axis=1)
    return Bars.from_arrays(ts, list(symbols), open=c, high=c, low=c, close=c,
                            volume=np.full(c.shape, 1e6))


class Script:
    """Sends the orders ``plan[t]`` (symbol, side, qty[, submit_order keywords]) at bar
    ``t``."""

    def __init__(self, plan: Orders):
        self.plan = plan

    def on_bar(self, broker: Broker, history: History) -> None:
        for order in self.plan.get(history.t, ()):
            sym, side, qty, *rest = order
            kw: dict[str, Any] = rest[0] if rest else {}
            with contextlib.suppress(Exception):  # a refusal is logged by the broker
                broker.submit_order(sym, side, qty, **kw)


class Crash(BaseException):
    """The process dying after bar ``at``'s orders went out."""


class CrashAt:
    def __init__(self, inner: Any, at: int | None):
        self.inner, self.at = inner, at

    def on_bar(self, broker: Broker, history: History) -> None:
        self.inner.on_bar(broker, history)
        if history.t == self.at:
            raise Crash


class DyingLog(TradeLog):
    """A trade log whose process dies after ``lives`` more records (``None``: never)."""

    def __init__(self, path: Path, lives: int | None):
        super().__init__(path)
        self.lives = lives

    def write(self, event: str, ts: datetime, **fields: Any) -> dict[str, Any]:
        if self.lives is not None:
            if self.lives <= 0:
                raise Crash
            self.lives -= 1
        return super().write(event, ts, **fields)


def run(bars: Bars, plan: Orders, path: Path, account: Any, crash: int | None = None,
        lives: int | None = None, **broker_kw: Any) -> bool:
    """One process: resume from ``path`` if it holds a run; False when it crashed (after
    bar ``crash``'s orders, or at its ``lives + 1``-th record)."""
    resume = read_resume_point(path)
    with DyingLog(path, lives) as log:
        kw = dict(broker_kw)
        if resume is None:
            kw["account"] = account() if callable(account) else account
        try:
            broker = paper_broker_from_log(bars, resume, trade_log=log, slippage=0, fees=0,
                                           **kw)
            RealtimeRunner(CrashAt(Script(plan), crash), broker, ReplayFeed(bars),
                           trade_log=log, resume=resume or False, handle_signals=False,
                           run_id="acct").run()
        except Crash:
            return False
    return True


def outcome(path: Path) -> tuple[Any, ...]:
    """Fills, refusals (with their rule), margin calls, cash, positions, and the account's
    state at the end of every bar (the ``stepped`` records') of a log."""
    records = read_trade_log(path)
    state = replay_trade_log(path)
    fills = [(f["client_order_id"], f["symbol"], f["side"], f["qty"], f["price"],
              f["timestamp"]) for f in state.fills]
    refused = sorted({(r["client_order_id"], r.get("rule")) for r in records
                      if r["event"] == "rejected"})
    calls = [r["ts"] for r in records if r["event"] == "margin_call"]  # none twice
    viol = [(r["ts"], r["symbol"]) for r in records if r["event"] == "good_faith_violation"]
    per_bar = {r["bar"]: r.get("account") for r in records if r["event"] == "stepped"}
    return fills, refused, calls, viol, state.cash, state.positions, per_bar


def every_crash(bars: Bars, plan: Orders, account: Any, tmp: Path, **kw: Any) -> tuple[Any, ...]:
    whole = tmp / "whole.jsonl"
    assert run(bars, plan, whole, account, **kw)
    want = outcome(whole)
    for at in range(len(bars)):
        path = tmp / f"crash{at}.jsonl"
        assert not run(bars, plan, path, account, crash=at, **kw)
        assert run(bars, plan, path, account, **kw)
        assert outcome(path) == want, f"crash at bar {at}"
    return want


# ------------------------------------------------------------------ hand cases
def test_a_t_plus_1_sale_resumed_before_settlement_refuses_the_same_good_faith_sell(
        tmp_path: Path) -> None:
    # Monday: buy 100 X, sell it (10,000 unsettled until Tuesday), buy 150 Y (5,000 of it
    # paid with the unsettled proceeds: 50 Y unpaid), then try to sell the 150 Y on Monday:
    # a good-faith violation, refused. On Tuesday the proceeds settled and it sells.
    bars = hourly(3, per_day=6)
    plan = {0: [("X", "buy", 100)], 1: [("X", "sell", 100)], 2: [("Y", "buy", 150)],
            3: [("Y", "sell", 150)], 6: [("Y", "sell", 150)]}
    fills, refused, *_ = every_crash(bars, plan, CashAccount, tmp_path, cash=20_000.0)
    assert refused == [("acct-20240101T130000Z-1", "good_faith")]
    assert [f[0] for f in fills if f[1] == "Y" and f[2] == "sell"] == [
        "acct-20240102T100000Z-1"]


def test_three_day_trades_a_restart_and_the_fourth_is_refused(tmp_path: Path) -> None:
    # Under 25,000: three round trips on Monday, the fourth (Tuesday) is refused.
    bars = hourly(3, per_day=8)
    plan: dict[int, list[tuple[Any, ...]]] = {}
    for t in (0, 2, 4, 8):  # buy at t (fills t + 1), sell at t + 1
        plan[t] = [("X", "buy", 10)]
        plan[t + 1] = [("X", "sell", 10)]
    fills, refused, *_ = every_crash(bars, plan, "margin", tmp_path, cash=20_000.0)
    assert refused == [("acct-20240102T110000Z-1", "pattern_day_trader")]
    assert sum(f[2] == "sell" for f in fills) == 3


def test_a_margin_call_liquidates_and_cancels_once_across_restarts(tmp_path: Path) -> None:
    # 700 X bought with 40,000: at 56 equity is 9,200 < 9,800 maintenance; the call sells
    # ceil(600 / 14) = 43 X at the next open and cancels the resting buy of Y (it would
    # add to the deficit); the resting sell of X (it closes) stays.
    closes = [100.0, 100.0, 80.0, 70.0, 56.0, 56.0, 56.0, 56.0]
    bars = hourly(1, per_day=8, closes=closes)
    gtc = {"order_type": "limit", "tif": "gtc"}
    plan: dict[int, list[tuple[Any, ...]]] = {0: [("X", "buy", 700)],
            1: [("Y", "buy", 10, {**gtc, "limit_price": 10.0}),
                ("X", "sell", 100, {**gtc, "limit_price": 500.0})]}
    fills, refused, calls, *_ = every_crash(
        bars, plan, lambda: MarginAccount(liquidate=True), tmp_path, cash=40_000.0)
    assert len(calls) == 1
    assert refused == []
    assert [(f[0], f[2], f[3]) for f in fills][-1] == ("liquidate-4-X", "sell", 43.0)
    state = replay_trade_log(tmp_path / "whole.jsonl")
    assert [o["symbol"] for o in state.open_orders.values()] == ["X"]  # the closing sell
    records = read_trade_log(tmp_path / "whole.jsonl")
    call = next(r for r in records if r["event"] == "margin_call")
    canceled = [r for r in records if r["event"] == "canceled"]
    assert call["canceled"] == [c["order_id"] for c in canceled]
    assert len(canceled) == 1
    assert records.index(call) < records.index(canceled[0])  # written first


def test_the_resumed_account_is_the_logged_one_and_another_is_refused(tmp_path: Path) -> None:
    bars = hourly(2)
    path = tmp_path / "log.jsonl"
    plan = {0: [("X", "buy", 10)]}
    made = MarginAccount(maintenance=0.3, liquidate=True, pdt_check=False)
    assert not run(bars, plan, path, made, crash=3)
    resume = read_resume_point(path)
    assert resume is not None
    assert resume.account == made.spec()
    with TradeLog(path) as log:
        broker = paper_broker_from_log(bars, resume, trade_log=log)
        acct = broker.account
        assert isinstance(acct, MarginAccount)
        assert acct is not made
        assert acct.spec() == made.spec()
        for other in ("cash", None, MarginAccount(), {"model": "margin", "maintenance": 0.3}):
            with pytest.raises(TradeLogError, match="would change its rules") as err:
                paper_broker_from_log(bars, resume, trade_log=log, account=other)
            assert str(path) in str(err.value)
    records = read_trade_log(path)
    assert [r["model"] for r in records if r["event"] == "account"] == ["margin", "margin"]
    assert all("account" in r for r in records if r["event"] == "stepped")


def test_a_damaged_account_state_names_the_log(tmp_path: Path) -> None:
    bars = hourly(2)
    path = tmp_path / "log.jsonl"
    assert not run(bars, {0: [("X", "buy", 10)], 1: [("X", "sell", 10)]}, path, "margin",
                   crash=3)
    resume = read_resume_point(path)
    assert resume is not None
    assert resume.account_state is not None
    bad = dict(resume.account_state, opened={"NOPE": ["2024-01-01", 0]})
    resume = dataclasses.replace(resume, account_state=bad)
    with TradeLog(path) as log, pytest.raises(TradeLogError, match="NOPE") as err:
        paper_broker_from_log(bars, resume, trade_log=log)
    assert str(path) in str(err.value)


def test_a_kill_at_any_record_even_during_the_resume_neither_loses_nor_doubles_state(
        tmp_path: Path) -> None:
    # The good-faith, PDT and margin-call runs above, cut after every record (mid-bar,
    # between a fill and the account's records, in the resume's own start-up), then
    # again a few records into the resume.
    good_faith = {0: [("X", "buy", 100)], 1: [("X", "sell", 100)], 2: [("Y", "buy", 150)],
                  3: [("Y", "sell", 150)], 6: [("Y", "sell", 150)]}
    cases: list[tuple[Bars, Orders, Any, float]] = [
        (hourly(2, per_day=6), good_faith, CashAccount, 20_000.0),
        (hourly(2, per_day=6), good_faith, lambda: CashAccount(good_faith="record"),
         20_000.0),
        (hourly(2, per_day=8), {t + k: [("X", side, 10)] for t in (0, 2, 4, 8)
                                for k, side in enumerate(("buy", "sell"))}, "margin",
         20_000.0),
        (hourly(1, per_day=8, closes=[100.0, 100.0, 80.0, 70.0, 56.0, 56.0, 56.0, 56.0]),
         {0: [("X", "buy", 700)],
          1: [("Y", "buy", 10, {"order_type": "limit", "limit_price": 10.0, "tif": "gtc"})]},
         lambda: MarginAccount(liquidate=True), 40_000.0),
    ]
    for n, (bars, plan, account, cash) in enumerate(cases):
        whole = tmp_path / f"whole{n}.jsonl"
        assert run(bars, plan, whole, account, cash=cash)
        want = outcome(whole)
        n_records = len(read_trade_log(whole))
        for lives in range(n_records):
            path = tmp_path / f"cut{n}-{lives}.jsonl"
            assert not run(bars, plan, path, account, lives=lives, cash=cash)
            if lives % 5 == 0:  # and once more during the resume
                run(bars, plan, path, account, lives=1 + lives % 7, cash=cash)
            assert run(bars, plan, path, account, cash=cash)
            assert outcome(path) == want, (n, lives)


# ------------------------------------------------------------------ the property
SIDES = st.sampled_from(["buy", "sell"])


@st.composite
def plans(draw: st.DrawFn, n_bars: int) -> dict[int, list[tuple[Any, ...]]]:
    """Round trips (buy at t, sell at t + 1: a day trade inside a day, a T+1 sale in a
    cash account; or short at t, cover at t + 1) mixed with single market and limit
    orders, and a large buy that a fall in price can turn into a margin call."""
    plan: dict[int, list[tuple[Any, ...]]] = {}
    if draw(st.booleans()):
        plan[0] = [("X", "buy", draw(st.sampled_from([200, 280])), {})]
    for _ in range(draw(st.integers(2, 8))):
        t = draw(st.integers(0, n_bars - 3))
        sym = draw(st.sampled_from(["X", "Y"]))
        qty = draw(st.sampled_from([10, 40, 120]))
        kind = draw(st.sampled_from(["long", "short", "long", "single"]))
        if kind != "single":
            first, second = ("buy", "sell") if kind == "long" else ("sell", "buy")
            plan.setdefault(t, []).append((sym, first, qty, {}))
            plan.setdefault(t + 1, []).append((sym, second, qty, {}))
            continue
        kw: dict[str, Any] = {}
        if draw(st.booleans()):
            kw = {"order_type": "limit", "tif": draw(st.sampled_from(["day", "gtc"])),
                  "limit_price": draw(st.sampled_from([60.0, 95.0, 105.0, 140.0]))}
        plan.setdefault(t, []).append((sym, draw(SIDES), qty, kw))
    return plan


ACCOUNTS: dict[str, Callable[[], Any]] = {
    "cash": lambda: CashAccount(),
    "cash-record": lambda: CashAccount(good_faith="record"),
    "margin": lambda: MarginAccount(liquidate=True),
    "margin-event": lambda: MarginAccount(),
}


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(sorted(ACCOUNTS)))
def test_killed_at_a_random_bar_and_resumed_the_run_decides_the_same(
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, kind: str) -> None:
    n = 18
    moves = data.draw(st.lists(st.sampled_from([-0.2, -0.05, 0.0, 0.04, 0.1]),
                               min_size=n, max_size=n))
    closes = list(100.0 * np.cumprod(1 + np.array(moves)))
    bars = hourly(3, per_day=6, closes=closes)
    plan = data.draw(plans(n))
    crashes = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2, unique=True))
    tmp = tmp_path_factory.mktemp("prop")
    whole, cut = tmp / "whole.jsonl", tmp / "cut.jsonl"
    assert run(bars, plan, whole, ACCOUNTS[kind], cash=15_000.0)
    for at in sorted(crashes):
        run(bars, plan, cut, ACCOUNTS[kind], crash=at, cash=15_000.0)
    assert run(bars, plan, cut, ACCOUNTS[kind], cash=15_000.0)
    assert outcome(cut) == outcome(whole), (kind, plan, crashes)


def test_partial_fills_and_day_end_financing_are_not_done_twice_by_a_resume(
        tmp_path: Path) -> None:
    # A kill while the strategy has a bar in hand used to replay the broker's bar too:
    # a partial fill took a second share of that bar's volume, a day's last bar charged
    # borrow and interest again. The broker now resumes at the last bar it closed.
    b = hourly(3, per_day=4)
    bars = Bars.from_arrays(b.ts_ns.view("datetime64[ns]"), list(b.symbols), open=b.open,
                            high=b.high, low=b.low, close=b.close,
                            volume=np.full(np.shape(b.volume), 1000.0))
    plan: dict[int, list[tuple[Any, ...]]] = {
        0: [("X", "buy", 300, {"tif": "gtc"})], 1: [("Y", "sell", 50)],
        5: [("X", "sell", 100)]}
    fills, *_ = every_crash(bars, plan, "margin", tmp_path, cash=20_000.0,
                            max_volume_share=0.1,
                            borrow=BorrowModel(rate=0.5),
                            interest=InterestModel(debit=0.5, credit=0.2))
    assert [f[3] for f in fills if f[1] == "X" and f[2] == "buy"] == [100.0, 100.0, 100.0]
    records = read_trade_log(tmp_path / "whole.jsonl")
    assert {"borrow_fee", "interest"} <= {r["event"] for r in records}


def test_a_kill_inside_a_day_ends_accruals_charges_each_once(tmp_path: Path) -> None:
    # Cut after every record: also right after a day's borrow_fee record and before its
    # interest, and after both but before the bar's stepped record. The resumed broker
    # closes that bar again and must not charge what the log already charged.
    b = hourly(3, per_day=4)
    bars = Bars.from_arrays(b.ts_ns.view("datetime64[ns]"), list(b.symbols), open=b.open,
                            high=b.high, low=b.low, close=b.close,
                            volume=np.full(np.shape(b.volume), 1000.0))
    plan: dict[int, list[tuple[Any, ...]]] = {0: [("X", "buy", 300)], 1: [("Y", "sell", 50)],
                                              5: [("X", "sell", 100)]}
    kw: dict[str, Any] = {"cash": 20_000.0, "borrow": BorrowModel(rate=0.5),
                          "interest": InterestModel(debit=0.5, credit=0.2)}
    whole = tmp_path / "whole.jsonl"
    assert run(bars, plan, whole, "margin", **kw)
    want = outcome(whole)
    records = read_trade_log(whole)
    charged = replay_trade_log(whole)
    assert charged.borrow_fees > 0
    assert charged.interest != 0
    for lives in range(len(records)):
        path = tmp_path / f"cut{lives}.jsonl"
        assert not run(bars, plan, path, "margin", lives=lives, **kw)
        assert run(bars, plan, path, "margin", **kw)
        got = replay_trade_log(path)
        assert (got.borrow_fees, got.interest) == (charged.borrow_fees, charged.interest), \
            (lives, records[lives]["event"])
        assert outcome(path) == want, (lives, records[lives]["event"])
