"""Resuming a real-time run: where the last run in a trade log stopped, and the paper broker
rebuilt from the log at that point.

:func:`read_resume_point` reads a trade log into a :class:`ResumePoint`;
:func:`paper_broker_from_log` builds a :class:`~simbroker.PaperBroker` from it (cash,
positions, open orders, the account's state and financing accruals as the log recorded
them at the last bar the broker closed). :mod:`simbroker.runner` re-exports the public
names; the runner itself is there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from simbroker.accounts import Account, LoggedFill, StateError, account_model, same_spec
from simbroker.bars import Bars
from simbroker.errors import OrderRejected, TradeLogError
from simbroker.financing import BorrowModel, InterestModel
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import SlippageModel
from simbroker.paper import PaperBroker
from simbroker.tradelog import ReplayState, TradeLog, read_trade_log
from simbroker.tradelog._learn import learn_logged_fills
from simbroker.tradelog._reader import parse_time
from simbroker.tradelog._replay import order_fields, replay_records

__all__ = ["FROM_LOG", "ResumePoint", "paper_broker_from_log", "read_resume_point"]

# The runner's logger, as before this module was split out of simbroker.runner.
log = logging.getLogger("simbroker.runner")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _ns(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass(frozen=True)
class ResumePoint:
    """Where a previous run in a trade log stopped.

    Attributes
    ----------
    run_id : str
        The run's id (client order ids start with it).
    last_bar : datetime or None
        Open time of the last bar the strategy finished; ``None`` when none was.
    last_bar_close : datetime or None
        That bar's close time.
    bars_done : int
        How many bars the run had finished.
    state : ReplayState
        Cash, positions, open orders and fills rebuilt from the log.
    killed : str or None
        The kill switch's reason when it was tripped and never reset.
    clean_stop : bool
        Whether the run ended with a ``runner_stop`` record (False after a crash).
    sessions : int
        How many broker sessions (``start`` records) the log holds.
    path : Path or None
        The trade log it was read from.
    account : dict or None
        The paper account's :meth:`~simbroker.accounts.Account.spec` (``model`` and
        parameters) from the log's last ``account`` record; ``None`` when it has none (an
        unconstrained account, or a live broker).
    account_state : dict or None
        The latest account state the log holds (a ``bar`` record's ``account``, or the
        last ``account`` record's ``state``).
    account_fills : tuple of LoggedFill
        The fills logged after that state, for :meth:`~simbroker.accounts.Account.restore`.
    broker_close : datetime or None
        Close time of the last bar the paper broker closed (its ``stepped`` record):
        ``last_bar_close``, or the bar after it when the run died while the strategy had
        that bar in hand. A resumed paper broker starts there.
    account_events : tuple of (str, datetime, str or None)
        The account's own records (``margin_call``, ``good_faith_violation``: event, time
        and symbol) of the bars after ``broker_close``: a resume closes those bars
        again and must not write them twice.
    accruals : tuple of (str, datetime)
        The ``borrow_fee`` and ``interest`` records (event and time) after
        ``broker_close``: the day end a crash cut short had already charged them, and the
        resumed broker does not charge them again.
    """

    run_id: str
    last_bar: datetime | None
    last_bar_close: datetime | None
    bars_done: int
    state: ReplayState
    killed: str | None
    clean_stop: bool
    sessions: int
    path: Path | None = None
    account: dict[str, Any] | None = None
    account_state: dict[str, Any] | None = None
    account_fills: tuple[LoggedFill, ...] = ()
    account_events: tuple[tuple[str, datetime, str | None], ...] = ()
    broker_close: datetime | None = None
    accruals: tuple[tuple[str, datetime], ...] = ()


def read_resume_point(path: str | Path) -> ResumePoint | None:
    """The :class:`ResumePoint` of the last run in the trade log at ``path``.

    ``None`` when the file does not exist, is empty, or holds no runner records (a log
    written by a plain backtest cannot be resumed). A damaged log, or a runner record
    with a missing or mistyped field, raises :class:`~simbroker.errors.TradeLogError`
    naming the file and line.
    """
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        return None
    records = read_trade_log(p)
    run_id: str | None = None
    last: tuple[datetime, datetime] | None = None
    bars_done = 0
    killed: str | None = None
    clean = False
    sessions = 0
    spec: dict[str, Any] | None = None
    stepped: datetime | None = None
    acct_state: dict[str, Any] | None = None
    acct_line = 0
    events: list[tuple[int, str, datetime, str | None]] = []
    accruals: list[tuple[str, datetime]] = []
    for lineno, rec in enumerate(records, start=1):
        event = rec.get("event")
        try:
            if event == "account":
                params, model, saved = rec.get("params"), rec.get("model"), rec.get("state")
                if not isinstance(model, str) or not isinstance(params, dict) \
                        or not isinstance(saved, dict):
                    raise ValueError("'model' must be a string, 'params' and 'state' "
                                     "mappings")
                spec = {"model": model, **params}
                acct_state, acct_line = saved, lineno
            elif event == "stepped" and rec.get("run_id") == run_id:
                stepped = parse_time(rec.get("bar_close"), "bar_close")
                if isinstance(rec.get("account"), dict):
                    acct_state, acct_line = rec["account"], lineno
            elif event in ("margin_call", "good_faith_violation"):
                sym = rec.get("symbol")
                events.append((lineno, str(event), parse_time(rec.get("ts"), "ts"),
                               sym if isinstance(sym, str) else None))
            elif event in ("borrow_fee", "interest"):
                accruals.append((str(event), parse_time(rec.get("ts"), "ts")))
            if event == "runner_start":
                new_id = rec.get("run_id")
                if not isinstance(new_id, str) or not new_id:
                    raise ValueError(f"'run_id' must be a non-empty string, got {new_id!r:.40}")
                if new_id != run_id:  # another run's records are not this one's
                    events.clear()
                    accruals.clear()
                    stepped = None
                run_id = new_id
                clean = False
            elif event == "bar" and rec.get("run_id") == run_id:
                n = rec.get("n", bars_done + 1)
                if type(n) is not int or n < 0:
                    raise ValueError(f"'n' must be a bar count, got {n!r:.40}")
                last = (parse_time(rec.get("bar"), "bar"),
                        parse_time(rec.get("bar_close"), "bar_close"))
                bars_done = n
            elif event == "kill":
                killed = str(rec.get("reason", "kill switch"))[:500]
            elif event == "kill_reset":
                killed = None
            elif event == "runner_stop" and rec.get("run_id") == run_id:
                clean = True
            elif event == "start":
                sessions += 1
        except ValueError as exc:
            raise TradeLogError(f"{event!r} record: {exc}", path=str(p), line=lineno) from None
    if run_id is None:
        return None
    state = replay_records(records, path=str(p))
    fills: list[LoggedFill] = []
    for k, line in enumerate(state.fill_lines):
        if line <= acct_line:
            continue
        f = state.fills[k]
        try:
            fills.append(LoggedFill(
                timestamp=parse_time(f.get("timestamp", f.get("ts")), "timestamp"),
                symbol=str(f["symbol"]), side=str(f["side"]).lower(), qty=float(f["qty"]),
                notional=float(f["notional"]), fee=float(f["fee"]),
                position=state.fill_positions[k], cash=state.fill_cash[k]))
        except ValueError as exc:
            raise TradeLogError(f"'filled' record: {exc}", path=str(p), line=line) from None
    broker_close = max(x for x in (stepped, last and last[1]) if x) if stepped or last \
        else None
    return ResumePoint(run_id=run_id, last_bar=last[0] if last else None,
                       last_bar_close=last[1] if last else None, bars_done=bars_done,
                       state=state, killed=killed, clean_stop=clean, sessions=sessions,
                       path=p, account=spec, account_state=acct_state,
                       account_fills=tuple(fills),
                       account_events=tuple(
                           (e, w, sym) for _, e, w, sym in events
                           if broker_close is None or w > broker_close),
                       broker_close=broker_close,
                       accruals=tuple((e, w) for e, w in accruals
                                      if broker_close is not None and w > broker_close))


class _FromLog:
    """The default of ``paper_broker_from_log(account=...)``: the account the log names."""

    def __repr__(self) -> str:
        return "FROM_LOG"


FROM_LOG: Any = _FromLog()


def _resumed_account(spec: str | Mapping[str, Any] | Account | None,
                     resume: ResumePoint | None) -> Account | None:
    """The account of a (resumed) paper broker, its state restored from ``resume``."""
    logged = resume.account if resume is not None else None
    where = None if resume is None or resume.path is None else str(resume.path)
    try:
        account = account_model(logged if spec is FROM_LOG else spec)
    except ValueError as exc:
        if spec is FROM_LOG:
            raise TradeLogError(f"the log's account cannot be rebuilt: {exc}; pass "
                                f"account=", path=where) from None
        raise
    if resume is None:
        return account
    asked = None if account is None else account.spec()
    if logged is not None and (asked is None or not same_spec(asked, logged)):
        raise TradeLogError(f"the run in this log keeps the account {logged}; resuming it "
                            f"with {asked or 'no account (unconstrained)'} would change "
                            f"its rules mid-run (resume with the same account, or start a "
                            f"new trade log)", path=where)
    if account is not None:
        if logged is None:
            log.warning("the trade log names no account; the resumed %s account starts "
                        "with no day trades, unsettled cash or margin call on record",
                        account.account_type)
        account.restore(resume.account_state, resume.account_fills,
                        logged=resume.account_events)
    return account


def paper_broker_from_log(
    bars: Bars,
    resume: ResumePoint | None,
    *,
    trade_log: TradeLog | None,
    cash: float = 100_000.0,
    slippage: float | SlippageModel | None = 5.0,
    fees: float | str | FeeModel | None = 1.0,
    allow_short: bool = True,
    session_tz: str = "UTC",
    borrow: BorrowModel | None = None,
    interest: InterestModel | None = None,
    max_volume_share: float | None = None,
    account: str | Mapping[str, Any] | Account | None = FROM_LOG,
) -> PaperBroker:
    """A :class:`~simbroker.PaperBroker` for a real-time run, resumed from ``resume``.

    ``borrow`` and ``interest`` are the broker's financing models
    (:mod:`simbroker.financing`); a resumed session accrues from its first trading day end.
    ``max_volume_share`` caps fills by volume, as for the broker.

    ``account`` is the account model (``None``, ``"cash"``, ``"margin"``, a mapping of
    parameters or an :class:`~simbroker.accounts.Account`, see
    :func:`~simbroker.accounts.account_model`). By default a fresh run is unconstrained
    and a resumed one keeps the account its log names (its ``account`` record). A
    resumed account gets back the state the log holds (day trades, unsettled proceeds,
    the pattern-day-trader flag, a margin call in progress; see
    :meth:`~simbroker.accounts.Account.restore`), so it refuses, settles and calls as the
    uninterrupted run would; asking for another account than the log's raises
    :class:`~simbroker.errors.TradeLogError`.

    Without a resume point this is a fresh broker with ``cash``. With one, the broker
    starts from the log's cash and positions at the close of the last bar it closed
    (:attr:`ResumePoint.broker_close`: the last finished bar, or the one the strategy
    had in hand when the run died, if the broker had closed it), and holds again the
    orders that were open at that moment, with their remaining quantity, their original
    ``client_order_id`` and a stop-limit's trigger (orders sent after it are not: the
    strategy sends them again when that bar is replayed; those sent while it had the
    bar in hand are held, and the replay's resubmission returns them). A bar the broker
    had begun but not closed is closed again: what it had booked of that bar stays
    booked, and the orders it filled are no longer open.

    The carried-over orders are part of the session's one ``start`` record, written
    before the broker holds anything: a crash at any point of a resume leaves either the
    log as it was (the next resume does the same again) or a session that already has
    every order, never a window in which they are lost. A carried-over order the log
    describes wrongly raises :class:`~simbroker.errors.TradeLogError`.
    """
    acct = _resumed_account(account, resume)
    where = None if resume is None or resume.path is None else str(resume.path)
    try:
        return _paper_broker(bars, resume, trade_log=trade_log, cash=cash, slippage=slippage,
                             fees=fees, allow_short=allow_short, session_tz=session_tz,
                             borrow=borrow, interest=interest,
                             max_volume_share=max_volume_share, account=acct)
    except StateError as exc:
        raise TradeLogError(f"the account's state cannot be restored: {exc}",
                            path=where) from None


def _paper_broker(bars: Bars, resume: ResumePoint | None, *, trade_log: TradeLog | None,
                  cash: float, slippage: float | SlippageModel | None,
                  fees: float | str | FeeModel | None, allow_short: bool, session_tz: str,
                  borrow: BorrowModel | None, interest: InterestModel | None,
                  max_volume_share: float | None, account: Account | None) -> PaperBroker:
    if resume is None or resume.broker_close is None:
        start_cash = cash if resume is None else resume.state.cash
        start_pos = None if resume is None else resume.state.positions
        prefix = "O" if resume is None else f"S{resume.sessions + 1}-O"
        try:
            fresh = PaperBroker(bars, cash=start_cash, positions=start_pos,
                                slippage=slippage, fees=fees, allow_short=allow_short,
                                trade_log=trade_log, session_tz=session_tz,
                                order_id_prefix=prefix, borrow=borrow, interest=interest,
                                max_volume_share=max_volume_share, account=account)
            if resume is None:
                fresh.fees.reset()  # a new run: nothing counted yet
            else:
                learn_logged_fills(fresh.fees, resume.state.fills, _where(resume))
            return fresh
        except OrderRejected as exc:
            if resume is None:
                raise
            raise TradeLogError(f"the log's positions cannot be resumed: {exc}",
                                path=None if resume.path is None else str(resume.path)) \
                from None
    state = resume.state
    where = str(resume.path) if resume.path is not None else None
    cutoff = _ns(resume.broker_close)
    carried: list[dict[str, Any]] = []
    for order_id, rec in state.open_orders.items():
        try:
            if _ns(parse_time(rec.get("ts"), "ts")) > cutoff:
                continue  # sent after the broker's last closed bar: the replay resends it
            order = order_fields(rec)
            remaining = float(order["qty"]) - state.filled_qty.get(order_id, 0.0)
            if remaining <= 0:
                continue
            trig = rec.get("triggered_at")
            carried.append({
                **order, "qty": remaining,
                "client_order_id": order["client_order_id"] or f"resumed-{order_id}",
                "triggered_at": None if trig is None else parse_time(trig, "triggered_at"),
            })
        except ValueError as exc:
            raise TradeLogError(f"open order {order_id!r} cannot be resumed: {exc}",
                                path=where) from None
    try:
        broker = PaperBroker(bars, cash=state.cash, positions=state.positions,
                             slippage=slippage, fees=fees, allow_short=allow_short,
                             trade_log=trade_log, session_tz=session_tz,
                             order_id_prefix=f"S{resume.sessions + 1}-O",
                             start_at=resume.broker_close, open_orders=carried,
                             borrow=borrow, interest=interest,
                             max_volume_share=max_volume_share, account=account)
    except OrderRejected as exc:
        raise TradeLogError(f"the log's open orders cannot be resumed: {exc}",
                            path=where) from None
    if broker._financing is not None and resume.accruals:
        broker._financing.skip_logged([(e, _ns(w)) for e, w in resume.accruals],
                                      bars.close_ns)
    learn_logged_fills(broker.fees, state.fills, where)
    return broker


def _where(resume: ResumePoint) -> str | None:
    return None if resume.path is None else str(resume.path)
