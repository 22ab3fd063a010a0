"""Pre-trade risk checks: a wrapper that satisfies ``Broker`` around any broker.

Every order passes :class:`RiskLimits` before it is sent (step 1 of the order flow), so
a backtest, the paper broker in real time and a live adapter all get the same guard
rails. A refused order raises :class:`~simbroker.errors.RiskRejected` naming the rule
and the numbers, is written to the trade log as ``rejected`` with its ``rule``, and
nothing reaches the wrapped broker.

Rules (each off when its limit is ``None``):

=======================  ===========================================================
rule                     refuses an order when
=======================  ===========================================================
allowed_symbols          the symbol is not in the allowed set
blocked_symbols          the symbol is in the blocked set
max_order_qty            qty > limit
max_order_notional       qty x reference price > limit
price_collar             a limit/stop price is further than the fraction from the
                         last known price (fat finger)
allow_short              the order would take the position (plus open orders on the
                         same side) below zero
max_position             |position after the order, counting open orders| > limit
max_position_notional    that position x reference price > limit
max_gross_exposure       sum over symbols of |position x last price| after the order
                         (counting open orders) > limit
max_orders_per_minute    more than the limit orders within the last 60 s (broker time)
max_daily_loss           equity fell by more than the limit since the last mark before
                         the day (UTC) began: the kill switch engages and stays on
                         until reset (across restarts of the real-time runner too)
=======================  ===========================================================

The reference price of an order is its limit price, else its stop price, else the last
known price. Notional rules refuse an order whose price is unknown rather than guess.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from simbroker.broker import Broker
from simbroker.errors import ConfigError, RiskRejected, UnknownOrder
from simbroker.tradelog import TradeLog
from simbroker.types import Fill, Order, OrderInfo, OrderStatus

__all__ = ["RiskBroker", "RiskLimits"]

_OPEN = {OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value}


def _limit(name: str, value: Any, *, integer: bool = False) -> None:
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0 or (integer and value != int(value)):
        kind = "a positive integer" if integer else "a finite number > 0"
        raise ConfigError(f"risk limit {name} must be {kind} or null, got {value!r}", key=name)


@dataclass(frozen=True, kw_only=True)
class RiskLimits:
    """Pre-trade limits; ``None`` switches a rule off. See the module docstring.

    Parameters
    ----------
    max_order_qty, max_order_notional
        Per order: quantity, and quantity x reference price (account currency).
    max_position, max_position_notional
        Per symbol, after the order and counting open orders: |shares| and |value|.
    max_gross_exposure
        Sum of |position value| over all symbols after the order.
    allowed_symbols, blocked_symbols
        Only these symbols / never these symbols.
    price_collar
        Largest distance of a limit or stop price from the last known price, as a
        fraction (0.1 = 10 %).
    max_orders_per_minute
        Orders accepted in any 60 s window of broker time.
    max_daily_loss
        Loss (account currency) since the last equity marked before the day began (the
        first mark ever, on the first day) that trips the kill switch.
    allow_short
        False refuses orders that would open or grow a short position.
    cancel_on_kill
        Cancel the open orders this wrapper placed when the kill switch trips.
    """

    max_order_qty: float | None = None
    max_order_notional: float | None = None
    max_position: float | None = None
    max_position_notional: float | None = None
    max_gross_exposure: float | None = None
    allowed_symbols: frozenset[str] | None = None
    blocked_symbols: frozenset[str] = field(default_factory=frozenset)
    price_collar: float | None = None
    max_orders_per_minute: int | None = None
    max_daily_loss: float | None = None
    allow_short: bool = True
    cancel_on_kill: bool = True

    def __post_init__(self) -> None:
        for name in ("max_order_qty", "max_order_notional", "max_position",
                     "max_position_notional", "max_gross_exposure", "price_collar",
                     "max_daily_loss"):
            _limit(name, getattr(self, name))
        _limit("max_orders_per_minute", self.max_orders_per_minute, integer=True)
        for name in ("allowed_symbols", "blocked_symbols"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ConfigError(f"risk limit {name} must be a list of symbols, got {value!r}",
                                  key=name)
            object.__setattr__(self, name, frozenset(str(s) for s in value))
        for name in ("allow_short", "cancel_on_kill"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"risk limit {name} must be true or false, got "
                                  f"{getattr(self, name)!r}", key=name)

    @property
    def is_set(self) -> bool:
        """True when at least one sizing or loss limit is configured (live trading needs it)."""
        return any(getattr(self, n) is not None for n in (
            "max_order_qty", "max_order_notional", "max_position", "max_position_notional",
            "max_gross_exposure", "max_daily_loss"))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (symbol sets as sorted lists); :meth:`from_dict` inverts it."""
        out = asdict(self)
        for name in ("allowed_symbols", "blocked_symbols"):
            if out[name] is not None:
                out[name] = sorted(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> RiskLimits:
        """Build from a mapping (e.g. YAML); unknown keys are a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            where = f" in {source}" if source else ""
            raise ConfigError(f"unknown risk limit(s) {', '.join(map(repr, unknown))}{where}; "
                              f"known: {', '.join(sorted(known))}", key=unknown[0], path=source)
        return cls(**dict(data))


class RiskBroker:
    """A :class:`~simbroker.Broker` that runs :class:`RiskLimits` before each order.

    Parameters
    ----------
    broker
        The broker to protect; every call not refused goes to it unchanged.
    limits
        The rules.
    prices
        ``symbol -> last price or None``. By default the wrapper uses prices given to
        :meth:`update_prices` and, for a :class:`~simbroker.PaperBroker`, the close of the
        latest closed bar.
    trade_log
        Where rejections are recorded (the wrapped broker logs everything else). For a
        paper broker with a trade log, that log is used by default.

    Examples
    --------
    >>> import simbroker
    >>> from simbroker.risk import RiskBroker, RiskLimits
    >>> paper = simbroker.PaperBroker(simbroker.synthetic_bars(n_symbols=1, n_bars=5))
    >>> broker = RiskBroker(paper, RiskLimits(max_order_qty=100))
    >>> broker.submit_order("SYM000", "buy", 500)
    Traceback (most recent call last):
    ...
    simbroker.errors.RiskRejected: risk rule 'max_order_qty': buy 500 SYM000: qty 500 > limit 100
    """

    def __init__(self, broker: Broker, limits: RiskLimits, *,
                 prices: Callable[[str], float | None] | None = None,
                 trade_log: TradeLog | None = None):
        if not isinstance(limits, RiskLimits):
            raise TypeError(f"limits must be RiskLimits, got {type(limits).__name__}")
        self.broker = broker
        self.limits = limits
        self._prices_fn = prices
        self._prices: dict[str, float] = {}
        self._log = trade_log if trade_log is not None else getattr(broker, "trade_log", None)
        self._recent: deque[datetime] = deque()
        self._open: dict[str, OrderInfo] = {}
        self._fills_seen: set[str] = set()
        self._filled: dict[str, float] = {}
        self._cursor: datetime | None = None
        self._day: date | None = None
        self._day_start_equity = 0.0
        self._last_equity: float | None = None
        self._killed: str | None = None

    # ------------------------------------------------------------ the protocol
    def submit_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        order_type: str = "market",
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        tif: str = "day",
        client_order_id: str | None = None,
    ) -> OrderInfo:
        """Check the order against every rule, then pass it to the wrapped broker."""
        order = Order.create(symbol, side, qty, order_type, limit_price=limit_price,
                             stop_price=stop_price, tif=tif, client_order_id=client_order_id)
        try:
            self._check(order)
        except RiskRejected as exc:
            if self._log is not None:
                self._log.write("rejected", self.broker.now(), order_id=None,
                                client_order_id=client_order_id, symbol=order.symbol,
                                side=order.side.value, qty=order.qty,
                                order_type=order.order_type.value, reason=str(exc),
                                rule=exc.rule)
            raise
        info = self.broker.submit_order(symbol, side, qty, order_type, limit_price=limit_price,
                                        stop_price=stop_price, tif=tif,
                                        client_order_id=client_order_id)
        self._recent.append(self.broker.now())
        if info["status"] in _OPEN:
            self._open[info["order_id"]] = info
        return info

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel through the wrapped broker (cancelling is never refused)."""
        info = self.broker.cancel_order(order_id)
        if info["status"] not in _OPEN:
            self._open.pop(order_id, None)
        return info

    def get_positions(self) -> dict[str, float]:
        """The wrapped broker's positions."""
        return self.broker.get_positions()

    def get_cash(self) -> float:
        """The wrapped broker's cash."""
        return self.broker.get_cash()

    def get_fills(self, since: datetime | None = None) -> list[Fill]:
        """The wrapped broker's fills."""
        return self.broker.get_fills(since)

    def now(self) -> datetime:
        """The wrapped broker's time."""
        return self.broker.now()

    # --------------------------------------------------------------- extras
    @property
    def killed(self) -> str | None:
        """Why the kill switch is engaged, or ``None`` when trading is allowed."""
        return self._killed

    def kill(self, reason: str = "kill switch engaged by hand") -> list[OrderInfo]:
        """Block all new orders; cancel this wrapper's open orders if ``cancel_on_kill``."""
        self._killed = reason
        if self._log is not None:
            self._log.write("kill", self.broker.now(), reason=reason)
        if not self.limits.cancel_on_kill:
            return []
        canceled = []
        for order_id in list(self._open):
            try:
                canceled.append(self.cancel_order(order_id))
            except UnknownOrder:
                self._open.pop(order_id, None)
        return canceled

    def reset_kill(self) -> None:
        """Allow orders again (a deliberate human decision) and restart the day's P&L."""
        if self._killed is not None and self._log is not None:
            self._log.write("kill_reset", self.broker.now())
        self._killed = None
        self._day = None
        self._last_equity = None

    def update_prices(self, prices: Mapping[str, float]) -> None:
        """Record last known prices and re-mark the daily loss (call it on each bar).

        The kill switch can trip here, without any new order, and then cancels this
        wrapper's open orders when ``cancel_on_kill``.
        """
        for sym, px in prices.items():
            if px is not None and math.isfinite(px) and px > 0:
                self._prices[sym] = float(px)
        if self.limits.max_daily_loss is not None and self._killed is None:
            equity = self._equity(self.broker.get_positions())
            if equity is not None:
                self._loss_check(equity)

    def last_price(self, symbol: str) -> float | None:
        """The last known price of ``symbol``, or ``None``."""
        if self._prices_fn is not None:
            px = self._prices_fn(symbol)
            if px is not None and math.isfinite(px) and px > 0:
                return float(px)
        bars = getattr(self.broker, "bars", None)
        t = getattr(self.broker, "bar_index", -1)
        if bars is not None and t >= 0 and symbol in bars:
            col = bars.close[: t + 1, bars.symbol_index(symbol)]
            valid = col[~np.isnan(col)]
            if len(valid):
                return float(valid[-1])
        return self._prices.get(symbol)

    def __repr__(self) -> str:
        return f"RiskBroker({self.broker!r}, {self.limits!r})"

    # ------------------------------------------------------------- the rules
    def _reject(self, rule: str, order: Order, detail: str, *, limit: float | None = None,
                value: float | None = None) -> RiskRejected:
        what = f"{order.side.value} {order.qty:g} {order.symbol}"
        return RiskRejected(rule, f"{what}: {detail}", limit=limit, value=value,
                            symbol=order.symbol)

    def _refresh_open(self) -> dict[str, float]:
        """Remaining qty of this wrapper's open orders, signed, per symbol."""
        get_order = getattr(self.broker, "get_order", None)
        if not callable(get_order) and self._open:
            # No order lookup: learn fills incrementally (since is inclusive; ids dedupe).
            for f in self.broker.get_fills(self._cursor):
                if f["fill_id"] not in self._fills_seen:
                    self._fills_seen.add(f["fill_id"])
                    self._filled[f["order_id"]] = self._filled.get(f["order_id"], 0.0) + f["qty"]
            self._cursor = self.broker.now()
        pending: dict[str, float] = {}
        for order_id, info in list(self._open.items()):
            if callable(get_order):
                info = get_order(order_id)
                filled = info["filled_qty"]
            else:
                filled = self._filled.get(order_id, 0.0)
            remaining = info["qty"] - filled
            if info["status"] not in _OPEN or remaining <= 0:
                del self._open[order_id]
                continue
            sign = 1.0 if info["side"] == "buy" else -1.0
            pending[info["symbol"]] = pending.get(info["symbol"], 0.0) + sign * remaining
        return pending

    def _check(self, order: Order) -> None:
        lim = self.limits
        sym = order.symbol
        if self._killed is not None:
            raise self._reject("max_daily_loss", order, f"kill switch engaged ({self._killed})")
        if lim.allowed_symbols is not None and sym not in lim.allowed_symbols:
            raise self._reject("allowed_symbols", order, f"{sym} is not an allowed symbol")
        if sym in lim.blocked_symbols:
            raise self._reject("blocked_symbols", order, f"{sym} is blocked")
        if lim.max_order_qty is not None and order.qty > lim.max_order_qty:
            raise self._reject("max_order_qty", order,
                               f"qty {order.qty:g} > limit {lim.max_order_qty:g}",
                               limit=lim.max_order_qty, value=order.qty)
        last = self.last_price(sym)
        ref = order.limit_price or order.stop_price or last
        if lim.price_collar is not None:
            for name, px in (("limit", order.limit_price), ("stop", order.stop_price)):
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
        needs_price = any(v is not None for v in (lim.max_order_notional,
                                                  lim.max_position_notional,
                                                  lim.max_gross_exposure, lim.max_daily_loss))
        if needs_price and ref is None:
            raise self._reject("price_unknown", order,
                               f"no price known for {sym}; notional limits cannot be checked")
        if lim.max_order_notional is not None and ref is not None:
            notional = order.qty * ref
            if notional > lim.max_order_notional:
                raise self._reject("max_order_notional", order,
                                   f"notional {notional:,.2f} > limit "
                                   f"{lim.max_order_notional:,.2f}",
                                   limit=lim.max_order_notional, value=notional)
        self._check_rate(order)
        positions = self.broker.get_positions()
        self._check_daily_loss(order, positions)
        pending = self._refresh_open()
        signed = order.qty * order.side.sign
        held = positions.get(sym, 0.0)
        same_side = pending.get(sym, 0.0)
        worst = held + same_side + signed
        if not lim.allow_short and worst < -1e-9:
            raise self._reject("allow_short", order,
                               f"position {held:g} with open orders {same_side:+g} would go "
                               f"short to {worst:g}", value=worst)
        if lim.max_position is not None and abs(worst) > lim.max_position:
            raise self._reject("max_position", order,
                               f"position would reach {worst:g} (held {held:g}, open orders "
                               f"{same_side:+g}) > limit {lim.max_position:g}",
                               limit=lim.max_position, value=abs(worst))
        if lim.max_position_notional is not None and ref is not None:
            value = abs(worst) * ref
            if value > lim.max_position_notional:
                raise self._reject("max_position_notional", order,
                                   f"position value would reach {value:,.2f} > limit "
                                   f"{lim.max_position_notional:,.2f}",
                                   limit=lim.max_position_notional, value=value)
        if lim.max_gross_exposure is not None:
            gross = 0.0
            for s in set(positions) | set(pending) | {sym}:
                qty = positions.get(s, 0.0) + pending.get(s, 0.0) + (signed if s == sym else 0)
                px = ref if s == sym else self.last_price(s)
                if px is None:
                    if qty:
                        raise self._reject("max_gross_exposure", order,
                                           f"no price known for held symbol {s}")
                    continue
                gross += abs(qty) * px
            if gross > lim.max_gross_exposure:
                raise self._reject("max_gross_exposure", order,
                                   f"gross exposure would reach {gross:,.2f} > limit "
                                   f"{lim.max_gross_exposure:,.2f}",
                                   limit=lim.max_gross_exposure, value=gross)

    def _check_rate(self, order: Order) -> None:
        cap = self.limits.max_orders_per_minute
        if cap is None:
            return
        now = self.broker.now()
        while self._recent and now - self._recent[0] >= timedelta(minutes=1):
            self._recent.popleft()
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

    def _loss_check(self, equity: float) -> str | None:
        """Track the day's start equity; trip the kill switch on too large a loss."""
        cap = self.limits.max_daily_loss
        assert cap is not None
        today = self.broker.now().date()
        if self._day != today:
            # The day's P&L runs from the last equity marked before it (yesterday's close
            # for daily bars), so a loss realised at the first mark of a day still counts.
            start = self._last_equity if self._last_equity is not None else equity
            self._day, self._day_start_equity = today, start
        self._last_equity = equity
        loss = self._day_start_equity - equity
        if loss <= cap:
            return None
        reason = (f"daily loss {loss:,.2f} > limit {cap:,.2f} (equity {equity:,.2f} vs "
                  f"{self._day_start_equity:,.2f} at the day's start)")
        self.kill(reason)
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
