"""A loopback TWS / IB Gateway speaking the real API wire protocol.

For testing :class:`~simbroker.brokers.ibkr.IBKRBroker` (or any ``ib_async`` code)
without a broker. An asyncio server on 127.0.0.1 port 0, in its own thread and event
loop, at a chosen server version (157..178 with ``ib_async``)::

    with FakeTWS(server_version=178) as tws:
        tws.set_price("AAPL", 190.0)
        ib.connect("127.0.0.1", tws.port, clientId=1)
        ...
        tws.step()             # the market trades once at the current prices

It answers the handshake and every start-up request with its END message (positions,
open and completed orders, account updates, executions), places, modifies and cancels
orders, fills them (partially if asked) with execDetails, orderStatus and a commission
report (``commission_per_share`` with ``min_commission``), pushes positions and cash to
subscribers, serves the current time and historical bars (from :meth:`FakeTWS.set_bars`).

Like TWS, order events go only to the connection holding the order's client id (and to
``master_client_id``'s, if set); a disconnected owner learns of them at reqOpenOrders /
reqCompletedOrders / reqExecutions. Executions are stamped with the wall clock to the
whole second, as TWS stamps them.

Faults, armed with :meth:`FakeTWS.inject` (each one-shot, counted in
:attr:`FakeTWS.faults_injected`): ``drop_before_read`` (the socket closes before TWS
reads the next placeOrder), ``drop_after_read`` (TWS takes the order, the socket closes
before the ack), ``drop_after_ack``, ``drop_during_fill`` (execDetails is sent, the
commission and position pushes are not), ``drop_during_sync`` (the socket closes at the
next start-up reqExecutions), ``stall_sync`` (the next start-up positions answer is
``delay`` s late), ``stall_ack`` (the next order's ack is ``delay`` s late), ``reject``
(the next order gets error 201), ``fill_on_modify`` (TWS fills the order just before
it reads a modification of it, which it then refuses with error 104),
``repeat_refusal`` (the next refusal of a modification is sent twice),
``drop_after_refusal`` (the socket closes right after the next refusal of a
modification), ``stall_refusal`` (the next refusal of a modification is sent ``delay`` s
late, after answers to later requests), ``stall_time`` (the next reqCurrentTime, a
client's round trip, is answered ``delay`` s late). Each takes
``skip=n`` to let ``n`` chances pass first (a bracket's last leg: ``skip=2``). Also
:meth:`FakeTWS.notice` (1100/1101/1102, farm notices), :attr:`FakeTWS.silent`
(accepts connections, never answers the handshake),
:meth:`FakeTWS.drop_connections`, ``reject_symbols`` (error 201), unknown symbols (200),
a duplicate order id (103), cancelling an unknown order (10147), a client id already
connected (326), ``exec_before_status``, ``exec_delay``, ``partial_fills`` and
``reject_modify`` (the error code every modification is refused with).

Orders as TWS documents them: a ``transmit=False`` order is held untransmitted (nothing
reported, never worked, not listed) until an order of its group with ``transmit=True``
arrives; children (``parentId``) are ``PreSubmitted`` until their parent fills and are
then sized to its filled quantity; a fill cancels the order's OCA siblings (``ocaGroup``
with ``ocaType`` 1, and a bracket's children); canceling an unfilled parent cancels its
children; ``TRAIL`` (``auxPrice`` amount or ``trailingPercent``) is tested against its
stop and then ratcheted at each :meth:`FakeTWS.step`; ``OPG`` / ``MOC`` / ``LOC`` trade
only at :meth:`FakeTWS.auction`; ``IOC`` / ``FOK`` are canceled after one step; a
placeOrder with a used order id modifies the order (error 104 for a filled one, 103 for
an ended one, 105 for a changed order type). :attr:`FakeTWS.placed` records every
placeOrder read, decoded, for wire-level assertions.

The account as TWS keeps it: Reg T margin or cash figures, a pre-trade margin check that
counts every working order (:mod:`simbroker.testing.fake_tws.margin`, the rule of
:class:`simbroker.accounts.MarginAccount`) and weighs a modification against the buying
power too (the order it modifies set aside; refused with error 201, the original order
working on), and day trades as a flagged or unflagged
account reports them (``pattern_day_trader``, ``day_trades_remaining``), opening orders
refused under 25,000 with no day trade left. A cash account refuses short sales (a sell
beyond the shares held net of the working sells, error 201). A modification is weighed
by these rules like a new order for what would be left of it, the order it modifies set
aside (:mod:`simbroker.testing.fake_tws.modify`).
"""

from __future__ import annotations

from simbroker.testing.fake_tws.server import FAULTS, NOTICES, FakeTWS
from simbroker.testing.fake_tws.venue import FakeTWSVenue

__all__ = ["FAULTS", "NOTICES", "FakeTWS", "FakeTWSVenue"]
