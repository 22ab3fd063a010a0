"""The Alpaca order registry merges repeated and reordered snapshots into one truth."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("alpaca")

from simbroker.brokers.alpaca.orders import OrderRegistry
from simbroker.brokers.alpaca.translate import VenueOrder
from simbroker.types import Order

T0 = datetime(2024, 3, 4, 15, tzinfo=timezone.utc)
OID = "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0001"


def snapshot(status: str, filled: float, qty: float = 10.0, *, step: int = 0,
             oid: str = OID, cid: str = "c-1", replaces: str | None = None,
             replaced_by: str | None = None, order_type: str = "market",
             side: str = "buy", klass: str = "simple",
             legs: tuple[VenueOrder, ...] = ()) -> VenueOrder:
    """One Alpaca order as the adapter parses it; ``step`` orders its ``updated_at``."""
    mapped = {"replaced": "canceled", "held": "held"}.get(status, status)
    return VenueOrder(
        info={"order_id": oid, "client_order_id": cid, "symbol": "AAA", "side": side,
              "order_type": order_type, "tif": "day", "qty": qty, "limit_price": None,
              "stop_price": None, "status": mapped, "filled_qty": filled,
              "avg_fill_price": 1.0 if filled else None, "submitted_at": T0,
              "reason": None, "order_class": klass, "parent_id": None,
              "legs": [leg.order_id for leg in legs], "trail_amount": None,
              "trail_percent": None, "extended_hours": False,
              "remaining_qty": qty - filled},
        raw_status=status, updated_at=T0 + timedelta(seconds=step), replaces=replaces,
        replaced_by=replaced_by, legs=legs)


@st.composite
def histories(draw: Any) -> list[VenueOrder]:
    """An order's true snapshots in the venue's order: new, partial fills, then maybe
    a final status."""
    cuts = sorted(set(draw(st.lists(st.integers(1, 9), max_size=4))))
    rows = [snapshot("new", 0.0)] + [snapshot("partially_filled", float(c), step=i + 1)
                                     for i, c in enumerate(cuts)]
    end = draw(st.sampled_from(["filled", "canceled", "expired", "open"]))
    if end == "filled":
        rows.append(snapshot("filled", 10.0, step=len(rows)))
    elif end != "open":
        rows.append(snapshot(end, rows[-1].info["filled_qty"], step=len(rows)))
    return rows


@given(history=histories(), data=st.data())
def test_any_order_of_repeated_snapshots_gives_the_venues_last_state(
        history: list[VenueOrder], data: Any) -> None:
    seen = data.draw(st.permutations(history + data.draw(
        st.lists(st.sampled_from(history), max_size=6))))
    registry = OrderRegistry()
    finals = 0
    for snap in seen:
        _, became_final, _ = registry.update(snap)
        finals += len(became_final)
    got = registry.get(OID)
    assert got is not None
    last = history[-1].info
    assert got["filled_qty"] == last["filled_qty"]
    assert got["remaining_qty"] == 10.0 - last["filled_qty"]
    if last["status"] in ("filled", "canceled", "expired"):
        assert got["status"] == last["status"]
        assert finals == 1
    else:
        assert finals == 0
    assert registry.by_client_id("c-1") == got


def test_a_snapshot_resolves_the_pending_send_of_its_client_order_id() -> None:
    registry = OrderRegistry()
    order = Order.create("AAA", "buy", 10)
    registry.add_pending("c-1", order)
    assert [p.client_order_id for p in registry.pending("AAA")] == ["c-1"]
    assert registry.pending("BBB") == []
    _, _, resolved = registry.update(snapshot("new", 0.0))
    assert [p.order for p in resolved] == [order]
    assert registry.pending() == []
    registry.add_pending("c-1", order)  # known by now: not pending again
    assert registry.pending() == []


OLD, NEW, NEWER = (OID, "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0002",
                   "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0003")


def replace_history() -> list[VenueOrder]:
    """A limit order 4 filled, replaced (qty 10 -> 12: the replacement carries the 8 left),
    the replacement 3 filled, replaced again (its 5 left), then filled."""
    lim = {"order_type": "limit"}
    return [
        snapshot("new", 0.0, **lim),
        snapshot("partially_filled", 4.0, step=1, **lim),
        snapshot("pending_replace", 4.0, step=2, **lim),
        snapshot("replaced", 4.0, step=3, replaced_by=NEW, **lim),
        snapshot("new", 0.0, 8.0, step=4, oid=NEW, cid="r-1", replaces=OLD, **lim),
        snapshot("partially_filled", 3.0, 8.0, step=5, oid=NEW, cid="r-1", replaces=OLD,
                 **lim),
        snapshot("replaced", 3.0, 8.0, step=6, oid=NEW, cid="r-1", replaces=OLD,
                 replaced_by=NEWER, **lim),
        snapshot("new", 0.0, 5.0, step=7, oid=NEWER, cid="r-2", replaces=NEW, **lim),
        snapshot("filled", 5.0, 5.0, step=8, oid=NEWER, cid="r-2", replaces=NEW, **lim),
    ]


@given(data=st.data())
def test_a_replaced_order_keeps_its_id_and_adds_up_its_chain_in_any_event_order(
        data: Any) -> None:
    history = replace_history()
    cut = data.draw(st.integers(1, len(history)))
    seen = data.draw(st.permutations(history[:cut]))
    registry = OrderRegistry()
    finals = []
    for snap in seen:
        _, became_final, _ = registry.update(snap)
        finals += became_final
    ids = {registry.order_id_of(v.order_id) for v in history[:cut]}
    assert ids == {OLD}  # one simbroker order, whatever Alpaca's ids
    got = registry.get(OLD)
    assert got is not None
    assert got["client_order_id"] == "c-1"
    for v in history[:cut]:  # every Alpaca id of the chain names the same order
        assert registry.get(v.order_id) == got
    assert len(registry.all()) == 1
    if cut == len(history):
        assert got["status"] == "filled"
        assert got["filled_qty"] == 12.0
        assert got["qty"] == 12.0
        assert [f["order_id"] for f in finals] == [OLD]
        assert registry.current_id(OLD) == NEWER
    else:
        assert got["status"] in ("new", "partially_filled")
        assert finals == []  # a replaced Alpaca order does not end simbroker's order


def test_legs_are_held_until_the_parent_trades_and_name_the_sibling_that_canceled_them(
        ) -> None:
    tp_id, sl_id = "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0010", "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0011"

    def group(parent_status: str, filled: float, tp: str, sl: str, step: int) -> VenueOrder:
        legs = (snapshot(sl, 0.0, filled or 10.0, oid=sl_id, cid="l-2", order_type="stop",
                         side="sell", klass="bracket", step=step),
                snapshot(tp, 10.0 if tp == "filled" else 0.0, filled or 10.0, oid=tp_id,
                         cid="l-1", order_type="limit", side="sell", klass="bracket",
                         step=step))
        return snapshot(parent_status, filled, klass="bracket", legs=legs, step=step)

    registry = OrderRegistry()
    registry.update(group("new", 0.0, "held", "held", 0))
    parent = registry.get(OID)
    assert parent is not None
    assert parent["legs"] == [tp_id, sl_id]  # take-profit first, whatever Alpaca's order
    assert [registry.get(c)["status"] for c in parent["legs"]] == ["held", "held"]  # type: ignore[index]
    assert registry.get(sl_id)["parent_id"] == OID  # type: ignore[index]
    registry.update(group("filled", 10.0, "new", "held", 1))
    # The stop leg stays "held" at Alpaca but is live once the parent has traded.
    assert [registry.get(c)["status"] for c in parent["legs"]] == ["new", "new"]  # type: ignore[index]
    _, finals, _ = registry.update(group("filled", 10.0, "filled", "canceled", 2))
    sl = registry.get(sl_id)
    assert sl is not None
    assert sl["status"] == "canceled"
    assert sl["reason"] == f"canceled: its sibling {tp_id} filled"
    assert {f["order_id"] for f in finals} == {tp_id, sl_id}
    assert [i["order_id"] for i in registry.all()] == [OID, tp_id, sl_id]


@pytest.mark.parametrize("names_the_stop", [True, False])
def test_a_take_profit_replaced_by_its_stops_trigger_is_canceled_not_chained(
        names_the_stop: bool) -> None:
    """Alpaca shows a bracket's take-profit as "replaced" when its stop triggers
    (alpacahq/alpaca-py issue 198); that is the end of the take-profit, not a replace."""
    tp_id, sl_id = "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0010", "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0011"

    def legs(tp: str, sl: str, sl_filled: float, step: int) -> tuple[VenueOrder, ...]:
        return (snapshot(tp, 0.0, oid=tp_id, cid="l-1", order_type="limit", side="sell",
                         klass="bracket", step=step,
                         replaced_by=sl_id if tp == "replaced" and names_the_stop else None),
                snapshot(sl, sl_filled, oid=sl_id, cid="l-2", order_type="stop",
                         side="sell", klass="bracket", step=step))

    registry = OrderRegistry()
    registry.update(snapshot("filled", 10.0, klass="bracket", legs=legs("new", "held", 0, 0)))
    registry.update(legs("replaced", "held", 0, 1)[0])  # the stream's event, alone
    registry.update(snapshot("filled", 10.0, klass="bracket", step=2,
                             legs=legs("replaced", "filled", 10.0, 2)))
    tp, sl = registry.get(tp_id), registry.get(sl_id)
    assert tp is not None
    assert sl is not None
    assert registry.order_id_of(sl_id) == sl_id
    assert (sl["status"], sl["filled_qty"]) == ("filled", 10.0)
    assert (tp["status"], tp["filled_qty"]) == ("canceled", 0.0)
    assert tp["reason"] == f"canceled: its sibling {sl_id} filled"
    assert registry.get(OID)["legs"] == [tp_id, sl_id]  # type: ignore[index]
    assert registry.missing() == []
