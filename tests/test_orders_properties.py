"""Hypothesis properties of issue 18's orders in the paper broker.

Random bars (gaps, zero-volume bars), random orders at random bars, random settings:
- a bracket never leaves both exits filled, never trades an exit before (or on the bar
  of) its entry's fill, and never leaves an exit without the position (no shorting);
- an OCO fills at most one leg;
- a trailing stop's level is monotone and it fills at min(open, level) (sell) or
  max(open, level) (buy) of the bar, the level being the one before that bar;
- replaces and cancels keep cash and shares conserved.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simbroker.bars import Bars
from simbroker.errors import ReplaceRejected
from simbroker.paper import PaperBroker

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def bar_panels(draw: Any, min_bars: int = 6, max_bars: int = 25) -> Bars:
    """One symbol ``X``, a random walk with gaps; now and then a bar with no volume."""
    n = draw(st.integers(min_bars, max_bars))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.02, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.03, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.03, n))
    vol = np.where(rng.uniform(size=n) < 0.1, 0.0, 1e6)
    ts = np.datetime64("2024-01-02T14:00", "ns") + np.arange(n) * np.timedelta64(
        86_400_000_000_000, "ns")
    col = lambda a: a.reshape(-1, 1)  # noqa: E731
    return Bars.from_arrays(ts, ["X"], open=col(open_), high=col(high), low=col(low),
                            close=col(close), volume=col(vol))


def costs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"slippage": st.sampled_from([0, 3.0]),
                                  "fees": st.sampled_from([0, 1.0]),
                                  "both_legs": st.sampled_from(["stop", "take_profit"])})


def conserved(b: PaperBroker, cash0: float, pos0: float = 0.0) -> None:
    fills = b.get_fills()
    flow = sum((f["notional"] if f["side"] == "sell" else -f["notional"]) - f["fee"]
               for f in fills)
    assert math.isclose(b.get_cash(), cash0 + flow, rel_tol=1e-12, abs_tol=1e-6)
    pos = pos0 + sum(f["qty"] if f["side"] == "buy" else -f["qty"] for f in fills)
    assert math.isclose(b.get_positions().get("X", 0.0), pos, abs_tol=1e-9)


@SETTINGS
@given(bars=bar_panels(), kw=costs(), data=st.data())
def test_brackets_fill_one_exit_after_their_entry_and_never_short(
        bars: Bars, kw: dict[str, Any], data: st.DataObject) -> None:
    b = PaperBroker(bars, cash=1e7, **kw)
    parents: list[str] = []
    while b.has_next:
        t = b.step()
        last = float(bars.close[t, 0])
        if data.draw(st.booleans(), label=f"bracket after bar {t}"):
            up = data.draw(st.floats(0.005, 0.1), label="tp")
            down = data.draw(st.floats(0.005, 0.1), label="sl")
            stop_limit = data.draw(st.booleans(), label="stop-limit exit")
            entry = data.draw(st.sampled_from(["market", "limit"]), label="entry")
            sl: dict[str, float] = {"stop_price": last * (1 - down)}
            if stop_limit:
                sl["limit_price"] = last * (1 - down) * 0.99
            p = b.submit_order(
                "X", "buy", data.draw(st.integers(1, 50), label="qty"), entry,
                limit_price=last if entry == "limit" else None, order_class="bracket",
                take_profit={"limit_price": last * (1 + up)}, stop_loss=sl,
                tif=data.draw(st.sampled_from(["day", "gtc"]), label="tif"))
            parents.append(p["order_id"])
        if parents and data.draw(st.integers(0, 9), label="cancel") == 0:
            b.cancel_order(data.draw(st.sampled_from(parents), label="which"))
    fills = b.get_fills()
    bar_of = {f["order_id"]: f["timestamp"] for f in fills}
    running = 0.0
    for f in fills:  # in booking order: an exit never sells a position that is not there
        running += f["qty"] if f["side"] == "buy" else -f["qty"]
        assert running >= -1e-9
    for pid in parents:
        legs = b.get_order(pid)["legs"]
        filled = [leg for leg in legs if leg in bar_of]
        assert len(filled) <= 1, f"both exits of {pid} filled"
        if filled:
            assert pid in bar_of, "an exit filled without its entry"
            assert bar_of[filled[0]] > bar_of[pid], "an exit traded on its entry's bar"
            assert b.get_order(filled[0])["qty"] <= b.get_order(pid)["filled_qty"]
        for leg in legs:
            info = b.get_order(leg)
            if pid not in bar_of:
                assert info["status"] in ("held", "canceled")
    conserved(b, 1e7)


@SETTINGS
@given(bars=bar_panels(), kw=costs(), data=st.data())
def test_oco_fills_at_most_one_leg(bars: Bars, kw: dict[str, Any],
                                   data: st.DataObject) -> None:
    b = PaperBroker(bars, cash=1e7, positions={"X": 1000.0}, allow_short=False, **kw)
    ocos = []
    while b.has_next:
        t = b.step()
        last = float(bars.close[t, 0])
        if data.draw(st.booleans(), label=f"oco after bar {t}"):
            try:
                o = b.submit_order("X", "sell", data.draw(st.integers(1, 100), label="qty"),
                                   "limit", order_class="oco",
                                   take_profit={"limit_price": last * 1.02},
                                   stop_loss={"stop_price": last * 0.98}, tif="gtc")
            except Exception:  # ShortingNotAllowed: the open legs already sell it all
                continue
            ocos.append(o)
    for o in ocos:
        ids = [o["order_id"], *o["legs"]]
        assert sum(b.get_order(i)["status"] == "filled" for i in ids) <= 1
    assert b.get_positions().get("X", 0.0) >= 0
    conserved(b, 1e7, 1000.0)


@SETTINGS
@given(bars=bar_panels(), data=st.data())
def test_trailing_level_is_monotone_and_fills_at_the_level_or_the_gap(
        bars: Bars, data: st.DataObject) -> None:
    side = data.draw(st.sampled_from(["sell", "buy"]), label="side")
    kind = data.draw(st.sampled_from(["trail_amount", "trail_percent"]), label="kind")
    trail = data.draw(st.floats(0.5, 8.0), label="trail")
    b = PaperBroker(bars, cash=1e7, slippage=0, fees=0)
    b.step()
    oid = b.submit_order("X", side, 1, "trailing_stop", tif="gtc", **{kind: trail})["order_id"]
    levels = [b.get_order(oid)["stop_price"]]
    while b.has_next and b.get_order(oid)["status"] == "new":
        t = b.step()
        info = b.get_order(oid)
        if info["status"] == "filled":
            o, h, lo = (float(bars.open[t, 0]), float(bars.high[t, 0]),
                        float(bars.low[t, 0]))
            level = levels[-1]
            px = b.get_fills()[-1]["price"]
            if side == "sell":
                assert lo <= level
                assert px == pytest.approx(min(o, level))
            else:
                assert h >= level
                assert px == pytest.approx(max(o, level))
            break
        levels.append(info["stop_price"])
    steps = np.diff(np.array(levels, dtype=float))
    if side == "sell":
        assert (steps >= -1e-9).all(), levels
    else:
        assert (steps <= 1e-9).all(), levels


@SETTINGS
@given(bars=bar_panels(), kw=costs(), data=st.data())
def test_replace_and_cancel_keep_cash_and_shares_conserved(
        bars: Bars, kw: dict[str, Any], data: st.DataObject) -> None:
    b = PaperBroker(bars, cash=1e7, **kw)
    ids: list[str] = []
    while b.has_next:
        t = b.step()
        last = float(bars.close[t, 0])
        for _ in range(data.draw(st.integers(0, 2), label=f"orders after bar {t}")):
            kind = data.draw(st.sampled_from(["limit", "stop", "trailing_stop"]), label="k")
            side = data.draw(st.sampled_from(["buy", "sell"]), label="side")
            qty = data.draw(st.integers(1, 20), label="qty")
            away = data.draw(st.floats(-0.05, 0.05), label="away")
            if kind == "limit":
                o = b.submit_order("X", side, qty, "limit", limit_price=last * (1 + away),
                                   tif="gtc")
            elif kind == "stop":
                px = last * (1 + abs(away)) if side == "buy" else last * (1 - abs(away))
                o = b.submit_order("X", side, qty, "stop", stop_price=px, tif="gtc")
            else:
                o = b.submit_order("X", side, qty, "trailing_stop",
                                   trail_percent=1 + 5 * abs(away), tif="gtc")
            ids.append(o["order_id"])
        if ids and data.draw(st.booleans(), label="replace"):
            oid = data.draw(st.sampled_from(ids), label="which")
            info = b.get_order(oid)
            change: dict[str, float] = {"qty": data.draw(st.integers(1, 30), label="new qty")}
            if info["order_type"] == "limit":
                change["limit_price"] = last * (1 + data.draw(st.floats(-0.05, 0.05)))
            before = (b.get_cash(), b.get_positions(), len(b.get_fills()))
            if info["status"] in ("filled", "canceled", "expired", "rejected"):
                with pytest.raises(ReplaceRejected):
                    b.replace_order(oid, **change)
                assert (b.get_cash(), b.get_positions(), len(b.get_fills())) == before
                assert b.get_order(oid) == info
            else:
                new = b.replace_order(oid, **change)
                assert new["order_id"] == oid
                assert new["qty"] == change["qty"]
                assert (b.get_cash(), b.get_positions(), len(b.get_fills())) == before
        if ids and data.draw(st.integers(0, 4), label="cancel") == 0:
            b.cancel_order(data.draw(st.sampled_from(ids), label="cancel which"))
    for f in b.get_fills():
        assert f["qty"] == b.get_order(f["order_id"])["qty"]  # filled whole, as replaced
    conserved(b, 1e7)
