"""Crashes and failed writes: the trade log is never behind the broker, and a resume
from any record boundary ends where the uninterrupted run ends.

- Disk full (no root needed): the writer's file object raises ``ENOSPC`` from a chosen
  write on; every state change of the paper broker is written first, so the broker and
  the replay of its log stay equal, no order fills twice and no ``seq`` repeats.
- The crash-point sweep: a small deterministic real-time run is cut after every record
  (the process "dies": nothing more reaches the file), resumed, and compared with the
  uninterrupted run; then cut again at every record of the resume (a double crash).
  The full ``kill -9`` loop is ``benchmarks/bench_crash.py``.
"""

from __future__ import annotations

import collections
import errno
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simbroker
from simbroker import Bars, History
from simbroker.errors import ShortingNotAllowed, TradeLogError
from simbroker.feeds import ReplayFeed
from simbroker.paper import PaperBroker
from simbroker.runner import RealtimeRunner, paper_broker_from_log, read_resume_point
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log


class FullDisk:
    """Stands in for the log's file object: writes from number ``fail_from`` on raise
    ``ENOSPC`` (``until``: the first write that fits again), the failing one after
    writing ``partial`` bytes, as a nearly full disk does."""

    def __init__(self, fh: Any, fail_from: int, until: int | None = None, partial: int = 7):
        self.fh, self.fail_from, self.until, self.partial = fh, fail_from, until, partial
        self.calls = 0

    def write(self, data: Any) -> int:
        self.calls += 1
        if self.calls < self.fail_from or (self.until is not None and self.calls >= self.until):
            return int(self.fh.write(data))
        if self.calls == self.fail_from and self.partial:
            self.fh.write(bytes(data)[: self.partial])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


def seq_repeats(path: Path) -> int:
    counts = collections.Counter(r["seq"] for r in read_trade_log(path))
    return sum(c - 1 for c in counts.values() if c > 1)


@pytest.mark.parametrize("fail_from", [3, 10, 25, 40])
def test_thirty_buys_on_a_full_disk_leave_broker_and_log_equal(
        tmp_path: Path, fail_from: int) -> None:
    """The issue's case: 30 buys of 10 shares while writes fail from some point on."""
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=40, seed=3)
    sym = bars.symbols[0]
    path = tmp_path / "log.jsonl"
    tl = TradeLog(path)
    broker = PaperBroker(bars, cash=100_000, trade_log=tl)
    tl._fh = FullDisk(tl._fh, fail_from)
    broker.step()
    errors: list[TradeLogError] = []
    for _ in range(30):
        for action in (lambda: broker.submit_order(sym, "buy", 10), broker.step):
            try:
                action()
            except TradeLogError as exc:
                errors.append(exc)
    tl._fh = tl._fh.fh
    tl.close()
    assert errors, "the disk filled up during the run"
    assert all(e.path == str(path) and str(path) in str(e) for e in errors)
    assert all("No space left on device" in str(e) for e in errors)
    state = replay_trade_log(path)
    assert state.cash == broker.get_cash()
    assert state.positions == broker.get_positions()
    assert broker.get_positions().get(sym, 0.0) == 10.0 * len(broker.get_fills()) <= 300.0
    assert len({f["order_id"] for f in broker.get_fills()}) == len(broker.get_fills())
    assert seq_repeats(path) == 0
    assert path.read_bytes().endswith(b"\n")


def mixed_bars() -> Bars:
    return simbroker.synthetic_bars(n_symbols=2, n_bars=30, seed=21, freq="1h")


def script(broker: PaperBroker, retry: bool) -> list[str]:
    """A fixed sequence of orders, cancels and steps that reaches every kind of record:
    fills, rejections (no shorting), cancels, day expiries, stop-limit triggers.
    With ``retry``, an action whose write failed is done once more (the space is back)."""
    a, b = broker.bars.symbols
    failures: list[str] = []

    def do(name: str, fn: Any) -> Any:
        try:
            try:
                return fn()
            except TradeLogError:
                failures.append(name)
                if retry:
                    return fn()
                return None
        except ShortingNotAllowed:
            return None

    for k in range(24):
        px = float(broker.bars.close[max(broker.bar_index, 0), 0])
        if k % 3 == 0:
            do("buy", lambda: broker.submit_order(a, "buy", 5))
        if k % 4 == 1:
            do("stop-limit", lambda px=px: broker.submit_order(
                b, "buy", 3, "stop_limit", stop_price=px * 1.001, limit_price=px * 0.99,
                tif="gtc"))
        if k % 5 == 2:
            info = do("limit", lambda px=px: broker.submit_order(
                a, "buy", 2, "limit", limit_price=px * 0.5))
            if info is not None and k % 2 == 0:
                do("cancel", lambda info=info: broker.cancel_order(info["order_id"]))
        if k % 6 == 5:
            do("sell", lambda: broker.submit_order(a, "sell", 4))
        if k % 7 == 3:
            do("short", lambda: broker.submit_order(b, "sell", 1_000))
        do("step", broker.step)
    return failures


def outcome(broker: PaperBroker) -> tuple[Any, ...]:
    fills = [(f["order_id"], f["qty"], f["price"], f["fee"]) for f in broker.get_fills()]
    statuses = [(o["order_id"], o["status"]) for o in broker.get_orders()]
    return broker.get_cash(), broker.get_positions(), fills, statuses


def test_one_failed_write_anywhere_then_a_retry_gives_the_uninterrupted_result(
        tmp_path: Path) -> None:
    bars = mixed_bars()
    whole = PaperBroker(bars, trade_log=tmp_path / "whole.jsonl", allow_short=False)
    assert script(whole, retry=True) == []
    whole.close()
    events = collections.Counter(r["event"] for r in read_trade_log(tmp_path / "whole.jsonl"))
    assert {"filled", "rejected", "canceled", "expired", "triggered"} <= set(events)
    n_writes = sum(events.values())
    for fail_at in range(1, n_writes):  # counted after the start record
        path = tmp_path / f"fail{fail_at}.jsonl"
        tl = TradeLog(path)
        broker = PaperBroker(bars, trade_log=tl, allow_short=False)
        tl._fh = FullDisk(tl._fh, fail_at, until=fail_at + 1)
        failures = script(broker, retry=True)
        tl._fh = tl._fh.fh
        tl.close()
        assert len(failures) == 1, fail_at
        assert outcome(broker) == outcome(whole), (fail_at, failures)
        state = replay_trade_log(path)
        assert (state.cash, state.positions) == (broker.get_cash(), broker.get_positions())
        assert seq_repeats(path) == 0


def test_a_failed_step_can_be_called_again_and_books_the_rest_once(tmp_path: Path) -> None:
    bars = simbroker.synthetic_bars(n_symbols=4, n_bars=5, seed=2)
    path = tmp_path / "log.jsonl"
    tl = TradeLog(path)
    broker = PaperBroker(bars, trade_log=tl)
    broker.step()
    for sym in bars.symbols:
        broker.submit_order(sym, "buy", 2)
    before = broker.get_cash()
    tl._fh = FullDisk(tl._fh, 3, until=4)  # the third fill of the bar fails
    with pytest.raises(TradeLogError, match="'filled' record"):
        broker.step()
    assert broker.bar_index == 0  # the bar did not close
    assert len(broker.get_fills()) == 2
    assert len(broker.get_orders(open_only=True)) == 2
    assert replay_trade_log(read_trade_log(path)).cash == broker.get_cash() < before
    assert broker.step() == 1
    tl._fh = tl._fh.fh
    assert [f["symbol"] for f in broker.get_fills()] == list(bars.symbols)
    assert len({f["order_id"] for f in broker.get_fills()}) == 4
    assert broker.get_orders(open_only=True) == []
    tl.close()
    assert replay_trade_log(path).cash == broker.get_cash()


def test_a_failed_submit_places_nothing_and_takes_no_id(tmp_path: Path) -> None:
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=5, seed=2)
    tl = TradeLog(tmp_path / "log.jsonl")
    broker = PaperBroker(bars, trade_log=tl)
    tl._fh = FullDisk(tl._fh, 1, until=2)
    with pytest.raises(TradeLogError):
        broker.submit_order(bars.symbols[0], "buy", 1, client_order_id="c1")
    assert broker.get_orders() == []
    info = broker.submit_order(bars.symbols[0], "buy", 1, client_order_id="c1")
    assert info["order_id"] == "O1"
    tl.close()
    assert list(replay_trade_log(tmp_path / "log.jsonl").open_orders) == ["O1"]


# ------------------------------------------------------------------ the crash-point sweep
class Crash(BaseException):
    """The process dying: raised instead of every write from some record on."""


class DyingLog(TradeLog):
    """A trade log whose process dies after ``lives`` more records: from then on every
    write raises :class:`Crash` and nothing more reaches the file."""

    def __init__(self, path: Path, lives: int | None):
        super().__init__(path)
        self.lives = lives

    def write(self, event: str, ts: datetime, **fields: Any) -> dict[str, Any]:
        if self.lives is not None:
            if self.lives <= 0:
                raise Crash
            self.lives -= 1
        return super().write(event, ts, **fields)


class Trader:
    """Deterministic in (history, positions): market and stop-limit entries, GTC limit
    exits, day limits that expire, and a cancel."""

    def on_bar(self, broker: Any, history: History) -> None:
        t = history.t
        close = history.last("close")
        held = broker.get_positions()
        for i, sym in enumerate(history.symbols):
            c = float(close[i])
            if np.isnan(c):
                continue
            if (t + i) % 4 == 0:
                broker.submit_order(sym, "buy", 10)
            pos = held.get(sym, 0.0)
            if pos > 0 and (t + i) % 5 == 0:
                broker.submit_order(sym, "sell", pos, "limit", limit_price=c * 1.005,
                                    tif="gtc")
            if (t + i) % 6 == 1:
                broker.submit_order(sym, "buy", 3, "stop_limit", stop_price=c * 1.002,
                                    limit_price=c * 0.998, tif="gtc")
            if (t + i) % 7 == 2:
                info = broker.submit_order(sym, "buy", 2, "limit", limit_price=c * 0.9)
                if t % 2:
                    broker.cancel_order(info["order_id"])


SWEEP_BARS = simbroker.synthetic_bars(n_symbols=2, n_bars=24, seed=8, freq="1h")


def run_once(path: Path, lives: int | None) -> bool:
    """One process: resume from the log if there is one, run to the end or die."""
    resume = read_resume_point(path)
    with DyingLog(path, lives) as log:
        try:
            broker = paper_broker_from_log(SWEEP_BARS, resume, trade_log=log)
            RealtimeRunner(Trader(), broker, ReplayFeed(SWEEP_BARS), trade_log=log,
                           resume=resume or False, handle_signals=False,
                           run_id="sweep").run()
        except Crash:
            return False
    return True


def final(path: Path) -> tuple[Any, ...]:
    state = replay_trade_log(path)
    fills = [(f["client_order_id"], f["symbol"], f["side"], f["qty"], f["price"], f["fee"],
              f["timestamp"]) for f in state.fills]
    open_ids = sorted(str(o.get("client_order_id")) for o in state.open_orders.values())
    return fills, state.cash, state.positions, open_ids


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[Any, ...], int]:
    path = tmp_path_factory.mktemp("whole") / "log.jsonl"
    assert run_once(path, None)
    records = read_trade_log(path)
    events = collections.Counter(r["event"] for r in records)
    assert {"filled", "canceled", "expired", "triggered"} <= set(events), events
    return final(path), len(records)


def test_a_crash_at_every_record_boundary_resumes_to_the_uninterrupted_state(
        tmp_path: Path, uninterrupted: tuple[tuple[Any, ...], int]) -> None:
    want, n_records = uninterrupted
    assert len(want[0]) > 10
    for lives in range(n_records):  # dies before record lives + 1
        path = tmp_path / f"crash{lives}.jsonl"
        assert not run_once(path, lives)
        assert len(read_trade_log(path)) == lives
        assert run_once(path, None), lives
        assert final(path) == want, f"crash after record {lives}"


def test_a_second_crash_during_the_resume_still_resumes_to_the_same_state(
        tmp_path: Path, uninterrupted: tuple[tuple[Any, ...], int]) -> None:
    want, n_records = uninterrupted
    firsts = sorted({1, 2, 3, n_records // 4, n_records // 2, (3 * n_records) // 4,
                     n_records - 2})
    cases = 0
    for first in firsts:
        for second in [*range(0, 8), 15, 40]:  # the resume's start-up, then later on
            path = tmp_path / f"crash{first}-{second}.jsonl"
            assert not run_once(path, first)
            died = not run_once(path, second)
            assert run_once(path, None)
            assert final(path) == want, f"crashes after record {first}, then {second} more"
            cases += died
    assert cases >= len(firsts) * 8
