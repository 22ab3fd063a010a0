"""The paper broker's fast paths give exactly what the general paths give.

- small books are matched order by order in Python floats, large ones with numpy: forced
  either way on random books and bars, every fill, cash, position and order is identical;
- ``get_positions`` is cached between position changes but never hands out the cache;
- the clock's ``now()`` is built once per move; an empty book's bar only moves the clock;
- ``day`` order windows are cached per bar and calendar;
- ``Order.create``'s enum lookup takes what ``Enum(value)`` takes, its quantity fast path
  what the general check takes, and the slotted ``Order`` behaves as the frozen dataclass;
- a small book of market orders only (its own short loop) fills as the numpy path does.
"""

from __future__ import annotations

import dataclasses
import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import Bars, PaperBroker
from simbroker.actions import CorporateActions, attach_actions
from simbroker.clock import SimulatedClock
from simbroker.errors import InvalidOrder
from simbroker.sessions import with_calendar
from simbroker.testing import run_order_stream
from simbroker.testing.strategies import bar_panels, order_streams
from simbroker.tradelog import read_trade_log
from simbroker.types import Order, OrderType, Side, TimeInForce

PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SCALAR, NUMPY = 10**9, 0  # PaperBroker._small_book forcing one matching path


def _run(bars: Bars, orders: list, small_book: int, **kw: object) -> PaperBroker:
    broker = PaperBroker(bars, **kw)  # type: ignore[arg-type]
    broker._small_book = small_book
    return run_order_stream(broker, orders)


def _mirrored(broker: PaperBroker) -> bool:
    """The book's Python lists of symbols and sides are its arrays' first n entries."""
    book = broker._book
    return book.syms == book.sym[: book.n].tolist() and \
        book.signs == book.sign[: book.n].tolist() and len(book.ids) == book.n


def _state(broker: PaperBroker) -> tuple:
    return (broker.get_fills(), broker.get_cash(), broker.get_positions(),
            broker.get_orders(), broker._ledger_cash, broker._ledger_pos, broker._ledger_bar)


@st.composite
def books(draw: st.DrawFn) -> tuple[Bars, list]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 4), n_bars=st.integers(2, 30),
                           allow_missing=draw(st.booleans())))
    if draw(st.booleans()):  # bars whose volume is unknown: any bar with a close trades
        bars = dataclasses.replace(bars, volume_known=False)
    orders = draw(order_streams(bars, max_size=60, max_offset=draw(st.sampled_from(
        [0.0, 0.02, 0.2]))))
    return bars, orders


@PROPS
@given(books(), st.floats(0, 50), st.floats(0, 10), st.booleans(), st.booleans())
def test_scalar_and_numpy_matching_give_identical_fills(case, slip, fee, clip, shorts) -> None:  # type: ignore[no-untyped-def]
    bars, orders = case
    kw = dict(cash=1e6, slippage=slip, fees=fee, clip_to_bar=clip, allow_short=shorts)
    scalar, vector = _run(bars, orders, SCALAR, **kw), _run(bars, orders, NUMPY, **kw)
    assert _state(scalar) == _state(vector)
    assert _mirrored(scalar)
    assert _mirrored(vector)


@PROPS
@given(books(), st.sampled_from(["volume_share", "bar_range", None, 0.0]),
       st.sampled_from(["ibkr_tiered", "alpaca", None, 0.0]))
def test_paths_agree_under_every_kind_of_model(case, slip, fees) -> None:  # type: ignore[no-untyped-def]
    # Models that read the bar or a dated schedule are priced by their array methods on
    # both paths; None / 0 are NoSlippage / NoFee, priced in Python floats by the scalar one.
    bars, orders = case
    slip = {"volume_share": simbroker.models.VolumeShare(),
            "bar_range": simbroker.models.BarRange()}.get(slip, slip)  # type: ignore[arg-type]
    scalar = _run(bars, orders, SCALAR, slippage=slip, fees=fees)
    vector = _run(bars, orders, NUMPY, slippage=slip, fees=fees)
    assert _state(scalar) == _state(vector)


def _bars(open_: list[float], high: list[float], low: list[float], close: list[float],
          volume: list[float] | None = None) -> Bars:
    index = pd.date_range("2024-01-02", periods=len(open_), freq="D", tz="UTC")
    col = lambda xs: np.array(xs, float)[:, None]  # noqa: E731
    return Bars.from_arrays(index, ["A"], open=col(open_), high=col(high), low=col(low),
                            close=col(close),
                            volume=col(volume or [1000.0] * len(open_)), interval="1D")


@pytest.mark.parametrize("small_book", [SCALAR, NUMPY])
def test_named_bars_fill_the_documented_prices(small_book: int) -> None:
    # bar 1 opens at 100 (low 95, high 104); bar 2 gaps down to 90.
    bars = _bars([100, 100, 90], [101, 104, 92], [99, 95, 88], [100, 100, 91])
    broker = PaperBroker(bars, slippage=0, fees=0)
    broker._small_book = small_book
    broker.step()
    broker.submit_order("A", "buy", 1, "limit", limit_price=97.0)         # low 95: at 97
    broker.submit_order("A", "sell", 1, "stop", stop_price=96.0)          # low 95: at 96
    broker.submit_order("A", "buy", 1, "stop", stop_price=103.0)          # high 104: at 103
    broker.submit_order("A", "buy", 1, "stop_limit", stop_price=102.0, limit_price=102.5)
    broker.submit_order("A", "sell", 1, "stop_limit", stop_price=96.0, limit_price=97.0,
                        tif="gtc")
    broker.submit_order("A", "buy", 1, "limit", limit_price=94.0, tif="gtc")  # rests
    broker.step()
    prices = {f["order_id"]: f["price"] for f in broker.get_fills()}
    # the sell stop-limit's stop (96) is below its limit (97): it triggers and rests
    assert prices == {"O1": 97.0, "O2": 96.0, "O3": 103.0, "O4": 102.0}
    assert broker._book.trig_bar[broker._book.ids.index("O5")] == 1
    broker.step()  # bar 2 gaps to 90: the resting buy limit fills at the open
    assert [(f["order_id"], f["price"]) for f in broker.get_fills()[4:]] == [("O6", 90.0)]
    assert broker.get_order("O5")["status"] == "new"  # a sell limit at 97, high 92


def test_the_path_is_chosen_by_book_size(monkeypatch: pytest.MonkeyPatch) -> None:
    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=4, seed=2)
    calls: list[str] = []
    real_small = PaperBroker._match_small
    real_priced = PaperBroker._match_priced
    monkeypatch.setattr(PaperBroker, "_match_small",
                        lambda self, t: (calls.append("small"), real_small(self, t))[1])
    monkeypatch.setattr(PaperBroker, "_match_priced", lambda self, *a: (
        calls.append("numpy"), real_priced(self, *a))[1])
    broker = PaperBroker(bars)
    broker._small_book = 2
    for k in range(3):
        broker.submit_order(bars.symbols[k], "buy", 1, "limit", limit_price=1e-3, tif="gtc")
    broker.step()
    assert calls == ["numpy"]  # 3 orders > 2
    broker.cancel_order("O1")
    broker.step()
    assert calls == ["numpy", "small"]


# ------------------------------------------------------------------ positions
def test_get_positions_is_a_fresh_copy_kept_current() -> None:
    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=6, seed=4)
    a, b, c = bars.symbols
    broker = PaperBroker(bars, positions={c: 5.0, a: 2.0})
    first = broker.get_positions()
    assert list(first) == [a, c]  # in column order, as before
    first[a] = 1e9
    first[b] = 1.0
    assert broker.get_positions() == {a: 2.0, c: 5.0}
    assert broker.get_positions() is not broker.get_positions()
    broker.submit_order(b, "buy", 3)
    broker.submit_order(a, "sell", 2)
    assert broker.get_positions() == {a: 2.0, c: 5.0}  # nothing filled yet
    broker.step()
    assert broker.get_positions() == {b: 3.0, c: 5.0}
    assert list(broker.get_positions()) == [b, c]


def test_get_positions_follows_a_split() -> None:
    index = pd.date_range("2014-06-04", periods=6, freq="D", tz="UTC")
    px = np.array([[630.0], [637.0], [644.0], [92.0], [93.0], [94.0]])
    bars = Bars.from_arrays(index, ["AAPL"], open=px, high=px + 1, low=px - 1, close=px,
                            volume=np.full_like(px, 1e6))
    bars = attach_actions(bars, CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL"], "ex_date": [index[3].strftime("%Y-%m-%d")], "split": [7.0],
        "dividend": [0.0]})))
    broker = PaperBroker(bars, positions={"AAPL": 10.0})
    for _ in range(3):
        broker.step()
        assert broker.get_positions() == {"AAPL": 10.0}
    broker.step()
    assert broker.get_positions() == {"AAPL": 70.0}


# ------------------------------------------------------------------ the clock
def test_now_is_built_once_per_move() -> None:
    clock = SimulatedClock("2024-01-02 14:30")
    first = clock.now()
    assert clock.now() is first
    clock._set_ns_unchecked(clock.ns)  # not a move
    assert clock.now() is first
    later = clock.advance(timedelta(minutes=1))
    assert later == first + timedelta(minutes=1)
    assert clock.now() is later
    clock._set_ns_unchecked(clock.ns + 60_000_000_000)
    assert clock.now() == first + timedelta(minutes=2)
    assert clock.set("2024-01-02 15:00").isoformat() == "2024-01-02T15:00:00+00:00"
    with pytest.raises(simbroker.errors.ClockError):
        SimulatedClock().now()


def test_an_empty_books_bar_moves_only_the_clock() -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=5, seed=3, freq="1min")
    broker = PaperBroker(bars)
    for t in range(5):
        assert broker.step() == t
        assert broker.now() == pd.Timestamp(int(bars.close_ns[t]), unit="ns", tz="UTC")
        assert broker.bar_index == t
    with pytest.raises(simbroker.errors.ClockError, match="all 5 bars"):
        broker.step()


def test_an_account_still_sees_every_bar_of_an_empty_book() -> None:
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=4, seed=3)
    broker = PaperBroker(bars, account="cash")
    seen: list[int] = []
    assert broker.account is not None
    real = broker.account.on_bar_close
    broker.account.on_bar_close = lambda t: (seen.append(t), real(t))[1]  # type: ignore[method-assign]
    while broker.has_next:
        broker.step()
    assert seen == [0, 1, 2, 3]


# ------------------------------------------------------------------ sessions
def test_day_windows_are_cached_per_calendar_and_bar() -> None:
    pytest.importorskip("exchange_calendars")
    index = pd.date_range("2024-11-26 14:00", "2024-11-27 22:00", freq="30min", tz="UTC")
    n = len(index)
    px = np.full((n, 2), 100.0)
    bars = Bars.from_arrays(index, ["ES", "SPY"], open=px, high=px + 1, low=px - 1,
                            close=px, volume=np.full((n, 2), 1e3), interval="30min")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        bars = with_calendar(bars, {"ES": "CMES", "SPY": "XNYS"})
    broker = PaperBroker(bars)
    for _ in range(n - 1):
        t = broker.bar_index + 1
        for sym in ("ES", "SPY", "ES"):
            broker.submit_order(sym, "buy", 1, "limit", limit_price=1.0)
            broker.submit_order(sym, "buy", 1, "limit", limit_price=1.0, extended_hours=True)
        book = broker._book
        for slot in range(book.n - 6, book.n):
            col = int(book.sym[slot])
            want = broker._sessions.order_window(broker.clock.ns, t, col,
                                                 bool(book.ext[slot]))
            assert (int(book.first_bar[slot]), int(book.expire_bar[slot])) == tuple(
                map(int, want))
        broker.step()


# ------------------------------------------------------------------ Order.create
@given(st.sampled_from(["buy", "BUY", "Buy", "sell", Side.BUY, Side.SELL]),
       st.sampled_from(["market", "LIMIT", OrderType.STOP, "stop_limit"]),
       st.sampled_from(["day", "GTC", TimeInForce.DAY, "ioc"]))
def test_create_takes_what_the_enums_take(side, order_type, tif) -> None:  # type: ignore[no-untyped-def]
    prices = {"market": {}, "limit": {"limit_price": 5.0}, "stop": {"stop_price": 5.0},
              "stop_limit": {"limit_price": 5.0, "stop_price": 5.0}}[str(
                  OrderType(order_type.lower()).value)]
    order = Order.create("X", side, 3, order_type, tif=tif, **prices)
    expected = Order("X", Side(side.lower()), 3.0, OrderType(order_type.lower()),
                     tif=TimeInForce(tif.lower()), **prices)
    assert order == expected
    assert hash(order) == hash(expected)
    assert type(order.side) is Side
    assert type(order.order_type) is OrderType
    assert dataclasses.replace(order, qty=4.0).qty == 4.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.qty = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["bye", "", 1, None, ["buy"], b"buy"])
def test_create_refuses_a_bad_side_naming_it(bad: object) -> None:
    with pytest.raises(InvalidOrder, match="unknown side") as err:
        Order.create("X", bad, 3)  # type: ignore[arg-type]
    assert err.value.field == "side"


def test_the_trade_log_is_unchanged_by_the_fast_paths(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=30, seed=9)
    logs = []
    for small_book, name in ((SCALAR, "a.jsonl"), (NUMPY, "b.jsonl")):
        broker = PaperBroker(bars, trade_log=tmp_path / name)
        broker._small_book = small_book
        for t in range(29):
            broker.step()
            sym = bars.symbols[t % 3]
            broker.submit_order(sym, "buy" if t % 2 else "sell", 10,
                                "limit" if t % 3 else "market",
                                limit_price=float(bars.close[t, t % 3]) if t % 3 else None)
        broker.close()
        logs.append([{k: v for k, v in r.items() if k != "seq"} for r in
                     read_trade_log(tmp_path / name)])
    assert len(logs[0]) > 50
    assert logs[0] == logs[1]


# ------------------------------------------------------------------ market-only small books
@st.composite
def market_books(draw: st.DrawFn) -> tuple[Bars, list[list[tuple[int, str, float, int]]]]:
    """Bars and, per bar, the market orders placed at its close: (column, side, qty,
    bars its first bar is put off by, 0 for the next bar)."""
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 20),
                           allow_missing=draw(st.booleans())))
    if draw(st.booleans()):
        bars = dataclasses.replace(bars, volume_known=False)
    order = st.tuples(st.integers(0, bars.n_symbols - 1), st.sampled_from(["buy", "sell"]),
                      st.sampled_from([1.0, 3.0, 0.5, 100]), st.sampled_from([0, 0, 0, 1, 3]))
    return bars, draw(st.lists(st.lists(order, max_size=4), min_size=len(bars),
                               max_size=len(bars)))


def _run_market(bars: Bars, plan: list, small_book: int, **kw: object) -> PaperBroker:
    broker = PaperBroker(bars, **kw)  # type: ignore[arg-type]
    broker._small_book = small_book
    for t in range(len(bars)):
        broker.step()
        for col, side, qty, later in plan[t]:
            broker.submit_order(bars.symbols[col], side, qty, tif="gtc")
            if later:  # an order that may first trade some bars on (as an activated child)
                book = broker._book
                book.first_bar[book.n - 1] = t + 1 + later
                book.max_first = max(book.max_first, t + 1 + later)
    return broker


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(market_books(), st.sampled_from([0.0, 5.0, 17.3]), st.sampled_from([0.0, 1.0, 2.5]))
def test_market_only_books_match_alike_on_both_paths(case, slip, fee) -> None:  # type: ignore[no-untyped-def]
    # A small book of market orders only is decided by its own short loop (tradable is all
    # that decides); orders not yet eligible wait on both paths.
    bars, plan = case
    scalar = _run_market(bars, plan, SCALAR, slippage=slip, fees=fee)
    vector = _run_market(bars, plan, NUMPY, slippage=slip, fees=fee)
    assert _state(scalar) == _state(vector)
    assert _mirrored(scalar)
    assert _mirrored(vector)


def test_changed_models_are_seen_by_the_scalar_path() -> None:
    # the scalar rates are cached by the models' identity: new models are priced anew
    bars = simbroker.synthetic_bars(n_symbols=1, n_bars=4, seed=5)
    broker = PaperBroker(bars, slippage=5.0, fees=1.0)
    broker.step()
    broker.submit_order("SYM000", "buy", 10)
    broker.step()
    broker.slippage = simbroker.models.FixedBps(50.0)
    broker.fees = simbroker.models.NoFee()
    broker.submit_order("SYM000", "buy", 10)
    broker.step()
    first, second = broker.get_fills()
    assert first["price"] == float(bars.open[1, 0]) * (1.0 + 5.0 / 1e4)
    assert first["fee"] > 0
    assert second["price"] == float(bars.open[2, 0]) * (1.0 + 50.0 / 1e4)
    assert second["fee"] == 0.0


# ------------------------------------------------------------------ Order's fast paths
_QTYS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**16),
    st.sampled_from([0, 0.0, -0.0, 1e15, 1e15 + 1, 10**15, 10**15 + 1, 10**400, True, False,
                     np.float64(2.5), np.int64(7), np.nan, "5", None]))


@settings(max_examples=200, deadline=None)
@given(_QTYS)
def test_create_takes_a_quantity_as_the_general_check_does(qty) -> None:  # type: ignore[no-untyped-def]
    from simbroker.types import MAX_QTY, _number
    try:
        want: object = _number(qty, "qty", "X", MAX_QTY)
    except InvalidOrder as exc:
        want = (exc.field, str(exc))
    try:
        got: object = Order.create("X", "buy", qty).qty
    except InvalidOrder as exc:
        got = (exc.field, str(exc))
    assert got == want
    assert type(got) is type(want)


def test_an_order_is_slotted_and_behaves_as_a_frozen_dataclass() -> None:
    import pickle
    order = Order.create("X", "sell", 2, "stop_limit", limit_price=9.5, stop_price=10,
                         tif="gtc", client_order_id="c1")
    assert not hasattr(order, "__dict__")  # ~150 bytes, not a dict per order
    assert type(order) is Order
    assert order == Order("X", Side.SELL, 2.0, OrderType.STOP_LIMIT, limit_price=9.5,
                          stop_price=10.0, tif=TimeInForce.GTC, client_order_id="c1")
    assert pickle.loads(pickle.dumps(order)) == order
    assert dataclasses.replace(order, qty=1.0) == Order.create(
        "X", "sell", 1, "stop_limit", limit_price=9.5, stop_price=10, tif="gtc",
        client_order_id="c1")
    assert repr(order).startswith("Order(symbol='X', side=<Side.SELL: 'sell'>, qty=2.0,")
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.symbol = "Y"  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20).flatmap(lambda n: st.lists(st.sampled_from(
    [0.0, -0.0, 1.0, -2.5, 1e-300, float("nan"), float("inf")]), min_size=n, max_size=n)))
def test_get_positions_of_few_and_many_symbols_is_the_flatnonzero_one(qtys) -> None:  # type: ignore[no-untyped-def]
    bars = simbroker.synthetic_bars(n_symbols=len(qtys), n_bars=2, seed=1)
    broker = PaperBroker(bars, positions=dict(zip(bars.symbols, qtys, strict=True)))
    pos = broker._pos
    want = {bars.symbols[i]: float(pos[i]) for i in np.flatnonzero(pos).tolist()}
    got = broker.get_positions()
    assert list(got) == list(want)
    assert all(got[k] == want[k] or (got[k] != got[k] and want[k] != want[k]) for k in got)


def test_the_books_lists_follow_adds_cancels_fills_and_expiries() -> None:
    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=8, seed=6)
    broker = PaperBroker(bars)
    a, b, c = bars.symbols
    broker.step()
    for sym, side, kind, tif in ((a, "buy", "market", "day"), (b, "sell", "limit", "gtc"),
                                 (c, "buy", "limit", "day"), (a, "sell", "limit", "gtc"),
                                 (b, "buy", "market", "gtc")):
        price = None if kind == "market" else (1e-3 if side == "buy" else 1e9)
        broker.submit_order(sym, side, 1, kind, limit_price=price, tif=tif)
        assert _mirrored(broker)
    broker.cancel_order("O2")
    assert _mirrored(broker)
    assert broker._book.syms == [0, 2, 0, 1]
    assert broker._book.signs == [1.0, 1.0, -1.0, 1.0]
    while broker.has_next:
        broker.step()  # the markets fill, the day limit expires, the gtc limit rests
        assert _mirrored(broker)
    assert broker._book.ids == ["O4"]
    assert broker._book.syms == [0]
    assert broker._book.signs == [-1.0]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 40), st.sampled_from(["1D", "1h", "7min"]),
       st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]), st.data())
def test_day_windows_under_the_date_rule_are_order_window(n_symbols, n_bars, freq, tz,
                                                          data) -> None:  # type: ignore[no-untyped-def]
    bars = simbroker.synthetic_bars(n_symbols=n_symbols, n_bars=n_bars, freq=freq, seed=1)
    broker = PaperBroker(bars, session_tz=tz)
    assert broker._date_windows is not None  # no calendar: the date rule
    for _ in range(data.draw(st.integers(0, n_bars - 1))):
        broker.step()
    first = data.draw(st.integers(0, n_bars + 2))
    col = data.draw(st.integers(0, n_symbols - 1))
    extended = data.draw(st.booleans())
    want = broker._sessions.order_window(broker.clock.ns, first, col, extended)
    assert broker._day_window(first, col, extended) == tuple(map(int, want))
