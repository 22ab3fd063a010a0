"""A shadow session: the shadow paper broker, its log, the monitor and the alerts' outlets.

The real-time runner holds one of these when ``shadow=`` is on and calls it at four
points: an order sent (or refused by the venue), an order canceled, a live fill seen,
a bar done. Everything the shadow does is kept apart from the live path: a failure in
the shadow is logged and turns the shadow off; it never stops the live run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from simbroker.feeds import BarEvent
from simbroker.shadow._broker import ShadowBroker
from simbroker.shadow._monitor import DivergenceMonitor, ShadowSettings
from simbroker.tradelog import TradeLog, read_trade_log
from simbroker.types import Fill

__all__ = ["ShadowSession", "shadow_log_path"]

log = logging.getLogger("simbroker.shadow")


def shadow_log_path(main: Path) -> Path:
    """Where the shadow's trade log goes beside ``main``: ``run.jsonl`` ->
    ``run.shadow.jsonl``."""
    return main.with_name(f"{main.stem}.shadow{main.suffix or '.jsonl'}")


class ShadowSession:
    """The shadow of one real-time run (see :mod:`simbroker.shadow`)."""

    def __init__(self, settings: ShadowSettings, *, main_log: TradeLog | None,
                 on_divergence: Callable[[dict[str, Any]], Any] | None = None):
        self.settings = settings
        self.main_log = main_log
        self.on_divergence = on_divergence
        self.monitor = DivergenceMonitor(settings)
        self.broker: ShadowBroker | None = None
        self.log: TradeLog | None = None
        self.failed: str | None = None
        self._path: Path | None = None
        if settings.trade_log is not None:
            self._path = Path(settings.trade_log)
        elif main_log is not None:
            self._path = shadow_log_path(main_log.path)

    @property
    def path(self) -> Path | None:
        """The shadow's trade log file (``None``: kept in memory only)."""
        return self._path

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Every alert raised so far."""
        return self.monitor.alerts

    def start(self, symbols: tuple[str, ...], interval: Any, *, cash: float,
              positions: dict[str, float], now: datetime) -> None:
        """Open the shadow account: from its own log when it has one (a resumed run),
        else with the live account's ``cash`` and ``positions``."""
        records: list[dict[str, Any]] | None = None
        if self._path is not None:
            if self._path.exists() and self._path.stat().st_size:
                records = read_trade_log(self._path)
            self.log = TradeLog(self._path)
        self.broker = ShadowBroker(
            symbols, interval, cash=cash, positions=positions,
            slippage=self.settings.slippage, fees=self.settings.fees,
            allow_short=self.settings.allow_short, session_tz=self.settings.session_tz,
            trade_log=self.log, now=now if records is None else None,
            venue=self.settings.venue, account=self.settings.account)
        if records is not None:
            broker = self.broker
            # e.g. a log that names another account: the shadow goes off, the run goes on
            self._guard("restore", lambda: broker.restore(records, now))

    def _guard(self, what: str, call: Callable[[], Any]) -> Any:
        if self.broker is None or self.failed is not None:
            return None
        try:
            return call()
        except Exception as exc:  # the shadow must never stop the live run
            self.failed = f"{what}: {type(exc).__name__}: {exc}"
            log.error("shadow broker failed (%s); the shadow is off for the rest of the run",
                      self.failed)
            return None

    def submitted(self, symbol: str, side: str, qty: float, order_type: str, *,
                  limit_price: float | None, stop_price: float | None, tif: str,
                  client_order_id: str, live_order_id: str | None, now: datetime) -> None:
        """Mirror an order the live broker accepted (or refused: ``live_order_id=None``)."""
        broker = self.broker
        if broker is None:
            return
        self._guard("submit", lambda: broker.submit(
            symbol, side, qty, order_type, limit_price=limit_price, stop_price=stop_price,
            tif=tif, client_order_id=client_order_id, live_order_id=live_order_id, now=now))

    def canceled(self, live_order_id: str, now: datetime) -> None:
        """Mirror a cancel the live broker confirmed."""
        broker = self.broker
        if broker is not None:
            self._guard("cancel", lambda: broker.cancel(live_order_id, now))

    def live_fill(self, fill: Fill, bar_no: int) -> None:
        """A fill the live broker reported."""
        self.monitor.live_fill(fill, bar_no)

    def bar(self, ev: BarEvent, bar_no: int, now: datetime) -> list[dict[str, Any]]:
        """Fill the shadow on ``ev``, then raise the alerts that are due (at ``now``)."""
        broker = self.broker
        if broker is None:
            return []

        def step() -> list[dict[str, Any]]:
            for f in broker.on_bar(ev):
                self.monitor.shadow_fill(f, bar_no)
            return self.monitor.check(ev, bar_no)

        alerts: list[dict[str, Any]] = self._guard("bar", step) or []
        for alert in alerts:
            self._emit(alert, now)
        return alerts

    def _emit(self, alert: dict[str, Any], now: datetime) -> None:
        log.warning("shadow divergence (%s) on %s: %s", alert["kind"],
                    alert["client_order_id"], alert["detail"])
        if self.main_log is not None:
            self.main_log.write("alert", now, source="shadow", **alert)
        if self.on_divergence is not None:
            try:
                self.on_divergence(dict(alert))
            except Exception:  # a callback's bug is logged, not allowed to stop trading
                log.exception("on_divergence callback raised for alert %s", alert["kind"])

    def close(self) -> None:
        """Close the shadow's trade log."""
        if self.log is not None:
            self.log.close()
