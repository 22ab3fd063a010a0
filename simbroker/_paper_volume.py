"""Partial fills by volume: how much of each order a bar can fill.

With ``max_volume_share=s`` (e.g. 0.025, as zipline's ``VolumeShareSlippage``) the orders
of one symbol together take at most ``s * volume`` of a bar, in book order (time
priority: the earliest order first). An order whose remaining quantity is a whole number
fills in whole shares (the share of the bar is floored); a fractional one takes the exact
share. An order the cap leaves short keeps its remainder open for later bars.

Both engines call :func:`capped_quantities`, so the paper broker and the vectorized runner
make the same decision bit for bit.

A bar the paper broker matches again, after a trade-log write failed while it booked the
bar's fills, is decided as it was the first time (:func:`recalled`): the fills booked
before the failure took their share of the bar, so the rest of the bar's orders get what
the first decision gave them, and the retried run fills exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["SMALL", "CapMemo", "capped_lists", "capped_quantities", "check_share",
           "fits_whole", "recalled"]

SMALL = 16
"""Calls with at most this many fills are decided in Python floats (the same operations
in the same order: bit-identical; tests force either path by setting it to -1 or to a
huge number)."""

CapMemo = tuple[int, list[str], list[int], Any, Any, Any, Any, Any]
"""One bar's decision under the cap, kept for matching the bar again: the bar, the book's
``ids`` and ``syms`` lists then (the book replaces them when it drops orders, so they map
the slots below for as long as the memo lives), the candidate slots and their remaining
quantities, then the slots the decision kept (a fok the cap would split left out), their
quantities (0 where the cap was used up) and whole flags (``None``: all whole); lists or
arrays."""


def check_share(value: float | None, volume_known: bool) -> float | None:
    """Validate ``max_volume_share``: ``None`` (off) or a number in ``(0, 1]``.

    Bars whose volume is unknown (``Bars.volume_known`` False) have no volume to take a
    share of: the combination is refused rather than silently filling whole.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"max_volume_share must be a number in (0, 1] or None, got {value!r}")
    share = float(value)
    if not math.isfinite(share) or not 0.0 < share <= 1.0:
        raise ValueError(f"max_volume_share must be in (0, 1], got {value!r}")
    if not volume_known:
        raise ValueError(
            "max_volume_share needs bars with a known volume; these bars have "
            "volume_known=False (no volume column), so no cap can be computed: drop "
            "max_volume_share or load bars with volume")
    return share


def capped_quantities(sym: np.ndarray, remaining: np.ndarray, volume: np.ndarray,
                      share: float, taken: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Quantity each fill takes under the cap, and whether it completes its order.

    Parameters
    ----------
    sym
        Symbol column of each candidate fill, in book (time-priority) order.
    remaining
        Each order's remaining quantity (> 0).
    volume
        The bar's volume for each fill's symbol (> 0).
    share
        ``max_volume_share``.
    taken
        What of each fill's symbol's bar earlier fills already took (``None``: nothing).

    Returns
    -------
    qty, whole
        ``qty`` (0 where the cap is used up), and ``whole`` where ``qty == remaining``
        exactly.
    """
    if len(sym) <= SMALL:
        q, w = _capped_small(sym.tolist(), remaining.tolist(), volume.tolist(), share,
                             None if taken is None else taken.tolist())
        return np.array(q, np.float64), np.array(w, np.bool_)
    avail = share * volume
    before = np.zeros(len(sym))
    if len(sym) > 1:
        order = np.argsort(sym, kind="stable")
        s = sym[order]
        first = np.ones(len(s), np.bool_)
        first[1:] = s[1:] != s[:-1]
        if not first.all():  # several orders of one symbol share its volume
            r = remaining[order]
            upto = np.cumsum(r) - r
            group = np.cumsum(first) - 1
            before[order] = upto - upto[first][group]
    left = avail - before
    if taken is not None:
        left -= taken
    whole = remaining <= left
    part = np.maximum(left, 0.0)
    part = np.where(remaining == np.floor(remaining), np.floor(part), part)
    qty = np.where(whole, remaining, np.minimum(part, remaining))
    return qty, whole


def capped_lists(sym: list[int], remaining: list[float], volume: list[float], share: float,
                 taken: list[float] | None = None) -> tuple[list[float], list[bool]]:
    """:func:`capped_quantities` on lists (the paper broker's small books): the same
    decision, without the arrays when there are at most :data:`SMALL` fills."""
    if len(sym) <= SMALL:
        return _capped_small(sym, remaining, volume, share, taken)
    q, w = capped_quantities(np.array(sym, np.int64), np.array(remaining, np.float64),
                             np.array(volume, np.float64), share,
                             None if taken is None else np.array(taken, np.float64))
    return q.tolist(), w.tolist()


def _listed(x: Any) -> list[Any]:
    return x if isinstance(x, list) else list(x.tolist())


def recalled(memo: CapMemo, ids: list[str], slots: Sequence[int],
             remaining: Sequence[float], sym: Sequence[int], volume: Sequence[float],
             share: float, is_fok: Callable[[int], bool]
             ) -> tuple[list[float], list[bool], list[bool]]:
    """The decision for a bar matched again: for each candidate (``slots`` of the book
    whose ids are ``ids`` now, with their ``remaining`` quantity, symbol column and the
    bar's volume), its quantity, whether that completes it, and whether it is left out.

    A candidate the first decision (``memo``) saw with the same remaining quantity gets
    what it got then (left out if it was: a fok the cap split); the fills booked before
    the failure are gone from the candidates, their share of the bar taken. An order it
    did not see (placed, or replaced to another quantity, since) shares in book order
    what the first decision left of its symbol's ``share * volume`` (its grants to orders
    since changed not counted).
    """
    _, ids_then, syms_then, cand, cand_left, final, final_q, final_whole = memo
    seen = dict(zip([ids_then[i] for i in _listed(cand)], _listed(cand_left), strict=True))
    final_l = _listed(final)
    q_then = _listed(final_q)
    w_then = [True] * len(final_l) if final_whole is None else _listed(final_whole)
    got = {ids_then[i]: (q, w) for i, q, w in zip(final_l, q_then, w_then, strict=True)}
    n = len(slots)
    qty, whole, out = [0.0] * n, [False] * n, [False] * n
    new: list[int] = []
    for k in range(n):
        oid = ids[slots[k]]
        if seen.get(oid) != remaining[k]:
            new.append(k)
        elif oid in got:
            qty[k], whole[k] = got[oid]
        else:
            out[k] = True
    if new:
        changed = {ids[slots[k]] for k in new}  # what they were given then is void
        granted: dict[int, float] = {}
        for i, q in zip(final_l, q_then, strict=True):
            if ids_then[i] not in changed:
                c = syms_then[i]
                granted[c] = granted.get(c, 0.0) + q
        while True:  # a fok the rest would split leaves it to the others, as at first
            q_new, w_new = capped_lists([sym[k] for k in new], [remaining[k] for k in new],
                                        [volume[k] for k in new], share,
                                        [granted.get(sym[k], 0.0) for k in new])
            split = [k for k, w in zip(new, w_new, strict=True)
                     if not w and is_fok(slots[k])]
            if not split:
                break
            for k in split:
                out[k] = True
            new = [k for k in new if not out[k]]
        for k, q, w in zip(new, q_new, w_new, strict=True):
            qty[k], whole[k] = q, w
    return qty, whole, out


def fits_whole(sym: list[int], remaining: list[float], volume: list[float], share: float
               ) -> bool:
    """Whether :func:`capped_lists` would fill every order whole: each alone on its
    symbol with ``0 < remaining <= share * volume`` (its answer is then ``remaining``
    itself, every fill whole). False says nothing: ask :func:`capped_lists`."""
    if len(sym) > 1 and len(set(sym)) < len(sym):
        return False
    for r, v in zip(remaining, volume, strict=True):  # noqa: SIM110 (no generator's cost)
        # share * v - 0.0 (capped_lists' left with nothing before) compares the same
        if not (r <= share * v and r > 0.0):
            return False
    return True


def _floor(x: float) -> float:
    """``np.floor`` of one float (NaN and infinities kept, the sign of a zero kept)."""
    return float(math.floor(x)) if math.isfinite(x) and x != 0 else x


def _capped_small(sym: list[int], remaining: list[float], volume: list[float],
                  share: float, taken: list[float] | None = None
                  ) -> tuple[list[float], list[bool]]:
    """:func:`capped_quantities` element by element: the same cumulative sums (over the
    fills sorted stably by symbol), subtractions and ``np.maximum``/``np.minimum``."""
    n = len(sym)
    before = [0.0] * n
    if n > 1 and len(set(sym)) < n:  # several orders of one symbol share its volume
        order = sorted(range(n), key=sym.__getitem__)  # stable, as argsort(kind="stable")
        firsts = [True] + [sym[order[i]] != sym[order[i - 1]] for i in range(1, n)]
        total = 0.0
        base = 0.0
        for i, k in enumerate(order):
            r = remaining[k]
            total = r if i == 0 else total + r  # np.cumsum
            upto = total - r
            if firsts[i]:
                base = upto
            before[k] = upto - base
    qty: list[float] = []
    whole: list[bool] = []
    for k in range(n):
        r = remaining[k]
        left = share * volume[k] - before[k]
        if taken is not None:
            left -= taken[k]
        if r <= left:  # the order fills whole (its share of the bar is not needed)
            qty.append(r)
            whole.append(True)
            continue
        part = left if left > 0.0 or left != left else 0.0  # np.maximum(left, 0.0)
        if r == _floor(r):
            part = _floor(part)
        qty.append(part if part < r or part != part else r)
        whole.append(False)
    return qty, whole
