"""Splits and dividends in the paper broker: the hook :meth:`PaperBroker.step` calls.

At each bar, before it trades (see :mod:`simbroker.actions._schedule`):

1. each split with its ex bar here multiplies the position by the ratio and each open
   order of the symbol: ``qty * ratio``, ``limit_price / ratio``, ``stop_price / ratio``
   (as brokers adjust resting orders); fractional results are kept as they are
   (simbroker allows fractional shares; no cash in lieu);
2. each dividend with its ex bar here fixes its entitlement, ``qty`` = the position held
   into the ex bar (negative for a short), ``amount = qty * per_share``;
3. each entitled dividend with its pay bar here moves cash: ``cash + amount`` (a short
   pays it).

Each step is a trade-log event written before the state changes: ``split`` (symbol,
ratio, position before/after, the adjusted orders), and ``dividend`` with ``stage``
``"entitled"`` (at the ex bar, when the pay date is still to come) and ``"paid"`` (cash
moved; when the pay bar is the ex bar, this one record is also the entitlement). Within
a bar, dividends are paid in ex-bar, then symbol-column order. A failed write leaves the
action undone; stepping again applies it once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simbroker.actions._schedule import Schedule, schedule
from simbroker.actions._table import DIVIDEND, SPLIT
from simbroker.types import Order, StopLoss, TakeProfit

if TYPE_CHECKING:
    from simbroker.bars import Bars
    from simbroker.paper import PaperBroker

__all__ = ["PaperActions", "broker_schedule", "dividend_frame"]

DIVIDEND_COLUMNS = ("symbol", "ex_date", "pay_date", "qty", "per_share", "amount", "paid")


def broker_schedule(bars: Bars) -> Schedule | None:
    """The actions both engines apply to ``bars`` (``None`` when there are none).

    With ``prices="adjusted"`` the splits are already in the prices: none is applied.
    """
    acts = bars.actions
    if acts is None or not len(acts):
        return None
    if acts.prices == "adjusted":
        acts = acts.dividends
    sched = schedule(bars, acts)
    return sched if len(sched) else None


def payment_order(sched: Schedule) -> np.ndarray:
    """Indices of the schedule's dividends in the order they are paid."""
    div = np.flatnonzero(sched.kind == DIVIDEND)
    out: np.ndarray = div[np.argsort(sched.pay_t[div], kind="stable")]
    return out


@dataclass
class _Entitlement:
    k: int  # index into the schedule
    qty: float
    amount: float


class PaperActions:
    """The actions a :class:`~simbroker.PaperBroker` still has to apply, in order."""

    def __init__(self, sched: Schedule, first_bar: int):
        self.sched = sched
        # Bars before ``first_bar`` were replayed before this broker started: skipped.
        self.next_ex = int(np.searchsorted(sched.t, first_bar, side="left"))
        pays = payment_order(sched)
        self.pays = pays[sched.t[pays] >= first_bar]
        self.next_pay = 0
        self.entitled: dict[int, _Entitlement] = {}
        self.dividends: list[dict[str, Any]] = []  # one per entitlement, for results
        ex_t = sched.t.tolist()
        pay_t = sched.pay_t[self.pays].tolist()
        self._due = set(ex_t[self.next_ex:]) | set(pay_t)

    def due(self, t: int) -> bool:
        """Whether anything happens before bar ``t`` trades."""
        return t in self._due

    def apply(self, broker: PaperBroker, t: int) -> None:
        """Apply every action due before bar ``t`` trades (each after its record)."""
        sched = self.sched
        now = broker._clock.now()
        while self.next_ex < len(sched) and sched.t[self.next_ex] <= t:
            k = self.next_ex
            if int(sched.kind[k]) == SPLIT:
                _split(broker, sched, k, t, now)
            else:
                self._entitle(broker, k, t, now)
            self.next_ex += 1
        while self.next_pay < len(self.pays) and sched.pay_t[self.pays[self.next_pay]] <= t:
            k = int(self.pays[self.next_pay])
            ent = self.entitled.get(k)
            if ent is not None:
                _pay(broker, sched, k, ent, t, now)
                del self.entitled[k]
                self._row(k)["paid"] = now
            self.next_pay += 1

    def _entitle(self, broker: PaperBroker, k: int, t: int, now: datetime) -> None:
        sched = self.sched
        qty = float(broker._pos[int(sched.col[k])])
        if qty == 0.0:
            return
        ent = _Entitlement(k, qty, qty * float(sched.value[k]))
        if sched.pay_t[k] > t and broker._log is not None:
            # Paid later: the entitlement is a record of its own (paid now: the payment's
            # record says it all).
            broker._log.write("dividend", now, stage="entitled",
                              **_dividend_fields(broker, sched, k, ent))
        self.entitled[k] = ent
        self.dividends.append({"_k": k, "qty": ent.qty, "amount": ent.amount, "paid": None})

    def _row(self, k: int) -> dict[str, Any]:
        return next(r for r in reversed(self.dividends) if r["_k"] == k)


def _dividend_fields(broker: PaperBroker, sched: Schedule, k: int,
                     ent: _Entitlement) -> dict[str, Any]:
    return {"symbol": broker.bars.symbols[int(sched.col[k])],
            "ex_date": str(sched.ex_date[k]), "pay_date": str(sched.pay_date[k]),
            "per_share": float(sched.value[k]), "qty": ent.qty, "amount": ent.amount}


def _pay(broker: PaperBroker, sched: Schedule, k: int, ent: _Entitlement, t: int,
         now: datetime) -> None:
    col = int(sched.col[k])
    if broker._log is not None:
        broker._log.write("dividend", now, stage="paid",
                          **_dividend_fields(broker, sched, k, ent))
    broker._cash = broker._cash + ent.amount
    broker._ledger_bar.append(t)
    broker._ledger_sym.append(col)
    broker._ledger_cash.append(broker._cash)
    broker._ledger_pos.append(float(broker._pos[col]))


def _split(broker: PaperBroker, sched: Schedule, k: int, t: int, now: datetime) -> None:
    """Split the position and every open order of the symbol, booked or held.

    As brokers adjust them: quantities times the ratio, prices (limit, stop, a group's
    take-profit and stop-loss, a trailing stop's amount and extreme) divided by it; a
    trailing percentage is unchanged.
    """
    col = int(sched.col[k])
    symbol = broker.bars.symbols[col]
    ratio = float(sched.value[k])
    book = broker._book
    slot_of = {book.ids[i]: i for i in np.flatnonzero(book.sym[: book.n] == col).tolist()}
    states = [st for st in broker._orders.values()
              if st.status.is_open and st.order.symbol == symbol]
    before = float(broker._pos[col])
    after = before * ratio
    if before == 0.0 and not states:
        return
    new_orders = [_split_order(st.order, ratio) for st in states]
    orders = [{"order_id": st.order_id, "qty": o.qty, "limit_price": o.limit_price,
               "stop_price": o.stop_price}
              for st, o in zip(states, new_orders, strict=True)]
    if broker._log is not None:
        broker._log.write("split", now, symbol=symbol, ratio=ratio,
                          ex_date=str(sched.ex_date[k]), position=before,
                          position_after=after, orders=orders)
    broker._pos[col] = after
    for state, order in zip(states, new_orders, strict=True):
        state.order = order
        state.filled_qty *= ratio
        if state.trail_extreme is not None:
            state.trail_extreme /= ratio
        slot = slot_of.get(state.order_id)
        if slot is None:  # a held child: it joins the book with these fields
            continue
        book.qty[slot] = order.qty - state.filled_qty  # the rest of a partly filled order
        book.limit[slot] = np.nan if order.limit_price is None else order.limit_price
        book.stop[slot] = np.nan if order.stop_price is None else order.stop_price
        if order.trail_amount is not None:
            book.aux[slot, 0] = order.trail_amount
        if not np.isnan(book.aux[slot, 1]):
            book.aux[slot, 1] /= ratio
    broker._ledger_bar.append(t)
    broker._ledger_sym.append(col)
    broker._ledger_cash.append(broker._cash)
    broker._ledger_pos.append(after)


def _split_order(order: Order, ratio: float) -> Order:
    """``order`` after a ``ratio``-for-one split: qty times it, prices over it."""
    def px(x: float | None) -> float | None:
        return None if x is None else x / ratio

    tp, sl = order.take_profit, order.stop_loss
    return dataclasses.replace(
        order, qty=order.qty * ratio, limit_price=px(order.limit_price),
        stop_price=px(order.stop_price),
        take_profit=None if tp is None else TakeProfit(tp.limit_price / ratio),
        stop_loss=None if sl is None else StopLoss(sl.stop_price / ratio,
                                                   px(sl.limit_price)),
        trail_amount=px(order.trail_amount))


def dividend_frame(bars: Bars, sched: Schedule | None,
                   rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The dividends a run was entitled to, one row each (``paid`` = when credited)."""
    if sched is None or not rows:
        return empty_dividends()
    k = np.array([r["_k"] for r in rows], np.int64)
    paid = [r["paid"] for r in rows]
    out: pd.DataFrame = pd.DataFrame({
        "symbol": pd.Series(np.asarray(bars.symbols, dtype=object)[sched.col[k]],
                            dtype=object),
        "ex_date": pd.DatetimeIndex(sched.ex_date[k].astype("datetime64[ns]")),
        "pay_date": pd.DatetimeIndex(sched.pay_date[k].astype("datetime64[ns]")),
        "qty": np.array([r["qty"] for r in rows], np.float64),
        "per_share": sched.value[k].astype(np.float64),
        "amount": np.array([r["amount"] for r in rows], np.float64),
        "paid": pd.DatetimeIndex([pd.NaT if p is None else pd.Timestamp(p) for p in paid],
                                 tz="UTC").as_unit("ns"),
    }, columns=list(DIVIDEND_COLUMNS))
    return out


def empty_dividends() -> pd.DataFrame:
    """The dividends frame of a run without any."""
    out: pd.DataFrame = pd.DataFrame({
        "symbol": pd.Series([], dtype=object),
        "ex_date": pd.DatetimeIndex([], dtype="datetime64[ns]"),
        "pay_date": pd.DatetimeIndex([], dtype="datetime64[ns]"),
        "qty": np.array([], np.float64), "per_share": np.array([], np.float64),
        "amount": np.array([], np.float64),
        "paid": pd.DatetimeIndex([], dtype="datetime64[ns, UTC]"),
    }, columns=list(DIVIDEND_COLUMNS))
    return out
