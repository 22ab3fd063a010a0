"""The real-time runner: equal to the backtest, clean stops, restarts without duplicates."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simbroker
from simbroker import Bars, Broker, History
from simbroker.feeds import ReplayFeed
from simbroker.risk import RiskLimits
from simbroker.runner import (
    RealtimeRunner,
    paper_broker_from_log,
    read_resume_point,
)
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from sma_crossover import SmaCrossover  # noqa: E402

SMA = f"{ROOT / 'examples' / 'sma_crossover.py'}:SmaCrossover"
FILL_KEYS = ["timestamp", "symbol", "side", "qty", "price", "fee"]


class Mixed:
    """Deterministic in (history, positions): market entries, GTC limit exits, day stops."""

    def on_bar(self, broker: Broker, history: History) -> None:
        t = history.t
        close = history.last("close")
        held = broker.get_positions()
        for i, sym in enumerate(history.symbols):
            if np.isnan(close[i]):
                continue
            if (t + i) % 7 == 0:
                broker.submit_order(sym, "buy", 10)
            pos = held.get(sym, 0.0)
            if pos > 0 and (t + 2 * i) % 11 == 0:
                broker.submit_order(sym, "sell", pos, "limit", limit_price=close[i] * 1.01,
                                    tif="gtc")
            if (t + i) % 13 == 0:
                broker.submit_order(sym, "buy", 5, "stop", stop_price=close[i] * 1.02)


class Crash(BaseException):
    """Stands in for the process dying in the middle of a bar."""


class CrashAt:
    """Runs ``inner``, then dies at bar ``at`` after the bar's orders went out."""

    def __init__(self, inner: Any, at: int):
        self.inner, self.at = inner, at

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        fn = getattr(self.inner, "indicators", None)
        return fn(bars) if fn else {}

    def on_bar(self, broker: Broker, history: History) -> None:
        self.inner.on_bar(broker, history)
        if history.t == self.at:
            raise Crash


def fills_of(broker: Any) -> list[tuple[Any, ...]]:
    return [tuple(f[k] for k in FILL_KEYS) for f in broker.get_fills()]


def log_fills(path: Path) -> list[tuple[Any, ...]]:
    return [tuple(f[k] for k in FILL_KEYS) for f in replay_trade_log(path).fills]


def realtime(strategy: Any, bars: Bars, path: Path, **kw: Any) -> Any:
    resume = read_resume_point(path)
    with TradeLog(path) as log:
        broker = paper_broker_from_log(bars, resume, trade_log=log)
        runner = RealtimeRunner(strategy, broker, ReplayFeed(bars), trade_log=log,
                                resume=resume or False, handle_signals=False, **kw)
        with contextlib.suppress(Crash):
            runner.run()
        return broker, runner


@pytest.mark.parametrize("make", [lambda: SmaCrossover(10, 50), Mixed])
def test_the_realtime_path_equals_the_backtest(tmp_path: Path, make: Any) -> None:
    bars = simbroker.sample_bars().select(end="2010-06-01")
    expected = simbroker.backtest(make(), bars)
    broker, runner = realtime(make(), bars, tmp_path / "log.jsonl")
    assert runner.report.stopped_by == "feed ended"
    assert runner.report.bars == len(bars)
    assert fills_of(broker) == [tuple(r) for r in expected.fills[FILL_KEYS].itertuples(
        index=False)]
    assert broker.get_cash() == expected.final_cash
    assert broker.get_positions() == expected.final_positions
    # Every order carries the runner's deterministic id: run id, bar time, sequence.
    ids = [f["client_order_id"] for f in broker.get_fills()]
    assert all(i and i.startswith(runner.run_id + "-") for i in ids)
    # The trade log alone rebuilds the same account.
    state = replay_trade_log(tmp_path / "log.jsonl")
    assert state.cash == expected.final_cash
    assert state.positions == expected.final_positions


@pytest.mark.parametrize("crash_at", [0, 1, 57, 58, 130, 261])
def test_a_crash_and_restart_neither_loses_nor_duplicates_an_order(
        tmp_path: Path, crash_at: int) -> None:
    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=300, seed=11)
    expected = simbroker.backtest(Mixed(), bars)
    path = tmp_path / "log.jsonl"
    realtime(CrashAt(Mixed(), crash_at), bars, path)
    resume = read_resume_point(path)
    assert resume is not None
    assert resume.bars_done == crash_at  # the bar in hand was not finished
    _, runner = realtime(Mixed(), bars, path)
    assert runner.report.resumed
    assert runner.report.skipped == crash_at
    got = log_fills(path)
    want = [tuple(r) for r in expected.fills[FILL_KEYS].itertuples(index=False)]
    assert got == want
    state = replay_trade_log(path)
    assert state.cash == pytest.approx(expected.final_cash, rel=1e-12)
    assert state.positions == pytest.approx(expected.final_positions, rel=1e-12)
    # No client order id was filled more than its order's quantity.
    per_id: dict[str, float] = {}
    for f in state.fills:
        per_id[f["client_order_id"]] = per_id.get(f["client_order_id"], 0.0) + f["qty"]
    submitted = {r["client_order_id"]: r["qty"] for r in read_trade_log(path)
                 if r["event"] == "submitted"}
    assert all(q <= submitted[cid] + 1e-9 for cid, q in per_id.items())


def test_max_bars_stops_cleanly_and_the_next_run_continues(tmp_path: Path) -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=120, seed=5)
    expected = simbroker.backtest(Mixed(), bars)
    path = tmp_path / "log.jsonl"
    _, first = realtime(Mixed(), bars, path, max_bars=40)
    assert (first.report.bars, first.report.stopped_by) == (40, "max_bars")
    resume = read_resume_point(path)
    assert resume is not None
    assert resume.clean_stop
    assert resume.bars_done == 40
    realtime(Mixed(), bars, path, max_bars=50)
    _, last = realtime(Mixed(), bars, path)
    assert last.report.stopped_by == "feed ended"
    assert replay_trade_log(path).cash == pytest.approx(expected.final_cash, rel=1e-12)
    runs = [r for r in read_trade_log(path) if r["event"] == "runner_start"]
    assert len({r["run_id"] for r in runs}) == 1
    assert len(runs) == 3


def test_a_tripped_kill_switch_stays_tripped_after_a_restart(tmp_path: Path) -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=80, seed=9)
    path = tmp_path / "log.jsonl"
    limits = RiskLimits(max_daily_loss=0.01)  # any loss over a cent trips it
    realtime(Mixed(), bars, path, risk=limits, max_bars=60)
    records = read_trade_log(path)
    kills = [r for r in records if r["event"] == "kill"]
    assert kills, "the strategy loses money within 60 bars on this seed"
    resume = read_resume_point(path)
    assert resume is not None
    assert resume.killed is not None
    _, second = realtime(Mixed(), bars, path, risk=limits)
    assert second.risk_broker is not None
    assert second.risk_broker.killed is not None
    later = read_trade_log(path)[len(records):]
    assert not [r for r in later if r["event"] == "submitted"]
    assert [r for r in later if r["event"] == "rejected" and r["rule"] == "max_daily_loss"]


def test_stop_from_another_thread_finishes_the_bar_in_hand(tmp_path: Path) -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=400, seed=3)
    path = tmp_path / "log.jsonl"
    with TradeLog(path) as log:
        broker = paper_broker_from_log(bars, None, trade_log=log)
        # About 2 ms per bar: the stop lands in the middle of the replay.
        feed = ReplayFeed(bars, speed=86_400 * 500)
        runner = RealtimeRunner(Mixed(), broker, feed, trade_log=log, handle_signals=False)
        threading.Timer(0.2, runner.stop).start()
        report = runner.run()
    assert report.stopped_by == "stop()"
    assert 0 < report.bars < len(bars)
    records = read_trade_log(path)
    assert records[-1]["event"] == "runner_stop"
    bar_records = [r for r in records if r["event"] == "bar"]
    assert len(bar_records) == report.bars


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=5, seed=1)
    broker = simbroker.PaperBroker(bars)
    with pytest.raises(ValueError, match="max_bars"):
        RealtimeRunner(Mixed(), broker, ReplayFeed(bars), max_bars=-1)
    with pytest.raises(ValueError, match="resume=True needs a trade_log"):
        RealtimeRunner(Mixed(), broker, ReplayFeed(bars), resume=True)
    assert read_resume_point(tmp_path / "missing.jsonl") is None


# ------------------------------------------------------------------ the command line
def cli(*args: str, cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simbroker.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False, **kw)


def final_state(path: Path) -> tuple[float, dict[str, float]]:
    state = replay_trade_log(path)
    return state.cash, state.positions


def sample_expected() -> Any:
    return simbroker.backtest(SmaCrossover(10, 50), simbroker.sample_bars())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_paper_command_killed_mid_run_resumes_to_the_backtest_result(
        tmp_path: Path, sig: signal.Signals) -> None:
    log = tmp_path / "tradelogs" / "paper-paper.jsonl"
    # 1,300 daily bars at ~4 ms a bar: a few seconds, long enough to be killed mid-run.
    proc = subprocess.Popen([sys.executable, "-m", "simbroker.cli", "paper", SMA, "--broker",
                             "paper", "--speed", str(86_400 * 250)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some bars are done
        if log.exists() and log.read_bytes().count(b'"event":"bar"') >= 100:
            break
        time.sleep(0.02)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 0, err
        assert f"stopped: signal {sig.name}" in out
        assert read_trade_log(log)[-1]["event"] == "runner_stop"
        assert log.read_bytes().endswith(b"\n")
    done = read_resume_point(log)
    assert done is not None
    assert 100 <= done.bars_done < 1300
    again = cli("paper", SMA, "--broker", "paper", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Resuming run" in again.stdout
    expected = sample_expected()
    cash, positions = final_state(log)
    assert cash == pytest.approx(expected.final_cash, rel=1e-12)
    assert positions == expected.final_positions
    assert log_fills(log) == [tuple(r) for r in expected.fills[FILL_KEYS].itertuples(
        index=False)]


def test_paper_refuses_fresh_over_an_existing_log(tmp_path: Path) -> None:
    first = cli("paper", SMA, "--broker", "paper", "--max-bars", "5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = cli("paper", SMA, "--broker", "paper", "--fresh", cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def write_config(root: Path, broker: str, text: str) -> Path:
    (root / "CONFIG" / "brokers").mkdir(parents=True, exist_ok=True)
    path = root / "CONFIG" / "brokers" / f"{broker}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


LIVE_IBKR = """host: 127.0.0.1
port: 7496
trading_mode: live
risk:
  max_order_qty: 10
  max_position: 100
  max_daily_loss: 500
"""


@pytest.mark.parametrize(("command", "config", "extra", "message"), [
    ("paper", LIVE_IBKR, [], "only 'simbroker live' accepts it"),
    ("paper", "paper: false\napi_key: ${K}\nsecret_key: ${S}\n", [],
     "only 'simbroker live' accepts it"),
    ("live", "port: 7497\n", ["--confirm-live"], "not a live config"),
    ("live", LIVE_IBKR, [], "pass --confirm-live"),
    ("live", "port: 7496\ntrading_mode: live\n", ["--confirm-live"],
     "needs risk limits in the config: set max_order_qty or max_order_notional"),
    ("live", "paper: false\napi_key: ${K}\nsecret_key: ${S}\nrisk:\n  max_order_qty: 5\n",
     ["--confirm-live"], "max_daily_loss"),
])
def test_promotion_safety_gates(tmp_path: Path, command: str, config: str, extra: list[str],
                                message: str) -> None:
    broker = "alpaca" if "api_key" in config else "ibkr"
    write_config(tmp_path, broker, config)
    env = {**os.environ, "K": "AKSECRETKEYVALUE1", "S": "sEcReTvAlUe2"}
    out = cli(command, SMA, "--broker", broker, "--symbols", "AAPL", *extra, cwd=tmp_path,
              env=env)
    assert out.returncode == 2, out.stdout
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert "AKSECRETKEYVALUE1" not in out.stderr + out.stdout
    assert "sEcReTvAlUe2" not in out.stderr + out.stdout
    assert not (tmp_path / "tradelogs").exists() or not any((tmp_path / "tradelogs").iterdir())


@pytest.mark.parametrize("args", [["paper"], ["live"]])
def test_help(tmp_path: Path, args: list[str]) -> None:
    out = cli(*args, "--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "usage: simbroker" in out.stdout
    assert "--broker" in out.stdout


def test_tradelog_of_a_realtime_run_is_valid_json_lines(tmp_path: Path) -> None:
    out = cli("paper", SMA, "--broker", "paper", "--max-bars", "80", "--trade-log",
              "run.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert events[0] == "start"
    assert events[1] == "runner_start"
    assert events[-1] == "runner_stop"
    assert events.count("bar") == 80


def test_a_strategy_bug_in_real_time_names_bar_time_and_line(tmp_path: Path) -> None:
    from simbroker.feeds import ReplayFeed
    from simbroker.runner import RealtimeRunner

    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=20, seed=2)

    def strategy(broker: Any, history: Any) -> None:
        if history.t == 5:
            raise RuntimeError("boom")

    log = tmp_path / "rt.jsonl"
    broker = simbroker.PaperBroker(bars, trade_log=log)
    runner = RealtimeRunner(strategy, broker, ReplayFeed(bars, speed=math.inf),
                            trade_log=broker.trade_log)
    try:
        with pytest.raises(simbroker.StrategyError,
                           match=r"RuntimeError: boom at bar 5") as info:
            runner.run()
    finally:
        broker.close()
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.where is not None
    assert info.value.where.startswith(f"{__file__}:")
    events = [r["event"] for r in simbroker.read_trade_log(log)]
    assert events[-2:] == ["strategy_error", "runner_stop"]


# ------------------------------------------------------------------ resume pacing
class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_resumed_replay_releases_its_first_new_bar_at_once() -> None:
    """A finite-speed replay restarted after 12 bars must not wait the 12 bars again."""
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=30, seed=1, freq="1min")
    clock = FakeTime()
    speed = 60.0  # one one-minute bar per second
    fresh = ReplayFeed(bars, speed=speed, time_source=clock)
    assert fresh.seconds_until_next() == 0.0  # the first bar is due at once
    assert fresh.next_bar() is not None
    assert fresh.seconds_until_next() == pytest.approx(1.0)
    clock.now += 0.25
    assert fresh.seconds_until_next() == pytest.approx(0.75)

    resumed = ReplayFeed(bars, speed=speed, time_source=clock)
    assert resumed.skip_to(bars.index[11].to_pydatetime() + timedelta(minutes=1)) == 12
    assert resumed.seconds_until_next() == 0.0  # was 12 s before the fix
    ev = resumed.next_bar(timeout=0)
    assert ev is not None
    assert ev.timestamp == bars.index[12].to_pydatetime()
    assert resumed.seconds_until_next() == pytest.approx(1.0)  # then the normal pace
    clock.now += 1.0
    assert resumed.seconds_until_next() == 0.0
    assert resumed.next_bar(timeout=0) is not None
    assert resumed.next_bar(timeout=0) is None  # the next one is not due yet
