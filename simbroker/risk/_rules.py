"""The limits themselves: each rule of :class:`~simbroker.risk.RiskLimits` checked against
one order, worst case, with the refusal it raises.

:class:`RiskRules` is the half of :class:`~simbroker.risk.RiskBroker` that decides; the
wrapper (:mod:`simbroker.risk._broker`) owns the order records these rules read (the
working orders by symbol, the rate window, the day's equity marks), the lock they run
under, and the traffic to the wrapped broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING

from simbroker.errors import RiskRejected
from simbroker.risk._exposure import SymbolExposure, worst_fill_price
from simbroker.types import Order, Side

if TYPE_CHECKING:
    from simbroker.broker import Broker
    from simbroker.risk._broker import _Working
    from simbroker.risk._limits import RiskLimits
    from simbroker.tradelog import TradeLog

__all__ = ["RiskRules"]


class RiskRules:
    """The rules, as methods of the wrapper (mixed into :class:`RiskBroker`)."""

    broker: Broker
    limits: RiskLimits
    _log: TradeLog | None
    _working: dict[str, _Working]
    _sym_keys: dict[str, set[str]]
    _recent: deque[tuple[datetime, str]]
    _in_window: dict[str, int]
    _day: date | None
    _day_start_equity: float
    _last_equity: float | None
    _killed: str | None

    if TYPE_CHECKING:  # the wrapper's, used here
        def last_price(self, symbol: str) -> float | None: ...
        def _prune(self, now: datetime) -> None: ...
        def _refresh(self) -> None: ...

    def _reject(self, rule: str, order: Order, detail: str, *, limit: float | None = None,
                value: float | None = None) -> RiskRejected:
        what = f"{order.side.value} {order.qty:g} {order.symbol}"
        return RiskRejected(rule, f"{what}: {detail}", limit=limit, value=value,
                            symbol=order.symbol)

    def _check_static(self, order: Order, qty: float) -> None:
        """The rules that do not depend on prices or time, for ``qty`` of ``order``."""
        lim = self.limits
        self._check_static_fields(order, qty)
        if lim.max_position is None and lim.allow_short:
            return
        exp = self._exposure(order.symbol, self.broker.get_positions(), priced=False)
        self._check_shares(order, exp, exp.add(order.side, qty, None), qty)

    def _check_shares(self, order: Order, before: SymbolExposure, after: SymbolExposure,
                      qty: float) -> None:
        lim = self.limits
        opens = (f"held {before.held:g}, open {order.side.value} orders "
                 f"{before.buys if order.side is Side.BUY else before.sells:g}, "
                 f"this order {qty:g}")
        if not lim.allow_short and order.side is Side.SELL and after.short < -1e-9:
            raise self._reject("allow_short", order,
                               f"the position would go short to {after.short:g} ({opens})",
                               value=after.short)
        if lim.max_position is None:
            return
        reach = after.long if order.side is Side.BUY else after.short
        worst = reach if order.side is Side.BUY else -reach
        if worst > lim.max_position:
            raise self._reject("max_position", order,
                               f"position would reach {reach:g} ({opens}) > limit "
                               f"{lim.max_position:g}", limit=lim.max_position, value=worst)

    def _exposure(self, sym: str, positions: Mapping[str, float], *,
                  priced: bool) -> SymbolExposure:
        """Position and every open order (sent, being sent, unknown) of ``sym``."""
        return self._book(positions, priced=priced, only=sym)[sym]

    def _book(self, positions: Mapping[str, float], *, priced: bool,
              only: str | None = None) -> dict[str, SymbolExposure]:
        """Every symbol's exposure in one pass over the open orders (or just ``only``'s)."""
        marks: dict[str, float | None] = {}

        def mark(sym: str) -> float | None:
            if sym not in marks:
                marks[sym] = self.last_price(sym) if priced else None
            return marks[sym]

        symbols = set(positions) | set(self._sym_keys) if only is None else {only}
        book: dict[str, SymbolExposure] = {}
        for sym in symbols:
            # [buys, sells, buy value, sell value], summed here; one object per symbol.
            acc = [0.0, 0.0, 0.0, 0.0]
            unpriced = False
            last = mark(sym)
            legs: dict[tuple[str, int], list[float]] = {}  # (group, side) -> [qty, value]
            for key in self._sym_keys.get(sym, ()):
                work = self._working[key]
                rem = work.remaining
                if rem <= 0 or work.held:  # a held child cannot fill before its parent
                    continue
                px = worst_fill_price(work.order, last) if priced else None
                unpriced = unpriced or (priced and px is None)
                side = 0 if work.order.side is Side.BUY else 1
                value = rem * px if px is not None else 0.0
                if work.group is not None:
                    # One leg of a group fills and cancels the others: count the worst.
                    worst = legs.setdefault((work.group, side), [0.0, 0.0])
                    worst[0], worst[1] = max(worst[0], rem), max(worst[1], value)
                    continue
                acc[side] += rem
                acc[side + 2] += value
            for (_, side), (rem, value) in legs.items():
                acc[side] += rem
                acc[side + 2] += value
            book[sym] = SymbolExposure(held=positions.get(sym, 0.0), buys=acc[0], sells=acc[1],
                                       buy_value=acc[2], sell_value=acc[3], mark=last,
                                       unpriced=unpriced)
        return book

    def _check(self, order: Order, *, rate: bool = True) -> None:
        lim = self.limits
        sym = order.symbol
        self._check_static_fields(order, order.qty)
        last = self.last_price(sym)
        if lim.price_collar is not None:
            tp, sl = order.take_profit, order.stop_loss
            for name, px in (("limit", order.limit_price), ("stop", order.stop_price),
                             ("take-profit limit", None if tp is None else tp.limit_price),
                             ("stop-loss stop", None if sl is None else sl.stop_price),
                             ("stop-loss limit", None if sl is None else sl.limit_price)):
                if px is None:
                    continue
                if last is None:
                    raise self._reject("price_collar", order,
                                       f"no last price for {sym} to check the {name} price")
                dev = abs(px / last - 1.0)
                if dev > lim.price_collar * (1 + 1e-12):  # 105/100 - 1 is 0.05000000000000004
                    raise self._reject(
                        "price_collar", order,
                        f"{name} price {px:g} is {dev:.2%} from the last price {last:g} "
                        f"(collar {lim.price_collar:.2%})", limit=lim.price_collar, value=dev)
        price = worst_fill_price(order, last)
        if lim.prices_orders and price is None:
            raise self._reject(
                "price_unknown", order,
                f"no price known for {sym}, and a {order.side.value} "
                f"{order.order_type.value} order can fill above its own price; notional "
                f"limits cannot be checked")
        if lim.max_order_notional is not None and price is not None:
            notional = order.qty * price
            if notional > lim.max_order_notional:
                raise self._reject("max_order_notional", order,
                                   f"notional {notional:,.2f} ({order.qty:g} x {price:g}, the "
                                   f"highest price it can fill at) > limit "
                                   f"{lim.max_order_notional:,.2f}",
                                   limit=lim.max_order_notional, value=notional)
        if lim.max_daily_loss is not None and last is None:
            raise self._reject("price_unknown", order,
                               f"no price known for {sym}; the daily loss could not mark "
                               f"the position this order opens")
        if rate:
            self._check_rate(order)
        # Orders first, positions second: a fill landing in between is then counted twice
        # (safe), never not at all.
        self._refresh()
        positions = self.broker.get_positions()
        self._check_daily_loss(order, positions)
        before = self._exposure(sym, positions, priced=True)
        after = before.add(order.side, order.qty, price)
        self._check_shares(order, before, after, order.qty)
        extends = after.long > 0 if order.side is Side.BUY else after.short < 0
        if lim.max_position_notional is not None and extends:
            value = after.long_value() if order.side is Side.BUY else after.short_value()
            if value is None:
                raise self._reject("max_position_notional", order,
                                   f"no price known for held symbol {sym}")
            value = abs(value)
            if value > lim.max_position_notional:
                raise self._reject("max_position_notional", order,
                                   f"position value would reach {value:,.2f} > limit "
                                   f"{lim.max_position_notional:,.2f}",
                                   limit=lim.max_position_notional, value=value)
        if lim.max_gross_exposure is not None and extends:
            own = after.long_value() if order.side is Side.BUY else after.short_value()
            if own is None:
                raise self._reject("max_gross_exposure", order,
                                   f"no price known for held symbol {sym}")
            gross = abs(own)
            for s, exp in sorted(self._book(positions, priced=True).items()):
                if s == sym:
                    continue
                g = exp.gross()
                if g is None:
                    raise self._reject("max_gross_exposure", order,
                                       f"no price known for held symbol {s}")
                gross += g
            if gross > lim.max_gross_exposure:
                raise self._reject("max_gross_exposure", order,
                                   f"gross exposure would reach {gross:,.2f} > limit "
                                   f"{lim.max_gross_exposure:,.2f}",
                                   limit=lim.max_gross_exposure, value=gross)

    def _check_static_fields(self, order: Order, qty: float) -> None:
        lim = self.limits
        sym = order.symbol
        if lim.allowed_symbols is not None and sym not in lim.allowed_symbols:
            raise self._reject("allowed_symbols", order, f"{sym} is not an allowed symbol")
        if sym in lim.blocked_symbols:
            raise self._reject("blocked_symbols", order, f"{sym} is blocked")
        if lim.max_order_qty is not None and qty > lim.max_order_qty:
            raise self._reject("max_order_qty", order,
                               f"qty {qty:g} > limit {lim.max_order_qty:g}",
                               limit=lim.max_order_qty, value=qty)

    def _check_rate(self, order: Order) -> None:
        cap = self.limits.max_orders_per_minute
        if cap is None:
            return
        self._prune(self.broker.now())
        if order.client_order_id is not None and order.client_order_id in self._in_window:
            return  # already counted (resent after a restart): not a new order
        if len(self._recent) >= cap:
            raise self._reject("max_orders_per_minute", order,
                               f"{len(self._recent)} orders in the last minute; limit {cap}",
                               limit=cap, value=len(self._recent) + 1)

    def _equity(self, positions: Mapping[str, float]) -> float | None:
        equity = self.broker.get_cash()
        for s, qty in positions.items():
            px = self.last_price(s)
            if px is None:
                return None
            equity += qty * px
        return equity

    def _trip(self, reason: str) -> None:
        """Engage the kill switch (in memory even if the log cannot be written)."""
        self._killed = reason
        if self._log is not None:
            self._log.write("kill", self.broker.now(), reason=reason)

    def _loss_check(self, equity: float) -> str | None:
        """Track the day's start equity; trip the kill switch on too large a loss."""
        cap = self.limits.max_daily_loss
        assert cap is not None
        today = self.broker.now().date()
        day, start = self._day, self._day_start_equity
        if day != today:
            # The day's P&L runs from the last equity marked before it (yesterday's close
            # for daily bars), so a loss realised at the first mark of a day still counts.
            day = today
            start = self._last_equity if self._last_equity is not None else equity
        if (day, start, equity) != (self._day, self._day_start_equity, self._last_equity):
            if self._log is not None:  # written before the state it describes changes
                self._log.write("risk_mark", self.broker.now(), day=day,
                                day_start_equity=start, last_equity=equity)
            self._day, self._day_start_equity, self._last_equity = day, start, equity
        loss = start - equity
        if loss <= cap:
            return None
        reason = (f"daily loss {loss:,.2f} > limit {cap:,.2f} (equity {equity:,.2f} vs "
                  f"{start:,.2f} at the day's start)")
        self._trip(reason)
        return reason

    def _check_daily_loss(self, order: Order, positions: Mapping[str, float]) -> None:
        cap = self.limits.max_daily_loss
        if cap is None:
            return
        equity = self._equity(positions)
        if equity is None:
            raise self._reject("max_daily_loss", order,
                               "a held symbol has no known price; cannot mark equity")
        reason = self._loss_check(equity)
        if reason is not None:
            raise self._reject("max_daily_loss", order, reason, limit=cap,
                               value=self._day_start_equity - equity)

