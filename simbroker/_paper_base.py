"""The paper broker's state, declared once for the modules that implement its parts.

:class:`~simbroker.paper.PaperBroker` is assembled from one-job mixins (placing orders in
the book, submission checks, booking fills and final statuses, matching a bar); each
reads and writes the attributes declared here, which ``PaperBroker.__init__`` sets.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from simbroker.sessions import NEVER

if TYPE_CHECKING:
    from array import array

    from simbroker._paper_book import OpenBook
    from simbroker._paper_fills import FillLog
    from simbroker._paper_groups import Groups
    from simbroker._paper_state import OrderState
    from simbroker.accounts import Account
    from simbroker.actions._paper import PaperActions
    from simbroker.bars import Bars
    from simbroker.clock import SimulatedClock
    from simbroker.financing._paper import PaperFinancing
    from simbroker.models.fees import FeeModel
    from simbroker.models.slippage import SlippageModel
    from simbroker.sessions import Sessions
    from simbroker.tradelog import TradeLog

__all__ = ["EPOCH", "NEVER_BAR", "PaperState"]


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NEVER_BAR = NEVER  # "no such bar": later than every bar index


class PaperState:
    """The attributes of a :class:`~simbroker.paper.PaperBroker` (set by its ``__init__``)."""

    bars: Bars
    slippage: SlippageModel
    fees: FeeModel
    allow_short: bool
    clip_to_bar: bool
    both_legs: str
    venue: str | None
    max_volume_share: float | None
    _prefix: str
    _clock: SimulatedClock
    _ts: np.ndarray
    _n_bars: int
    _plain: bool
    _close_ns: np.ndarray
    _close_at: memoryview
    """``_close_ns`` by index as Python ints."""
    _open_at: memoryview
    """``_ts`` by index as Python ints."""
    _t: int
    _open_px: np.ndarray
    _high: np.ndarray
    _low: np.ndarray
    _close: np.ndarray
    _volume: np.ndarray
    _volume_known: bool
    _sessions: Sessions
    _calendar_of: list[int]
    """Each symbol column's calendar index in ``_sessions`` (``Sessions.columns``)."""
    _windows: dict[tuple[int, int, bool], tuple[int, int]]
    """``day`` order windows by (first bar, calendar, extended), for the time ``_windows_ns``."""
    _windows_ns: int | None
    _date_windows: tuple[tuple[memoryview, memoryview], tuple[memoryview, memoryview]] | None
    """Under the date rule (sessions without session closes): the (next bar, last bar)
    lookups of ``Sessions.close_bar`` for regular and extended orders, flat (cell
    ``(t, g)`` at ``t * _n_calendars + g``); else None."""
    _day_close: memoryview | None
    """Under the date rule: ``_day_window``'s last bar for a regular order by first bar
    and calendar, flat as the lookups above (``last_regular[next_regular]``); else None."""
    _n_calendars: int
    _sessions_bars: int
    """``Sessions.n_bars``."""
    _gate: tuple[np.ndarray, np.ndarray] | None
    _all_regular: np.ndarray
    _cash: float
    _initial_cash: float
    _account: Account | None
    _pos: np.ndarray
    _pos_mv: memoryview[float]
    """``_pos`` by element (the same buffer)."""
    _n_cols: int
    _flat: tuple[memoryview, memoryview] | None
    """Opens and the tradable test's field (volumes, or closes when unknown) flattened."""
    _col_of: dict[str, int]
    """Symbol -> column (the frozen panel's index)."""
    _positions: dict[str, float] | None
    """``get_positions()`` of ``_pos`` (kept live by booking, see :meth:`_position_moved`),
    or None: anything else that writes ``_pos`` sets it to None and it is rebuilt."""
    _held_top: int
    """The largest column ever keyed in ``_positions`` since its rebuild (-1: none)."""
    _initial_positions: dict[str, float]
    _orders: dict[str, OrderState]
    _by_client_id: dict[str, str]
    _book: OpenBook
    _fills: FillLog
    _fill_ns: list[int]
    _fill_rows: array[int]
    _ledger_bar: list[int]
    _ledger_sym: list[int]
    _ledger_cash: array[float]
    _ledger_pos: array[float]
    _n_orders: int
    _n_refused: int
    """Refusals counted for ``stats["n_refused"]`` (see ``_paper_checks``)."""
    _actions: PaperActions | None
    _financing: PaperFinancing | None
    _groups: Groups
    _trailing: bool
    _special: bool
    _log: TradeLog | None

    def _position_moved(self, col: int, symbol: str, qty: float) -> None:
        """Keep ``_positions`` live after booking set column ``col`` to ``qty``.

        Its keys stay in panel (column) order, as a rebuild would give them: a changed
        position keeps its place, a flat one leaves, and a new one is appended when its
        column is past every column keyed since the rebuild; otherwise (a symbol earlier
        in the panel opens) the dict is dropped and rebuilt when next asked. (Putting
        the new key in its place instead, the later keys moved behind it, cost more: it
        is paid per fill, 3,391 times in the SMA daily case, the rebuild once per call
        after them, 1,837 times, at about the same cost each.)
        """
        held = self._positions
        if held is None:
            return
        if not qty:
            held.pop(symbol, None)
        elif symbol in held:
            held[symbol] = qty
        elif col > self._held_top:
            held[symbol] = qty
            self._held_top = col
        else:
            self._positions = None
