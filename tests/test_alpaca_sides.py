"""Alpaca's one side at a time, the same in the paper broker (``venue="alpaca"``), in
FakeAlpaca through the real adapter, and safe under a lost answer.

Alpaca refuses (403, 40310000) an order that would cross a position through zero
("insufficient qty available for order (requested: 200, available: 100)") and an order
opening a flat symbol while an order of the other side is open ("cannot open a short
sell while a long buy order is open"): alpacahq/Alpaca-API issues 82, 90, 187.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from _live import HAS_ALPACA, connect_alpaca
from hypothesis import given, settings
from hypothesis import strategies as st

from simbroker import Bars, PaperBroker, backtest
from simbroker._venue_sides import alpaca_message, from_alpaca, side_refusal
from simbroker.errors import OrderStatusUnknown, PositionConflict

PRICE = 100.0


def paper(positions: dict[str, float] | None = None, venue: str | None = "alpaca",
          **kw: Any) -> PaperBroker:
    ts = np.datetime64("2024-01-02T21:00", "ns") + np.arange(10) * np.timedelta64(
        1, "D").astype("timedelta64[ns]")
    px = np.full((10, 2), PRICE)
    bars = Bars.from_arrays(ts, ["AAA", "BBB"], open=px, high=px, low=px, close=px,
                            volume=np.full(px.shape, 1e9))
    b = PaperBroker(bars, cash=1_000_000.0, positions=positions, slippage=0, fees=0,
                    venue=venue, **kw)
    b.step()
    return b


# ---------------------------------------------------------------------- the rule
@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from(["buy", "sell"]),
       qty=st.integers(1, 300).map(float),
       position=st.integers(-300, 300).map(float),
       open_buys=st.integers(0, 300).map(float),
       open_sells=st.integers(0, 300).map(float))
def test_the_rule_refuses_exactly_a_crossing_or_an_opening_against_the_other_side(
        side: str, qty: float, position: float, open_buys: float, open_sells: float) -> None:
    refusal = side_refusal("AAA", side, qty, position, open_buys, open_sells)
    sign = 1.0 if side == "buy" else -1.0
    closing = (position > 0 and side == "sell") or (position < 0 and side == "buy")
    if closing:  # what the open closing orders leave of the position
        left = max(abs(position) - (open_sells if side == "sell" else open_buys), 0.0)
        crosses = qty > left
        assert (refusal is not None) == crosses
        if refusal is not None:
            assert (refusal.rule, refusal.requested, refusal.available) == \
                ("qty_available", qty, left)
            # What the rule keeps out: a position through zero in one order.
            assert np.sign(position + sign * qty) != np.sign(position) or left < abs(position)
    elif position == 0:
        other = open_sells if side == "buy" else open_buys
        assert (refusal is not None) == (other > 0)
        if refusal is not None:
            assert refusal.rule == "opposite_side_open"
    else:  # adding to the side held: never this rule's business
        assert refusal is None


@pytest.mark.parametrize(("side", "position", "buys", "sells"),
                         [("sell", 100.0, 0.0, 0.0), ("sell", 100.0, 0.0, 60.0),
                          ("buy", -50.0, 20.0, 0.0), ("sell", 0.0, 5.0, 0.0),
                          ("buy", 0.0, 0.0, 5.0)])
def test_alpacas_message_reads_back_as_the_same_refusal(side: str, position: float,
                                                         buys: float, sells: float) -> None:
    refusal = side_refusal("AAA", side, 200.0, position, buys, sells)
    assert refusal is not None
    back = from_alpaca(alpaca_message(refusal), symbol="AAA", side=side, qty=200.0,
                       position=position)
    assert back is not None
    assert (back.rule, back.requested, back.available, back.position) == \
        (refusal.rule, refusal.requested, refusal.available, refusal.position)
    assert "AAA" in str(back)
    assert "200" in str(back)


def test_other_refusals_are_not_read_as_a_conflict() -> None:
    for text in ("insufficient buying power", "account is not allowed to short",
                 "asset AAA is not tradable"):
        assert from_alpaca(text, symbol="AAA", side="sell", qty=1.0) is None


# ---------------------------------------------------------------------- the paper broker
def test_paper_refuses_a_reversal_in_one_order_and_changes_nothing(tmp_path: Any) -> None:
    log = tmp_path / "t.jsonl"
    b = paper({"AAA": 100.0}, trade_log=log)
    cash, orders = b.get_cash(), b.get_orders()
    with pytest.raises(PositionConflict) as err:
        b.submit_order("AAA", "sell", 200)
    e = err.value
    assert (e.rule, e.side, e.requested, e.available, e.position) == \
        ("qty_available", "sell", 200.0, 100.0, 100.0)
    assert "AAA" in str(e)
    assert "close it first" in str(e)
    assert b.get_cash() == cash
    assert b.get_orders() == orders
    assert b.get_positions() == {"AAA": 100.0}
    b.close()
    rejected = [r for r in map(json.loads, log.read_text().splitlines())
                if r["event"] == "rejected"]
    assert len(rejected) == 1
    assert rejected[0]["rule"] == "qty_available"


def test_paper_takes_the_reversal_in_two_orders() -> None:
    b = paper({"AAA": 100.0})
    b.submit_order("AAA", "sell", 100)
    with pytest.raises(PositionConflict):  # the open sell holds the whole long
        b.submit_order("AAA", "sell", 100)
    b.step()
    assert b.get_positions() == {}
    b.submit_order("AAA", "sell", 100)  # flat, nothing open: opens the short
    b.step()
    assert b.get_positions() == {"AAA": -100.0}


def test_paper_refuses_opening_a_side_while_the_other_is_open() -> None:
    b = paper()
    b.submit_order("AAA", "buy", 10, "limit", limit_price=90.0, tif="gtc")
    with pytest.raises(PositionConflict) as err:
        b.submit_order("AAA", "sell", 5)
    assert err.value.rule == "opposite_side_open"
    b.submit_order("BBB", "sell", 5)  # another symbol: free
    b.submit_order("AAA", "buy", 5)  # the same side: free


def test_a_brackets_live_exits_hold_the_position_once() -> None:
    b = paper()
    b.submit_order("AAA", "buy", 10, order_class="bracket",
                   take_profit={"limit_price": 120.0}, stop_loss={"stop_price": 80.0})
    b.step()  # the entry fills; both exits (sells of 10) are live, one can trade
    assert b.get_positions() == {"AAA": 10.0}
    with pytest.raises(PositionConflict) as err:
        b.submit_order("AAA", "sell", 1)
    assert err.value.available == 0.0


def test_the_default_and_ibkr_take_a_reversal_in_one_order() -> None:
    for venue in (None, "ibkr"):
        b = paper({"AAA": 100.0}, venue=venue)
        b.submit_order("AAA", "sell", 200)
        b.step()
        assert b.get_positions() == {"AAA": -100.0}


def test_a_reversing_backtest_with_venue_alpaca_is_refused_and_counted() -> None:
    ts = np.datetime64("2024-01-02T21:00", "ns") + np.arange(6) * np.timedelta64(
        1, "D").astype("timedelta64[ns]")
    px = np.full((6, 1), PRICE)
    bars = Bars.from_arrays(ts, ["AAA"], open=px, high=px, low=px, close=px,
                            volume=np.full(px.shape, 1e9))

    def flip(broker: Any, history: Any) -> None:
        if history.t == 0:
            broker.submit_order("AAA", "buy", 10)
        elif history.t == 2:
            try:
                broker.submit_order("AAA", "sell", 20)
            except PositionConflict:
                broker.submit_order("AAA", "sell", 10)

    alpaca = backtest(flip, bars, venue="alpaca", progress=False)
    free = backtest(flip, bars, progress=False)
    assert alpaca.stats["n_refused"] == 1
    assert alpaca.positions.iloc[-1]["AAA"] == 0.0
    assert free.positions.iloc[-1]["AAA"] == -10.0


# ---------------------------------------------------------------------- the fake and the adapter
needs_alpaca = pytest.mark.skipif(not HAS_ALPACA, reason="alpaca-py not installed")


@pytest.fixture
def fake() -> Iterator[Any]:
    from simbroker.testing.fake_alpaca import FakeAlpaca

    with FakeAlpaca(cash=1_000_000.0, positions={"AAA": 100.0}) as f:
        for sym in ("AAA", "BBB"):
            f.set_price(sym, PRICE)
        yield f


@needs_alpaca
def test_the_fake_refuses_the_same_orders_the_same_way_as_paper(fake: Any) -> None:
    from simbroker.brokers.alpaca import fill_id

    live = connect_alpaca(fake)
    local = paper({"AAA": 100.0})
    try:
        steps: list[tuple[str, str, float, dict[str, Any]]] = [
            ("AAA", "sell", 200.0, {}),                          # crosses: refused
            ("AAA", "sell", 60.0, {}),                           # closes part
            ("AAA", "sell", 50.0, {}),                           # 40 left: refused
            ("BBB", "buy", 5.0, {"order_type": "limit", "limit_price": 90.0, "tif": "gtc"}),
            ("BBB", "sell", 5.0, {}),                            # flat, buy open: refused
            ("AAA", "sell", 40.0, {}),                           # closes the rest
        ]
        for sym, side, qty, kw in steps:
            outcomes = []
            for b in (local, live):
                try:
                    info = b.submit_order(sym, side, qty, **kw)
                    outcomes.append(("accepted", info["status"] in ("new", "accepted",
                                                                    "pending_new")))
                except PositionConflict as exc:
                    outcomes.append((exc.rule, exc.requested, exc.available))
            assert outcomes[0] == outcomes[1], (sym, side, qty, outcomes)
        made = fake.step()
        live.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 10)
        local.step()
        assert live.get_positions() == local.get_positions() == {}
        # Flat: the short opens now, at both.
        for b in (local, live):
            b.cancel_order(b.get_orders(open_only=True)[0]["order_id"])
            b.submit_order("AAA", "sell", 100)
    finally:
        live.close()


@needs_alpaca
@pytest.mark.parametrize("refuse_first", [False, True], ids=["422-first", "403-first"])
def test_a_resend_refused_by_its_own_first_copy_is_looked_up_not_believed(
        fake: Any, refuse_first: bool) -> None:
    from simbroker.brokers.alpaca import AlpacaBroker

    fake.refuse_before_duplicate = refuse_first
    first = connect_alpaca(fake)
    placed = first.submit_order("AAA", "sell", 100, client_order_id="close-1")
    first.close()  # the process dies after its send
    # Its successor never loaded that order (it predates its window) and sends it again:
    # with the account's rules weighed first Alpaca answers 403 (the first copy holds
    # the long); the adapter asks Alpaca before it believes the refusal.
    later = fake.clock + timedelta(hours=1)
    with AlpacaBroker.for_fake(fake, stream=False, fills_since=later) as again:
        info = again.submit_order("AAA", "sell", 100, client_order_id="close-1")
        assert info["order_id"] == placed["order_id"]
        per_cid = Counter(c for c, _ in fake.orders_by_client_id())
        assert per_cid["close-1"] == 1               # never placed twice, never lost
        assert sum(n - 1 for n in per_cid.values()) == 0
        # A real refusal under the caller's id is still a refusal, and places nothing.
        again.submit_order("BBB", "buy", 1, "limit", limit_price=1.0, tif="gtc",
                           client_order_id="b-1")
        with pytest.raises(PositionConflict):
            again.submit_order("BBB", "sell", 1, client_order_id="s-1")
        assert all(c != "s-1" for c, _ in fake.orders_by_client_id())
        assert again.orders.pending() == []


@needs_alpaca
def test_a_refusal_whose_lookup_fails_is_unknown_not_refused(fake: Any) -> None:
    broker = connect_alpaca(fake, timeout=0.5, stream=False)
    try:
        broker.submit_order("AAA", "sell", 100, client_order_id="close-1")
        fake.refuse_before_duplicate = True
        fake.stall_next(30.0, method="GET", path="/v2/orders:by_client_order_id")
        with restarted_adapter(fake) as other, pytest.raises(OrderStatusUnknown):
            other.submit_order("AAA", "sell", 100, client_order_id="close-1")
        fake.release_stalls()
    finally:
        fake.release_stalls()
        broker.close()


def restarted_adapter(fake: Any) -> Any:
    """An adapter that has not loaded the fake's orders (as after a restart)."""
    from simbroker.brokers.alpaca import AlpacaBroker

    return AlpacaBroker.for_fake(fake, stream=False, timeout=0.5,
                                 fills_since=fake.clock + timedelta(hours=1))


FLIP = '''
class Flip:
    """Long 10 of the first symbol on bar 0, then a reversal to short 10 in one order."""

    def on_bar(self, broker, history):
        symbol = history.symbols[0]
        if history.t == 0:
            broker.submit_order(symbol, "buy", 10)
        elif history.t == 3:
            broker.submit_order(symbol, "sell", 20)
'''


@pytest.mark.parametrize("venue", [None, "alpaca"])
def test_the_cli_backtest_takes_a_venue(tmp_path: Any, venue: str | None) -> None:
    from simbroker.cli import main
    from simbroker.tradelog import read_trade_log

    (tmp_path / "flip.py").write_text(FLIP)
    out = tmp_path / "out"
    args = ["backtest", f"{tmp_path / 'flip.py'}:Flip", "--data", "sample", "--end",
            "2009-01-01", "--out", str(out)]
    code = main([*args, "--venue", venue] if venue else args)
    records = read_trade_log(out / "tradelog.jsonl")
    rejected = [r for r in records if r["event"] == "rejected"]
    if venue is None:
        assert code == 0
        assert rejected == []
    else:  # the strategy does not catch the refusal: the run stops on it, saved
        assert code != 0
        assert [r["rule"] for r in rejected] == ["qty_available"]
