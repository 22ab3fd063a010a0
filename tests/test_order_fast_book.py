"""The paper broker's short ways of matching and booking give what the general ways give.

Each is forced off in a second broker fed the same calls (with the submit fast path,
whose ``day`` windows come from a lookup made at construction):

- ``_match_market``: a book of market orders only, all eligible, decided, priced and
  charged in one loop (``_fast_market = False`` leaves it to ``_match_small``'s loops);
- ``_book_whole``: a bar's whole fills booked in one loop when no trade log, group
  child or ``allow_short=False`` can intervene (``_fast_book = False`` books each by
  ``_book_fill``);
- ``OpenBook.add_market`` leaving a slot's price, trigger, trail and partial-fill fields
  alone while every slot still holds a market order's values there (``plain``; a book
  made not plain writes them all).

Over random streams of market, limit and stop orders, cancels and replaces, under
accounts, volume caps, shorting rules and either matching path, both brokers give the
same answers, fills, orders, cash, positions and ledger, and the same book slots after
every bar.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import PaperBroker
from simbroker._paper_base import NEVER_BAR
from simbroker._paper_book import OpenBook

PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BARS = simbroker.synthetic_bars(n_symbols=4, n_bars=14, freq="1h", seed=5)
SYMBOLS = list(BARS.symbols)

_market = st.tuples(st.just("submit"), st.sampled_from(SYMBOLS),
                    st.sampled_from(["buy", "sell"]), st.sampled_from([1.0, 10, 250.0]),
                    st.fixed_dictionaries({}, optional={"tif": st.sampled_from(["day", "gtc"])}))
_priced = st.tuples(st.just("submit"), st.sampled_from(SYMBOLS),
                    st.sampled_from(["buy", "sell"]), st.just(5.0),
                    st.one_of(st.fixed_dictionaries({"order_type": st.just("limit"),
                                                     "limit_price": st.floats(80, 120)}),
                              st.fixed_dictionaries({"order_type": st.just("stop"),
                                                     "stop_price": st.floats(80, 120)}),
                              st.fixed_dictionaries({"client_order_id": st.just("c")})))
_other = st.tuples(st.sampled_from(["cancel", "replace"]), st.integers(1, 12))
_streams = st.lists(st.lists(st.one_of(_market, _market, _priced, _other),
                             max_size=4), min_size=1, max_size=len(BARS))

SETTINGS: list[dict[str, Any]] = [
    {}, {"allow_short": False}, {"max_volume_share": 0.0005},
    {"account": "margin", "cash": 30_000.0}, {"account": "cash", "cash": 30_000.0},
    # a volume cap most orders fit whole under, fixed-rate and schedule fees
    {"max_volume_share": 0.05}, {"max_volume_share": 0.05, "fees": "ibkr_fixed"},
    {"max_volume_share": 0.0005, "fees": "alpaca", "account": "margin", "cash": 30_000.0},
]


def _book_slots(book: OpenBook) -> list[Any]:
    """The open slots, field by field (as bytes: NaN equals NaN)."""
    n = book.n
    return [book.ids[:n], *(getattr(book, a)[:n].tobytes() for a in book._ARRAYS)]


def _drive(broker: PaperBroker, stream: list[list[tuple[Any, ...]]]) -> list[Any]:
    seen: list[Any] = []
    for calls in [[], *stream]:
        for call in calls:
            try:
                if call[0] == "submit":
                    _, sym, side, qty, kw = call
                    seen.append(broker.submit_order(sym, side, qty, **kw))
                elif call[0] == "cancel":
                    seen.append(broker.cancel_order(f"O{call[1]}"))
                else:
                    seen.append(broker.replace_order(f"O{call[1]}", qty=3.0))
            except Exception as exc:  # compared, not hidden: the other broker must match
                seen.append((type(exc).__name__, str(exc)))
        if not broker.has_next:
            break
        broker.step()
        seen.append((_book_slots(broker._book), broker.get_positions(), broker.get_cash()))
    return seen


def _run(stream: list[list[tuple[Any, ...]]], fast: bool, small_book: int,
         kw: dict[str, Any]) -> tuple[Any, ...]:
    broker = PaperBroker(BARS, **kw)
    broker._small_book = small_book
    if not fast:
        broker._fast_book = broker._fast_submit = broker._fast_market = False
        broker._book.plain = False
    seen = _drive(broker, stream)
    return (seen, broker.get_fills(), broker.get_orders(), broker.get_cash(),
            broker.get_positions(), list(broker._ledger_bar), list(broker._ledger_sym),
            list(broker._ledger_cash), list(broker._ledger_pos), list(broker._fill_rows))


@PROPS
@given(stream=_streams, small_book=st.sampled_from([0, 16]), kw=st.sampled_from(SETTINGS))
def test_short_booking_gives_the_general_run(stream: list[list[tuple[Any, ...]]],
                                             small_book: int, kw: dict[str, Any]) -> None:
    """(``small_book=0`` matches with numpy, which reads every field of a slot.)"""
    assert _run(stream, True, small_book, kw) == _run(stream, False, small_book, kw)


def test_the_short_ways_are_taken_for_market_orders() -> None:
    broker = PaperBroker(BARS)
    booked: list[int] = []
    real = broker._book_whole

    def spy(*args: Any) -> None:
        booked.append(len(args[1]))
        real(*args)

    broker._book_whole = spy  # type: ignore[method-assign]
    broker.submit_order(SYMBOLS[0], "buy", 10)
    broker.submit_order(SYMBOLS[1], "sell", 5)
    broker.step()
    broker.step()
    assert booked == [2]
    assert broker._book.plain
    broker.submit_order(SYMBOLS[0], "buy", 10, "limit", limit_price=1.0)
    assert not broker._book.plain  # a limit order's price is in its slot now


@pytest.mark.parametrize("fees", [1.0, "ibkr_fixed"])
def test_a_capped_market_book_that_fits_whole_takes_the_one_loop(fees: Any) -> None:
    broker = PaperBroker(BARS, max_volume_share=0.5, fees=fees)
    whole: list[bool] = []
    real = broker._match_market_whole

    def spy(*args: Any) -> bool:
        whole.append(real(*args))
        return whole[-1]

    broker._match_market_whole = spy  # type: ignore[method-assign]
    broker.submit_order(SYMBOLS[0], "buy", 10)
    broker.submit_order(SYMBOLS[1], "sell", 5)
    broker.step()
    broker.step()
    assert whole == [True]
    assert [f["qty"] for f in broker.get_fills()] == [10, 5]
    broker.submit_order(SYMBOLS[0], "buy", 1e12)  # beyond the cap: the general loops
    broker.step()
    assert whole == [True, False]
    assert 0 < broker.get_fills()[-1]["qty"] < 1e12


def test_two_capped_orders_of_one_symbol_share_its_volume() -> None:
    """Each fits the cap alone, both do not: the one loop leaves them to the general
    loops, which split the bar's 100 shares between them in book order."""
    ts = np.datetime64("2024-01-02T15:00", "ns") + np.arange(3) * np.timedelta64(
        1, "h").astype("timedelta64[ns]")
    px = np.full((3, 1), 10.0)
    bars = simbroker.Bars.from_arrays(ts, ["A"], open=px, high=px, low=px, close=px,
                                      volume=np.full((3, 1), 1000.0))
    broker = PaperBroker(bars, max_volume_share=0.1, fees="ibkr_fixed")
    broker.submit_order("A", "buy", 60)
    broker.submit_order("A", "buy", 60)
    broker.step()
    broker.step()
    broker.step()
    assert [(f["order_id"], f["qty"]) for f in broker.get_fills()] == [
        ("O1", 60.0), ("O2", 40.0), ("O2", 20.0)]


def test_a_market_order_in_a_limit_orders_old_slot_is_a_market_order() -> None:
    """The slot of a canceled limit order keeps its price past ``n``; the market order
    placed there next must not inherit it (nor its type)."""
    for small_book in (0, 16):
        broker = PaperBroker(BARS)
        broker._small_book = small_book
        broker.cancel_order(broker.submit_order(SYMBOLS[0], "buy", 10, "limit",
                                                limit_price=1.0)["order_id"])
        broker.submit_order(SYMBOLS[0], "buy", 10)
        broker.step()
        assert len(broker.get_fills()) == 1
        assert broker.get_positions() == {SYMBOLS[0]: 10.0}


def test_a_grown_book_keeps_market_values_in_its_new_slots() -> None:
    book = OpenBook(capacity=2)
    for k in range(5):
        book.add_market(f"O{k}", k, 1.0, 1.0, 0, 9)
    assert book.plain
    assert len(book.sym) == 8
    assert np.isnan(book.limit).all()
    assert np.isnan(book.stop).all()
    assert np.isnan(book.aux).all()
    assert (book.trig_bar == NEVER_BAR).all()
    assert (book.part_bar == -1).all()
    assert not book.otype.any()
    assert not book.ext.any()


@pytest.mark.parametrize("limit_first", [False, True])
def test_placing_market_orders_past_the_capacity_fills_the_slots_add_market_does(
        limit_first: bool) -> None:
    """``_place_market`` writes a plain book's slots itself while there is room and leaves
    growing (and a book no longer plain) to ``OpenBook.add_market``: 150 market orders on
    one bar (the book grows twice from 64) give the slots, capacity and fills of the
    general path's ``add``."""
    runs = []
    for fast in (True, False):
        broker = PaperBroker(BARS)
        if not fast:
            broker._fast_submit = False
        broker.step()
        if limit_first:
            broker.submit_order(SYMBOLS[0], "buy", 1, "limit", limit_price=1.0)
        for k in range(150):
            broker.submit_order(SYMBOLS[k % len(SYMBOLS)], "buy" if k % 3 else "sell",
                                1 + k % 7, tif="gtc" if k % 2 else "day")
        book = broker._book
        assert book.capacity == len(book.sym) == 256
        slots = _book_slots(book)
        broker.step()
        runs.append((slots, book.max_first, broker.get_fills(), broker.get_positions()))
    assert runs[0] == runs[1]
