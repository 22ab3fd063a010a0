"""Progress bars that show on an interactive terminal and never in CI logs.

``progress=None`` (the default everywhere) means *auto*: a bar on ``stderr`` when it is a
terminal and the ``CI`` environment variable is not set. ``True`` asks for one anyway,
``False`` never shows one. tqdm is an optional extra (``simbroker[progress]``); without it
no bar is drawn and a requested bar logs one warning.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["progress_enabled", "progress_iter"]


def progress_enabled(progress: bool | None) -> bool:
    """Resolve ``progress`` (``None`` = auto: a terminal and not CI) to a bool."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_iter(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
                  progress: bool | None = None, unit: str = "it") -> Iterator[T]:
    """``iterable``, wrapped in a tqdm bar when :func:`progress_enabled` says so."""
    if not progress_enabled(progress):
        return iter(iterable)
    try:
        from tqdm import tqdm
    except ImportError:
        if progress:
            log.warning("progress bar requested but tqdm is not installed "
                        "(pip install 'simbroker[progress]')")
        return iter(iterable)
    bar: Iterator[T] = tqdm(iterable, total=total, desc=desc or None, unit=unit,
                            file=sys.stderr, dynamic_ncols=True, leave=False,
                            mininterval=0.25)
    return bar
