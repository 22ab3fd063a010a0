"""The simbroker command, run as a user would: in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import simbroker

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample_daily.csv"
SMA = f"{ROOT / 'examples' / 'sma_crossover.py'}:SmaCrossover"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simbroker.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("args", [[], ["backtest"], ["data"], ["data", "validate"],
                                  ["tradelog"], ["tradelog", "show"], ["tradelog", "replay"]])
def test_help_on_every_command(args: list[str]) -> None:
    out = run(*args, "--help")
    assert out.returncode == 0, out.stderr
    assert "usage: simbroker" in out.stdout


def test_backtest_writes_results_and_a_replayable_log(tmp_path: Path) -> None:
    out = run("backtest", SMA, "--data", str(SAMPLE), "--slippage-bps", "7", "--out",
              str(tmp_path / "res"), "--report")
    assert out.returncode == 0, out.stderr
    assert "Sharpe" in out.stdout
    assert "FixedBps(bps=7.0)" in out.stdout
    saved = simbroker.load_result(tmp_path / "res")
    assert saved.config["slippage"] == "FixedBps(bps=7.0)"
    assert re.search(rf"^Fills +{saved.stats['n_fills']:,}$", out.stdout, re.M)
    assert "data:image/png" in (tmp_path / "res" / "report.html").read_text()
    replay = run("tradelog", "replay", str(tmp_path / "res" / "tradelog.jsonl"))
    assert replay.returncode == 0, replay.stderr
    assert "positions:" in replay.stdout
    show = run("tradelog", "show", str(tmp_path / "res" / "tradelog.jsonl"), "--last", "2")
    assert len(show.stdout.splitlines()) == 2


def test_report_needs_a_results_folder() -> None:
    out = run("backtest", SMA, "--data", str(SAMPLE), "--report")
    assert out.returncode == 2
    assert "add --out DIR" in out.stderr
    assert "Traceback" not in out.stderr


def test_strategy_by_module_name(tmp_path: Path) -> None:
    (tmp_path / "mystrat.py").write_text(
        "def on_bar(broker, history):\n"
        "    if history.t == 0:\n"
        "        broker.submit_order(history.symbols[0], 'buy', 1)\n")
    out = run("backtest", "mystrat:on_bar", "--data", str(SAMPLE), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Fills" in out.stdout


def test_data_validate_ok_and_bad(tmp_path: Path) -> None:
    ok = run("data", "validate", str(SAMPLE))
    assert ok.returncode == 0
    assert "5 symbols" in ok.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,symbol,open,high,low,close,volume\n"
                   "2024-01-02,X,10,9,8,9.5,100\n")
    out = run("data", "validate", str(bad))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1  # one line, no traceback
    assert "X" in out.stderr
    assert "high" in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backtest", "nope", "--data", str(SAMPLE)], "must look like module:Class"),
        (["backtest", "missing.py:S", "--data", str(SAMPLE)], "does not exist"),
        (["backtest", "no_such_module_xyz:S", "--data", str(SAMPLE)], "cannot import module"),
        (["backtest", SMA, "--data", "nowhere.csv"], "nowhere.csv"),
        (["tradelog", "replay", "nowhere.jsonl"], "does not exist"),
    ],
)
def test_errors_are_one_line(args: list[str], message: str) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert message in out.stderr
    assert out.stderr.startswith("simbroker: error:")


def test_installed_entry_point() -> None:
    import shutil

    exe = shutil.which("simbroker")
    if exe is None:
        pytest.skip("the simbroker script is not on PATH in this environment")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
