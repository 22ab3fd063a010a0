"""Scenarios every live adapter must pass, written once and run against each fake.

Each function drives one broker through one scenario and asserts what must hold whatever
the broker; a test module supplies its fake, its broker and how to trade one step
(``step``: the fake matches resting orders and the call returns once the broker has seen
every resulting fill).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simbroker
from simbroker.runner import RealtimeRunner
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log
from simbroker.types import Fill

ROOT = Path(__file__).resolve().parents[1]
SMA = ROOT / "examples" / "sma_crossover.py"


def wait_until(cond: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``cond`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def sma_example() -> Any:
    """``examples/sma_crossover.py`` as a module (it is not a package)."""
    spec = importlib.util.spec_from_file_location("sma_example", SMA)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def trade_log_replays_to_the_brokers_state(broker: Any, step: Callable[[], Any],
                                           log: Path) -> None:
    """Fills, a resting order and its cancel: replaying the log gives the broker's state."""
    broker.submit_order("AAA", "buy", 10)
    step()
    broker.submit_order("AAA", "sell", 4)
    lim = broker.submit_order("BBB", "buy", 1, "limit", limit_price=1.0)
    step()
    broker.cancel_order(lim["order_id"])
    state = replay_trade_log(log)
    assert state.cash == pytest.approx(broker.get_cash())
    assert state.positions == broker.get_positions()
    assert state.open_orders == {}
    events = [r["event"] for r in read_trade_log(log)]
    assert events.count("filled") == 2
    assert "canceled" in events


def bar_feed_warms_up_then_streams_bars(fake: Any, broker: Any) -> None:
    """Warm-up is the latest closed bars; each released bar is handed on once, whole."""
    bars = simbroker.sample_bars().select(symbols=["AAPL", "MSFT"])
    fake.set_bars(bars, visible=30)
    feed = broker.bar_feed(["AAPL", "MSFT"], bars.interval.astype("timedelta64[us]").item(),
                           warmup=20, poll=3600)
    try:
        warm = feed.warmup()
        assert warm is not None
        assert len(warm) == 20
        np.testing.assert_array_equal(warm.close, bars.close[10:30])
        assert feed.poll_once() == 0  # nothing has closed since
        fake.release_bar()
        assert feed.poll_once() == 2
        ev = feed.next_bar(1.0)
        assert ev is not None
        assert ev.timestamp == bars.index[30]
        np.testing.assert_array_equal(ev.close, bars.close[30])
        assert feed.poll_once() == 0  # never twice
    finally:
        feed.close()


def sma_in_the_realtime_runner(fake: Any, broker: Any, step: Callable[[], Any],
                               tlog: TradeLog, n: int = 160) -> list[Fill]:
    """The backtested SMA object trades ``fake`` fed with the sample data through the
    real-time runner, and fills exactly as the backtest did (no slippage either side).

    A market thread plays the bars: it waits until the runner has handled bar t - 1,
    opens bar t (the orders placed at the last close trade at its open), then closes it.
    Returns the broker's fills, by symbol and time, for the caller's own checks (fees).
    """
    bars = simbroker.sample_bars().rows(0, n)
    sma = sma_example()
    expected = simbroker.backtest(sma.SmaCrossover(10, 50, qty=100), bars, slippage=0,
                                  fees=0).fills
    fake.set_bars(bars, visible=0)
    feed = broker.bar_feed(list(bars.symbols), bars.interval.astype("timedelta64[us]").item(),
                           poll=3600)
    runner = RealtimeRunner(sma.SmaCrossover(10, 50, qty=100), broker, feed, trade_log=tlog,
                            max_bars=n, handle_signals=False, poll_timeout=0.05)
    errors: list[BaseException] = []

    def market() -> None:
        try:
            for t in range(n):
                wait_until(lambda t=t: runner.report.bars >= t, 30)
                if t:
                    for j, sym in enumerate(bars.symbols):
                        if np.isfinite(bars.open[t, j]):
                            fake.set_price(sym, float(bars.open[t, j]))
                    step()
                fake.release_bar()
                feed.poll_once()
        except BaseException as exc:
            errors.append(exc)

    driver = threading.Thread(target=market, daemon=True)
    driver.start()
    try:
        report = runner.run()
        driver.join(30)
    finally:
        feed.close()
    assert not errors, errors
    assert report.bars == n
    got: list[Fill] = sorted(broker.get_fills(), key=lambda f: (f["symbol"], f["timestamp"]))
    want = expected.sort_values(["symbol", "timestamp"], kind="stable")
    assert len(got) == len(want) > 0
    for f, (_, e) in zip(got, want.iterrows(), strict=True):
        assert (f["symbol"], f["side"], f["qty"]) == (e["symbol"], e["side"], e["qty"])
        assert f["price"] == pytest.approx(e["price"], rel=1e-12)
    held: dict[str, float] = {}
    for f in got:
        held[f["symbol"]] = held.get(f["symbol"], 0.0) + (f["qty"] if f["side"] == "buy"
                                                          else -f["qty"])
    state = replay_trade_log(tlog.path)
    assert state.positions == {s: q for s, q in held.items() if q}
    return got


def paper_command_trades(fake: Any, config_dir: Path, broker_name: str, config: str,
                         connected: Callable[[], bool], env: dict[str, str] | None = None,
                         secrets: Sequence[str] = ()) -> None:
    """`simbroker paper --broker NAME`, as a user runs it, trades three live bars.

    ``config`` is the broker's YAML (its ``trade_log`` must be ``config_dir/NAME.jsonl``);
    bars are released while ``connected()`` says the command's client is on the fake. No
    string of ``secrets`` may appear in what the command prints.
    """
    bars = simbroker.sample_bars().rows(0, 120)
    fake.set_bars(bars, visible=60)
    (config_dir / "brokers").mkdir()
    (config_dir / "brokers" / f"{broker_name}.yaml").write_text(config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "simbroker.cli", "paper", f"{SMA}:SmaCrossover",
         "--broker", broker_name, "--config-dir", str(config_dir), "--symbols", "AAPL",
         "MSFT", "--interval", "1D", "--warmup", "55", "--max-bars", "3"],
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
            if fake._bars_visible < len(bars) and connected():
                fake.release_bar()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert "3 bars" in out
    for s in secrets:
        assert s not in out + err
    records = read_trade_log(config_dir / f"{broker_name}.jsonl")
    assert records[0]["event"] == "start"
    assert [r["event"] for r in records].count("bar") == 3
