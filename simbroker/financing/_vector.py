"""Borrow fees and interest in the vectorized runner, bit for bit with the paper broker.

The accruals depend on the cash balance, which they change, so the cash ledger is a
running sum cut at each trading day's end: the fills and dividend payments up to that
bar are added strictly left to right (as in the broker's order: a bar's dividend
payments, then its fills), then the day's borrow fee and interest, computed from the
positions after that bar and the cash so far with the broker's arithmetic
(:mod:`simbroker.financing._accrue`), are subtracted, one rounding each. The borrow fees
need only the positions, so all days are priced at once; the ledger is one
``np.add.accumulate`` until the first day that owes interest, Python floats after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from simbroker.financing._accrue import borrow_fees, interest_amount
from simbroker.financing._borrow import BorrowModel
from simbroker.financing._days import accrual_days
from simbroker.financing._interest import InterestModel

if TYPE_CHECKING:
    from simbroker.actions._vector import Dividends
    from simbroker.bars import Bars
    from simbroker.sessions import Sessions

__all__ = ["VectorFinancing"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


class VectorFinancing:
    """A run's accrual schedule and models, for the vectorized runner."""

    def __init__(self, bars: Bars, sessions: Sessions, borrow: BorrowModel | None,
                 interest: InterestModel | None):
        from simbroker.results.build import marking_closes

        for name, model, kind in (("borrow", borrow, BorrowModel),
                                  ("interest", interest, InterestModel)):
            if model is not None and not isinstance(model, kind):
                raise TypeError(f"{name} must be a simbroker.financing.{kind.__name__}, got "
                                f"{type(model).__name__}")
        self.borrow = borrow
        self.interest = interest
        self.ends, self.days = accrual_days(sessions)
        self.end_k = dict(zip(self.ends.tolist(), range(len(self.ends)), strict=True))
        self.rates = (borrow.rate_array(bars.symbols) if borrow is not None
                      else np.zeros(bars.n_symbols))
        self.charges_borrow = borrow is not None and bool(self.rates.any())
        self.close = marking_closes(bars.close) if self.charges_borrow else bars.close
        # Hard-to-borrow columns and their locates (a twin never locates more).
        htb = borrow.hard_to_borrow if borrow is not None else frozenset()
        self.htb = np.array([s in htb for s in bars.symbols], np.bool_)
        self.located = np.array([borrow.located.get(s, 0.0) if borrow is not None else 0.0
                                 for s in bars.symbols], np.float64)
        #: Whether a short sale can be refused (``HardToBorrow``) in this run.
        self.refuses_shorts = bool(self.htb.any())

    def short_refused(self, j: I64, sign: F64, qty: F64, held: F64) -> tuple[B, F64]:
        """Which orders (columns ``j``, ``sign``, ``qty``, placed on positions ``held``
        with no sell order open) the paper broker refuses as ``HardToBorrow`` (a sell of a
        hard-to-borrow symbol leaving a short beyond its locate), and the short each would
        leave (``-(held - qty)``), as ``PaperFinancing.check_short`` computes them."""
        after = held - qty
        loc = self.located[j]
        refused: B = (self.htb[j] & (sign < 0) & (after < 0)
                      & (-after > loc * (1 + 1e-12) + 1e-12))
        return refused, -after

    def accrue(self, k: int, pos: F64, cash: float) -> tuple[float, float, float]:
        """Day ``k``'s accrual on positions ``pos`` and ``cash``: ``(cash after, borrow
        fee, interest)``, with the broker's arithmetic in the broker's order."""
        t = int(self.ends[k])
        days = float(self.days[k])
        fee = 0.0
        if self.charges_borrow and self.borrow is not None and pos.min(initial=0.0) < 0:
            fee = float(np.sum(borrow_fees(pos, self.close[t], self.rates, days,
                                           self.borrow.day_count)))
            if fee != 0.0:
                cash = cash - fee
        paid = interest_amount(self.interest, cash, days)
        if paid != 0.0:
            cash = cash - paid
        return cash, fee, paid

    def at_close(self, t: int, pos: F64, cash: float) -> float:
        """Cash after bar ``t``'s accrual, if ``t`` ends a trading day (weights loops)."""
        k = self.end_k.get(t)
        return cash if k is None else self.accrue(k, pos, cash)[0]

    def day_fees(self, ends: I64, positions: F64) -> F64:
        """The borrow fee of each trading day ending at bars ``ends`` (positions after
        those bars), as :meth:`accrue` computes it: ``borrow_fees`` per symbol, summed
        per row (a row of a 2-D sum is numpy's pairwise sum of that row, as in
        :meth:`accrue`); 0.0 on a day without a short."""
        out = np.zeros(len(ends))
        if not self.charges_borrow or self.borrow is None or not len(ends):
            return out
        # every bar ends a day (daily bars): the positions and closes themselves, no copies
        every = len(ends) == len(positions) and bool(ends[-1] == len(ends) - 1)
        pos = positions if every else positions[ends]
        close = self.close if every else self.close[ends]
        short = pos < 0
        held = short.any(axis=1)
        if not held.any():
            return out
        # every row priced (a row's sum is the same alone), those without a short set to 0
        with np.errstate(invalid="ignore"):
            smv = np.where(short, -pos * close, 0.0)
        smv[np.isnan(smv)] = 0.0
        scale = self.days[:len(ends)] / self.borrow.day_count
        np.multiply(smv, self.rates[None, :] * scale[:, None], out=smv)
        fees: F64 = smv.sum(axis=1)
        fees[~held] = 0.0
        return fees

    def ledger(self, cash0: float, fill_bar: I64, sign: F64, notional: F64, fee: F64,
               divs: Dividends | None, positions: F64) -> tuple[I64, F64, F64, F64]:
        """The cash ledger with accruals: ``(entry bars, cash after each entry, borrow fee
        per bar, interest per bar)``.

        The borrow fees depend on the positions only: all days at once
        (:meth:`day_fees`). The entries (a day's flows, then its ``-fee``, then its
        ``-interest``; ``-0.0`` where none is booked, which adds exactly nothing) are one
        left-to-right ``np.add.accumulate``, first with no interest; the interest of a
        day depends on the cash it finds, so from the first day whose interest is not 0
        the rest of the ledger runs as Python floats, one addition per entry (the same
        IEEE roundings, in the same order, as the broker's).
        """
        n_t = positions.shape[0]
        flow_bar, flows = _flows(fill_bar, sign, notional, fee, divs)
        ends = self.ends[self.ends < n_t].astype(np.int64)
        n_d, n_f = len(ends), len(flows)
        cut = np.searchsorted(flow_bar, ends, side="right")
        day_fee = self.day_fees(ends, positions)
        # Entry positions: the flows before day k's end, then 2 entries per earlier day.
        fee_at = cut + 2 * np.arange(n_d)
        is_flow = np.ones(n_f + 2 * n_d, np.bool_)
        is_flow[fee_at] = False
        is_flow[fee_at + 1] = False
        entries = np.empty(n_f + 2 * n_d)
        entries[is_flow] = flows
        entries[fee_at] = np.where(day_fee != 0.0, -day_fee, -0.0)
        entries[fee_at + 1] = -0.0
        run = np.add.accumulate(np.concatenate([[float(cash0)], entries]))[1:]
        paid = np.zeros(n_d)
        interest = self.interest
        if interest is not None and (interest.debit or interest.credit) and n_d:
            before = run[fee_at]  # the cash each day's interest is computed on
            owed = _interest_amounts(interest, before, self.days[:n_d])
            hit = np.flatnonzero(owed != 0.0)
            if len(hit):
                self._exact_tail(int(hit[0]), run, entries, fee_at, paid)
        fees_t = np.zeros(n_t)
        paid_t = np.zeros(n_t)
        fees_t[ends] = day_fee
        paid_t[ends] = paid
        # The entries are in (bar, flows before the day's accrual) order already: each
        # flow's cash, and each day's cash after its interest.
        keep = is_flow.copy()
        keep[fee_at + 1] = True
        entry_bar = np.empty(len(entries), np.int64)
        entry_bar[is_flow] = flow_bar
        entry_bar[fee_at + 1] = ends
        return entry_bar[keep], run[keep], fees_t, paid_t

    def _exact_tail(self, k0: int, run: F64, entries: F64, fee_at: I64, paid: F64) -> None:
        """Redo the ledger ``run`` from day ``k0``'s interest on, in place, with each
        day's interest from the cash it finds (``paid`` gets the amounts)."""
        assert self.interest is not None
        start = int(fee_at[k0]) + 1
        cur = float(run[start - 1])
        vals = entries[start:].tolist()
        out = run[start:]
        interest_at = (fee_at[k0:] + 1 - start).tolist()
        days = self.days[k0:len(fee_at)].tolist()
        amount = self.interest.amount
        cash: list[float] = []
        nxt, k = interest_at[0], 0
        for i, v in enumerate(vals):
            if i == nxt:
                owed = amount(cur, days[k])
                if owed != 0.0:
                    cur = cur - owed
                paid[k0 + k] = owed
                k += 1
                nxt = interest_at[k] if k < len(interest_at) else -1
            else:
                cur = cur + v
            cash.append(cur)
        out[:] = cash


def _flows(fill_bar: I64, sign: F64, notional: F64, fee: F64,
           divs: Dividends | None) -> tuple[I64, F64]:
    """Each cash flow and its bar in the broker's order: a bar's dividend payments, then
    its fills (``-+notional``, then ``-fee``)."""
    fill_bar = np.asarray(fill_bar, np.int64)
    n_f = len(fill_bar)
    if divs is None:
        pay_bar = np.array([], np.int64)
        amount = np.array([], np.float64)
    else:
        pay_bar = divs.sched.pay_t[divs.pay_k].astype(np.int64)
        amount = divs.amount[divs.pay_k]
    n_d = len(pay_bar)
    bar = np.concatenate([pay_bar, fill_bar])
    phase = np.concatenate([np.zeros(n_d, np.int64), np.ones(n_f, np.int64)])
    seq = np.concatenate([np.arange(n_d), np.arange(n_f)])
    order = np.lexsort((seq, phase, bar))
    width = np.where(phase[order] == 1, 2, 1)
    first = np.cumsum(width) - width
    flows = np.empty(int(width.sum()))
    is_fill = phase[order] == 1
    fpos, fseq = first[is_fill], seq[order][is_fill]
    flows[fpos] = np.where(sign[fseq] > 0, -notional[fseq], notional[fseq])
    flows[fpos + 1] = -fee[fseq]
    flows[first[~is_fill]] = amount[seq[order][~is_fill]]
    flow_bar: I64 = np.repeat(bar[order], width)
    return flow_bar, flows


def _interest_amounts(model: InterestModel, cash: F64, days: F64) -> F64:
    """:meth:`InterestModel.amount` of each balance, element by element (the same
    arithmetic: ``-cash * debit * (days / day_count)`` on a debit, ``-(cash * credit *
    (days / day_count))`` on a credit, 0 elsewhere)."""
    scale = days / model.day_count
    out = np.zeros(len(cash))
    if model.debit:
        d = cash < 0
        out[d] = -cash[d] * model.debit * scale[d]
    if model.credit:
        c = cash > 0
        out[c] = -(cash[c] * model.credit * scale[c])
    return out
