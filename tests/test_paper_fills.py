"""The paper broker's columnar fill log gives back the fills it was given: the same
dicts (equal, in order) by iteration, slices and indexes, and the same fills table."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker._paper_fills import FillLog
from simbroker.paper import PaperBroker
from simbroker.results.columns import _fills_frame
from simbroker.testing.strategies import bar_panels, target_frames
from simbroker.types import Fill
from simbroker.vectorized import TargetPositions

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=timezone.utc)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def fill_lists(draw: st.DrawFn) -> list[Fill]:
    out: list[Fill] = []
    for k in range(draw(st.integers(0, 12))):
        oid = draw(st.sampled_from(["PB1", "PB2", "x-7", "", "o"]))
        fid = draw(st.one_of(st.integers(1, 10**6).map(f"{oid}-{{}}".format),
                             st.sampled_from([f"{oid}-0", f"{oid}-01", f"{oid}-", "z",
                                              f"{oid}-\u00b2", f"{oid}-1-2"])))
        q = draw(FLOATS)
        out.append(Fill(fill_id=fid, order_id=oid,
                        client_order_id=draw(st.sampled_from([None, "c1", ""])),
                        timestamp=T0 + timedelta(minutes=draw(st.integers(0, 3))),
                        symbol=draw(st.sampled_from(["A", "BB"])),
                        side=draw(st.sampled_from(["buy", "sell"])), qty=q,
                        price=draw(FLOATS), fee=draw(FLOATS), notional=draw(FLOATS)))
        assert k == len(out) - 1
    return out


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a float compares by identity in list equality otherwise)."""
    return repr(a) == repr(b)


@settings(max_examples=80, deadline=None)
@given(fill_lists(), st.data())
def test_the_log_gives_back_the_fills(fills: list[Fill], data: st.DataObject) -> None:
    log = FillLog()
    for f in fills:
        log.append(f)
    assert len(log) == len(fills)
    for k in range(-len(fills), len(fills)):  # by index, before anything is listed
        assert same(log[k], fills[k])
    i = data.draw(st.integers(0, len(fills) + 1))
    assert same(log[i:], fills[i:])
    assert same(list(log), fills)
    assert same(list(log), fills)  # the second listing reads the built dicts
    assert all(x is y for x, y in zip(log, log[0:], strict=True))  # built once
    assert [log.fill_id(k) for k in range(len(fills))] == [f["fill_id"] for f in fills]
    pd.testing.assert_frame_equal(_fills_frame(log), _fills_frame(fills), check_exact=True)


def test_added_fills_and_appended_ones_agree() -> None:
    a, b = FillLog(), FillLog()
    f = Fill(fill_id="PB3-2", order_id="PB3", client_order_id=None, timestamp=T0,
             symbol="A", side="sell", qty=2.0, price=10.5, fee=0.01, notional=21.0)
    a.append(f)
    b.add("PB3", 2, None, T0, "A", "sell", 2.0, 10.5, 0.01, 21.0)
    assert a[0] == b[0] == f
    assert a[0] is not f  # kept as columns, not the dict
    assert repr(a) == "FillLog(1 fills)"
    try:
        a[1]
    except IndexError:
        pass
    else:
        raise AssertionError("index past the end")


# --- whole runs: a broker whose fills are a FillLog books and reports the same -------

class Asking(TargetPositions):
    """Target positions, asking the broker for its fills at every bar (as a strategy may)."""

    def __init__(self, targets: pd.DataFrame) -> None:
        super().__init__(targets)
        self.seen: list[list[Fill]] = []

    def on_bar(self, broker: Any, history: Any) -> None:
        fills = broker.get_fills()
        since = broker.get_fills(since=fills[len(fills) // 2]["timestamp"]) if fills else []
        self.seen.append([*fills, *since])
        super().on_bar(broker, history)


def _with_log(use_log: bool) -> Any:
    real = PaperBroker.__init__

    def init(self: PaperBroker, *args: Any, **kw: Any) -> None:
        real(self, *args, **kw)
        if use_log:
            assert not self._fills
            self._fills = FillLog()  # type: ignore[assignment]

    return mock.patch.object(PaperBroker, "__init__", init)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_runs_on_a_fill_log_equal_runs_on_a_list(data: st.DataObject) -> None:
    bars = data.draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 15)))
    targets = data.draw(target_frames(bars, elements=st.one_of(
        st.just(np.nan), st.integers(-300, 300).map(float))))
    account = data.draw(st.sampled_from([None, "cash", "margin"]))
    ask = data.draw(st.booleans())
    logged = data.draw(st.booleans())  # a trade log: the fills are written as dicts too
    out, written = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for use_log in (False, True):
            strategy = Asking(targets) if ask else TargetPositions(targets)
            path = Path(tmp) / f"log{use_log}.jsonl" if logged else None
            with _with_log(use_log):
                result = simbroker.backtest(strategy, bars, cash=5_000.0, account=account,
                                            trade_log=path)
            out.append((result, strategy))
            if path is not None:
                written.append(path.read_bytes())
    if logged:
        assert written[0] == written[1]
    (a, sa), (b, sb) = out
    pd.testing.assert_frame_equal(a.fills, b.fills, check_exact=True)
    pd.testing.assert_frame_equal(a.orders, b.orders, check_exact=True)
    pd.testing.assert_frame_equal(a.positions, b.positions, check_exact=True)
    pd.testing.assert_frame_equal(a.trades, b.trades, check_exact=True)
    for name in ("cash", "equity"):
        pd.testing.assert_series_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert same(dict(a.stats), dict(b.stats))
    if ask:
        assert isinstance(sa, Asking)
        assert isinstance(sb, Asking)
        assert same(sa.seen, sb.seen)
