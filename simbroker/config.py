"""Broker configuration: ``CONFIG/brokers/{broker}.yaml`` with ``${VAR}`` secrets.

A config file is YAML. String values may reference the environment as ``${VAR}`` or
``${VAR:-default}`` (``$${`` writes a literal ``${``); substitution happens on the parsed
values, never on the raw text, so an environment value cannot inject YAML. A missing
variable is a :class:`~simbroker.errors.ConfigError` naming the variable and the file,
never a value. Keys are checked: an unknown key or a wrong type names the key and file.

Secrets (API keys) are held in :class:`Secret`, which shows ``***`` in ``repr``, ``str``,
f-strings, logs, exceptions and the trade log; only :meth:`Secret.reveal` gives the value;
which values count as secret and how errors are scrubbed of them is in
:mod:`simbroker._config_secrets`. YAML is parsed with limits (size, depth, aliases,
expanded values; :mod:`simbroker._config_yaml`), so a hostile or broken file fails at once
with a ``ConfigError``.

The real files are git-ignored; ``CONFIG/brokers/*.example.yaml`` document every key.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from simbroker._config_secrets import (
    Secret,
    env_secrets,
    redacted,
    scrubbed,
    scrubbed_value,
    secret_values,
    substitute_env,
)
from simbroker._config_yaml import (
    MAX_ALIASES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    load_yaml,
    read_text,
)
from simbroker._data_time import check_tz
from simbroker.accounts import Account, account_model
from simbroker.errors import ConfigError
from simbroker.financing import BorrowModel, InterestModel
from simbroker.models.fees import fee_model, fee_model_from_dict
from simbroker.models.slippage import slippage_model, slippage_model_from_dict
from simbroker.risk import RiskLimits

__all__ = [
    "MAX_ALIASES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "AlpacaConfig",
    "BrokerConfig",
    "IBKRConfig",
    "PaperConfig",
    "Secret",
    "load_broker_config",
    "substitute_env",
]


IBKR_LIVE_PORTS = frozenset({7496, 4001})  # TWS live, IB Gateway live


IBKR_PAPER_PORTS = frozenset({7497, 4002})  # TWS paper, IB Gateway paper


_FLOAT_MAX = sys.float_info.max


def _type_name(t: tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in t)


def _check_values(value: Any, key: str, where: str, path: str | None, count: list[int],
                  depth: int) -> None:
    """Refuse what no key accepts: deep or huge trees, non-string keys, unusable numbers.

    ``count`` is a one-element running total of values seen, shared by the recursion.
    """
    count[0] += 1
    name = key or "the config"
    if depth > MAX_DEPTH or count[0] > MAX_NODES:
        raise ConfigError(f"{name}{where} is nested more than {MAX_DEPTH} deep or holds more "
                          f"than {MAX_NODES} values", key=key or None, path=path)
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_FLOAT_MAX <= value <= _FLOAT_MAX:  # int-float comparison is exact
            raise ConfigError(f"key {name!r}{where} is an integer beyond the float range "
                              f"(about 1.8e308)", key=key or None, path=path)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"key {name!r}{where} must be a finite number, got {value!r} "
                              f"(leave a limit out or set it to null to switch it off)",
                              key=key or None, path=path)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{name}{where} has a key that is not a string (a "
                                  f"{type(k).__name__}); quote it", key=key or None, path=path)
            _check_values(v, f"{key}.{k}" if key else k, where, path, count, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_values(v, f"{key}[{i}]", where, path, count, depth + 1)


class _Config:
    """Shared loading: unknown keys and wrong types name the key and the file."""

    broker: ClassVar[str] = ""
    _types: ClassVar[dict[str, tuple[type, ...]]] = {}
    _secrets: ClassVar[frozenset[str]] = frozenset()
    _env_hint: ClassVar[dict[str, str]] = {}  # required key -> the usual env variable

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str | None = None) -> Any:
        """Build from a mapping; any problem is a ``ConfigError`` naming the key.

        Unknown or missing keys, wrong types, mapping keys that are not strings, integers
        beyond the float range and non-finite floats are refused. No error shows a
        secret (a :class:`Secret`, or the value of ``api_key``/``secret_key``).
        """
        return cls._from_dict(data, path=path, hide=())

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], *, path: str | None,
                   hide: Iterable[str]) -> Any:
        hidden = set(hide)
        if isinstance(data, Mapping):
            hidden.update(secret_values(data, cls._secrets))
        try:
            config = cls._build(data, path=path)
        except ConfigError as exc:
            raise redacted(exc, hidden) from None
        # A secret given to a plain key (data: ${SECRET_TOKEN}) is used as given, but the
        # repr and to_dict, which are for display and logs, show it as ***.
        object.__setattr__(config, "_hidden_values", frozenset(hidden))
        return config

    @classmethod
    def _build(cls, data: Mapping[str, Any], *, path: str | None) -> Any:
        where = f" in {path}" if path else ""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a {cls.broker} config must be a mapping{where}, got "
                              f"{type(data).__name__}", path=path)
        _check_values(data, "", where, path, [0], 0)
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        defaults = {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r}{where}; known keys for {cls.broker}: "
                              f"{', '.join(sorted(known))}", key=unknown[0], path=path)
        required = [f.name for f in fields(cls)  # type: ignore[arg-type]
                    if f.default is MISSING and f.default_factory is MISSING]
        absent = [name for name in required if name not in data]
        if absent:
            hint = "; ".join(f"{name}: ${{{cls._env_hint.get(name, name.upper())}}}"
                             for name in absent)
            raise ConfigError(f"the {cls.broker} config needs the key"
                              f"{'s' if len(absent) > 1 else ''} {', '.join(absent)}{where} "
                              f"(e.g. {hint})", key=absent[0], path=path)
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "risk":
                if value is None:
                    value = {}
                if not isinstance(value, Mapping):
                    raise ConfigError(f"key 'risk'{where} must be a mapping of limits",
                                      key="risk", path=path)
                try:
                    kwargs[name] = RiskLimits.from_dict(value, source=path)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise ConfigError(f"key 'risk'{where} is not a valid set of limits: {exc}",
                                      key="risk", path=path) from None
                continue
            expected = cls._types.get(name)
            if value is None and defaults.get(name, ...) is None:
                kwargs[name] = None
                continue
            if name in cls._secrets:
                if isinstance(value, Secret) and value:
                    kwargs[name] = value
                    continue
                if not isinstance(value, str) or not value:
                    raise ConfigError(f"key {name!r}{where} must be a non-empty string "
                                      f"(use ${{VAR}} to read it from the environment)",
                                      key=name, path=path)
                value = Secret(value)
            elif expected is not None and not (
                isinstance(value, expected) and not (isinstance(value, bool) and bool not in
                                                     expected)
            ):
                raise ConfigError(f"key {name!r}{where} must be {_type_name(expected)}, got "
                                  f"{type(value).__name__}", key=name, path=path)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            if path and exc.path is None:
                raise ConfigError(f"{exc}{where}", key=exc.key, path=path) from None
            raise

    def to_dict(self) -> dict[str, Any]:
        """Plain values; secrets appear as ``"***"`` (this is for display and logs).

        That includes a secret the file gave to a plain key (``data: ${SECRET_TOKEN}``).
        """
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, RiskLimits) else (
                "***" if isinstance(v, Secret) else v)
        hidden: frozenset[str] = getattr(self, "_hidden_values", frozenset())
        return scrubbed_value(out, hidden) if hidden else out

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}"
                          for f in fields(self))  # type: ignore[arg-type]
        text = f"{type(self).__name__}({shown})"
        hidden: frozenset[str] = getattr(self, "_hidden_values", frozenset())
        return scrubbed(text, hidden) if hidden else text

    @property
    def is_live(self) -> bool:
        """True when this config trades real money."""
        return False


@dataclass(frozen=True, kw_only=True, repr=False)
class PaperConfig(_Config):
    """The paper broker replaying bars (``CONFIG/brokers/paper.yaml``)."""

    broker: ClassVar[str] = "paper"
    _types: ClassVar[dict[str, tuple[type, ...]]] = {
        "cash": (int, float), "slippage": (int, float, dict), "fees": (int, float, str, dict),
        "allow_short": (bool,), "data": (str,), "trade_log": (str,), "speed": (int, float),
        "data_tz": (str,), "borrow": (dict,), "interest": (dict,),
        "max_volume_share": (int, float), "account": (str, dict),
    }

    cash: float = 100_000.0
    slippage: float | dict[str, Any] = 5.0
    #: bps of notional, a model mapping, or a published schedule's name (``ibkr_fixed``).
    fees: float | str | dict[str, Any] = 1.0
    allow_short: bool = True
    data: str | None = None
    #: The zone ``data``'s naive timestamps are written in (``load_bars(tz=...)``), set
    #: once here instead of ``--tz`` on every run; ``--tz`` wins.
    data_tz: str | None = None
    trade_log: str | None = None
    speed: float = 0.0
    #: Borrow fees and hard-to-borrow list (:meth:`BorrowModel.from_dict
    #: <simbroker.financing.BorrowModel.from_dict>` keys: ``rate, rates, hard_to_borrow,
    #: located, day_count, csv``) and interest (``debit, credit, day_count``).
    borrow: dict[str, Any] | None = None
    interest: dict[str, Any] | None = None
    #: Partial fills by volume: a fill takes at most this share of its bar's volume, in
    #: ``(0, 1]`` (``PaperBroker(max_volume_share=...)``); absent: orders fill whole.
    max_volume_share: float | None = None
    #: The account model: ``cash``, ``margin`` or a mapping ``{model: margin,
    #: maintenance: 0.3, liquidate: true, ...}`` of :class:`~simbroker.accounts.CashAccount`
    #: / :class:`~simbroker.accounts.MarginAccount` parameters; absent: unconstrained.
    account: str | dict[str, Any] | None = None
    risk: RiskLimits = field(default_factory=RiskLimits)

    def account_model(self) -> Account | None:
        """A new account object for ``account`` (``None`` when unconstrained)."""
        return account_model(self.account)

    def financing(self) -> tuple[BorrowModel | None, InterestModel | None]:
        """The ``borrow`` and ``interest`` models this config names (``None`` when absent)."""
        return (None if self.borrow is None else BorrowModel.from_dict(self.borrow),
                None if self.interest is None else InterestModel.from_dict(self.interest))

    def __post_init__(self) -> None:
        for name in ("borrow", "interest"):  # a bad model is a config error at load
            spec = getattr(self, name)
            try:
                if spec is not None:
                    (BorrowModel if name == "borrow" else InterestModel).from_dict(spec)
            except (ConfigError, TypeError, ValueError) as exc:
                raise ConfigError(f"key {name!r} is not a valid {name} model: {exc}",
                                  key=name) from None
        try:
            check_tz(self.data_tz)
        except ValueError as exc:
            raise ConfigError(f"key 'data_tz': {exc}", key="data_tz") from None
        share = self.max_volume_share
        if share is not None and not (math.isfinite(share) and 0 < share <= 1):
            raise ConfigError(f"key 'max_volume_share' must be a share of the bar's volume "
                              f"in (0, 1] (e.g. 0.025), got {share!r}", key="max_volume_share")
        try:
            self.account_model()
        except ValueError as exc:
            raise ConfigError(f"key 'account' is not a valid account: {exc}",
                              key="account") from None
        if not math.isfinite(self.cash) or self.cash < 0:
            raise ConfigError(f"key 'cash' must be a finite number >= 0, got {self.cash!r}",
                              key="cash")
        if not math.isfinite(self.speed) or self.speed < 0:
            raise ConfigError(f"key 'speed' must be a finite number >= 0 (0 = as fast as "
                              f"possible), got {self.speed!r}", key="speed")
        for name, scalar, from_dict in (("slippage", slippage_model, slippage_model_from_dict),
                                        ("fees", fee_model, fee_model_from_dict)):
            value = getattr(self, name)
            try:  # built here so that a bad model is a config error, not a failed run
                from_dict(value) if isinstance(value, dict) else scalar(value)
            except (ValueError, TypeError, OverflowError) as exc:
                raise ConfigError(f"key {name!r} is not a valid {name} model: {exc}",
                                  key=name) from None


@dataclass(frozen=True, kw_only=True, repr=False)
class IBKRConfig(_Config):
    """Interactive Brokers TWS / IB Gateway (``CONFIG/brokers/ibkr.yaml``).

    ``port`` 7497 (TWS) or 4002 (Gateway) is paper; 7496 or 4001 is live. A live port
    must be declared with ``trading_mode: live``, and ``trading_mode: live`` must use
    a live port: a config cannot trade real money by accident.
    """

    broker: ClassVar[str] = "ibkr"
    _types: ClassVar[dict[str, tuple[type, ...]]] = {
        "host": (str,), "port": (int,), "client_id": (int,), "account": (str,),
        "trading_mode": (str,), "timeout": (int, float), "currency": (str,),
        "exchange": (str,), "trade_log": (str,), "bar_poll": (int, float),
    }

    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 1
    account: str | None = None
    trading_mode: str = "paper"
    timeout: float = 10.0
    currency: str = "USD"
    exchange: str = "SMART"
    bar_poll: float = 5.0
    trade_log: str | None = None
    risk: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bar_poll) and self.bar_poll > 0):
            raise ConfigError(f"key 'bar_poll' must be > 0 seconds, got {self.bar_poll!r}",
                              key="bar_poll")
        if self.account == "":  # ${IB_ACCOUNT:-} left empty: the only account
            object.__setattr__(self, "account", None)
        if self.trading_mode not in ("paper", "live"):
            raise ConfigError(f"key 'trading_mode' must be 'paper' or 'live', got "
                              f"{self.trading_mode!r}", key="trading_mode")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"key 'timeout' must be > 0 seconds, got {self.timeout!r}",
                              key="timeout")
        if not -2**31 <= self.client_id < 2**31:  # the API sends it as a 32-bit int
            raise ConfigError(f"key 'client_id' must fit in 32 bits, got {self.client_id!r}",
                              key="client_id")
        if not 0 < self.port < 65536:
            raise ConfigError(f"key 'port' must be a TCP port, got {self.port!r}", key="port")
        if self.port in IBKR_LIVE_PORTS and self.trading_mode != "live":
            raise ConfigError(f"port {self.port} is a live-trading port but trading_mode is "
                              f"'paper'; use 7497 (TWS) or 4002 (Gateway) for paper, or say "
                              f"trading_mode: live", key="port")
        if self.trading_mode == "live" and self.port in IBKR_PAPER_PORTS:
            raise ConfigError(f"trading_mode is 'live' but port {self.port} is a paper port",
                              key="trading_mode")

    @property
    def is_live(self) -> bool:
        """True for ``trading_mode: live``."""
        return self.trading_mode == "live"


@dataclass(frozen=True, kw_only=True, repr=False)
class AlpacaConfig(_Config):
    """Alpaca (``CONFIG/brokers/alpaca.yaml``); keys come from the environment."""

    broker: ClassVar[str] = "alpaca"
    _types: ClassVar[dict[str, tuple[type, ...]]] = {
        "paper": (bool,), "data_feed": (str,), "trade_log": (str,), "url_override": (str,),
        "stream_url": (str,), "data_url": (str,), "bar_poll": (int, float),
    }
    _secrets: ClassVar[frozenset[str]] = frozenset({"api_key", "secret_key"})
    _env_hint: ClassVar[dict[str, str]] = {"api_key": "ALPACA_API_KEY",
                                           "secret_key": "ALPACA_SECRET_KEY"}

    api_key: Secret
    secret_key: Secret
    paper: bool = True
    data_feed: str = "iex"
    url_override: str | None = None
    stream_url: str | None = None
    data_url: str | None = None
    bar_poll: float = 5.0
    trade_log: str | None = None
    risk: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bar_poll) and self.bar_poll > 0):
            raise ConfigError(f"key 'bar_poll' must be > 0 seconds, got {self.bar_poll!r}",
                              key="bar_poll")
        for name in ("api_key", "secret_key"):
            if not isinstance(getattr(self, name), Secret):
                object.__setattr__(self, name, Secret(str(getattr(self, name))))
        if self.data_feed not in ("iex", "sip"):
            raise ConfigError(f"key 'data_feed' must be 'iex' or 'sip', got {self.data_feed!r}",
                              key="data_feed")

    @property
    def is_live(self) -> bool:
        """True for ``paper: false``."""
        return not self.paper


BrokerConfig = PaperConfig | IBKRConfig | AlpacaConfig


_CLASSES: dict[str, type[_Config]] = {"paper": PaperConfig, "ibkr": IBKRConfig,
                                      "alpaca": AlpacaConfig}


def load_broker_config(broker: str, *, config_dir: str | Path = "CONFIG",
                       path: str | Path | None = None,
                       env: Mapping[str, str] | None = None) -> BrokerConfig:
    """Load ``{config_dir}/brokers/{broker}.yaml`` (or ``path``) for ``paper``/``ibkr``/``alpaca``.

    ``${VAR}`` and ``${VAR:-default}`` are taken from ``env`` (default ``os.environ``).
    A missing file, bad YAML, unknown key, wrong type or unset variable is a
    :class:`~simbroker.errors.ConfigError` naming the file and the key or variable.
    """
    cls = _CLASSES.get(broker)
    if cls is None:
        raise ConfigError(f"unknown broker {broker!r}; expected one of "
                          f"{', '.join(sorted(_CLASSES))}", key="broker")
    file = Path(path) if path is not None else Path(config_dir) / "brokers" / f"{broker}.yaml"
    try:
        exists = file.exists()
    except (OSError, ValueError):  # a name the OS cannot take (a NUL byte, too long)
        exists = False
    if not exists:
        example = file.with_name(f"{broker}.example.yaml")
        hint = f"; copy {example} and fill it in" if example.exists() else ""
        raise ConfigError(f"no config file {file}{hint}", path=str(file))
    raw = load_yaml(read_text(file), file)
    raw = {} if raw is None else raw
    env = os.environ if env is None else env
    hide = env_secrets(raw, env)
    try:
        data = substitute_env(raw, env, path=str(file), keep_strings=cls._secrets)
    except ConfigError as exc:
        raise redacted(exc, hide) from None
    config: BrokerConfig = cls._from_dict(data, path=str(file), hide=hide)
    return config
