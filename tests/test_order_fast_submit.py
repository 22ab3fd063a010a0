"""``submit_order``'s fast path for simple market orders gives what the general path gives.

The same stream of ``submit_order`` calls goes to two brokers, one with the fast path and
one forced onto the general path (``_fast_submit = False``): every answer (or error, by
type and message), fill, order, cash, position, ledger row and trade-log line is the
same. The streams mix what the fast path takes (buy and sell market orders, day and gtc,
int and float quantities) with what it leaves to the general path (other types and tifs,
client order ids, a capitalized side, bad quantities, unknown symbols, a sell under
``allow_short=False``), and the fast broker must really take the short path for the
orders it can.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import PaperBroker
from simbroker.types import Order, Side, TimeInForce, market_order

PROPS = settings(max_examples=40, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _with_quiet_bars() -> simbroker.Bars:
    """Three symbols, hourly bars (seven a day), every third bar of the second symbol and
    a stretch of the first with no volume: a market order waits there, and a day order
    may expire unfilled."""
    b = simbroker.synthetic_bars(n_symbols=3, n_bars=15, freq="1h", seed=3)
    volume = b.volume.copy()
    volume[::3, 1] = 0.0
    volume[7:12, 0] = 0.0
    return simbroker.Bars.from_arrays(b.index, b.symbols, open=b.open, high=b.high, low=b.low,
                                      close=b.close, volume=volume)


BARS = _with_quiet_bars()
SYMBOLS = list(BARS.symbols)

Call = tuple[tuple[Any, ...], dict[str, Any]]

_fast_calls = st.tuples(
    st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(["buy", "sell"]),
              st.one_of(st.integers(1, 500), st.floats(0.001, 1e6))),
    st.fixed_dictionaries({}, optional={"tif": st.sampled_from(["day", "gtc"])}),
)
_other_calls = st.one_of(
    st.tuples(  # what the fast path leaves to the general one, valid or not
        st.tuples(st.sampled_from([*SYMBOLS, "NOPE", " ", ""]),
                  st.sampled_from(["buy", "sell", "BUY", "hold", Side.SELL]),
                  st.sampled_from([10, 2.5, 0, -1.0, float("nan"), 1e16, True, "5"])),
        st.fixed_dictionaries({}, optional={
            "tif": st.sampled_from(["day", "gtc", "ioc", "opg", "DAY", TimeInForce.GTC]),
            "client_order_id": st.sampled_from(["a", "b"]),
            "extended_hours": st.sampled_from([False, 0])})),
    st.tuples(
        st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(["buy", "sell"]),
                  st.just(7), st.sampled_from(["limit", "stop", "market"])),
        st.fixed_dictionaries({}, optional={"limit_price": st.floats(50, 150),
                                            "stop_price": st.floats(50, 150)})),
)
_streams = st.lists(st.lists(st.one_of(_fast_calls, _fast_calls, _other_calls), max_size=4),
                    min_size=1, max_size=len(BARS))


def _drive(broker: PaperBroker, stream: list[list[Call]]) -> list[Any]:
    """Submit each bar's calls after its close; the answers (errors by type and text)."""
    answers: list[Any] = []
    for calls in [[], *stream]:
        for args, kw in calls:
            try:
                answers.append(broker.submit_order(*args, **kw))
            except Exception as exc:  # compared, not hidden: the other path must match
                answers.append((type(exc).__name__, str(exc)))
        if not broker.has_next:
            break
        broker.step()
    while broker.has_next:
        broker.step()
    return answers


def _run(stream: list[list[Call]], fast: bool, tmp: Path, small_book: int,
         **kw: Any) -> tuple[Any, ...]:
    log = tmp / f"{fast}.jsonl"
    broker = PaperBroker(BARS, trade_log=log, **kw)
    broker._fast_submit = broker._fast_submit and fast
    broker._small_book = small_book
    answers = _drive(broker, stream)
    broker.close()
    return (answers, broker.get_fills(), broker.get_orders(), broker.get_cash(),
            broker.get_positions(), list(broker._ledger_bar), list(broker._ledger_sym),
            list(broker._ledger_cash), list(broker._ledger_pos), log.read_text())


WEIGHERS: list[dict[str, Any]] = [
    {},
    # cash that a few large orders exceed: refusals (and their records) on both paths
    {"account": "margin", "cash": 20_000.0},
    {"account": "cash", "cash": 20_000.0},
    {"venue": "alpaca"},
    {"borrow": simbroker.BorrowModel(rate=0.03, hard_to_borrow=[SYMBOLS[1]],
                                     located={SYMBOLS[1]: 50.0})},
]
"""Broker settings that weigh each order (an account, Alpaca's sides, shorting rules),
which the fast path must apply as the general one does."""


@PROPS
@given(stream=_streams, allow_short=st.booleans(), small_book=st.sampled_from([0, 16]),
       weigh=st.sampled_from(WEIGHERS))
def test_fast_and_general_submission_give_the_same_run(stream: list[list[Call]],
                                                       allow_short: bool,
                                                       small_book: int,
                                                       weigh: dict[str, Any]) -> None:
    """(``small_book=0`` matches every book with numpy, which reads all of a slot.)"""
    with tempfile.TemporaryDirectory() as tmp:
        fast = _run(stream, True, Path(tmp), small_book, allow_short=allow_short, **weigh)
        general = _run(stream, False, Path(tmp), small_book, allow_short=allow_short,
                       **weigh)
    assert fast == general


def test_the_fast_path_skips_order_create(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain market order is built without Order.create (the general path's first step),
    and what the fast path leaves still goes through it."""
    made: list[str] = []
    create = Order.create.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Order], symbol: str, *args: Any, **kw: Any) -> Order:
        made.append(symbol)
        return create(cls, symbol, *args, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(Order, "create", classmethod(counted))
    broker = PaperBroker(BARS)
    broker.submit_order(SYMBOLS[0], "buy", 10)
    broker.submit_order(SYMBOLS[1], "sell", 2.5, tif="gtc")
    assert made == []
    broker.submit_order(SYMBOLS[2], "buy", 10, "limit", limit_price=1.0)
    broker.submit_order(SYMBOLS[0], "buy", 10, client_order_id="x")
    assert made == [SYMBOLS[2], SYMBOLS[0]]
    broker._fast_submit = False
    broker.submit_order(SYMBOLS[1], "buy", 10)
    assert made[-1] == SYMBOLS[1]


@pytest.mark.parametrize("weigh", WEIGHERS[1:])
def test_the_fast_path_weighs_the_order_and_logs_its_refusal(weigh: dict[str, Any],
                                                            tmp_path: Path) -> None:
    """An account, Alpaca's sides or the shorting rules refuse on the fast path as on
    the general one: the same error, a ``rejected`` record, nothing booked."""
    for fast in (True, False):
        log = tmp_path / f"{fast}.jsonl"
        broker = PaperBroker(BARS, trade_log=log, **weigh)
        broker._fast_submit = fast
        assert broker._weighs
        broker.step()
        if "venue" in weigh:  # one side at a time: a sell while a buy is open
            broker.submit_order(SYMBOLS[0], "buy", 10)
            args: tuple[Any, ...] = (SYMBOLS[0], "sell", 10)
        elif "borrow" in weigh:  # a short beyond the locate of a hard-to-borrow symbol
            args = (SYMBOLS[1], "sell", 51)
        else:  # beyond the buying power
            args = (SYMBOLS[0], "buy", 1e6)
        with pytest.raises(simbroker.OrderRejected) as err:
            broker.submit_order(*args)
        broker.close()
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert records[-1]["event"] == "rejected", records[-1]
        assert records[-1]["rule"] == getattr(err.value, "rule", None)
        assert len(broker.get_orders()) == (1 if "venue" in weigh else 0)
    assert PaperBroker(BARS)._fast_submit
    assert not PaperBroker(BARS)._weighs


@given(symbol=st.sampled_from(SYMBOLS), side=st.sampled_from(list(Side)),
       qty=st.floats(1e-9, 1e15), tif=st.sampled_from([TimeInForce.DAY, TimeInForce.GTC]))
@settings(max_examples=40, deadline=None)
def test_market_order_is_the_order_create_builds(symbol: str, side: Side, qty: float,
                                                 tif: TimeInForce) -> None:
    made = market_order(symbol, side, qty, tif)
    assert type(made) is Order
    assert made == Order.create(symbol, side.value, qty, tif=tif.value)
    assert repr(made) == repr(Order.create(symbol, side.value, qty, tif=tif.value))


_repeated = st.lists(st.lists(st.one_of(
    st.tuples(st.sampled_from(SYMBOLS[:2]), st.sampled_from(["buy", "sell"]),
              st.sampled_from([5, 5.0, 7, 0, -1.0, float("nan"), 1e16]),
              st.sampled_from(["day", "gtc", "ioc"])),
    st.just("flip")), max_size=4), min_size=1, max_size=len(BARS))


def _drive_repeated(broker: PaperBroker, stream: list[list[Any]]) -> list[Any]:
    """The calls of ``stream`` after each bar's close ("flip": ``allow_short`` toggled)."""
    answers: list[Any] = []
    for calls in stream:
        for call in calls:
            if call == "flip":
                broker.allow_short = not broker.allow_short
                continue
            symbol, side, qty, tif = call
            try:
                answers.append(broker.submit_order(symbol, side, qty, tif=tif))
            except Exception as exc:  # compared, not hidden: the other path must match
                answers.append((type(exc).__name__, str(exc)))
        if not broker.has_next:
            break
        broker.step()
    return answers


@PROPS
@given(stream=_repeated, allow_short=st.booleans())
def test_repeated_orders_share_one_order_and_give_the_same_run(stream: list[list[Any]],
                                                               allow_short: bool) -> None:
    """Orders repeated (the same symbol, side, quantity as int or float, tif) reuse the
    fast path's Order, with ``allow_short`` changed between them and invalid quantities
    among them: the same answers, errors, fills, orders and cash as the general path,
    and every order equal to the one ``Order.create`` builds."""
    runs = []
    for fast in (True, False):
        broker = PaperBroker(BARS, allow_short=allow_short)
        broker._fast_submit = fast
        answers = _drive_repeated(broker, stream)
        runs.append((answers, broker.get_fills(), broker.get_orders(), broker.get_cash(),
                     broker.get_positions(), list(broker._ledger_cash)))
        for state in broker._orders.values():
            o = state.order
            assert o == Order.create(o.symbol, o.side.value, o.qty, tif=o.tif.value)
    assert runs[0] == runs[1]


def test_an_order_repeated_is_one_order_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second equal order (``5`` or ``5.0``) is the first's Order; another side, tif
    or quantity is another; past the cap new orders are built and not kept; an order kept
    as a sell is refused once shorting is turned off, as on the general path."""
    import simbroker._paper_submit as submit

    calls = [("buy", 5, "day"), ("buy", 5.0, "day"), ("buy", 5, "gtc"), ("sell", 5, "day"),
             ("buy", 6, "day")]
    brokers = []
    for fast in (True, False):
        b = PaperBroker(BARS)
        b._fast_submit = fast
        for side, qty, tif in calls:
            b.submit_order(SYMBOLS[0], side, qty, tif=tif)
        b.allow_short = False
        brokers.append(b)
    broker = brokers[0]
    o = [s.order for s in broker._orders.values()]
    assert o[0] is o[1]
    assert len({id(x) for x in o}) == 4
    assert o[1].qty == 5.0
    assert type(o[1].qty) is float
    assert len(broker._market_orders) == 4
    refused = []
    for b in brokers:
        for symbol in SYMBOLS[:2]:
            with pytest.raises(simbroker.ShortingNotAllowed) as err:
                b.submit_order(symbol, "sell", 5)
            refused.append(str(err.value))
    assert refused[:2] == refused[2:]
    kept = len(broker._market_orders)
    monkeypatch.setattr(submit, "_MAX_SHARED", kept)
    broker.submit_order(SYMBOLS[1], "buy", 9)
    broker.submit_order(SYMBOLS[1], "buy", 9)
    assert len(broker._market_orders) == kept
    last = [s.order for s in broker._orders.values()][-2:]
    assert last[0] == last[1]
    assert last[0] is not last[1]
