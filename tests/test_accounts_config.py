"""The account model, volume cap and financing reach every paper broker: the paper
config, the CLI (``backtest`` and ``paper``), the real-time runner and the shadow."""

from __future__ import annotations

from pathlib import Path

import pytest

from simbroker.accounts import CashAccount, MarginAccount, account_model
from simbroker.cli import main
from simbroker.config import PaperConfig, load_broker_config
from simbroker.errors import ConfigError
from simbroker.tradelog import read_trade_log

ROOT = Path(__file__).resolve().parents[1]
SMA = f"{ROOT / 'examples' / 'sma_crossover.py'}:SmaCrossover"


def write_config(folder: Path, text: str) -> Path:
    (folder / "brokers").mkdir(parents=True, exist_ok=True)
    path = folder / "brokers" / "paper.yaml"
    path.write_text(text)
    return path


def test_the_paper_config_takes_account_and_max_volume_share(tmp_path: Path) -> None:
    write_config(tmp_path, "account: {model: margin, maintenance: 0.3, liquidate: true}\n"
                           "max_volume_share: 0.025\n")
    cfg = load_broker_config("paper", config_dir=tmp_path)
    assert isinstance(cfg, PaperConfig)
    assert cfg.max_volume_share == 0.025
    acct = cfg.account_model()
    assert isinstance(acct, MarginAccount)
    assert (acct.maintenance, acct.liquidate, acct.cancel_on_call) == (0.3, True, True)
    assert cfg.account_model() is not acct  # a new one for each broker
    assert PaperConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(PaperConfig(account="cash").account_model(), CashAccount)
    assert PaperConfig().account_model() is None


@pytest.mark.parametrize(("text", "key", "words"), [
    ("account: savings\n", "account", "savings"),
    ("account: {model: margin, maintenence: 0.3}\n", "account", "maintenence"),
    ("account: {model: cash, settlement_days: -1}\n", "account", "settlement_days"),
    ("account: {maintenance: 0.3}\n", "account", "'model'"),
    ("account: [margin]\n", "account", "must be"),
    ("max_volume_share: 0\n", "max_volume_share", "(0, 1]"),
    ("max_volume_share: 1.5\n", "max_volume_share", "(0, 1]"),
    ("max_volume_share: lots\n", "max_volume_share", "must be"),
])
def test_a_bad_account_or_volume_share_names_the_key(tmp_path: Path, text: str, key: str,
                                                     words: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_broker_config("paper", config_dir=tmp_path)
    assert err.value.key == key
    assert words in str(err.value)
    assert str(path) in str(err.value)


def test_the_example_config_documents_the_keys() -> None:
    text = (ROOT / "CONFIG" / "brokers" / "paper.example.yaml").read_text()
    for key in ("account:", "max_volume_share:", "borrow:", "interest:"):
        assert key in text


def test_account_model_takes_a_mapping() -> None:
    acct = account_model({"model": "cash", "good_faith": "record"})
    assert isinstance(acct, CashAccount)
    assert acct.good_faith == "record"
    assert account_model({"model": "unconstrained"}) is None
    assert account_model(acct.spec()).spec() == acct.spec()  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown margin account parameter 'x'"):
        account_model({"model": "margin", "x": 1})


def test_backtest_takes_account_and_max_volume_share(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["backtest", SMA, "--data", "sample", "--end", "2009-01-01", "--account",
                 '{"model": "cash", "good_faith": "record"}', "--max-volume-share", "0.5",
                 "--out", str(out)])
    assert code == 0
    records = read_trade_log(out / "tradelog.jsonl")
    account = [r for r in records if r["event"] == "account"]
    assert [(r["model"], r["params"]["good_faith"]) for r in account] == [("cash", "record")]
    with pytest.raises(SystemExit):
        main(["backtest", SMA, "--data", "sample", "--account", "savings"])
    assert "savings" in capsys.readouterr().err


def test_paper_resumes_with_the_logged_account_and_refuses_another(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "t.jsonl"
    base = ["paper", SMA, "--broker", "paper", "--config-dir", str(tmp_path / "none"),
            "--trade-log", str(log), "--max-bars", "150"]
    assert main([*base, "--account", "margin", "--max-volume-share", "0.5"]) == 0
    assert main(base) == 0  # no --account: the log's margin account goes on
    models = [r["model"] for r in read_trade_log(log) if r["event"] == "account"]
    assert models == ["margin", "margin"]
    capsys.readouterr()
    assert main([*base, "--account", "cash"]) == 2
    err = capsys.readouterr().err
    assert str(log) in err
    assert "would change its rules" in err


def test_paper_reads_the_config_account(tmp_path: Path) -> None:
    write_config(tmp_path, "account: cash\nmax_volume_share: 0.5\n")
    log = tmp_path / "t.jsonl"
    assert main(["paper", SMA, "--broker", "paper", "--config-dir", str(tmp_path),
                 "--trade-log", str(log), "--max-bars", "100"]) == 0
    assert [r["model"] for r in read_trade_log(log) if r["event"] == "account"] == ["cash"]
