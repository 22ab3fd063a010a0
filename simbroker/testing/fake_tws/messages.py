"""What the fake TWS says on the wire: its records and the field layouts of its messages.

Each function returns one message's fields (message id first) for a negotiated server
version; the layouts follow the ib_async / ib_insync decoders (``decoder.py``), which are
the authority: a wrong field count is swallowed by the client, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

__all__ = ["Execution", "Order", "commission", "completed_order", "con_id", "contract",
           "contract_details", "error", "exec_details", "open_order", "order_status",
           "position", "text"]


def text(x: Any) -> str:
    """One field as TWS writes it: ints as ints, bools as 0/1, None as empty."""
    if isinstance(x, np.generic):
        x = x.item()
    if x is None:
        return ""
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, float):
        return repr(x) if x != int(x) or abs(x) >= 1e15 else repr(float(int(x)))
    return str(x)


@dataclass
class Order:
    """An order as TWS holds it."""

    order_id: int
    client_id: int
    perm_id: int
    symbol: str
    action: str
    qty: float
    order_type: str
    lmt: float | None
    aux: float | None
    tif: str
    account: str
    order_ref: str
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0
    triggered: bool = False
    fills: int = 0
    parent_id: int = 0
    """IB's ``parentId``: the order this one is a child of (0: none)."""
    transmit: bool = True
    oca_group: str = ""
    oca_type: int = 0
    outside_rth: bool = False
    trail_stop: float | None = None
    """A ``TRAIL`` order's current stop (``trailStopPrice``), ratcheted by the market."""
    trail_pct: float | None = None
    """``trailingPercent`` (``aux`` is the trailing amount when this is unset)."""
    extreme: float | None = None
    """The best price a trailing stop has seen since it began to work."""
    worked: bool = False
    """TWS transmitted it (an order held untransmitted and then canceled never was)."""


@dataclass
class Execution:
    """One execution (a fill) as TWS reports it."""

    exec_id: str
    order: Order
    time: datetime
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    commission: float


def con_id(sym: str) -> int:
    """A stable contract id for ``sym``."""
    return 100_000 + int(sum(ord(ch) * pow(31, i) for i, ch in enumerate(sym))) % 900_000


def contract(sym: str) -> list[Any]:
    """conId, symbol, secType, expiry, strike, right, multiplier, exchange, currency,
    localSymbol, tradingClass."""
    return [con_id(sym), sym, "STK", "", "0", "", "", "SMART", "USD", sym, "NMS"]


def error(req_id: int, code: int, msg: str, version: int) -> list[Any]:
    """error ``4``; ``advancedOrderRejectJson`` from 166."""
    fields: list[Any] = [4, 2, req_id, code, msg]
    if version >= 166:
        fields.append("")
    return fields


def position(account: str, sym: str, qty: float, avg_cost: float) -> list[Any]:
    """position ``61``."""
    c = contract(sym)
    return [61, 3, account, *c[:7], "NASDAQ", *c[8:], qty, avg_cost]


def open_order(o: Order, v: int) -> list[Any]:
    """openOrder ``5`` (``decoder.py:openOrder``)."""
    fields: list[Any] = [5, o.order_id, *contract(o.symbol), o.action, o.qty,
                         o.order_type, o.lmt, o.aux, o.tif, o.oca_group, o.account, "", 0,
                         o.order_ref, o.client_id, o.perm_id, o.outside_rth, 0, 0, "", "",
                         "", "", ""]
    if v < 177:
        fields.append("")  # faProfile
    fields += ["", "", "", "", "", 0, "", -1, 0, "", "", "", "", "", "", 0, 0, 0, "",
               o.oca_type, 0, 0, "", o.parent_id, 0, "", 0, "", "",  # .. deltaNeutralAux
               0, 0, o.trail_stop, o.trail_pct, "", "", "",  # continuousUpdate .. combo
               0, 0, 0,                         # combo legs, order legs, params
               "", "", "",                      # scale sizes, increment (unset)
               "",                              # hedgeType
               0, "", "", 0, 0,                 # optOut .. dncPresent
               "",                              # algoStrategy
               0, 0, o.status, *([""] * 9), "", "", "", "", "", 0, 0,
               0,                               # conditions
               "", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, 0, 0]
    if v >= 159:
        fields.append("")
    if v >= 160:
        fields.append("")
    if v >= 162:
        fields.append(0)
    if v >= 170:
        fields += ["", "", "", "", ""]
    return fields


def completed_order(o: Order, v: int, when: datetime) -> list[Any]:
    """completedOrder ``101`` (``decoder.py:completedOrder``): no order id, only permId
    and orderRef identify it; ``when`` is its completion time."""
    fields: list[Any] = [101, *contract(o.symbol), o.action, o.qty, o.order_type,
                         o.lmt, o.aux, o.tif, o.oca_group, o.account, "", 0, o.order_ref,
                         o.perm_id, o.outside_rth, 0, 0, "", "", "", ""]
    if v < 177:
        fields.append("")  # faProfile
    fields += ["", "", "", "", "", 0, "", -1, "", "", "", "", "", "", 0, 0, "", o.oca_type,
               0, "", 0, "", "",                # ... through deltaNeutralAuxPrice
               0, 0, o.trail_stop, o.trail_pct, "",  # continuousUpdate .. comboLegsDescrip
               0, 0, 0, "", "", "", "",         # legs, order legs, params, scale, hedge
               "", "", 0, 0, "",                # clearing .. dncPresent, algoStrategy
               0, o.status, 0, 0, 0,            # solicited, status, randomize, conditions
               "", "", "", 0, 0, "", o.filled, "", 0, "", 0, 0, "",
               when.strftime("%Y%m%d %H:%M:%S UTC"), o.status]
    if v >= 170:
        fields += ["", "", "", "", ""]
    return fields


def contract_details(req: int, sym: str, v: int) -> list[Any]:
    """contractData ``10`` for a US stock (the caller sends contractDataEnd)."""
    fields: list[Any] = [10]
    if v < 164:
        fields.append(8)  # a version field, dropped at 164
    fields += [req, sym, "STK", "", "0", "", "SMART", "USD", sym, "NMS", "NMS",
               con_id(sym), "0.01"]
    if v < 164:
        fields.append(1)  # mdSizeMultiplier
    fields += ["", "ACTIVETIM,LMT,MKT,STP,STP LMT", "SMART,NASDAQ,NYSE,ISLAND", 1, 0,
               f"{sym} INC", "NASDAQ", "", "Technology", "Computers", "Software",
               "US/Eastern", "", "", "", "", 0,  # no sec ids
               1, "", "", "26", "", "COMMON"]
    if v == 163:
        fields.append(1)
    if v >= 164:
        fields += [1, 1, 1]
    return fields


def order_status(o: Order, last: float) -> list[Any]:
    """orderStatus ``3`` (no version field)."""
    return [3, o.order_id, o.status, o.filled, o.qty - o.filled, o.avg_price, o.perm_id,
            o.parent_id, last, o.client_id, "", 0]


def exec_details(ex: Execution, req: int, v: int) -> list[Any]:
    """execDetails ``11`` (no version field; exact count: ib_insync has no ``*rest``)."""
    o = ex.order
    fields: list[Any] = [11, req, o.order_id, *contract(o.symbol), ex.exec_id,
                         ex.time.strftime("%Y%m%d %H:%M:%S UTC"), o.account, "ISLAND",
                         "BOT" if o.action == "BUY" else "SLD", ex.shares, ex.price,
                         o.perm_id, o.client_id, 0, ex.cum_qty, ex.avg_price,
                         o.order_ref, "", "", "", 1]
    if v >= 178:
        fields.append(0)  # pendingPriceRevision
    return fields


def commission(ex: Execution) -> list[Any]:
    """commissionReport ``59``."""
    return [59, 1, ex.exec_id, ex.commission, "USD", "", "", ""]
