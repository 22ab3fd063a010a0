"""The trade log: append-only, hash-chained JSONL, one record per event, and its replay.

Each record is one line ``{"seq", "prev", "ts", "event", ...}``: ``seq`` counts from 1,
``prev`` is :func:`line_digest` of the line before (``null`` on the first). The line is
handed to the operating system in one ``write`` before :meth:`TradeLog.write` returns
(optionally fsynced), and every simbroker broker writes a record *before* it changes the
state the record describes, so the file is never behind the broker. Events:

==========  ==================================================================
start       ``cash``, ``positions``, ``broker`` (+ free-form info); a resumed
            paper session adds ``open_orders``, the orders it carried over
submitted   ``order_id, client_order_id, symbol, side, qty, order_type,
            limit_price, stop_price, tif`` (+ when set: ``order_class,
            take_profit, stop_loss, trail_amount, trail_percent``, and
            ``legs``, the ids of the legs the order brings, built from it)
activated   ``order_id, symbol, qty, parent_id``: a held bracket/OTO child
            became live, sized to its parent's fill
replaced    ``order_id, symbol`` and the fields a ``replace_order`` changed
replace_    ``order_id, symbol, reason``: a ``replace_order`` was refused
rejected    (nothing changed)
trailed     ``order_id, symbol, trail_extreme, stop_price``: a trailing
            stop's extreme (and so its level) moved after a bar
rejected    ``order_id`` (may be null), ``client_order_id, symbol, side, qty,
            order_type, reason`` (+ ``rule``)
canceled    ``order_id, symbol, reason`` (a sibling's fill, a parent's end, an
            auction or ioc order's bar passing; ``null`` when asked for)
expired     ``order_id, symbol, reason``
triggered   ``order_id, symbol, bar``: a stop-limit's stop was hit on the bar
            opening at ``bar``; it now rests as a limit
filled      ``fill_id, order_id, client_order_id, symbol, side, qty, price, fee,
            notional, timestamp``
account     ``model, params, state``: the account model a paper broker keeps and
            its state (:meth:`simbroker.accounts.Account.snapshot`); then
            ``margin_call`` and ``good_faith_violation`` records as they happen
==========  ==================================================================

A crash can leave at most the last line torn: the reader drops it, and reopening the
file for append cuts it off before writing on. Anything else that is wrong (a line
changed, lost, repeated or moved; a field missing or mistyped) raises
:class:`~simbroker.errors.TradeLogError` naming the file and line, and
:func:`repair_trade_log` cuts the file back to its valid head on request.
:func:`cash_after_fill` and :func:`position_after_fill` are *the* arithmetic of every
broker and of the replay, so a replay equals the broker's state bit for bit.

Logs written before the chain (records without ``prev``) are read without a warning,
their ``seq`` alone checked: that still detects a deleted, repeated or reordered line,
and refusing them would strand the runs they record. The first record appended to such a
log links to its last line, so the chain covers everything from then on.
"""

from __future__ import annotations

from simbroker.tradelog._chain import line_digest
from simbroker.tradelog._reader import read_trade_log
from simbroker.tradelog._repair import RepairReport, repair_trade_log
from simbroker.tradelog._replay import (
    ReplayState,
    cash_after_fill,
    position_after_fill,
    replay_trade_log,
)
from simbroker.tradelog._writer import REDACTED, TradeLog

__all__ = [
    "REDACTED",
    "RepairReport",
    "ReplayState",
    "TradeLog",
    "cash_after_fill",
    "line_digest",
    "position_after_fill",
    "read_trade_log",
    "repair_trade_log",
    "replay_trade_log",
]
