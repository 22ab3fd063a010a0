"""The risk state a trade log holds, read back so a restart changes no decision.

Records that matter (every other event is ignored):

============  ==============================================================
event         gives
============  ==============================================================
risk_mark     ``day``, ``day_start_equity``, ``last_equity``: the daily-loss
              baseline, written by :class:`~simbroker.risk.RiskBroker` whenever
              a mark changes it
kill          the kill switch engaged (``reason``)
kill_reset    the kill switch released by hand; the day's P&L restarts
submitted     an order accepted: its first record per ``client_order_id`` (else
              per ``order_id``) is one order in the rate window; a repeat is a
              resubmission or a re-placement after a resume, not a new order
filled,       which orders are still open and how much of each is left (used
canceled,...  for a broker that cannot list its open orders); a group's
              ``submitted`` record brings its legs (``status="held"`` for a
              bracket's children until ``activated``), and ``replaced`` changes
              an open order's fields
============  ==============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, TypeVar

from simbroker.errors import TradeLogError
from simbroker.tradelog._replay import apply_order_change, legs_of

__all__ = ["LoggedRiskState", "risk_state_from_log"]

_CLOSING = ("canceled", "expired", "rejected")
_T = TypeVar("_T")


@dataclass
class LoggedRiskState:
    """What :func:`risk_state_from_log` found.

    Attributes
    ----------
    killed : str or None
        The kill switch's reason when it was engaged and never reset.
    day, day_start_equity, last_equity
        The daily-loss baseline at the last mark (``day`` ``None``: no mark yet).
    orders : list of (datetime, str)
        When each distinct order was first accepted, and its key (client order id, else
        order id), in log order.
    open_orders : dict
        ``order_id -> submitted record`` of the orders the log still has open.
    filled : dict
        ``order_id -> quantity filled`` over the log.
    fill_ids : set of str
        Every fill id in the log.
    """

    killed: str | None = None
    day: date | None = None
    day_start_equity: float = 0.0
    last_equity: float | None = None
    orders: list[tuple[datetime, str]] = field(default_factory=list)
    open_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    filled: dict[str, float] = field(default_factory=dict)
    fill_ids: set[str] = field(default_factory=set)


def _bad(rec: Mapping[str, Any], what: str) -> TradeLogError:
    where = f" (record seq {rec.get('seq')!r})" if "seq" in rec else ""
    return TradeLogError(f"trade log {rec.get('event')!r} record{where}: {what}")


def _time(rec: Mapping[str, Any], key: str) -> datetime:
    value = rec.get(key)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _bad(rec, f"{key} {value!r} is not an ISO time") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _bad(rec, f"{key} must be a tz-aware time, got {value!r}")
    return value.astimezone(timezone.utc)


def _number(rec: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = rec.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(float(value)):
        raise _bad(rec, f"{key} must be a finite number, got {value!r}")
    return float(value)


def _mark(state: LoggedRiskState, rec: Mapping[str, Any]) -> None:
    day = rec.get("day")
    if day is None:
        state.day, state.day_start_equity, state.last_equity = None, 0.0, None
        return
    try:
        state.day = date.fromisoformat(str(day))
    except ValueError:
        raise _bad(rec, f"day {day!r} is not an ISO date") from None
    start = _number(rec, "day_start_equity")
    assert start is not None
    state.day_start_equity = start
    state.last_equity = _number(rec, "last_equity", optional=True)


def _checked(rec: Mapping[str, Any], fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)``, a ``ValueError`` (a bad field of ``rec``) as ``TradeLogError``."""
    try:
        return fn(*args)
    except ValueError as exc:
        raise _bad(rec, str(exc)) from None


def risk_state_from_log(records: Iterable[Mapping[str, Any]]) -> LoggedRiskState:
    """Read the risk state out of trade log records (as :func:`read_trade_log` returns).

    Raises :class:`~simbroker.errors.TradeLogError` for a risk record that does not hold
    what it must.
    """
    state = LoggedRiskState()
    seen: set[str] = set()
    for rec in records:
        event = rec.get("event")
        if event == "risk_mark":
            _mark(state, rec)
        elif event == "kill":
            state.killed = str(rec.get("reason") or "kill switch engaged")
        elif event == "kill_reset":
            state.killed = None
            state.day, state.day_start_equity, state.last_equity = None, 0.0, None
        elif event == "submitted":
            oid = rec.get("order_id")
            key = rec.get("client_order_id") or oid
            if key is not None and str(key) not in seen:
                seen.add(str(key))
                state.orders.append((_time(rec, "ts"), str(key)))
            if oid is not None:
                state.open_orders[str(oid)] = dict(rec)
                for leg in _checked(rec, legs_of, rec):  # a group's legs, held or live
                    state.open_orders[leg["order_id"]] = leg
        elif event in ("activated", "replaced", "trailed"):
            _checked(rec, apply_order_change, state.open_orders, rec, str(event))
        elif event in _CLOSING and rec.get("order_id") is not None:
            state.open_orders.pop(str(rec["order_id"]), None)
        elif event == "filled":
            fid, oid = rec.get("fill_id"), rec.get("order_id")
            if fid is not None:
                if str(fid) in state.fill_ids:
                    continue
                state.fill_ids.add(str(fid))
            if oid is None:
                continue
            qty = _number(rec, "qty")
            assert qty is not None
            done = state.filled.get(str(oid), 0.0) + qty
            state.filled[str(oid)] = done
            open_rec = state.open_orders.get(str(oid))
            if open_rec is not None:
                ordered = _number(open_rec, "qty")
                assert ordered is not None
                if done >= ordered * (1 - 1e-12):
                    del state.open_orders[str(oid)]
    return state
