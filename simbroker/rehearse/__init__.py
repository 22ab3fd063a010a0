"""Dress rehearsal: a strategy through the real live adapter against a fake venue whose
market is the historical bars, measured against its backtest.

:func:`rehearse` (``simbroker rehearse STRATEGY --broker ibkr|alpaca --data BARS``) starts
the broker's loopback fake in bar-market mode (orders fill on each bar by the paper
broker's rules, slippage and fees), runs the strategy through the real adapter
(``IBKRBroker`` over ib_async, ``AlpacaBroker`` over alpaca-py) and the
:class:`~simbroker.RealtimeRunner` on the adapter's own bar feed, optionally with planted
faults (:func:`parse_faults`), then backtests the same bars and returns the
:func:`simbroker.drift` of the two. Without faults the drift is zero but for each venue's
documented differences (:attr:`Rehearsal.documented`): IB's fills are read at TWS's
whole-second execution time and its commission is the venue's schedule; Alpaca's events
are a microsecond apart and it charges no commission.
"""

from __future__ import annotations

from simbroker.rehearse._faults import FAULT_KINDS, Fault, parse_faults
from simbroker.rehearse._run import DEFAULT_SPEED, Rehearsal, rehearse

__all__ = ["DEFAULT_SPEED", "FAULT_KINDS", "Fault", "Rehearsal", "parse_faults", "rehearse"]
