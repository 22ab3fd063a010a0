"""Shared plumbing of the model families: parameter checks and building from specs."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, TypeVar

__all__ = ["check_number", "model_from_spec"]

M = TypeVar("M")


def check_number(name: str, value: object, low: float, high: float = math.inf) -> None:
    """Raise ``ValueError`` quoting ``value`` unless it is a finite number in [low, high]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
        math.isfinite(value) and low <= value <= high
    ):
        bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")


def model_from_spec(kind: str, registry: dict[str, type[M]],
                    spec: dict[str, Any]) -> tuple[type[M], dict[str, Any]]:
    """Resolve ``{"model": name, **params}`` to a class of ``registry`` and its params.

    Unknown names and unknown parameters raise ``ValueError`` naming them.
    """
    if not isinstance(spec, dict) or "model" not in spec:
        raise ValueError(f"a {kind} spec needs a 'model' key, got {spec!r}")
    params = dict(spec)
    name = str(params.pop("model"))
    cls = registry.get(name.lower())
    if cls is None:
        known = ", ".join(sorted({getattr(c, "name", c.__name__) for c in registry.values()}))
        raise ValueError(f"unknown {kind} model {name!r}; known: {known}")
    allowed = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {kind} "
                         f"model {name!r}; it takes {sorted(allowed) or 'none'}")
    return cls, params
