"""The failure every invariant check raises: the property's name, then what broke it."""

from __future__ import annotations

__all__ = ["fail"]


def fail(prop: str, detail: str) -> AssertionError:
    """An :class:`AssertionError` reading ``"<prop>: <detail>"`` (for the caller to raise)."""
    return AssertionError(f"{prop}: {detail}")
