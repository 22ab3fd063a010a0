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
from simbroker.feeds import BarFeed, FeedClosed, QueueFeed, ReplayFeed

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
