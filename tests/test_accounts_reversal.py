"""The closing part of a reversing order at IBKR: ``PaperBroker(venue="ibkr")`` credits
the order being checked with the margin its own closing part frees (TWS weighs an order
against the initial margin after it); the default (the strictest venue) and Alpaca do
not. Every figure here is hand-computed: X trades flat at 100, no fees, no slippage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simbroker import Bars, PaperBroker
from simbroker.accounts import MarginAccount
from simbroker.errors import (
    InsufficientBuyingPower,
    OrderRejected,
    PositionConflict,
    ReplaceRejected,
)

VENUES = (None, "ibkr", "alpaca")


def flat(times: Sequence[str]) -> Bars:
    """Bars of X at 100 at ``times``."""
    ts = np.array([np.datetime64(t, "ns") for t in times])
    px = np.full((len(ts), 1), 100.0)
    return Bars.from_arrays(ts, ["X"], open=px, high=px, low=px, close=px,
                            volume=np.full(px.shape, 1e9))


def daily(n: int = 5) -> Bars:
    return flat([str(np.datetime64("2024-01-01T21:00") + np.timedelta64(i, "D"))
                 for i in range(n)])


def intraday(n_days: int = 2) -> Bars:
    return flat([str(np.datetime64(f"2024-01-0{1 + d}T12:00") + h * np.timedelta64(1, "h"))
                 for d in range(n_days) for h in range(11)])


def broker(venue: str | None, *, cash: float = -50_000.0, long: float = 1_500.0,
           bars: Bars | None = None, account: MarginAccount | str = "margin"
           ) -> PaperBroker:
    """Long ``long`` X at 100 on ``cash``; by default equity 100,000, initial margin
    75,000, buying power 50,000. One bar closed."""
    b = PaperBroker(daily() if bars is None else bars, cash=cash, positions={"X": long},
                    account=account, slippage=0, fees=0, venue=venue)
    b.step()
    return b


def refused(b: PaperBroker, *args: object, **kw: object) -> InsufficientBuyingPower:
    """The buying-power refusal of the order; nothing new is left open."""
    before = b.get_orders(open_only=True)
    with pytest.raises(InsufficientBuyingPower) as err:
        b.submit_order(*args, **kw)  # type: ignore[arg-type]
    assert err.value.rule == "buying_power"
    assert b.get_orders(open_only=True) == before
    return err.value


def test_a_reversal_that_fits_only_with_its_closing_credit() -> None:
    # A sell of 2,100 closes 1,500 and shorts 600 x 100 = 60,000.
    at_ibkr = broker("ibkr")
    assert at_ibkr.get_account()["buying_power"] == pytest.approx(50_000)
    # IBKR: the 1,500's 75,000 of margin is released: (100,000 - 75,000 + 75,000) / 50%
    at_ibkr.submit_order("X", "sell", 2_100)
    at_ibkr.step()
    assert at_ibkr.get_positions() == {"X": -600.0}
    # the default (strictest venue): the 50,000 of today
    err = refused(broker(None), "X", "sell", 2_100)
    assert (err.required, err.available) == (60_000.0, 50_000.0)
    assert "shorting 600 at 100" in str(err)
    # Alpaca: no order crosses a position through zero, whatever the buying power
    with pytest.raises(PositionConflict):
        broker("alpaca").submit_order("X", "sell", 2_100)


def test_a_reversal_that_does_not_fit_even_with_the_credit() -> None:
    # A sell of 5,000 shorts 3,500 x 100 = 350,000.
    err = refused(broker("ibkr"), "X", "sell", 5_000)
    assert (err.required, err.available) == (350_000.0, 200_000.0)
    err = refused(broker(None), "X", "sell", 5_000)
    assert (err.required, err.available) == (350_000.0, 50_000.0)
    with pytest.raises(PositionConflict):
        broker("alpaca").submit_order("X", "sell", 5_000)


def test_a_buy_reversing_a_short_is_credited_alike() -> None:
    # Short 1,500 on 250,000: equity 100,000, initial 75,000. A buy of 2,100 covers
    # 1,500 and buys 600 x 100 = 60,000.
    b = broker("ibkr", cash=250_000.0, long=-1_500.0)
    b.submit_order("X", "buy", 2_100)
    err = refused(broker(None, cash=250_000.0, long=-1_500.0), "X", "buy", 2_100)
    assert (err.required, err.available) == (60_000.0, 50_000.0)
    err = refused(broker("ibkr", cash=250_000.0, long=-1_500.0), "X", "buy", 5_000)
    assert (err.required, err.available) == (350_000.0, 200_000.0)


def test_only_the_orders_own_closing_part_after_the_open_sells_before_it_is_credited(
        ) -> None:
    for venue in VENUES:
        b = broker(venue)
        b.submit_order("X", "sell", 1_000, "limit", limit_price=120.0, tif="gtc")
        # closes only: it holds nothing, and frees nothing until it fills
        assert b.get_account()["buying_power"] == pytest.approx(50_000)
        if venue == "alpaca":
            with pytest.raises(PositionConflict):  # 1,100 > the 500 not yet for sale
                b.submit_order("X", "sell", 1_100)
            continue
        if venue is None:
            # 500 left to close, 600 x 100 opened: 60,000 > 50,000
            err = refused(b, "X", "sell", 1_100)
            assert (err.required, err.available) == (60_000.0, 50_000.0)
            continue
        # IBKR: the 500 this order closes free 500 x 100 x 50% = 25,000 (the open sell's
        # 1,000 free nothing): (100,000 - 75,000 + 25,000) / 50% = 100,000
        err = refused(b, "X", "sell", 1_600)  # opens 1,100 x 100
        assert (err.required, err.available) == (110_000.0, 100_000.0)
        b.submit_order("X", "sell", 1_100)
        # the reservations are the usual ones: the new sell holds 600 x 100 x 50% =
        # 30,000 of the 25,000 of excess
        assert b.get_account()["buying_power"] == 0.0
        # and the next order closes nothing: no credit
        err = refused(b, "X", "sell", 1)
        assert (err.required, err.available) == (100.0, 0.0)


def test_pattern_day_traders_intraday_credit_is_at_the_maintenance_rate() -> None:
    # Flagged, intraday: buying power (equity - maintenance) / 25%. Long 1,000 at 100 on
    # 40,000 of debt: equity 60,000, maintenance 25,000: (60,000 - 25,000) / 25% = 140,000.
    def pdt(venue: str | None) -> PaperBroker:
        return broker(venue, cash=-40_000.0, long=1_000.0, bars=intraday(),
                      account=MarginAccount(pattern_day_trader=True))

    assert pdt("ibkr").get_account()["buying_power"] == pytest.approx(140_000)
    # A sell of 2,500 shorts 1,500 x 100 = 150,000. IBKR credits the 1,000's maintenance
    # 25,000 (the base's rate): 60,000 / 25% = 240,000.
    b = pdt("ibkr")
    b.submit_order("X", "sell", 2_500)
    err = refused(pdt(None), "X", "sell", 2_500)
    assert (err.required, err.available) == (150_000.0, 140_000.0)
    assert "needs 25% margin" in str(err)
    err = refused(pdt("ibkr"), "X", "sell", 3_500)  # shorts 2,500 x 100
    assert (err.required, err.available) == (250_000.0, 240_000.0)


def test_a_reversal_after_the_sessions_last_bar_is_credited_at_the_initial_rate() -> None:
    # The same flagged account at the day's last bar: overnight (2x) buying power,
    # (60,000 - 50,000) / 50% = 20,000; the credit is the 1,000's initial 50,000.
    bars = intraday()
    b = PaperBroker(bars, cash=-40_000.0, positions={"X": 1_000.0}, slippage=0, fees=0,
                    account=MarginAccount(pattern_day_trader=True), venue="ibkr")
    for _ in range(11):
        b.step()
    assert b.get_account()["buying_power"] == pytest.approx(20_000)
    err = refused(b, "X", "sell", 2_300)  # shorts 1,300 x 100 > 60,000 / 50%
    assert (err.required, err.available) == (130_000.0, 120_000.0)
    b.submit_order("X", "sell", 2_200)


def test_a_replace_into_a_reversal_is_credited_at_ibkr_only() -> None:
    for venue in (None, "ibkr"):
        b = broker(venue)
        o = b.submit_order("X", "sell", 1_000, "limit", limit_price=150.0, tif="gtc")
        # whole, 2,100 closes 1,500 and shorts 600 at max(150, 100) = 90,000
        if venue is None:
            with pytest.raises(ReplaceRejected) as err:
                b.replace_order(o["order_id"], qty=2_100)
            assert "requires 90,000.00, available 50,000.00" in str(err.value)
            continue
        b.replace_order(o["order_id"], qty=2_100)
        with pytest.raises(ReplaceRejected) as err:  # shorts 3,500 x 150 > 200,000
            b.replace_order(o["order_id"], qty=5_000)
        assert "requires 525,000.00, available 200,000.00" in str(err.value)


class _Exact(MarginAccount):
    lean_check = False


ORDERS = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 3_000),
                            st.sampled_from(["market", "limit"]),
                            st.sampled_from([90.0, 100.0, 110.0])),
                  min_size=1, max_size=8)


@settings(max_examples=80, deadline=None)
@given(position=st.integers(-2_000, 2_000), cash=st.integers(-100_000, 300_000),
       orders=ORDERS, pdt=st.booleans())
def test_the_lean_bound_decides_reversals_as_the_exact_check_at_ibkr(
        position: int, cash: int, orders: list[tuple[str, int, str, float]],
        pdt: bool) -> None:
    """The lean path (which credits nothing) and the exact path (which credits the
    closing part) take and refuse the same orders at IBKR: the lean bound only ever
    accepts what the exact check accepts. Both over the same random streams."""
    def run(kind: type[MarginAccount]) -> list[str]:
        b = PaperBroker(intraday(), cash=float(cash), slippage=0, fees=0, venue="ibkr",
                        positions={"X": float(position)} if position else {},
                        account=kind(pattern_day_trader=pdt))
        b.step()
        out = []
        for side, qty, kind_, px in orders:
            kw = {"limit_price": px} if kind_ == "limit" else {}
            try:
                b.submit_order("X", side, qty, kind_, tif="gtc", **kw)  # type: ignore[arg-type]
                out.append("taken")
            except OrderRejected as exc:
                out.append(str(exc))
        return out

    assert run(MarginAccount) == run(_Exact)
