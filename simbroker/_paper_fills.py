"""A paper broker's fills, kept as columns; each ``Fill`` dict is built when asked.

A backtest books one fill per order or more, and a ``Fill`` dict with its id string and
four float objects is ~420 bytes: at 674,615 fills (10,000 symbols x 2,520 bars) that
was 0.3x the panel, held only so that ``get_fills`` could hand the dicts out. Here a
fill is ~75 bytes: references to the strings and times the broker holds anyway (order
id, client order id, symbol, bar time), its number within its order (its id is
``f"{order_id}-{number}"``), a side byte and four float64s. The result's fills table
reads the columns (:meth:`FillLog.columns`); the dicts are built the first time
``get_fills`` (iteration or a slice) asks for them and kept, so a strategy that calls
it every bar builds each dict once. Indexing one fill that was never listed builds a
fresh dict (the accounts read each new fill once, by index).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, overload

from simbroker.types import Fill

__all__ = ["FillLog"]


class FillLog(Sequence[Fill]):
    """The fills in booking order: a ``Sequence[Fill]`` that stores columns.

    ``append`` takes a ``Fill`` (as a list would), :meth:`add` its fields; either way
    the dicts it gives back compare equal to the ones booked, in the same order.
    """

    __slots__ = ("_built", "_client", "_fee", "_ids", "_notional", "_number", "_order",
                 "_price", "_qty", "_sell", "_symbol", "_time")

    def __init__(self) -> None:
        self._order: list[str] = []
        # the fill's number in its order (0: id in _ids); a list: small ints are shared
        # objects (8 bytes a slot, as in an array), and list.append is the cheaper
        self._number: list[int] = []
        self._ids: dict[int, str] = {}  # ids not of the form f"{order_id}-{number}"
        self._client: list[str | None] = []
        self._time: list[datetime] = []
        self._symbol: list[str] = []
        self._sell = bytearray()  # 1 for a sell
        self._qty = array("d")
        self._price = array("d")
        self._fee = array("d")
        self._notional = array("d")
        self._built: list[Fill] = []  # the dicts of the first len(_built) fills

    def add(self, order_id: str, number: int, client_order_id: str | None,
            timestamp: datetime, symbol: str, side: str, qty: float, price: float,
            fee: float, notional: float) -> None:
        """Book a fill by its fields; its id is ``f"{order_id}-{number}"`` (number >= 1)."""
        self._order.append(order_id)
        self._number.append(number)
        self._client.append(client_order_id)
        self._time.append(timestamp)
        self._symbol.append(symbol)
        self._sell.append(side == "sell")
        self._qty.append(qty)
        self._price.append(price)
        self._fee.append(fee)
        self._notional.append(notional)

    def append(self, fill: Fill) -> None:
        """Book ``fill`` (kept as columns: an equal dict comes back, not this one; its
        side is ``"buy"`` or ``"sell"``, as the broker books them)."""
        oid, fid = fill["order_id"], fill["fill_id"]
        number = 0
        tail = fid[len(oid) + 1:] if fid.startswith(oid + "-") else ""
        if tail.isascii() and tail.isdigit() and f"{oid}-{int(tail)}" == fid:
            number = int(tail)
        if number == 0:  # an id of another form: kept as it is
            self._ids[len(self._order)] = fid
        side = fill["side"]
        self.add(oid, number, fill["client_order_id"], fill["timestamp"], fill["symbol"],
                 side, fill["qty"], fill["price"], fill["fee"], fill["notional"])

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, i: int) -> Fill: ...

    @overload
    def __getitem__(self, i: slice) -> list[Fill]: ...

    def __getitem__(self, i: int | slice) -> Fill | list[Fill]:
        if isinstance(i, slice):
            return self._build()[i]
        n = len(self._order)
        k = i + n if i < 0 else i
        if not 0 <= k < n:
            raise IndexError("fill index out of range")
        return self._built[k] if k < len(self._built) else self._fill(k)

    def __iter__(self) -> Iterator[Fill]:
        return iter(self._build())

    def __repr__(self) -> str:
        return f"FillLog({len(self)} fills)"

    def fill_id(self, k: int) -> str:
        """The id of fill ``k``."""
        number = self._number[k]
        return f"{self._order[k]}-{number}" if number else self._ids[k]

    def _fill(self, k: int) -> Fill:
        return Fill(fill_id=self.fill_id(k), order_id=self._order[k],
                    client_order_id=self._client[k], timestamp=self._time[k],
                    symbol=self._symbol[k], side="sell" if self._sell[k] else "buy",
                    qty=self._qty[k], price=self._price[k], fee=self._fee[k],
                    notional=self._notional[k])

    def _build(self) -> list[Fill]:
        """The dicts of every fill, building those not built before."""
        built = self._built
        for k in range(len(built), len(self._order)):
            built.append(self._fill(k))
        return built

    def columns(self) -> dict[str, Any]:
        """The fills as columns, named as the ``Fill`` keys: lists for the ids, times,
        symbols and sides, float64 ``array.array`` for the numbers (no dicts built)."""
        ids = [self.fill_id(k) for k in range(len(self._order))] if self._ids else \
            [f"{o}-{n}" for o, n in zip(self._order, self._number, strict=True)]
        return {"fill_id": ids, "order_id": self._order, "client_order_id": self._client,
                "timestamp": self._time, "symbol": self._symbol,
                "side": ["sell" if s else "buy" for s in self._sell], "qty": self._qty,
                "price": self._price, "fee": self._fee, "notional": self._notional}
