"""The shadow paper broker: what the paper broker would have done with the live orders.

The live bars arrive one at a time, while a :class:`~simbroker.PaperBroker` replays a
panel it holds from the start. So the shadow keeps the account (cash, positions, open
orders) itself and, on each bar, lets a paper broker over just the previous and the
current bar match the open orders against the current one: the paper broker's own rules,
slippage and fee models decide every fill, exactly as in a backtest. It keeps what the
window broker cannot know across windows: the day an order first could trade (``day``
orders are held as ``gtc`` in the window and expired here when a later trading day's bar
arrives, which is the paper broker's rule) and the bar on which a stop-limit's stop was
hit.

It writes its own trade log, a normal paper log (``start``, ``submitted``,
``rejected``, ``canceled``, ``expired``, ``triggered``, ``filled``) that
:func:`simbroker.drift` and :func:`simbroker.replay_trade_log` read like any other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from simbroker.bars import Bars
from simbroker.errors import OrderRejected
from simbroker.feeds import BarEvent
from simbroker.models.fees import FeeModel, fee_model
from simbroker.models.slippage import SlippageModel, slippage_model
from simbroker.paper import PaperBroker
from simbroker.tradelog import TradeLog, cash_after_fill, position_after_fill
from simbroker.tradelog._replay import replay_records
from simbroker.types import Fill, Order, OrderType, Side, TimeInForce

__all__ = ["ShadowBroker", "ShadowOrder"]


@dataclass
class ShadowOrder:
    """One mirrored order and what the shadow made of it."""

    order_id: str
    order: Order
    live_order_id: str | None
    submitted_at: datetime
    status: str = "open"
    filled_qty: float = 0.0
    filled_notional: float = 0.0
    first_day: date | None = None
    triggered_at: datetime | None = None
    fills: list[Fill] = field(default_factory=list)

    @property
    def avg_price(self) -> float:
        """Volume-weighted fill price (NaN before a fill)."""
        return self.filled_notional / self.filled_qty if self.filled_qty else math.nan


class ShadowBroker:
    """A paper account that receives the live orders and fills them on the live bars.

    Parameters
    ----------
    symbols
        The symbols the feed's bars cover (in the feed's order).
    interval
        The feed's bar length.
    cash, positions
        The starting account (the live broker's, at the start of the run).
    slippage, fees, allow_short, session_tz
        As for :class:`~simbroker.PaperBroker`.
    trade_log
        The shadow's own :class:`~simbroker.tradelog.TradeLog` (``None``: none).
    """

    def __init__(self, symbols: tuple[str, ...], interval: Any, *, cash: float,
                 positions: Mapping[str, float] | None = None,
                 slippage: float | SlippageModel | None = 5.0,
                 fees: float | str | FeeModel | None = 1.0, allow_short: bool = True,
                 session_tz: str = "UTC", trade_log: TradeLog | None = None,
                 now: datetime | None = None):
        self.symbols = tuple(symbols)
        self.interval = pd.Timedelta(interval)
        self.slippage = slippage_model(slippage)
        self.fees = fee_model(fees)
        self.allow_short = bool(allow_short)
        self.session_tz = session_tz
        self._cash = float(cash)
        self._pos = {s: float(q) for s, q in (positions or {}).items() if q}
        self._log = trade_log
        self._orders: dict[str, ShadowOrder] = {}
        self._live: dict[str, ShadowOrder] = {}  # the open ones, in submission order
        self._by_client: dict[str, str] = {}
        self._by_live: dict[str, str] = {}
        self._n = 0
        self._prev: BarEvent | None = None
        self._now = now
        if self._log is not None and now is not None:
            self._log.write("start", now, cash=self._cash, positions=dict(self._pos),
                            broker="paper (shadow)", slippage=repr(self.slippage),
                            fees=repr(self.fees))

    # ------------------------------------------------------------------ mirroring
    def submit(self, symbol: str, side: str, qty: float, order_type: str, *,
               limit_price: float | None, stop_price: float | None, tif: str,
               client_order_id: str, live_order_id: str | None, now: datetime
               ) -> ShadowOrder | None:
        """Take a mirrored order; ``None`` when the paper rules refuse it (logged).

        A client order id the shadow already holds returns that order (a resubmission).
        """
        if client_order_id in self._by_client:
            known = self._by_client[client_order_id]
            return self._orders.get(known)  # a resubmission (or one seen before a restart)
        try:
            order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                                 stop_price=stop_price, tif=tif,
                                 client_order_id=client_order_id)
            if order.symbol not in self.symbols:
                raise OrderRejected(f"unknown symbol {order.symbol!r}: not in the feed")
            if not self.allow_short and order.side is Side.SELL:
                open_sells = sum(o.order.qty - o.filled_qty for o in self._open()
                                 if o.order.symbol == order.symbol
                                 and o.order.side is Side.SELL)
                available = self._pos.get(order.symbol, 0.0) - open_sells
                if order.qty > available * (1 + 1e-12) + 1e-12:
                    raise OrderRejected(f"shorting is not allowed: selling {order.qty:g} "
                                        f"{order.symbol} against a position of "
                                        f"{available:g}")
        except OrderRejected as exc:
            if self._log is not None:
                self._log.write("rejected", now, order_id=None,
                                client_order_id=client_order_id, symbol=str(symbol),
                                side=str(side), qty=qty if isinstance(qty, (int, float))
                                else None, order_type=str(order_type), reason=str(exc))
            return None
        self._n += 1
        oid = f"SH{self._n}"
        if self._log is not None:
            self._log.write("submitted", now, order_id=oid, client_order_id=client_order_id,
                            symbol=order.symbol, side=order.side.value, qty=order.qty,
                            order_type=order.order_type.value, limit_price=order.limit_price,
                            stop_price=order.stop_price, tif=order.tif.value,
                            live_order_id=live_order_id)
        state = ShadowOrder(oid, order, live_order_id, now)
        self._orders[oid] = state
        self._live[oid] = state
        self._by_client[client_order_id] = oid
        if live_order_id is not None:
            self._by_live[live_order_id] = oid
        return state

    def cancel(self, live_order_id: str, now: datetime) -> None:
        """Cancel the shadow of the live order ``live_order_id`` (if still open)."""
        oid = self._by_live.get(live_order_id)
        if oid is None:
            return
        state = self._orders[oid]
        if state.status == "open":
            self._finish(state, "canceled", "canceled by the strategy", now)

    def restore(self, records: list[dict[str, Any]], now: datetime) -> None:
        """Resume from the shadow's own log: its cash, positions and open orders (with
        their remaining quantity and the same ids) and every client order id it saw, so
        the orders a resumed strategy sends again are not placed twice. Writes the new
        session's ``start`` record, listing the orders carried over."""
        state = replay_records(records)
        self._cash = state.cash
        self._pos = dict(state.positions)
        for rec in records:
            cid = rec.get("client_order_id")
            if rec.get("event") in ("submitted", "rejected") and isinstance(cid, str):
                self._by_client.setdefault(cid, "")
            oid = rec.get("order_id")
            if rec.get("event") == "submitted" and isinstance(oid, str) \
                    and oid.startswith("SH") and oid[2:].isdigit():
                self._n = max(self._n, int(oid[2:]))
        carried = []
        for oid, rec in state.open_orders.items():
            remaining = float(rec["qty"]) - state.filled_qty.get(oid, 0.0)
            cid = rec.get("client_order_id")
            if remaining <= 0 or not isinstance(cid, str):
                continue
            order = Order.create(rec["symbol"], rec["side"], remaining,
                                 rec.get("order_type", "market"),
                                 limit_price=rec.get("limit_price"),
                                 stop_price=rec.get("stop_price"), tif=rec.get("tif", "day"),
                                 client_order_id=cid)
            ts = rec.get("ts")
            when: datetime = ts if isinstance(ts, datetime) else now
            shadow = ShadowOrder(oid, order, rec.get("live_order_id"), when)
            trig = rec.get("triggered_at")
            shadow.triggered_at = trig if isinstance(trig, datetime) else None
            shadow.first_day = pd.Timestamp(when).tz_convert(self.session_tz).date()
            self._orders[oid] = self._live[oid] = shadow
            self._by_client[cid] = oid
            if shadow.live_order_id is not None:
                self._by_live[str(shadow.live_order_id)] = oid
            carried.append({"order_id": oid, "client_order_id": cid, "symbol": order.symbol,
                            "side": order.side.value, "qty": remaining,
                            "order_type": order.order_type.value,
                            "limit_price": order.limit_price, "stop_price": order.stop_price,
                            "tif": order.tif.value, "live_order_id": shadow.live_order_id,
                            **({} if shadow.triggered_at is None
                               else {"triggered_at": shadow.triggered_at})})
        if self._log is not None:
            self._log.write("start", now, cash=self._cash, positions=dict(self._pos),
                            broker="paper (shadow)", slippage=repr(self.slippage),
                            fees=repr(self.fees), resumed=True, open_orders=carried)

    # ------------------------------------------------------------------ bars
    def on_bar(self, ev: BarEvent) -> list[Fill]:
        """Match the open orders against the bar ``ev`` (just closed); return new fills."""
        if tuple(ev.symbols) != self.symbols:
            raise ValueError("the bar's symbols differ from the shadow's")
        if not self._live:
            self._prev, self._now = ev, ev.close_time
            return []
        day = pd.Timestamp(ev.timestamp).tz_convert(self.session_tz).date()
        for state in self._open():
            if state.order.tif is TimeInForce.DAY:
                if state.first_day is None:
                    state.first_day = day
                elif day > state.first_day:
                    self._finish(state, "expired", "day order not filled by the session end",
                                 ev.timestamp)
        live = self._open()
        self._now = ev.close_time
        if not live:
            self._prev = ev
            return []
        paper = self._window(ev, live)
        paper.step()
        by_client = {s.order.client_order_id: s for s in live}
        # In the paper broker's booking order, so cash is its arithmetic, bit for bit.
        fills = [self._book(by_client[f["client_order_id"]], f) for f in paper.get_fills()]
        infos = {o["client_order_id"]: o for o in paper.get_orders()}
        filled_now = {f["client_order_id"] for f in fills}
        for state in live:
            info = infos.get(state.order.client_order_id)
            if state.order.client_order_id in filled_now:
                continue
            if info is not None and info["status"] == "rejected":
                self._finish(state, "rejected", info["reason"], ev.timestamp)
            elif state.order.order_type is OrderType.STOP_LIMIT and state.triggered_at is None \
                    and self._stop_hit(state, ev):
                if self._log is not None:
                    self._log.write("triggered", ev.timestamp, order_id=state.order_id,
                                    symbol=state.order.symbol, bar=ev.timestamp)
                state.triggered_at = ev.timestamp
        self._prev = ev
        return fills

    def _window(self, ev: BarEvent, live: list[ShadowOrder]) -> PaperBroker:
        """A paper broker over the previous and the current bar, at the previous close."""
        events = [self._prev, ev] if self._prev is not None \
            and self._prev.timestamp < ev.timestamp else [ev]
        bars = Bars.from_arrays(
            [e.timestamp for e in events], self.symbols,
            **cast("dict[str, Any]", {f: np.vstack([getattr(e, f) for e in events]) for f in
                                      ("open", "high", "low", "close", "volume")}),
            interval=self.interval)
        carried = [{"symbol": s.order.symbol, "side": s.order.side.value,
                    "qty": s.order.qty - s.filled_qty, "order_type": s.order.order_type.value,
                    "limit_price": s.order.limit_price, "stop_price": s.order.stop_price,
                    "tif": "gtc", "client_order_id": s.order.client_order_id,
                    "triggered_at": s.triggered_at if len(events) == 2 else None}
                   for s in live]
        return PaperBroker(bars, cash=self._cash, positions=self._pos,
                           slippage=self.slippage, fees=self.fees,
                           allow_short=self.allow_short, session_tz=self.session_tz,
                           start_at=events[0].close_time if len(events) == 2 else None,
                           open_orders=carried, order_id_prefix="W")

    def _stop_hit(self, state: ShadowOrder, ev: BarEvent) -> bool:
        j = self.symbols.index(state.order.symbol)
        stop = state.order.stop_price
        if stop is None or not ev.volume[j] > 0:
            return False
        if state.order.side is Side.BUY:
            return bool(ev.high[j] >= stop)
        return bool(ev.low[j] <= stop)

    def _book(self, state: ShadowOrder, f: Fill) -> Fill:
        """Record a window fill under the shadow's own ids, then book it."""
        fill = Fill(fill_id=f"{state.order_id}-{len(state.fills) + 1}", order_id=state.order_id,
                    client_order_id=state.order.client_order_id, timestamp=f["timestamp"],
                    symbol=f["symbol"], side=f["side"], qty=f["qty"], price=f["price"],
                    fee=f["fee"], notional=f["notional"])
        if self._log is not None:
            self._log.write("filled", f["timestamp"], **fill)
        self._cash = cash_after_fill(self._cash, fill["side"], fill["notional"], fill["fee"])
        pos = position_after_fill(self._pos.get(fill["symbol"], 0.0), fill["side"], fill["qty"])
        if pos:
            self._pos[fill["symbol"]] = pos
        else:
            self._pos.pop(fill["symbol"], None)
        state.fills.append(fill)
        state.filled_qty += fill["qty"]
        state.filled_notional += fill["notional"]
        if state.filled_qty >= state.order.qty * (1 - 1e-12):
            state.status = "filled"
            self._live.pop(state.order_id, None)
        return fill

    def _finish(self, state: ShadowOrder, status: str, reason: str | None,
                now: datetime) -> None:
        if self._log is not None:
            self._log.write(status, now, order_id=state.order_id, symbol=state.order.symbol,
                            reason=reason)
        state.status = status
        self._live.pop(state.order_id, None)

    def _open(self) -> list[ShadowOrder]:
        return list(self._live.values())

    # ------------------------------------------------------------------ reading
    def order_for(self, client_order_id: str) -> ShadowOrder | None:
        """The shadow of the order with ``client_order_id``, if it holds one."""
        oid = self._by_client.get(client_order_id)
        return None if oid is None else self._orders[oid]

    @property
    def orders(self) -> list[ShadowOrder]:
        """Every mirrored order, in submission order."""
        return list(self._orders.values())

    def get_cash(self) -> float:
        """The shadow account's cash."""
        return self._cash

    def get_positions(self) -> dict[str, float]:
        """The shadow account's positions."""
        return dict(self._pos)

    def __repr__(self) -> str:
        return (f"ShadowBroker({len(self.symbols)} symbols, {len(self._orders)} orders, "
                f"cash={self._cash:,.2f}, slippage={self.slippage!r}, fees={self.fees!r})")
