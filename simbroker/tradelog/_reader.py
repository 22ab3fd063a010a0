"""Reading the trade log back: every byte checked, only ``TradeLogError`` ever raised."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from simbroker.errors import TradeLogError
from simbroker.tradelog._chain import line_digest

__all__ = ["ScanResult", "parse_line", "parse_time", "read_trade_log", "scan_trade_log"]

log = logging.getLogger("simbroker.tradelog")

_TIME_FIELDS = ("ts", "timestamp", "submitted_at")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a trade log can hold")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise ValueError(f"{text} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def parse_time(value: Any, key: str = "time") -> datetime:
    """A record's time field as a tz-aware UTC datetime (an aware datetime passes through);
    ``ValueError`` naming ``key`` for anything else."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"field {key!r} is a naive time")
        return value.astimezone(timezone.utc)
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be an ISO time string, got {type(value).__name__}")
    try:
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise ValueError("no UTC offset")
        return when.astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"field {key!r} is not a tz-aware ISO time ({exc})") from None


def parse_line(line: bytes, path: str | None, lineno: int | None) -> dict[str, Any]:
    """One complete line as a record, times parsed to UTC; ``TradeLogError`` otherwise.

    Checks the shape every record has (``seq`` an integer >= 1, ``event`` a string, ``ts``
    a tz-aware time, ``prev`` absent, null or a string) but not the chain, which needs
    the line before.
    """
    try:
        rec = _DECODER.decode(line.decode("utf-8"))
    except RecursionError:
        raise TradeLogError("not a valid record (nested too deeply)", path=path,
                            line=lineno) from None
    except ValueError as exc:  # bad JSON, bad UTF-8, NaN/Infinity, huge integers
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise TradeLogError(f"not a valid record ({reason})", path=path, line=lineno) from None
    try:
        if not isinstance(rec, dict):
            raise ValueError(f"a JSON {type(rec).__name__}, not an object")
        seq = rec.get("seq")
        if type(seq) is not int or seq < 1:
            raise ValueError("no integer 'seq' >= 1")
        if not isinstance(rec.get("event"), str):
            raise ValueError("no string 'event'")
        if not (rec.get("prev") is None or isinstance(rec["prev"], str)):
            raise ValueError("'prev' is neither null nor a checksum string")
        rec["ts"] = parse_time(rec.get("ts"), "ts")
        for key in _TIME_FIELDS[1:]:
            if rec.get(key) is not None:
                rec[key] = parse_time(rec[key], key)
    except ValueError as exc:
        raise TradeLogError(f"not a valid record ({exc})", path=path, line=lineno) from None
    return rec


@dataclass
class ScanResult:
    """What :func:`scan_trade_log` found: the valid records and where they end."""

    records: list[dict[str, Any]] = field(default_factory=list)
    valid_bytes: int = 0
    """Length of the valid prefix of the file (whole lines)."""
    error: TradeLogError | None = None
    """The first problem after that prefix (a torn last line is not one)."""
    torn_bytes: int = 0
    """Bytes of a torn last line (no newline) dropped at the end."""
    line_ends: list[int] = field(default_factory=list)
    """For each valid record, the offset just after its newline."""


def scan_trade_log(path: str | Path) -> ScanResult:
    """Read records until the first invalid one; never raises for the file's content.

    Raises :class:`~simbroker.errors.TradeLogError` only when the file cannot be read.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise TradeLogError("the trade log does not exist", path=str(p)) from None
    except OSError as exc:
        raise TradeLogError(f"cannot read the trade log: {exc.strerror or exc}",
                            path=str(p)) from None
    result = ScanResult()
    where = str(p)
    offset = 0
    lineno = 0
    prev_digest: str | None = None
    prev_seq = 0
    chained = False
    while offset < len(raw):
        end = raw.find(b"\n", offset)
        lineno += 1
        if end < 0:
            result.torn_bytes = len(raw) - offset
            log.warning("trade log %s: dropping torn last line %d (%d bytes, no newline: a "
                        "write cut short)", p, lineno, result.torn_bytes)
            break
        line = raw[offset:end]
        try:
            rec = parse_line(line, where, lineno)
            _check_link(rec, prev_seq, prev_digest, chained, where, lineno)
        except TradeLogError as exc:
            result.error = exc
            return result
        chained = chained or "prev" in rec
        prev_seq, prev_digest = rec["seq"], line_digest(line)
        result.records.append(rec)
        offset = end + 1
        result.valid_bytes = offset
        result.line_ends.append(offset)
    return result


def _check_link(rec: dict[str, Any], prev_seq: int, prev_digest: str | None, chained: bool,
                path: str, lineno: int) -> None:
    seq = rec["seq"]
    if seq != prev_seq + 1:
        if seq <= prev_seq:
            what = "a repeated or out-of-order record"
        elif prev_seq == 0:
            what = "the log does not begin at its first record"
        else:
            what = f"{seq - prev_seq - 1} record(s) missing before it"
        raise TradeLogError(f"seq {seq} after seq {prev_seq}: {what}", path=path, line=lineno)
    if "prev" in rec:
        if rec["prev"] != prev_digest:
            raise TradeLogError(f"seq {seq} does not follow the line before it (its 'prev' "
                                f"checksum differs): a line was changed, lost or moved",
                                path=path, line=lineno)
    elif chained:
        raise TradeLogError(f"seq {seq} has no 'prev' checksum after chained records",
                            path=path, line=lineno)


def read_trade_log(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record of a trade log, its chain checked, times as UTC datetimes.

    A torn last line (no newline: a crash mid-write) is dropped with a logged warning.
    Anything else wrong raises :class:`~simbroker.errors.TradeLogError` naming the file
    and line: a line that is not a record (bad JSON or UTF-8, ``NaN``/``Infinity``, a
    naive or malformed time, a missing ``seq``/``event``/``ts``), and a broken chain (a
    ``seq`` that does not count up by one from 1, or a ``prev`` that is not the checksum
    of the line before: a deleted, repeated or reordered line).

    Logs written before the chain existed (records without ``prev``) are read the same
    way, their ``seq`` alone checked; a record without ``prev`` after one with it is an
    error.
    """
    result = scan_trade_log(path)
    if result.error is not None:
        raise result.error
    return result.records
