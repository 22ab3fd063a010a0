"""Broker configuration: ``CONFIG/brokers/{broker}.yaml`` with ``${VAR}`` secrets.

A config file is YAML. String values may reference the environment as ``${VAR}`` or
``${VAR:-default}`` (``$${`` writes a literal ``${``); substitution happens on the parsed
values, never on the raw text, so an environment value cannot inject YAML. A missing
variable is a :class:`~simbroker.errors.ConfigError` naming the variable and the file,
never a value. Keys are checked: an unknown key or a wrong type names the key and file.

Secrets (API keys) are held in :class:`Secret`, which shows ``***`` in ``repr``, ``str``,
f-strings, logs, exceptions and the trade log; only :meth:`Secret.reveal` gives the value.

The real files are git-ignored; ``CONFIG/brokers/*.example.yaml`` document every key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import yaml

from simbroker.errors import ConfigError
from simbroker.risk import RiskLimits

__all__ = [
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

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class Secret:
    """A string that never shows itself: ``repr``/``str``/``format`` give ``***``.

    >>> key = Secret("not-a-real-key")
    >>> key, str(key), f"{key}"
    (Secret('***'), '***', '***')
    >>> key.reveal()
    'not-a-real-key'
    """

    __slots__ = ("_value",)
    _simbroker_secret_ = True  # the trade log writes such values as "***"

    def __init__(self, value: str):
        if not isinstance(value, str):
            raise TypeError("a Secret holds a string")
        self._value = value

    def reveal(self) -> str:
        """The secret itself; pass it straight to the client library, never to a log."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not picklable (it would leave the process in clear)")


def substitute_env(value: Any, env: Mapping[str, str] | None = None, *,
                   path: str | None = None, key: str = "",
                   keep_strings: frozenset[str] = frozenset()) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string inside ``value``.

    A value that is exactly one reference takes the YAML type of what it expands to
    (``port: ${IB_PORT:-7497}`` gives the int 7497), except under the keys named in
    ``keep_strings`` (secrets stay strings). Raises
    :class:`~simbroker.errors.ConfigError` naming the variable (and ``path``) when a
    variable without a default is not set.
    """
    env = os.environ if env is None else env
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            where = f" in {path}" if path else ""
            at = f" (key {key!r})" if key else ""
            raise ConfigError(f"environment variable {name} is not set{where}{at}",
                              key=key or None, path=path)
        out = _VAR.sub(repl, value)
        whole = _VAR.fullmatch(value)
        if whole and whole.group(0) != "$${" and key.rsplit(".", 1)[-1] not in keep_strings:
            try:
                typed = yaml.safe_load(out)
            except yaml.YAMLError:
                return out
            if isinstance(typed, (bool, int, float)):
                return typed
        return out
    if isinstance(value, dict):
        return {k: substitute_env(v, env, path=path, key=f"{key}.{k}" if key else str(k),
                                  keep_strings=keep_strings)
                for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, env, path=path, key=f"{key}[{i}]", keep_strings=keep_strings)
                for i, v in enumerate(value)]
    return value


def _type_name(t: tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in t)


class _Config:
    """Shared loading: unknown keys and wrong types name the key and the file."""

    broker: ClassVar[str] = ""
    _types: ClassVar[dict[str, tuple[type, ...]]] = {}
    _secrets: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str | None = None) -> Any:
        """Build from a mapping; unknown keys and wrong types raise ``ConfigError``."""
        where = f" in {path}" if path else ""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a {cls.broker} config must be a mapping{where}, got "
                              f"{type(data).__name__}", path=path)
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        defaults = {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r}{where}; known keys for {cls.broker}: "
                              f"{', '.join(sorted(known))}", key=unknown[0], path=path)
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "risk":
                if value is None:
                    value = {}
                if not isinstance(value, Mapping):
                    raise ConfigError(f"key 'risk'{where} must be a mapping of limits",
                                      key="risk", path=path)
                kwargs[name] = RiskLimits.from_dict(value, source=path)
                continue
            expected = cls._types.get(name)
            if value is None and defaults.get(name, ...) is None:
                kwargs[name] = None
                continue
            if name in cls._secrets:
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
        """Plain values; secrets appear as ``"***"`` (this is for display and logs)."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, RiskLimits) else (
                "***" if isinstance(v, Secret) else v)
        return out

    @property
    def is_live(self) -> bool:
        """True when this config trades real money."""
        return False


@dataclass(frozen=True, kw_only=True)
class PaperConfig(_Config):
    """The paper broker replaying bars (``CONFIG/brokers/paper.yaml``)."""

    broker: ClassVar[str] = "paper"
    _types: ClassVar[dict[str, tuple[type, ...]]] = {
        "cash": (int, float), "slippage": (int, float, dict), "fees": (int, float, dict),
        "allow_short": (bool,), "data": (str,), "trade_log": (str,), "speed": (int, float),
    }

    cash: float = 100_000.0
    slippage: float | dict[str, Any] = 5.0
    fees: float | dict[str, Any] = 1.0
    allow_short: bool = True
    data: str | None = None
    trade_log: str | None = None
    speed: float = 0.0
    risk: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        if not self.cash == self.cash or self.cash < 0:
            raise ConfigError(f"key 'cash' must be >= 0, got {self.cash!r}", key="cash")
        if self.speed < 0:
            raise ConfigError(f"key 'speed' must be >= 0 (0 = as fast as possible), got "
                              f"{self.speed!r}", key="speed")


@dataclass(frozen=True, kw_only=True)
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
        if not self.bar_poll > 0:
            raise ConfigError(f"key 'bar_poll' must be > 0 seconds, got {self.bar_poll!r}",
                              key="bar_poll")
        if self.account == "":  # ${IB_ACCOUNT:-} left empty: the only account
            object.__setattr__(self, "account", None)
        if self.trading_mode not in ("paper", "live"):
            raise ConfigError(f"key 'trading_mode' must be 'paper' or 'live', got "
                              f"{self.trading_mode!r}", key="trading_mode")
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


@dataclass(frozen=True, kw_only=True)
class AlpacaConfig(_Config):
    """Alpaca (``CONFIG/brokers/alpaca.yaml``); keys come from the environment."""

    broker: ClassVar[str] = "alpaca"
    _types: ClassVar[dict[str, tuple[type, ...]]] = {
        "paper": (bool,), "data_feed": (str,), "trade_log": (str,), "url_override": (str,),
        "stream_url": (str,), "data_url": (str,), "bar_poll": (int, float),
    }
    _secrets: ClassVar[frozenset[str]] = frozenset({"api_key", "secret_key"})

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
        if not self.bar_poll > 0:
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
    if not file.exists():
        example = file.with_name(f"{broker}.example.yaml")
        hint = f"; copy {example} and fill it in" if example.exists() else ""
        raise ConfigError(f"no config file {file}{hint}", path=str(file))
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{file} is not valid YAML{at}", path=str(file)) from None
    raw = {} if raw is None else raw
    data = substitute_env(raw, env, path=str(file), keep_strings=cls._secrets)
    config: BrokerConfig = cls.from_dict(data, path=str(file))
    return config
