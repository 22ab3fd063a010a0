"""``simbroker live`` needs a price collar or an order notional limit; the examples have both."""

from __future__ import annotations

from pathlib import Path

import pytest

from simbroker.cli import main
from simbroker.cli._realtime import risk_is_set
from simbroker.config import load_broker_config

ROOT = Path(__file__).resolve().parents[1]

LIMITS = "  max_order_qty: 10\n  max_position: 100\n  max_daily_loss: 500\n"


@pytest.mark.parametrize(("extra", "refused"), [
    ("", True),
    ("  price_collar: 0.05\n", False),
    ("  max_order_notional: 5000\n", False),
    ("  max_position_notional: 5000\n", True),  # bounds the position, not a fat-finger price
])
def test_live_needs_a_price_collar_or_an_order_notional_limit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, refused: bool) -> None:
    config = tmp_path / "ibkr.yaml"
    config.write_text(f"host: 127.0.0.1\nport: 7496\ntrading_mode: live\nrisk:\n{LIMITS}{extra}",
                      encoding="utf-8")
    limits = load_broker_config("ibkr", path=config).risk
    why = risk_is_set(limits)
    if not refused:
        assert why is None
        return
    assert why is not None
    assert "price_collar (or max_order_notional)" in why
    code = main(["live", "nothing:Here", "--broker", "ibkr", "--config", str(config),
                 "--confirm-live", "--trade-log", str(tmp_path / "t.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert "needs risk limits in the config: set price_collar (or max_order_notional)" in err
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize("broker", ["ibkr", "alpaca"])
def test_the_example_configs_pass_the_live_gate(broker: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", "PKTESTKEYVALUE")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "not-a-real-secret")
    cfg = load_broker_config(broker, path=ROOT / "CONFIG" / "brokers" / f"{broker}.example.yaml")
    assert risk_is_set(cfg.risk) is None
    assert cfg.risk.price_collar is not None


CHURN = '''
class Churn:
    """Buys 50 AAPL on even bars, sells all on odd ones, then asks for a GTC limit that
    max_orders_per_minute refuses (daily bars: one order per bar passes)."""

    def on_bar(self, broker, history):
        close = history.last("close")[0]
        held = broker.get_positions().get("AAPL", 0.0)
        if history.t % 2 == 0:
            broker.submit_order("AAPL", "buy", 50)
        elif held:
            broker.submit_order("AAPL", "sell", held)
        broker.submit_order("AAPL", "buy", 1, "limit", limit_price=round(close * 0.5, 2),
                            tif="gtc")
'''

CHURN_CONFIG = """cash: 100000
risk:
  max_orders_per_minute: 1
  max_daily_loss: 1200
  max_position: 60
"""


def decisions(path: Path) -> tuple[list[tuple[object, ...]], dict[str, set[object]], list[str]]:
    from simbroker.tradelog import read_trade_log, replay_trade_log

    fills = [tuple(f[k] for k in ("timestamp", "side", "qty", "price", "fee"))
             for f in replay_trade_log(path).fills]
    refused: dict[str, set[object]] = {}
    kills = []
    for r in read_trade_log(path):
        if r["event"] == "rejected":
            refused.setdefault(r["rule"], set()).add(r["ts"])
        elif r["event"] == "kill":
            kills.append(r["reason"])
    return fills, refused, kills


def test_paper_command_killed_twice_keeps_every_risk_decision(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "churn.py").write_text(CHURN, encoding="utf-8")
    (tmp_path / "CONFIG" / "brokers").mkdir(parents=True)
    (tmp_path / "CONFIG" / "brokers" / "paper.yaml").write_text(CHURN_CONFIG, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "simbroker.cli", "paper", "churn.py:Churn", "--broker",
            "paper"]
    monkeypatch.chdir(tmp_path)
    cli = ["paper", "churn.py:Churn", "--broker", "paper", "--trade-log"]
    assert main([*cli, "straight.jsonl"]) == 0  # in process: the same command, no start-up
    log = tmp_path / "killed.jsonl"
    for at in (300, 700):  # bars done when the process is killed
        proc = subprocess.Popen([*base, "--trade-log", log.name, "--speed", str(86_400 * 1000)],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.read_bytes().count(b'"event":"bar"') >= at:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    capsys.readouterr()
    assert main([*cli, log.name]) == 0
    assert "Resuming run" in capsys.readouterr().out
    want = decisions(tmp_path / "straight.jsonl")
    assert want[2], "the kill switch trips in the uninterrupted run"
    assert len(want[0]) > 1000
    assert decisions(log) == want
