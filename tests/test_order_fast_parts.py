"""The cheaper parts of an order's round trip give what the code they replaced gave.

- ``SimulatedClock.now()`` (a constant microsecond times an int) is the tz-aware UTC
  ``datetime`` of its nanoseconds, floored to the microsecond, across the int64 range;
- the small-book matcher (memoryview reads of the book and the panel) books the same
  fills, ledger rows and order states as the numpy matcher, on books of market orders
  and of priced orders over bars with quiet (zero-volume or missing) cells, with volumes
  known or not;
- (``day`` windows read through the flat lookups: ``test_paper_fast_paths.py``'s
  ``test_day_windows_under_the_date_rule_are_order_window``);
- the ledgers kept as lists still make the result's tables and a run's fills by time.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import PaperBroker
from simbroker.clock import SimulatedClock

PROPS = settings(max_examples=40, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@settings(max_examples=200, deadline=None)
@given(ns=st.one_of(st.integers(-(2**63), 2**63 - 1),
                    st.integers(-10**12, 10**12),
                    st.integers(1_400_000_000, 1_900_000_000).map(lambda s: s * 10**9 + 999)))
def test_clock_now_is_the_utc_datetime_of_its_nanoseconds(ns: int) -> None:
    clock = SimulatedClock()
    clock.set(ns)
    now = clock.now()
    seconds, micros = divmod(ns // 1000, 1_000_000)  # floors, before the epoch too
    want = (_UTC_EPOCH + timedelta(seconds=seconds)).replace(microsecond=micros)
    assert type(now) is datetime
    assert now == want
    assert now.tzinfo is timezone.utc
    assert now.microsecond == want.microsecond
    assert now.isoformat() == want.isoformat()


def _quiet(bars: simbroker.Bars, holes: list[tuple[int, int]], known: bool,
           missing: bool) -> simbroker.Bars:
    """``bars`` with no volume (or, ``missing``, no bar at all) in the cells ``holes``."""
    fields = {k: getattr(bars, k).copy() for k in ("open", "high", "low", "close", "volume")}
    for t, c in holes:
        t, c = t % len(bars), c % bars.n_symbols
        if missing:
            for k in fields:
                fields[k][t, c] = np.nan
        else:
            fields["volume"][t, c] = 0.0
    return simbroker.Bars.from_arrays(bars.index, bars.symbols, volume_known=known, **fields)


_orders = st.lists(st.tuples(
    st.integers(-1, 11), st.integers(0, 2), st.sampled_from(["buy", "sell"]),
    st.sampled_from([1, 3.5, 250.0]),
    st.sampled_from(["market", "market", "market", "limit", "stop", "stop_limit"]),
    st.floats(0.9, 1.1), st.sampled_from(["day", "gtc"])), max_size=24)


def _run(bars: simbroker.Bars, orders: list[Any], small_book: int) -> tuple[Any, ...]:
    broker = PaperBroker(bars)
    broker._small_book = small_book
    by_bar: dict[int, list[Any]] = {}
    for o in orders:
        by_bar.setdefault(o[0], []).append(o)
    t = -1
    while True:
        for _, c, side, qty, kind, k, tif in by_bar.get(t, []):
            ref = float(np.nanmean(bars.close[:, c])) * k
            prices = {"limit": {"limit_price": ref}, "stop": {"stop_price": ref},
                      "stop_limit": {"limit_price": ref, "stop_price": ref}}.get(kind, {})
            broker.submit_order(bars.symbols[c], side, qty, kind, tif=tif, **prices)
        if not broker.has_next:
            break
        t = broker.step()
    return (broker.get_fills(), broker.get_orders(), broker.get_cash(),
            broker.get_positions(), list(broker._ledger_bar), list(broker._ledger_sym),
            list(broker._ledger_cash), list(broker._ledger_pos))


@PROPS
# a market order booked before a limit order far from the price: a mixed book
@example(orders=[(0, 0, "buy", 1, "market", 1.0, "day"), (0, 1, "buy", 1, "limit", 0.9, "day")],
         holes=[], known=True, missing=False)
@given(orders=_orders, holes=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 2)),
                                      max_size=8),
       known=st.booleans(), missing=st.booleans())
def test_the_small_book_matcher_books_what_numpy_books(orders: list[Any],
                                                       holes: list[tuple[int, int]],
                                                       known: bool, missing: bool) -> None:
    bars = _quiet(simbroker.synthetic_bars(n_symbols=3, n_bars=12, freq="1h", seed=5),
                  holes, known, missing)
    assert _run(bars, orders, 10**9) == _run(bars, orders, 0)


def test_list_ledgers_make_the_results_and_fills_by_time() -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=8, seed=4)
    broker = PaperBroker(bars)
    a, b = bars.symbols
    for _ in range(3):
        broker.step()
        broker.submit_order(a, "buy", 10)
        broker.submit_order(b, "sell", 5, tif="gtc")
    while broker.has_next:
        broker.step()
    fills = broker.get_fills()
    assert len(fills) == 6
    assert [f["fill_id"] for f in fills[:2]] == ["O1-1", "O2-1"]
    assert broker.get_fills(since=fills[2]["timestamp"]) == fills[2:]
    result = simbroker.results.build_result(broker)
    assert len(result.fills) == 6
    assert result.positions[a].iloc[-1] == 30.0
    assert result.positions[b].iloc[-1] == -15.0
    assert result.cash.iloc[-1] == broker.get_cash()
