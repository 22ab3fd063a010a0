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

What the shadow models: the paper broker's matching, slippage and fee models and the
shorting rule. Not yet: an account model (buying power, settlement, PDT, margin calls),
partial fills by volume, borrow fees and interest. Each bar is matched by a paper broker
over just the previous and the current bar, and those models need what such a window
cannot hold: the trading days before it (settlement and the five-day PDT window count
them; a day end is where borrow and interest accrue) and an order's fills in earlier
windows (a per-order minimum fee is paid once). ``simbroker paper --shadow`` warns when the
paper config sets them.
"""

from __future__ import annotations

from simbroker.shadow._broker import ShadowBroker, ShadowOrder
from simbroker.shadow._monitor import ALERT_KINDS, DivergenceMonitor, ShadowSettings
from simbroker.shadow._session import ShadowSession, shadow_log_path

__all__ = ["ALERT_KINDS", "DivergenceMonitor", "ShadowBroker", "ShadowOrder",
           "ShadowSession", "ShadowSettings", "shadow_log_path"]
