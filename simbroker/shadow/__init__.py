"""Shadow mode: a paper broker beside the live one, on the same bars and decisions.

``RealtimeRunner(..., shadow=True)`` (``simbroker paper|live --shadow``) sends the
strategy's orders to the live broker as always and mirrors each accepted order and each
cancel to a :class:`ShadowBroker`, a paper account filled by the paper broker's own
rules on the live bars. The shadow writes its own trade log beside the main one
(``NAME.shadow.jsonl``), which ``simbroker drift`` compares with the live log afterwards.
While the run goes on, a :class:`DivergenceMonitor` compares the two accounts' fills after
every bar and raises an alert when they part (a fill the paper broker would not have
made, a missing fill, a price outside the bar, a price difference over a threshold):
an ``alert`` record in the main trade log, a ``logging`` warning on ``simbroker.shadow``
and the optional ``on_divergence(alert)`` callback.

What the shadow models: the paper broker's matching, slippage and fee models, the
shorting rule, a venue's order rules (``venue=``: ``simbroker live|paper --broker
ibkr|alpaca --shadow`` passes the venue) and the account (``account=``, as
``PaperBroker(account=...)`` takes it: a cash account's T+1 settlement, free-riding and
good-faith refusals, Reg T margin, the PDT rule and a flagged account's intraday buying
power, margin calls and liquidation; ``simbroker paper --shadow`` uses the paper config's
``account`` or ``--account``). Each bar is matched by a paper broker over just the
previous and the current bar; the account travels between these windows as a resumed
run's does (its snapshot, restored into a fresh copy of the model, with the recent
trading days the window cannot see), and mirrored orders and cancels are weighed when
the next bar arrives, in their order, at the previous close: so the shadow refuses, with
the same exception and ``rejected`` record, exactly what one paper broker over the
whole run refuses on the same order stream (``tests/test_shadow_account.py``). A
restarted shadow rebuilds the account from its own log (``stepped`` records).

Not yet: partial fills by volume, borrow fees and interest. They need what a window
cannot hold: an order's fills in earlier windows (a per-order minimum fee is paid once,
a bar's volume is shared), and a day end, where borrow and interest accrue (a window's
last bar is not known to close its day). ``simbroker paper --shadow`` warns when the
paper config sets them. A day order is expired by the shadow when a later day's bar
arrives; a margin call on the day's last bar may therefore cancel a day order a paper
broker has just expired.
"""

from __future__ import annotations

from simbroker.shadow._broker import ShadowBroker, ShadowOrder
from simbroker.shadow._monitor import ALERT_KINDS, DivergenceMonitor, ShadowSettings
from simbroker.shadow._session import ShadowSession, shadow_log_path

__all__ = ["ALERT_KINDS", "DivergenceMonitor", "ShadowBroker", "ShadowOrder",
           "ShadowSession", "ShadowSettings", "shadow_log_path"]
