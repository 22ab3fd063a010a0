"""The shadow paper broker: what the paper broker would have done with the live orders.

The live bars arrive one at a time, while a :class:`~simbroker.PaperBroker` replays a
panel it holds from the start. So the shadow keeps the account (cash, positions, open
orders) itself and, on each bar, lets a paper broker over just the previous and the
current bar match the open orders against the current one: the paper broker's own rules,
slippage and fee models decide every fill, exactly as in a backtest. It keeps what the
window broker cannot know across windows: the day an order first could trade (``day``
orders are held as ``gtc`` in the window and expired here when a later trading day's bar
arrives, which is the paper broker's rule), the bar on which a stop-limit's stop was
hit, and, with ``account=``, the account model's state (:mod:`simbroker.shadow._account`).

**When an order is weighed.** A mirrored order is decided when the next bar arrives, by
that bar's window broker, at the previous bar's close: the orders and cancels mirrored
since are replayed into it in the order they came, so each is weighed (shorting, venue
and account rules) against the book, cash, marks and account state a paper broker
running the whole panel holds at that moment, and against the day the next bar falls on
(the PDT rule and a flagged account's intraday buying power need it; no bar before it
tells). Until then the order is ``pending``.

It writes its own trade log, a normal paper log (``start``, ``account``, ``submitted``,
``rejected``, ``canceled``, ``expired``, ``triggered``, ``filled``, ``margin_call``,
``good_faith_violation``) that :func:`simbroker.drift` and
:func:`simbroker.replay_trade_log` read like any other, plus two records of its own: a
``mirrored`` record the moment an order or cancel arrives (so a restart loses none that
were not yet weighed) and, with an account, a ``stepped`` record after each bar with the
account's state (:meth:`ShadowBroker.restore` starts from the latest).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from simbroker.accounts import Account
from simbroker.bars import Bars
from simbroker.errors import OrderRejected, TradeLogError
from simbroker.feeds import BarEvent
from simbroker.models.fees import FeeModel, fee_model
from simbroker.models.slippage import SlippageModel, slippage_model
from simbroker.paper import PaperBroker
from simbroker.shadow._account import AccountCarry, Records, marks_in, marks_out
from simbroker.shadow._restore import Resumed, resume_point
from simbroker.tradelog import TradeLog, cash_after_fill, position_after_fill
from simbroker.tradelog._learn import learn_logged_fills
from simbroker.types import Fill, Order, OrderType, Side, TimeInForce

__all__ = ["ShadowBroker", "ShadowOrder"]

_ACCOUNT_EVENTS = ("margin_call", "good_faith_violation")


@dataclass
class ShadowOrder:
    """One mirrored order and what the shadow made of it.

    ``status`` is ``"pending"`` until the next bar's window weighs it, then ``"open"``,
    ``"filled"``, ``"canceled"``, ``"expired"`` or ``"rejected"``; a refusal at
    submission keeps its exception in ``refusal`` and the refusing rule in ``rule``.
    """

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
    refusal: OrderRejected | None = None
    rule: str | None = None

    @property
    def avg_price(self) -> float:
        """Volume-weighted fill price (NaN before a fill)."""
        return self.filled_notional / self.filled_qty if self.filled_qty else math.nan

    @property
    def number(self) -> int:
        """The counter in the order id (``SH7`` -> 7): the paper broker's book order."""
        return int(self.order_id[2:])


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
    slippage, fees, allow_short, session_tz, venue
        As for :class:`~simbroker.PaperBroker`.
    account
        As for :class:`~simbroker.PaperBroker` (``None``: unconstrained; ``"cash"``,
        ``"margin"``, a mapping, or an unbound :class:`~simbroker.accounts.Account`,
        which the shadow copies and never binds). The shadow then refuses what a paper
        broker over the whole run with that account refuses (the same exception in
        :attr:`ShadowOrder.refusal`, the same ``rejected`` record), settles, counts day
        trades, calls and liquidates as it does.
    trade_log
        The shadow's own :class:`~simbroker.tradelog.TradeLog` (``None``: none).
    """

    def __init__(self, symbols: tuple[str, ...], interval: Any, *, cash: float,
                 positions: Mapping[str, float] | None = None,
                 slippage: float | SlippageModel | None = 5.0,
                 fees: float | str | FeeModel | None = 1.0, allow_short: bool = True,
                 session_tz: str = "UTC", trade_log: TradeLog | None = None,
                 now: datetime | None = None, venue: str | None = None,
                 account: str | Mapping[str, Any] | Account | None = None):
        self.symbols = tuple(symbols)
        self.interval = pd.Timedelta(interval)
        self.slippage = slippage_model(slippage)
        self.fees = fee_model(fees)
        self.allow_short = bool(allow_short)
        self.session_tz = session_tz
        self.venue = venue
        self._carry = None if account is None or account == "unconstrained" \
            else AccountCarry(account)
        self._cash = float(cash)
        self._pos = {s: float(q) for s, q in (positions or {}).items() if q}
        self._log = trade_log
        self._orders: dict[str, ShadowOrder] = {}
        self._live: dict[str, ShadowOrder] = {}  # the open ones, in submission order
        self._queue: list[tuple[str, ShadowOrder, datetime]] = []  # mirrored, not weighed
        self._leaving: list[ShadowOrder] = []  # canceled, in the book until the queue says
        self._by_client: dict[str, str] = {}
        self._by_live: dict[str, str] = {}
        self._n = 0
        self._t = -1  # bars seen (the index a paper broker over the run gives the last)
        self._marks = np.full(len(self.symbols), np.nan)
        self._prev: BarEvent | None = None
        self._now = now
        if self._log is not None and now is not None:
            self._log.write("start", now, cash=self._cash, positions=dict(self._pos),
                            broker="paper (shadow)", slippage=repr(self.slippage),
                            fees=repr(self.fees))
            self._write_account(now)

    @property
    def account(self) -> str | None:
        """The account model's name (``None``: unconstrained)."""
        return None if self._carry is None else self._carry.model.account_type

    def _write_account(self, now: datetime) -> None:
        if self._log is not None and self._carry is not None:
            spec = self._carry.spec()
            self._log.write("account", now, model=spec.pop("model"), params=spec,
                            state=self._carry.state)

    # ------------------------------------------------------------------ mirroring
    def submit(self, symbol: str, side: str, qty: float, order_type: str, *,
               limit_price: float | None, stop_price: float | None, tif: str,
               client_order_id: str, live_order_id: str | None, now: datetime
               ) -> ShadowOrder | None:
        """Take a mirrored order: ``pending`` until the next bar's window weighs it
        (see the module docstring); ``None`` when it is not a valid order (logged).

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
        except OrderRejected as exc:
            if self._log is not None:
                self._log.write("rejected", now, order_id=None,
                                client_order_id=client_order_id, symbol=str(symbol),
                                side=str(side), qty=qty if isinstance(qty, (int, float))
                                else None, order_type=str(order_type), reason=str(exc))
            return None
        self._n += 1
        state = ShadowOrder(f"SH{self._n}", order, live_order_id, now, status="pending")
        if self._log is not None:
            self._log.write("mirrored", now, action="submit", **self._fields(state))
        self._adopt(state)
        self._queue.append(("submit", state, now))
        return state

    def _fields(self, state: ShadowOrder) -> dict[str, Any]:
        order = state.order
        return {"order_id": state.order_id, "client_order_id": order.client_order_id,
                "symbol": order.symbol, "side": order.side.value, "qty": order.qty,
                "order_type": order.order_type.value, "limit_price": order.limit_price,
                "stop_price": order.stop_price, "tif": order.tif.value,
                "live_order_id": state.live_order_id}

    def _adopt(self, state: ShadowOrder) -> None:
        self._orders[state.order_id] = state
        cid = state.order.client_order_id
        if cid is not None:
            self._by_client[cid] = state.order_id
        if state.live_order_id is not None:
            self._by_live[state.live_order_id] = state.order_id

    def cancel(self, live_order_id: str, now: datetime) -> None:
        """Cancel the shadow of the live order ``live_order_id`` (if still open).

        An open order is canceled at once; while mirrored orders wait to be weighed it
        stays in the next window's book until their turn has passed (they were sent
        while it was open). A ``pending`` order is canceled in its turn, if accepted.
        """
        oid = self._by_live.get(live_order_id)
        if oid is None:
            return
        state = self._orders[oid]
        if state.status == "pending":
            if self._log is not None:
                self._log.write("mirrored", now, action="cancel", order_id=oid,
                                live_order_id=live_order_id)
            self._queue.append(("cancel", state, now))
        elif state.status == "open":
            if self._queue and self._log is not None:  # a restart must keep it leaving
                self._log.write("mirrored", now, action="cancel", order_id=oid,
                                live_order_id=live_order_id)
            self._finish(state, "canceled", "canceled by the strategy", now)
            if self._queue:
                self._leaving.append(state)
                self._queue.append(("cancel", state, now))

    def restore(self, records: list[dict[str, Any]], now: datetime) -> None:
        """Resume from the shadow's own log: its cash, positions and open orders (with
        their remaining quantity and the same ids), every client order id it saw (so
        the orders a resumed strategy sends again are not placed twice), the orders and
        cancels mirrored but not yet weighed, and the account: the one the log names
        (a different ``account=`` raises :class:`~simbroker.errors.TradeLogError`), its
        state after the last bar the shadow closed, and the fills logged after it.
        Writes the new session's ``start`` record, listing the orders carried over."""
        point = resume_point(records, self.session_tz)
        self._cash, self._pos = point.cash, point.positions
        self._n = point.last_number
        for cid in point.seen:
            self._by_client.setdefault(cid, "")
        for state in point.open_orders:
            self._adopt(state)
            self._live[state.order_id] = state
        for action, state, when in point.queue:
            if action == "submit":
                self._adopt(state)
            self._queue.append((action, state, when))
        self._leaving.extend(point.leaving)
        self._resume_account(point)
        # the fee model's ledgers (tiered month volume, Alpaca's daily totals) as the
        # logged run left them: its window brokers price the next fills with it
        learn_logged_fills(self.fees, [r for r in records if r.get("event") == "filled"])
        if self._log is not None:
            carried = [{**self._fields(s), "qty": s.order.qty,
                        **({} if s.triggered_at is None else {"triggered_at": s.triggered_at})}
                       for s in point.open_orders]
            self._log.write("start", now, cash=self._cash, positions=dict(self._pos),
                            broker="paper (shadow)", slippage=repr(self.slippage),
                            fees=repr(self.fees), resumed=True, open_orders=carried)
            self._write_account(now)

    def _resume_account(self, point: Resumed) -> None:
        if point.account is None:
            if self._carry is not None:
                raise TradeLogError("the shadow log keeps no account (unconstrained); "
                                    f"resuming it with {self._carry.model!r} would change "
                                    "its rules mid-run")
            return
        if self._carry is None:
            self._carry = AccountCarry(point.account)  # keep the account the log names
        elif not self._carry.same(point.account):
            raise TradeLogError(f"the shadow log keeps account {point.account!r:.200}; "
                                f"resuming it with {self._carry.model!r} would change "
                                "its rules mid-run")
        carry = self._carry
        carry.fills, carry.logged = point.fills, point.logged
        stepped = point.stepped
        if stepped is None:
            return
        try:
            carry.state = stepped.get("state")
            carry.days = [str(d) for d in stepped.get("days", [])]
            self._marks = marks_in(stepped.get("marks"), len(self.symbols))
            self._t = int(stepped["bar_index"])
            bar = stepped["bar"]
            bar = bar if isinstance(bar, datetime) else datetime.fromisoformat(str(bar))
            if bar.tzinfo is None:
                raise ValueError(f"'bar' must be a tz-aware time, got {bar!r:.60}")
        except (KeyError, TypeError, ValueError) as exc:
            raise TradeLogError(f"the shadow's last 'stepped' record: {exc}") from None
        m = self._marks  # the window before the next bar needs only its closes
        self._prev = BarEvent(bar, self.interval.to_pytimedelta(), self.symbols, m.copy(),
                              m.copy(), m.copy(), m.copy(), np.zeros(len(m)))

    # ------------------------------------------------------------------ bars
    def on_bar(self, ev: BarEvent) -> list[Fill]:
        """Weigh the orders mirrored since the last bar, then match the open ones
        against the bar ``ev`` (just closed); return the new fills."""
        if tuple(ev.symbols) != self.symbols:
            raise ValueError("the bar's symbols differ from the shadow's")
        self._t += 1
        if not self._live and not self._queue and self._carry is None:
            self._seen(ev)
            return []
        day = pd.Timestamp(ev.timestamp).tz_convert(self.session_tz).date()
        for state in self._open():
            if state.order.tif is TimeInForce.DAY:
                if state.first_day is None:
                    state.first_day = day
                elif day > state.first_day:
                    self._finish(state, "expired", "day order not filled by the session end",
                                 ev.timestamp)
        self._now = ev.close_time
        carried = sorted([*self._open(), *self._leaving], key=lambda s: s.number)
        if not carried and not self._queue and self._carry is None:
            self._seen(ev)
            return []
        acct = self._carry.account() if self._carry is not None else None
        paper, records = self._window(ev, carried, acct)
        self._weigh(paper, records, day)
        live = self._open()
        n_records = len(records.records)
        paper.step()
        by_client = {s.order.client_order_id: s for s in live}
        # In the paper broker's booking order, so cash is its arithmetic, bit for bit.
        fills = [self._book(by_client[f["client_order_id"]], f) for f in paper.get_fills()]
        infos = paper.get_orders()
        by_window = {o["order_id"]: by_client.get(o["client_order_id"]) for o in infos}
        self._account_records(records.records[n_records:], by_window)
        filled_now = {f["client_order_id"] for f in fills}
        for info in infos:
            known = by_client.get(info["client_order_id"])
            if known is None:
                if info["status"] in ("new", "partially_filled"):
                    self._adopt_window_order(info, ev)
                continue
            state = known
            if info["client_order_id"] in filled_now or state.status != "open":
                continue
            if info["status"] in ("rejected", "canceled"):
                self._finish(state, info["status"], info["reason"], ev.close_time
                             if info["status"] == "canceled" else ev.timestamp)
            elif state.order.order_type is OrderType.STOP_LIMIT and state.triggered_at is None \
                    and self._stop_hit(state, ev):
                if self._log is not None:
                    self._log.write("triggered", ev.timestamp, order_id=state.order_id,
                                    symbol=state.order.symbol, bar=ev.timestamp)
                state.triggered_at = ev.timestamp
        self._seen(ev)
        if self._carry is not None and acct is not None:
            self._carry.keep(acct, day)
            if self._log is not None:
                self._log.write("stepped", ev.close_time, bar=ev.timestamp,
                                bar_index=self._t, state=self._carry.state,
                                days=self._carry.days, marks=marks_out(self._marks))
        return fills

    def _seen(self, ev: BarEvent) -> None:
        self._prev = ev
        self._marks = np.where(np.isfinite(ev.close), ev.close, self._marks)

    def _weigh(self, paper: PaperBroker, records: Records, day: date) -> None:
        """Replay the mirrored orders and cancels into the window, in their order."""
        queue, self._queue, self._leaving = self._queue, [], []
        window_id = {o["client_order_id"]: o["order_id"] for o in paper.get_orders()}
        for action, state, when in queue:
            cid = state.order.client_order_id
            if action == "cancel":
                wid = window_id.pop(cid, None)
                if wid is not None:
                    paper.cancel_order(wid)
                if state.status == "open":
                    self._finish(state, "canceled", "canceled by the strategy", when)
                continue
            order = state.order
            try:
                info = paper.submit_order(order.symbol, order.side.value, order.qty,
                                          order.order_type.value,
                                          limit_price=order.limit_price,
                                          stop_price=order.stop_price, tif="gtc",
                                          client_order_id=cid)
            except OrderRejected as exc:
                self._refused(state, exc, records, when)
                continue
            window_id[cid] = info["order_id"]
            state.status = "open"
            if order.tif is TimeInForce.DAY:
                state.first_day = day
            self._live[state.order_id] = state
            if self._log is not None:
                self._log.write("submitted", when, **self._fields(state))

    def _refused(self, state: ShadowOrder, exc: OrderRejected, records: Records,
                 when: datetime) -> None:
        """The window refused ``state``'s order: the paper broker's ``rejected`` record."""
        state.status, state.refusal = "rejected", exc
        rec = records.records[-1] if records.records else {}
        if rec.get("event") != "rejected":  # the paper broker logs every refusal it raises
            rec = {"order_id": None, "client_order_id": state.order.client_order_id,
                   "symbol": state.order.symbol, "side": state.order.side.value,
                   "qty": state.order.qty, "order_type": state.order.order_type.value,
                   "reason": str(exc)}
        rule = rec.get("rule")
        state.rule = rule if isinstance(rule, str) else None
        if self._log is not None:
            self._log.write("rejected", when, **{k: v for k, v in rec.items()
                                                 if k not in ("ts", "event")})

    def _account_records(self, records: list[dict[str, Any]],
                         by_window: Mapping[str, ShadowOrder | None]) -> None:
        """The account's own records from the window (a margin call, a good-faith
        violation), under the shadow's order ids."""
        if self._log is None:
            return
        for rec in records:
            if rec["event"] not in _ACCOUNT_EVENTS:
                continue
            fields = {k: v for k, v in rec.items() if k not in ("ts", "event")}
            if isinstance(fields.get("canceled"), list):
                fields["canceled"] = [s.order_id for s in
                                      (by_window.get(w) for w in fields["canceled"])
                                      if s is not None]
            self._log.write(rec["event"], rec["ts"], **fields)

    def _adopt_window_order(self, info: Mapping[str, Any], ev: BarEvent) -> None:
        """An order the window's account sent itself (a liquidation): the shadow's own,
        its client id naming the run's bar as a paper broker over the run names it."""
        cid = str(info["client_order_id"])
        if cid.startswith("liquidate-"):
            cid = f"liquidate-{self._t}-{cid.split('-', 2)[2]}"
        self._n += 1
        order = Order.create(info["symbol"], info["side"], info["qty"], info["order_type"],
                             limit_price=info["limit_price"], stop_price=info["stop_price"],
                             tif=info["tif"], client_order_id=cid)
        state = ShadowOrder(f"SH{self._n}", order, None, ev.close_time)
        self._adopt(state)
        self._live[state.order_id] = state
        if self._log is not None:
            self._log.write("submitted", ev.close_time, **self._fields(state))

    def _window(self, ev: BarEvent, carried: list[ShadowOrder], acct: Account | None
                ) -> tuple[PaperBroker, Records]:
        """A paper broker over the previous and the current bar, at the previous close."""
        events = [self._prev, ev] if self._prev is not None \
            and self._prev.timestamp < ev.timestamp else [ev]
        arrays = {f: np.vstack([getattr(e, f) for e in events]) for f in
                  ("open", "high", "low", "close", "volume")}
        if acct is not None and len(events) == 2:
            # the account marks at the last close of each symbol, however long ago
            arrays["close"][0] = np.where(np.isfinite(arrays["close"][0]),
                                          arrays["close"][0], self._marks)
        bars = Bars.from_arrays([e.timestamp for e in events], self.symbols,
                                **cast("dict[str, Any]", arrays), interval=self.interval)
        entries = [{"symbol": s.order.symbol, "side": s.order.side.value,
                    "qty": s.order.qty - s.filled_qty, "order_type": s.order.order_type.value,
                    "limit_price": s.order.limit_price, "stop_price": s.order.stop_price,
                    "tif": "gtc", "client_order_id": s.order.client_order_id,
                    "triggered_at": s.triggered_at if len(events) == 2 else None}
                   for s in carried]
        records = Records()
        paper = PaperBroker(bars, cash=self._cash, positions=self._pos,
                            slippage=self.slippage, fees=self.fees,
                            allow_short=self.allow_short, session_tz=self.session_tz,
                            start_at=events[0].close_time if len(events) == 2 else None,
                            open_orders=entries, order_id_prefix="W", venue=self.venue,
                            account=acct, trade_log=records)
        return paper, records

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
        return None if not oid else self._orders[oid]

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

    @property
    def account_state(self) -> dict[str, Any] | None:
        """The account's state after the last bar (its
        :meth:`~simbroker.accounts.Account.snapshot`; ``None`` without an account or
        before the first bar)."""
        return None if self._carry is None else self._carry.state

    def __repr__(self) -> str:
        return (f"ShadowBroker({len(self.symbols)} symbols, {len(self._orders)} orders, "
                f"cash={self._cash:,.2f}, slippage={self.slippage!r}, fees={self.fees!r}"
                + ("" if self._carry is None else f", account={self._carry.model!r}") + ")")
