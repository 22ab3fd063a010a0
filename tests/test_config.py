"""Broker configs: ${VAR} substitution, every error, and secrets that never show."""

from __future__ import annotations

import logging
import pickle
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pytest

from simbroker import ConfigError, RiskLimits
from simbroker.config import (
    AlpacaConfig,
    IBKRConfig,
    PaperConfig,
    Secret,
    load_broker_config,
    substitute_env,
)
from simbroker.tradelog import TradeLog

ROOT = Path(__file__).resolve().parents[1]
# Made up per run: nothing that looks like a credential is kept in the repository.
KEY, SECRET = f"PK{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
ENV = {"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET}


def write(tmp_path: Path, broker: str, text: str) -> Path:
    path = tmp_path / "brokers" / f"{broker}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("broker", ["paper", "ibkr", "alpaca"])
def test_every_committed_example_loads(broker: str) -> None:
    cfg = load_broker_config(broker, path=ROOT / "CONFIG" / "brokers" / f"{broker}.example.yaml",
                             env=ENV)
    assert not cfg.is_live
    assert cfg.risk.is_set


def test_substitution_forms() -> None:
    env = {"A": "x", "N": "7496", "B": "true"}
    assert substitute_env("${A}-${MISSING:-d}", env) == "x-d"
    assert substitute_env("${N}", env) == 7496
    assert substitute_env("${B}", env) is True
    assert substitute_env("port ${N}", env) == "port 7496"
    assert substitute_env("$${A}", env) == "${A}"
    assert substitute_env("${EMPTY:-}", env) == ""
    assert substitute_env({"k": ["${A}", 3]}, env) == {"k": ["x", 3]}
    assert substitute_env({"api_key": "${N}"}, env, keep_strings=frozenset({"api_key"})) == {
        "api_key": "7496"}


def test_missing_variable_names_it_and_the_file_never_a_value(tmp_path: Path) -> None:
    path = write(tmp_path, "alpaca", "api_key: ${ALPACA_API_KEY}\nsecret_key: ${NOPE}\n")
    with pytest.raises(ConfigError) as exc:
        load_broker_config("alpaca", config_dir=tmp_path, env={"ALPACA_API_KEY": KEY})
    msg = str(exc.value)
    assert "NOPE" in msg
    assert str(path) in msg
    assert "secret_key" in msg
    assert KEY not in msg


def test_unknown_key_and_wrong_type_name_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "ibkr", "host: h\nprot: 7497\n")
    with pytest.raises(ConfigError, match=rf"unknown key 'prot' in {path}"):
        load_broker_config("ibkr", config_dir=tmp_path)
    write(tmp_path, "ibkr", "port: '7497x'\n")
    with pytest.raises(ConfigError, match=r"key 'port' in .* must be int, got str"):
        load_broker_config("ibkr", config_dir=tmp_path)
    write(tmp_path, "paper", "allow_short: 1\n")
    with pytest.raises(ConfigError, match=r"key 'allow_short' .* must be bool"):
        load_broker_config("paper", config_dir=tmp_path)
    write(tmp_path, "paper", "cash: true\n")
    with pytest.raises(ConfigError, match=r"key 'cash' .* must be int or float, got bool"):
        load_broker_config("paper", config_dir=tmp_path)
    write(tmp_path, "paper", "risk: {max_lots: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown risk limit.*max_lots"):
        load_broker_config("paper", config_dir=tmp_path)


def test_missing_file_bad_yaml_unknown_broker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config file"):
        load_broker_config("paper", config_dir=tmp_path)
    write(tmp_path, "paper", "cash: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_broker_config("paper", config_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown broker 'ftx'"):
        load_broker_config("ftx", config_dir=tmp_path)
    example = write(tmp_path, "ibkr.example", "port: 7497\n")
    example.rename(tmp_path / "brokers" / "ibkr.example.yaml")
    with pytest.raises(ConfigError, match=r"copy .*ibkr.example.yaml"):
        load_broker_config("ibkr", config_dir=tmp_path)


def test_ibkr_live_port_must_be_declared_and_vice_versa() -> None:
    with pytest.raises(ConfigError, match="port 7496 is a live-trading port"):
        IBKRConfig(port=7496)
    with pytest.raises(ConfigError, match="port 4001 is a live-trading port"):
        IBKRConfig(port=4001)
    with pytest.raises(ConfigError, match="trading_mode is 'live' but port 7497"):
        IBKRConfig(trading_mode="live")
    assert IBKRConfig(port=7496, trading_mode="live").is_live
    assert not IBKRConfig().is_live


def test_alpaca_live_flag() -> None:
    assert AlpacaConfig(api_key=Secret(KEY), secret_key=Secret(SECRET), paper=False).is_live


def test_round_trip_and_defaults() -> None:
    cfg = PaperConfig.from_dict({"cash": 5000, "risk": {"max_order_qty": 3}})
    assert cfg.risk == RiskLimits(max_order_qty=3)
    assert PaperConfig.from_dict(cfg.to_dict()) == cfg
    assert IBKRConfig.from_dict(IBKRConfig().to_dict()) == IBKRConfig()


def test_secrets_never_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "alpaca", "api_key: ${ALPACA_API_KEY}\n"
                                     "secret_key: ${ALPACA_SECRET_KEY}\npaper: true\n")
    cfg = load_broker_config("alpaca", path=path, env=ENV)
    assert isinstance(cfg, AlpacaConfig)
    assert cfg.api_key.reveal() == KEY
    shown = [repr(cfg), str(cfg), f"{cfg.api_key}", str(cfg.to_dict()), repr(cfg.secret_key)]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("simbroker.test").info("config %s key %s", cfg, cfg.secret_key)
    shown.append(caplog.text)
    try:
        raise ConfigError(f"cannot connect with {cfg}")
    except ConfigError as exc:
        shown.append(str(exc))
    log = tmp_path / "t.jsonl"
    with TradeLog(log) as tl:
        tl.write("start", datetime.now(timezone.utc), cash=0.0, api_key=KEY, key=cfg.api_key,
                 nested={"secret_key": SECRET})
    shown.append(log.read_text())
    for text in shown:
        assert KEY not in text
        assert SECRET not in text
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(cfg.api_key)


def test_bad_secret_value(tmp_path: Path) -> None:
    write(tmp_path, "alpaca", "api_key: ''\nsecret_key: x\n")
    with pytest.raises(ConfigError, match=r"key 'api_key' .* must be a non-empty string"):
        load_broker_config("alpaca", config_dir=tmp_path)
