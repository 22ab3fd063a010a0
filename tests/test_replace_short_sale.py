"""A replace that raises a sell so it would open or enlarge a short is weighed like a
submission of the replacement, at the fakes as at the paper broker, and refused the same
way through the adapters; the original order keeps working.

- IBKR cash account (no short sales): ``PaperBroker(venue="ibkr", account="cash")`` and
  ``FakeTWS(account_type="cash")`` (error 201) refuse the same raise with
  ``ReplaceRejected`` caused by ``InsufficientBuyingPower(rule="cash_account_short")``
  with the same figures, and the same opening sale at submission; an OCO exit pair is
  one sale of the shares held.
- Alpaca cash account (``multiplier`` 1): the raise crosses the long position through
  zero, refused by one side at a time first (``PositionConflict``, ``qty_available``) by
  ``PaperBroker(venue="alpaca", account="cash")`` and FakeAlpaca (403 40310000) alike.
- Alpaca's easy-to-borrow list: a short sale off it is refused (``HardToBorrow``) by the
  paper broker with a ``BorrowModel`` hard-to-borrow list and by
  ``FakeAlpaca(hard_to_borrow=)``; FakeAlpaca also refuses raising a short sale in a
  name that left the list (the paper broker does not weigh borrow on a replace).
- IBKR pattern-day-trader protection: raising a closing sell so it would open a short is
  refused like an opening order (``PatternDayTrading``).

Faults: TWS's refusal sent twice and the socket dropped right after it; Alpaca's
positions read after its 403 stalled. Each counts the refusals raised and the orders
working at the venue: none lost, none doubled.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _live import HAS_ALPACA, HAS_IB, connect_alpaca, connect_ib, ib_error_guard
from adapter_scenarios import wait_until

from simbroker import Bars, BorrowModel, PaperBroker
from simbroker.errors import (
    HardToBorrow,
    InsufficientBuyingPower,
    PatternDayTrading,
    PositionConflict,
    ReplaceRejected,
    ShortingNotAllowed,
)

no_decoder_errors = ib_error_guard(starts=("Error 201", "Error 202"),
                                   contains=("Peer closed connection",))

PRICE = 100.0
HELD = {"AAA": 100.0}
needs_ib = pytest.mark.skipif(not HAS_IB, reason="needs ib_async or ib_insync")
needs_alpaca = pytest.mark.skipif(not HAS_ALPACA, reason="needs alpaca-py")


def paper(**kw: Any) -> PaperBroker:
    ts = np.datetime64("2024-01-01T21:00", "ns") + np.arange(12) * np.timedelta64(
        1, "D").astype("timedelta64[ns]")
    px = np.full((12, 2), PRICE)
    bars = Bars.from_arrays(ts, ["AAA", "GME"], open=px, high=px, low=px, close=px,
                            volume=np.full(px.shape, 1e9))
    b = PaperBroker(bars, slippage=0, fees=0, **kw)
    b.step()  # a closed bar: marked at 100
    return b


def tws(**kw: Any) -> Any:
    from simbroker.testing.fake_tws import FakeTWS

    fake = FakeTWS(server_version=178, commission_per_share=0.0, min_commission=0.0,
                   **kw).start()
    for symbol in ("AAA", "GME"):
        fake.set_price(symbol, PRICE)
    return fake


def alpaca(**kw: Any) -> Any:
    from simbroker.testing.fake_alpaca import FakeAlpaca

    fake = FakeAlpaca(**kw).start()
    for symbol in ("AAA", "GME"):
        fake.set_price(symbol, PRICE)
    return fake


def sell(broker: Any, qty: float, limit: float, cid: str, symbol: str = "AAA") -> str:
    info = broker.submit_order(symbol, "sell", qty, "limit", limit_price=limit, tif="gtc",
                               client_order_id=cid)
    return str(info["order_id"])


def refusal(broker: Any, order_id: str, **change: Any) -> BaseException:
    """The replace is refused with its order unchanged; the refusal's cause."""
    before = broker.get_order(order_id)
    with pytest.raises(ReplaceRejected) as err:
        broker.replace_order(order_id, **change)
    after = broker.get_order(order_id)
    assert (after["status"], after["qty"], after["limit_price"]) == (
        before["status"], before["qty"], before["limit_price"])
    assert err.value.__cause__ is not None, err.value
    return err.value.__cause__


def working_at_tws(fake: Any) -> Counter[str]:
    with fake._lock:
        return Counter(o.order_ref for o in fake.orders.values()
                       if o.status in ("PreSubmitted", "Submitted"))


def working_at_alpaca(fake: Any) -> Counter[str]:
    from simbroker.testing.fake_alpaca import OPEN

    return Counter(o["client_order_id"] for _, o in fake.orders_by_client_id()
                   if o["status"] in OPEN)


# ------------------------------------------------------------------ IBKR cash account
@pytest.fixture
def cash_tws() -> Iterator[tuple[Any, Any]]:
    if not HAS_IB:
        pytest.skip("needs ib_async or ib_insync")
    fake = tws(account_type="cash", cash=10_000.0, positions=HELD)
    broker = connect_ib(fake)
    yield fake, broker
    broker.close()
    fake.stop()


@needs_ib
def test_a_cash_account_refuses_raising_a_sale_into_a_short_at_tws_as_in_paper(
        cash_tws: tuple[Any, Any]) -> None:
    fake, at_ibkr = cash_tws
    rehearsal = paper(cash=10_000.0, positions=HELD, venue="ibkr", account="cash")
    causes = []
    for b in (rehearsal, at_ibkr):
        a = sell(b, 100, 110.0, "a")
        cause = refusal(b, a, qty=150)
        assert isinstance(cause, InsufficientBuyingPower), (b, cause)
        assert cause.rule == "cash_account_short"
        causes.append(cause)
        assert b.replace_order(a, qty=80)["qty"] == 80  # lower always passes
        with pytest.raises(InsufficientBuyingPower) as err:  # 30 > 100 - 80
            sell(b, 30, 120.0, "b")
        assert err.value.rule == "cash_account_short"
        assert b.replace_order(a, qty=100, limit_price=111.0)["qty"] == 100
    paper_cause, tws_cause = causes
    assert (tws_cause.required, tws_cause.available) == pytest.approx(
        (paper_cause.required, paper_cause.available))
    assert (paper_cause.required, paper_cause.available) == (16_500.0, 11_000.0)
    assert working_at_tws(fake) == Counter({"a": 1})
    fake.set_price("AAA", 112.0)
    made = fake.step()
    assert at_ibkr.wait_for_fills({e.exec_id for e in made}, 10)
    assert at_ibkr.get_positions() == {}
    assert len(at_ibkr.get_fills()) == 1


@needs_ib
def test_a_cash_accounts_exit_pair_is_one_sale_at_tws_as_in_paper(
        cash_tws: tuple[Any, Any]) -> None:
    """The legs of an OCO pair sell the same shares (one of them trades): the pair is
    taken on 100 held, and a leg raised to the whole position is no short; one beyond
    it is."""
    fake, at_ibkr = cash_tws
    rehearsal = paper(cash=10_000.0, positions=HELD, venue="ibkr", account="cash")
    for b in (rehearsal, at_ibkr):
        tp = b.submit_order("AAA", "sell", 60, "limit", order_class="oco", tif="gtc",
                            take_profit={"limit_price": 110.0},
                            stop_loss={"stop_price": 90.0}, client_order_id="x")
        assert b.replace_order(tp["order_id"], qty=100)["qty"] == 100
        cause = refusal(b, tp["order_id"], qty=101)
        assert getattr(cause, "rule", None) == "cash_account_short", (b, cause)
    assert sum(working_at_tws(fake).values()) == 2  # the pair, once


@needs_ib
@pytest.mark.parametrize("faults", [("repeat_refusal",),
                                    ("repeat_refusal", "drop_after_refusal")])
def test_a_short_refusal_repeated_or_cut_off_at_tws_is_one_refusal(
        cash_tws: tuple[Any, Any], faults: tuple[str, ...]) -> None:
    fake, broker = cash_tws
    a = sell(broker, 60, 110.0, "rep")
    before = broker.reconnects
    refused = 0
    for kind in faults:
        fake.inject(kind)
    for qty in (150, 140):
        try:
            broker.replace_order(a, qty=qty)
        except ReplaceRejected as exc:
            refused += exc.rule == "cash_account_short"
        if "drop_after_refusal" in faults:
            wait_until(lambda: broker.reconnects > before
                       and broker.state.value == "ready", 15)
    assert refused == 2
    assert sum(fake.faults_injected[k] for k in faults) == len(faults)
    broker.flush()
    info = broker.get_order(a)
    assert (info["status"], info["qty"]) == ("new", 60)
    assert working_at_tws(fake) == Counter({"rep": 1})
    fake.set_price("AAA", 111.0)
    made = fake.step()
    assert broker.wait_for_fills({e.exec_id for e in made}, 10)
    assert broker.get_positions() == {"AAA": 40.0}
    assert len(broker.get_fills()) == 1


@needs_ib
def test_tws_refuses_raising_a_sale_into_a_short_for_a_potential_day_trader() -> None:
    fake = tws(cash=10_000.0, positions=HELD, day_trades_remaining=0)  # equity 20,000
    broker = connect_ib(fake)
    try:
        a = sell(broker, 50, 110.0, "pdt")  # closing: taken
        cause = refusal(broker, a, qty=150)
        assert isinstance(cause, PatternDayTrading)
        assert broker.replace_order(a, qty=100)["qty"] == 100  # still only closes
        assert working_at_tws(fake) == Counter({"pdt": 1})
    finally:
        broker.close()
        fake.stop()


# ------------------------------------------------------------------ Alpaca
@needs_alpaca
def test_an_alpaca_cash_account_refuses_the_raise_by_one_side_at_a_time_as_in_paper(
) -> None:
    fake = alpaca(cash=10_000.0, positions=HELD, multiplier=1)
    at_alpaca = connect_alpaca(fake)
    try:
        rehearsal = paper(cash=10_000.0, positions=HELD, venue="alpaca", account="cash")
        for b in (rehearsal, at_alpaca):
            a = sell(b, 100, 110.0, "a")
            cause = refusal(b, a, qty=150)
            assert isinstance(cause, PositionConflict), (b, cause)
            assert (cause.rule, cause.requested, cause.available) == (
                "qty_available", 150, 100)
            assert b.replace_order(a, qty=80)["qty"] == 80
        # One live version (the replacement has a client order id of its own).
        assert sum(working_at_alpaca(fake).values()) == 1
        assert len(at_alpaca.get_orders(open_only=True)) == 1
    finally:
        at_alpaca.close()
        fake.stop()


@needs_alpaca
def test_an_alpaca_cash_account_refuses_shorts_and_crossings_as_in_paper() -> None:
    # Flat GME, sell 10: "account is not allowed to short" -> ShortingNotAllowed (rule
    # cash_account_short in paper's log). Long 100 AAA, sell 150: one side at a time
    # first -> PositionConflict. Selling the 100 held passes in both.
    fake = alpaca(cash=10_000.0, positions=HELD, multiplier=1)
    at_alpaca = connect_alpaca(fake)
    try:
        rehearsal = paper(cash=10_000.0, positions=HELD, venue="alpaca", account="cash")
        rules = []
        for b in (rehearsal, at_alpaca):
            with pytest.raises(ShortingNotAllowed) as short:
                sell(b, 10, 120.0, "s", symbol="GME")
            assert not isinstance(short.value, HardToBorrow)
            assert (short.value.position, short.value.qty) == (0.0, 10), b
            rules.append(short.value.rule)
            with pytest.raises(PositionConflict) as crossing:
                sell(b, 150, 120.0, "c")
            assert (crossing.value.rule, crossing.value.available) == ("qty_available", 100)
            assert sell(b, 100, 120.0, "ok")
        assert rules[0] == "cash_account_short"  # paper names the account's rule
        assert working_at_alpaca(fake) == Counter({"ok": 1})
    finally:
        at_alpaca.close()
        fake.stop()


@needs_alpaca
def test_a_short_sale_off_alpacas_easy_to_borrow_list_is_refused_as_in_paper() -> None:
    fake = alpaca(hard_to_borrow={"GME"})
    at_alpaca = connect_alpaca(fake)
    try:
        rehearsal = paper(cash=100_000.0, venue="alpaca", account="margin",
                          borrow=BorrowModel(hard_to_borrow={"GME"}))
        for b in (rehearsal, at_alpaca):
            with pytest.raises(HardToBorrow) as err:
                sell(b, 10, 120.0, "h", symbol="GME")
            assert err.value.rule == "hard_to_borrow"
            assert (err.value.short, err.value.located) == (10, 0)
            assert sell(b, 10, 120.0, "e")  # AAA is easy to borrow
        assert working_at_alpaca(fake) == Counter({"e": 1})
    finally:
        at_alpaca.close()
        fake.stop()


@needs_alpaca
@pytest.mark.parametrize("stall", [False, True])
def test_alpaca_refuses_raising_a_short_in_a_name_that_left_the_list(stall: bool) -> None:
    fake = alpaca()
    broker = connect_alpaca(fake, timeout=0.5)
    try:
        a = sell(broker, 10, 120.0, "g", symbol="GME")  # easy to borrow when placed
        fake.hard_to_borrow.add("GME")
        if stall:  # the positions read after the 403 comes too late
            fake.stall_next(1.0, method="GET", path="/v2/positions")
        cause = refusal(broker, a, qty=20)
        assert isinstance(cause, HardToBorrow)
        assert cause.qty == 20
        assert math.isnan(cause.short) if stall else cause.short == 20
        assert broker.replace_order(a, qty=5)["qty"] == 5  # adds no short: taken
        assert sum(working_at_alpaca(fake).values()) == 1  # one live version
        assert len(list(fake.orders_by_client_id())) == 2  # the original, one replacement
        assert fake.faults["stalled_answer"] == int(stall)
    finally:
        broker.close()
        fake.stop()
