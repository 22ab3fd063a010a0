"""Pre-trade risk checks: a wrapper that satisfies ``Broker`` around any broker.

Every order passes :class:`RiskLimits` before it is sent (step 1 of the order flow), so
a backtest, the paper broker in real time and a live adapter all get the same guard
rails. A refused order raises :class:`~simbroker.errors.RiskRejected` naming the rule
and the numbers, is written to the trade log as ``rejected`` with its ``rule``, and
nothing reaches the wrapped broker.

**Risk is worst case.** Exposure is the position plus *every* open order on the side the
new order trades; a resting sell never makes room for a buy, since either can fill
without the other. An order's notional is priced at the highest price it can fill at
(:func:`worst_fill_price`): the last price for a market order, its limit for a buy
limit, the worse of its own price and the last price for a sell limit or a buy stop
(either fills at the market when marketable: a sell limit at 0.01 fills near the last
price), its stop for a sell stop. An order without such a ceiling and without a last
price is refused under any notional rule (``price_unknown``) rather than guessed at.

Rules (each off when its limit is ``None``):

=======================  ===========================================================
rule                     refuses an order when
=======================  ===========================================================
allowed_symbols          the symbol is not in the allowed set
blocked_symbols          the symbol is in the blocked set
max_order_qty            qty > limit
max_order_notional       qty x the highest price it can fill at > limit
price_collar             a limit/stop price is further than the fraction from the
                         last known price (fat finger)
allow_short              the position minus every open sell, minus this sell, < 0
max_position             the position plus every open order on the order's side,
                         plus the order, is beyond the limit on that side
max_position_notional    that worst position's value > limit (position at the last
                         price, orders at their highest fill price)
max_gross_exposure       the sum over symbols of each one's worst-case |value|, the
                         order's symbol on the order's side, > limit
max_orders_per_minute    more than the limit orders accepted in the last 60 s of
                         broker time (a resubmitted client order id counts once)
max_daily_loss           equity fell by more than the limit since the last mark before
                         the day (UTC) began: the kill switch engages and stays on
                         until reset
=======================  ===========================================================

An order that only reduces its side's exposure (a buy against a short) is never refused
by the position and exposure rules, even when an account is already over a limit.

**Serialized.** One lock covers check-and-reserve: concurrent orders are checked one by
one, each against the others already reserved, so four threads buying 100 under
``max_position=100`` get exactly one order through. The lock is not held while an order
travels to the broker; an order whose fate is unknown after a fault keeps counting.

**State survives restarts.** The wrapper writes ``kill``, ``kill_reset`` and
``risk_mark`` (the daily-loss baseline) records; :meth:`RiskBroker.restore` rebuilds the
kill switch, the daily-loss baseline, the rate window and the open orders from the trade
log, so a resumed real-time run makes the same decisions as an uninterrupted one.
"""

from __future__ import annotations

from simbroker.risk._broker import RiskBroker
from simbroker.risk._exposure import worst_fill_price
from simbroker.risk._limits import RiskLimits

__all__ = ["RiskBroker", "RiskLimits", "worst_fill_price"]
