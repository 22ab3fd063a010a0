"""Financing: what shorting and borrowing cash cost (borrow fees, interest).

:class:`BorrowModel` charges a borrow fee on short positions and lists the symbols that
are hard to borrow (shorts refused unless located); :class:`InterestModel` charges
interest on a debit cash balance and may pay it on a credit balance. Both accrue once per
trading day, at the close of the day's last bar (``bars.sessions`` trading days when the
bars carry a calendar, else calendar dates in ``session_tz``), for the calendar days
until the next trading day (a Friday accrues Friday, Saturday and Sunday), ACT/360 by
default. Per day, in this order::

    borrow fee = sum over shorts of |position| * close * rate[symbol] * days / day_count
    cash      -= borrow fee
    interest   = -cash * debit * days / day_count   if cash < 0   (paid)
               = -(cash * credit * days / day_count) if cash > 0   (credited: negative)
    cash      -= interest

Pass them to :class:`~simbroker.PaperBroker`, :func:`~simbroker.backtest` or
:func:`~simbroker.vectorized.backtest_vectorized` (``borrow=``, ``interest=``); results
show them as ``borrow_fees`` and ``interest`` (per bar) and in ``stats``.
"""

from __future__ import annotations

from simbroker.financing._borrow import BorrowModel
from simbroker.financing._interest import InterestModel

__all__ = ["BorrowModel", "InterestModel"]
