"""The cash account's fill loop (CashAccount._book_new, settling once per bar) against
the general one (a call of _on_fill per fill, settling at every fill and bar close).

Random runs with cash tight enough that buys spend unsettled proceeds (good-faith lots),
either good-faith mode and 0 to 2 settlement days: the same decisions, figures, state
and trade log at every bar.
"""

from __future__ import annotations

import contextlib
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simbroker import PaperBroker, synthetic_bars
from simbroker.accounts import Account, CashAccount
from simbroker.errors import OrderRejected
from simbroker.paper import PaperBroker as _Broker
from simbroker.tradelog import read_trade_log

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _General(CashAccount):
    """Books each fill with a call of the account's _on_fill of before the one loop,
    settling at every fill and bar close."""

    def _book_new(self, k0: int, n: int) -> None:
        Account._book_new(self, k0, n)

    def _on_fill(self, bar: int, col: int, sign: float, qty: float, notional: float,
                 fee: float, before: float, after: float, cash: float) -> None:
        cal = self._cals[col]
        day = self._daynum.item(min(max(bar, 0), self._n_days - 1), cal)
        self.day_trades.on_fill(col, day, before, after, cal)
        st = self.settlement
        if st.credits or st.lots:
            st.settle(self._daynum[bar].tolist())
        if sign < 0:
            paid = before - st.unpaid_qty(col, day)
            unpaid_sold = qty - max(paid, 0.0)
            if unpaid_sold > 1e-12:
                self.violations += 1
                when = (_EPOCH + timedelta(microseconds=int(self.broker._close_ns[bar])
                                           // 1000)) if self._restoring else None
                self._write("good_faith_violation", when,
                            symbol=self.broker.bars.symbols[col], qty=unpaid_sold,
                            rule="good_faith")
                st.on_sold_unpaid(col, unpaid_sold)
            st.on_sell(cal, day, notional - fee)
        else:
            st.on_buy(col, cal, qty, notional + fee, cash)

    def _after_bar(self, t: int) -> None:
        st = self.settlement
        if st.credits or st.lots:
            st.settle(self.today())


def _run(account: CashAccount, seed: int, cash: float, freq: str) -> list[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.jsonl"
        seen = _steps(account, seed, cash, freq, path)
        seen.append([(r["event"], r["ts"], r.get("symbol"), r.get("qty"))
                     for r in read_trade_log(path) if r["event"] == "good_faith_violation"])
    return seen


def _steps(account: CashAccount, seed: int, cash: float, freq: str, path: Path
           ) -> list[Any]:
    bars = synthetic_bars(n_symbols=3, n_bars=50, seed=seed, freq=freq,
                          start="2024-06-03 13:30")
    b = PaperBroker(bars, cash=cash, account=account, slippage=0, trade_log=path)
    rng = np.random.default_rng(seed)
    seen: list[Any] = []
    while b.has_next:
        b.step()
        st_ = account.settlement
        seen.append((account.info(), account.snapshot(), account.violations,
                     [(c.calendar, c.due, c.amount) for c in st_.credits],
                     [(lot.col, lot.free_day, lot.qty) for lot in st_.lots]))
        for sym in bars.symbols:
            if rng.random() < 0.6:
                held = b.get_positions().get(sym, 0.0)
                side = "sell" if held > 0 and rng.random() < 0.5 else "buy"
                qty = float(rng.integers(1, 40)) if side == "buy" else float(
                    rng.choice([held, max(held // 2, 1.0)]))
                try:
                    b.submit_order(sym, side, qty)
                    seen.append("ok")
                except OrderRejected as exc:
                    seen.append(str(exc))
    seen.append([(f["symbol"], f["side"], f["qty"], f["price"]) for f in b.get_fills()])
    b.close()
    return seen


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), cash=st.sampled_from([3_000.0, 10_000.0, 1e6]),
       days=st.integers(0, 2), good_faith=st.sampled_from(["refuse", "record"]),
       freq=st.sampled_from(["1h", "1D"]))
def test_cash_fill_loop_is_the_general_one(seed: int, cash: float, days: int,
                                           good_faith: str, freq: str) -> None:
    kw: dict[str, Any] = {"settlement_days": days, "good_faith": good_faith}
    fast = CashAccount(**kw)
    want = _run(_General(**kw), seed, cash, freq)
    assert _run(fast, seed, cash, freq) == want
    assert fast._memo == (days >= 1)


def test_settling_is_skipped_on_a_settled_bar() -> None:
    calls = []

    class Counted(CashAccount):
        def _attach(self, broker: _Broker) -> None:
            super()._attach(broker)
            settle = self.settlement.settle
            self.settlement.settle = lambda today: (calls.append(today), settle(today))[1]

    bars = synthetic_bars(n_symbols=2, n_bars=6, seed=3)
    acct = Counted()
    b = PaperBroker(bars, cash=1e5, account=acct, positions={"SYM000": 10.0,
                                                            "SYM001": 10.0})
    b.step()
    b.submit_order("SYM000", "sell", 5)
    b.submit_order("SYM001", "sell", 5)
    b.step()  # two sales fill: the second settles nothing new, nor does the bar close
    assert len(acct.settlement.credits) == 2
    with contextlib.suppress(OrderRejected):
        b.submit_order("SYM000", "sell", 1)
    b.step()
    assert len(calls) == 2  # once per bar with a credit: at its first fill after one
