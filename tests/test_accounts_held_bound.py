"""MarginAccount's kept bound of the open orders' reservations (``_held_bound``), which
lets the lean check skip ``Reservations.held``: whenever it is known it is at least
what the reservations hold, and a run decides every order as a run without it does
(random submits, cancels, replaces, OCO pairs and bars)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker import PaperBroker, synthetic_bars
from simbroker.accounts import MarginAccount
from simbroker.accounts._reserve import reserved
from simbroker.errors import OrderRejected, UnknownOrder
from simbroker.types import Order


class _Checked(MarginAccount):
    """Asserts the bound against a full pass at every check that finds one."""

    known = 0

    def check(self, order: Order, col: int) -> None:
        b = self._b
        bound = self._held_bound(b) if b._book.n else math.nan
        if bound == bound:
            exact = reserved(b, self._marks.at(b._t), self._im, self.market_buffer)
            assert bound >= exact, (bound, exact)
            _Checked.known += 1
        super().check(order, col)


class _Without(MarginAccount):
    """The check as it was: no bound, the reservations every time."""

    def _held_bound(self, b: Any) -> float:
        return math.nan


OP = st.tuples(st.sampled_from(["submit", "submit", "submit", "cancel", "replace", "step",
                                "oco"]),
               st.integers(0, 2), st.sampled_from(["buy", "sell"]),
               st.one_of(st.sampled_from([1.0, 10.0, 50.0]), st.floats(0.01, 200.0)),
               st.sampled_from(["market", "market", "limit", "stop"]), st.floats(0.8, 1.2))


def _run(account: MarginAccount, ops: list[tuple[Any, ...]], cash: float, seed: int
         ) -> list[Any]:
    bars = synthetic_bars(n_symbols=3, n_bars=30, seed=seed)
    b = PaperBroker(bars, cash=cash, account=account, slippage=0, fees=0)
    b.step()
    seen: list[Any] = []
    ids: list[str] = []
    for kind, k, side, qty, otype, f in ops:
        sym = bars.symbols[k]
        px = float(np.nan_to_num(account.marks()[k], nan=100.0)) * f
        try:
            if kind == "step":
                if b.has_next:
                    b.step()
                seen.append(("step", b.get_cash(), b.get_positions()))
                continue
            if kind in ("cancel", "replace"):
                open_ = [i for i in ids if b.get_order(i)["status"] in ("new", "accepted")]
                if not open_:
                    continue
                oid = open_[int(qty) % len(open_)]
                if kind == "cancel":
                    b.cancel_order(oid)
                elif b.get_order(oid)["order_type"] == "limit":
                    b.replace_order(oid, qty=qty, limit_price=px)
                else:
                    b.replace_order(oid, qty=qty)
                seen.append((kind, oid))
                continue
            if kind == "oco":
                info = b.submit_order(sym, side, qty, "limit", order_class="oco", tif="gtc",
                                      take_profit={"limit_price": px * 1.1 if side == "sell"
                                                   else px * 0.9},
                                      stop_loss={"stop_price": px * 0.9 if side == "sell"
                                                 else px * 1.1})
            else:
                extra = {"limit_price": px} if otype == "limit" else \
                    {"stop_price": px} if otype == "stop" else {}
                info = b.submit_order(sym, side, qty, otype, tif="gtc", **extra)
            ids.append(info["order_id"])
            seen.append(("ok", info["order_id"]))
        except (OrderRejected, UnknownOrder) as exc:
            seen.append((type(exc).__name__, str(exc)))
    with contextlib.suppress(Exception):
        while b.has_next:
            b.step()
    seen.append(([(f["order_id"], f["qty"], f["price"]) for f in b.get_fills()],
                 b.get_cash()))
    return seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OP, max_size=30), seed=st.integers(0, 50),
       cash=st.sampled_from([500.0, 2_000.0, 10_000.0, 1e6]))
def test_the_bound_holds_and_decides_as_the_reservations_do(
        ops: list[tuple[Any, ...]], cash: float, seed: int) -> None:
    assert _run(_Checked(), ops, cash, seed) == _run(_Without(), ops, cash, seed)


def test_the_bound_is_used_on_a_bar_of_many_orders() -> None:
    """Many buys on one bar: after the first, each check finds the bound (not a full
    pass), and the one that does not fit is refused as without it."""
    ops = [("submit", k % 3, "buy", 10.0, "limit", 1.0) for k in range(40)]
    before = _Checked.known
    with_bound = _run(_Checked(), ops, 2_000.0, 3)
    assert _Checked.known - before >= 30
    assert with_bound == _run(_Without(), ops, 2_000.0, 3)
    assert any(s[0] == "InsufficientBuyingPower" for s in with_bound)
    assert np.isfinite(with_bound[-1][1])


def test_an_order_the_exact_figures_accepted_drops_the_bound() -> None:
    """A long position makes the exact excess larger than the lean floor (the cash): B
    fits only by the exact figures, so no bound covers it, and C is weighed with B's
    reservation (a bound left from A alone would miss it)."""
    bars = synthetic_bars(n_symbols=3, n_bars=30, seed=4)
    acct = _Checked()
    b = PaperBroker(bars, cash=2_000.0, account=acct, slippage=0, fees=0,
                    positions={"SYM000": 100.0})
    b.step()
    px = float(acct.marks()[1])

    def buy(margin: float) -> None:  # a buy limit at the mark needing ``margin``
        b.submit_order("SYM001", "buy", round(2 * margin / px, 6), "limit", limit_price=px,
                       tif="gtc")

    buy(500.0)  # A: lean, the bound kept
    assert acct._held_bound(b) == acct._held_bound(b)
    buy(2_500.0)  # B: past the floor (2,000 - 500), inside the exact excess
    assert math.isnan(acct._held_bound(b))
    before = _Checked.known
    buy(1_000.0)  # C: a full pass (no bound known)
    assert _Checked.known == before
    assert len(b.get_orders(open_only=True)) == 3
