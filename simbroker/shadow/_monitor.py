"""Watching the live fills against the shadow's, bar by bar: divergence alerts.

Each order is known by its ``client_order_id`` (the real-time runner gives every order
one). After each bar the monitor compares, per order, what the live broker filled with
what the shadow paper broker filled, and raises an alert (once per order and kind):

==================  ===================================================================
kind                when
==================  ===================================================================
unexpected_fill     the live broker filled (more of) an order than the paper broker did,
                    ``max_bars_late`` bars after the live fill: a fill the paper broker
                    would not have made
missing_fill        the paper broker filled (more of) an order than the live broker did,
                    ``max_bars_late`` bars after the shadow's fill
price_outside_bar   a live fill's price lies outside its bar's [low, high] by more than
                    ``bar_tolerance_bps``
price_drift         both filled, and the live price differs from the shadow's by more than
                    ``max_drift_bps`` (either way)
==================  ===================================================================
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simbroker.accounts import account_model
from simbroker.feeds import BarEvent
from simbroker.types import Fill

__all__ = ["ALERT_KINDS", "DivergenceMonitor", "ShadowSettings"]

ALERT_KINDS = ("unexpected_fill", "missing_fill", "price_outside_bar", "price_drift")


@dataclass(frozen=True)
class ShadowSettings:
    """How the shadow paper broker trades and when its divergence from live alerts.

    Parameters
    ----------
    max_drift_bps
        Alert when a live fill's price differs from the shadow's by more (default 10).
    max_bars_late
        Bars a fill in one account may wait for its counterpart in the other before
        ``unexpected_fill``/``missing_fill`` (default 1).
    bar_tolerance_bps
        How far outside its bar's range a live price may be before
        ``price_outside_bar`` (default 10: the paper broker's own slippage can move a
        price past the bar's high or low).
    slippage, fees, allow_short, session_tz, venue, account
        The shadow paper broker's models, as for :class:`~simbroker.PaperBroker`
        (``account``: ``None``, ``"cash"``, ``"margin"``, a mapping of a model's
        parameters or an unbound :class:`~simbroker.accounts.Account`; give the live
        account's kind so the shadow refuses what the venue would).
    trade_log
        The shadow's trade log path; default: beside the main one, ``NAME.shadow.jsonl``.
    """

    max_drift_bps: float = 10.0
    max_bars_late: int = 1
    bar_tolerance_bps: float = 10.0
    slippage: Any = 5.0
    fees: Any = 1.0
    allow_short: bool = True
    session_tz: str = "UTC"
    trade_log: Any = None
    venue: str | None = None
    account: Any = None

    def __post_init__(self) -> None:
        for name in ("max_drift_bps", "bar_tolerance_bps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"ShadowSettings.{name} must be a number >= 0, got "
                                 f"{value!r}")
        if self.venue not in (None, "alpaca", "ibkr"):
            raise ValueError(f"ShadowSettings.venue must be None, 'alpaca' or 'ibkr', got "
                             f"{self.venue!r}")
        account_model(self.account)  # a bad name or parameter fails here, naming it
        if not isinstance(self.max_bars_late, int) or self.max_bars_late < 0:
            raise ValueError(f"ShadowSettings.max_bars_late must be an integer >= 0, got "
                             f"{self.max_bars_late!r}")


@dataclass
class _Side:
    qty: float = 0.0
    notional: float = 0.0
    seen: int = -1  # the bar number when this account's quantity last changed
    last: Fill | None = None

    def add(self, fill: Fill, bar_no: int) -> None:
        self.qty += float(fill["qty"])
        self.notional += float(fill["notional"])
        self.seen = bar_no
        self.last = fill

    @property
    def price(self) -> float:
        return self.notional / self.qty if self.qty else math.nan


@dataclass
class _Pair:
    symbol: str
    side: str
    live: _Side = field(default_factory=_Side)
    shadow: _Side = field(default_factory=_Side)
    raised: set[str] = field(default_factory=set)


class DivergenceMonitor:
    """Compare live fills with the shadow's and produce alert dicts (see the module)."""

    def __init__(self, settings: ShadowSettings):
        self.settings = settings
        self._pairs: dict[str, _Pair] = {}
        self._active: dict[str, _Pair] = {}  # orders whose two accounts may still part
        self._bars: deque[BarEvent] = deque(maxlen=max(4, settings.max_bars_late + 3))
        self._pending: list[Fill] = []  # live fills whose bar has not arrived yet
        self.alerts: list[dict[str, Any]] = []

    def _pair(self, fill: Fill) -> _Pair | None:
        cid = fill.get("client_order_id")
        if not isinstance(cid, str):
            return None
        pair = self._pairs.get(cid)
        if pair is None:
            pair = self._pairs[cid] = _Pair(str(fill["symbol"]), str(fill["side"]))
        self._active[cid] = pair
        return pair

    def live_fill(self, fill: Fill, bar_no: int) -> None:
        """A fill the live broker reported."""
        pair = self._pair(fill)
        if pair is not None:
            pair.live.add(fill, bar_no)
        self._pending.append(fill)

    def shadow_fill(self, fill: Fill, bar_no: int) -> None:
        """A fill the shadow paper broker made."""
        pair = self._pair(fill)
        if pair is not None:
            pair.shadow.add(fill, bar_no)

    def check(self, ev: BarEvent, bar_no: int) -> list[dict[str, Any]]:
        """Alerts due once the bar ``ev`` (number ``bar_no``) is processed."""
        self._bars.append(ev)
        new: list[dict[str, Any]] = []
        new += self._check_ranges(ev)
        s = self.settings
        settled = []
        for cid, pair in self._active.items():
            live, shadow = pair.live, pair.shadow
            tol = 1e-9 * max(live.qty, shadow.qty, 1.0)
            if live.qty > shadow.qty + tol and bar_no - live.seen >= s.max_bars_late:
                new += self._raise(pair, cid, "unexpected_fill", ev, (
                    f"the live broker filled {live.qty:g} {pair.symbol} ({pair.side}) and "
                    f"the paper broker {shadow.qty:g}, {bar_no - live.seen} bar(s) on"))
            if shadow.qty > live.qty + tol and bar_no - shadow.seen >= s.max_bars_late:
                new += self._raise(pair, cid, "missing_fill", ev, (
                    f"the paper broker filled {shadow.qty:g} {pair.symbol} ({pair.side}) "
                    f"and the live broker {live.qty:g}, {bar_no - shadow.seen} bar(s) on"))
            if live.qty and shadow.qty:
                sign = 1.0 if pair.side == "buy" else -1.0
                bps = sign * (live.price - shadow.price) / shadow.price * 1e4
                if abs(bps) > s.max_drift_bps:
                    new += self._raise(pair, cid, "price_drift", ev, (
                        f"live {pair.side} {pair.symbol} at {live.price:.6g}, paper at "
                        f"{shadow.price:.6g}: {bps:+.2f} bps (cost to live) > "
                        f"{s.max_drift_bps:g}"), diff_bps=bps)
            if abs(live.qty - shadow.qty) <= tol or {"unexpected_fill", "missing_fill"} \
                    & pair.raised:
                settled.append(cid)  # checked; a later fill of the order brings it back
        for cid in settled:
            del self._active[cid]
        return new

    def _check_ranges(self, ev: BarEvent) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        keep: list[Fill] = []
        tol = self.settings.bar_tolerance_bps * 1e-4
        for fill in self._pending:
            when: datetime = fill["timestamp"]
            if when >= ev.close_time:
                keep.append(fill)  # its bar has not closed yet
                continue
            bar = next((b for b in self._bars if b.timestamp <= when < b.close_time), None)
            if bar is None or fill["symbol"] not in bar.symbols:
                continue
            j = bar.symbols.index(fill["symbol"])
            lo, hi, px = float(bar.low[j]), float(bar.high[j]), float(fill["price"])
            if math.isnan(lo) or math.isnan(hi):
                continue
            if px < lo * (1 - tol) or px > hi * (1 + tol):
                pair = self._pair(fill)
                cid = str(fill.get("client_order_id") or fill.get("fill_id"))
                out += self._raise(pair or _Pair(fill["symbol"], fill["side"]), cid,
                                   "price_outside_bar", ev, (
                                       f"live {fill['side']} {fill['symbol']} at {px:.6g} "
                                       f"outside its bar [{lo:.6g}, {hi:.6g}] of "
                                       f"{bar.timestamp.isoformat()}"), fill=fill)
        self._pending = keep
        return out

    def _raise(self, pair: _Pair, cid: str, kind: str, ev: BarEvent, detail: str, *,
               diff_bps: float | None = None, fill: Fill | None = None
               ) -> list[dict[str, Any]]:
        key = kind if fill is None else f"{kind}:{fill.get('fill_id')}"
        if key in pair.raised:
            return []
        pair.raised.add(key)
        alert: dict[str, Any] = {
            "kind": kind, "client_order_id": cid, "symbol": pair.symbol, "side": pair.side,
            "live_qty": pair.live.qty, "shadow_qty": pair.shadow.qty,
            "live_price": None if not pair.live.qty else pair.live.price,
            "shadow_price": None if not pair.shadow.qty else pair.shadow.price,
            "diff_bps": diff_bps, "bar": ev.timestamp, "detail": detail}
        if fill is not None:
            alert["fill_id"] = fill.get("fill_id")
            alert["live_price"] = float(fill["price"])
        self.alerts.append(alert)
        return [alert]
