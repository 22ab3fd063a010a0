"""Writing the trade log: one whole, chained, flushed line per record, or nothing."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from datetime import date, datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from simbroker.errors import TradeLogError
from simbroker.tradelog._chain import line_digest
from simbroker.tradelog._reader import parse_line

try:  # POSIX; elsewhere a second writer is not detected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["REDACTED", "TradeLog"]

log = logging.getLogger("simbroker.tradelog")

_SECRET_WORDS = ("secret", "password", "passwd", "passphrase", "token", "apikey", "keyid",
                 "privatekey", "credential", "authoriz")
_OWN_FIELDS = ("seq", "prev")
REDACTED = "***"
_CHUNK = 65536


def _is_secret_key(key: str) -> bool:
    # "api_key", "API-Key", "apiKey" and "api key" all normalise to "apikey".
    k = "".join(ch for ch in key.lower() if ch.isalnum())
    return any(w in k for w in _SECRET_WORDS)


def _plain(value: Any, name: str) -> Any:
    """A JSON-ready copy of ``value``, secrets redacted, non-finite floats refused."""
    if getattr(value, "_simbroker_secret_", False):
        return REDACTED
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        n = int(value)
        if n.bit_length() > 14_000:  # JSON cannot print ints past 4,300 digits
            raise ValueError(f"trade log field {name!r} is an integer too large to write "
                             f"(about {int(n.bit_length() * 0.30103) + 1:,} digits)")
        return n
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"trade log field {name!r} is not finite ({f!r})")
        return f
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"trade log field {name!r} is a naive datetime; use UTC")
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): REDACTED if _is_secret_key(str(k)) else _plain(v, f"{name}.{k}")
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):  # enums
        return value.value
    return str(value)


def _line_start(fh: IO[bytes], end: int) -> int:
    """Offset just after the last newline before ``end`` (0 when there is none)."""
    pos = end
    while pos > 0:
        start = max(0, pos - _CHUNK)
        fh.seek(start)
        i = fh.read(pos - start).rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


class TradeLog:
    """An append-only, hash-chained JSONL trade log.

    Every record is one line ``{"seq", "prev", "ts", "event", ...}``: ``seq`` counts
    records from 1 and ``prev`` is the checksum of the line before
    (:func:`~simbroker.tradelog.line_digest`; ``null`` on the first line), so the reader
    detects a lost, repeated or shuffled line. :meth:`write` hands the whole line to the
    operating system (one ``write``, no user-space buffer) before it returns: once it has
    returned, a crash of the process cannot lose the record; with ``fsync=True`` neither
    can a power cut. When the write fails (a full disk, an I/O error) the file is cut back
    to its last whole record and :class:`~simbroker.errors.TradeLogError` is raised, so a
    caller that changes its state only after ``write`` returned stays equal to its log.

    While open, the file is locked (``flock``) against a second writer: two processes
    appending to one log (two runs resuming the same account) would place orders twice.

    Parameters
    ----------
    path
        The file; created (with parent folders) if absent, appended to if present. A torn
        last line (a crash in the middle of a write) is cut off first.
    fsync
        Also ``os.fsync`` after each record (slower; survives power loss).
    """

    def __init__(self, path: str | Path, *, fsync: bool = False):
        self._path = Path(path)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._broken: str | None = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: Any = open(self._path, "ab", buffering=0)  # noqa: SIM115 - held open
        except OSError as exc:
            raise TradeLogError(f"cannot open the trade log: {exc.strerror or exc}",
                                path=str(self._path)) from None
        try:
            self._lock_file()
            self._seq, self._prev, self._size = self._open_tail()
        except BaseException:
            self._fh.close()
            raise

    def _lock_file(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            return
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TradeLogError("the trade log is open in another writer (another simbroker "
                                "run on the same file?); refusing to write to it too",
                                path=str(self._path)) from None
        except OSError:  # a file system without locks: nothing to enforce
            log.debug("trade log %s: file locking unsupported", self._path)

    def _open_tail(self) -> tuple[int, str | None, int]:
        """Cut off a torn last line; return the last seq, its line's digest and the size."""
        size = os.fstat(self._fh.fileno()).st_size
        if size == 0:
            return 0, None, 0
        try:
            with open(self._path, "rb") as rd:
                rd.seek(size - 1)
                if rd.read(1) != b"\n":
                    keep = _line_start(rd, size)
                    log.warning("trade log %s ends in a torn record (%d bytes); cutting it off",
                                self._path, size - keep)
                    self._fh.truncate(keep)
                    size = keep
                if size == 0:
                    return 0, None, 0
                start = _line_start(rd, size - 1)
                rd.seek(start)
                line = rd.read(size - 1 - start)
        except OSError as exc:
            raise TradeLogError(f"cannot read the trade log's last record: "
                                f"{exc.strerror or exc}", path=str(self._path)) from None
        rec = parse_line(line, str(self._path), None)
        return int(rec["seq"]), line_digest(line), size

    @property
    def path(self) -> Path:
        """The file being written."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        closed: bool = self._fh.closed
        return closed

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the last record in the file (0 when it is empty)."""
        return self._seq

    def write(self, event: str, ts: datetime, **fields: Any) -> dict[str, Any]:
        """Append one record; return it as written once the operating system has it.

        Raises ``ValueError`` (writing nothing) for a non-finite number, a naive time or a
        field named ``seq``/``prev``, and :class:`~simbroker.errors.TradeLogError` (naming
        the file; nothing recorded, the file cut back to its last whole record) when the
        write itself fails. Keys that look secret, and values marked secret, are written as
        ``"***"``.
        """
        for own in _OWN_FIELDS:
            if own in fields:
                raise ValueError(f"{own!r} is the trade log's own chain field; it cannot be "
                                 "a field")
        body = {k: REDACTED if _is_secret_key(k) else _plain(v, k) for k, v in fields.items()}
        stamp = _plain(ts, "ts")
        with self._lock:
            if self._fh.closed:
                raise ValueError(f"trade log {self._path} is closed")
            if self._broken is not None:
                raise TradeLogError(f"an earlier write failed and the file could not be cut "
                                    f"back to its last whole record ({self._broken}); reopen "
                                    "the trade log to repair it", path=str(self._path))
            record = {"seq": self._seq + 1, "prev": self._prev, "ts": stamp, "event": event,
                      **body}
            line = json.dumps(record, allow_nan=False, separators=(",", ":")).encode("ascii")
            after = (self._seq + 1, line_digest(line), self._size + len(line) + 1)
            before = (self._seq, self._prev, self._size)
            try:
                self._append(line + b"\n")
                # Inside the try: an interrupt (Ctrl-C) landing after the write still
                # takes the record back out, so the file and the counters never disagree.
                self._seq, self._prev, self._size = after
            except OSError as exc:
                self._seq, self._prev, self._size = before
                self._cut_back()
                raise TradeLogError(
                    f"could not write the {event!r} record (seq {after[0]}): "
                    f"{exc.strerror or exc}; nothing was recorded", path=str(self._path),
                ) from exc
            except BaseException:  # interrupted mid-write: leave no partial line behind
                self._seq, self._prev, self._size = before
                self._cut_back()
                raise
        return record

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        done = 0
        while done < len(data):
            n = self._fh.write(view[done:])
            if not n:
                raise OSError(f"the file accepted none of {len(data) - done} bytes")
            done += n
        if self._fsync:
            os.fsync(self._fh.fileno())

    def _cut_back(self) -> None:
        """Truncate to the last whole record after a failed write."""
        try:
            self._fh.truncate(self._size)
            if os.fstat(self._fh.fileno()).st_size != self._size:
                raise OSError("the size did not change")
        except OSError as exc:
            self._broken = str(exc)
            log.error("trade log %s: could not cut a failed write back (%s); refusing "
                      "further writes", self._path, exc)

    def close(self) -> None:
        """Close the file and release its lock (idempotent)."""
        with self._lock:
            self._fh.close()

    def __enter__(self) -> TradeLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TradeLog({str(self._path)!r})"
