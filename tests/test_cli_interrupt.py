"""The command at its edges: Ctrl-C during start-up, and bad config or data files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import simbroker.cli as cli
import simbroker.cli._data as cli_data

WAITING_STRATEGY = """\
import os, time
from pathlib import Path
Path(os.environ["READY_FILE"]).write_text("ready")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:  # start-up that takes a while (importing, connecting)
    time.sleep(0.01)


class Idle:
    def on_bar(self, ctx):
        pass
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child needs POSIX")
def test_ctrl_c_during_start_up_prints_one_line_and_exits_130(tmp_path: Path) -> None:
    strategy = tmp_path / "waiting.py"
    strategy.write_text(WAITING_STRATEGY)
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-m", "simbroker.cli", "paper", f"{strategy}:Idle", "--broker",
         "paper", "--config-dir", str(tmp_path), "--trade-log", str(tmp_path / "t.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "READY_FILE": str(ready)})
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.exists(), child.communicate(timeout=10)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 130, err
    assert err == "simbroker: interrupted\n"
    assert "Traceback" not in out


def test_keyboard_interrupt_while_loading_data(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_data, "load_bars", interrupted)
    assert cli.main(["data", "validate", str(tmp_path / "x.csv")]) == 130
    assert capsys.readouterr().err == "simbroker: interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        cli.main(["--traceback", "data", "validate", str(tmp_path / "x.csv")])


@pytest.mark.parametrize(("text", "message"), [
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi",
                                                                    strict=True)),
     "more than 64 aliases"),
    ("cash: " + "[" * 10_000 + "]" * 10_000 + "\n", "brackets nested more than 32 deep"),
    ("cash: " + "9" * 400 + "\n", "key 'cash' in .* is an integer beyond the float range"),
], ids=["billion-laughs", "brackets", "huge-int"])
def test_a_bad_config_is_one_line_on_the_command_line(tmp_path: Path, text: str, message: str,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    config = tmp_path / "paper.yaml"
    config.write_text(text)
    code = cli.main(["paper", "x.py:S", "--broker", "paper", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("simbroker: error: ")
    assert re.search(message, err)


def test_an_ambiguous_bar_file_is_one_line_on_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text("timestamp,symbol,open,high,low,Close,close,volume\n"
                    "2024-01-02,A,10,11,9,10.5,99,100\n")
    assert cli.main(["data", "validate", str(bars)]) == 2
    assert capsys.readouterr().err == (f"simbroker: error: ambiguous columns in {bars}: "
                                       "'Close' and 'close' both mean 'close'\n")
