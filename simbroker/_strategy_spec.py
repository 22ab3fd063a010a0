"""Strategies named on the command line: ``module:Name`` or ``file.py:Name``, with
``--param name=value`` typed from the strategy's ``__init__`` annotations."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simbroker.engine import user_frame
from simbroker.errors import SimbrokerError, StrategyError

__all__ = ["CLIError", "load_strategy", "parse_params"]


class CLIError(SimbrokerError):
    """A user error on the command line, with a one-line message."""


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``["fast=5", "slow=50"]`` as ``{"fast": "5", "slow": "50"}`` (values still text)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise CLIError(f"--param {item!r} must look like name=value")
        if name in out:
            raise CLIError(f"--param {name} is given twice")
        out[name] = value
    return out


def _import(target: str, name: str) -> Any:
    if target.endswith(".py"):
        path = Path(target)
        if not path.exists():
            raise CLIError(f"strategy file {path} does not exist")
        mod_name = f"_simbroker_strategy_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise CLIError(f"cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # the user's file itself is broken
            sys.modules.pop(mod_name, None)
            raise StrategyError(f"{path}:{name}", error=exc, where=user_frame(exc)) from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise CLIError(f"cannot import module {target!r}: {exc}") from None
        except Exception as exc:
            raise StrategyError(f"{target}:{name}", error=exc, where=user_frame(exc)) from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise CLIError(f"{target} has no attribute {name!r}") from None


def _convert(name: str, text: str, hint: Any, owner: str) -> Any:
    """``text`` as the type ``hint`` names (``int``, ``float``, ``bool``, ``str``, a union
    of those with ``None``); without a usable hint, a Python literal or else the text."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if text.lower() in ("none", "null") and len(args) < len(typing.get_args(hint)):
            return None
        errors = []
        for arg in args:
            try:
                return _convert(name, text, arg, owner)
            except CLIError as exc:
                errors.append(str(exc))
        raise CLIError(errors[0] if errors else f"--param {name}: cannot read {text!r}")
    try:
        if hint is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str:
            return text
    except ValueError:
        kind = getattr(hint, "__name__", str(hint))
        raise CLIError(f"--param {name}={text!r}: {owner} takes {name} as {kind}") from None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _instantiate(cls: type, params: Mapping[str, str], spec: str) -> Any:
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        sig = None
    try:
        init = next((vars(k)["__init__"] for k in cls.__mro__ if "__init__" in vars(k)),
                    None)
        hints = typing.get_type_hints(init) if init is not None else {}
    except Exception:  # unresolvable annotations: convert without them
        hints = {}
    accepted = {} if sig is None else {
        n: p for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = sig is not None and any(p.kind is p.VAR_KEYWORD
                                        for p in sig.parameters.values())
    unknown = [n for n in params if n not in accepted and not takes_any]
    if unknown:
        known = ", ".join(accepted) or "none"
        raise CLIError(f"{cls.__name__} has no parameter {unknown[0]!r} (its parameters: "
                       f"{known})")
    missing = [n for n, p in accepted.items()
               if p.default is p.empty and n not in params]
    if missing:
        raise CLIError(f"{cls.__name__} needs " + ", ".join(
            f"--param {n}=VALUE" for n in missing))
    kwargs = {n: _convert(n, v, hints.get(n), cls.__name__) for n, v in params.items()}
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise StrategyError(spec, error=exc, where=user_frame(exc)) from exc


def load_strategy(spec: str, params: Mapping[str, str] | None = None) -> Any:
    """Resolve ``module:Name`` or ``file.py:Name`` to a strategy object.

    A class is instantiated with ``params`` (``--param name=value`` texts, converted to
    the types its ``__init__`` annotates: ``int``, ``float``, ``bool``, ``str``, optional
    ones; other values are read as Python literals); anything else is returned as is and
    takes no parameters.
    """
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise CLIError(f"strategy {spec!r} must look like module:Class or path.py:Class")
    obj = _import(target, name)
    if isinstance(obj, type):
        return _instantiate(obj, params or {}, spec)
    if params:
        raise CLIError(f"{spec} is not a class: it takes no --param")
    return obj
