"""Repairing a damaged trade log, on request: keep the valid head, back the rest up."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from simbroker.errors import TradeLogError
from simbroker.tradelog._reader import scan_trade_log
from simbroker.tradelog._replay import replay_trade_log

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RepairReport", "repair_trade_log"]

log = logging.getLogger("simbroker.tradelog")


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_trade_log` did.

    Attributes
    ----------
    path : Path
    kept_records : int
        Records left in the file (all valid).
    removed_bytes : int
        Bytes cut off the end (0 when the file was intact).
    backup : Path or None
        The untouched copy of the original file (``None`` when nothing was cut).
    reason : str or None
        The first problem found (``None`` when the file was intact).
    """

    path: Path
    kept_records: int
    removed_bytes: int
    backup: Path | None
    reason: str | None


def _backup_path(path: Path) -> Path:
    candidate = path.with_name(path.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak{n}")
        n += 1
    return candidate


def repair_trade_log(path: str | Path) -> RepairReport:
    """Truncate a trade log to its last valid record, keeping a backup of the original.

    Valid means readable (see :func:`~simbroker.tradelog.read_trade_log`: whole lines, an
    unbroken chain) and replayable (see :func:`~simbroker.tradelog.replay_trade_log`).
    Everything from the first bad line on is cut, including good records after it: the
    log is only trusted up to where it is intact. The original is first copied to
    ``<file>.bak`` (``.bak1``, ``.bak2``... if taken). An intact file is left alone.
    Refuses (:class:`~simbroker.errors.TradeLogError`) while a writer holds the file.
    """
    p = Path(path)
    scan = scan_trade_log(p)
    keep = scan.valid_bytes
    kept = len(scan.records)
    reason = str(scan.error) if scan.error is not None else None
    try:
        replay_trade_log(scan.records)
    except TradeLogError as exc:  # the line number is the record's position
        bad = (exc.line or 1) - 1
        keep = scan.line_ends[bad - 1] if bad > 0 else 0
        kept = bad
        reason = f"{p}, line {exc.line}: {str(exc).split(': ', 1)[-1]}"
    size = p.stat().st_size
    if keep == size:
        return RepairReport(p, kept, 0, None, None)
    if reason is None:
        reason = f"{p}: a torn last line ({size - keep} bytes without a newline)"
    backup = _backup_path(p)
    try:
        with open(p, "r+b") as fh:
            if fcntl is not None:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise TradeLogError("the trade log is open in a writer; stop that run "
                                        "before repairing", path=str(p)) from None
            shutil.copy2(p, backup)
            fh.truncate(keep)
    except OSError as exc:
        raise TradeLogError(f"could not repair the trade log: {exc.strerror or exc}",
                            path=str(p)) from None
    log.warning("trade log %s repaired: kept %d records, cut %d bytes (backup %s): %s",
                p, kept, size - keep, backup, reason)
    return RepairReport(p, kept, size - keep, backup, reason)
