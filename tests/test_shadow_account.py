"""The shadow broker keeps the account like a paper broker over the whole run.

The same order stream goes bar by bar through a :class:`ShadowBroker` and through one
:class:`PaperBroker` over the panel, with the same account model: the accept/refuse
decisions (exception type, rule, ``rejected`` record), fills, cash, positions, settled
cash, day-trade counts, PDT flag and margin calls must agree at every bar, and a shadow
resumed from its own log at any bar must go on exactly as one that never stopped.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
import simbroker.cli
from simbroker.errors import InsufficientBuyingPower, OrderRejected
from simbroker.feeds import BarEvent, ReplayFeed
from simbroker.runner import RealtimeRunner
from simbroker.shadow import ShadowBroker, ShadowSettings, shadow_log_path
from simbroker.tradelog import TradeLog, read_trade_log

# 2-hourly bars, 4 a day: day trades, settlement and overnight changes all happen
HOURLY = simbroker.synthetic_bars(n_symbols=2, n_bars=24, seed=3, freq="2h",
                                  start="2024-03-04", volatility=0.6)
A, B = HOURLY.symbols


@dataclass(frozen=True)
class Submit:
    cid: str
    symbol: str
    side: str
    qty: float
    order_type: str = "market"
    limit_price: float | None = None
    tif: str = "day"


@dataclass(frozen=True)
class Cancel:
    cid: str


Plan = dict[int, list[Submit | Cancel]]
"""Actions after bar ``k - 1`` closed (``k = 0``: before the first bar)."""


def _event(bars: simbroker.Bars, t: int) -> BarEvent:
    return BarEvent(bars.index[t].to_pydatetime(), pd.Timedelta(bars.interval).to_pytimedelta(),
                    bars.symbols, bars.open[t].copy(), bars.high[t].copy(),
                    bars.low[t].copy(), bars.close[t].copy(), bars.volume[t].copy())


def _when(bars: simbroker.Bars, k: int) -> datetime:
    """When the actions of slot ``k`` happen: at the close of bar ``k - 1``."""
    if k == 0:
        return bars.index[0].to_pydatetime()
    return (bars.index[k - 1] + pd.Timedelta(bars.interval)).to_pydatetime()


def _figures(acct: dict[str, Any], account: str) -> tuple[Any, ...]:
    if account == "cash":
        return (acct["settled_cash"], acct["day_trades"])
    return (acct["day_trades"], acct["pattern_day_trader"])


def _shadow_figures(sh: ShadowBroker, account: str) -> tuple[Any, ...]:
    state = sh.account_state or {}
    cash = sh.get_cash()
    if account == "cash":
        unsettled = sum(c[2] for c in state.get("credits", []))
        settled = max(cash - unsettled, 0.0) if cash >= 0 else cash
        return (settled, len(state.get("day_trades", [])))
    return (len(state.get("day_trades", [])), state.get("pattern_day_trader"))


def _record(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in ("seq", "prev", "ts", "order_id")}


class Both:
    """A paper broker over the panel and a shadow fed bar by bar, the same plan."""

    def __init__(self, tmp: Path, bars: simbroker.Bars, account: Any, cash: float,
                 **kw: Any):
        self.bars = bars
        self.kind = simbroker.accounts.account_model(account).account_type  # type: ignore
        self.paper_log = TradeLog(tmp / "paper.jsonl")
        self.paper = simbroker.PaperBroker(bars, cash=cash, account=account,
                                           trade_log=self.paper_log, **kw)
        self.shadow_path = tmp / "shadow.jsonl"
        self.shadow_log = TradeLog(self.shadow_path)
        self.kw = kw
        self.account = account
        self.shadow = ShadowBroker(bars.symbols, bars.interval, cash=cash, account=account,
                                   trade_log=self.shadow_log, now=_when(bars, 0), **kw)
        self.ids: dict[str, str] = {}
        self.refused: dict[str, tuple[type, str | None]] = {}

    def act(self, k: int, actions: list[Submit | Cancel], shadow: ShadowBroker) -> None:
        now = _when(self.bars, k)
        for a in actions:
            if isinstance(a, Cancel):
                if a.cid in self.ids:
                    self.paper.cancel_order(self.ids[a.cid])
                    shadow.cancel(a.cid, now)
                continue
            try:
                info = self.paper.submit_order(a.symbol, a.side, a.qty, a.order_type,
                                               limit_price=a.limit_price, tif=a.tif,
                                               client_order_id=a.cid)
                self.ids[a.cid] = info["order_id"]
            except OrderRejected as exc:
                self.refused[a.cid] = (type(exc), getattr(exc, "rule", None))
            shadow.submit(a.symbol, a.side, a.qty, a.order_type, limit_price=a.limit_price,
                          stop_price=None, tif=a.tif, client_order_id=a.cid,
                          live_order_id=a.cid, now=now)

    def run(self, plan: Plan, *, restart_at: set[int] = frozenset()) -> None:  # type: ignore
        try:
            self._run(plan, restart_at)
        finally:  # a failed comparison must not leave the files open
            self.paper_log.close()
            self.shadow_log.close()

    def _run(self, plan: Plan, restart_at: set[int]) -> None:
        shadow = self.shadow
        for t in range(len(self.bars)):
            self.act(t, plan.get(t, []), shadow)
            self.paper.step()
            if t in restart_at:  # kill the shadow before the bar reaches it
                self.shadow_log.close()
                self.shadow_log = TradeLog(self.shadow_path)
                shadow = self.shadow = ShadowBroker(
                    self.bars.symbols, self.bars.interval, cash=0.0, account=self.account,
                    trade_log=self.shadow_log, **self.kw)
                shadow.restore(read_trade_log(self.shadow_path), _when(self.bars, t))
            shadow.on_bar(_event(self.bars, t))
            assert shadow.get_cash() == self.paper.get_cash(), f"cash at bar {t}"
            assert shadow.get_positions() == self.paper.get_positions(), f"bar {t}"
            assert _shadow_figures(shadow, self.kind) == \
                _figures(dict(self.paper.get_account()), self.kind), f"account at bar {t}"

    def check(self) -> None:
        paper_recs = read_trade_log(self.paper_log.path)
        shadow_recs = read_trade_log(self.shadow_path)
        for o in self.shadow.orders:  # those a restart kept in memory
            if o.refusal is not None:
                assert self.refused[str(o.order.client_order_id)] == (type(o.refusal), o.rule)
        assert {r["client_order_id"]: r.get("rule") for r in shadow_recs
                if r["event"] == "rejected"} == {c: r for c, (_, r) in self.refused.items()}

        def fills(recs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
            return sorted(((r["client_order_id"], r["ts"], r["symbol"], r["side"], r["qty"],
                            r["price"], r["fee"]) for r in recs if r["event"] == "filled"),
                          key=str)
        assert fills(shadow_recs) == fills(paper_recs)
        for event in ("rejected", "good_faith_violation"):
            assert [_record(r) for r in shadow_recs if r["event"] == event] == \
                [_record(r) for r in paper_recs if r["event"] == event], event
        calls = [(r["ts"], r["equity"], r["deficit"], len(r.get("canceled", [])))
                 for r in paper_recs if r["event"] == "margin_call"]
        assert [(r["ts"], r["equity"], r["deficit"], len(r.get("canceled", [])))
                for r in shadow_recs if r["event"] == "margin_call"] == calls


# ------------------------------------------------------------------ hand cases
def test_cash_account_refuses_free_riding_and_a_good_faith_sale(tmp_path: Path) -> None:
    px = float(HOURLY.close[0, 0])
    n = math.floor(9_000 / px)
    m = math.floor(8_000 / float(HOURLY.close[3, 1]))
    plan: Plan = {
        1: [Submit("b1", A, "buy", n)],
        2: [Submit("b2", A, "buy", n)],  # beyond the cash: free-riding
        3: [Submit("s1", A, "sell", n)],  # day 2 (bars 3-5): settles on day 3
        4: [Submit("b3", B, "buy", m)],  # 7/8 of it paid with the unsettled proceeds
        5: [Submit("s3", B, "sell", m)],  # sold before they settle: good faith
        7: [Submit("s4", B, "sell", m)],  # day 3: settled, paid for
    }
    both = Both(tmp_path, HOURLY, "cash", 10_000.0)
    both.run(plan)
    both.check()
    assert both.refused == {"b2": (InsufficientBuyingPower, "buying_power"),
                            "s3": (InsufficientBuyingPower, "good_faith")}
    recs = [r for r in read_trade_log(both.shadow_path) if r["event"] == "rejected"]
    assert [(r["client_order_id"], r["rule"]) for r in recs] == [("b2", "buying_power"),
                                                                 ("s3", "good_faith")]
    assert both.shadow.order_for("s4").status == "filled"  # type: ignore[union-attr]


def test_margin_account_refuses_beyond_buying_power(tmp_path: Path) -> None:
    px = float(HOURLY.close[0, 0])
    plan: Plan = {0: [Submit("big", A, "buy", math.floor(25_000 / px))],  # 2x of 10k: 20k
                  1: [Submit("ok", A, "buy", math.floor(15_000 / px))],
                  2: [Submit("more", B, "sell", math.floor(8_000 / px))]}  # short: margin
    both = Both(tmp_path, HOURLY, "margin", 10_000.0)
    both.run(plan)
    both.check()
    assert set(both.refused) == {"big", "more"}
    sh = both.shadow.order_for("big")
    assert sh is not None
    assert isinstance(sh.refusal, InsufficientBuyingPower)
    assert sh.refusal.required > sh.refusal.available


def test_pdt_rule_and_a_margin_call_with_liquidation(tmp_path: Path) -> None:
    plan: Plan = {}
    for d in range(4):  # a day trade on each of four days: the fourth is refused
        plan[3 * d] = [Submit(f"o{d}", A, "buy", 10)]
        plan[3 * d + 1] = [Submit(f"c{d}", A, "sell", 10)]
    px = float(HOURLY.close[17, 1])  # B then falls 11%: below 50% maintenance
    plan[18] = [Submit("lev", B, "buy", math.floor(38_000 / px))]
    account = {"model": "margin", "maintenance": 0.5, "liquidate": True}
    for cut in (None, 9, 19):  # restarted on the fourth day, and in the margin call
        both = Both(tmp_path / str(cut), HOURLY, account, 20_000.0) \
            if (tmp_path / str(cut)).mkdir() is None else None
        assert both is not None
        both.run(plan, restart_at=set() if cut is None else {cut})
        both.check()
        assert both.refused == {"c3": (simbroker.errors.PatternDayTrading,
                                       "pattern_day_trader")}
    shadow = read_trade_log(both.shadow_path)
    assert [r for r in shadow if r["event"] == "margin_call"]
    sold = [o for o in both.shadow.orders if o.order.client_order_id.startswith("liquidate-")]
    assert sold
    assert all(o.status == "filled" for o in sold)


def test_a_resumed_shadow_keeps_the_account(tmp_path: Path) -> None:
    px = float(HOURLY.close[0, 0])
    plan: Plan = {1: [Submit("b1", A, "buy", math.floor(9_000 / px))],
                  3: [Submit("s1", A, "sell", math.floor(9_000 / px))],
                  4: [Submit("b2", B, "buy", 100)],  # with the unsettled proceeds
                  5: [Submit("s2", B, "sell", 100), Submit("b3", A, "buy", 1e6)],
                  7: [Submit("s3", B, "sell", 5)]}
    for cut in range(2, 9):  # killed before each bar (its orders mirrored, not weighed)
        both = Both(tmp_path / str(cut), HOURLY, "cash", 10_000.0) \
            if (tmp_path / str(cut)).mkdir() is None else None
        assert both is not None
        both.run(plan, restart_at={cut})
        both.check()
        assert set(both.refused) == {"s2", "b3"}


@pytest.mark.parametrize("fees", ["alpaca", "ibkr_tiered"])
def test_a_restarted_shadow_charges_the_days_fees_as_paper_does(tmp_path: Path,
                                                                 fees: str) -> None:
    # Small sells on one day: with Alpaca's daily round-up each pays the cents it adds to
    # the day's totals, so a shadow restarted mid-day must count the day's earlier fills
    # (and the tiered month's volume) from its log.
    plan: Plan = {1: [Submit("b1", A, "buy", 300), Submit("b2", B, "buy", 300)],
                  **{k: [Submit(f"s{k}", A if k % 2 else B, "sell", 30)] for k in range(2, 9)}}
    for cut in (3, 5, 7):
        (tmp_path / f"{fees}{cut}").mkdir()
        both = Both(tmp_path / f"{fees}{cut}", HOURLY, "margin", 100_000.0, fees=fees)
        both.run(plan, restart_at={cut})
        both.check()
    sells = [r["fee"] for r in read_trade_log(both.paper_log.path)
             if r["event"] == "filled" and r["side"] == "sell"]
    if fees == "alpaca":  # later sells of the day pay less than their own round-up
        assert len(sells) == 7
        assert min(sells) < max(sells)


def test_orders_and_cancels_are_weighed_in_their_order(tmp_path: Path) -> None:
    px = float(HOURLY.close[2, 0])
    low = round(px * 0.6, 2)  # never fills; reserves 100 x low of the cash
    plan: Plan = {1: [Submit("l1", A, "buy", 100, "limit", low, "gtc"),
                      Submit("l2", A, "buy", 100, "limit", low, "gtc")],
                  3: [Submit("x1", A, "buy", 40), Cancel("l1"),  # l1 still reserved
                      Cancel("l2"), Submit("x2", A, "buy", 40)]}  # l2 no longer
    for cut in (None, 3):  # also killed with the four mirrored, not weighed
        both = Both(tmp_path / str(cut), HOURLY, "cash", 15_000.0) \
            if (tmp_path / str(cut)).mkdir() is None else None
        assert both is not None
        both.run(plan, restart_at=set() if cut is None else {cut})
        both.check()
        assert set(both.refused) == {"x1"}


# ------------------------------------------------------------------ random streams
def _plans(draw: Any) -> tuple[Any, float, Plan]:
    account = draw(st.sampled_from(["cash", "margin", {"model": "margin", "liquidate": True,
                                                       "maintenance": 0.4},
                                    {"model": "cash", "good_faith": "record"}]))
    cash = draw(st.sampled_from([5_000.0, 20_000.0, 30_000.0]))
    plan: Plan = {}
    cids: list[str] = []
    subs: list[Submit] = []  # a later order may close one: day trades, good faith
    for k in range(len(HOURLY)):
        acts: list[Submit | Cancel] = []
        for _ in range(draw(st.integers(0, 2))):
            if cids and draw(st.integers(0, 4)) == 0:
                acts.append(Cancel(draw(st.sampled_from(cids))))
                continue
            cid = f"c{len(cids)}"
            cids.append(cid)
            sym = draw(st.sampled_from([A, B]))
            kind = draw(st.sampled_from(["market", "market", "limit"]))
            ref = float(HOURLY.close[max(k - 1, 0), HOURLY.symbol_index(sym)])
            limit = None
            if kind == "limit":
                limit = round(ref * draw(st.sampled_from([0.97, 0.995, 1.0, 1.01])), 2)
            side = draw(st.sampled_from(["buy", "sell"]))
            qty = float(draw(st.one_of(
                st.integers(1, 300),
                st.just(math.floor(1.9 * cash / ref)),  # near the margin limit: calls
                st.sampled_from([s.qty for s in subs if s.symbol == sym] or [1.0]))))
            subs.append(Submit(cid, sym, side, qty, kind, limit,
                               draw(st.sampled_from(["day", "gtc"]))))
            acts.append(subs[-1])
        if acts:
            plan[k] = acts
    return account, cash, plan


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_streams_decide_like_the_paper_broker(tmp_path_factory: Any,
                                                     data: Any) -> None:
    account, cash, plan = _plans(data.draw)
    venue = data.draw(st.sampled_from([None, "ibkr", "alpaca"]))
    both = Both(tmp_path_factory.mktemp("s"), HOURLY, account, cash, venue=venue)
    both.run(plan)
    both.check()


# ------------------------------------------------------------------ wiring
class Script:
    def __init__(self, plan: dict[int, list[tuple[str, str, float]]]):
        self.plan = plan

    def on_bar(self, broker: Any, history: Any) -> None:
        for sym, side, qty in self.plan.get(history.t, []):
            with contextlib.suppress(OrderRejected):
                broker.submit_order(sym, side, qty)


def test_the_runner_gives_the_shadow_the_account(tmp_path: Path) -> None:
    px = float(HOURLY.close[0, 0])
    plan = {1: [(A, "buy", math.floor(9_000 / px))], 2: [(A, "buy", math.floor(9_000 / px))],
            5: [(A, "sell", math.floor(9_000 / px))]}
    path = tmp_path / "live.jsonl"
    log = TradeLog(path)
    # live is an unconstrained paper broker, which takes the second buy; the cash shadow
    # refuses it, as a cash account at the venue would
    live = simbroker.PaperBroker(HOURLY, cash=10_000.0, trade_log=log)
    RealtimeRunner(Script(plan), live, ReplayFeed(HOURLY, speed=math.inf), trade_log=log,
                   handle_signals=False, shadow=ShadowSettings(account="cash")).run()
    log.close()
    shadow = read_trade_log(shadow_log_path(path))
    assert [r["model"] for r in shadow if r["event"] == "account"] == ["cash"]
    assert [r["rule"] for r in shadow if r["event"] == "rejected"] == ["buying_power"]
    alerts = [r["kind"] for r in read_trade_log(path) if r["event"] == "alert"]
    assert "unexpected_fill" in alerts


def test_cli_shadow_settings_take_the_account() -> None:
    import argparse

    from simbroker.cli._realtime import _shadow_settings
    from simbroker.config import IBKRConfig, PaperConfig

    args = argparse.Namespace(shadow=True, account=None, max_volume_share=None, fees=None)
    assert _shadow_settings(args, PaperConfig(account="margin")).account == "margin"
    args.account = {"model": "cash"}
    assert _shadow_settings(args, PaperConfig(account="margin")).account == {"model": "cash"}
    got = _shadow_settings(args, IBKRConfig())
    assert (got.venue, got.account) == ("ibkr", {"model": "cash"})


def test_cli_live_shadow_takes_the_account(capsys: pytest.CaptureFixture[str]) -> None:
    from simbroker.cli import main
    from simbroker.cli._parser import build_parser
    from simbroker.cli._realtime import _shadow_settings
    from simbroker.config import AlpacaConfig

    args = build_parser().parse_args(["live", "--broker", "alpaca", "--shadow",
                                      "--account", "cash", "examples/sma_crossover.py"])
    got = _shadow_settings(args, AlpacaConfig(api_key="k", secret_key="s"))
    assert (got.venue, got.account) == ("alpaca", args.account)
    assert args.account is not None
    # Without --shadow the option would set nothing: refused before any connection.
    assert main(["live", "--broker", "alpaca", "--account", "cash",
                 "examples/sma_crossover.py"]) != 0
    assert "pass --shadow too" in capsys.readouterr().err


def test_resuming_with_another_account_is_refused(tmp_path: Path) -> None:
    both = Both(tmp_path, HOURLY, "cash", 10_000.0)
    both.run({1: [Submit("b", A, "buy", 1)]})
    other = ShadowBroker(HOURLY.symbols, HOURLY.interval, cash=0.0, account="margin")
    with pytest.raises(simbroker.errors.TradeLogError, match="cash"):
        other.restore(read_trade_log(both.shadow_path), _when(HOURLY, 5))
    same = ShadowBroker(HOURLY.symbols, HOURLY.interval, cash=0.0)
    same.restore(read_trade_log(both.shadow_path), _when(HOURLY, 5))
    assert same.account == "cash"  # the log's account by default
    plain = ShadowBroker(HOURLY.symbols, HOURLY.interval, cash=1.0, now=_when(HOURLY, 0),
                         trade_log=TradeLog(tmp_path / "plain.jsonl"))
    assert plain._log is not None
    plain._log.close()
    with pytest.raises(simbroker.errors.TradeLogError, match="unconstrained"):
        ShadowBroker(HOURLY.symbols, HOURLY.interval, cash=0.0, account="margin").restore(
            read_trade_log(tmp_path / "plain.jsonl"), _when(HOURLY, 5))
    assert np.isfinite(same.get_cash())


def test_cli_paper_shadow_keeps_the_paper_account(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    sma = Path(__file__).resolve().parents[1] / "examples" / "sma_crossover.py"
    log = tmp_path / "run.jsonl"
    code = simbroker.cli.main(["paper", f"{sma}:SmaCrossover", "--broker", "paper",
                               "--config-dir", str(tmp_path), "--trade-log", str(log),
                               "--max-bars", "120", "--shadow", "--account", "margin"])
    assert code == 0
    assert "0 divergence alert(s)" in capsys.readouterr().out
    shadow = read_trade_log(tmp_path / "run.shadow.jsonl")
    assert [r["model"] for r in shadow if r["event"] == "account"] == ["margin"]
    live = [r for r in read_trade_log(log) if r["event"] in ("filled", "rejected")]
    assert [(r["event"], r.get("client_order_id")) for r in shadow
            if r["event"] in ("filled", "rejected")] == \
        [(r["event"], r.get("client_order_id")) for r in live]


def test_a_good_faith_sale_recorded_not_refused(tmp_path: Path) -> None:
    n = math.floor(9_000 / float(HOURLY.close[0, 0]))
    m = math.floor(8_000 / float(HOURLY.close[3, 1]))
    plan: Plan = {1: [Submit("b1", A, "buy", n)], 3: [Submit("s1", A, "sell", n)],
                  4: [Submit("b2", B, "buy", m)], 5: [Submit("s2", B, "sell", m)]}
    both = Both(tmp_path, HOURLY, {"model": "cash", "good_faith": "record"}, 10_000.0)
    both.run(plan)
    both.check()  # the same good_faith_violation records
    assert both.refused == {}
    assert [r["symbol"] for r in read_trade_log(both.shadow_path)
            if r["event"] == "good_faith_violation"] == [B]


def test_a_resumed_run_resumes_its_shadow_account(tmp_path: Path) -> None:
    px = float(HOURLY.close[0, 0])
    n = math.floor(9_000 / px)
    plan = {0: [(A, "buy", n)], 1: [(A, "buy", 20)],  # beyond the cash
            2: [(A, "sell", n)], 3: [(B, "buy", 100)],  # with the unsettled proceeds
            4: [(B, "sell", 100)], 7: [(B, "sell", 50)]}  # before they settle; after

    def run(path: Path, max_bars: int | None, resume: bool) -> None:
        log = TradeLog(path)
        point = simbroker.runner.read_resume_point(path) if resume else None
        live = simbroker.runner.paper_broker_from_log(HOURLY, point, trade_log=log,
                                                      cash=10_000.0)
        RealtimeRunner(Script(plan), live, ReplayFeed(HOURLY, speed=math.inf),
                       trade_log=log, handle_signals=False, resume=point or False,
                       max_bars=max_bars, shadow=ShadowSettings(account="cash")).run()
        log.close()

    run(tmp_path / "whole.jsonl", None, False)
    for max_bars in (4, 2, None):  # stopped after bar 3, then 5, then to the end
        run(tmp_path / "split.jsonl", max_bars, True)
    whole = read_trade_log(shadow_log_path(tmp_path / "whole.jsonl"))
    split = read_trade_log(shadow_log_path(tmp_path / "split.jsonl"))

    def runless(r: dict[str, Any]) -> dict[str, Any]:  # client ids name the run
        return {k: v for k, v in _record(r).items() if k not in ("client_order_id", "fill_id")}

    for event in ("rejected", "filled", "margin_call"):
        assert [runless(r) for r in split if r["event"] == event] == \
            [runless(r) for r in whole if r["event"] == event], event
    assert [r["rule"] for r in whole if r["event"] == "rejected"] == ["buying_power",
                                                                      "good_faith"]
    assert [r["state"] for r in split if r["event"] == "stepped"][-1] == \
        [r["state"] for r in whole if r["event"] == "stepped"][-1]


def test_bad_shadow_settings_fail_at_once() -> None:
    with pytest.raises(ValueError, match="account"):
        ShadowSettings(account="broke")
    with pytest.raises(ValueError, match="venue"):
        ShadowSettings(venue="nyse")


def test_a_symbol_without_a_bar_keeps_its_last_close_as_mark(tmp_path: Path) -> None:
    arrays = {f: getattr(HOURLY, f).copy() for f in ("open", "high", "low", "close",
                                                      "volume")}
    for f in arrays:
        arrays[f][4:6, 1] = np.nan  # B has no bar 4 and 5
    bars = simbroker.Bars.from_arrays(list(HOURLY.index), HOURLY.symbols, **arrays,
                                      interval=HOURLY.interval)
    px_a, px_b = float(bars.close[5, 0]), float(bars.close[3, 1])
    hold = math.floor(12_000 / px_b)
    room = 2 * (10_000 - 0.5 * hold * px_b)  # Reg T buying power left, B marked at bar 3
    plan: Plan = {1: [Submit("b", B, "buy", hold)],
                  6: [Submit("fits", A, "buy", math.floor(0.8 * room / px_a)),
                      Submit("beyond", A, "buy", math.floor(0.4 * room / px_a))]}
    both = Both(tmp_path, bars, "margin", 10_000.0)
    both.run(plan)
    both.check()
    assert set(both.refused) == {"beyond"}
