"""The result's tables: their columns and dtypes, built from the broker's records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from simbroker._paper_fills import FillLog

_FILL_COLUMNS = ["timestamp", "symbol", "side", "qty", "price", "fee", "notional", "order_id",
                 "client_order_id", "fill_id"]
_ORDER_COLUMNS = ["order_id", "client_order_id", "symbol", "side", "qty", "order_type",
                  "limit_price", "stop_price", "tif", "status", "filled_qty", "avg_fill_price",
                  "submitted_at", "reason"]
_ORDER_STR = ("order_id", "symbol", "side", "order_type", "tif", "status")
_ORDER_FLOAT = ("qty", "limit_price", "stop_price", "filled_qty", "avg_fill_price")
# The string dtype pandas infers for Python strings (``str`` from pandas 3, else object),
# so a typed frame compares equal to one pandas built from dicts.
_STR_DTYPE: Any = pd.Series(["a"]).dtype


def orders_frame(orders: list[Any]) -> pd.DataFrame:
    """Orders (``OrderInfo`` dicts) as a DataFrame with fixed columns and dtypes.

    Strings as pandas infers them, prices and quantities float64 (``NaN`` = none),
    ``submitted_at`` datetime64[ns, UTC], ``client_order_id``/``reason`` object (``None`` =
    none): the same whether there are no orders, none filled, or many.
    """
    return orders_table({c: [o[c] for o in orders] for c in _ORDER_COLUMNS})


def orders_table(cols: dict[str, list[Any]]) -> pd.DataFrame:
    """The orders frame of :func:`orders_frame` from its columns as lists (one per
    name in ``_ORDER_COLUMNS``, floats or ``None`` for the prices and quantities)."""
    return orders_typed({c: order_column(c, cols[c]) for c in _ORDER_COLUMNS})


def order_column(name: str, values: list[Any]) -> Any:
    """One column of the orders frame, typed (see :func:`orders_frame`)."""
    if name in _ORDER_STR:
        return pd.array(values, dtype=_STR_DTYPE) if name == "order_id" else strings(values)
    if name in _ORDER_FLOAT:
        return floats(values)
    if name == "submitted_at":
        return utc_times(values)
    return pd.Series(values, dtype=object)


def strings(values: list[Any]) -> Any:
    """``pd.array(values, dtype=<str>)``, the same values and dtype; a column of one
    repeated string (a run's one symbol, every order a market order, all filled) is
    converted once and taken, not converted element by element."""
    if values and values.count(values[0]) == len(values) and isinstance(values[0], str):
        return pd.array(values[:1], dtype=_STR_DTYPE).take(np.zeros(len(values), np.intp))
    return pd.array(values, dtype=_STR_DTYPE)


def floats(values: list[Any]) -> np.ndarray:
    """``values`` (floats, ``None`` = none) as float64 with ``NaN`` for ``None``."""
    try:  # one C pass when none is missing (np.array first discovers each element's type)
        return np.fromiter(values, np.float64, len(values))
    except TypeError:  # a None
        pass
    if values.count(None) == len(values):  # no limit or stop price on any order
        return np.full(len(values), np.nan)
    return np.array(values, np.float64)


def orders_typed(typed: dict[str, Any]) -> pd.DataFrame:
    """The orders frame from its columns as :func:`order_column` types them."""
    frame: pd.DataFrame = pd.DataFrame(typed, columns=_ORDER_COLUMNS)
    return frame


def utc_times(values: list[Any]) -> pd.Series:
    """Datetimes (aware, naive taken as UTC, or ``None``) as a datetime64[ns, UTC] Series.

    One C pass when they share a time zone (a broker's times are all UTC), else pandas'
    general per-element conversion: the same values either way.
    """
    try:
        index = pd.DatetimeIndex(values)
    except (TypeError, ValueError):  # mixed time zones, or not datetimes
        index = None
    if index is None or (index.tz is None and bool(index.notna().any())):
        general: pd.Series = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        return general.astype("datetime64[ns, UTC]")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    out: pd.Series = pd.Series(index.as_unit("ns"), copy=False).astype("datetime64[ns, UTC]")
    return out


def _fills_frame(fills: Sequence[Any]) -> pd.DataFrame:
    """Fills as a DataFrame with the same columns and dtypes whether empty or not:
    ``symbol`` and ``side`` strings as in the orders and trades tables, ids ``object``
    (``client_order_id`` may be ``None``). A paper broker's :class:`FillLog` gives its
    columns directly (no ``Fill`` dict built)."""
    if isinstance(fills, FillLog):
        return fills_table(fills.columns())
    return fills_table({c: [f[c] for f in fills] for c in _FILL_COLUMNS})


def fills_table(cols: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """The fills frame of :func:`_fills_frame` from its columns (one per name in
    ``_FILL_COLUMNS``; the numbers as any sequence of floats)."""
    frame: pd.DataFrame = pd.DataFrame({
        c: (utc_times(list(cols[c])) if c == "timestamp"
            else np.array(cols[c], np.float64) if c in ("qty", "price", "fee", "notional")
            # Never missing: the string dtype of the orders and trades tables too.
            else strings(list(cols[c])) if c in ("symbol", "side")
            else pd.Series(list(cols[c]), dtype=object))
        for c in _FILL_COLUMNS
    }, columns=_FILL_COLUMNS)
    return frame


def _last_valid(a: np.ndarray) -> np.ndarray:
    """The last non-NaN value of each column (NaN where a column has none)."""
    valid = ~np.isnan(a)
    last = a.shape[0] - 1 - np.argmax(valid[::-1], axis=0)
    out: np.ndarray = np.where(valid.any(axis=0), a[last, np.arange(a.shape[1])], np.nan)
    return out


def _ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN down each column (vectorized)."""
    if a.size == 0:
        return a
    idx = np.where(np.isnan(a), 0, np.arange(a.shape[0])[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    out: np.ndarray = a[idx, np.arange(a.shape[1])]
    return out


def _bfill(a: np.ndarray) -> np.ndarray:
    """Back-fill NaN up each column (vectorized)."""
    return _ffill(a[::-1])[::-1]


