"""The Alpaca order registry merges repeated and reordered snapshots into one truth."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("alpaca")

from simbroker.brokers.alpaca.orders import OrderRegistry
from simbroker.types import Order, OrderInfo

T0 = datetime(2024, 3, 4, 15, tzinfo=timezone.utc)


def snapshot(status: str, filled: float, qty: float = 10.0) -> OrderInfo:
    return {"order_id": "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0001", "client_order_id": "c-1",
            "symbol": "AAA", "side": "buy", "order_type": "market", "tif": "day",
            "qty": qty, "limit_price": None, "stop_price": None, "status": status,
            "filled_qty": filled, "avg_fill_price": 1.0 if filled else None,
            "submitted_at": T0, "reason": None}


@st.composite
def histories(draw: Any) -> list[OrderInfo]:
    """An order's true snapshots in the venue's order: new, partial fills, then maybe
    a final status."""
    cuts = sorted(set(draw(st.lists(st.integers(1, 9), max_size=4))))
    rows = [snapshot("new", 0.0)] + [snapshot("partially_filled", float(c)) for c in cuts]
    end = draw(st.sampled_from(["filled", "canceled", "expired", "open"]))
    if end == "filled":
        rows.append(snapshot("filled", 10.0))
    elif end != "open":
        rows.append(snapshot(end, rows[-1]["filled_qty"]))
    return rows


@given(history=histories(), data=st.data())
def test_any_order_of_repeated_snapshots_gives_the_venues_last_state(
        history: list[OrderInfo], data: Any) -> None:
    seen = data.draw(st.permutations(history + data.draw(
        st.lists(st.sampled_from(history), max_size=6))))
    registry = OrderRegistry()
    finals = 0
    for snap in seen:
        _, became_final, _ = registry.update(snap)
        finals += became_final
    got = registry.get(history[0]["order_id"])
    assert got is not None
    last = history[-1]
    assert got["filled_qty"] == last["filled_qty"]
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
    assert resolved is not None
    assert resolved.order is order
    assert registry.pending() == []
    registry.add_pending("c-1", order)  # known by now: not pending again
    assert registry.pending() == []
