"""build_result reads a paper broker's records column by column: the same tables as the
per-order dicts give (``orders_frame(get_orders())``, fills through pandas' general
datetime conversion), bit for bit, for every order kind and fill pattern."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import PaperBroker
from simbroker.errors import OrderRejected
from simbroker.results import build, build_result, orders_frame
from simbroker.results.build import positions_after_bars
from simbroker.results.columns import _FILL_COLUMNS, _STR_DTYPE, utc_times
from simbroker.testing import run_order_stream
from simbroker.testing.strategies import bar_panels, order_streams

PROPS = settings(max_examples=40, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def reference_fills(fills: list[Any]) -> pd.DataFrame:
    """The fills table as it was built before (pandas' per-element conversion): the oracle."""
    cols = {c: [f[c] for f in fills] for c in _FILL_COLUMNS}
    frame = pd.DataFrame({
        c: (pd.to_datetime(v, utc=True).as_unit("ns") if c == "timestamp"
            else np.asarray(v, np.float64) if c in ("qty", "price", "fee", "notional")
            else pd.array(v, dtype=_STR_DTYPE) if c in ("symbol", "side")
            else pd.Series(v, dtype=object))
        for c, v in cols.items()
    })
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    out: pd.DataFrame = frame
    return out


def assert_tables_match(broker: PaperBroker) -> None:
    result = build_result(broker)
    pd.testing.assert_frame_equal(result.orders, orders_frame(broker.get_orders()),
                                  check_exact=True)
    pd.testing.assert_frame_equal(result.fills, reference_fills(broker.get_fills()),
                                  check_exact=True)


@PROPS
@given(data=st.data(), cap=st.sampled_from([None, 0.01, 0.5]), short=st.booleans())
def test_tables_match_the_per_order_dicts(data: st.DataObject, cap: float | None,
                                          short: bool) -> None:
    bars = data.draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 30),
                                allow_missing=True))
    stream = data.draw(order_streams(bars, max_size=25, fractional=True))
    broker = PaperBroker(bars, max_volume_share=cap, allow_short=short)
    assert_tables_match(run_order_stream(broker, stream))


def test_order_kinds_and_final_states_match() -> None:
    """Trailing stops (their level moves), brackets (held legs), canceled, expired and
    still-open orders, client ids and partial fills."""
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=60, seed=11)
    broker = PaperBroker(bars, max_volume_share=0.002, allow_short=False)
    broker.step()
    a, b = bars.symbols
    broker.submit_order(a, "buy", 50, client_order_id="first")
    broker.submit_order(b, "buy", 20, "limit", limit_price=1.0, tif="gtc")  # rests
    for t in range(1, 55):
        broker.step()
        if t == 3:
            broker.submit_order(a, "sell", 10, "trailing_stop", trail_percent=1.0,
                                tif="gtc")
            broker.submit_order(b, "buy", 10, order_class="bracket",
                                take_profit={"limit_price": 1e6},
                                stop_loss={"stop_price": 1e-3})
        if t == 5:
            gone = broker.submit_order(a, "buy", 5, "limit", limit_price=1.0, tif="gtc")
            broker.cancel_order(gone["order_id"])
            broker.submit_order(b, "buy", 1e9)  # capped: fills in parts over bars
        if t == 8:
            with pytest.raises(OrderRejected):  # more than held: no order record
                broker.submit_order(b, "sell", 1e12)
        if t == 10:
            broker.submit_order(a, "buy", 3, "stop", stop_price=1e6)  # day: expires
    kinds = {o["order_type"] for o in broker.get_orders()}
    assert "trailing_stop" in kinds
    statuses = {o["status"] for o in broker.get_orders()}
    assert {"filled", "canceled", "expired", "new"} <= statuses
    trailing = [o for o in broker.get_orders() if o["order_type"] == "trailing_stop"]
    assert trailing[0]["stop_price"] is not None  # its level as of now, not a field
    assert_tables_match(broker)


def test_no_orders_gives_the_typed_empty_tables() -> None:
    broker = PaperBroker(simbroker.synthetic_bars(n_symbols=1, n_bars=3, seed=1))
    while broker.has_next:
        broker.step()
    assert_tables_match(broker)
    result = build_result(broker)
    assert str(result.fills["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(result.orders["submitted_at"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize("values", [
    [],
    [None],
    [pd.Timestamp("2024-03-01 09:30:00.123456", tz="UTC"), None],
    [pd.Timestamp("2024-03-01 09:30", tz="America/New_York"),
     pd.Timestamp("2024-03-01 09:30", tz="UTC")],  # mixed zones: pandas' general path
    [pd.Timestamp("2024-03-01 09:30")],  # naive: taken as UTC
    [pd.Timestamp("2024-03-01 09:30", tz="Europe/Berlin")],
])
def test_utc_times_equals_pandas_general_conversion(values: list[Any]) -> None:
    expected = pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(
        "datetime64[ns, UTC]")
    pd.testing.assert_series_equal(utc_times(values), expected, check_exact=True)


def reference_positions(bar: np.ndarray, sym: np.ndarray, after: np.ndarray, n_bars: int,
                        init: np.ndarray) -> np.ndarray:
    """Positions after each bar as they were built before (NaN grid, forward fill)."""
    n = len(init)
    pos = np.full((n_bars + 1, n), np.nan)
    pos[0] = init
    if len(bar):
        key = bar * n + sym
        _, first_rev = np.unique(key[::-1], return_index=True)
        last = len(key) - 1 - first_rev
        pos[bar[last] + 1, sym[last]] = after[last]
    out: np.ndarray = pd.DataFrame(pos).ffill().to_numpy()[1:]
    return out


@PROPS
@given(data=st.data(), n=st.integers(1, 4), n_bars=st.integers(0, 12),
       cells=st.sampled_from([1, 2, 5, 2**16]))
def test_positions_after_bars_carry_the_latest_entry(data: st.DataObject, n: int,
                                                     n_bars: int, cells: int) -> None:
    """Against the old NaN-grid build, over blocks of every size (one row up to all)."""
    m = data.draw(st.integers(0, 30 if n_bars else 0))
    bar = np.sort(np.array(data.draw(st.lists(st.integers(0, max(n_bars - 1, 0)),
                                              min_size=m, max_size=m)), np.int64))
    sym = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)),
                   np.int64)
    amounts = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)
    after = np.array(data.draw(st.lists(amounts, min_size=m, max_size=m)), np.float64)
    init = np.array(data.draw(st.lists(amounts, min_size=n, max_size=n)), np.float64)
    with mock.patch.object(build, "_POSITION_CELLS", cells):
        got = positions_after_bars(bar, sym, after, n_bars, init)
    assert got.shape == (n_bars, n)
    np.testing.assert_array_equal(got, reference_positions(bar, sym, after, n_bars, init))
