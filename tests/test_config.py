"""Broker configs: ${VAR} substitution, every error, and secrets that never show."""

from __future__ import annotations

import itertools
import logging
import pickle
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ------------------------------------------------------- parsing limits (issue 14)


def laughs(fan_out: int, levels: int = 9) -> str:
    """A billion-laughs file: each level lists ``fan_out`` aliases of the level below."""
    names = "abcdefghijklmnop"[:levels]
    return f"a: &a [{', '.join(['lol'] * fan_out)}]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * fan_out)}]\n"
        for p, c in itertools.pairwise(names))


LAUGHS = laughs(9)


@pytest.mark.parametrize(("text", "match"), [
    (LAUGHS, "more than 64 aliases"),
    # 8 levels of 7 aliases: 56 aliases, under the alias limit, but 7**8 values expanded
    (laughs(7), "more than 10000 values once aliases are expanded"),
    ("a: &a [*a]\n", "recursive alias"),
    ("cash: " + "[" * 10_000 + "]" * 10_000 + "\n", "brackets nested more than 32 deep"),
    ("cash: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n", "nested more than 32 deep"),
    ("cash:\n" + "".join(" " * i + "- \n" for i in range(1, 200)), "nested more than 32"),
    ("".join(" " * i + f"k{i}:\n" for i in range(200)), "nested more than 32 deep"),
], ids=["billion-laughs", "wide-laughs", "recursive", "brackets", "braces", "block-lists",
        "block-maps"])
def test_yaml_bombs_fail_at_once_with_config_error(tmp_path: Path, text: str,
                                                   match: str) -> None:
    path = write(tmp_path, "paper", text)
    with pytest.raises(ConfigError, match=match) as exc:
        load_broker_config("paper", path=path)
    assert str(path) in str(exc.value)


def test_aliases_and_merge_keys_within_limits_still_work(tmp_path: Path) -> None:
    path = write(tmp_path, "paper", "x-base: &base {max_order_qty: 10, max_position: 50}\n"
                                    "cash: 1000\nrisk: {<<: *base, max_position: 70}\n")
    with pytest.raises(ConfigError, match="unknown key 'x-base'"):
        load_broker_config("paper", path=path)  # anchors parse; the unknown key is refused
    path = write(tmp_path, "paper", "risk: &r {max_order_qty: 10}\n")
    assert load_broker_config("paper", path=path).risk == RiskLimits(max_order_qty=10)


def test_size_encoding_and_unreadable_files(tmp_path: Path) -> None:
    from simbroker.config import MAX_CONFIG_BYTES
    path = write(tmp_path, "paper", "# " + "x" * MAX_CONFIG_BYTES + "\ncash: 1\n")
    with pytest.raises(ConfigError, match="larger than 65,536 bytes"):
        load_broker_config("paper", path=path)
    path.write_bytes(b"cash: 1\n# \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(bad byte at offset 10\)"):
        load_broker_config("paper", path=path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_broker_config("paper", path=tmp_path)  # a directory
    with pytest.raises(ConfigError, match="no config file"):
        load_broker_config("paper", path="bad\x00name.yaml")


@pytest.mark.parametrize(("text", "match"), [
    ("cash: " + "9" * 400 + "\n", r"key 'cash' .* integer beyond the float range"),
    ("risk:\n  max_position: " + "9" * 400 + "\n",
     r"key 'risk.max_position' .* integer beyond the float range"),
    ("slippage: {model: fixed_bps, bps: -" + "9" * 400 + "}\n",
     r"key 'slippage.bps' .* beyond the float range"),
    ("cash: " + "9" * 5000 + "\n", "has a value YAML cannot build"),  # past int str limit
    ("cash: .nan\n", r"key 'cash' .* must be a finite number, got nan"),
    ("speed: .inf\n", r"key 'speed' .* must be a finite number, got inf"),
    ("risk: {max_daily_loss: -.inf}\n", r"key 'risk.max_daily_loss' .* finite number"),
    ("cash: 2024-13-45\n", "has a value YAML cannot build: month must be in 1..12"),
    ("1: 2\n", "has a key that is not a string"),
    ("risk: {? [a]: 1}\n", "not valid YAML"),  # unhashable key
    ("risk: {2024-01-01: 1}\n", r"risk .* key that is not a string \(a date\)"),
    ("slippage: {model: nope}\n", r"key 'slippage' is not a valid slippage model: unknown"),
    ("fees: -3\n", r"key 'fees' is not a valid fees model"),
    ("fees: {model: sum, models: [{model: per_share, rate: -1}]}\n", "key 'fees'"),
    ("!!python/object:os.system x\n", "not valid YAML"),
    ("cash: 1\n---\ncash: 2\n", "not valid YAML"),
], ids=lambda v: v[:24] if isinstance(v, str) else None)
def test_unusable_values_are_config_errors_naming_the_key(tmp_path: Path, text: str,
                                                          match: str) -> None:
    path = write(tmp_path, "paper", text)
    with pytest.raises(ConfigError, match=match):
        load_broker_config("paper", path=path)


def test_huge_or_non_finite_numbers_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "paper", "cash: ${CASH}\n")
    for value, match in (("9" * 400, "beyond the float range"), (".nan", "finite number"),
                         ("1e999", "must be int or float, got str")):
        with pytest.raises(ConfigError, match=match):
            load_broker_config("paper", path=path, env={"CASH": value})
    path = write(tmp_path, "ibkr", "client_id: ${ID}\ntimeout: ${T}\n")
    with pytest.raises(ConfigError, match="key 'client_id' must fit in 32 bits"):
        load_broker_config("ibkr", path=path, env={"ID": str(2**40), "T": "1"})
    with pytest.raises(ConfigError, match="key 'timeout' must be > 0 seconds"):
        load_broker_config("ibkr", path=path, env={"ID": "1", "T": "-1"})


def test_alpaca_without_keys_names_the_missing_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "alpaca", "paper: true\n")
    with pytest.raises(ConfigError, match=r"needs the keys api_key, secret_key in .*"
                                          r"ALPACA_API_KEY.*ALPACA_SECRET_KEY") as exc:
        load_broker_config("alpaca", path=path)
    assert exc.value.key == "api_key"
    write(tmp_path, "alpaca", "api_key: ${ALPACA_API_KEY}\n")
    with pytest.raises(ConfigError, match=r"needs the key secret_key in") as exc:
        load_broker_config("alpaca", path=path, env=ENV)
    assert KEY not in str(exc.value)
    with pytest.raises(ConfigError, match="needs the keys api_key, secret_key"):
        AlpacaConfig.from_dict({})
    cfg = AlpacaConfig.from_dict({"api_key": Secret(KEY), "secret_key": Secret(SECRET)})
    assert cfg.api_key.reveal() == KEY


# ------------------------------------------- secrets never echoed, under any key
@pytest.mark.parametrize(("text", "env"), [
    ("data_feed: ${ALPACA_SECRET_KEY}\n", ENV),
    ("risk: {blocked_symbols: 'https://x/?k=${ALPACA_API_KEY}'}\n", ENV),
    ("data_feed: 'k=${ALPACA_API_KEY}&s=${ALPACA_SECRET_KEY}'\n", ENV),
    ("risk: {max_position: '${ALPACA_SECRET_KEY}'}\n", ENV),
    ("risk: {allow_short: '${ALPACA_SECRET_KEY}'}\n", ENV),
    ("bar_poll: ${MY_PASSWORD}\n", {**ENV, "MY_PASSWORD": "-12345678"}),  # typed as an int
    ("bar_poll: ${MY_TOKEN}\n", {**ENV, "MY_TOKEN": "-7.50000"}),  # shown as -7.5
    ("data_feed: ${PLAIN}\n", {"PLAIN": KEY, "ALPACA_API_KEY": KEY,  # a configured secret
                               "ALPACA_SECRET_KEY": SECRET}),
    ("data_feed: ${ALPACA_SECRET_KEY}\n", {**ENV, "ALPACA_SECRET_KEY": "it's\\a\tkey"}),
    ("data_feed: ${API_PIN}\n", {**ENV, "API_PIN": "abc"}),  # short: hidden as a word
], ids=lambda v: v[:24] if isinstance(v, str) else "env")
def test_secrets_never_echoed_whatever_key_they_sit_under(tmp_path: Path, text: str,
                                                          env: dict[str, str]) -> None:
    head = "api_key: ${ALPACA_API_KEY}\nsecret_key: ${ALPACA_SECRET_KEY}\n"
    path = write(tmp_path, "alpaca", head + text)
    with pytest.raises(ConfigError) as exc:
        load_broker_config("alpaca", path=path, env=env)
    msg = str(exc.value)
    assert "***" in msg
    hidden = [v for k, v in env.items() if k != "PLAIN"]
    for value in hidden:
        for form in (value, repr(value)[1:-1], value.lstrip("-").rstrip("0")):
            assert form not in msg or len(form) < 4, msg
    assert exc.value.__cause__ is None
    assert exc.value.__suppress_context__


def test_short_secrets_are_hidden_as_words_only(tmp_path: Path) -> None:
    path = write(tmp_path, "alpaca", "api_key: k\nsecret_key: s\ndata_feed: k\n")
    with pytest.raises(ConfigError) as exc:
        load_broker_config("alpaca", path=path)
    assert str(exc.value).startswith("key 'data_feed' must be 'iex' or 'sip', got '***'")


def test_secret_values_in_from_dict_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as exc:
        AlpacaConfig.from_dict({"api_key": KEY, "secret_key": SECRET, "data_feed": SECRET})
    assert SECRET not in str(exc.value)
    assert "***" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        PaperConfig.from_dict({"risk": {"max_order_qty": Secret(SECRET)}})
    assert SECRET not in str(exc.value)


# The regular expression the substitution used before it became a linear scan: the oracle.
_OLD_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def _old_substitute(text: str, env: dict[str, str]) -> str:
    def repl(m: Any) -> str:
        if m.group(0) == "$${":
            return "${"
        if m.group(1) in env:
            return env[m.group(1)]
        if m.group(2) is not None:
            return str(m.group(2))
        raise ConfigError("unset")
    return _OLD_VAR.sub(repl, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["$", "{", "}", "${", "$${", ":-", "A", "B_1", "x", "\n",
                                 " ", "9", "${A}", "${B_1:-d}", "${C:-"]), max_size=14)
       .map("".join))
def test_substitution_matches_the_regular_expression_it_replaced(text: str) -> None:
    env = {"A": "a-value", "B_1": "b"}
    try:
        expected: str | None = _old_substitute(text, env)
    except ConfigError:
        expected = None
    try:
        got = substitute_env(text, env, keep_strings=frozenset({""}))
    except ConfigError:
        got = None
    assert got == expected


def test_unclosed_defaults_are_read_in_linear_time(tmp_path: Path) -> None:
    path = write(tmp_path, "paper", 'data: "' + "${A:-" * 10_000 + '"\n')
    assert load_broker_config("paper", path=path, env={}).data == "${A:-" * 10_000  # type: ignore[union-attr]


def test_a_secret_loaded_under_a_plain_key_is_used_but_never_displayed(tmp_path: Path) -> None:
    path = write(tmp_path, "paper", "data: ${DATA_TOKEN}\ntrade_log: 'logs/${DATA_TOKEN}.jsonl'\n")
    token = f"tok-{secrets.token_hex(8)}"
    cfg = load_broker_config("paper", path=path, env={"DATA_TOKEN": token})
    assert isinstance(cfg, PaperConfig)
    assert cfg.data == token  # used as given
    assert cfg.trade_log == f"logs/{token}.jsonl"
    for shown in (repr(cfg), str(cfg), str(cfg.to_dict())):
        assert token not in shown
        assert "***" in shown
    assert cfg.to_dict()["trade_log"] == "logs/***.jsonl"
