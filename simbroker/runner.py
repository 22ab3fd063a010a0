"""The real-time runner: the backtested strategy object, on a wall clock.

Bars arrive from a :class:`~simbroker.feeds.BarFeed`; when a bar closes the runner

1. lets a simulated broker (the :class:`~simbroker.PaperBroker`) trade that bar,
2. shows the strategy a :class:`~simbroker.History` that ends at that bar (indicators
   recomputed on the bars so far, so a causal indicator has exactly its backtest value),
3. passes the strategy's orders through the pre-trade risk checks to the broker, and
4. writes a ``bar`` record to the trade log once the strategy is done with the bar.

**Restarts never duplicate an order.** Every order the strategy sends without its own
``client_order_id`` gets a deterministic one, ``{run_id}-{bar time}-{n}``. After a
crash the runner reads the trade log, skips the bars it had finished, and replays the
unfinished one: the strategy sends the same orders with the same ids, and every broker
(paper, IBKR through ``orderRef``, Alpaca through ``client_order_id``) returns the order
it already has instead of placing a second one. A paper broker is rebuilt from the log
with :func:`paper_broker_from_log`, at the last bar it had closed (a ``stepped`` record
follows each bar the broker closed, before the strategy sees it), so a bar's fills,
expiries, day-end borrow fees and interest and margin calls are never done twice. A
tripped kill switch stays tripped across restarts.

**Shadow mode** (``shadow=True`` or a :class:`~simbroker.shadow.ShadowSettings`) runs a
paper broker beside the live one on the same bars: every order the live broker accepted
(or the venue refused) and every cancel is mirrored to it, it writes its own trade log
beside the main one, and an ``alert`` record (plus a warning and ``on_divergence``)
marks each fill where live and paper part (see :mod:`simbroker.shadow`).

**Shutdown is clean.** SIGINT/SIGTERM (or :meth:`RealtimeRunner.stop`) only set a flag
and close the feed; the runner finishes the bar in hand, writes a ``runner_stop`` record
and returns. A record is written whole or not at all (one ``write`` per line under a
lock), so even a hard kill leaves at most a torn last line, which the reader drops.

Reading the resume point and rebuilding the paper broker from the log are in
:mod:`simbroker._resume` (re-exported here).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from simbroker._resume import (
    FROM_LOG,
    ResumePoint,
    _ns,
    paper_broker_from_log,
    read_resume_point,
)
from simbroker.accounts import Account
from simbroker.bars import Bars
from simbroker.broker import Broker
from simbroker.engine import (
    History,
    StrategyLike,
    _on_bar_of,
    _prepare_indicators,
    _strategy_name,
    user_frame,
)
from simbroker.errors import (
    ClockError,
    OrderRejected,
    RiskRejected,
    SimbrokerError,
    StrategyError,
)
from simbroker.feeds import BarEvent, BarFeed, FeedClosed
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.shadow import ShadowSession, ShadowSettings
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.types import Fill, OrderInfo

__all__ = ["FROM_LOG", "RealtimeRunner", "ResumePoint", "RunReport",
           "paper_broker_from_log", "read_resume_point", "run_realtime"]

log = logging.getLogger(__name__)


def _stamp(when: datetime) -> str:
    """A compact, sortable bar key for client order ids: ``20240102T143000Z``."""
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S") + (
        f".{when.microsecond:06d}Z" if when.microsecond else "Z")


# --------------------------------------------------------------------------- the run
@dataclass
class RunReport:
    """What a real-time run did.

    Attributes
    ----------
    run_id : str
    bars : int
        Bars the strategy saw in this run.
    skipped : int
        Bars skipped because a previous run had finished them.
    orders : int
        Orders the strategy sent in this run (resubmissions of known ids included).
    fills : int
        Fills seen in this run.
    stopped_by : str
        ``"feed ended"``, ``"max_bars"``, ``"signal SIGTERM"``, ``"stop()"`` or
        ``"error: ..."``.
    resumed : bool
        Whether the run continued one recorded in the trade log.
    last_bar : datetime or None
        Open time of the last bar the strategy finished.
    alerts : list of dict
        Shadow-mode divergence alerts raised in this run (empty without a shadow).
    """

    run_id: str
    bars: int = 0
    skipped: int = 0
    orders: int = 0
    fills: int = 0
    stopped_by: str = ""
    resumed: bool = False
    last_bar: datetime | None = None
    errors: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


class _Gate:
    """The broker a strategy sees: deterministic client order ids, order logging.

    It satisfies :class:`~simbroker.Broker` and forwards everything else (``bars``,
    ``get_order``...) to the broker it wraps.
    """

    def __init__(self, broker: Broker, run_id: str, trade_log: TradeLog | None):
        self._broker = broker
        self._run_id = run_id
        self._log = trade_log
        self._bar_key = "init"
        self._n = 0
        self.orders = 0
        self._ids = threading.Lock()  # a strategy may send from several threads
        self.shadow: ShadowSession | None = None

    def _next_bar(self, when: datetime) -> None:
        with self._ids:
            self._bar_key = _stamp(when)
            self._n = 0

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market", *,
                     limit_price: float | None = None, stop_price: float | None = None,
                     tif: str = "day", client_order_id: str | None = None,
                     **kinds: Any) -> OrderInfo:
        """Send the order, with a deterministic ``client_order_id`` when none is given.

        The keyword-only order kinds (``extended_hours``, ``order_class``, legs, trails)
        are passed on to the broker as given; the shadow mirrors simple orders only.
        """
        with self._ids:
            self._n += 1
            if client_order_id is None:
                client_order_id = f"{self._run_id}-{self._bar_key}-{self._n}"
            self.orders += 1
        try:
            info = self._broker.submit_order(symbol, side, qty, order_type,
                                             limit_price=limit_price, stop_price=stop_price,
                                             tif=tif, client_order_id=client_order_id,
                                             **kinds)
        except RiskRejected:
            raise  # never reached the venue: nothing to mirror
        except OrderRejected:
            # The venue refused it: would paper have filled it?
            if self.shadow is not None and not _kinds_set(kinds):
                self.shadow.submitted(symbol, side, qty, order_type, limit_price=limit_price,
                                      stop_price=stop_price, tif=tif,
                                      client_order_id=client_order_id, live_order_id=None,
                                      now=self._broker.now())
            raise
        if self.shadow is not None and not _kinds_set(kinds):
            self.shadow.submitted(info["symbol"], info["side"], info["qty"],
                                  info["order_type"], limit_price=info["limit_price"],
                                  stop_price=info["stop_price"], tif=info["tif"],
                                  client_order_id=client_order_id,
                                  live_order_id=info["order_id"], now=self._broker.now())
        if self._log is not None:
            # The broker's normalised order ("buy", 10.0), not the strategy's spelling.
            self._log.write("submitted", self._broker.now(), order_id=info["order_id"],
                            client_order_id=client_order_id, symbol=info["symbol"],
                            side=info["side"], qty=info["qty"],
                            order_type=info["order_type"], limit_price=info["limit_price"],
                            stop_price=info["stop_price"], tif=info["tif"],
                            **_kind_fields(info, kinds))
        return info

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel through the wrapped broker."""
        info = self._broker.cancel_order(order_id)
        if self._log is not None and info["status"] == "canceled":
            self._log.write("canceled", self._broker.now(), order_id=order_id)
        if self.shadow is not None and info["status"] == "canceled":
            self.shadow.canceled(order_id, self._broker.now())
        return info

    def get_positions(self) -> dict[str, float]:
        """The wrapped broker's positions."""
        return self._broker.get_positions()

    def get_cash(self) -> float:
        """The wrapped broker's cash."""
        return self._broker.get_cash()

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """The wrapped broker's fills."""
        return self._broker.get_fills(since)

    def now(self) -> datetime:
        """The wrapped broker's time."""
        return self._broker.now()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def __repr__(self) -> str:
        return f"{self._broker!r}"


class _Panel:
    """The bars seen so far, grown in place; :meth:`bars` is a read-only view."""

    def __init__(self, symbols: tuple[str, ...], interval: timedelta,
                 warmup: Bars | None, max_history: int | None):
        self.symbols = symbols
        self.interval = np.timedelta64(interval // timedelta(microseconds=1), "us").astype(
            "timedelta64[ns]")
        self.max_history = max_history
        n = len(warmup) if warmup is not None else 0
        cap = max(64, 2 * n)
        self._ts = np.empty(cap, np.int64)
        self._f = np.full((5, cap, len(symbols)), np.nan)
        self.n = 0
        if warmup is not None and n:
            if warmup.symbols != symbols:
                cols = [warmup.symbol_index(s) if s in warmup else -1 for s in symbols]
            else:
                cols = list(range(len(symbols)))
            self._ts[:n] = warmup.ts_ns
            for k, name in enumerate(("open", "high", "low", "close", "volume")):
                src = warmup.field(name)
                for j, c in enumerate(cols):
                    if c >= 0:
                        self._f[k, :n, j] = src[:, c]
            self.n = n
            self._trim()

    @property
    def last_ns(self) -> int | None:
        return int(self._ts[self.n - 1]) if self.n else None

    def append(self, ev: BarEvent) -> None:
        if self.n == len(self._ts):
            cap = 2 * len(self._ts)
            ts = np.empty(cap, np.int64)
            ts[: self.n] = self._ts[: self.n]
            f = np.full((5, cap, len(self.symbols)), np.nan)
            f[:, : self.n] = self._f[:, : self.n]
            self._ts, self._f = ts, f
        self._ts[self.n] = _ns(ev.timestamp)
        for k, arr in enumerate((ev.open, ev.high, ev.low, ev.close, ev.volume)):
            self._f[k, self.n] = arr
        self.n += 1
        self._trim()

    def _trim(self) -> None:
        if self.max_history is not None and self.n > 2 * self.max_history:
            keep = self.max_history
            self._ts[:keep] = self._ts[self.n - keep: self.n]
            self._f[:, :keep] = self._f[:, self.n - keep: self.n]
            self.n = keep

    def bars(self) -> Bars:
        rows = slice(max(0, self.n - self.max_history) if self.max_history else 0, self.n)

        def ro(a: np.ndarray) -> np.ndarray:
            v = a[rows]
            v.setflags(write=False)  # rows already written are never written again
            return v

        return Bars(timestamps=ro(self._ts).view("datetime64[ns]"), symbols=self.symbols,
                    open=ro(self._f[0]), high=ro(self._f[1]), low=ro(self._f[2]),
                    close=ro(self._f[3]), volume=ro(self._f[4]), interval=self.interval)


def _innermost(broker: Any) -> Any:
    seen = 0
    while seen < 10:
        inner = getattr(broker, "broker", None)
        if inner is None or not isinstance(broker, RiskBroker):
            return broker
        broker, seen = inner, seen + 1
    return broker


class RealtimeRunner:
    """Run a strategy on live (or replayed) bars against any broker.

    Parameters
    ----------
    strategy
        The object that ran in the backtest: ``on_bar(broker, history)`` and optionally
        ``indicators(bars)``.
    broker
        Any :class:`~simbroker.Broker`. A :class:`~simbroker.PaperBroker` is stepped to
        each bar's close before the strategy sees the bar.
    feed
        Where bars come from (:class:`~simbroker.feeds.ReplayFeed` for historical bars).
    trade_log
        The :class:`~simbroker.tradelog.TradeLog` (or a path) the broker also writes to.
        Runner records: ``runner_start``, ``stepped`` (a paper broker closed the bar;
        with its account's state), ``bar`` (one per finished bar) and ``runner_stop``.
        When the broker keeps no log of its own, orders, cancels and fills are logged
        here too. Needed to resume.
    risk
        Pre-trade limits; orders go through a :class:`~simbroker.risk.RiskBroker` (which
        also receives each bar's closes to mark the daily-loss kill switch). Pass an
        already wrapped broker instead to keep its state.
    resume
        A :class:`ResumePoint` (see :func:`read_resume_point`), or ``True`` to read it
        from ``trade_log``. ``False`` (default) starts a new run.
    max_bars
        Stop after this many bars in this run.
    max_history
        Keep at least this many bars for the strategy's history (older ones are dropped;
        ``None`` keeps all). Indicators are recomputed each bar over what is kept, so this
        bounds the cost per bar. With all history an indicator has exactly its backtest
        value; over a shorter window, running-sum indicators (pandas ``rolling``) can
        differ in the last bits, which can flip a decision on an exact tie.
    handle_signals
        Install SIGINT/SIGTERM handlers for a clean stop (main thread only).
    poll_timeout
        Seconds between checks of the stop flag while waiting for a bar.
    shadow
        ``True`` or a :class:`~simbroker.shadow.ShadowSettings`: run a paper broker beside
        ``broker`` on the same bars, mirror each order and cancel to it, log it to its own
        trade log (beside ``trade_log``: ``NAME.shadow.jsonl``) and raise an ``alert``
        record in ``trade_log``, a warning on the ``simbroker.shadow`` logger and
        ``on_divergence`` when a live fill parts from the paper one (a fill paper would
        not have made, a missing fill, a price outside the bar or more than
        ``max_drift_bps`` from paper's). The shadow starts from the live account's cash
        and positions; it never changes what goes to the live broker, and if it fails it
        is switched off with an error logged, the live run going on.
    on_divergence
        Called with each alert (a dict: ``kind, client_order_id, symbol, side, live_qty,
        shadow_qty, live_price, shadow_price, diff_bps, bar, detail``); an exception it
        raises is logged. Call :meth:`stop` from it to stop the run on a divergence.
    """

    def __init__(self, strategy: StrategyLike, broker: Broker, feed: BarFeed, *,
                 trade_log: TradeLog | str | Path | None = None,
                 risk: RiskLimits | None = None,
                 resume: ResumePoint | bool = False,
                 max_bars: int | None = None,
                 max_history: int | None = None,
                 handle_signals: bool = True,
                 poll_timeout: float = 0.5,
                 run_id: str | None = None,
                 shadow: bool | ShadowSettings = False,
                 on_divergence: Callable[[dict[str, Any]], Any] | None = None):
        if max_bars is not None and max_bars < 0:
            raise ValueError(f"max_bars must be >= 0, got {max_bars!r}")
        if max_history is not None and max_history < 1:
            raise ValueError(f"max_history must be >= 1, got {max_history!r}")
        self._owns_log = trade_log is not None and not isinstance(trade_log, TradeLog)
        if isinstance(resume, bool):
            if resume and trade_log is None:
                raise ValueError("resume=True needs a trade_log to resume from")
            path = trade_log.path if isinstance(trade_log, TradeLog) else trade_log
            self.resume_point = read_resume_point(path) if resume and path else None
        else:
            self.resume_point = resume
        self._log: TradeLog | None
        if trade_log is None or isinstance(trade_log, TradeLog):
            self._log = trade_log
        else:
            self._log = TradeLog(trade_log)
        self.strategy = strategy
        self._on_bar = _on_bar_of(strategy)
        self.feed = feed
        self.risk_broker: RiskBroker | None = None
        if risk is not None:
            broker = RiskBroker(broker, risk, trade_log=self._log)
        if isinstance(broker, RiskBroker):
            self.risk_broker = broker
        self.broker = broker
        self._sim = _innermost(broker)
        self._drive = callable(getattr(self._sim, "run_until", None))
        own_log = getattr(self._sim, "trade_log", None)
        self._log_orders = self._log is not None and own_log is not self._log
        if self.resume_point is not None and run_id is not None \
                and run_id != self.resume_point.run_id:
            raise ValueError(f"run_id {run_id!r} differs from the resumed run "
                             f"{self.resume_point.run_id!r}")
        self.run_id = (self.resume_point.run_id if self.resume_point is not None
                       else run_id or uuid.uuid4().hex[:12])
        self.gate = _Gate(broker, self.run_id, self._log if self._log_orders else None)
        self.max_bars = max_bars
        self.max_history = max_history
        self.handle_signals = handle_signals
        self.poll_timeout = float(poll_timeout)
        self._stop = threading.Event()
        self._stop_reason = ""
        self._fills_seen: set[str] = set()
        self.report = RunReport(run_id=self.run_id, resumed=self.resume_point is not None)
        if on_divergence is not None and not shadow:
            raise ValueError("on_divergence needs shadow=True (or ShadowSettings)")
        settings = ShadowSettings() if shadow is True else shadow or None
        if settings is not None and not isinstance(settings, ShadowSettings):
            raise TypeError(f"shadow must be True, False or ShadowSettings, got "
                            f"{type(settings).__name__}")
        self.shadow = (ShadowSession(settings, main_log=self._log, on_divergence=on_divergence)
                       if settings is not None else None)
        self.gate.shadow = self.shadow
        self._bar_no = 0

    # ------------------------------------------------------------------ control
    def stop(self, reason: str = "stop()") -> None:
        """Ask the run to stop after the bar in hand. Safe from any thread or handler."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
        try:
            self.feed.close()
        except Exception:  # a feed failing to close must not block stopping
            log.exception("feed.close() failed while stopping")

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop(f"signal {signal.Signals(signum).name}")

        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)

    # ---------------------------------------------------------------------- run
    def run(self) -> RunReport:
        """Run until the feed ends, ``max_bars``, :meth:`stop` or a signal."""
        rp = self.resume_point
        feed = self.feed
        resume_ns = _ns(rp.last_bar_close) if rp is not None and rp.last_bar_close else None
        if resume_ns is not None:
            skip_to = getattr(feed, "skip_to", None)
            if callable(skip_to):
                self.report.skipped += int(skip_to(rp.last_bar_close))  # type: ignore[union-attr]
        if rp is not None and self.risk_broker is not None:
            self._restore_risk(rp)
        panel = _Panel(tuple(feed.symbols), feed.interval, feed.warmup(), self.max_history)
        if self._log is not None:
            self._log.write("runner_start", self._now(), run_id=self.run_id,
                            strategy=type(self.strategy).__name__, feed=repr(feed),
                            broker=type(self._sim).__name__, resumed=rp is not None,
                            resume_from=rp.last_bar_close if rp else None)
        n_done = rp.bars_done if rp is not None else 0
        try:
            if self.shadow is not None:
                self.shadow.start(tuple(feed.symbols), feed.interval,
                                  cash=self.broker.get_cash(),
                                  positions=self.broker.get_positions(), now=self._now())
            with self._signals():
                while not self._stop.is_set():
                    if self.max_bars is not None and self.report.bars >= self.max_bars:
                        self._stop_reason = "max_bars"
                        break
                    try:
                        ev = feed.next_bar(self.poll_timeout)
                    except FeedClosed:
                        if not self._stop.is_set():
                            self._stop_reason = "feed ended"
                        break
                    if ev is None:
                        self._poll_fills()
                        continue
                    ev_ns = _ns(ev.timestamp)
                    last = panel.last_ns
                    if (resume_ns is not None and _ns(ev.close_time) <= resume_ns) or (
                            last is not None and ev_ns <= last):
                        self.report.skipped += 1  # finished before the restart / repeated
                        continue
                    panel.append(ev)
                    self._bar(ev, panel)
                    n_done += 1
                    if self._log is not None:
                        self._log.write("bar", self._now(), run_id=self.run_id, n=n_done,
                                        bar=ev.timestamp, bar_close=ev.close_time)
                    self.report.bars += 1
                    self.report.last_bar = ev.timestamp
        except BaseException as exc:
            self._stop_reason = f"error: {type(exc).__name__}: {exc}"
            raise
        finally:
            self._poll_fills()
            if self.shadow is not None:
                self.report.alerts = list(self.shadow.alerts)
                self.shadow.close()
            self.report.stopped_by = self._stop_reason or "stop()"
            if self._log is not None:
                self._log.write("runner_stop", self._now(), run_id=self.run_id,
                                reason=self.report.stopped_by, bars=self.report.bars,
                                orders=self.report.orders)
            if self._owns_log and self._log is not None:
                self._log.close()
        return self.report

    def _account_state(self) -> dict[str, Any]:
        """``{"account": state}`` of a paper broker's account model (else nothing): the
        ``stepped`` record carries it, so a resume restores the account at this bar."""
        account = getattr(self._sim, "account", None)
        if isinstance(account, Account) and account._broker is self._sim:
            return {"account": account.snapshot()}
        return {}

    def _restore_risk(self, rp: ResumePoint) -> None:
        """Rebuild the risk wrapper's state from the log, so the restart changes no decision.

        The kill switch, the daily-loss baseline, the rate window and the open orders
        (re-placed ones included: they count toward exposure and a kill cancels them).
        """
        assert self.risk_broker is not None
        path = self._log.path if self._log is not None else None
        if path is not None and path.exists():
            self.risk_broker.restore(read_trade_log(path))
        elif rp.killed and self.risk_broker.killed is None:
            self.risk_broker.kill(rp.killed)

    def _now(self) -> datetime:
        try:
            return self.broker.now()
        except (ClockError, SimbrokerError):
            return datetime.now(timezone.utc)

    def _bar(self, ev: BarEvent, panel: _Panel) -> None:
        self._bar_no += 1
        if self._drive:
            try:
                self._sim.run_until(ev.close_time)
            except ClockError:
                log.warning("broker cannot move to %s; skipping its step", ev.close_time)
            else:
                if self._log is not None:
                    # The broker closed this bar: a resume starts it here, never twice.
                    self._log.write("stepped", self._now(), run_id=self.run_id,
                                    bar=ev.timestamp, bar_close=ev.close_time,
                                    **self._account_state())
        self._poll_fills()
        if self.risk_broker is not None:
            closes = {s: float(c) for s, c in zip(ev.symbols, ev.close, strict=True)
                      if math.isfinite(c)}
            self.risk_broker.update_prices(closes)
        if self.shadow is not None:
            self.shadow.bar(ev, self._bar_no, self._now())
        bars = panel.bars()
        n_bar = len(bars) - 1
        self.gate._next_bar(ev.timestamp)
        before = self.gate.orders
        try:
            history = History(bars, _prepare_indicators(self.strategy, bars))
            history.t = n_bar
            self._on_bar(self.gate, history)
        except OrderRejected as exc:
            # A refused order (risk rule, shorting, broker rejection) is logged by whoever
            # refused it; the run goes on, like a live desk would.
            self.report.errors.append(str(exc))
            log.warning("order refused at %s: %s", ev.timestamp.isoformat(), exc)
        except SimbrokerError:
            raise  # the broker's or the connection's own error says what failed
        except Exception as exc:
            # The strategy's own bug: say which bar, when and where, as a backtest does.
            error = StrategyError(_strategy_name(self.strategy), bar=n_bar,
                                  timestamp=ev.timestamp.isoformat(), error=exc,
                                  where=user_frame(exc))
            if self._log is not None:
                self._log.write("strategy_error", self._now(), run_id=self.run_id,
                                strategy=error.strategy, bar=ev.timestamp,
                                error=f"{type(exc).__name__}: {exc}", where=error.where)
            raise error from exc
        finally:
            self.report.orders += self.gate.orders - before

    def _poll_fills(self) -> None:
        """Count new fills; log them when the broker keeps no log of its own."""
        try:
            fills = self.broker.get_fills()
        except SimbrokerError as exc:
            log.warning("could not poll fills: %s", exc)
            return
        for f in fills:
            fid = str(f["fill_id"])
            if fid in self._fills_seen:
                continue
            self._fills_seen.add(fid)
            self.report.fills += 1
            if self.shadow is not None:
                self.shadow.live_fill(f, self._bar_no)
            if self._log_orders and self._log is not None:
                self._log.write("filled", self._now(), **f)


def run_realtime(strategy: StrategyLike, broker: Broker, feed: BarFeed,
                 **kwargs: Any) -> RunReport:
    """Build a :class:`RealtimeRunner` and run it; see its parameters."""
    return RealtimeRunner(strategy, broker, feed, **kwargs).run()


def _kinds_set(kinds: dict[str, Any]) -> bool:
    """Whether an order asks for more than a simple order (the shadow mirrors only those)."""
    return any(v not in (None, False, "simple") for v in kinds.values())


def _kind_fields(info: Any, kinds: dict[str, Any]) -> dict[str, Any]:
    """The order-kind fields of a ``submitted`` record, as replay reads a group's legs."""
    out: dict[str, Any] = {}
    if info.get("order_class", "simple") != "simple":
        out["order_class"] = info["order_class"]
        out["legs"] = list(info.get("legs") or [])
        for key in ("take_profit", "stop_loss"):
            leg = kinds.get(key)
            if leg is not None:
                pairs = leg.items() if isinstance(leg, Mapping) else leg.to_dict().items()
                out[key] = {k: float(v) for k, v in pairs if v is not None}
    for key in ("trail_amount", "trail_percent"):
        if info.get(key) is not None:
            out[key] = info[key]
    if info.get("extended_hours"):
        out["extended_hours"] = True
    return out
