"""The paper broker's open book: open orders as parallel numpy arrays.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from simbroker._paper_base import NEVER_BAR

__all__ = ["OpenBook"]

_NAN = float("nan")


class OpenBook:
    """Open orders as parallel numpy arrays (struct of arrays), grown by doubling."""

    def __init__(self, capacity: int = 64):
        self.n = 0
        self.ids: list[str] = []
        # sym[:n] and sign[:n] as Python lists, for the small-book path: nothing but this
        # class writes those two arrays (a slot's symbol and side never change)
        self.syms: list[int] = []
        self.signs: list[float] = []
        self.sym = np.zeros(capacity, np.int64)
        self.sign = np.zeros(capacity, np.float64)
        self.qty = np.zeros(capacity, np.float64)
        # The fields add_market leaves alone start (and grow) with a market order's values
        self.otype = np.zeros(capacity, np.int8)
        self.limit = np.full(capacity, _NAN)
        self.stop = np.full(capacity, _NAN)
        self.trig_bar = np.full(capacity, NEVER_BAR, np.int64)  # bar a stop-limit triggered on
        self.first_bar = np.zeros(capacity, np.int64)
        self.expire_bar = np.zeros(capacity, np.int64)
        self.aux = np.full((capacity, 2), _NAN)  # trailing stops: trail, extreme
        self.ext = np.zeros(capacity, np.bool_)  # extended hours: trades outside RTH
        self.part_bar = np.full(capacity, -1, np.int64)  # bar of the latest partial fill
        self.plain = True
        """Every slot holds a market order's values in ``otype``, ``limit``, ``stop``,
        ``trig_bar``, ``aux``, ``ext`` and ``part_bar`` (none ever held another order's,
        so :meth:`add_market` need not write them). Whatever writes another value there
        sets it False, for good."""
        self.max_first = -1  # the largest first_bar ever added: all eligible once passed
        self.capacity = capacity  # len(self.sym), kept as an int
        self._views()

    _ARRAYS = ("sym", "sign", "qty", "otype", "limit", "stop", "trig_bar", "first_bar",
               "expire_bar", "aux", "ext", "part_bar")
    _EMPTY: ClassVar[dict[str, float]] = {"limit": _NAN, "stop": _NAN, "trig_bar": NEVER_BAR,
                                          "aux": _NAN, "part_bar": -1}
    """What a grown array's new slots hold (a market order's values; the others 0)."""

    def _grow(self) -> None:
        """Double the arrays' capacity."""
        for name in self._ARRAYS:
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.full_like(a, self._EMPTY.get(name, 0))]))
        self.capacity = len(self.sym)
        self._views()

    def _views(self) -> None:
        """Memoryviews of the arrays, for one element at a time.

        A memoryview reads and writes a single element in C with no numpy scalar: about
        half of what ``a[i] = x`` or ``a.item(i)`` costs, and booking an order wrote twelve
        of them. Same buffers (no copy), so both see the same values; ``aux_mv`` is
        ``aux`` flattened (``aux[i, j]`` is ``aux_mv[2 * i + j]``). Remade when the arrays
        grow.
        """
        self.sym_mv, self.otype_mv = self.sym.data, self.otype.data
        self.sign_mv: memoryview[float] = self.sign.data.cast("B").cast("d")
        self.qty_mv: memoryview[float] = self.qty.data.cast("B").cast("d")
        self.limit_mv: memoryview[float] = self.limit.data.cast("B").cast("d")
        self.stop_mv: memoryview[float] = self.stop.data.cast("B").cast("d")
        self.trig_mv, self.first_mv = self.trig_bar.data, self.first_bar.data
        self.expire_mv, self.ext_mv = self.expire_bar.data, self.ext.data
        self.part_mv = self.part_bar.data
        self.aux_mv: memoryview[float] = self.aux.reshape(-1).data.cast("B").cast("d")

    def add(self, order_id: str, sym: int, sign: float, qty: float, otype: int, limit: float,
            stop: float, first_bar: int, expire_bar: int, trig_bar: int = NEVER_BAR,
            trail: float = np.nan, extreme: float = np.nan, ext: bool = False) -> None:
        if self.n == self.capacity:
            self._grow()
        if self.plain and (otype or limit == limit or stop == stop or trig_bar != NEVER_BAR
                           or trail == trail or extreme == extreme or ext):
            self.plain = False
        i = self.n
        self.ids.append(order_id)
        self.syms.append(sym)
        self.signs.append(sign)
        self.sym_mv[i], self.sign_mv[i], self.qty_mv[i], self.otype_mv[i] = sym, sign, qty, otype
        self.limit_mv[i], self.stop_mv[i], self.trig_mv[i] = limit, stop, trig_bar
        self.first_mv[i], self.expire_mv[i] = first_bar, expire_bar
        self.aux_mv[2 * i], self.aux_mv[2 * i + 1] = trail, extreme
        if first_bar > self.max_first:
            self.max_first = first_bar
        self.ext_mv[i] = ext
        self.part_mv[i] = -1
        self.n = i + 1

    def add_market(self, order_id: str, sym: int, sign: float, qty: float, first_bar: int,
                   expire_bar: int) -> None:
        """:meth:`add` of a market order (no prices, trail or trigger; regular hours).

        ``Placing._place_market`` repeats its plain case inline (keep the two alike)."""
        if self.n == self.capacity:
            self._grow()
        i = self.n
        self.ids.append(order_id)
        self.syms.append(sym)
        self.signs.append(sign)
        self.sym_mv[i], self.sign_mv[i], self.qty_mv[i] = sym, sign, qty
        self.first_mv[i], self.expire_mv[i] = first_bar, expire_bar
        if first_bar > self.max_first:
            self.max_first = first_bar
        if not self.plain:  # a dropped order's values stay in the slots past n
            self.otype_mv[i] = 0
            self.limit_mv[i] = self.stop_mv[i] = _NAN
            self.trig_mv[i] = NEVER_BAR
            self.aux_mv[2 * i] = self.aux_mv[2 * i + 1] = _NAN
            self.ext_mv[i] = False
            self.part_mv[i] = -1
        self.n = i + 1

    def keep(self, mask: np.ndarray) -> None:
        """Drop the slots where ``mask`` (length n) is False, preserving order."""
        k = int(np.count_nonzero(mask))
        if k == self.n:
            return
        if k == 0:  # every order left (the common case of a small book): nothing to move
            self._clear()
            return
        for name in self._ARRAYS:
            a = getattr(self, name)
            a[:k] = a[: self.n][mask]
        keep = mask.tolist()
        self.ids = [i for i, m in zip(self.ids, keep, strict=True) if m]
        self.syms = [c for c, m in zip(self.syms, keep, strict=True) if m]
        self.signs = [g for g, m in zip(self.signs, keep, strict=True) if m]
        self.n = k

    def _clear(self) -> None:
        self.n = 0
        self.ids = []
        self.syms = []
        self.signs = []

    def drop(self, slots: list[int]) -> None:
        """Drop the (distinct) ``slots``, preserving the order of the others."""
        if len(slots) == self.n:  # every order left: nothing to move (_clear, inlined)
            self.n = 0
            self.ids = []
            self.syms = []
            self.signs = []
            return
        mask = np.ones(self.n, np.bool_)
        mask[slots] = False
        self.keep(mask)

    def remove(self, order_id: str) -> None:
        mask = np.ones(self.n, np.bool_)
        mask[self.ids.index(order_id)] = False
        self.keep(mask)
