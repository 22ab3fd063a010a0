"""Keep secrets out of every log line, whoever logs it.

:func:`install_secret_filter` registers secret values (API keys, passwords) once per
process. From then on every log record, from any logger of any library, is scrubbed
before any handler sees it: each occurrence of a secret, and of any run of 8 or more
consecutive characters of one, becomes ``***``. The run rule matters because libraries
shorten what they log: ``websockets`` logs a long frame as its first and last few dozen
characters, so an authentication frame shows the tail of the secret, not the whole.

How it reaches every line: the message is formatted (``msg % args``) and scrubbed, the
traceback and stack text too, and the record is left holding only the scrubbed text
(``args`` emptied, ``exc_info`` replaced by its scrubbed ``exc_text``). This runs in
:meth:`logging.Logger.handle` (every record logged through a logger, before its
filters and handlers, however far it propagates) and again in
:meth:`logging.Handler.handle` (every handler, including ``logging.lastResort`` and
handlers added later or fed directly, e.g. by a ``QueueListener``). Both are patched
once per process; a scrubbed record is marked and not scrubbed twice for the same set of
secrets.

What it cannot reach: text written with ``print`` or straight to ``sys.stderr``, and a
handler class that overrides ``handle`` without calling :meth:`logging.Handler.handle`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MIN_RUN", "REDACTED", "Redactor", "install_secret_filter", "redact"]

MIN_RUN = 8
"""The shortest run of a secret's characters that is redacted (a whole shorter secret
is redacted too)."""

REDACTED = "***"

class Redactor:
    """Hides ``secrets``, and every run of :data:`MIN_RUN`+ characters of one, in text.

    >>> Redactor(["correct-horse-battery"]).redact("key=correct-horse-battery, tail=battery")
    'key=***, tail=battery'
    """

    def __init__(self, secrets: Iterable[Any]):
        self.secrets = frozenset(v for v in (_value(s) for s in secrets) if v)
        self._grams = frozenset(s[i:i + MIN_RUN] for s in self.secrets if len(s) >= MIN_RUN
                                for i in range(len(s) - MIN_RUN + 1))
        self._short = tuple(sorted((s for s in self.secrets if len(s) < MIN_RUN), key=len,
                                   reverse=True))
        alternatives = sorted(self._grams | set(self._short), key=len, reverse=True)
        self._pattern = (re.compile("|".join(re.escape(a) for a in alternatives))
                         if alternatives else None)

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"

    def redact(self, text: str) -> str:
        """``text`` with each secret, and each run of 8+ characters of one, as ``***``."""
        pattern = self._pattern
        if pattern is None or not text or pattern.search(text) is None:
            return text
        n = len(text)
        hidden = bytearray(n)
        grams = self._grams
        for i in range(n - MIN_RUN + 1):
            if text[i:i + MIN_RUN] in grams:
                hidden[i:i + MIN_RUN] = b"\x01" * MIN_RUN
        for s in self._short:
            start = text.find(s)
            while start >= 0:
                hidden[start:start + len(s)] = b"\x01" * len(s)
                start = text.find(s, start + 1)
        out: list[str] = []
        i = 0
        while i < n:
            j = i
            while j < n and hidden[j] == hidden[i]:
                j += 1
            out.append(REDACTED if hidden[i] else text[i:j])
            i = j
        return "".join(out)


_lock = threading.Lock()
_active = Redactor(())
_generation = 0
_MARK = "_simbroker_redacted"


def _value(secret: Any) -> str:
    reveal = getattr(secret, "reveal", None)
    return str(reveal() if callable(reveal) else secret)


def install_secret_filter(secrets: Iterable[Any]) -> None:
    """Redact ``secrets`` (strings, or :class:`~simbroker.config.Secret`) from all logging.

    Idempotent and cumulative: calling it again adds values and never removes one; the
    logging hooks are installed on the first call only. Empty values are ignored.

    Parameters
    ----------
    secrets
        The values to hide. Any run of :data:`MIN_RUN` or more consecutive characters of
        one is hidden wherever it appears in a log line.
    """
    global _active, _generation
    values = {v for v in (_value(s) for s in secrets) if v}
    with _lock:
        if values - _active.secrets:
            _active = Redactor(_active.secrets | values)
            _generation += 1
        _install_hooks()


def redact(text: str) -> str:
    """``text`` as the installed filter writes it (see :class:`Redactor`)."""
    return _active.redact(text)


def _scrub(record: logging.LogRecord) -> None:
    if getattr(record, _MARK, None) == _generation:
        return
    active = _active
    setattr(record, _MARK, _generation)
    if not active.secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what would be printed, scrubbed
        message = f"{record.msg!s} {record.args!s}"
    clean = active.redact(message)
    if clean != message or record.args or not isinstance(record.msg, str):
        # Only the text known to be clean stays: a handler might render the arguments
        # (objects such as a frame) differently from the message.
        record.msg, record.args = clean, None
    if record.exc_info:
        if not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
    if record.exc_text:
        record.exc_text = active.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = active.redact(record.stack_info)


_hooks_installed = False


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    logger_handle = logging.Logger.handle
    handler_handle = logging.Handler.handle

    def handle_logger(self: logging.Logger, record: logging.LogRecord) -> Any:
        _scrub(record)
        return logger_handle(self, record)

    def handle_handler(self: logging.Handler, record: logging.LogRecord) -> Any:
        _scrub(record)
        return handler_handle(self, record)

    logging.Logger.handle = handle_logger  # type: ignore[method-assign]
    logging.Handler.handle = handle_handler  # type: ignore[method-assign]
