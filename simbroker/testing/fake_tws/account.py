"""FakeTWS's account as TWS keeps it: the figures it reports (``updateAccountValue``
rows, :meth:`AccountView.account_figures`) and the day trades it counts, with the
pattern-day-trader refusal of an opening order (error 201). The definitions are in the
:class:`~simbroker.testing.fake_tws.FakeTWS` docstring; the pre-trade margin check is
:mod:`simbroker.testing.fake_tws.margin`.
"""

from __future__ import annotations

import abc
from typing import Any

from simbroker.testing.fake_tws import messages as msg

__all__ = ["PDT_EQUITY", "AccountView"]

PDT_EQUITY = 25_000.0
"""Net liquidation value from which day trades are unlimited (FINRA Rule 4210's minimum)."""


class AccountView(abc.ABC):
    """Mixed into :class:`~simbroker.testing.fake_tws.FakeTWS`: its account. The server
    sets these attributes in its ``__init__``."""

    account: str
    account_type: str
    cash: float
    positions: dict[str, float]
    prices: dict[str, float]
    initial_margin: float
    maintenance_margin: float
    day_trades_remaining: int
    pattern_day_trader: bool

    @abc.abstractmethod
    def _send(self, conn: Any, *fields: Any) -> None:
        """Send one message to ``conn`` (the server's)."""

    def _exposure(self, positions: dict[str, float]) -> tuple[float, float]:
        """(net, gross) market value of ``positions`` at the current prices."""
        values = [q * self.prices.get(s, 0.0) for s, q in positions.items()]
        return sum(values), sum(abs(v) for v in values)

    def account_figures(self) -> dict[str, float]:
        """The account's figures as TWS computes them (see the class docstring)."""
        net, gross = self._exposure(self.positions)
        equity = self.cash + net
        init, maint = self.initial_margin * gross, self.maintenance_margin * gross
        available = equity - init
        return {"TotalCashValue": self.cash, "NetLiquidation": equity,
                "EquityWithLoanValue": equity, "StockMarketValue": net,
                "GrossPositionValue": gross, "InitMarginReq": init, "MaintMarginReq": maint,
                "AvailableFunds": available, "ExcessLiquidity": equity - maint,
                "BuyingPower": max(available, 0.0) / self.initial_margin}

    def day_trades_left(self) -> int:
        """``DayTradesRemaining`` as TWS reports it now (see the class docstring)."""
        if self.account_type != "margin":
            return self.day_trades_remaining
        if self.account_figures()["NetLiquidation"] >= PDT_EQUITY:
            return -1
        return 0 if self.pattern_day_trader else self.day_trades_remaining

    def _pdt_refusal(self, p: dict[str, Any]) -> str | None:
        """IB's error-201 reason when the order would open a position in a margin
        account under 25,000 with no day trade left, else ``None``."""
        if self.account_type != "margin" or self.day_trades_left() != 0:
            return None
        old = self.positions.get(p["symbol"], 0.0)
        new = old + (p["qty"] if p["action"] == "BUY" else -p["qty"])
        if abs(new) <= abs(old) + 1e-12 and new * old >= 0:
            return None  # it only closes
        return ("Order rejected - reason:POTENTIAL PATTERN DAY TRADER: the account's "
                "net liquidation value is under 25,000 USD and no day trade is left; "
                "only closing orders are accepted")

    # ------------------------------------------------------------------ messages
    def _values(self) -> list[tuple[str, str, str]]:
        """``(tag, value, currency)`` rows as TWS sends them for a USD account."""
        figures = self.account_figures()
        f = {k: msg.text(round(v, 2)) for k, v in figures.items()}
        equity = figures["NetLiquidation"]
        cushion = figures["ExcessLiquidity"] / equity if equity > 0 else 0.0
        left = self.day_trades_left()
        rows = [("AccountCode", self.account, ""), ("AccountType", "INDIVIDUAL", ""),
                ("Currency", "USD", "USD"), ("Currency", "BASE", "BASE"),
                ("CashBalance", f["TotalCashValue"], "USD"),
                ("CashBalance", f["TotalCashValue"], "BASE"),
                ("TotalCashBalance", f["TotalCashValue"], "BASE"),
                ("SettledCash", f["TotalCashValue"], "USD"),
                ("StockMarketValue", f["StockMarketValue"], "BASE"),
                ("NetLiquidationByCurrency", f["NetLiquidation"], "BASE"),
                ("Cushion", msg.text(round(cushion, 6)), ""),
                *((f"DayTradesRemaining{d}", str(left), "")
                  for d in ("", "T+1", "T+2", "T+3", "T+4")),
                ("FullInitMarginReq", f["InitMarginReq"], "USD"),
                ("FullMaintMarginReq", f["MaintMarginReq"], "USD")]
        rows += [(k, v, "USD") for k, v in f.items()]
        return rows

    def _account_values(self, conn: Any) -> None:
        for key, value, ccy in self._values():
            self._send(conn, 6, 2, key, value, ccy, self.account)
