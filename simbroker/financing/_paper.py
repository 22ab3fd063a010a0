"""Borrow fees, interest and hard-to-borrow checks in the paper broker.

:meth:`PaperBroker.step <simbroker.PaperBroker.step>` calls :meth:`PaperFinancing.apply`
after the last bar of each trading day has been matched (see
:func:`~simbroker.financing._days.accrual_days`): first the borrow fee on every short
position (one ``borrow_fee`` record with the total ``amount`` and the per-symbol
``fees``), then the interest on the cash balance left (one ``interest`` record, ``amount``
positive when paid, negative when credited), each written before cash moves and skipped
when it is zero. A failed write leaves that accrual undone; stepping again does it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from simbroker.errors import ConfigError, HardToBorrow, InvalidOrder
from simbroker.financing._accrue import F64, borrow_fees, borrow_total_into
from simbroker.financing._borrow import BorrowModel
from simbroker.financing._days import accrual_days
from simbroker.financing._interest import InterestModel
from simbroker.sessions import NEVER, Sessions

if TYPE_CHECKING:
    from simbroker.bars import Bars
    from simbroker.paper import PaperBroker
    from simbroker.types import Order

__all__ = ["PaperFinancing", "financing_of"]


def financing_of(bars: Bars, sessions: Sessions, borrow: BorrowModel | None,
                 interest: InterestModel | None, first_bar: int) -> PaperFinancing | None:
    """The broker's financing state, ``None`` when neither model is given."""
    if borrow is None and interest is None:
        return None
    if borrow is not None and not isinstance(borrow, BorrowModel):
        raise TypeError(f"borrow must be a simbroker.financing.BorrowModel, got "
                        f"{type(borrow).__name__}")
    if interest is not None and not isinstance(interest, InterestModel):
        raise TypeError(f"interest must be a simbroker.financing.InterestModel, got "
                        f"{type(interest).__name__}")
    return PaperFinancing(bars, sessions, borrow, interest, first_bar)


class PaperFinancing:
    """What a :class:`~simbroker.PaperBroker` accrues and checks for borrow and interest."""

    def __init__(self, bars: Bars, sessions: Sessions, borrow: BorrowModel | None,
                 interest: InterestModel | None, first_bar: int):
        from simbroker.results.build import marking_closes  # results sit above paper

        self.borrow = borrow
        self.interest = interest
        self.ends, self.days = accrual_days(sessions)
        self.next = int(np.searchsorted(self.ends, first_bar, side="left"))
        self._due_t = int(self.ends[self.next]) if self.next < len(self.ends) else NEVER
        self._stage = 0  # 0: the day's borrow fee is to do, 1: its interest
        self.symbols = bars.symbols
        self.rates = (borrow.rate_array(bars.symbols) if borrow is not None
                      else np.zeros(bars.n_symbols))
        self.charges_borrow = borrow is not None and bool(self.rates.any())
        self.close = marking_closes(bars.close) if self.charges_borrow else bars.close
        # The fast borrow fee (borrow_total_into): the marking closes with 0.0 for none
        # known, a fee buffer, -(rates * (days / day_count)) per number of days; off
        # (borrow_fees every day) when a close is infinite.
        self._days: list[float] = self.days.tolist()
        self._ends: list[int] = self.ends.tolist()
        self._fast = self.charges_borrow and not np.isinf(self.close).any()
        nan = self._fast and bool(np.isnan(self.close).any())
        self._close0 = np.where(np.isnan(self.close), 0.0, self.close) if nan else self.close
        self._fees = np.empty(bars.n_symbols)
        self._zeros = np.zeros(bars.n_symbols)
        self._neg_scale: dict[float, F64 | None] = {}
        # The scale of each day's number of days for the fast path (None: not finite).
        self._scales: list[F64 | None] = []
        if self._fast:  # one array per distinct number of days, listed in C (map)
            kinds, which = np.unique(self.days, return_inverse=True)
            per_kind = [self._scale(d) for d in kinds.tolist()]
            self._scales = list(map(per_kind.__getitem__, which.tolist()))
        self._ends.append(NEVER)  # after the last day: no accrual is due
        self._owed = False  # whether the last borrow fee computed was not zero
        # InterestModel.amount inline in apply (a subclass overriding it is called).
        self._plain_interest = interest is not None and type(interest) is InterestModel
        self._debit = interest.debit if interest is not None else 0.0
        self._credit = interest.credit if interest is not None else 0.0
        self._i_day_count = interest.day_count if interest is not None else 1.0
        self.located: dict[str, float] = dict(borrow.located) if borrow is not None else {}
        # Whether check_short can refuse (a hard-to-borrow list): the broker skips the call
        self.checks_shorts = borrow is not None and bool(borrow.hard_to_borrow)
        # Accruals booked, for results: bar index and amount.
        self.borrow_bar: list[int] = []
        self.borrow_amount: list[float] = []
        self.interest_bar: list[int] = []
        self.interest_amount: list[float] = []

    def due(self, t: int) -> bool:
        """Whether bar ``t`` ends a trading day still to accrue."""
        return t == self._due_t

    def apply(self, broker: PaperBroker, t: int) -> None:
        """Accrue the day that bar ``t`` ends: borrow, then interest, each after its record."""
        k = self.next
        days = self._days[k]
        if self._stage == 0:
            pos = broker._pos
            # No short position: every fee is 0.0 (borrow_fees' zeros sum to 0.0, so
            # nothing would be booked): skip the arrays. Only a test to save time: the
            # fees come out zero without it, so it is left out after a day that owed a
            # fee (shorts are likely still held). The element at argmin is the min (NaN
            # where min is NaN); argmin is the cheaper call.
            if self.charges_borrow and (self._owed or (pos.size and pos.item(pos.argmin())
                                                       < 0)):
                total, fees = self._borrow(pos, t, k, days)
                self._owed = total != 0.0
                if total != 0.0:
                    log = broker._log
                    if log is not None:
                        cols = np.flatnonzero(fees).tolist()
                        log.write(
                            "borrow_fee", broker._clock.now(), amount=total, days=days,
                            fees={self.symbols[j]: float(fees[j]) for j in cols},
                            positions={self.symbols[j]: float(pos[j]) for j in cols})
                    broker._cash = broker._cash - total
                    self._ledger(broker, t)
                    self.borrow_bar.append(t)
                    self.borrow_amount.append(total)
            self._stage = 1
        model = self.interest
        if model is not None:
            cash = broker._cash
            if self._plain_interest:  # InterestModel.amount's arithmetic, inline
                if cash < 0 and self._debit:
                    amount = -cash * self._debit * (days / self._i_day_count)
                elif cash > 0 and self._credit:
                    amount = -(cash * self._credit * (days / self._i_day_count))
                else:
                    amount = 0.0
            else:
                amount = model.amount(cash, days)  # interest_amount, with its model
            if amount != 0.0:
                log = broker._log
                if log is not None:
                    rate = model.debit if amount > 0 else model.credit
                    log.write("interest", broker._clock.now(), amount=amount,
                              balance=cash, rate=rate, days=days,
                              kind="debit" if amount > 0 else "credit")
                broker._cash = cash - amount
                self._ledger(broker, t)
                self.interest_bar.append(t)
                self.interest_amount.append(amount)
        self._stage = 0
        self.next = k + 1
        self._due_t = self._ends[k + 1]

    def _borrow(self, pos: F64, t: int, k: int, days: float) -> tuple[float, F64]:
        """Day ``k``'s total borrow fee (``np.sum`` of :func:`borrow_fees`) and the fees
        (their nonzero entries are ``borrow_fees``')."""
        neg = self._scales[k] if self._fast else None
        if neg is not None:
            total = borrow_total_into(self._fees, pos, self._close0[t], neg, self._zeros)
            if total - total == 0.0:  # finite: the bits of the general arithmetic
                return total, self._fees
        assert self.borrow is not None
        fees = borrow_fees(pos, self.close[t], self.rates, days, self.borrow.day_count)
        return float(np.sum(fees)), fees

    def _scale(self, days: float) -> F64 | None:
        """``-(rates * (days / day_count))`` for the fast path, one array per number of
        days (``None`` when not finite: the general arithmetic then)."""
        assert self.borrow is not None
        if days not in self._neg_scale:
            with np.errstate(over="ignore"):  # a huge rate: not finite, general path
                scaled = -(self.rates * (days / self.borrow.day_count))
            self._neg_scale[days] = scaled if np.isfinite(scaled).all() else None
        return self._neg_scale[days]

    def skip_logged(self, logged: Sequence[tuple[str, int]], close_ns: np.ndarray) -> None:
        """A resumed broker: do not charge again what the log already charged for the
        trading day it closes next.

        ``logged`` holds the ``(event, time in ns)`` of the ``borrow_fee`` and
        ``interest`` records written after the bar the broker resumes from: a step the
        crash cut short had accrued that day (and its cash is in the log's), so the
        repeated step must not. An ``interest`` record means the day is done; a
        ``borrow_fee`` alone means its interest is still to do (or was zero, and is zero
        again on the same cash)."""
        if self.next >= len(self.ends):
            return
        due = int(close_ns[self._due_t])
        done = {event for event, ns in logged if ns == due}
        if "interest" in done:
            self._stage = 0
            self.next += 1
            self._due_t = int(self.ends[self.next]) if self.next < len(self.ends) else NEVER
        elif "borrow_fee" in done:
            self._stage = 1

    @staticmethod
    def _ledger(broker: PaperBroker, t: int) -> None:
        """The accrual's ledger row: the cash after it (symbol 0's position, unchanged)."""
        broker._ledger_bar.append(t)
        broker._ledger_sym.append(0)
        broker._ledger_cash.append(broker._cash)
        broker._ledger_pos.append(broker._pos.item(0))

    # ------------------------------------------------------------ submission
    def check_short(self, broker: PaperBroker, order: Order, col: int,
                    set_aside: float = 0.0) -> None:
        """Refuse a sell that would short a hard-to-borrow symbol beyond its locate
        (``set_aside``: open sell quantity not counted, a replaced order's remainder)."""
        if self.borrow is None or order.symbol not in self.borrow.hard_to_borrow:
            return
        held = float(broker._pos[col]) - broker._open_sell_qty(col) + set_aside
        after = held - order.qty
        if after >= 0:
            return
        located = self.located.get(order.symbol, 0.0)
        if -after > located * (1 + 1e-12) + 1e-12:
            raise HardToBorrow(order.symbol, short=-after, located=located, position=held,
                               qty=order.qty)

    def locate(self, broker: PaperBroker, symbol: str, qty: float, now: datetime) -> float:
        """Add ``qty`` located shares of ``symbol`` (after its record); return the total."""
        if symbol not in broker.bars:
            raise InvalidOrder(f"unknown symbol {symbol!r}: not in the bars", field="symbol",
                               value=symbol, symbol=symbol)
        q = float(qty)
        if not (np.isfinite(q) and q > 0):
            raise InvalidOrder(f"a locate needs a quantity > 0, got {qty!r}", field="qty",
                               value=qty, symbol=symbol)
        total = self.located.get(symbol, 0.0) + q
        if broker._log is not None:
            broker._log.write("located", now, symbol=symbol, qty=q, located=total)
        self.located[symbol] = total
        return total


def no_borrow_model() -> ConfigError:
    """The error of a locate on a broker without a borrow model."""
    return ConfigError("locate() needs a borrow model: PaperBroker(..., borrow=BorrowModel("
                       "hard_to_borrow={...}))", key="borrow")


def per_bar(n_bars: int, bar: list[int] | np.ndarray, amount: list[float] | np.ndarray
            ) -> np.ndarray:
    """Amounts booked at bars, as a ``(n_bars,)`` array (0 where none; bars past the end
    left out)."""
    out = np.zeros(n_bars)
    b = np.asarray(bar, np.int64)
    keep = b < n_bars
    np.add.at(out, b[keep], np.asarray(amount, np.float64)[keep])
    return out
