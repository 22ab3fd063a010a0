"""CashAccount: no borrowing, T+1 settlement, good-faith and free-riding rules."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from simbroker.accounts._base import Account, Booked, market_values
from simbroker.accounts._days import day_key, day_number
from simbroker.accounts._reserve import (
    Reservations,
    replaced_group,
    reserved,
    same_side_outside,
)
from simbroker.accounts._settlement import Credit, Lot, Settlement
from simbroker.accounts._state import field_of, number_of
from simbroker.errors import ShortingNotAllowed
from simbroker.models.fees import BpsOfNotional, NoFee
from simbroker.types import AccountInfo, Order, Side

if TYPE_CHECKING:
    from simbroker.paper import PaperBroker

__all__ = ["CashAccount"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_GOOD_FAITH = ("refuse", "record")

"""A fill as :meth:`CashAccount._on_fill` takes it: bar, column, sign, qty, notional,
fee, position before and after, cash after."""


class CashAccount(Account):
    """A cash account: every purchase paid in full, no short sales, T+1 settlement.

    - **Buying power** is the cash balance (settled or not) less what the open buy
      orders reserve at their worst price (fees estimated with the broker's fee model
      for the new order). A buy beyond it would be paid with money the account does not
      have and sold to cover (free-riding, Reg T 220.8(c)): refused with
      :class:`~simbroker.errors.InsufficientBuyingPower` (``rule="buying_power"``).
    - **No shorts**: a sell beyond the position (net of open sells) is refused
      (``rule="cash_account_short"``): with
      :class:`~simbroker.errors.InsufficientBuyingPower`, as IBKR's error 201 reads at
      the IBKR adapter, or under ``venue="alpaca"`` with
      :class:`~simbroker.errors.ShortingNotAllowed`, as Alpaca's "account is not allowed
      to short" reads at the Alpaca adapter. (At Alpaca a sell larger than a long
      position is refused first by one side at a time: ``PositionConflict``.)
    - **Settlement**: a sale's proceeds (after its fee) settle ``settlement_days``
      trading days after the day it filled (1: T+1 for US equities since May 2024),
      counted in the bars' exchange sessions when they carry them, else in calendar
      dates in the broker's ``session_tz``. ``settled_cash`` is the cash less the
      proceeds still unsettled (at least 0).
    - **Good faith**: buying with unsettled proceeds is allowed; the shares it bought
      are unpaid until those proceeds settle, and selling them before is a good-faith
      violation. ``good_faith="refuse"`` (default, as Alpaca and most US brokers'
      cash accounts block it up front) refuses such a sell (``rule="good_faith"``);
      ``"record"`` lets it trade and writes a ``good_faith_violation`` trade-log event
      (counted in :attr:`violations`), as a broker that restricts the account
      afterwards would. A sell uses the paid-for shares first.

    Parameters
    ----------
    settlement_days
        Trading days from a sale to its settlement (default 1).
    good_faith
        ``"refuse"`` or ``"record"``.
    market_buffer
        See :class:`~simbroker.accounts.Account`.
    """

    account_type = "cash"

    def __init__(self, *, settlement_days: int = 1, good_faith: str = "refuse",
                 market_buffer: float = 0.0) -> None:
        super().__init__(market_buffer=market_buffer)
        if not (isinstance(settlement_days, int) and settlement_days >= 0):
            raise ValueError(f"settlement_days must be an int >= 0, got {settlement_days!r}")
        if good_faith not in _GOOD_FAITH:
            raise ValueError(f"good_faith must be 'refuse' or 'record', got {good_faith!r}")
        self.settlement_days = settlement_days
        self.good_faith = good_faith
        self.violations = 0

    def _attach(self, broker: PaperBroker) -> None:
        """Attach to ``broker``; a cash account cannot start short."""
        super()._attach(broker)
        short = [broker.bars.symbols[i] for i in np.flatnonzero(broker._pos < 0)]
        if short:
            raise ValueError(f"a cash account cannot hold short positions: {short}")
        self.settlement = Settlement(self.settlement_days)
        # The bar whose trading days the settlement was last brought to (-2: none). With
        # one calendar and settlement_days >= 1 a credit or lot added since is due after
        # those days (a fill's day is at least the last one settled, its proceeds due
        # days later; a lot is freed with the latest credit), so settling again on the
        # same bar would drop nothing: skipped. Otherwise (_memo False) never skipped.
        self._settled = -2
        self._memo = self.settlement_days >= 1 and len(self._known) == 1
        self._ones = np.ones(broker.bars.n_symbols)
        self._reservations = Reservations()

    def buying_power(self, skip: int = -1) -> float:
        """Cash less the open buy orders' reservations (but book slot ``skip``'s)."""
        return self._buying_power(self.broker, skip)

    def _buying_power(self, b: PaperBroker, skip: int, group: str | None = None) -> float:
        marks = self._marks.at(b._t)
        if skip >= 0:
            return b._cash - reserved(b, marks, self._ones, self.market_buffer, skip, group)
        return b._cash - self._reservations.held(b, marks, self._ones, self.market_buffer)

    def settled_cash(self) -> float:
        """Cash not owed to unsettled sales: ``cash - unsettled``, at least 0 (money
        spent from unsettled proceeds is not settled cash); the cash itself when it is
        negative (a fill the reservation did not cover, e.g. past a gap)."""
        cash = self.broker._cash
        return max(cash - self.settlement.unsettled, 0.0) if cash >= 0 else cash

    def check(self, order: Order, col: int) -> None:
        """Refuse a short, a good-faith violation, or a buy beyond the cash."""
        self._check(order, col, None)

    def check_replace(self, order_id: str, order: Order, col: int) -> None:
        """Refuse a replace whose order, whole, does not fit: a buy against the cash net
        of the old order's reservation, a sell against the shares held net of the other
        open sells; one that reserves no more than the old order passes (see
        :meth:`Account.check_replace`)."""
        self._check(order, col, order_id)

    def _check(self, order: Order, col: int, replacing: str | None) -> None:
        b = self._b
        pos = float(b._pos.item(col))
        book = b._book
        skip, old, old_left = -1, None, 0.0
        if replacing is not None:
            skip, old, old_left = self._replaced(replacing)
        group = replaced_group(b, replacing)  # a replaced leg is weighed without its siblings
        if order.side is Side.SELL:
            if old is not None and order.qty <= old_left:
                return  # sells no more than the old order did
            # book signs are +-1.0; no order in the column: same_side_open is 0.0
            held = pos - (same_side_outside(b, col, -1.0, skip, group) if col in book.syms
                          else 0.0)
            if order.qty > held * (1 + 1e-12) + 1e-12:
                if b.venue == "alpaca":  # "account is not allowed to short" there
                    refusal = ShortingNotAllowed(order.symbol, position=held, qty=order.qty)
                    refusal.rule = "cash_account_short"
                    raise refusal
                px = self.price(order, col)
                raise self.refuse(order, order.qty * px, max(held, 0.0) * px,
                                  "cash_account_short",
                                  f"a cash account cannot sell short: {held:g} shares "
                                  f"held net of open sells")
            if self.good_faith == "refuse" and self.settlement.lots:  # no lot: all paid
                paid = held - self.settlement.unpaid_qty(col, self.next_day(col))
                if order.qty > paid * (1 + 1e-12) + 1e-12:
                    px = self.price(order, col)
                    raise self.refuse(order, order.qty * px, max(paid, 0.0) * px,
                                      "good_faith",
                                      f"only {max(paid, 0.0):g} shares are paid for with "
                                      "settled funds; selling the rest before the money "
                                      "that bought them settles is a good-faith violation")
            return
        px = self.price(order, col)
        if not math.isfinite(px):
            return
        required = order.qty * px + self._fee(order.qty, px)
        if old is not None:
            old_px = self.price(old, col)
            if required <= old_left * old_px + self._fee(old_left, old_px):
                return  # reserves no more than the old order did
        available = self._buying_power(b, skip, group)
        if required > available * (1 + 1e-12) + 1e-9:
            raise self.refuse(order, required, max(available, 0.0), "buying_power",
                              "a cash account cannot borrow: buying beyond its cash would "
                              "be free-riding")

    def _fee(self, qty: float, px: float) -> float:
        """The broker's fee model's fee for buying ``qty`` at ``px`` (the two built-in
        flat models in Python floats: their array arithmetic, in the same order)."""
        fees = self._b.fees
        kind = type(fees)
        if kind is NoFee:
            return 0.0
        if kind is BpsOfNotional:
            assert isinstance(fees, BpsOfNotional)
            return (fees.bps / 1e4) * abs(float(qty)) * float(px)
        return float(fees.fees(np.array([1.0]), np.array([qty]), np.array([px]))[0])

    def _on_fill(self, bar: int, col: int, sign: float, qty: float, notional: float,
                 fee: float, before: float, after: float, cash: float) -> None:
        self._book_fills(((bar, col, sign, qty, notional, fee, before, after, cash),))

    def _book_new(self, k0: int, n: int) -> None:
        """:meth:`_on_fill` for fills ``k0`` to ``n`` (read from the fill log's columns),
        in one loop."""
        self._book_fills(self._new_fills(k0, n))

    def _book_fills(self, booked: Iterable[Booked]) -> None:
        """Book fills: day trades, settlement (T+n proceeds, unpaid lots), good faith."""
        cals, daynum, last = self._cals, self._daynum, self._n_days - 1
        on_fill = self.day_trades.on_fill
        st = self.settlement
        for bar, col, sign, qty, notional, fee, before, after, cash in booked:
            cal = cals[col]
            day = daynum.item(min(max(bar, 0), last), cal)  # self.day(bar, col)
            on_fill(col, day, before, after, cal)  # Account._on_fill
            if (st.credits or st.lots) and bar != self._settled:
                st.settle(daynum[bar].tolist())
                self._settled = bar if self._memo else -2
            if sign < 0:
                # unpaid_qty is a sum over the lots: 0 without any, and before - 0 is before
                paid = before - st.unpaid_qty(col, day) if st.lots else before
                unpaid_sold = qty - max(paid, 0.0)
                if unpaid_sold > 1e-12:
                    self._violation(bar, col, unpaid_sold)
                st.on_sell(cal, day, notional - fee)
            elif st.credits:  # on_buy does nothing without unsettled proceeds
                st.on_buy(col, cal, qty, notional + fee, cash)

    def _violation(self, bar: int, col: int, unpaid_sold: float) -> None:
        """A sell of ``unpaid_sold`` shares not yet paid for: a good-faith violation."""
        self.violations += 1
        # at the close of the fill's bar, also when a resume books the fill again
        when = (_EPOCH + timedelta(microseconds=int(self.broker._close_ns[bar])
                                   // 1000)) if self._restoring else None
        self._write("good_faith_violation", when, symbol=self.broker.bars.symbols[col],
                    qty=unpaid_sold, rule="good_faith")
        self.settlement.on_sold_unpaid(col, unpaid_sold)

    def _after_bar(self, t: int) -> None:
        st = self.settlement
        if (st.credits or st.lots) and max(self._b._t, 0) != self._settled:
            st.settle(self.today())
            self._settled = max(self._b._t, 0) if self._memo else -2

    def info(self) -> AccountInfo:
        """The account's figures (no margin: both requirements are zero)."""
        b = self.broker
        lmv, smv = market_values(b._pos, self.marks())
        return AccountInfo(cash=b._cash, equity=b._cash + lmv + smv,
                           buying_power=max(self.buying_power(), 0.0),
                           maintenance_margin=0.0, initial_margin=0.0,
                           long_market_value=lmv, short_market_value=smv,
                           settled_cash=self.settled_cash(),
                           day_trades=self.day_trades.count(self.today()[0]),
                           pattern_day_trader=False, account_type="cash")

    # ------------------------------------------------------------ restarts
    def _spec(self) -> dict[str, Any]:
        return {"settlement_days": self.settlement_days, "good_faith": self.good_faith,
                **super()._spec()}

    def snapshot(self) -> dict[str, Any]:
        """Day trades, the proceeds still unsettled, the unpaid lots and the violations."""
        out = super().snapshot()
        st = self.settlement
        syms = self.broker.bars.symbols
        out["credits"] = [[c.calendar, day_key(self._known[c.calendar], c.due), c.amount]
                          for c in st.credits]
        out["lots"] = [[syms[lot.col], day_key(self._known[lot.calendar], lot.free_day),
                        lot.qty] for lot in st.lots]
        out["violations"] = self.violations
        return out

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        st = self.settlement
        for entry in field_of(state, "credits", list, []):
            if not (isinstance(entry, list) and len(entry) == 3):
                raise ValueError(f"account state: a credit must be [calendar, due day, "
                                 f"amount], got {entry!r:.60}")
            cal = self._calendar(entry[0])
            st.credits.append(Credit(cal, day_number(self._known[cal], entry[1]),
                                      number_of(entry[2], "a credit's amount")))
        for entry in field_of(state, "lots", list, []):
            if not (isinstance(entry, list) and len(entry) == 3):
                raise ValueError(f"account state: a lot must be [symbol, free day, qty], "
                                 f"got {entry!r:.60}")
            col = self._column(entry[0])
            cal = int(self._cal[col])
            st.lots.append(Lot(col, cal, day_number(self._known[cal], entry[1]),
                                number_of(entry[2], "a lot's qty")))
        violations = field_of(state, "violations", int, 0)
        if violations < 0:
            raise ValueError(f"account state field 'violations' must be >= 0, got "
                             f"{violations}")
        self.violations = violations

    def _params(self) -> str:
        return (f"settlement_days={self.settlement_days!r}, good_faith={self.good_faith!r}, "
                f"{super()._params()}")
