"""Bars takes its timestamps without a copy when it safely can, and checks their order
a chunk at a time with the same verdict as a whole-array ``np.diff``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simbroker.bars as bars_mod
from simbroker.bars import Bars
from simbroker.errors import DataError


def _bars(ts: object, n: int) -> Bars:
    close = np.full((n, 1), 10.0)
    close.setflags(write=False)
    return Bars(timestamps=ts, symbols=("A",), interval=np.timedelta64(60, "s"),  # type: ignore[arg-type]
                open=close, high=close, low=close, close=close, volume=close)


def test_read_only_timestamps_are_kept_not_copied() -> None:
    ts = np.arange(5).astype("datetime64[ns]")
    ts.setflags(write=False)
    assert np.shares_memory(_bars(ts, 5).timestamps, ts)


def test_int64_nanoseconds_are_viewed() -> None:
    ns = np.arange(0, 50, 10, dtype=np.int64)
    ns.setflags(write=False)
    b = _bars(ns, 5)
    assert np.shares_memory(b.timestamps, ns)
    assert b.timestamps.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(b.ts_ns, ns)


def test_writeable_timestamps_are_copied_and_frozen() -> None:
    ts = np.arange(5).astype("datetime64[ns]")
    b = _bars(ts, 5)
    assert not np.shares_memory(b.timestamps, ts)
    assert not b.timestamps.flags.writeable
    ts[0] = np.datetime64(-5, "ns")  # the caller's array is still the caller's
    assert b.timestamps[0] == np.datetime64(0, "ns")


def test_other_inputs_convert_as_before() -> None:
    us = np.arange(3).astype("datetime64[us]")
    np.testing.assert_array_equal(_bars(us, 3).ts_ns, [0, 1000, 2000])
    strided = np.arange(6).astype("datetime64[ns]")[::2]
    b = _bars(strided, 3)
    assert b.timestamps.flags.c_contiguous
    np.testing.assert_array_equal(b.ts_ns, [0, 2, 4])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=0, max_size=40), st.integers(1, 7))
def test_chunked_order_check_matches_diff(steps: list[int], chunk: int) -> None:
    v = np.cumsum(np.array([0, *steps], np.int64))
    expected = len(v) < 2 or bool(np.all(np.diff(v) > 0))
    old = bars_mod._CHECK_CHUNK
    bars_mod._CHECK_CHUNK = chunk
    try:
        assert bars_mod._increasing(v) is expected
        if not expected:
            ts = v.astype("datetime64[ns]")
            with pytest.raises(DataError, match="strictly increasing"):
                _bars(ts, len(v))
    finally:
        bars_mod._CHECK_CHUNK = old
