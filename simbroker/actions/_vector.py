"""Splits and dividends in the vectorized runner, bit for bit with the paper broker.

Share targets are in the shares of the time they are decided: a target of 100 decided
at the close before a 2:1 split becomes an order for ``100 - position`` shares, which the
split (before the next bar trades) doubles with the position, so the account holds 200
new shares, worth what 100 old ones were; a target of 100 decided after the split
trades to 100 new shares. This is what :class:`~simbroker.vectorized.TargetPositions`
does on a :class:`~simbroker.PaperBroker`, which splits open orders as brokers do.

Positions depend on the path once a split multiplies them, so with splits the positions
are solved bar by bar (numpy across symbols; O(bars) Python steps). Dividends move cash
only: their entitlements are read off the solved positions, and their payments are
merged into the cash ledger before the fills of their pay bar, in the broker's order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker.actions._paper import DIVIDEND_COLUMNS, empty_dividends, payment_order
from simbroker.actions._schedule import Schedule
from simbroker.actions._table import DIVIDEND, SPLIT

if TYPE_CHECKING:
    from simbroker.bars import Bars
    from simbroker.models.fees import FeeModel
    from simbroker.models.slippage import SlippageModel

__all__ = ["Dividends", "dividends_frame", "dividends_of", "ledger_with_dividends",
           "positions_with_splits", "split_order_qty", "weight_targets_with_actions"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _fill_positions(pos: F64, sign: F64, qty: F64) -> F64:
    """``position_after_fill`` over arrays: ``pos + qty`` (buy) or ``pos - qty`` (sell),
    0 when only float dust is left."""
    new = np.where(sign > 0, pos + qty, pos - qty)
    out: F64 = np.where(np.abs(new) <= 1e-12 * np.maximum(np.abs(pos), qty), 0.0, new)
    return out


def _split_rows(sched: Schedule) -> dict[int, tuple[I64, F64]]:
    """Per ex bar with splits: the columns and their ratios."""
    m = sched.split_mask
    out: dict[int, tuple[I64, F64]] = {}
    for t in np.unique(sched.t[m]).tolist():
        sel = m & (sched.t == t)
        out[int(t)] = (sched.col[sel].astype(np.int64), sched.value[sel].astype(np.float64))
    return out


def positions_with_splits(tgt: F64, tradable: npt.NDArray[np.bool_], sched: Schedule
                          ) -> F64:
    """Positions after each bar ``(T, N)`` for share targets across splits, bar by bar.

    At each bar: splits multiply the position and the order pending from the previous
    close; the pending order fills when the bar has volume; at the close, a target
    (not ``NaN``) orders ``target - position``.
    """
    n_t, n = tgt.shape
    splits = _split_rows(sched)
    out = np.empty((n_t, n))
    pos = np.zeros(n)
    pend_j = np.array([], np.int64)
    pend_sign = np.array([], np.float64)
    pend_qty = np.array([], np.float64)
    for t in range(n_t):
        if t in splits:
            cols, ratio = splits[t]
            pos[cols] = pos[cols] * ratio
            if len(pend_j):
                pend_qty = _split_qty(pend_qty, pend_j, cols, ratio, n)
        if len(pend_j):
            fill = tradable[t, pend_j]
            j = pend_j[fill]
            pos[j] = _fill_positions(pos[j], pend_sign[fill], pend_qty[fill])
        out[t] = pos
        row = tgt[t]
        with np.errstate(invalid="ignore"):
            delta = row - pos
            pend_j = np.flatnonzero(~np.isnan(row) & (delta != 0))
        d = delta[pend_j]
        pend_sign, pend_qty = np.where(d > 0, 1.0, -1.0), np.abs(d)
    return out


def _split_qty(qty: F64, cols_of: I64, cols: I64, ratio: F64, n: int) -> F64:
    """``qty * ratio`` where the order's column splits (others untouched)."""
    r = np.ones(n)
    r[cols] = ratio
    rr = r[cols_of]
    out: F64 = np.where(rr != 1.0, qty * rr, qty)
    return out


def split_order_qty(qty: F64, ot: I64, oj: I64, sched: Schedule, n_t: int, n: int) -> F64:
    """Order quantities as they end: times the ratio of a split on the bar after the
    order's decision (before it could trade)."""
    ratios = sched.split_ratios(n_t + 1, n)
    rr = ratios[ot + 1, oj]
    out: F64 = np.where(rr != 1.0, qty * rr, qty)
    return out


class Dividends:
    """A run's dividend entitlements and payments, as the paper broker books them."""

    def __init__(self, sched: Schedule, positions: F64):
        n_t = positions.shape[0]
        div = np.flatnonzero(sched.kind == DIVIDEND)
        ratio = np.ones(len(sched))
        # The position held into the ex bar, after a split sharing it.
        for i in div.tolist():
            same = np.flatnonzero((sched.kind == SPLIT) & (sched.t == sched.t[i])
                                  & (sched.col == sched.col[i]))
            if len(same):
                ratio[i] = sched.value[same[0]]
        qty = np.zeros(len(sched))
        held = positions[sched.t[div] - 1, sched.col[div]]
        qty[div] = np.where(ratio[div] != 1.0, held * ratio[div], held)
        self.k = div[qty[div] != 0]  # entitlements, in schedule order
        self.qty = qty
        self.amount = qty * sched.value
        pays = payment_order(sched)
        pays = pays[(qty[pays] != 0) & (sched.pay_t[pays] < n_t)]
        self.pay_k = pays  # payments, in the order the broker makes them
        self.sched = sched

    def frame(self, bars: Bars) -> pd.DataFrame:
        """The result's ``dividends`` table (as :func:`~simbroker.actions._paper.
        dividend_frame` builds it for the broker)."""
        s, k = self.sched, self.k
        paid_ns = np.where(s.pay_t[k] < len(bars),
                           bars.ts_ns[np.minimum(s.pay_t[k], len(bars) - 1)], 0)
        paid = pd.DatetimeIndex((paid_ns // 1000 * 1000).view("M8[ns]")).tz_localize("UTC")
        paid = paid.where(s.pay_t[k] < len(bars), pd.NaT)
        out: pd.DataFrame = pd.DataFrame({
            "symbol": pd.Series(np.asarray(bars.symbols, dtype=object)[s.col[k]],
                                dtype=object),
            "ex_date": pd.DatetimeIndex(s.ex_date[k].astype("datetime64[ns]")),
            "pay_date": pd.DatetimeIndex(s.pay_date[k].astype("datetime64[ns]")),
            "qty": self.qty[k].astype(np.float64),
            "per_share": s.value[k].astype(np.float64),
            "amount": self.amount[k].astype(np.float64),
            "paid": paid,
        }, columns=list(DIVIDEND_COLUMNS))
        return out


def dividends_frame(bars: Bars, divs: Dividends | None) -> pd.DataFrame | None:
    """The result's ``dividends`` table: ``None`` for bars without corporate actions."""
    if bars.actions is None:
        return None
    return empty_dividends() if divs is None else divs.frame(bars)


def dividends_of(sched: Schedule | None, positions: F64) -> Dividends | None:
    """The dividends of a run with these positions after each bar (``None``: none)."""
    if sched is None or not bool((sched.kind == DIVIDEND).any()):
        return None
    return Dividends(sched, positions)


def ledger_with_dividends(cash0: float, fill_bar: I64, sign: F64, notional: F64, fee: F64,
                          divs: Dividends) -> tuple[I64, F64]:
    """The cash ledger with dividend payments merged in: ``(entry bars, cash after each)``.

    A bar's payments come before its fills, each one addition (``cash + amount``), in
    one strictly sequential ``np.add.accumulate`` with the fills' two roundings each:
    the broker's arithmetic in the broker's order.
    """
    pay_bar = divs.sched.pay_t[divs.pay_k].astype(np.int64)
    amount = divs.amount[divs.pay_k]
    n_d, n_f = len(pay_bar), len(fill_bar)
    bar = np.concatenate([pay_bar, np.asarray(fill_bar, np.int64)])
    phase = np.concatenate([np.zeros(n_d, np.int64), np.ones(n_f, np.int64)])
    seq = np.concatenate([np.arange(n_d), np.arange(n_f)])
    order = np.lexsort((seq, phase, bar))
    width = np.where(phase[order] == 1, 2, 1)
    first = np.cumsum(width) - width + 1
    flows = np.empty(1 + int(width.sum()))
    flows[0] = cash0
    is_fill = phase[order] == 1
    fpos, fseq = first[is_fill], seq[order][is_fill]
    flows[fpos] = np.where(sign[fseq] > 0, -notional[fseq], notional[fseq])
    flows[fpos + 1] = -fee[fseq]
    flows[first[~is_fill]] = amount[seq[order][~is_fill]]
    cash: F64 = np.add.accumulate(flows)[first + width - 1]
    return bar[order], cash


def weight_targets_with_actions(bars: Bars, sched: Schedule, weights: F64, cash0: float,
                                slippage: SlippageModel, fees: FeeModel, clip_to_bar: bool,
                                integer: bool, fill_prices: Any, cash_ledger: Any,
                                ffill: Any, at_close: Any = None) -> F64:
    """Share targets from equity weights across splits and dividends, bar by bar.

    As the vectorized runner's own weights loop, plus: before each bar trades, splits
    multiply positions and the pending orders, and dividends due are paid into cash
    (entitled on the position held into the ex bar). ``fill_prices``, ``cash_ledger``
    and ``ffill`` are the runner's own helpers (passed in to keep the layering);
    ``at_close(t, pos, cash)``, when given, returns the cash after bar ``t``'s borrow fees
    and interest (:mod:`simbroker.financing._vector`).
    """
    from simbroker.models.schedules import fees_at  # models import the paper layer

    fees.reset()  # this pass prices the fills from the first bar: the ledgers start again
    n_t, n = weights.shape
    close = ffill(bars.close.copy())
    tradable = bars.volume > 0 if bars.volume_known else ~np.isnan(bars.close)  # as the runner
    if bars.sessions is not None:  # as the runner's _tradable: regular hours only
        tradable &= bars.sessions.regular_hours()
        tradable &= bars.sessions.reachable(bars.close_ns)
    splits = _split_rows(sched)
    div = np.flatnonzero(sched.kind == DIVIDEND)
    ex_at: dict[int, list[int]] = {}
    for i in div.tolist():
        ex_at.setdefault(int(sched.t[i]), []).append(i)
    pays = payment_order(sched)
    pay_at: dict[int, list[int]] = {}
    for i in pays.tolist():
        pay_at.setdefault(int(sched.pay_t[i]), []).append(i)
    entitled: dict[int, float] = {}
    tgt = np.full((n_t, n), np.nan)
    pos = np.zeros(n)
    cash = cash0
    pend_j = np.array([], np.int64)
    pend_sign = np.array([], np.float64)
    pend_qty = np.array([], np.float64)
    for t in range(n_t):
        if t in splits:
            cols, ratio = splits[t]
            pos[cols] = pos[cols] * ratio
            if len(pend_j):
                pend_qty = _split_qty(pend_qty, pend_j, cols, ratio, n)
        for i in ex_at.get(t, ()):
            held = float(pos[int(sched.col[i])])
            if held != 0.0:
                entitled[i] = held * float(sched.value[i])
        for i in pay_at.get(t, ()):
            if i in entitled:
                cash = cash + entitled.pop(i)
        if len(pend_j):
            hit = tradable[t, pend_j]
            if hit.any():
                j, sign, qty = pend_j[hit], pend_sign[hit], pend_qty[hit]
                price = fill_prices(bars, np.full(len(j), t), j, sign, qty, slippage,
                                    clip_to_bar)
                fee = fees_at(fees, sign, qty, price, bars.ts_ns[t])
                cash = float(cash_ledger(cash, sign, qty * price, fee)[-1])
                pos[j] = _fill_positions(pos[j], sign, qty)
        if at_close is not None:
            cash = at_close(t, pos, cash)
        held_value = np.where(pos != 0, pos * close[t], 0.0)
        equity = cash + float(np.nansum(held_value))
        with np.errstate(invalid="ignore", divide="ignore"):
            row = weights[t] * equity / close[t]
        row[~np.isfinite(row)] = np.nan
        if integer:
            row = np.trunc(row)
        tgt[t] = row
        with np.errstate(invalid="ignore"):
            delta = row - pos
            pend_j = np.flatnonzero(~np.isnan(row) & (delta != 0))
        d = delta[pend_j]
        pend_sign, pend_qty = np.where(d > 0, 1.0, -1.0), np.abs(d)
    return tgt
