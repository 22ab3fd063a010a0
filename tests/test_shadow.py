"""Shadow mode: a paper broker beside the live one, alerts where their fills part.

The paper broker plays "live" here; a deliberately different live side (other slippage,
a venue that drops an order, one that reports prices off the bar, one that allows what
paper refuses) must raise the matching alert, and an identical one none at all.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

import pytest

import simbroker
from simbroker import cli
from simbroker.feeds import ReplayFeed
from simbroker.runner import RealtimeRunner
from simbroker.shadow import ShadowSettings, shadow_log_path
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.types import Fill, OrderInfo

BARS = simbroker.synthetic_bars(n_symbols=2, n_bars=60, seed=5, start="2024-01-02")
A, B = BARS.symbols
SMA = Path(__file__).resolve().parents[1] / "examples" / "sma_crossover.py"


class Script:
    """Sends the given orders on the given bars (``{bar: [(sym, side, qty, kw)]}``)."""

    def __init__(self, plan: dict[int, list[tuple[str, str, float, dict[str, Any]]]]):
        self.plan = plan

    def on_bar(self, broker: Any, history: Any) -> None:
        for sym, side, qty, kw in self.plan.get(history.t, []):
            with contextlib.suppress(simbroker.OrderRejected):
                broker.submit_order(sym, side, qty, **kw)


PLAN: dict[int, list[tuple[str, str, float, dict[str, Any]]]] = {
    3: [(A, "buy", 10, {})], 5: [(B, "buy", 4, {})],
    9: [(A, "sell", 10, {}), (B, "buy", 3, {"order_type": "limit", "limit_price": 1e6})],
    14: [(B, "sell", 7, {})],
}


def _run(tmp_path: Path, live: Any, strategy: Any = None, **kw: Any
         ) -> tuple[Any, Path, RealtimeRunner]:
    path = tmp_path / "live.jsonl"
    log = TradeLog(path)
    if live is None:
        live = simbroker.PaperBroker(BARS, trade_log=log)
    runner = RealtimeRunner(strategy or Script(PLAN), live, ReplayFeed(BARS, speed=math.inf),
                            trade_log=log, handle_signals=False, **kw)
    report = runner.run()
    log.close()
    return report, path, runner


class Wrapper:
    """A live broker around a PaperBroker (the runner drives it through ``run_until``)."""

    def __init__(self, inner: simbroker.PaperBroker):
        self.inner = inner

    def submit_order(self, *args: Any, **kw: Any) -> OrderInfo:
        return self.inner.submit_order(*args, **kw)

    def cancel_order(self, order_id: str) -> OrderInfo:
        return self.inner.cancel_order(order_id)

    def get_positions(self) -> dict[str, float]:
        return self.inner.get_positions()

    def get_cash(self) -> float:
        return self.inner.get_cash()

    def get_fills(self, since: Any = None) -> list[Fill]:
        return self.inner.get_fills(since)

    def now(self) -> Any:
        return self.inner.now()

    def run_until(self, when: Any) -> int:
        return self.inner.run_until(when)


class DropsAnOrder(Wrapper):
    """Acknowledges the n-th order and never sends it on: its fill never comes."""

    def __init__(self, inner: simbroker.PaperBroker, n: int):
        super().__init__(inner)
        self.n, self.count = n, 0

    def submit_order(self, *args: Any, **kw: Any) -> OrderInfo:
        self.count += 1
        if self.count != self.n:
            return self.inner.submit_order(*args, **kw)
        symbol, side, qty = args[:3]
        return OrderInfo(order_id="lost-1", client_order_id=kw.get("client_order_id"),
                         symbol=symbol, side=side, qty=float(qty), order_type="market",
                         limit_price=None, stop_price=None, tif="day", status="new",
                         filled_qty=0.0, avg_fill_price=None, submitted_at=self.now(),
                         reason=None)


class OffTheBar(Wrapper):
    """Reports every fill 3% worse than it was: prices outside the bar."""

    def get_fills(self, since: Any = None) -> list[Fill]:
        out = []
        for f in self.inner.get_fills(since):
            f = dict(f)  # type: ignore[assignment]
            f["price"] = f["price"] * (1.03 if f["side"] == "buy" else 0.97)
            f["notional"] = f["qty"] * f["price"]
            out.append(f)
        return out


def _alerts(path: Path) -> list[dict[str, Any]]:
    return [r for r in read_trade_log(path) if r["event"] == "alert"]


def test_identical_live_and_paper_raise_nothing_and_drift_zero(tmp_path: Path) -> None:
    report, path, runner = _run(tmp_path, None, shadow=True)
    assert report.fills == 5
    assert report.alerts == []
    assert _alerts(path) == []
    shadow = shadow_log_path(path)
    assert shadow == tmp_path / "live.shadow.jsonl"
    assert runner.shadow is not None
    assert runner.shadow.path == shadow
    recs = read_trade_log(shadow)
    assert sum(r["event"] == "filled" for r in recs) == 5
    d = simbroker.drift(path, shadow, bars=BARS)
    assert len(d.fills) == 5
    assert d.only_a.empty
    assert d.only_b.empty
    assert (d.fills["price_diff_bps"] == 0.0).all()
    assert (d.fills["fee_bps"] == 0.0).all()
    assert (d.fills["matched_by"] == "client_order_id").all()
    # The shadow account ends where the live one does, bit for bit.
    state, live = simbroker.replay_trade_log(shadow), simbroker.replay_trade_log(path)
    assert state.cash == live.cash
    assert state.positions == live.positions


def test_sma_example_in_shadow_has_no_divergence(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("sma_example", SMA)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    report, path, _ = _run(tmp_path, None, strategy=mod.SmaCrossover(fast=3, slow=8),
                           shadow=True)
    assert report.fills > 4
    assert report.alerts == []
    d = simbroker.drift(path, shadow_log_path(path), bars=BARS)
    assert d.summary["matched"] == report.fills
    assert d.summary["equity_diff"] == 0.0


def test_other_slippage_live_raises_price_drift(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    seen: list[dict[str, Any]] = []
    live = simbroker.PaperBroker(BARS, slippage=25.0)
    with caplog.at_level(logging.WARNING, logger="simbroker.shadow"):
        report, path, _ = _run(tmp_path, live, shadow=ShadowSettings(max_drift_bps=10),
                               on_divergence=seen.append)
    kinds = [a["kind"] for a in report.alerts]
    assert kinds == ["price_drift"] * 5  # the marketable limit slips too: 1e6 is far
    assert all(a["diff_bps"] == pytest.approx(20.0, abs=0.1) for a in report.alerts)
    assert [a["kind"] for a in seen] == kinds
    logged = _alerts(path)
    assert [r["kind"] for r in logged] == kinds
    assert {r["source"] for r in logged} == {"shadow"}
    assert sum("shadow divergence (price_drift)" in m for m in caplog.messages) == 5
    d = simbroker.drift(shadow_log_path(path), path, bars=BARS)
    assert d.fills["slippage_bps"].round(6).tolist() == [20.0] * 5
    assert d.fills["ref_drift_bps"].abs().max() < 1e-9


def test_a_dropped_order_is_a_missing_fill(tmp_path: Path) -> None:
    live = DropsAnOrder(simbroker.PaperBroker(BARS), n=2)
    report, path, _ = _run(tmp_path, live, shadow=True)
    assert [a["kind"] for a in report.alerts] == ["missing_fill"]
    alert = report.alerts[0]
    assert alert["symbol"] == B
    assert alert["shadow_qty"] == 4.0
    assert alert["live_qty"] == 0.0
    # Raised one bar after the paper broker's fill, on the bar after the order's bar.
    assert alert["bar"] == BARS.index[7].to_pydatetime()
    assert _alerts(path)[0]["kind"] == "missing_fill"


def test_a_fill_paper_would_not_make_is_unexpected(tmp_path: Path) -> None:
    plan = {3: [(A, "sell", 5, {})]}  # a short sale: live allows it, the shadow does not
    report, path, _ = _run(tmp_path, simbroker.PaperBroker(BARS), strategy=Script(plan),
                           shadow=ShadowSettings(allow_short=False))
    assert [a["kind"] for a in report.alerts] == ["unexpected_fill"]
    assert report.alerts[0]["live_qty"] == 5.0
    shadow = read_trade_log(shadow_log_path(path))
    refused = [r for r in shadow if r["event"] == "rejected"]
    assert len(refused) == 1
    assert "short" in refused[0]["reason"]
    d = simbroker.drift(shadow_log_path(path), path)
    assert d.summary["extra"] == 1
    assert d.refusals["refused_in"].tolist() == ["a"]


def test_prices_off_the_bar_are_flagged(tmp_path: Path) -> None:
    report, _, _ = _run(tmp_path, OffTheBar(simbroker.PaperBroker(BARS)), shadow=True)
    kinds = sorted(a["kind"] for a in report.alerts)
    assert kinds.count("price_outside_bar") == 5
    assert kinds.count("price_drift") == 5
    outside = [a for a in report.alerts if a["kind"] == "price_outside_bar"]
    assert all("outside its bar" in a["detail"] for a in outside)


def test_cancels_are_mirrored(tmp_path: Path) -> None:
    class PlaceAndCancel:
        def on_bar(self, broker: Any, history: Any) -> None:
            if history.t == 3:
                self.info = broker.submit_order(A, "buy", 5, "limit", limit_price=0.01,
                                                tif="gtc")
            if history.t == 6:
                broker.cancel_order(self.info["order_id"])

    report, path, _ = _run(tmp_path, None, strategy=PlaceAndCancel(), shadow=True)
    assert report.alerts == []
    events = [r["event"] for r in read_trade_log(shadow_log_path(path))]
    assert events.count("submitted") == 1
    assert events.count("canceled") == 1


def test_day_orders_expire_in_the_shadow_like_paper(tmp_path: Path) -> None:
    plan = {2: [(A, "buy", 5, {"order_type": "limit", "limit_price": 0.01})]}
    report, path, _ = _run(tmp_path, None, strategy=Script(plan), shadow=True)
    assert report.alerts == []
    shadow = [r["event"] for r in read_trade_log(shadow_log_path(path))]
    live = [r["event"] for r in read_trade_log(path)]
    assert shadow.count("expired") == 1
    assert live.count("expired") == 1


def test_a_failing_callback_does_not_stop_the_run(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    def boom(alert: dict[str, Any]) -> None:
        raise RuntimeError("pager down")

    with caplog.at_level(logging.ERROR, logger="simbroker.shadow"):
        report, _, _ = _run(tmp_path, simbroker.PaperBroker(BARS, slippage=30.0),
                            shadow=True, on_divergence=boom)
    assert report.stopped_by == "feed ended"
    assert len(report.alerts) == 5
    assert any("on_divergence callback raised" in m for m in caplog.messages)


def test_wrong_wiring_is_refused() -> None:
    pb = simbroker.PaperBroker(BARS)
    with pytest.raises(ValueError, match="on_divergence needs shadow"):
        RealtimeRunner(Script({}), pb, ReplayFeed(BARS), on_divergence=print)
    with pytest.raises(TypeError, match="shadow must be"):
        RealtimeRunner(Script({}), pb, ReplayFeed(BARS), shadow="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_drift_bps"):
        ShadowSettings(max_drift_bps=-1)


def test_risk_refusals_are_not_mirrored(tmp_path: Path) -> None:
    limits = simbroker.RiskLimits(max_order_qty=5)
    report, path, _ = _run(tmp_path, None, risk=limits, shadow=True)
    assert report.alerts == []
    shadow = read_trade_log(shadow_log_path(path))
    assert sum(r["event"] == "submitted" for r in shadow) == 2  # the two of qty <= 5


def test_cli_paper_shadow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.jsonl"
    code = cli.main(["paper", f"{SMA}:SmaCrossover", "--broker", "paper", "--config-dir",
                     str(tmp_path), "--trade-log", str(log), "--max-bars", "300",
                     "--shadow"])
    assert code == 0
    out = capsys.readouterr().out
    assert "0 divergence alert(s)" in out
    assert (tmp_path / "run.shadow.jsonl").is_file()
    assert cli.main(["drift", str(log), str(tmp_path / "run.shadow.jsonl"),
                     "--max-drift-bps", "0", "--max-missed", "0"]) == 0


def test_a_resumed_run_resumes_its_shadow(tmp_path: Path) -> None:
    plan = dict(PLAN)
    plan[6] = [(A, "buy", 2, {"order_type": "limit", "limit_price": 0.01, "tif": "gtc"})]
    _, whole_path, _ = _run(tmp_path / "whole", None, strategy=Script(plan), shadow=True)
    path = tmp_path / "split" / "live.jsonl"
    for max_bars in (8, None):
        log = TradeLog(path)
        resume = simbroker.runner.read_resume_point(path)
        live = simbroker.runner.paper_broker_from_log(BARS, resume, trade_log=log)
        RealtimeRunner(Script(plan), live, ReplayFeed(BARS, speed=math.inf), trade_log=log,
                       handle_signals=False, resume=resume or False, max_bars=max_bars,
                       shadow=True).run()
        log.close()
    split = read_trade_log(shadow_log_path(path))
    ids = [r["client_order_id"] for r in split if r["event"] == "submitted"]
    assert len(ids) == len(set(ids)) == 6  # none placed twice across the restart
    assert _alerts(path) == []
    one = simbroker.replay_trade_log(shadow_log_path(whole_path))
    two = simbroker.replay_trade_log(shadow_log_path(path))
    assert two.cash == one.cash
    assert two.positions == one.positions
    assert len(two.open_orders) == len(one.open_orders) == 1  # the resting GTC limit
