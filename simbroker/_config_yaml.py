"""The YAML reader of broker configs: parsed with limits, so that a hostile or broken file
fails at once with a :class:`~simbroker.errors.ConfigError` instead of exhausting time,
memory or the stack:

- at most :data:`MAX_CONFIG_BYTES` (64 KiB) of text; broker configs are a few hundred bytes;
- at most :data:`MAX_DEPTH` (32) levels of nesting, flow (``[[[...``) or block, counting
  the top-level mapping and the value at the bottom; checked while scanning, before
  PyYAML's parser and composer can recurse or scan ahead (a real config has 4);
- at most :data:`MAX_ALIASES` (64) ``*alias`` references, and at most
  :data:`MAX_NODES` (10,000) values once every alias is expanded (a "billion laughs"
  file of a few hundred bytes expands to ~10^9); recursive aliases are refused.

The values themselves (string keys, numbers within the float range, finite floats) are
checked after parsing, naming the key, by :mod:`simbroker.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simbroker.errors import ConfigError

__all__ = ["BUILD_ERRORS", "MAX_ALIASES", "MAX_CONFIG_BYTES", "MAX_DEPTH", "MAX_NODES", "load_yaml",
           "parse_yaml", "read_text"]

MAX_CONFIG_BYTES = 64 * 1024
"""Largest config file the loader reads, in bytes."""


MAX_DEPTH = 32
"""Deepest nesting of mappings and lists in a config."""


MAX_ALIASES = 64
"""Most ``*alias`` references in one config file."""


MAX_NODES = 10_000
"""Most values (scalars, lists, mappings) in a config once its aliases are expanded."""


class _LimitExceeded(yaml.MarkedYAMLError):
    """A YAML text breaks one of the loader's limits."""


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on nesting depth and alias expansion.

    PyYAML's scanner keeps one possible simple key per open bracket and re-checks all of
    them for every token, and its composer recurses once per level, so deep nesting costs
    quadratic time and then the stack. Flow depth is checked as each bracket is scanned,
    block and flow depth as each node is composed, and aliases as they are met.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def _refuse(self, what: str) -> None:
        raise _LimitExceeded(problem=what, problem_mark=self.get_mark())

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            self._refuse(f"brackets nested more than {MAX_DEPTH} deep")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                self._refuse(f"more than {MAX_ALIASES} aliases")
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            self._refuse(f"values nested more than {MAX_DEPTH} deep")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            problem = _expansion_problem(node)
            if problem:
                self._refuse(problem)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expansion_problem(root: yaml.Node) -> str | None:
    """Why the node graph is too big once aliases are expanded, or recursive; else None.

    Iterative, memoized by node: linear in the number of distinct nodes.
    """
    size: dict[int, int] = {}
    open_: set[int] = set()  # the current node and its ancestors
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            if size[key] > MAX_NODES:
                return f"more than {MAX_NODES} values once aliases are expanded"
            continue
        if key in size:
            continue
        open_.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                return "a recursive alias (a value that contains itself)"
            if id(child) not in size:
                stack.append((child, False))
    return None


# What PyYAML's constructors let out besides YAMLError, on values they cannot build:
# 2024-13-45 (ValueError), "!!timestamp nope" (AttributeError), 5,000 digits (ValueError).
BUILD_ERRORS = (ValueError, TypeError, AttributeError, LookupError, ArithmeticError)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` with the limits above; raises ``yaml.YAMLError`` or one of
    ``BUILD_ERRORS``."""
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_text(file: Path) -> str:
    """At most :data:`MAX_CONFIG_BYTES` of UTF-8 text (never more is read: ``/dev/zero``)."""
    try:
        with file.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}",
                          path=str(file)) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{file} is larger than {MAX_CONFIG_BYTES:,} bytes; a broker config "
                          f"is a few hundred", path=str(file))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file} is not UTF-8 text (bad byte at offset {exc.start})",
                          path=str(file)) from None


def load_yaml(text: str, file: Path) -> Any:
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        why = f": {exc.problem}" if isinstance(exc, _LimitExceeded) else ""
        raise ConfigError(f"{file} is not valid YAML{at}{why}", path=str(file)) from None
    except BUILD_ERRORS as exc:
        why = str(exc) if type(exc) is ValueError else "a tagged value of the wrong form?"
        raise ConfigError(f"{file} has a value YAML cannot build: {why}",
                          path=str(file)) from None
