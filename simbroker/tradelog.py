"""The trade log: append-only JSONL, one record per event, and its replay.

Each record is one line ``{"seq", "ts", "event", ...}`` written with a single ``write``
and flushed (optionally fsynced) before the call returns. Events:

==========  ==================================================================
start       ``cash``, ``positions``, ``broker`` (+ free-form info)
submitted   ``order_id, client_order_id, symbol, side, qty, order_type,
            limit_price, stop_price, tif``
rejected    ``order_id`` (may be null), ``client_order_id, symbol, side, qty,
            order_type, reason`` (+ ``rule``)
canceled    ``order_id, symbol, reason``
expired     ``order_id, symbol, reason``
filled      ``fill_id, order_id, client_order_id, symbol, side, qty, price, fee,
            notional, timestamp``
==========  ==================================================================

A crash can leave at most the last line torn: the reader drops it, and reopening the
file for append cuts it off before writing on. :func:`cash_after_fill` and
:func:`position_after_fill` are *the* arithmetic of every broker and of the replay, so a
replay equals the broker's state bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from simbroker.errors import DataError

__all__ = [
    "ReplayState",
    "TradeLog",
    "cash_after_fill",
    "position_after_fill",
    "read_trade_log",
    "replay_trade_log",
]

log = logging.getLogger("simbroker.tradelog")

_SECRET_WORDS = ("secret", "password", "passwd", "passphrase", "token", "apikey", "keyid",
                 "privatekey", "credential", "authoriz")
_TIME_FIELDS = ("ts", "timestamp", "submitted_at")
REDACTED = "***"


def cash_after_fill(cash: float, side: str, notional: float, fee: float) -> float:
    """Cash after a fill: ``cash - notional - fee`` (buy) or ``cash + notional - fee`` (sell)."""
    if side == "buy":
        return cash - notional - fee
    return cash + notional - fee


def position_after_fill(position: float, side: str, qty: float) -> float:
    """Position after a fill, snapped to exactly 0 when only float dust is left."""
    new = position + qty if side == "buy" else position - qty
    if abs(new) <= 1e-12 * max(abs(position), qty):
        return 0.0
    return new


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
        return int(value)
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


class TradeLog:
    """An append-only JSONL trade log.

    Parameters
    ----------
    path
        The file; created (with parent folders) if absent, appended to if present.
    fsync
        Also ``os.fsync`` after each record (slower; survives power loss).
    """

    def __init__(self, path: str | Path, *, fsync: bool = False):
        self._path = Path(path)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._seq = self._repair_and_last_seq()
        self._fh = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - held open

    def _repair_and_last_seq(self) -> int:
        if not self._path.exists():
            return 0
        raw = self._path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            keep = raw.rfind(b"\n") + 1
            log.warning("trade log %s ends in a torn record (%d bytes); cutting it off",
                        self._path, len(raw) - keep)
            with open(self._path, "r+b") as fh:
                fh.truncate(keep)
            raw = raw[:keep]
        last = raw.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if not last:
            return 0
        try:
            return int(json.loads(last)["seq"])
        except (ValueError, KeyError, TypeError):
            raise DataError(f"trade log {self._path}: its last record is not readable") from None

    @property
    def path(self) -> Path:
        """The file being written."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._fh.closed

    def write(self, event: str, ts: datetime, **fields: Any) -> dict[str, Any]:
        """Append one record and flush it; return the record as written.

        Raises ``ValueError`` (writing nothing) for a non-finite number or a naive time.
        Keys that look secret, and values marked secret, are written as ``"***"``.
        """
        if "seq" in fields:
            raise ValueError("'seq' is the trade log's own record counter; it cannot be a field")
        body = {k: REDACTED if _is_secret_key(k) else _plain(v, k) for k, v in fields.items()}
        stamp = _plain(ts, "ts")
        with self._lock:
            if self._fh.closed:
                raise ValueError(f"trade log {self._path} is closed")
            record = {"seq": self._seq + 1, "ts": stamp, "event": event, **body}
            line = json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n"
            self._fh.write(line)
            self._fh.flush()
            if self._fsync:
                os.fsync(self._fh.fileno())
            self._seq += 1
        return record

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._fh.close()

    def __enter__(self) -> TradeLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TradeLog({str(self._path)!r})"


def read_trade_log(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record of a trade log, times parsed to tz-aware UTC datetimes.

    A torn last line (a crash mid-write) is dropped with a logged warning; a bad line
    anywhere else raises :class:`~simbroker.errors.DataError` naming the line.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"trade log {p} does not exist")
    lines = p.read_bytes().split(b"\n")
    complete_end = lines[-1] == b""
    if complete_end:
        lines.pop()
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines, start=1):
        last = i == len(lines)
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "event" not in rec:
                raise ValueError("not a record")
        except ValueError:
            # Only a line without its newline can be a torn write; a complete line that
            # does not parse is corruption and must not be skipped silently.
            if last and not complete_end:
                log.warning("trade log %s: dropping torn last line %d", p, i)
                break
            raise DataError(f"trade log {p}: line {i} is not a valid record") from None
        if last and not complete_end:
            log.warning("trade log %s: dropping last line %d (no newline: torn write)", p, i)
            break
        for key in _TIME_FIELDS:
            if isinstance(rec.get(key), str):
                rec[key] = datetime.fromisoformat(rec[key]).astimezone(timezone.utc)
        records.append(rec)
    return records


@dataclass
class ReplayState:
    """Account state rebuilt from a trade log."""

    cash: float = 0.0
    positions: dict[str, float] = field(default_factory=dict)
    open_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    n_records: int = 0
    last_ts: datetime | None = None


def replay_trade_log(source: str | Path | Iterable[dict[str, Any]]) -> ReplayState:
    """Rebuild cash, positions, open orders and fills from a trade log (path or records).

    A ``start`` record sets cash and positions; each ``filled`` record applies
    :func:`cash_after_fill` and :func:`position_after_fill` in file order; a repeated
    ``fill_id`` is applied once.
    """
    records = read_trade_log(source) if isinstance(source, (str, Path)) else list(source)
    state = ReplayState()
    filled_qty: dict[str, float] = {}
    seen: set[str] = set()
    for rec in records:
        state.n_records += 1
        state.last_ts = rec.get("ts", state.last_ts)
        event = rec.get("event")
        if event == "start":
            # A new run appended to the same file starts from its own snapshot.
            seen.clear()
            filled_qty.clear()
            state.open_orders = {}
            state.cash = float(rec.get("cash", 0.0))
            state.positions = {k: float(v) for k, v in (rec.get("positions") or {}).items()
                               if v != 0}
        elif event == "submitted":
            state.open_orders[rec["order_id"]] = rec
        elif event in ("canceled", "expired", "rejected"):
            if rec.get("order_id") is not None:
                state.open_orders.pop(rec["order_id"], None)
        elif event == "filled":
            fill_id = rec.get("fill_id")
            if fill_id is not None:
                if fill_id in seen:
                    continue
                seen.add(fill_id)
            side, qty, sym = rec["side"], float(rec["qty"]), rec["symbol"]
            state.cash = cash_after_fill(state.cash, side, float(rec["notional"]),
                                         float(rec["fee"]))
            new = position_after_fill(state.positions.get(sym, 0.0), side, qty)
            if new == 0.0:
                state.positions.pop(sym, None)
            else:
                state.positions[sym] = new
            state.fills.append(rec)
            oid = rec.get("order_id")
            if oid in state.open_orders:
                filled_qty[oid] = filled_qty.get(oid, 0.0) + qty
                if filled_qty[oid] >= float(state.open_orders[oid]["qty"]) * (1 - 1e-12):
                    del state.open_orders[oid]
    return state
