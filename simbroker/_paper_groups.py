"""Links between the orders of a bracket, OTO or OCO in the paper broker.

Pure bookkeeping: who is whose parent, which children are still held, which live legs
are siblings (exactly one of them may fill), and the deferred actions a fill or a final
status sets off (activate the children, cancel the siblings). The broker performs the
actions, each after its trade-log record, so a failed write leaves the rest pending and
the next call goes on where it stopped.

A *group* is keyed by the order that was submitted: a bracket/OTO parent (its children
are the group's legs once it filled) or an OCO's limit leg (it and its stop leg are the
group's legs from the start).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Action", "Groups", "one_leg_per_group"]


@dataclass(frozen=True)
class Action:
    """A deferred change: ``"activate"`` a held child, or ``"cancel"`` an open order."""

    kind: str
    order_id: str
    reason: str = ""
    first_bar: int = 0
    qty: float = 0.0


@dataclass
class Groups:
    """Every group's links and the actions waiting to be performed."""

    children: dict[str, list[str]] = field(default_factory=dict)
    """Group key -> its child order ids (bracket/OTO: take-profit then stop; OCO: stop)."""
    parent: dict[str, str] = field(default_factory=dict)
    """Child id -> group key."""
    oco: set[str] = field(default_factory=set)
    """Group keys that are OCO limit legs (the key is itself a leg)."""
    held: set[str] = field(default_factory=set)
    """Children waiting for their parent to fill."""
    live: dict[str, str] = field(default_factory=dict)
    """Order id -> group key, for open legs that are in the book and have a live sibling."""
    pending: list[Action] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    """Legs that left their group (filled, canceled, expired, rejected)."""

    def __contains__(self, order_id: str) -> bool:
        return order_id in self.children or order_id in self.parent

    def link(self, key: str, legs: list[str], *, oco: bool, held: bool) -> None:
        """Record a new group: ``key`` and its ``legs`` (held until ``key`` fills, or live)."""
        self.children[key] = list(legs)
        for leg in legs:
            self.parent[leg] = key
        if oco:
            self.oco.add(key)
            for oid in (key, *legs):
                self.live[oid] = key
        elif held:
            self.held.update(legs)
        elif len(legs) > 1:
            for leg in legs:
                self.live[leg] = key

    def members(self, key: str) -> list[str]:
        """The legs of a group (an OCO's limit leg included)."""
        legs = self.children.get(key, [])
        return [key, *legs] if key in self.oco else list(legs)

    def siblings(self, order_id: str) -> list[str]:
        """The other legs of ``order_id``'s group, open or not."""
        key = self.key_of(order_id)
        if key is None:
            return []
        return [m for m in self.members(key) if m != order_id]

    def key_of(self, order_id: str) -> str | None:
        """The group ``order_id`` is a leg of, if it is a leg."""
        if order_id in self.oco:
            return order_id
        return self.parent.get(order_id)

    def on_fill(self, order_id: str, t: int, filled_qty: float,
                is_open: Callable[[str], bool]) -> None:
        """Queue what a fill of ``order_id`` on bar ``t`` sets off.

        A parent's fill activates its held children from bar ``t + 1`` (sized to the
        filled quantity); a further part of a parent that fills in parts grows its
        active children to the quantity filled so far (an ``"activate"`` of a child that
        is no longer held); a leg's fill cancels its open siblings.
        """
        if order_id in self.children and order_id not in self.oco:
            for child in self.children[order_id]:
                if child not in self.done:
                    self.pending.append(Action("activate", child, first_bar=t + 1,
                                               qty=filled_qty))
        if self.key_of(order_id) is not None:
            for sib in self.siblings(order_id):
                if is_open(sib):
                    self.pending.append(Action("cancel", sib, f"sibling {order_id} filled"))
            self.drop_live(order_id)

    def on_final(self, order_id: str, status: str,
                 is_open: Callable[[str], bool]) -> None:
        """Queue what ``order_id`` ending unfilled (canceled, expired, rejected) sets off.

        A parent that did not fill takes its held children with it; a leg that ends
        leaves its siblings alone (they stay open, no longer linked to it).
        """
        if order_id in self.children and order_id not in self.oco:
            for child in self.children[order_id]:
                if child in self.held and is_open(child):
                    self.pending.append(Action("cancel", child, f"parent {order_id} {status}"))
        self.drop_live(order_id)

    def activated(self, order_id: str) -> None:
        """``order_id`` left ``held`` and is in the book."""
        self.held.discard(order_id)
        key = self.parent[order_id]
        live_legs = [c for c in self.children[key] if c not in self.held and c not in self.done]
        if len(live_legs) > 1:
            for leg in live_legs:
                self.live[leg] = key

    def drop_live(self, order_id: str) -> None:
        """``order_id`` left the book: a group left with one live leg has no pair left."""
        key = self.live.pop(order_id, None)
        self.held.discard(order_id)
        self.done.add(order_id)
        if key is None:
            return
        rest = [m for m in self.members(key) if self.live.get(m) == key]
        if len(rest) == 1:
            del self.live[rest[0]]


def one_leg_per_group(
    live: dict[str, str], ids: list[str], slots: np.ndarray, fill: np.ndarray,
    otype: np.ndarray, buy: np.ndarray, o: np.ndarray, lim: np.ndarray, stp: np.ndarray,
    both_legs: str,
) -> np.ndarray:
    """``fill`` with at most one leg per group left True (the rule of ``both_legs``).

    When two legs of a group could fill on one bar: a leg the open gapped through fills
    (at the open: that is where the bar started); otherwise the stop leg (``both_legs=
    "stop"``, the conservative default) or the take-profit leg (``"take_profit"``).
    ``slots`` are the book slots the other arrays are aligned with.
    """
    groups: dict[str, list[int]] = {}
    for i in np.flatnonzero(fill).tolist():
        key = live.get(ids[int(slots[i])])
        if key is not None:
            groups.setdefault(key, []).append(i)
    clashes = [legs for legs in groups.values() if len(legs) > 1]
    if not clashes:
        return fill
    fill = fill.copy()
    for legs in clashes:
        def gapped(i: int) -> bool:
            if otype[i] == 1:  # the take-profit limit
                return bool(o[i] <= lim[i]) if buy[i] else bool(o[i] >= lim[i])
            return bool(o[i] >= stp[i]) if buy[i] else bool(o[i] <= stp[i])

        through = [i for i in legs if gapped(i)]
        if len(through) == 1:
            winner = through[0]
        else:
            stops = [i for i in legs if otype[i] != 1]
            limits = [i for i in legs if otype[i] == 1]
            preferred = stops if both_legs == "stop" else limits
            winner = (preferred or legs)[0]
        for i in legs:
            if i != winner:
                fill[i] = False
    return fill
