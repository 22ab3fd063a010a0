"""``${VAR}`` substitution in config values, :class:`Secret`, and the scrubbing that keeps
secret values out of every :class:`~simbroker.errors.ConfigError`.

Secrets (API keys) are held in :class:`Secret`, which shows ``***`` in ``repr``, ``str``,
f-strings, logs, exceptions and the trade log; only :meth:`Secret.reveal` gives the value.

Which values count as secret, so that no error message ever shows them, whatever key
they sit under: every value held in a :class:`Secret`; every value of a secret key
(``api_key``, ``secret_key``); and the value of every environment variable a file
references whose name looks secret (it contains ``KEY``, ``SECRET``, ``TOKEN``, ``PASS``,
``PWD``, ``PIN``, ``CREDENTIAL``, ``AUTH``, ``PRIVATE``, ``SESSION`` or ``CERT``). Each is
replaced by ``***`` in every :class:`~simbroker.errors.ConfigError` the loader raises, as written,
escaped, or as the number YAML reads it as; one of 8 characters or more wherever it
appears, a shorter one where it stands as a whole word (so ``key`` keeps its ``k``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from simbroker._config_yaml import BUILD_ERRORS, MAX_DEPTH, MAX_NODES, parse_yaml
from simbroker.errors import ConfigError

__all__ = ["Secret", "env_secrets", "redacted", "scrubbed", "scrubbed_value", "secret_values",
           "substitute_env"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASS|PWD|PIN|CREDENTIAL|AUTH|PRIVATE|SESSION|CERT",
                          re.IGNORECASE)


_ANYWHERE_CHARS = 8  # secrets this long are hidden even inside a word; shorter, as words


_TYPED_MAX_CHARS = 4096  # longer env values are not read as numbers (4,300 digits is int's)


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


def _find(text: str, char: str, start: int) -> int:
    """Index of ``char`` at or after ``start``; ``len(text)`` if there is none."""
    at = text.find(char, start)
    return len(text) if at < 0 else at


def _references(text: str) -> list[tuple[int, int, str | None, str | None]]:
    """The ``${VAR}``, ``${VAR:-default}`` and ``$${`` in ``text``, left to right.

    Each as ``(start, end, name, default)``; ``name`` is None for the ``$${`` escape. A
    default ends at the first ``}`` and may not span lines. One pass: the next ``}`` and
    newline are found once and reused, so 10,000 unclosed ``${A:-`` cost linear time (a
    regular expression took 21 s on them, retrying the rest of the line from each one).
    """
    refs: list[tuple[int, int, str | None, str | None]] = []
    i = 0
    next_close = next_newline = -1
    while (j := text.find("$", i)) >= 0:
        i = j + 1
        if text.startswith("$${", j):
            refs.append((j, j + 3, None, None))
            i = j + 3
            continue
        if not text.startswith("${", j) or (m := _NAME.match(text, j + 2)) is None:
            continue
        k = m.end()
        if text.startswith("}", k):
            refs.append((j, k + 1, m.group(), None))
            i = k + 1
        elif text.startswith(":-", k):
            start = k + 2
            if next_close < start:
                next_close = _find(text, "}", start)
            if next_newline < start:
                next_newline = _find(text, "\n", start)
            if next_close < next_newline:  # closed, on this line (both are n if absent)
                refs.append((j, next_close + 1, m.group(), text[start:next_close]))
                i = next_close + 1
    return refs


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
        refs = _references(value)
        pieces, pos = [], 0
        for start, end, name, default in refs:
            pieces.append(value[pos:start])
            pos = end
            if name is None:
                pieces.append("${")
            elif name in env:
                pieces.append(env[name])
            elif default is not None:
                pieces.append(default)
            else:
                where = f" in {path}" if path else ""
                at = f" (key {key!r})" if key else ""
                raise ConfigError(f"environment variable {name} is not set{where}{at}",
                                  key=key or None, path=path)
        pieces.append(value[pos:])
        out = "".join(pieces)
        whole = len(refs) == 1 and refs[0][:2] == (0, len(value)) and refs[0][2] is not None
        if (whole and len(out) <= _TYPED_MAX_CHARS
                and key.rsplit(".", 1)[-1] not in keep_strings):
            try:
                typed = parse_yaml(out)
            except (yaml.YAMLError, *BUILD_ERRORS):
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


def secret_values(data: Mapping[str, Any], secret_keys: frozenset[str]) -> set[str]:
    """The secrets held in ``data``: every ``Secret``, and the values of secret keys."""
    found: set[str] = set()
    seen = [0]

    def walk(value: Any, depth: int) -> None:
        seen[0] += 1
        if depth > MAX_DEPTH or seen[0] > MAX_NODES:
            return
        if isinstance(value, Secret):
            found.add(value.reveal())
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v, depth + 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, depth + 1)

    walk(data, 0)
    for name in secret_keys:
        value = data.get(name)
        if isinstance(value, str):
            found.add(value)
    return found


def env_secrets(raw: Any, env: Mapping[str, str]) -> set[str]:
    """Values of the environment variables ``raw`` references whose names look secret."""
    found: set[str] = set()
    stack, seen = [raw], 0
    while stack and seen <= MAX_NODES:
        value = stack.pop()
        seen += 1
        if isinstance(value, str):
            for _, _, name, _ in _references(value):
                if name and _SECRET_NAME.search(name) and name in env:
                    found.add(env[name])
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def _shown_forms(secret: str) -> set[str]:
    """The ways an error message could spell ``secret``: as is, escaped, or as YAML typed it."""
    forms = {secret, repr(secret)[1:-1], secret.encode("unicode_escape").decode("ascii")}
    if len(secret) <= _TYPED_MAX_CHARS:
        try:
            typed = parse_yaml(secret)
        except (yaml.YAMLError, *BUILD_ERRORS):
            typed = None
        if isinstance(typed, (bool, int, float)):
            forms.update({str(typed), repr(typed)})
    return {f for f in forms if f}


def scrubbed(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every spelling of every secret replaced by ``***``."""
    forms = set().union(*(_shown_forms(s) for s in secrets if s))
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= _ANYWHERE_CHARS:
            text = text.replace(form, "***")
        else:  # a short one only as a whole word, or "key" would lose its "k"
            text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(form)}(?![A-Za-z0-9_])", "***", text)
    return text


def redacted(exc: ConfigError, secrets: Iterable[str]) -> ConfigError:
    """``exc`` with every spelling of every secret replaced by ``***``."""
    return ConfigError(scrubbed(str(exc), secrets), key=exc.key, path=exc.path)


def scrubbed_value(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        return scrubbed(value, secrets)
    if isinstance(value, list):
        return [scrubbed_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: scrubbed_value(v, secrets) for k, v in value.items()}
    return value
