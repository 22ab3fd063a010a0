"""TWS account values -> :class:`~simbroker.types.AccountInfo`, and TWS's buying-power
refusal (error 201) -> :class:`~simbroker.errors.InsufficientBuyingPower`.

Pure functions: nothing here talks to TWS.

TWS reports an account as ``updateAccountValue`` rows ``(tag, value, currency)``; the
account-wide figures come in the base currency (``USD`` here), a few also as ``BASE``
(the base-currency total over every currency), and some without a currency
(``DayTradesRemaining``, ``AccountType``). What is read:

==================  ====================================================================
AccountInfo key     TWS tag
==================  ====================================================================
cash                ``TotalCashValue``
equity              ``NetLiquidation``
buying_power        ``BuyingPower``
maintenance_margin  ``MaintMarginReq``
initial_margin      ``InitMarginReq``
long/short value    ``StockMarketValue`` (net) and ``GrossPositionValue`` (long + |short|):
                    long = (gross + net) / 2, short = (net - gross) / 2
settled_cash        ``SettledCash`` (``None`` when TWS does not send it)
day_trades          3 - ``DayTradesRemaining`` when that is 0..3; ``None`` when it is -1
                    (unlimited: equity of 25,000 or more) or missing
pattern_day_trader  the caller's ``pattern_day_trader``, else ``False`` (see below)
account_type        the caller's, else ``"margin"`` when ``BuyingPower`` exceeds
                    ``AvailableFunds`` (leverage), else ``"cash"``
==================  ====================================================================

Day trades. TWS sends ``DayTradesRemaining`` and ``DayTradesRemainingT+1`` .. ``T+4``
(the "day trades left" of its account window, today and the next four days), defined
as "the number of open/close trades a user could put on before Pattern Day Trading is
detected; a value of -1 means that the user can put on unlimited day trades". What an
account reports:

============================================  =========================================
account                                       ``DayTradesRemaining`` (all five)
============================================  =========================================
margin, net liquidation >= 25,000             -1, flagged a pattern day trader or not
margin, under 25,000, not flagged             3 - day trades of the last five days
margin, under 25,000, flagged                 0 (closing orders only, for 90 days)
============================================  =========================================

So the flag itself is never observable: -1 is the same for a flagged account and an
unflagged one, and 0 under 25,000 is the same for a flagged account and an unflagged one
that used its three day trades (both are refused any opening order, the latter with
"potential pattern day trader": :func:`pattern_day_trader_refusal`).
``pattern_day_trader`` is therefore the caller's (``IBKRBroker(pattern_day_trader=...)``)
and ``False`` when not given, and ``day_trades`` reads 3 for a flagged account under
25,000. FINRA's amended Rule 4210 (effective 2026-06-04, phased in until 2027-10-20)
replaces the pattern-day-trader designation with intraday margin; a broker that has
implemented it may stop sending these tags, and ``day_trades`` is then ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from simbroker.errors import BrokerAPIError, InsufficientBuyingPower, PatternDayTrading
from simbroker.types import AccountInfo

__all__ = ["REQUIRED_TAGS", "account_info", "buying_power_refusal", "cash_short_refusal",
           "pattern_day_trader_refusal"]

REQUIRED_TAGS = ("NetLiquidation", "TotalCashValue", "BuyingPower", "InitMarginReq",
                 "MaintMarginReq")
"""Tags without which there is no account to report (an error names the missing ones)."""

_AMOUNT = r"\[\s*(-?[\d,]*\.?\d+)\s*(?:[A-Z]{3})?\s*\]"
_MARGIN_TEXT = re.compile(
    r"equity\s+with\s+loan\s+value\s*" + _AMOUNT + r".*?initial\s+margin(?:\s+of)?\s*"
    + _AMOUNT, re.IGNORECASE | re.DOTALL)
_FUNDS_TEXT = re.compile(
    r"available\s+funds\s*" + _AMOUNT + r".*?(?:initial\s+margin|required)(?:\s+of)?\s*"
    + _AMOUNT, re.IGNORECASE | re.DOTALL)


def _number(raw: str) -> float:
    return float(raw.replace(",", ""))


def account_info(values: Iterable[Any], *, currency: str = "USD",
                 account_type: str | None = None,
                 pattern_day_trader: bool | None = None) -> AccountInfo:
    """The :class:`~simbroker.types.AccountInfo` of TWS's account ``values``
    (``AccountValue`` rows: ``tag``, ``value``, ``currency``); ``account_type`` and
    ``pattern_day_trader`` are the caller's when given (TWS does not report them).

    A tag in ``currency`` wins over the same tag in ``BASE``, which wins over one
    without a currency. Raises :class:`~simbroker.errors.BrokerAPIError` naming the
    tags TWS did not send (or sent as something other than a number).
    """
    rank = {currency: 3, "BASE": 2, "": 1}
    best: dict[str, tuple[int, str]] = {}
    for v in values:
        r = rank.get(str(v.currency), 0)
        if r and r > best.get(v.tag, (0, ""))[0]:
            best[v.tag] = (r, str(v.value))

    def num(tag: str) -> float | None:
        raw = best.get(tag, (0, ""))[1]
        try:
            x = float(raw)
        except ValueError:
            return None
        return x if math.isfinite(x) else None

    missing = [t for t in REQUIRED_TAGS if num(t) is None]
    if missing:
        raise BrokerAPIError(f"IBKR account values lack {', '.join(missing)} in "
                             f"{currency} (TWS sent {len(best)} tags)")
    net = num("StockMarketValue")
    gross = num("GrossPositionValue")
    if net is None or gross is None:
        long_value = short_value = 0.0
        if gross:
            long_value = gross  # no net figure: all of it taken as long
    else:
        long_value, short_value = (gross + net) / 2.0, (net - gross) / 2.0
    remaining = num("DayTradesRemaining")
    day_trades = None
    if remaining is not None and 0 <= remaining <= 3:
        day_trades = int(3 - remaining)
    buying_power = num("BuyingPower") or 0.0
    if account_type is None:
        available = num("AvailableFunds")
        account_type = "margin" if available is None or buying_power > available * 1.0001 \
            + 1e-9 else "cash"
    return AccountInfo(
        cash=num("TotalCashValue") or 0.0, equity=num("NetLiquidation") or 0.0,
        buying_power=buying_power, maintenance_margin=num("MaintMarginReq") or 0.0,
        initial_margin=num("InitMarginReq") or 0.0,
        long_market_value=max(long_value, 0.0), short_market_value=min(short_value, 0.0),
        settled_cash=num("SettledCash"), day_trades=day_trades,
        pattern_day_trader=bool(pattern_day_trader),
        account_type=account_type)


def buying_power_refusal(text: str, *, symbol: str, order_id: str | None = None,
                         client_order_id: str | None = None
                         ) -> InsufficientBuyingPower | None:
    """The :class:`~simbroker.errors.InsufficientBuyingPower` for TWS's error-201 text
    when it refuses an order for margin ("... your Equity with Loan Value [x USD] must
    exceed the new total Initial Margin of [y USD]"), else ``None``.

    ``required`` is the initial margin the account would need after the order and
    ``available`` the equity with loan value (IB's own figures: margin, not notional).
    """
    m = _MARGIN_TEXT.search(text) or _FUNDS_TEXT.search(text)
    if m is None:
        return None
    available, required = _number(m.group(1)), _number(m.group(2))
    return InsufficientBuyingPower(symbol, required=required, available=available,
                                   detail=f"IBKR: {text}", order_id=order_id,
                                   client_order_id=client_order_id)


_PDT_TEXT = re.compile(r"pattern\s+day\s+trad", re.IGNORECASE)


def pattern_day_trader_refusal(text: str, *, symbol: str, equity: float,
                               client_order_id: str | None = None
                               ) -> PatternDayTrading | None:
    """The :class:`~simbroker.errors.PatternDayTrading` for TWS's error-201 text when it
    refuses an opening order of a margin account under 25,000 with no day trade left
    ("potential pattern day trader"), else ``None``. ``equity`` is the account's net
    liquidation value as read after the refusal (NaN when unknown)."""
    if _PDT_TEXT.search(text) is None:
        return None
    return PatternDayTrading(symbol, day_trades=3, equity=equity,
                             client_order_id=client_order_id)


_CASH_SHORT_TEXT = re.compile(r"short\s+sales?\b.*\bcash\b", re.IGNORECASE)


def cash_short_refusal(text: str, *, symbol: str, qty: float, held: float, price: float,
                       order_id: str | None = None, client_order_id: str | None = None
                       ) -> InsufficientBuyingPower | None:
    """The refusal of a cash account's short sale for TWS's error-201 text saying so
    ("short sales are not allowed in a cash account"; IBKR documents the rule, not the
    API's words), else ``None``: the :class:`~simbroker.errors.InsufficientBuyingPower`
    the paper broker's :class:`~simbroker.accounts.CashAccount` raises
    (``rule="cash_account_short"``), ``required`` the sell of ``qty`` and ``available``
    the ``held`` shares (the position net of the other open sells), both at ``price``
    (the order's limit or stop; NaN for a market order)."""
    if _CASH_SHORT_TEXT.search(text) is None:
        return None
    return InsufficientBuyingPower(
        symbol, required=qty * price, available=max(held, 0.0) * price,
        rule="cash_account_short", detail=f"a cash account cannot sell short: {held:g} "
        f"shares held net of open sells; IBKR: {text}", order_id=order_id,
        client_order_id=client_order_id)
