"""The result frames of a vectorized run: its fills and orders as the paper broker's
result has them, with the order and fill ids, symbols and statuses built as Arrow string
arrays in a few numpy passes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from simbroker.results.columns import _FILL_COLUMNS
from simbroker.sessions import date_sessions

if TYPE_CHECKING:
    from simbroker.bars import Bars

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]

_EXPIRED_REASON = "day order not filled by the session end"
_STATUS = ("filled", "new", "expired", "canceled")
# Whether pandas infers its ``str`` dtype for strings (pandas >= 3), as the paper broker's
# orders frame then has it.
_INFER_STR = pd.Series(["a"]).dtype != object


def _strings(data: np.ndarray, lengths: I64) -> Any:
    """An Arrow ``large_string`` array of consecutive UTF-8 pieces of ``data``.

    Strings for tens of thousands of orders are built here with a few numpy passes; Arrow
    compute kernels cost more on their first call in a process than the work itself.
    """
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.large_string(), len(lengths),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _pick(choices: Sequence[str], codes: np.ndarray) -> Any:
    """``choices[codes]`` as an Arrow string array."""
    enc = [c.encode() for c in choices]
    size = np.array([len(e) for e in enc], np.int64)
    start = np.cumsum(size) - size
    blob = np.frombuffer(b"".join(enc) or b" ", np.uint8)
    lengths = size[codes]
    # Byte k of string i is blob[start[code_i] + k]: one gather over all bytes.
    first = np.cumsum(lengths) - lengths
    src = np.repeat(start[codes] - first, lengths) + np.arange(int(lengths.sum()))
    return _strings(blob[src], lengths)


def _numbered(numbers: np.ndarray, prefix: str = "O", suffix: str = "") -> Any:
    """``f"{prefix}{n}{suffix}"`` for ascending positive integers, as an Arrow array."""
    numbers = np.asarray(numbers, np.int64)
    pre, suf = prefix.encode(), suffix.encode()
    # Ascending, so the numbers with more than d digits are a tail: slices, not masks.
    tails = [0]
    while tails[-1] < len(numbers):
        i = int(np.searchsorted(numbers, 10 ** len(tails)))
        tails.append(i)
    tails = tails[1:]
    digits = np.ones(len(numbers), np.int64)
    for i in tails[:-1]:
        digits[i:] += 1
    lengths = len(pre) + digits + len(suf)
    begin = np.cumsum(lengths) - lengths
    data = np.empty(int(lengths.sum()), np.uint8)
    for k, b in enumerate(pre):
        data[begin + k] = b
    end = begin + len(pre) + digits  # one past each number's last digit
    rest = numbers.copy()
    for d, i in enumerate([0, *tails[:-1]]):
        data[end[i:] - 1 - d] = rest[i:] % 10 + ord("0")
        rest[i:] //= 10
    for k, b in enumerate(suf):
        data[end + k] = b
    return _strings(data, lengths)


def _str_column(arr: Any) -> Any:
    """An Arrow string array as the column pandas would infer from Python strings."""
    return pd.array(arr, dtype="str") if _INFER_STR else arr.to_numpy(zero_copy_only=False)


def _object_column(arr: Any) -> pd.Series:
    column: pd.Series = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object,
                                  copy=False)
    return column


def _fills_frame(bars: Bars, ft: I64, fj: I64, fsign: F64, fqty: F64, price: F64, fee: F64,
                 notional: F64, order_ids: Any, fill_ids: Any
                 ) -> tuple[pd.DataFrame, I64, np.ndarray]:
    """The fills frame of a vectorized run, typed as the paper broker's result has it.

    Also returns the fills' times (microseconds, as the paper broker stamps, in ns) and
    the symbol names as an object array, which the round trips reuse.
    """
    fill_ns: I64 = bars.ts_ns[ft] // 1000 * 1000
    names = np.array(bars.symbols, dtype=object)
    sides = np.array(["sell", "buy"], dtype=object)
    if _INFER_STR:  # a few distinct strings: take them rather than make one per fill
        symbol_col: Any = pd.array(names, dtype="str").take(fj)
        side_col: Any = pd.array(sides, dtype="str").take((fsign > 0).view(np.int8))
    else:
        symbol_col, side_col = names[fj], sides[(fsign > 0).view(np.int8)]
    fills = pd.DataFrame({
        "timestamp": pd.DatetimeIndex(fill_ns.view("M8[ns]")).tz_localize("UTC"),
        "symbol": pd.Series(symbol_col, copy=False),
        "side": pd.Series(side_col, copy=False),
        "qty": fqty,
        "price": price,
        "fee": fee,
        "notional": notional,
        "order_id": _object_column(order_ids),
        "client_order_id": pd.Series(np.full(len(ft), None, dtype=object), dtype=object),
        "fill_id": _object_column(fill_ids),
    }, columns=_FILL_COLUMNS)
    return fills, fill_ns, names

def _orders_frame(bars: Bars, ot: I64, oj: I64, sign: F64, qty: F64, filled: B, fi: I64,
                  notional: F64, order_ids: Any, session_tz: str) -> pd.DataFrame:
    """Every order with its final status, as ``PaperBroker.get_orders()`` reports it."""
    n_o, n_t = len(ot), len(bars)
    filled_qty = np.where(filled, qty, 0.0)
    avg = np.full(n_o, np.nan)
    avg[fi] = notional / qty[fi]
    # Unfilled: never reached a bar (placed at the last close) -> "new"; its trading day
    # ended on the next bar -> "expired"; else re-decided at the next close -> "canceled".
    status = np.zeros(n_o, np.int8)  # codes into _STATUS
    reason = np.full(n_o, None, dtype=object)
    unfilled = ~filled
    last = unfilled & (ot + 1 >= n_t)
    status[last] = 1
    rest = unfilled & ~last
    if rest.any():
        sessions = bars.sessions if bars.sessions is not None else date_sessions(bars,
                                                                                  session_tz)
        day_over = rest.copy()
        _, expire = sessions.order_window(bars.close_ns[ot[rest]], ot[rest] + 1, oj[rest])
        day_over[rest] = expire <= ot[rest] + 1
        status[day_over] = 2
        reason[day_over] = _EXPIRED_REASON
        status[rest & ~day_over] = 3
    zeros = np.zeros(n_o, np.int8)
    close_ns = bars.ts_ns[ot] + int(bars.interval.astype(np.int64))
    submitted = (close_ns // 1000 * 1000).view("M8[ns]")
    frame: pd.DataFrame = pd.DataFrame({
        "order_id": _str_column(order_ids),
        "client_order_id": pd.Series(np.full(n_o, None, dtype=object), dtype=object),
        "symbol": _str_column(_pick(bars.symbols, oj)),
        "side": _str_column(_pick(("sell", "buy"), (sign > 0).view(np.int8))),
        "qty": qty,
        "order_type": _str_column(_pick(("market",), zeros)),
        "limit_price": np.full(n_o, np.nan),
        "stop_price": np.full(n_o, np.nan),
        "tif": _str_column(_pick(("day",), zeros)),
        "status": _str_column(_pick(_STATUS, status)),
        "filled_qty": filled_qty,
        "avg_fill_price": avg,
        "submitted_at": pd.DatetimeIndex(submitted).tz_localize("UTC"),
        "reason": pd.Series(reason, dtype=object),
    })
    return frame
