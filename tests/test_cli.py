"""The simbroker command, run as a user would: in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import simbroker

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "simbroker" / "sample_data" / "sample_daily.csv"
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
    page = (tmp_path / "res" / "report.html").read_text()
    assert "<svg" in page
    assert "Monthly returns" in page
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
    naive = run("data", "validate", str(bad))
    assert naive.returncode == 2
    assert "naive" in naive.stderr
    assert "--tz" in naive.stderr
    out = run("data", "validate", str(bad), "--tz", "UTC")
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


# --------------------------------------------------------------------------- habits
STRATEGY_WITH_PARAMS = '''
class WithParams:
    def __init__(self, fast: int, slow: int = 50, scale: float = 1.0, loud: bool = False,
                 tag: str | None = None):
        self.fast, self.slow, self.scale, self.loud, self.tag = fast, slow, scale, loud, tag

    def on_bar(self, broker, history):
        if history.t == 0:
            assert (type(self.fast), type(self.scale), self.loud, self.tag) == (
                int, float, True, None), (self.fast, self.scale, self.loud, self.tag)
            broker.submit_order(history.symbols[0], "buy", self.fast)
        if history.t == self.slow:
            return {}["no such key"]
'''


@pytest.fixture
def with_params(tmp_path: Path) -> str:
    path = tmp_path / "with_params.py"
    path.write_text(STRATEGY_WITH_PARAMS)
    return f"{path}:WithParams"


def test_params_are_typed_from_the_strategys_init(with_params: str, tmp_path: Path) -> None:
    out = run("backtest", with_params, "--data", str(SAMPLE), "--param", "fast=3",
              "--param", "slow=100000", "--param", "scale=2", "--param", "loud=yes",
              "--param", "tag=none")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^Fills +1$", out.stdout, re.M)
    missing = run("backtest", with_params, "--data", str(SAMPLE))
    assert missing.returncode == 2
    assert "WithParams needs --param fast=VALUE" in missing.stderr
    wrong = run("backtest", with_params, "--data", str(SAMPLE), "--param", "fast=x")
    assert "takes fast as int" in wrong.stderr
    unknown = run("backtest", with_params, "--data", str(SAMPLE), "--param", "fats=3")
    assert "no parameter 'fats'" in unknown.stderr
    assert "Traceback" not in missing.stderr + wrong.stderr + unknown.stderr


def test_a_strategy_bug_shows_its_own_line_and_keeps_the_run(with_params: str,
                                                            tmp_path: Path) -> None:
    res = tmp_path / "res"
    out = run("backtest", with_params, "--data", str(SAMPLE), "--param", "fast=3",
              "--param", "slow=20", "--param", "loud=1", "--out", str(res))
    assert out.returncode == 1
    err = out.stderr
    # The user's frame is the first of the traceback; simbroker's own are left out.
    frames = re.findall(r'^  File "([^"]+)", line (\d+)', err, re.M)
    assert frames
    assert frames[0][0].endswith("with_params.py")
    assert all("simbroker" not in Path(f).parts for f, _ in frames)
    assert "KeyError: 'no such key'" in err
    assert re.search(r"strategy WithParams raised KeyError: 'no such key' at bar 20 "
                     r"\(2008-01-31T00:00:00\+00:00\), in .*with_params\.py:\d+", err)
    saved = simbroker.load_result(res)
    assert len(saved.equity) == 21
    assert saved.config["stopped"]["bar"] == 20
    assert simbroker.read_trade_log(res / "tradelog.jsonl")[-1]["event"] == "strategy_error"
    again = run("backtest", with_params, "--data", str(SAMPLE), "--param", "fast=3",
                "--traceback", "--param", "loud=1", "--out", str(res))
    # --traceback works after the subcommand too: the full trace, not one line.
    assert again.returncode == 1
    assert "Traceback (most recent call last)" in again.stderr
    assert "CLIError: --out" in again.stderr
    assert "not empty" in again.stderr


def test_out_refuses_a_used_folder_unless_overwrite(tmp_path: Path) -> None:
    res = tmp_path / "res"
    first = run("backtest", SMA, "--data", str(SAMPLE), "--out", str(res))
    assert first.returncode == 0, first.stderr
    n = len(simbroker.read_trade_log(res / "tradelog.jsonl"))
    refused = run("backtest", SMA, "--data", str(SAMPLE), "--out", str(res))
    assert refused.returncode == 2
    again = run("backtest", SMA, "--data", str(SAMPLE), "--out", str(res), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert len(simbroker.read_trade_log(res / "tradelog.jsonl")) == n  # not appended


def test_start_end_version_and_a_closed_pipe(tmp_path: Path) -> None:
    out = run("backtest", SMA, "--data", str(SAMPLE), "--start", "2010-01-01", "--end",
              "2010-12-31", "--out", str(tmp_path / "res"))
    assert out.returncode == 0, out.stderr
    saved = simbroker.load_result(tmp_path / "res")
    assert saved.equity.index[0] >= pd.Timestamp("2010-01-01", tz="UTC")
    assert saved.equity.index[-1].date() == pd.Timestamp("2010-12-31").date()
    version = run("--version")
    assert version.stdout.strip() == f"simbroker {simbroker.__version__}"
    assert "The ``simbroker`` command" not in run("--help").stdout
    shell = subprocess.run(
        f"{sys.executable} -m simbroker.cli tradelog show {tmp_path / 'res' / 'tradelog.jsonl'}"
        " | head -1", shell=True, capture_output=True, text=True, timeout=120, check=False)
    assert shell.stdout.count("\n") == 1
    assert shell.stderr == ""
