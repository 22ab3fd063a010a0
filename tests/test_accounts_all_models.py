"""Every model at once: a margin account that liquidates, partial fills by volume, borrow
fees with a hard-to-borrow list and locates, debit and credit interest, a published fee
schedule, a split and a dividend. Cash and shares are conserved exactly, no accepted
order exceeds the buying power reported just before it, and partial fills respect the
volume cap and add up to each order's quantity or what it left unfilled."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from simbroker import Bars, PaperBroker, synthetic_bars
from simbroker.accounts import MarginAccount
from simbroker.accounts._reserve import opening_qty
from simbroker.actions import CorporateActions, attach_actions
from simbroker.errors import OrderRejected
from simbroker.financing import BorrowModel, InterestModel
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log
from simbroker.types import Side

N_BARS = 30
# Starting cash beside 60,000 of stock: on a 35,000 debit a 22% fall is a margin call;
# with a credit, buying power leaves room for shorts (borrow fees) and partial fills.
CASHES = st.sampled_from([-35_000.0, 20_000.0, 80_000.0])
SHARE = 0.05
SYMS = ("SYM000", "SYM001", "SYM002")  # SYM001 splits 2:1, SYM000 pays a dividend
HTB = "SYM002"  # hard to borrow, 40 shares located

ORDERS = st.lists(st.tuples(
    st.integers(0, N_BARS - 2), st.sampled_from(SYMS), st.sampled_from(["buy", "sell"]),
    st.sampled_from([20, 150, 900, 4000]), st.sampled_from([None, 0.97, 1.03]),
    st.sampled_from(["day", "gtc"])), min_size=1, max_size=40)


def broker_for(seed: int, split_at: int, div_at: int, cash: float,
               path: Path) -> PaperBroker:
    bars = synthetic_bars(n_symbols=3, n_bars=N_BARS, seed=seed, start="2024-06-03",
                          volatility=0.9)
    rng = np.random.default_rng(seed)
    vol = rng.integers(100, 8_000, size=np.shape(bars.volume)).astype(float)
    px = {f: np.array(getattr(bars, f), float) for f in ("open", "high", "low", "close")}
    for a in px.values():
        a[split_at:, 1] /= 2.0  # as traded: SYM001 halves at its 2:1 split
    bars = type(bars).from_arrays(bars.ts_ns.view("datetime64[ns]"), list(bars.symbols),
                                  open=px["open"], high=px["high"], low=px["low"],
                                  close=px["close"], volume=vol)
    ts = bars.ts_ns
    actions = CorporateActions.from_rows(
        ["SYM001", "SYM000"], np.array([ts[split_at], ts[div_at]]),
        split=np.array([2.0, np.nan]), dividend=np.array([0.0, 0.75]))
    bars = attach_actions(bars, actions, prices="raw")
    return PaperBroker(
        bars, cash=cash, positions={"SYM000": 300.0, "SYM001": 300.0}, slippage=5.0,
        fees="ibkr_fixed", trade_log=TradeLog(path),
        account=MarginAccount(liquidate=True), max_volume_share=SHARE,
        borrow=BorrowModel(rate=0.03, rates={HTB: 0.6}, hard_to_borrow=[HTB],
                           located={HTB: 40}),
        interest=InterestModel(debit=0.09, credit=0.03))


def opening_part(b: PaperBroker, sym: str, side: str, qty: float) -> float:
    held = b.get_positions().get(sym, 0.0)
    same = sum(o["remaining_qty"] for o in b.get_orders(open_only=True)
               if o["symbol"] == sym and o["side"] == side)
    return opening_qty(Side(side), qty, held, same)


@settings(max_examples=60, deadline=None, derandomize=True, phases=[Phase.generate, Phase.target],
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), split_at=st.integers(2, N_BARS - 2),
       div_at=st.integers(2, N_BARS - 2), cash=CASHES, orders=ORDERS)
def test_every_model_at_once_conserves_cash_and_shares(
        tmp_path_factory: pytest.TempPathFactory, seed: int, split_at: int, div_at: int,
        cash: float, orders: list[tuple[Any, ...]]) -> None:
    path = tmp_path_factory.mktemp("all") / "log.jsonl"
    b = broker_for(seed, split_at, div_at, cash, path)
    acct = b.account
    assert isinstance(acct, MarginAccount)
    accepted: dict[str, int] = {}  # order id: the bar it was sent after
    for t in range(N_BARS):
        b.step()
        for when, sym, side, qty, rel, tif in orders:
            if when != t:
                continue
            col = b.bars.symbol_index(sym)
            close = float(b.bars.close[t, col])
            before = b.get_account()["buying_power"]
            opening = opening_part(b, sym, side, qty)
            kw: dict[str, Any] = {"tif": tif}
            if rel is not None:
                kw.update(order_type="limit", limit_price=round(close * rel, 2))
            try:
                info = b.submit_order(sym, side, qty, **kw)
            except OrderRejected:
                continue
            accepted[info["order_id"]] = t
            order = b._orders[info["order_id"]].order
            required = opening * acct.price(order, col)
            assert required <= before * (1 + 1e-9) + 1e-6, (sym, side, qty, required, before)
    b.close()

    records = read_trade_log(path)
    kinds = {r["event"] for r in records}
    for kind in ("margin_call", "borrow_fee", "interest", "dividend", "split", "rejected"):
        event(f"{kind}: {kind in kinds}")
    event(f"partial fills: {len(b.get_fills()) > len({f['order_id'] for f in b.get_fills()})}")
    # Cash: every fill, fee, borrow fee, interest accrual and dividend, and nothing else.
    fills = b.get_fills()
    signed = [f["notional"] * (1 if f["side"] == "buy" else -1) for f in fills]
    borrow = [r["amount"] for r in records if r["event"] == "borrow_fee"]
    interest = [r["amount"] for r in records if r["event"] == "interest"]
    dividends = [r["amount"] for r in records if r["event"] == "dividend"
                 and r.get("stage", "paid") == "paid"]
    expected = math.fsum([cash, *(-s for s in signed), *(-f["fee"] for f in fills),
                          *(-x for x in borrow), *(-x for x in interest), *dividends])
    assert math.isclose(b.get_cash(), expected, rel_tol=1e-12, abs_tol=1e-7)
    state = replay_trade_log(path)
    assert state.cash == b.get_cash()  # the log's arithmetic is the broker's, bit for bit
    assert state.positions == b.get_positions()
    # Shares: the fills in order, each split multiplying what is held.
    pos: dict[str, float] = defaultdict(float, {"SYM000": 300.0, "SYM001": 300.0})
    for r in records:
        if r["event"] == "filled":
            pos[r["symbol"]] += r["qty"] if r["side"] == "buy" else -r["qty"]
        elif r["event"] == "split":
            pos[r["symbol"]] *= r["ratio"]
    held = {s: q for s, q in pos.items() if abs(q) > 1e-9}
    assert held.keys() == b.get_positions().keys()
    for s, q in held.items():
        assert math.isclose(q, b.get_positions()[s], rel_tol=1e-12, abs_tol=1e-9)
    assert all(-q <= 40 + 1e-9 for s, q in b.get_positions().items() if s == HTB)
    # Partial fills: the cap per symbol and bar; each order's fills add up.
    per_bar: dict[tuple[str, Any], float] = defaultdict(float)
    for f in fills:
        per_bar[(f["symbol"], f["timestamp"])] += f["qty"]
    index = {ts: i for i, ts in enumerate(b.bars.index)}
    for (sym, when), q in per_bar.items():
        cap = SHARE * float(b.bars.volume[index[when], b.bars.symbol_index(sym)])
        assert q <= cap * (1 + 1e-9) + 1e-9, (sym, when, q, cap)
    split_ts = b.bars.index[split_at]
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in fills:
        by_order[f["order_id"]].append(dict(f))
    for oid, sent in accepted.items():
        info = b.get_order(oid)
        got = math.fsum(f["qty"] for f in by_order[oid])
        done_before = info["status"] == "filled" and all(
            f["timestamp"] < split_ts for f in by_order[oid])
        if info["symbol"] == "SYM001" and sent < split_at and not done_before:
            continue  # open at the split, which changed its quantity
        assert math.isclose(got, info["filled_qty"], rel_tol=1e-12, abs_tol=1e-9)
        assert math.isclose(info["filled_qty"] + info["remaining_qty"], info["qty"],
                            rel_tol=1e-12, abs_tol=1e-9)
        if info["status"] == "filled":
            assert math.isclose(got, info["qty"], rel_tol=1e-12, abs_tol=1e-9)
        elif info["status"] in ("expired", "canceled", "rejected"):
            assert got < info["qty"] * (1 - 1e-12)
        else:
            assert info["status"] in ("new", "partially_filled")


def test_ledger_rows_of_financing_and_actions_do_not_shift_the_accounts_fills() -> None:
    # The broker's ledger also has rows for borrow fees, interest, splits and dividends;
    # the account read fill k from row k, so after the first day-end accrual it booked
    # each fill with another fill's bar, symbol and position (a buy on day 1 and a sell
    # on day 2 became a day trade).
    ts = np.array([np.datetime64("2024-06-03T10:00", "ns") + np.timedelta64(d, "D")
                   + np.timedelta64(h, "h") for d in range(3) for h in range(4)])
    c = np.full((len(ts), 2), 100.0)
    bars = Bars.from_arrays(ts, ["X", "Y"], open=c, high=c, low=c, close=c,
                            volume=np.full(c.shape, 1000.0))
    b = PaperBroker(bars, account="margin", slippage=0, fees=0, max_volume_share=0.1,
                    borrow=BorrowModel(rate=0.5), interest=InterestModel(debit=0.5))
    acct = b.account
    assert isinstance(acct, MarginAccount)
    b.step()
    b.submit_order("X", "buy", 300, tif="gtc")  # 100 on each of bars 1-3 (day 1)
    b.step()
    b.submit_order("Y", "sell", 50)  # a short: a borrow fee at day 1's end
    for _ in range(4):
        b.step()
    b.submit_order("X", "sell", 100)  # day 2: not a day trade
    b.step()
    assert len(b._ledger_bar) > len(b.get_fills())  # financing rows among the fills
    assert acct.day_trades.days == []
    assert b.get_account()["day_trades"] == 0
