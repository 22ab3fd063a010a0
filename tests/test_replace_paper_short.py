"""The paper broker weighs a replace by the short-sale rules a submission meets.

A replace that raises a sell is weighed as a new order for what is left, the old order's
remainder set aside: ``allow_short=False`` and a ``BorrowModel`` hard-to-borrow list
refuse it exactly where they refuse that order (``ReplaceRejected`` caused by
``ShortingNotAllowed`` / ``HardToBorrow``, ``rule`` the same), and nothing changes.
FakeAlpaca refuses the same raise (``tests/test_replace_short_sale.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_replace_short_sale import paper

from simbroker import BorrowModel, PaperBroker
from simbroker.errors import HardToBorrow, ReplaceRejected, ShortingNotAllowed


def sell(b: PaperBroker, qty: float, symbol: str = "AAA") -> str:
    return str(b.submit_order(symbol, "sell", qty, "limit", limit_price=120.0,
                              tif="gtc")["order_id"])


def refused(b: PaperBroker, order_id: str, **change: Any) -> ReplaceRejected:
    before = b.get_order(order_id)
    cash, pos = b.get_cash(), dict(b.get_positions())
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(order_id, **change)
    after = b.get_order(order_id)
    assert (after["status"], after["qty"]) == (before["status"], before["qty"])
    assert (b.get_cash(), dict(b.get_positions())) == (cash, pos)
    return err.value


def test_a_hard_to_borrow_raise_beyond_the_locate_is_refused_like_a_new_order() -> None:
    b = paper(cash=100_000.0, borrow=BorrowModel(hard_to_borrow={"GME"}),
              trade_log=None)
    b.locate("GME", 10)
    a = sell(b, 10, "GME")  # the locate covers it
    err = refused(b, a, qty=20)
    assert err.rule == "hard_to_borrow"
    assert err.field == "qty"
    cause = err.__cause__
    assert isinstance(cause, HardToBorrow)
    assert (cause.short, cause.located, cause.qty) == (20, 10, 20)
    # What a new order would meet: the same refusal at submission, by the same numbers.
    b.cancel_order(a)
    with pytest.raises(HardToBorrow) as new:
        sell(b, 20, "GME")
    assert (new.value.short, new.value.located) == (cause.short, cause.located)
    a = sell(b, 10, "GME")
    assert b.replace_order(a, qty=5)["qty"] == 5  # lowered: no new short
    b.locate("GME", 10)
    assert b.replace_order(a, qty=20)["qty"] == 20  # located now


def test_raising_a_sale_into_a_short_without_allow_short_names_the_rule() -> None:
    b = paper(cash=100_000.0, allow_short=False, positions={"AAA": 10})
    a = sell(b, 5)
    assert b.replace_order(a, qty=10)["qty"] == 10  # the whole position: no short
    err = refused(b, a, qty=11)
    assert err.rule == "allow_short"
    assert isinstance(err.__cause__, ShortingNotAllowed)
    assert (err.__cause__.position, err.__cause__.qty) == (10, 11)
    # A second sell counts against what the replace may take.
    assert b.replace_order(a, qty=9)["qty"] == 9
    sell(b, 0.5)
    err = refused(b, a, qty=10)
    assert err.rule == "allow_short"


@settings(max_examples=25, deadline=None)
@given(held=st.integers(0, 30), located=st.integers(0, 30), first=st.integers(1, 30),
       other=st.integers(0, 10), raised=st.integers(1, 60))
def test_a_replace_is_refused_exactly_where_the_new_order_would_be(
        held: int, located: int, first: int, other: int, raised: int) -> None:
    """Replace ``first`` by ``raised`` == cancel it and submit ``raised``, on the
    hard-to-borrow rule, whatever the position, locate and other open sells."""
    def broker() -> PaperBroker:
        b = paper(cash=1e6, positions={"GME": held} if held else None,
                  borrow=BorrowModel(hard_to_borrow={"GME"}))
        if located:
            b.locate("GME", located)
        return b

    outcomes = []
    for how in ("replace", "cancel and submit"):
        b = broker()
        try:
            a = sell(b, first, "GME")
        except HardToBorrow:
            return  # the first order itself is refused: nothing to replace
        if other:
            try:
                sell(b, other, "GME")
            except HardToBorrow:
                return
        try:
            if how == "replace":
                b.replace_order(a, qty=raised)
            else:
                b.cancel_order(a)
                sell(b, raised, "GME")
            outcomes.append(None)
        except ReplaceRejected as exc:
            outcomes.append(exc.rule)
        except HardToBorrow as exc:
            outcomes.append(exc.rule)
    if raised <= first:  # a lowered (or kept) sale is never refused by this rule
        assert outcomes[0] is None
    else:
        assert outcomes[0] == outcomes[1], outcomes
