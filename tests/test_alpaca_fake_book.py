"""Properties of FakeAlpaca's order book over random markets (no servers: its book alone).

The fake is the venue the adapter's tests trust, so its groups and trailing stops are
checked as Alpaca promises them: a bracket never fills both exits nor sells more than
its entry bought (no accidental short), legs never trade before their parent, a
trailing stop's level never loosens.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simbroker.testing.fake_alpaca import FakeAlpaca

prices = st.lists(st.floats(80.0, 120.0, allow_nan=False).map(lambda x: round(x, 2)),
                  min_size=1, max_size=30)


def book(**kwargs: Any) -> FakeAlpaca:
    fake = FakeAlpaca(cash=1e9, **kwargs)  # never started: orders go straight to its book
    fake.set_price("AAA", 100.0)
    return fake


@settings(max_examples=150, deadline=None)
@given(path=prices, parts=st.integers(1, 3), limit_entry=st.booleans(),
       cancel_at=st.integers(0, 30))
def test_a_bracket_never_fills_both_exits_nor_sells_more_than_it_bought(
        path: list[float], parts: int, limit_entry: bool, cancel_at: int) -> None:
    fake = book()
    fake.partial_fills = parts
    req: dict[str, Any] = {"symbol": "AAA", "qty": 12, "side": "buy",
                           "type": "limit" if limit_entry else "market",
                           "time_in_force": "gtc", "order_class": "bracket",
                           "take_profit": {"limit_price": 108.0},
                           "stop_loss": {"stop_price": 93.0}}
    if limit_entry:
        req["limit_price"] = 100.0
    parent = fake._submit(req)
    pid = parent["id"]
    tp_id, sl_id = (leg["id"] for leg in parent["legs"])
    traded_before_parent = False
    for t, px in enumerate(path):
        fake.set_price("AAA", px)
        before = float(fake.orders[pid]["filled_qty"])
        made = fake.step()
        if before == 0 and any(a["order_id"] in (tp_id, sl_id) for a in made):
            traded_before_parent = True
        if t == cancel_at and fake.orders[pid]["status"] in ("new", "partially_filled"):
            fake._cancel(pid)
        bought = float(fake.orders[pid]["filled_qty"])
        sold = sum(float(fake.orders[c]["filled_qty"]) for c in (tp_id, sl_id))
        assert sold <= bought + 1e-9  # never short
        assert fake.positions.get("AAA", 0.0) >= -1e-9
    assert not traded_before_parent
    statuses = [fake.orders[c]["status"] for c in (tp_id, sl_id)]
    assert statuses.count("filled") <= 1
    if "filled" in statuses:  # the group is done: nothing of it can trade any more
        assert all(s in ("filled", "canceled") for s in statuses)


@settings(max_examples=150, deadline=None)
@given(path=prices, pct=st.floats(0.5, 20.0).map(lambda x: round(x, 2)),
       side=st.sampled_from(["buy", "sell"]))
def test_a_trailing_stops_level_never_loosens_and_it_fills_only_through_it(
        path: list[float], pct: float, side: str) -> None:
    fake = book(positions={"AAA": 10.0})
    oid = fake._submit({"symbol": "AAA", "qty": 5, "side": side, "type": "trailing_stop",
                        "time_in_force": "gtc", "trail_percent": pct})["id"]
    o = fake.orders[oid]
    level = float(o["stop_price"])
    for px in path:
        fake.set_price("AAA", px)
        made = fake.step()
        new = float(o["stop_price"])
        if o["status"] == "filled":  # at or through the stop, at the step's price
            assert [float(a["price"]) for a in made] == [px]
            assert px <= new + 1e-9 if side == "sell" else px >= new - 1e-9
            break
        assert px > new if side == "sell" else px < new
        assert new >= level - 1e-9 if side == "sell" else new <= level + 1e-9
        level = new
        extreme = float(o["hwm"])
        k = pct / 100
        want = extreme * (1 - k) if side == "sell" else extreme * (1 + k)
        assert abs(level - want) < 1e-6


def test_an_oco_fills_one_order_of_its_pair_whatever_the_path() -> None:
    for path in ([111.0], [90.0], [105.0, 94.0, 111.0], [112.0, 90.0]):
        fake = book(positions={"AAA": 10.0})
        limit = fake._submit({"symbol": "AAA", "qty": 10, "side": "sell", "type": "limit",
                              "time_in_force": "gtc", "order_class": "oco",
                              "take_profit": {"limit_price": 110.0},
                              "stop_loss": {"stop_price": 95.0}})
        ids = [limit["id"], limit["legs"][0]["id"]]
        for px in path:
            fake.set_price("AAA", px)
            fake.step()
        statuses = sorted(fake.orders[i]["status"] for i in ids)
        assert statuses == ["canceled", "filled"], path
        assert "AAA" not in fake.positions
