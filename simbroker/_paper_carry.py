"""Carrying a session's open orders, groups included, into a new paper broker.

A resumed session receives its open orders as mappings (``PaperBroker(open_orders=)``,
built by the runner from :func:`simbroker.tradelog.replay_trade_log`). Each gets a new
id; this module works out, before anything is placed or logged, the order in which they
are placed, the held state of children, and the links between them under the new ids:

- an entry with ``parent_id`` is a leg: linked to its parent when the parent is carried
  too (a bracket still waiting to fill, an OCO's limit leg), otherwise to the other legs
  that name the same parent (a filled bracket's two live exits stay siblings);
- a bracket/OTO/OCO entry that no carried entry names as parent brings its legs fresh,
  as on submission (a hand-written carry-over of a bracket).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simbroker.errors import InvalidOrder
from simbroker.types import Order, OrderClass

__all__ = ["Carried", "plan_carried"]


@dataclass
class Carried:
    """One order to place at the start, in placement order, with its links."""

    order: Order
    trig: int | None
    new_id: str
    held: bool = False
    parent_id: str | None = None
    """The new id of its parent (or its old id when the parent is not carried)."""
    group_class: str | None = None
    extreme: float | None = None
    legs: list[str] = field(default_factory=list)
    group_key: str | None = None
    """Set on a group's key order (or, for legs of a parent not carried, on the first
    leg): the key the group is linked under."""


def plan_carried(entries: list[tuple[Mapping[str, Any], Order, int | None]],
                 prefix: str) -> tuple[list[Carried], list[tuple[str, list[str], bool, bool]]]:
    """Placement order and group links of carried-over orders.

    ``entries`` are (mapping, its order, its trigger bar). Returns the orders to place
    (new ids ``prefix + k`` from 1, in placement order) and the groups to link, each as
    ``(key, legs, oco, held)`` in new ids (a key not carried keeps its old id).
    """
    old_ids = [None if e.get("order_id") is None else str(e["order_id"]) for e, _, _ in entries]
    keys = {oid for (e, o, _), oid in zip(entries, old_ids, strict=True)
            if oid is not None and e.get("parent_id") is None
            and o.order_class is not OrderClass.SIMPLE}
    legs_of: dict[str, list[int]] = {}
    for i, (e, _o, _) in enumerate(entries):
        parent = e.get("parent_id")
        if parent is not None:
            legs_of.setdefault(str(parent), []).append(i)
    held_orphans = [i for i, (e, _, _) in enumerate(entries)
                    if e.get("status") == "held" and str(e.get("parent_id")) not in keys]
    if held_orphans:
        e, o, _ = entries[held_orphans[0]]
        raise InvalidOrder(
            f"carried-over order {old_ids[held_orphans[0]]!r} is held for parent "
            f"{e.get('parent_id')!r}, which is not carried over", field="parent_id",
            value=e.get("parent_id"), symbol=o.symbol)

    plan: list[Carried] = []
    new_of: dict[str, str] = {}

    def add(order: Order, trig: int | None, **kw: Any) -> Carried:
        c = Carried(order, trig, f"{prefix}{len(plan) + 1}", **kw)
        plan.append(c)
        return c

    placed: set[int] = set()
    groups: list[tuple[str, list[str], bool, bool]] = []
    for i, (e, o, trig) in enumerate(entries):
        if i in placed:
            continue
        oid = old_ids[i]
        if e.get("parent_id") is not None and str(e["parent_id"]) in keys:
            continue  # placed right after its parent
        extreme = _extreme(e)
        if oid is not None and oid in keys:
            key = add(o, trig, extreme=extreme)
            new_of[oid] = key.new_id
            oco = o.order_class is OrderClass.OCO
            carried_legs = legs_of.get(oid, [])
            held = False
            if carried_legs:
                for j in carried_legs:
                    je, jo, jtrig = entries[j]
                    held = je.get("status") == "held"
                    leg = add(jo, jtrig, held=held, parent_id=key.new_id,
                              group_class=o.order_class.value, extreme=_extreme(je))
                    key.legs.append(leg.new_id)
                    placed.add(j)
            else:
                held = not oco
                for jo in o.leg_orders():
                    leg = add(jo, None, held=held, parent_id=key.new_id,
                              group_class=o.order_class.value)
                    key.legs.append(leg.new_id)
            groups.append((key.new_id, key.legs, oco, held))
            continue
        parent = None if e.get("parent_id") is None else str(e["parent_id"])
        c = add(o, trig, parent_id=parent, extreme=extreme,
                group_class=None if parent is None else str(e.get("order_class") or "bracket"))
        if oid is not None:
            new_of[oid] = c.new_id
    # Legs whose parent is not carried (a filled bracket's live exits): siblings still.
    for parent, idx in legs_of.items():
        if parent in keys:
            continue
        olds = [old_ids[i] for i in idx]
        members = [new_of[o] for o in olds if o is not None and o in new_of]
        if len(members) > 1:
            groups.append((parent, members, False, False))
    return plan, groups


def _extreme(entry: Mapping[str, Any]) -> float | None:
    value = entry.get("trail_extreme")
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidOrder(f"trail_extreme must be a number, got {value!r}",
                           field="trail_extreme", value=value) from None
