"""Alpaca's ``GET /v2/account`` -> :class:`~simbroker.types.AccountInfo`, and its 403
refusals of an order -> :class:`~simbroker.errors.InsufficientBuyingPower` /
:class:`~simbroker.errors.ShortingNotAllowed`.

Pure functions: nothing here talks to Alpaca. The account JSON is validated by
alpaca-py's ``TradeAccount`` model (money arrives as strings):

==================  ====================================================================
AccountInfo key     Alpaca field
==================  ====================================================================
cash                ``cash``
equity              ``equity``
buying_power        ``buying_power`` (what the ``multiplier`` selects, open orders
                    already deducted by Alpaca)
maintenance_margin  ``maintenance_margin``
initial_margin      ``initial_margin``
long/short value    ``long_market_value`` / ``short_market_value`` (<= 0)
settled_cash        not reported by the Trading API: ``None``
day_trades          ``daytrade_count``
pattern_day_trader  ``pattern_day_trader``
account_type        ``multiplier`` 1: ``"cash"`` (no leverage, no shorting); 2 or 4:
                    ``"margin"``
==================  ====================================================================
"""

from __future__ import annotations

import math
from typing import Any

from simbroker._venue_sides import from_alpaca
from simbroker.errors import (
    BrokerAPIError,
    HardToBorrow,
    InsufficientBuyingPower,
    OrderRejected,
    ShortingNotAllowed,
)
from simbroker.types import AccountInfo

__all__ = ["account_info", "opening_qty", "refusal"]

INSUFFICIENT = "insufficient buying power"
NO_SHORTING = "not allowed to short"
NOT_SHORTABLE = "cannot be sold short"
"""Alpaca's words refusing a short sale off its easy-to-borrow list (the Trading API
locates nothing: :class:`~simbroker.errors.HardToBorrow` with ``located`` 0)."""


def _money(x: Any, name: str) -> float:
    if x is None or x == "":
        raise BrokerAPIError(f"Alpaca's account has no {name}")
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise BrokerAPIError(f"Alpaca's account {name} is not a number: {x!r}") from None
    if not math.isfinite(v):
        raise BrokerAPIError(f"Alpaca's account {name} is not finite: {x!r}")
    return v


def account_info(raw: Any) -> AccountInfo:
    """The :class:`~simbroker.types.AccountInfo` of Alpaca's account JSON.

    Raises :class:`~simbroker.errors.BrokerAPIError` when the answer is not an account
    or lacks ``cash``, ``equity`` or ``buying_power``; a margin figure Alpaca leaves
    out is 0.
    """
    from alpaca.trading.models import TradeAccount

    if not isinstance(raw, dict):
        raise BrokerAPIError(f"Alpaca answered GET /v2/account with {type(raw).__name__}")
    try:
        acct = TradeAccount(**raw)
    except Exception as exc:  # pydantic's ValidationError: not Alpaca's account shape
        raise BrokerAPIError(f"Alpaca's account answer is malformed: "
                             f"{type(exc).__name__}") from None

    def opt(x: Any, name: str) -> float:
        return 0.0 if x in (None, "") else _money(x, name)

    multiplier = opt(acct.multiplier, "multiplier") or 1.0
    return AccountInfo(
        cash=_money(acct.cash, "cash"), equity=_money(acct.equity, "equity"),
        buying_power=_money(acct.buying_power, "buying_power"),
        maintenance_margin=opt(acct.maintenance_margin, "maintenance_margin"),
        initial_margin=opt(acct.initial_margin, "initial_margin"),
        long_market_value=max(opt(acct.long_market_value, "long_market_value"), 0.0),
        short_market_value=min(opt(acct.short_market_value, "short_market_value"), 0.0),
        settled_cash=None,
        day_trades=None if acct.daytrade_count is None else int(acct.daytrade_count),
        pattern_day_trader=bool(acct.pattern_day_trader),
        account_type="cash" if multiplier <= 1.0 else "margin")


def opening_qty(side: str, qty: float, position: float, same_side_open: float) -> float:
    """The part of an order of ``qty`` that opens exposure, after the ``position`` and
    the open orders on the same side (what Alpaca weighs against buying power: "sell
    long and buy to cover orders" need none). A sell of 150 against a long of 100 with
    no other open sell opens 50."""
    start = position + same_side_open if side == "buy" else position - same_side_open
    closing = max(0.0, -start) if side == "buy" else max(0.0, start)
    return max(0.0, qty - closing)


def refusal(exc: OrderRejected, *, symbol: str, side: str, qty: float,
            price: float | None, client_order_id: str | None,
            buying_power: float | None = None,
            position: float | None = None, opening: float | None = None) -> OrderRejected:
    """The typed error for Alpaca's 403 ``exc`` refusing an order of ``qty`` at ``price``
    (its limit/stop price; ``None`` for a market order, whose cost Alpaca does not say):
    :class:`~simbroker.errors.InsufficientBuyingPower` (``required`` the notional of the
    order's ``opening`` part (:func:`opening_qty`; all of ``qty`` when unknown),
    ``available`` the account's ``buying_power`` read after the refusal, NaN where
    unknown), :class:`~simbroker.errors.PositionConflict` (one side at a time:
    :mod:`simbroker._venue_sides`), :class:`~simbroker.errors.HardToBorrow` (a short
    sale off the easy-to-borrow list; ``short`` past the ``position``, NaN unknown),
    :class:`~simbroker.errors.ShortingNotAllowed`, else ``exc``."""
    text = str(exc)
    if INSUFFICIENT in text.lower():
        required = (qty if opening is None else opening) * price if price is not None \
            else math.nan
        available = math.nan if buying_power is None else buying_power
        out: OrderRejected = InsufficientBuyingPower(
            symbol, required=required, available=available,
            detail=f"Alpaca 403 code 40310000: {text.split(': ', 2)[-1]}"
            + ("; a market order's cost is Alpaca's estimate" if price is None else ""),
            client_order_id=client_order_id)
        return out
    conflict = from_alpaca(text, symbol=symbol, side=side, qty=qty, position=position,
                           client_order_id=client_order_id)
    if conflict is not None:
        return conflict
    if NOT_SHORTABLE in text.lower() and side == "sell":
        held = math.nan if position is None else position
        htb = HardToBorrow(symbol, short=qty - max(held, 0.0) if held == held else math.nan,
                           located=0.0, position=held, qty=qty)
        htb.client_order_id = client_order_id
        return htb
    if NO_SHORTING in text.lower() and side == "sell":
        short = ShortingNotAllowed(symbol, position=0.0 if position is None else position,
                                   qty=qty)
        short.client_order_id = client_order_id
        return short
    return exc
