"""``simbroker.rehearse``: one strategy through the real adapter against a fake venue whose
market is the historical bars, then its backtest on the same bars, then the drift."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from simbroker.bars import Bars
from simbroker.drift import Drift, drift
from simbroker.engine import History, StrategyLike, _on_bar_of, backtest
from simbroker.errors import SimbrokerError
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import SlippageModel
from simbroker.rehearse._faults import Fault, parse_faults
from simbroker.rehearse._venues import Venue, venue_for
from simbroker.results import BacktestResult
from simbroker.runner import RealtimeRunner, RunReport, _stamp
from simbroker.testing._bar_market import BarFaults
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.types import OrderInfo

__all__ = ["DEFAULT_SPEED", "Rehearsal", "rehearse"]

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

DEFAULT_SPEED = 200.0
"""Bars per second a rehearsal plays at unless told (0: as fast as the venue answers)."""


@dataclass(frozen=True)
class Rehearsal:
    """What :func:`rehearse` returns.

    Attributes
    ----------
    drift : Drift
        The backtest (run ``a``) against the rehearsal (run ``b``), fill by fill.
    backtest : BacktestResult
        The plain backtest on the same bars.
    run : RunReport
        The real-time runner's report of the rehearsal.
    broker : str
        ``"ibkr"`` or ``"alpaca"``.
    faults : list of Fault
        The faults planted.
    documented : tuple of str
        The differences from a backtest the venue makes by design (not drift).
    out : Path or None
        The folder holding ``rehearsal.jsonl``, ``backtest.jsonl``, ``drift.html`` and
        the drift tables.
    seconds : float
        Wall time of the rehearsed run (the backtest and drift excluded).
    bars : int
        How many bars were played.
    fills_delivered : int
        Executions the venue sent (what the adapter had to book).
    """

    drift: Drift
    backtest: BacktestResult
    run: RunReport
    broker: str
    faults: list[Fault]
    documented: tuple[str, ...]
    out: Path | None
    seconds: float
    bars: int = 0
    fills_delivered: int = field(default=0)

    def breaches(self, *, max_drift_bps: float | None = None,
                 max_missed: int | None = None) -> list[str]:
        """Why the rehearsal fails a deploy gate (see :meth:`Drift.breaches`)."""
        return self.drift.breaches(max_drift_bps=max_drift_bps, max_missed=max_missed)


class _KeyedBroker:
    """The backtest's broker as the strategy sees it: the real-time runner's client order
    ids (``{run}-{bar}-{n}``), so drift pairs each backtest order with its rehearsal."""

    def __init__(self, broker: Any, bar_key: str, counter: list[int]):
        self._broker, self._key, self._n = broker, bar_key, counter

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market",
                     *, client_order_id: str | None = None, **kw: Any) -> OrderInfo:
        """Submit with the runner's id scheme when the strategy gives none."""
        self._n[0] += 1
        if client_order_id is None:
            client_order_id = f"backtest-{self._key}-{self._n[0]}"
        info: OrderInfo = self._broker.submit_order(symbol, side, qty, order_type,
                                                    client_order_id=client_order_id, **kw)
        return info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)


class _Keyed:
    """``strategy`` with the runner's client order ids (its indicators untouched)."""

    def __init__(self, strategy: StrategyLike):
        self._strategy = strategy
        self._on_bar = _on_bar_of(strategy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._strategy, name)

    def on_bar(self, broker: Any, history: History) -> None:
        """The strategy's own ``on_bar`` through :class:`_KeyedBroker`."""
        key = _stamp(_open_of(history))  # the bar's open, as the runner keys it
        self._on_bar(_KeyedBroker(broker, key, [0]), history)


def _open_of(history: History) -> datetime:
    ns = int(history.timestamps[-1].astype("datetime64[ns]").astype("int64"))
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _faults_by_bar(faults: Sequence[Fault]) -> dict[int, list[Fault]]:
    out: dict[int, list[Fault]] = {}
    for f in faults:
        out.setdefault(f.bar, []).append(f)
    return out


def rehearse(strategy: StrategyLike, bars: Bars, *, broker: str = "ibkr",
             speed: float | None = DEFAULT_SPEED, faults: str | Sequence[Fault] | None = None,
             cash: float = 10_000_000.0, slippage: float | SlippageModel | None = 5.0,
             fees: float | FeeModel | None = None, out: str | Path | None = None,
             strategy_factory: Callable[[], StrategyLike] | None = None,
             reference: str = "rule") -> Rehearsal:
    """Dress-rehearse ``strategy`` on ``bars`` through a real live adapter.

    1. Starts the broker's loopback fake (a free port on 127.0.0.1) with ``bars`` as its
       market: open orders fill on each bar by the paper broker's rules, ``slippage`` and
       ``fees`` (bar-market mode, :mod:`simbroker.testing._bar_market`).
    2. Connects the **real** adapter (``IBKRBroker`` over ib_async, ``AlpacaBroker`` over
       alpaca-py) and runs ``strategy`` in the :class:`~simbroker.RealtimeRunner` on the
       adapter's own bar feed, playing one bar at a time at ``speed``: the venue trades
       the bar (the orders sent at the previous close fill at this bar's prices), the
       adapter books the fills, the bar closes, the feed hands it to the runner.
    3. Runs :func:`simbroker.backtest` on the same bars, cash, slippage and fees.
    4. Compares the two with :func:`simbroker.drift` (backtest ``a``, rehearsal ``b``).

    Parameters
    ----------
    strategy
        The strategy object (as the backtest takes it). It runs in the rehearsal;
        ``strategy_factory`` (if given) makes a fresh one for the backtest, else the
        same object runs both (a strategy that keeps state across bars needs a factory).
    bars
        The bars to rehearse on (every bar is played).
    broker
        ``"ibkr"`` or ``"alpaca"``.
    speed
        Bars per second at most (the venue and adapter may be slower); ``0`` or ``None``:
        as fast as they answer. Default :data:`DEFAULT_SPEED`.
    faults
        A ``--faults`` spec (see :mod:`simbroker.rehearse._faults`) or parsed faults.
    cash
        Starting cash at the venue and in the backtest.
    slippage, fees
        The paper models of the venue's engine and of the backtest. ``fees=None``: the
        venue's schedule (IBKR: :class:`~simbroker.models.fees.PerShare`; Alpaca: none).
    out
        A folder for the logs and the drift report (``None``: a temporary one, removed).
    reference
        Drift's reference price rule (``"rule"``, ``"open"``, ``"close"``).

    Returns
    -------
    Rehearsal

    Raises
    ------
    simbroker.errors.BrokerConnectionError
        When the adapter does not book a bar's fills (or reconnect) in time.
    """
    import tempfile

    plan = parse_faults(faults) if isinstance(faults, str) or faults is None else list(faults)
    for f in plan:
        if f.bar >= len(bars):
            raise ValueError(f"fault {f}: bar {f.bar} is past the last bar ({len(bars) - 1})")
    venue = venue_for(broker)
    fee = venue.default_fees() if fees is None else fees
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="simbroker-rehearse-")
        folder = Path(tmp.name)
    else:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"out {folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    try:
        reh_log = folder / "rehearsal.jsonl"
        bt_log = folder / "backtest.jsonl"
        for p in (reh_log, bt_log):
            p.unlink(missing_ok=True)
        t0 = time.monotonic()
        report, delivered = _rehearse_run(strategy, bars, venue, plan, speed, cash,
                                          slippage, fee, reh_log)
        seconds = time.monotonic() - t0
        bt_strategy = strategy_factory() if strategy_factory is not None else strategy
        result = backtest(_Keyed(bt_strategy), bars, cash=cash, slippage=slippage, fees=fee,
                          trade_log=bt_log, progress=False)
        records = venue.venue_records(read_trade_log(reh_log))
        d = drift(bt_log, records, bars=bars, names=("backtest", f"rehearsal ({broker})"),
                  reference=reference)
        if out is not None:
            for name in ("fills", "only_a", "only_b", "refusals", "partials", "equity"):
                getattr(d, name).to_csv(folder / f"drift_{name}.csv", index=name == "equity")
            d.report(folder / "drift.html", title=f"Rehearsal drift: {broker}")
        return Rehearsal(d, result, report, broker, plan, venue.documented,
                         folder if out is not None else None, seconds, len(bars), delivered)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _rehearse_run(strategy: StrategyLike, bars: Bars, venue: Venue, plan: list[Fault],
                  speed: float | None, cash: float, slippage: float | SlippageModel | None,
                  fees: float | FeeModel | None, path: Path) -> tuple[RunReport, int]:
    by_bar = _faults_by_bar(plan)
    n = len(bars)
    with TradeLog(path) as tlog:
        venue.start(bars, cash=cash, slippage=slippage, fees=fees, trade_log=tlog)
        try:
            feed = venue.feed(bars)
            runner = RealtimeRunner(strategy, venue.broker, feed, trade_log=tlog, max_bars=n,
                                    handle_signals=False, poll_timeout=0.05,
                                    run_id="rehearsal")
            errors: list[BaseException] = []
            delivered = [0]
            done = threading.Event()

            def market() -> None:
                step = 1.0 / speed if speed else 0.0
                nxt = time.monotonic()
                try:
                    for t in range(n):
                        while runner.report.bars < t:  # the runner is done with bar t - 1
                            if done.is_set():
                                return
                            time.sleep(0.0005)
                        if step:
                            nxt += step
                            time.sleep(max(0.0, nxt - time.monotonic()))
                        here = by_bar.get(t, [])
                        for f in here:
                            if f.kind == "disconnect":
                                venue.disconnect()
                            elif f.kind == "restart":
                                venue.restart()
                        bf = BarFaults(
                            extra_slippage_bps=sum(f.value for f in here if f.kind == "slip"),
                            miss=any(f.kind == "miss" for f in here),
                            partial=next((f.value for f in here if f.kind == "partial"),
                                         None))
                        delay = max((f.value for f in here if f.kind == "delay"), default=0.0)
                        delivered[0] += venue.trade_bar(bf, delay)
                        if any(f.kind == "reject" for f in here):
                            venue.reject_next()
                        venue.release_bar()
                        feed.poll_once()
                except BaseException as exc:  # handed to the caller's thread
                    errors.append(exc)
                    runner.stop(f"market failed: {exc}")

            driver = threading.Thread(target=market, name="rehearsal-market", daemon=True)
            driver.start()
            try:
                report = runner.run()
            finally:
                done.set()
                feed.close()
                driver.join(60)
            if errors:
                exc = errors[0]
                if isinstance(exc, SimbrokerError):
                    raise exc
                raise SimbrokerError(f"the rehearsal's market failed: {exc!r}") from exc
            return report, delivered[0]
        finally:
            venue.close()
