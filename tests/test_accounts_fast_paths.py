"""The fast paths of the account models and the volume cap against the array code they
replace, on random inputs: the same floats, so the same refusals and fills."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker import PaperBroker, _paper_volume, synthetic_bars
from simbroker._paper_book import OpenBook
from simbroker._paper_volume import capped_quantities
from simbroker.accounts import CashAccount, _reserve
from simbroker.accounts._margin import _zero_nan
from simbroker.accounts._reserve import Reservations, same_side_open
from simbroker.errors import OrderRejected
from simbroker.financing._accrue import borrow_fees
from simbroker.models import BpsOfNotional, NoFee

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QTY = st.one_of(st.sampled_from([1.0, 100.0, 0.1, 0.2, 1e16]), st.floats(1e-6, 1e9))


@PROPS
@given(orders=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([1.0, -1.0]), QTY),
                       max_size=40),
       col=st.integers(0, 3), sign=st.sampled_from([1.0, -1.0]),
       leave=st.sets(st.integers(0, 39), max_size=4))
def test_same_side_open_equals_the_masked_sum(orders: list[tuple[int, float, float]],
                                              col: int, sign: float, leave: set[int]
                                              ) -> None:
    book = OpenBook(capacity=4)
    for k, (sym, sgn, qty) in enumerate(orders):
        book.add(f"o{k}", sym, sgn, qty, 0, np.nan, np.nan, 0, 10)
    n = book.n
    leave = {i for i in leave if i < n}  # slots of the book (a replaced leg's siblings)
    mask = (book.sym[:n] == col) & (book.sign[:n] == sign)
    mask[list(leave)] = False
    want = float(book.qty[:n][mask].sum())
    got = same_side_open(book, col, sign, leave_out=leave)
    saved = _reserve.SMALL_BOOK
    try:
        _reserve.SMALL_BOOK = -1  # the array path
        forced = same_side_open(book, col, sign, leave_out=leave)
    finally:
        _reserve.SMALL_BOOK = saved
    assert np.float64(got).tobytes() == np.float64(want).tobytes() == \
        np.float64(forced).tobytes()


@PROPS
@given(marks=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                st.just(np.nan)), max_size=12))
def test_zero_nan_is_nan_to_num(marks: list[float]) -> None:
    m = np.array(marks, np.float64)
    got = _zero_nan(m)
    assert got is not m
    assert got.tobytes() == np.nan_to_num(m).tobytes()


@pytest.mark.parametrize("n", [0, 1, 2, 9])
def test_same_side_open_hand_computed(n: int) -> None:
    book = OpenBook()
    for k in range(n):
        book.add(f"o{k}", 1, 1.0, 0.1, 0, np.nan, np.nan, 0, 10)
    book.add("x", 1, -1.0, 5.0, 0, np.nan, np.nan, 0, 10)
    book.add("y", 2, 1.0, 7.0, 0, np.nan, np.nan, 0, 10)
    assert same_side_open(book, 1, 1.0) == float(np.full(n, 0.1).sum())
    assert same_side_open(book, 1, -1.0) == 5.0
    assert same_side_open(book, 3, 1.0) == 0.0


@PROPS
@given(fills=st.lists(st.tuples(st.integers(0, 3),
                                st.one_of(st.sampled_from([1.0, 100.0, 250.0, 0.5]),
                                          st.floats(1e-3, 1e6)),
                                st.one_of(st.sampled_from([1.0, 1000.0, 4e4]),
                                          st.floats(1e-3, 1e8))), max_size=20),
       share=st.one_of(st.sampled_from([0.025, 1.0, 0.1]), st.floats(1e-6, 1.0)))
def test_capped_quantities_small_path_equals_the_array_path(
        fills: list[tuple[int, float, float]], share: float) -> None:
    sym = np.array([f[0] for f in fills], np.int64)
    remaining = np.array([f[1] for f in fills], np.float64)
    vol_by_sym = {f[0]: f[2] for f in fills}  # one volume per symbol, as on one bar
    volume = np.array([vol_by_sym[f[0]] for f in fills], np.float64)
    saved = _paper_volume.SMALL
    try:
        _paper_volume.SMALL = -1
        want_q, want_w = capped_quantities(sym, remaining, volume, share)
        _paper_volume.SMALL = 1 << 30
        got_q, got_w = capped_quantities(sym, remaining, volume, share)
    finally:
        _paper_volume.SMALL = saved
    assert got_q.dtype == want_q.dtype
    assert got_w.dtype == want_w.dtype
    assert got_q.tobytes() == want_q.tobytes()
    assert got_w.tolist() == want_w.tolist()


ACTIONS = st.lists(st.tuples(
    st.sampled_from(["submit", "submit", "submit", "replace", "cancel", "step", "oco"]),
    st.sampled_from(["SYM000", "SYM001", "SYM002"]), st.sampled_from(["buy", "sell"]),
    st.sampled_from([10.0, 150.0, 400.0, 2500.0, 0.5]),
    st.sampled_from(["market", "limit", "limit", "stop", "stop_limit"]),
    st.sampled_from([0.8, 0.95, 1.0, 1.25]), st.integers(0, 50)), min_size=1, max_size=45)


def _run_flow(account: str, actions: list[tuple[Any, ...]], cash: float,
              kept: bool) -> list[Any]:
    Reservations.enabled = kept
    try:
        bars = synthetic_bars(n_symbols=3, n_bars=20, seed=3, start="2024-06-03")
        b = PaperBroker(bars, cash=cash, account=account, slippage=0, fees="ibkr_fixed",
                        positions={"SYM000": 200.0})
        b.step()
        out: list[Any] = []
        ids: list[str] = []
        for what, sym, side, qty, kind, f, pick in actions:
            px = float(bars.close[b._t, bars.symbol_index(sym)]) * f
            try:
                if what == "step":
                    if b.has_next:
                        b.step()
                    out.append(("step", b.get_cash()))
                elif what in ("replace", "cancel") and ids:
                    oid = ids[pick % len(ids)]
                    if what == "cancel":
                        b.cancel_order(oid)
                    else:
                        b.replace_order(oid, qty=qty if pick % 2 else None,
                                        limit_price=px if pick % 3 == 0 else None)
                    out.append((what, oid, "ok"))
                elif what == "oco":  # a group: its live legs hold the largest leg
                    bracket = pick % 2 == 1
                    up = (side == "buy") == bracket  # take profit above the stop loss
                    o = b.submit_order(sym, side, qty, "market" if bracket else "limit",
                                       limit_price=None if bracket else px * (
                                           1.1 if up else 0.9),
                                       order_class="bracket" if bracket else "oco",
                                       take_profit={"limit_price": px * (1.1 if up else 0.9)},
                                       stop_loss={"stop_price": px * (0.9 if up else 1.1)},
                                       tif="gtc")
                    ids.append(o["order_id"])
                    out.append(("oco", o["order_id"]))
                else:
                    o = b.submit_order(
                        sym, side, qty, kind, tif="gtc",
                        limit_price=px if kind in ("limit", "stop_limit") else None,
                        stop_price=px if kind in ("stop", "stop_limit") else None)
                    ids.append(o["order_id"])
                    out.append(("ok", o["order_id"]))
            except OrderRejected as exc:
                out.append(("refused", type(exc).__name__, getattr(exc, "required", None),
                            getattr(exc, "available", None), str(exc)))
            info = b.get_account()
            out.append((info["buying_power"], info["equity"]))
        out.append([(f["order_id"], f["qty"], f["price"], f["fee"]) for f in b.get_fills()])
        return out
    finally:
        Reservations.enabled = True


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(account=st.sampled_from(["margin", "cash"]), actions=ACTIONS,
       cash=st.sampled_from([5_000.0, 40_000.0, 400_000.0]))
def test_kept_reservations_decide_as_a_full_pass(account: str,
                                                 actions: list[tuple[Any, ...]],
                                                 cash: float) -> None:
    assert _run_flow(account, actions, cash, True) == _run_flow(account, actions, cash, False)


@PROPS
@given(bps=st.one_of(st.sampled_from([0.0, 1.0, 2.5]), st.floats(0.0, 10_000.0)),
       qty=st.one_of(st.sampled_from([1.0, 100.0, 0.3]), st.floats(1e-6, 1e9)),
       px=st.one_of(st.sampled_from([0.01, 25.0, 1e4]), st.floats(1e-4, 1e6)))
def test_cash_fee_estimate_equals_the_fee_model(bps: float, qty: float, px: float) -> None:
    for fees in (BpsOfNotional(bps=bps), NoFee()):
        b = PaperBroker(synthetic_bars(n_symbols=1, n_bars=3, seed=1), account="cash",
                        fees=fees)
        acct = b.account
        assert isinstance(acct, CashAccount)
        want = float(fees.fees(np.array([1.0]), np.array([qty]), np.array([px]))[0])
        assert np.float64(acct._fee(qty, px)).tobytes() == np.float64(want).tobytes()


@PROPS
@given(data=st.lists(st.tuples(st.floats(0.0, 1e7), st.one_of(st.floats(0.0, 1e5), st.just(np.nan)),
                               st.floats(0.0, 5.0)), min_size=1, max_size=20),
       days=st.sampled_from([1.0, 3.0]))
def test_no_short_means_no_borrow_fee(data: list[tuple[float, float, float]],
                                      days: float) -> None:
    # PaperFinancing.apply skips borrow_fees when no position is short: it would book 0.0
    pos, close, rates = (np.array([d[k] for d in data]) for k in range(3))
    assert float(np.sum(borrow_fees(pos, close, rates, days, 360.0))) == 0.0
