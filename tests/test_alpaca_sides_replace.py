"""Alpaca's one side at a time on replace: the same in the paper broker
(``venue="alpaca"``), in FakeAlpaca, and through the real adapter against the fake.

Alpaca's replace is a new order that replaces the old one (alpacahq/Alpaca-API issue 165:
a partly filled sell replaced with its whole original qty "is trying to sell more than
one has shares" and is refused), weighed with the old order set aside: its own rest is
available to its replacement (issue 282 reports a same-qty replace refused with
"available: 0" as a bug). A sell raised beyond the shares available answers 403, code
40310000, "insufficient qty available for order (requested: Q, available: A)".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _live import HAS_ALPACA, connect_alpaca
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_alpaca_sides import PRICE, paper

from simbroker.errors import PositionConflict, ReplaceRejected

needs_alpaca = pytest.mark.skipif(not HAS_ALPACA, reason="alpaca-py not installed")


def conflict_of(exc: ReplaceRejected) -> PositionConflict:
    cause = exc.__cause__
    assert isinstance(cause, PositionConflict), repr(cause)
    return cause


def resting_sell(b: Any, qty: float) -> str:
    """A gtc sell limit far above the price: it rests, never fills."""
    return str(b.submit_order("AAA", "sell", qty, "limit", limit_price=2 * PRICE,
                              tif="gtc")["order_id"])


# ---------------------------------------------------------------------- the paper broker
def test_paper_refuses_raising_a_sell_beyond_the_shares_and_changes_nothing(
        tmp_path: Any) -> None:
    log = tmp_path / "t.jsonl"
    b = paper({"AAA": 100.0}, trade_log=log)
    oid = resting_sell(b, 60)
    before = b.get_orders()
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(oid, qty=120)
    c = conflict_of(err.value)
    # The order's own 60 count as available to its replacement: all 100 are.
    assert (c.rule, c.side, c.requested, c.available, c.position) == \
        ("qty_available", "sell", 120.0, 100.0, 100.0)
    assert err.value.field == "qty"
    assert c.reason in str(err.value)
    assert b.get_orders() == before  # the old order stands
    b.close()
    events = [r["event"] for r in map(json.loads, log.read_text().splitlines())]
    assert events.count("replace_rejected") == 1
    assert "replaced" not in events


def test_paper_takes_a_replace_within_the_shares_the_old_order_counted() -> None:
    b = paper({"AAA": 100.0})
    oid = resting_sell(b, 60)
    assert b.replace_order(oid, qty=100)["qty"] == 100.0  # all of it: its own 60 count
    assert b.replace_order(oid, qty=40)["qty"] == 40.0  # lowered
    assert b.replace_order(oid, limit_price=190.0)["limit_price"] == 190.0


def test_paper_counts_the_other_open_sells() -> None:
    b = paper({"AAA": 100.0})
    resting_sell(b, 30)
    oid = resting_sell(b, 60)
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(oid, qty=80)
    assert (conflict_of(err.value).requested, conflict_of(err.value).available) == \
        (80.0, 70.0)
    assert b.replace_order(oid, qty=70)["qty"] == 70.0


def test_paper_weighs_what_is_left_of_a_partly_filled_order() -> None:
    # 50 of the 100 a bar's volume share allows: the sell fills half, 50 held, 50 left.
    b = paper({"AAA": 100.0}, max_volume_share=0.5e-7)
    oid = b.submit_order("AAA", "sell", 100, "limit", limit_price=PRICE, tif="gtc")[
        "order_id"]
    b.step()
    info = b.get_order(oid)
    assert (info["filled_qty"], b.get_positions()) == (50.0, {"AAA": 50.0})
    assert b.replace_order(oid, qty=100)["qty"] == 100.0  # 50 left for 50 held
    with pytest.raises(ReplaceRejected) as err:  # 100 left for 50 held
        b.replace_order(oid, qty=150)
    c = conflict_of(err.value)
    assert (c.requested, c.available, c.position) == (100.0, 50.0, 50.0)


def test_paper_weighs_a_bracket_exit_with_its_group_set_aside() -> None:
    b = paper()
    b.submit_order("AAA", "buy", 10, order_class="bracket",
                   take_profit={"limit_price": 120.0}, stop_loss={"stop_price": 80.0})
    b.step()  # the entry fills; both exits (sells of 10, one claim) are live
    tp = next(o for o in b.get_orders(open_only=True) if o["order_type"] == "limit")
    assert b.replace_order(tp["order_id"], limit_price=125.0)["limit_price"] == 125.0
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(tp["order_id"], qty=20)
    assert (conflict_of(err.value).requested, conflict_of(err.value).available) == \
        (20.0, 10.0)


@pytest.mark.parametrize("venue", [None, "ibkr"])
def test_the_default_and_ibkr_take_the_replace(venue: str | None) -> None:
    """The default applies one side at a time neither at submission nor on replace."""
    b = paper({"AAA": 100.0}, venue=venue)
    oid = resting_sell(b, 60)
    assert b.replace_order(oid, qty=250)["qty"] == 250.0


# ---------------------------------------------------------------------- the fake
@pytest.fixture
def fake() -> Iterator[Any]:
    from simbroker.testing.fake_alpaca import FakeAlpaca

    with FakeAlpaca(cash=1_000_000.0, positions={"AAA": 100.0}) as f:
        for sym in ("AAA", "BBB"):
            f.set_price(sym, PRICE)
        yield f


def fake_sell(fake: Any, qty: float) -> str:
    return str(fake._submit({"symbol": "AAA", "qty": qty, "side": "sell", "type": "limit",
                             "limit_price": 2 * PRICE, "time_in_force": "gtc"})["id"])


def test_the_fake_answers_a_raised_sell_with_alpacas_403(fake: Any) -> None:
    from simbroker.testing.fake_alpaca._orders import ApiError

    oid = fake_sell(fake, 60)
    with pytest.raises(ApiError) as err:
        fake._replace(oid, {"qty": "120"})
    assert (err.value.status, err.value.code, err.value.message) == \
        (403, 40310000, "insufficient qty available for order (requested: 120, "
                        "available: 100)")
    assert fake.orders[oid]["status"] == "new"  # the old order stands
    assert sum(1 for o in fake.orders.values() if o["status"] == "new") == 1
    new = fake._replace(oid, {"qty": "100"})  # its own 60 count: all 100 available
    assert (new["qty"], fake.orders[oid]["status"]) == ("100", "replaced")
    assert fake._replace(new["id"], {"qty": "40"})["qty"] == "40"


def test_the_fake_weighs_a_partly_filled_sells_rest(fake: Any) -> None:
    from simbroker.testing.fake_alpaca._orders import ApiError

    fake.partial_fills = 2
    oid = fake._submit({"symbol": "AAA", "qty": 100, "side": "sell", "type": "limit",
                        "limit_price": PRICE, "time_in_force": "gtc"})["id"]
    fake.step()  # 50 of 100 fill
    assert fake.positions["AAA"] == 50.0
    with pytest.raises(ApiError) as err:  # issue 165: the whole original qty again
        fake._replace(oid, {"qty": "100"})
    assert err.value.message.endswith("(requested: 100, available: 50)")
    assert fake._replace(oid, {"qty": "50", "limit_price": "101"})["qty"] == "50"


# ---------------------------------------------------------------------- the adapter
@needs_alpaca
def test_the_adapter_raises_the_papers_refusal_and_keeps_the_order(fake: Any) -> None:
    live = connect_alpaca(fake)
    local = paper({"AAA": 100.0})
    try:
        ids = [resting_sell(b, 60) for b in (local, live)]
        errors = []
        for b, oid in zip((local, live), ids, strict=True):
            with pytest.raises(ReplaceRejected) as err:
                b.replace_order(oid, qty=120)
            errors.append(err.value)
        # The same sentence (each names its own order id), the same cause.
        assert conflict_of(errors[0]).reason == conflict_of(errors[1]).reason
        assert all(conflict_of(e).reason in str(e) for e in errors)
        assert errors[1].field == "qty"
        c = conflict_of(errors[1])
        assert (c.rule, c.requested, c.available, c.position) == \
            ("qty_available", 120.0, 100.0, 100.0)
        info = live.get_order(ids[1])  # neither lost nor unknown: open, unchanged
        assert (info["status"], info["qty"]) == ("new", 60.0)
        assert live.orders.pending() == []
        for b, oid in zip((local, live), ids, strict=True):
            assert b.replace_order(oid, qty=100)["qty"] == 100.0
    finally:
        live.close()


@needs_alpaca
def test_the_adapter_sends_a_partly_filled_sells_rest_and_is_refused_beyond(
        fake: Any) -> None:
    from simbroker.brokers.alpaca import fill_id

    fake.partial_fills = 2
    live = connect_alpaca(fake)
    try:
        oid = live.submit_order("AAA", "sell", 100, "limit", limit_price=PRICE,
                                tif="gtc")["order_id"]
        made = fake.step()
        live.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made}, 10)
        with pytest.raises(ReplaceRejected) as err:
            live.replace_order(oid, qty=150)  # 100 left for the 50 held
        c = conflict_of(err.value)
        assert (c.requested, c.available, c.position) == (100.0, 50.0, 50.0)
        assert live.replace_order(oid, limit_price=101.0)["limit_price"] == 101.0
    finally:
        live.close()


# ---------------------------------------------------------------------- parity
def _outcome(call: Any) -> tuple[tuple[Any, ...], str | None]:
    """What a call came to (alike at both brokers) and the order id it returned."""
    try:
        info = call()
    except PositionConflict as exc:
        return ("refused", exc.rule, exc.requested, exc.available), None
    except ReplaceRejected as exc:
        c = conflict_of(exc)
        return ("replace refused", c.reason, c.rule, c.requested, c.available,
                c.reason in str(exc)), None
    return ("accepted", info["qty"]), str(info["order_id"])


ops = st.lists(st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(["buy", "sell"]), st.integers(1, 150)),
    st.tuples(st.just("replace"), st.integers(0, 7), st.integers(1, 250))),
    min_size=1, max_size=8)


@needs_alpaca
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.sampled_from([0.0, 100.0, -80.0]), stream=ops)
def test_submit_and_replace_streams_are_refused_alike_at_paper_and_the_fake(
        position: float, stream: list[tuple[Any, ...]]) -> None:
    from simbroker.testing.fake_alpaca import FakeAlpaca

    positions = {"AAA": position} if position else {}
    with FakeAlpaca(cash=10_000_000.0, positions=positions) as fake:
        fake.set_price("AAA", PRICE)
        live = connect_alpaca(fake, stream=False)
        local = paper(positions or None)
        placed: list[list[str]] = [[], []]
        try:
            for op in stream:
                outcomes = []
                for k, b in enumerate((local, live)):
                    if op[0] == "submit":
                        _, side, qty = op
                        limit = PRICE / 2 if side == "buy" else 2 * PRICE  # rests
                        out, oid = _outcome(lambda b=b, side=side, qty=qty, limit=limit:
                                            b.submit_order("AAA", side, qty, "limit",
                                                           limit_price=limit, tif="gtc"))
                        if oid is not None:
                            placed[k].append(oid)
                    elif placed[k]:
                        oid = placed[k][op[1] % len(placed[k])]
                        out, _ = _outcome(lambda b=b, oid=oid, qty=op[2]:
                                          b.replace_order(oid, qty=qty))
                    else:
                        out = ("nothing to replace",)
                    outcomes.append(out)
                assert outcomes[0] == outcomes[1], (op, outcomes)
            open_qty = [sorted(o["qty"] for o in b.get_orders(open_only=True))
                        for b in (local, live)]
            assert open_qty[0] == open_qty[1]
        finally:
            live.close()
