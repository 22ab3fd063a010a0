"""Feeds: the replay feed's schedule and the live feed's bar assembly."""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

import simbroker
from simbroker.errors import DataError
from simbroker.feeds import OHLCV, BarFeed, FeedClosed, PolledFeed, QueueFeed, ReplayFeed

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


def drain(feed: BarFeed) -> list[simbroker.feeds.BarEvent]:
    out = []
    while True:
        try:
            ev = feed.next_bar()
        except FeedClosed:
            return out
        assert ev is not None
        out.append(ev)


def test_replay_feed_gives_every_bar_once_in_order_with_the_bars_values() -> None:
    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=40, seed=2)
    feed = ReplayFeed(bars)
    assert isinstance(feed, BarFeed)
    events = drain(feed)
    assert len(events) == len(bars)
    got = np.array([e.close for e in events])
    np.testing.assert_array_equal(got, bars.close)
    times = [e.timestamp for e in events]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)
    assert events[0].close_time == events[0].timestamp + feed.interval
    with pytest.raises(FeedClosed):
        feed.next_bar()


def test_replay_feed_warmup_start_and_skip_to() -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=30, seed=4)
    feed = ReplayFeed(bars, start=10)
    warm = feed.warmup()
    assert warm is not None
    assert len(warm) == 10
    np.testing.assert_array_equal(warm.close, bars.close[:10])
    first = feed.next_bar()
    assert first is not None
    np.testing.assert_array_equal(first.open, bars.open[10])
    # Resuming after a restart: every bar that closed at or before a time is skipped.
    close_16 = pd.Timestamp(int(bars.close_ns[15]), tz="UTC").to_pydatetime()
    assert feed.skip_to(close_16) == 5  # bars 11..15 closed by then
    nxt = feed.next_bar()
    assert nxt is not None
    np.testing.assert_array_equal(nxt.open, bars.open[16])
    assert ReplayFeed(bars).warmup() is None


def test_replay_feed_paces_bars_on_the_wall_clock_and_honours_timeout() -> None:
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=3, seed=1)
    # Daily bars at 864,000x: one bar every 0.1 s after the first.
    feed = ReplayFeed(bars, speed=864_000)
    assert feed.next_bar() is not None
    assert feed.next_bar(timeout=0.0) is None  # not due yet
    assert feed.next_bar(timeout=5.0) is not None


def test_closing_a_replay_feed_wakes_a_blocked_reader() -> None:
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=3, seed=1)
    feed = ReplayFeed(bars, speed=1.0)  # a day per bar: would block for a day
    assert feed.next_bar() is not None
    threading.Timer(0.05, feed.close).start()
    with pytest.raises(FeedClosed):
        feed.next_bar()


@pytest.mark.parametrize("speed", [0.0, -1.0, math.nan])
def test_replay_feed_refuses_a_bad_speed(speed: float) -> None:
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=3, seed=1)
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed(bars, speed=speed)


class ManualQueueFeed(QueueFeed):
    """A QueueFeed whose wall clock the test sets."""

    now = T0

    def _wall_ns(self) -> int:
        return int(self.now.timestamp() * 1e9)


def bar(feed: QueueFeed, sym: str, i: int, px: float = 10.0) -> bool:
    return feed.push_bar(sym, T0 + i * MINUTE, px, px + 1, px - 1, px, 100.0)


def test_queue_feed_releases_a_bar_time_once_every_symbol_reported() -> None:
    feed = ManualQueueFeed(["A", "B"], MINUTE)
    bar(feed, "A", 0, 10.0)
    assert feed.next_bar(timeout=0.0) is None
    bar(feed, "B", 0, 20.0)
    ev = feed.next_bar(timeout=0.0)
    assert ev is not None
    assert ev.timestamp == T0
    np.testing.assert_array_equal(ev.close, [10.0, 20.0])


def test_queue_feed_releases_after_the_grace_period_with_nan_for_the_silent_symbol() -> None:
    feed = ManualQueueFeed(["A", "B"], MINUTE, grace=2.0)
    bar(feed, "A", 0)
    feed.now = T0 + MINUTE + timedelta(seconds=1.9)
    assert feed.next_bar(timeout=0.0) is None
    feed.now = T0 + MINUTE + timedelta(seconds=2.0)
    ev = feed.next_bar(timeout=0.0)
    assert ev is not None
    assert math.isnan(ev.close[1])
    assert ev.close[0] == 10.0
    # B's late bar for a released time is dropped, never rewriting what was seen.
    assert bar(feed, "B", 0) is False
    assert feed.dropped_late == 1


def test_queue_feed_releases_the_earlier_time_when_a_later_one_is_complete() -> None:
    feed = ManualQueueFeed(["A", "B"], MINUTE, grace=60.0)
    bar(feed, "A", 0)
    bar(feed, "A", 1)
    bar(feed, "B", 1)
    first, second = feed.next_bar(timeout=0.0), feed.next_bar(timeout=0.0)
    assert first is not None
    assert second is not None
    assert (first.timestamp, second.timestamp) == (T0, T0 + MINUTE)


def test_queue_feed_finish_flushes_then_closes_and_close_wakes_a_reader() -> None:
    feed = ManualQueueFeed(["A", "B"], MINUTE, grace=60.0)
    bar(feed, "A", 0)
    feed.finish()
    assert feed.next_bar() is not None
    with pytest.raises(FeedClosed):
        feed.next_bar()
    other = QueueFeed(["A"], MINUTE)
    started = time.monotonic()
    threading.Timer(0.05, other.close).start()
    with pytest.raises(FeedClosed):
        other.next_bar(timeout=10.0)
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize(("sym", "ohlcv", "field"), [
    ("ZZZ", (10, 11, 9, 10, 1), "symbol"),
    ("A", (10, 11, 9, 10, -1), "volume"),
    ("A", (10, 11, 9, math.nan, 1), "close"),
    ("A", (10, 9.5, 9, 10, 1), "high"),
    ("A", (0, 11, 9, 10, 1), "open"),
])
def test_queue_feed_refuses_bad_bars_naming_symbol_and_field(
        sym: str, ohlcv: tuple[float, ...], field: str) -> None:
    feed = QueueFeed(["A"], MINUTE)
    with pytest.raises(DataError) as err:
        feed.push_bar(sym, T0, *ohlcv)
    assert sym in str(err.value)
    assert field in str(err.value)
    with pytest.raises(ValueError, match="naive"):
        feed.push_bar("A", T0.replace(tzinfo=None), 10, 11, 9, 10, 1)


class ScriptedPolledFeed(PolledFeed):
    """A broker whose history is a dict and whose clock the test sets; the poll thread
    effectively never runs (poll_once is called by hand)."""

    def __init__(self, symbols: list[str], history: dict[str, dict[datetime, OHLCV]],
                 now: datetime, warmup: int = 0, poll: float = 3600.0):
        super().__init__(symbols, MINUTE, poll=poll, grace=60.0)
        self.history, self.now, self.asked = history, now, []
        self.start(warmup)

    def server_now(self) -> datetime:
        return self.now

    def fetch(self, since: datetime | None, n: int) -> dict[str, dict[datetime, OHLCV]]:
        self.asked.append((since, n))
        out: dict[str, dict[datetime, OHLCV]] = {}
        for sym, rows in self.history.items():
            times = sorted(t for t in rows if t <= self.now)  # what exists by now
            out[sym] = {t: rows[t] for t in times[-n:]}
        return out


def _history(symbols: list[str], n: int) -> dict[str, dict[datetime, OHLCV]]:
    return {s: {T0 + i * MINUTE: (10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 100.0 + j)
                for i in range(n)} for j, s in enumerate(symbols)}


def test_polled_feed_warms_up_then_hands_on_each_bar_once_it_has_closed() -> None:
    hist = _history(["A", "B"], 30)
    # 10:05:30 by the broker's clock: bars 0..4 have closed, bar 5 is still forming.
    feed = ScriptedPolledFeed(["A", "B"], hist, T0 + 5 * MINUTE + timedelta(seconds=30),
                              warmup=3)
    try:
        warm = feed.warmup()
        assert warm is not None
        # The three latest *closed* bars; the forming one is not warm-up.
        assert list(warm.index) == [pd.Timestamp(T0 + i * MINUTE) for i in (2, 3, 4)]
        np.testing.assert_array_equal(warm.close[:, 0], [12.5, 13.5, 14.5])
        assert feed.poll_once() == 0  # the forming bar is not handed on
        feed.now = T0 + 6 * MINUTE  # bar 5 closes
        assert feed.poll_once() == 2
        ev = feed.next_bar(timeout=0.0)
        assert ev is not None
        assert ev.timestamp == T0 + 5 * MINUTE
        np.testing.assert_array_equal(ev.close, [15.5, 15.5])
        np.testing.assert_array_equal(ev.volume, [100.0, 101.0])
        assert feed.poll_once() == 0  # never twice
        assert feed.next_bar(timeout=0.0) is None
    finally:
        feed.close()


def test_polled_feed_catches_up_a_long_gap_in_order() -> None:
    hist = _history(["A"], 30)
    feed = ScriptedPolledFeed(["A"], hist, T0 + 2 * MINUTE)
    try:
        feed.now = T0 + 20 * MINUTE + timedelta(seconds=1)  # 18 bars closed while away
        assert feed.poll_once() == 18
        assert feed.asked[-1][1] >= 19  # asked far enough back, not just the last 3
        times = []
        while (ev := feed.next_bar(timeout=0.0)) is not None:
            times.append(ev.timestamp)
        assert times == [T0 + i * MINUTE for i in range(2, 20)]
    finally:
        feed.close()


def test_polled_feed_keeps_polling_after_a_failed_read() -> None:
    class Flaky(ScriptedPolledFeed):
        fail = 1

        def fetch(self, since: datetime | None, n: int) -> dict[str, dict[datetime, OHLCV]]:
            if since is not None and self.fail:
                self.fail -= 1
                raise ConnectionError("socket closed")
            return super().fetch(since, n)

    feed = Flaky(["A"], _history(["A"], 10), T0 + MINUTE, poll=0.01)
    try:
        feed.now = T0 + 3 * MINUTE
        ev = feed.next_bar(timeout=10.0)
        assert ev is not None
        assert ev.timestamp == T0 + MINUTE
        assert feed.fail == 0
    finally:
        feed.close()


def test_polled_feed_refuses_a_bad_poll_interval() -> None:
    with pytest.raises(ValueError, match="poll"):
        PolledFeed(["A"], MINUTE, poll=0.0)


def test_polled_feed_without_history_hands_on_only_bars_that_close_after_start() -> None:
    hist = _history(["A"], 30)
    feed = ScriptedPolledFeed(["A"], {"A": {}}, T0 + 5 * MINUTE + timedelta(seconds=10))
    try:
        feed.history = hist  # the endpoint answers only once the feed has started
        feed.now = T0 + 6 * MINUTE
        assert feed.poll_once() == 1  # bar 5; bars 0..4 closed before the start
        ev = feed.next_bar(timeout=0.0)
        assert ev is not None
        assert ev.timestamp == T0 + 5 * MINUTE
    finally:
        feed.close()
