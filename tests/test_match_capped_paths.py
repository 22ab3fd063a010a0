"""Under ``max_volume_share``, a small book is matched by the scalar path (the cap on
lists, fixed-rate slippage in floats, schedule fees from lists) exactly as by the numpy
path: forced either way (``Matching._small_book``, ``_paper_volume.SMALL`` and the schedule
models' ``_scalar_max``) on random order streams, every fill, fee, cash, position, order
and ledger entry is identical bit for bit."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import Bars, PaperBroker, _paper_volume
from simbroker._paper_match import Matching
from simbroker.models import BpsOfNotional, NoFee, PerShare, ScheduleFee
from simbroker.testing import run_order_stream
from simbroker.testing.strategies import OrderSpec, bar_panels
from simbroker.tradelog import read_trade_log

PROPS = settings(max_examples=80, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SCALAR, NUMPY = 10**9, 0  # Matching._small_book forcing one matching path
OTHER_FEES = st.sampled_from([None, 0.0, 1.0, BpsOfNotional(3.0), NoFee(),
                              PerShare(0.005, minimum=1.0, maximum_fraction=0.01)])
SLIPPAGE: list[Any] = [0.0, 5.0, "volume_share"]


@st.composite
def _order(draw: st.DrawFn, bars: Bars) -> OrderSpec:
    bar = draw(st.integers(-1, max(len(bars) - 2, -1)))
    col = draw(st.integers(0, bars.n_symbols - 1))
    closes = bars.close[: max(bar, 0) + 1, col]
    known = closes[~np.isnan(closes)]
    ref = float(known[-1]) if len(known) else 100.0
    otype = draw(st.sampled_from(["market", "limit", "stop", "stop", "stop_limit"]))
    offset = st.floats(-0.05, 0.05, allow_nan=False)
    limit = ref * (1 + draw(offset)) if otype in ("limit", "stop_limit") else None
    stop = ref * (1 + draw(offset)) if otype in ("stop", "stop_limit") else None
    qty = draw(st.one_of(st.integers(1, 2_000).map(float), st.floats(0.01, 500.0)))
    return OrderSpec(bar=bar, symbol=bars.symbols[col], side=draw(st.sampled_from(
        ["buy", "sell"])), qty=qty, order_type=otype, limit_price=limit, stop_price=stop,
        tif=draw(st.sampled_from(["day", "gtc", "ioc", "fok"])))


@st.composite
def capped_books(draw: st.DrawFn, fees: Any) -> tuple[Bars, list[OrderSpec], dict[str, Any]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 25),
                           allow_missing=draw(st.booleans())))
    orders = sorted(draw(st.lists(_order(bars), max_size=40)), key=lambda o: o.bar)
    kw = {"max_volume_share": draw(st.sampled_from([1e-5, 1e-4, 1e-3, 0.025, 1.0])),
          "fees": draw(OTHER_FEES) if fees == "other" else fees,
          "slippage": draw(st.sampled_from(SLIPPAGE)), "clip_to_bar": draw(st.booleans()),
          "allow_short": draw(st.sampled_from([True, True, False])),
          "cash": 1e7}
    return bars, orders, kw


@contextmanager
def _volume_small(value: int) -> Iterator[None]:
    saved = _paper_volume.SMALL
    _paper_volume.SMALL = value
    try:
        yield
    finally:
        _paper_volume.SMALL = saved


def _run(bars: Bars, orders: list[OrderSpec], kw: dict[str, Any], small_book: int,
         volume_small: int, scalar_fees: bool, log: bool) -> str:
    """Everything the run decided, as text (``repr`` tells -0.0 from 0.0 and every
    float's last bit, so equal texts are bit-identical runs), with its trade log."""
    kw = dict(kw)
    if kw["slippage"] == "volume_share":
        kw["slippage"] = simbroker.models.VolumeShare()
    with tempfile.TemporaryDirectory() as tmp, _volume_small(volume_small):
        path = Path(tmp) / "log.jsonl"
        broker = PaperBroker(bars, trade_log=path if log else None, **kw)
        broker._small_book = small_book
        if not scalar_fees and isinstance(broker.fees, ScheduleFee):
            broker.fees._scalar_max = 0  # type: ignore[misc]  # the array path only
        run_order_stream(broker, orders)
        broker.close()
        records = [{k: v for k, v in r.items() if k != "seq"} for r in
                   read_trade_log(path)] if log else []
    book = broker._book
    return repr((broker.get_fills(), broker.get_cash(), broker.get_positions(),
                 broker.get_orders(), broker._ledger_cash, broker._ledger_pos,
                 broker._ledger_bar, book.ids, book.qty[: book.n].tolist(),
                 book.otype[: book.n].tolist(), book.trig_bar[: book.n].tolist(), records))


@pytest.mark.parametrize("fees", ["ibkr_fixed", "alpaca", "ibkr_tiered", "other"])
@PROPS
@given(data=st.data(), cap_lists=st.booleans(), fee_lists=st.booleans(), log=st.booleans())
def test_scalar_and_numpy_paths_agree_under_a_volume_cap(
        fees: str, data: st.DataObject, cap_lists: bool, fee_lists: bool, log: bool) -> None:
    bars, orders, kw = data.draw(capped_books(fees))
    general = _run(bars, orders, kw, NUMPY, -1, False, log)
    # the scalar book path, its cap and schedule fees each on lists or on arrays
    fast = _run(bars, orders, kw, SCALAR, 1 << 30 if cap_lists else -1, fee_lists, log)
    assert fast == general


def test_the_scalar_path_runs_for_a_capped_small_book(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both paths must be exercised above: here the numpy matching would raise.
    def no_numpy(*args: object) -> None:
        raise AssertionError("the numpy path ran")

    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=40, freq="1D", seed=3)
    monkeypatch.setattr(Matching, "_capped", no_numpy)
    monkeypatch.setattr(Matching, "_match_priced", no_numpy)
    broker = PaperBroker(bars, fees="ibkr_fixed", max_volume_share=0.025, cash=1e7)
    orders = [OrderSpec(bar=b, symbol=s, side="buy" if b % 3 else "sell", qty=q, tif="gtc")
              for b in range(0, 38, 2) for s, q in (("SYM000", 100.0), ("SYM001", 30_000.0))]
    run_order_stream(broker, orders)
    parts = [f for f in broker.get_fills() if f["symbol"] == "SYM001"]
    assert len(parts) > len({f["order_id"] for f in parts})  # the cap split orders
