"""Pairing one run's orders with the other's: by client order id, else by symbol, side
and time.

Three passes, each over what the previous left unpaired:

1. the same ``client_order_id`` in both runs;
2. the same real-time runner key: the runner names orders ``{run_id}-{bar}-{n}``, so two
   runs of one strategy (a backtest replayed in real time, paper beside live) share
   ``{bar}-{n}`` while their run ids differ;
3. the same symbol and side, submitted (or, for an order the log only knows by its fills,
   first filled) within ``time_window`` of each other, walked in time order: the k-th
   AAPL buy of one run pairs with the k-th of the other unless one of them has no
   counterpart inside the window.

Every pass treats the two runs alike, so ``pairs(b, a)`` is ``pairs(a, b)`` swapped.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["pair_orders"]

_RUNNER_KEY = re.compile(r"-(\d{8}T\d{6}(?:\.\d{6})?Z-\d+)$")


def _runner_key(cid: object) -> str | None:
    if not isinstance(cid, str):
        return None
    m = _RUNNER_KEY.search(cid)
    return m.group(1) if m else None


def _by_key(keys_a: list[str | None], keys_b: list[str | None], free_a: list[int],
            free_b: list[int], what_a: list[tuple[str, str]], what_b: list[tuple[str, str]]
            ) -> list[tuple[int, int]]:
    """Pair equal keys of the same symbol and side, the n-th occurrence in one run with
    the n-th in the other (an id reused for another symbol or side pairs nothing)."""
    slots: dict[tuple[str, tuple[str, str]], list[int]] = {}
    for j in free_b:
        k = keys_b[j]
        if k is not None:
            slots.setdefault((k, what_b[j]), []).append(j)
    out = []
    for i in free_a:
        k = keys_a[i]
        if k is not None and slots.get((k, what_a[i])):
            out.append((i, slots[(k, what_a[i])].pop(0)))
    return out


def _when(orders: pd.DataFrame) -> np.ndarray:
    sub = orders["submitted"]
    return np.asarray(sub.where(sub.notna(), orders["first_fill"]).astype("int64"))


def pair_orders(a: pd.DataFrame, b: pd.DataFrame, window: pd.Timedelta
                ) -> list[tuple[int, int]]:
    """Pairs of row positions ``(i in a, j in b)`` that are the same decision."""
    pairs: list[tuple[int, int]] = []
    free_a, free_b = list(range(len(a))), list(range(len(b)))
    cid_a = [c if isinstance(c, str) else None for c in a["client_order_id"]]
    cid_b = [c if isinstance(c, str) else None for c in b["client_order_id"]]
    what_a = list(zip(a["symbol"].astype(str), a["side"].astype(str), strict=True))
    what_b = list(zip(b["symbol"].astype(str), b["side"].astype(str), strict=True))
    for keys_a, keys_b in ((cid_a, cid_b), ([_runner_key(c) for c in cid_a],
                                            [_runner_key(c) for c in cid_b])):
        found = _by_key(keys_a, keys_b, free_a, free_b, what_a, what_b)
        pairs += found
        used_a, used_b = {i for i, _ in found}, {j for _, j in found}
        free_a = [i for i in free_a if i not in used_a]
        free_b = [j for j in free_b if j not in used_b]

    nat = np.iinfo(np.int64).min
    wa, wb = _when(a), _when(b)
    win = int(window.value)
    groups: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for i in free_a:
        groups.setdefault((str(a["symbol"].iat[i]), str(a["side"].iat[i])), ([], []))[0].append(i)
    for j in free_b:
        groups.setdefault((str(b["symbol"].iat[j]), str(b["side"].iat[j])), ([], []))[1].append(j)
    for ia, jb in groups.values():
        ia = sorted((i for i in ia if wa[i] != nat), key=lambda i: (wa[i], i))
        jb = sorted((j for j in jb if wb[j] != nat), key=lambda j: (wb[j], j))
        x = y = 0
        while x < len(ia) and y < len(jb):
            ta, tb = int(wa[ia[x]]), int(wb[jb[y]])
            if abs(ta - tb) <= win:
                pairs.append((ia[x], jb[y]))
                x += 1
                y += 1
            elif ta < tb:
                x += 1
            else:
                y += 1
    return pairs
