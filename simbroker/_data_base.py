"""The parts of :func:`~simbroker.data.load_bars` share these: the normalized long-form rows
(:class:`_Long`), the array and time-value types, and the conversions of a time or an
interval argument to UTC nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker._data_time import NAT

TimeLike: TypeAlias = "datetime | pd.Timestamp | np.datetime64 | str"
IntervalLike: TypeAlias = "str | timedelta | pd.Timedelta | np.timedelta64"
_NAT = NAT
_NS_PER_DAY = 86_400_000_000_000
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class _Long:
    """Long-form bars as parsed arrays, one entry per input row."""

    ts: I64  # ns since epoch, naive UTC; _NAT where missing or unparsable
    codes: I64  # index into symbols; -1 where missing
    symbols: tuple[str, ...]  # sorted
    values: dict[str, F64]
    unparsed: dict[str, tuple[BoolArray, pd.Series]]  # field -> (rows, raw values)
    tcodes: I64  # index into times
    times: I64  # the sorted unique values of ts
    time_reasons: dict[int, str] = field(default_factory=dict)  # bad timestamp rows
    day_stamps: bool = False  # naive dates: each names a whole day
    extras: dict[str, F64] = field(default_factory=dict)  # dividend, split per row

    def __len__(self) -> int:
        return len(self.ts)


def _frozen(a: F64) -> F64:
    """Mark a fresh array read-only so ``Bars`` takes it without copying."""
    a.setflags(write=False)
    return a


def _interval(value: IntervalLike) -> np.timedelta64:
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"interval={value!r} is not a pandas Timedelta string such as '1min' or '1D'"
        ) from None
    if pd.isna(td) or td.value <= 0:
        raise ValueError(f"interval={value!r} must be a positive duration")
    return np.timedelta64(int(td.value), "ns")


def _utc_timestamp(value: TimeLike) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a timestamp") from None
    if pd.isna(ts):
        raise ValueError(f"{value!r} is not a timestamp")
    out: pd.Timestamp = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return out


def _utc_ns(value: TimeLike) -> int:
    return int(_utc_timestamp(value).as_unit("ns").value)


def _maybe_utc(value: TimeLike | None) -> pd.Timestamp | None:
    return None if value is None else _utc_timestamp(value)
