"""The fake Alpaca account: the figures ``GET /v2/account`` reports and the buying-power
check ``POST /v2/orders`` makes (403 ``40310000`` like Alpaca).

Alpaca's definitions (the ``TradeAccount`` fields): ``equity`` = ``cash`` +
``long_market_value`` + ``short_market_value`` (short value negative);
``initial_margin`` is Reg T's 50% of the gross position value, ``maintenance_margin``
30% of it here; ``multiplier`` is 1 (no leverage: buying power is the cash), 2 (Reg T:
``regt_buying_power`` = 2 x (equity - initial margin)) or 4 (a pattern day trader:
``daytrading_buying_power`` = 4 x (equity - maintenance margin)); ``buying_power`` is the
one the multiplier selects, less what open orders reserve.

What an open order reserves (Alpaca: "your available buying power is reduced by existing
open buy long and sell short orders, whereas your sell long and buy to cover orders do
not replenish your available buying power until they have executed") follows the rule of
:class:`simbroker.accounts.MarginAccount` (:mod:`simbroker.testing._venue_margin`): the
notional of the part that opens exposure, after the position and the earlier open orders
on the same side, at the order's worst price; a bracket's exits (and an OCO pair) share
one claim, and exits still waiting for their parent claim nothing. A short is valued at
``max(limit, 3% above the ask)`` (Alpaca's documented rule; the fake's price stands for
the ask), so a market short costs 1.03 x the price.

An order is refused when the notional it adds exceeds the buying power: ``{"code":
40310000, "message": "insufficient buying power"}``. Before that, Alpaca's one side at a
time (:mod:`simbroker._venue_sides`): a closing order larger than what the open closing
orders leave of the position is refused with "insufficient qty available for order
(requested: Q, available: A)" (a long never turns short in one sell), and an order that
opens a flat symbol while an order of the other side is open with "cannot open a short
sell while a long buy order is open" (or the long-buy twin), both 403 ``40310000``
(whatever the account: alpacahq/alpaca-trade-api-python issues 74 and 129). Then a
sell that would open a short on an account without shorting (multiplier 1) is refused
with ``{"code": 40310000, "message": "account is not allowed to short"}``
(alpacahq/alpaca-trade-api-js issue 57), and a sell that would open or enlarge a short
in an asset off the easy-to-borrow list (``hard_to_borrow``) with "asset SYM cannot be
sold short" (403 ``40310000``). A replacement is weighed by the same rules, the order it
replaces set aside (see :mod:`~simbroker.testing.fake_alpaca._orders`).
"""

from __future__ import annotations

import abc
import math
from typing import TYPE_CHECKING, Any

from simbroker._venue_sides import alpaca_message, side_refusal
from simbroker.testing._venue_margin import Claim, claimed, worst_price
from simbroker.testing.fake_alpaca._orders import OPEN, ApiError, num

__all__ = ["MAINTENANCE_RATE", "NOT_SHORTABLE", "REG_T_INITIAL", "SHORT_MARKUP",
           "AccountBook"]

NOT_SHORTABLE = "asset {symbol} cannot be sold short"
"""Alpaca's refusal (403 ``40310000``, as its other short refusals) of a short sale in an
asset off its easy-to-borrow list. The Trading API shorts easy-to-borrow assets only
(alpacahq/Alpaca-API issue 211; Alpaca's HTB locates are for the Broker API); the words
are as reported for such a refusal, the code is assumed."""

REG_T_INITIAL = 0.5
MAINTENANCE_RATE = 0.3
SHORT_MARKUP = 1.03
"""An opening short is valued at ``max(limit, 3% above the ask)`` (Alpaca's rule; the
fake's one price stands for the ask)."""
_KINDS = {"market": "market", "limit": "limit", "stop": "stop", "stop_limit": "stop_limit",
          "trailing_stop": "trailing"}


def _opt(x: Any) -> float | None:
    return None if x in (None, "") else float(x)


def _f(x: Any) -> float:
    return float(x) if x not in (None, "") else 0.0


class AccountBook(abc.ABC):
    """Mixed into :class:`~simbroker.testing.fake_alpaca.FakeAlpaca`: the account."""

    cash: float
    positions: dict[str, float]
    prices: dict[str, float]
    orders: dict[str, dict[str, Any]]
    multiplier: int
    daytrade_count: int
    pdt_fields: bool
    hard_to_borrow: set[str]

    if TYPE_CHECKING:
        def _own_rest(self, old: dict[str, Any]) -> float: ...  # the order book's

    def _claim(self, sym: str, side: str, qty: float, kind: str, limit: float | None,
               stop: float | None, group: str | None) -> Claim:
        mark = self.prices.get(sym)
        price = worst_price(side, _KINDS.get(kind, "market"), limit, stop, mark)
        if side == "sell" and mark is not None:  # a short is valued 3% above the ask
            price = max(price, SHORT_MARKUP * mark) if math.isfinite(price) \
                else SHORT_MARKUP * mark
        return Claim(sym, side, qty, price, group)

    def _claims(self, skip: str | None = None) -> list[Claim]:
        """The open orders' claims on the buying power (but order ``skip``'s), in
        placement order (legs waiting for their unfilled parent claim nothing; a group's
        exits share one claim)."""
        out = []
        for o in self.orders.values():
            if o["status"] not in OPEN or (o["status"] == "held" and not o["_armed"]) \
                    or o["id"] == skip:
                continue
            out.append(self._claim(str(o["symbol"]), str(o["side"]),
                                   _f(o["qty"]) - _f(o["filled_qty"]), str(o["type"]),
                                   _opt(o["limit_price"]), _opt(o["stop_price"]),
                                   _root(o)))
        return out

    def _reserved(self) -> float:
        """Notional the open orders hold back from the buying power."""
        return claimed(self._claims(), self.positions)

    def account_figures(self) -> dict[str, float]:
        """The account's money now (the numbers behind ``GET /v2/account``)."""
        values = [q * self.prices.get(s, 0.0) for s, q in self.positions.items()]
        long_value = sum(v for v in values if v > 0)
        short_value = sum(v for v in values if v < 0)
        gross = long_value - short_value
        equity = self.cash + long_value + short_value
        initial, maintenance = REG_T_INITIAL * gross, MAINTENANCE_RATE * gross
        regt = max(0.0, equity - initial) * 2
        day = max(0.0, equity - maintenance) * 4 if self.multiplier == 4 else 0.0
        base = self._base_buying_power(regt, day)
        return {"cash": self.cash, "equity": equity, "long_market_value": long_value,
                "short_market_value": short_value, "initial_margin": initial,
                "maintenance_margin": maintenance, "regt_buying_power": regt,
                "daytrading_buying_power": day,
                "non_marginable_buying_power": max(self.cash, 0.0),
                "buying_power": max(0.0, base - self._reserved())}

    def _base_buying_power(self, regt: float | None = None,
                           day: float | None = None) -> float:
        """The buying power the ``multiplier`` selects, before open orders reserve any."""
        if self.multiplier == 1:
            return max(self.cash, 0.0)
        if regt is None or day is None:
            f = self.account_figures()
            regt, day = f["regt_buying_power"], f["daytrading_buying_power"]
        return day if self.multiplier == 4 else regt

    def _account(self) -> dict[str, Any]:
        f = self.account_figures()
        body: dict[str, Any] = {k: num(round(v, 2)) for k, v in f.items()}
        body.update({
            "id": "8f6c5d8a-1d0c-4f53-9d6b-2b1f1d1c0001", "account_number": "PA0000000",
            "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD",
            "portfolio_value": body["equity"], "last_equity": body["equity"],
            "last_maintenance_margin": body["maintenance_margin"], "sma": "0",
            "multiplier": str(self.multiplier), "shorting_enabled": self.multiplier > 1,
            "pattern_day_trader": self.multiplier == 4,
            "daytrade_count": self.daytrade_count, "trading_blocked": False,
            "transfers_blocked": False, "account_blocked": False,
            "trade_suspended_by_user": False, "accrued_fees": "0"})
        if not self.pdt_fields:  # removed by Alpaca on 2026-07-06
            for key in ("pattern_day_trader", "daytrade_count", "daytrading_buying_power"):
                del body[key]
        return body

    def _open_qty(self, sym: str) -> tuple[float, float]:
        """What is left of ``sym``'s open buy and sell orders (a group's legs once, exits
        waiting for their parent not at all), as Alpaca holds a position for them."""
        sides = {"buy": 0.0, "sell": 0.0}
        groups: dict[str, tuple[str, float]] = {}
        for o in self.orders.values():
            if o["symbol"] != sym or o["status"] not in OPEN or \
                    (o["status"] == "held" and not o["_armed"]):
                continue
            left = _f(o["qty"]) - _f(o["filled_qty"])
            root = o["_parent"] if o["_parent"] is not None else \
                o["id"] if o["order_class"] == "oco" else None
            if root is None:
                sides[str(o["side"])] += left
            else:
                side, most = groups.get(root, (str(o["side"]), 0.0))
                groups[root] = (side, max(most, left))
        for side, most in groups.values():
            sides[side] += most
        return sides["buy"], sides["sell"]

    def _check_sides(self, sym: str, side: str, qty: float) -> None:
        """Raise Alpaca's 403 when the order would cross the position through zero or
        open a side while the other side has an open order."""
        buys, sells = self._open_qty(sym)
        refusal = side_refusal(sym, side, qty, self.positions.get(sym, 0.0), buys, sells)
        if refusal is not None:
            raise ApiError(403, 40310000, alpaca_message(refusal))

    def _check_buying_power(self, sym: str, side: str, qty: float, kind: str,
                            limit: float | None, stop: float | None) -> None:
        """Raise Alpaca's 403 when the order needs more buying power than is left."""
        self._check_sides(sym, side, qty)
        if side == "sell" and self.multiplier == 1 and \
                qty > max(self.positions.get(sym, 0.0), 0.0) + 1e-12:
            raise ApiError(403, 40310000, "account is not allowed to short")
        self._check_borrow(sym, side, qty)
        held = self._claims()
        adds = claimed([*held, self._claim(sym, side, qty, kind, limit, stop, None)],
                       self.positions) - claimed(held, self.positions)
        if adds > 1e-9 and adds > self.account_figures()["buying_power"] + 1e-9:
            raise ApiError(403, 40310000, "insufficient buying power")

    def _check_borrow(self, sym: str, side: str, qty: float,
                      old: dict[str, Any] | None = None) -> None:
        """Raise Alpaca's 403 when a sell of ``qty`` in a symbol off the easy-to-borrow
        list would open or enlarge a short: beyond the position net of the other open
        sells (a group's once; ``old``, the order a replacement replaces, set aside). A
        replacement that sells no more than ``old`` has left passes (assumed, as for the
        buying power: it adds no short to what Alpaca already took)."""
        if side != "sell" or sym not in self.hard_to_borrow:
            return
        _, sells = self._open_qty(sym)
        if old is not None:
            own = self._own_rest(old)
            if qty <= own + 1e-12:
                return
            sells -= own
        if qty > self.positions.get(sym, 0.0) - sells + 1e-12:
            raise ApiError(403, 40310000, NOT_SHORTABLE.format(symbol=sym))

    def _check_replace_buying_power(self, old: dict[str, Any], qty: float,
                                    limit: float | None, stop: float | None) -> None:
        """Raise Alpaca's 403 when replacing open order ``old`` by an order of ``qty``
        (at ``limit`` / ``stop``) needs more buying power than is left with ``old`` set
        aside.

        Alpaca: "While an order is being replaced, the account's buying power is reduced
        by the larger of the two orders that have been placed (the old order being
        replaced, and the newly placed order to replace it)" (Replace an Order,
        docs.alpaca.markets/reference/replaceorderforaccount). So a replacement that
        claims no more than ``old`` passes, and one that claims more must fit in the
        buying power the other open orders leave: ``{"code": 40310000, "message":
        "insufficient buying power"}``, ``old`` working on unchanged."""
        sym, side, group = str(old["symbol"]), str(old["side"]), _root(old)
        held = self._claims(skip=str(old["id"]))
        kind = str(old["type"])
        before = claimed(held, self.positions)
        was = self._claim(sym, side, _f(old["qty"]) - _f(old["filled_qty"]), kind,
                          _opt(old["limit_price"]), _opt(old["stop_price"]), group)
        new = self._claim(sym, side, qty, kind, limit, stop, group)
        adds = claimed([*held, new], self.positions) - before
        if adds <= claimed([*held, was], self.positions) - before + 1e-9:
            return  # no more than the order it replaces
        if adds > self._base_buying_power() - before + 1e-9:
            raise ApiError(403, 40310000, "insufficient buying power")


def _root(o: dict[str, Any]) -> str | None:
    """The group an order's claim is shared in: its parent's, an OCO's own, else none."""
    return o["_parent"] if o["_parent"] is not None else \
        o["id"] if o["order_class"] == "oco" else None
