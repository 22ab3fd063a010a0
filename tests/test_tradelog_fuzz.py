"""Fuzzing the trade log reader: whatever the bytes, only ``TradeLogError`` comes out.

Three sources of bad input: raw bytes, a valid log damaged line by line (deleted,
repeated, swapped, flipped, torn), and well-chained records whose fields hold any JSON
value. Reading, replaying, resuming and repairing must each either succeed or raise
:class:`~simbroker.errors.TradeLogError` (a :class:`~simbroker.errors.SimbrokerError`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

import simbroker
from simbroker.errors import SimbrokerError, TradeLogError
from simbroker.runner import paper_broker_from_log, read_resume_point
from simbroker.tradelog import (
    TradeLog,
    line_digest,
    read_trade_log,
    repair_trade_log,
    replay_trade_log,
)

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=timezone.utc)
BARS = simbroker.synthetic_bars(n_symbols=1, n_bars=5, seed=1)  # symbol SYM000
FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

assert issubclass(TradeLogError, SimbrokerError)


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="simbroker.tradelog")


def every_reader(path: Path) -> bool:
    """Read, replay, resume and repair ``path``; only TradeLogError may escape.

    True when a paper broker was resumed from it."""
    records = None
    resumed = False
    error: TradeLogError | None = None
    try:
        records = read_trade_log(path)
    except TradeLogError as exc:
        error = exc
    assert error is None or error.path == str(path)
    if records is not None:
        with contextlib.suppress(TradeLogError):
            replay_trade_log(records)
    with contextlib.suppress(TradeLogError):
        resume = read_resume_point(path)
        if resume is not None:
            paper_broker_from_log(BARS, resume, trade_log=None)
            resumed = True
    report = repair_trade_log(path)  # never raises for content...
    read_trade_log(path)  # ...and leaves a file that reads and replays
    replay_trade_log(path)
    if report.backup is not None:
        report.backup.unlink()
    return resumed


def valid_log(path: Path) -> list[bytes]:
    path.unlink(missing_ok=True)  # tmp_path is shared by a test's examples
    with TradeLog(path) as tl:
        tl.write("start", T0, cash=10_000.0, positions={"X": 5.0}, broker="paper")
        tl.write("runner_start", T0, run_id="r1", resumed=False)
        for i in range(1, 7):
            ts = T0 + timedelta(minutes=i)
            tl.write("submitted", ts, order_id=f"O{i}", client_order_id=f"r1-{i}",
                     symbol="X", side="buy" if i % 2 else "sell", qty=float(i),
                     order_type="limit", limit_price=100.0 + i, stop_price=None, tif="day")
            tl.write("filled", ts, fill_id=f"O{i}-1", order_id=f"O{i}",
                     client_order_id=f"r1-{i}", symbol="X", side="buy" if i % 2 else "sell",
                     qty=float(i), price=100.0, fee=0.01, notional=100.0 * i, timestamp=ts)
            tl.write("bar", ts, run_id="r1", n=i, bar=ts - timedelta(minutes=1), bar_close=ts)
        tl.write("runner_stop", T0 + timedelta(hours=1), run_id="r1", reason="feed ended")
    return path.read_bytes().splitlines(keepends=True)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_any_bytes(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(raw)
    every_reader(path)


@FUZZ
@given(prefix_lines=st.integers(0, 3), raw=st.binary(max_size=200))
def test_any_bytes_after_valid_records(tmp_path: Path, prefix_lines: int, raw: bytes) -> None:
    path = tmp_path / "fuzz.jsonl"
    lines = valid_log(path)
    path.write_bytes(b"".join(lines[:prefix_lines]) + raw)
    every_reader(path)


EDITS = st.sampled_from(["delete", "duplicate", "swap", "flip", "tear", "insert"])


@FUZZ
@given(edit=EDITS, data=st.data())
def test_a_damaged_valid_log(tmp_path: Path, edit: str, data: st.DataObject) -> None:
    path = tmp_path / "fuzz.jsonl"
    lines = valid_log(path)
    n = len(lines)
    i = data.draw(st.integers(0, n - 1), label="line")
    damaged = list(lines)
    must_fail = False
    if edit == "delete":
        del damaged[i]
        must_fail = i < n - 1  # losing the last line looks like a crash before it
    elif edit == "duplicate":
        damaged.insert(i, lines[i])
        must_fail = True
    elif edit == "swap":
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i), label="other")
        damaged[i], damaged[j] = damaged[j], damaged[i]
        must_fail = True
    elif edit == "flip":
        line = bytearray(lines[i])
        k = data.draw(st.integers(0, len(line) - 2), label="byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        line[k] ^= 1 << bit
        damaged[i] = bytes(line)
        # A changed line shows in the next line's 'prev' (nothing follows the last one);
        # a flip to a newline splits the line instead.
        must_fail = i < n - 1 and b"\n" not in line[:-1]
    elif edit == "tear":
        damaged = damaged[: i + 1]
        damaged[i] = lines[i][: data.draw(st.integers(0, len(lines[i]) - 1), label="cut")]
    else:
        damaged.insert(i, data.draw(st.binary(max_size=60), label="junk"))
    path.write_bytes(b"".join(damaged))
    if must_fail:
        with pytest.raises(TradeLogError) as info:
            read_trade_log(path)
        assert info.value.line is not None
        assert info.value.line <= i + 2
    every_reader(path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)
SYMBOLS = st.sampled_from(["SYM000", "X"])
KEYS = st.sampled_from(["cash", "positions", "open_orders", "order_id", "fill_id", "symbol",
                        "side", "qty", "price", "fee", "notional", "limit_price",
                        "stop_price", "order_type", "tif", "client_order_id", "run_id", "n",
                        "bar", "bar_close", "reason", "timestamp", "submitted_at"])
EVENTS = st.sampled_from(["start", "submitted", "filled", "canceled", "expired", "rejected",
                          "triggered", "runner_start", "bar", "runner_stop", "kill",
                          "kill_reset", "other"])
TIMES = st.one_of(JSON, st.sampled_from(["2024-01-02T14:30:00+00:00", "2024-01-02T14:30:00",
                                          "not a time", "9999-12-31T23:59:59-12:00"]))
RECORDS = st.lists(st.tuples(EVENTS, st.dictionaries(KEYS, st.one_of(JSON, TIMES),
                                                     max_size=8)), max_size=8)


def chained(records: list[tuple[str, dict[str, Any]]], t0: datetime = T0) -> bytes:
    out, prev = [], None
    for seq, (event, fields) in enumerate(records, start=1):
        rec = {"seq": seq, "prev": prev, "ts": (t0 + timedelta(seconds=seq)).isoformat(),
               "event": event, **fields}
        line = json.dumps(rec, separators=(",", ":")).encode()
        prev = line_digest(line)
        out.append(line + b"\n")
    return b"".join(out)


@FUZZ
@given(records=RECORDS)
def test_well_chained_records_with_any_fields(tmp_path: Path,
                                              records: list[tuple[str, dict[str, Any]]]) -> None:
    path = tmp_path / "fuzz.jsonl"
    raw = chained(records)
    assume(raw or records == [])
    path.write_bytes(raw)
    every_reader(path)


@FUZZ
@given(records=RECORDS)
def test_replay_of_any_record_objects(records: list[tuple[str, dict[str, Any]]]) -> None:
    items: list[Any] = [{"event": e, **f} for e, f in records] + [None, 3, "x"]
    error: TradeLogError | None = None
    try:
        replay_trade_log(items)
    except TradeLogError as exc:
        error = exc
    assert error is not None  # the trailing non-records at least are refused
    assert error.line is not None


ORDER = st.fixed_dictionaries({
    "order_id": st.one_of(*[st.sampled_from(["O1", "O2"])] * 3, JSON),
    "symbol": st.one_of(SYMBOLS, SYMBOLS, SYMBOLS, JSON),
    "side": st.sampled_from(["buy", "sell", "BUY", "buy", "sell", "hold"]),
    "qty": st.one_of(st.floats(0.5, 100), st.floats(0.5, 100), st.floats(0.5, 100), JSON),
    "order_type": st.sampled_from(["market", "limit", "stop", "stop_limit"] * 2 + ["bogus"]),
    "limit_price": st.one_of(st.none(), st.floats(1, 200), st.floats(1, 200), JSON),
    "stop_price": st.one_of(st.none(), st.floats(1, 200), st.floats(1, 200), JSON),
    "tif": st.sampled_from(["day", "gtc", "day", "gtc", "forever"]),
    "client_order_id": st.one_of(st.none(), st.sampled_from(["c1", "c2"]),
                                 st.sampled_from(["c3", "c4"]), JSON),
}, optional={"triggered_at": TIMES})


@FUZZ
@given(orders=st.lists(ORDER, max_size=2), carried=st.lists(ORDER, max_size=1),
       cash=st.one_of(st.floats(0, 1e6), st.floats(0, 1e6), st.floats(0, 1e6), JSON),
       bar=st.one_of(st.none(), st.none(), st.none(), TIMES))
def test_resuming_a_runner_log_with_any_order_fields(
        tmp_path: Path, orders: list[dict[str, Any]], carried: list[dict[str, Any]],
        cash: Any, bar: Any) -> None:
    opened = BARS.index[1].isoformat()
    closed = BARS.index[2].isoformat()
    records: list[tuple[str, dict[str, Any]]] = [
        ("start", {"cash": cash, "positions": {"SYM000": 1.0}, "open_orders": carried}),
        ("runner_start", {"run_id": "r"}),
        *[("submitted", o) for o in orders],
        ("bar", {"run_id": "r", "n": 1, "bar": opened,
                 "bar_close": BARS.index[1].isoformat() if bar is None else bar}),
        ("bar", {"run_id": "r", "n": 2, "bar": opened, "bar_close": closed}),
    ]
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(chained(records, BARS.index[0].to_pydatetime()))
    note_event("resumed" if every_reader(path) else "refused")
