"""Dress rehearsal: the SMA example through the real adapters against the fakes in
bar-market mode, drifted against its backtest (issue 20, section 1)."""

from __future__ import annotations

import importlib.util
import logging
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import simbroker
from simbroker.rehearse import Fault, Rehearsal, parse_faults, rehearse
from simbroker.testing._bar_market import BarFaults, BarMatcher, VenueOrder

ROOT = Path(__file__).resolve().parents[1]
SMA = ROOT / "examples" / "sma_crossover.py"
N = 130  # bars of the sample: the 10/50 SMA trades 7 times on them
SPEED = 0  # as fast as the venue answers: the test measures correctness, not pacing


def _sma() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sma_crossover_rehearse", SMA)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def quiet_202(caplog: pytest.LogCaptureFixture) -> None:
    """ib_async logs TWS's error 201 (the planted rejection) at ERROR level."""
    caplog.set_level(logging.CRITICAL, logger="ib_async")


BARS = simbroker.sample_bars().rows(0, N)
Faulted = tuple[Rehearsal, list[int]]  # the faulted rehearsal, and the bar rows that fill


def run(broker: str, faults: str | None = None, **kw: object) -> Rehearsal:
    sma = _sma()
    return rehearse(sma.SmaCrossover(10, 50, qty=100), BARS, broker=broker, speed=SPEED,
                    faults=faults, strategy_factory=lambda: sma.SmaCrossover(10, 50, qty=100),
                    **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["ibkr", "alpaca"])
def clean(request: pytest.FixtureRequest) -> Rehearsal:
    return run(request.param)


def _fill_rows() -> list[int]:
    """The bar rows the backtest fills on."""
    bt = simbroker.backtest(_sma().SmaCrossover(10, 50, qty=100), BARS, fees=0).fills
    return sorted({int(np.searchsorted(BARS.ts_ns, t.value)) for t in bt["timestamp"]})


@pytest.fixture(scope="module")
def faulted() -> Faulted:
    """One IB rehearsal with a planted cause per bar: fills on the crossover bars."""
    rows = _fill_rows()
    assert len(rows) >= 4
    spec = (f"slip=3@bar={rows[0]},miss@bar={rows[1]},partial=0.5@bar={rows[2]},"
            f"reject@bar={rows[3] - 1}")
    return run("ibkr", spec), rows


# --------------------------------------------------------------------------- clean runs
def test_a_clean_rehearsal_has_zero_drift(clean: Rehearsal) -> None:
    d = clean.drift
    s = d.summary
    assert s["matched"] == len(clean.backtest.fills) > 0
    assert (s["missed"], s["extra"], s["partials"]) == (0, 0, 0)
    assert (s["refused_in_a"], s["refused_in_b"]) == (0, 0)
    # Price, fee and time agree fill by fill; the equity curves are the same.
    assert np.all(d.fills["price_diff_bps"].abs() < 1e-9)
    assert np.all(d.fills["fee_bps"].abs() < 1e-9)
    assert (d.fills["matched_by"] == "runner key").all()
    assert abs(s["equity_diff"]) < 1e-6
    assert clean.breaches(max_drift_bps=0.0, max_missed=0) == []


def test_clean_rehearsal_time_differences_are_the_documented_ones(clean: Rehearsal) -> None:
    td = clean.drift.fills["time_diff"].dt.total_seconds().abs()
    if clean.broker == "ibkr":
        # TWS stamps executions to the whole second: bar opens are whole seconds.
        assert (td == 0).all()
        assert any("whole second" in line for line in clean.documented)
        assert (clean.backtest.fills["fee"] > 0).all()  # the PerShare schedule, both sides
    else:
        # Alpaca's events are a microsecond apart (several fills on one bar).
        assert (td < 1e-3).all()
        assert any("microsecond" in line for line in clean.documented)
        assert (clean.drift.fills["fee_b"] == 0).all()


def test_the_rehearsal_went_through_the_adapter_and_runner(clean: Rehearsal) -> None:
    assert clean.run.bars == N
    assert clean.run.fills == clean.fills_delivered == len(clean.backtest.fills)
    assert clean.seconds < 60


# --------------------------------------------------------------------------- faults
def test_planted_slippage_is_reported_as_slippage_on_that_fill(faulted: Faulted) -> None:
    r, rows = faulted
    f = r.drift.fills
    on = f[f["bar_b"] == BARS.index[rows[0]]]
    assert len(on) >= 1
    np.testing.assert_allclose(on["slippage_bps"].to_numpy(np.float64), 3.0, atol=1e-6)
    np.testing.assert_allclose(on["ref_drift_bps"].to_numpy(np.float64), 0.0, atol=1e-6)
    others = f[f["bar_b"] != BARS.index[rows[0]]]
    assert np.all(others["slippage_bps"].abs() < 1e-9)


def test_a_dropped_fill_is_reported_missed(faulted: Faulted) -> None:
    r, rows = faulted
    missed = r.drift.only_a
    on = missed[missed["time"] == BARS.index[rows[1]]]
    assert len(on) >= 1
    assert on["reason"].str.contains("canceled").all()


def test_a_planted_partial_is_reported_partial(faulted: Faulted) -> None:
    r, rows = faulted
    p = r.drift.partials
    on = p[p["time_a"] == BARS.index[rows[2]]]
    assert len(on) >= 1
    assert (on["filled_b"] == np.floor(on["filled_a"] * 0.5)).all()


def test_a_venue_rejection_is_reported_refused(faulted: Faulted) -> None:
    r = faulted[0]
    ref = r.drift.refusals
    assert (ref["refused_in"] == "b").sum() == 1
    assert ref["reason"].str.contains("fault injected").all()


@pytest.mark.parametrize("broker", ["ibkr", "alpaca"])
def test_disconnects_restarts_and_delays_change_no_fill(broker: str) -> None:
    """The adapter recovers from a dropped connection, a venue restart and late
    executions on the bars that fill: the drift stays exactly zero."""
    rows = _fill_rows()
    r = run(broker, f"disconnect@bar={rows[0]},restart@bar={rows[1]},"
                    f"delay=200ms@bar={rows[2]}")
    s = r.drift.summary
    assert s["matched"] == len(r.backtest.fills) > 0
    assert (s["missed"], s["extra"], s["partials"], s["refused_in_b"]) == (0, 0, 0, 0)
    assert np.all(r.drift.fills["price_diff_bps"].abs() < 1e-9)
    assert r.run.bars == N


def test_the_gate_fails_on_the_planted_slippage(faulted: Faulted) -> None:
    r = faulted[0]
    assert r.breaches(max_drift_bps=2.0) != []
    assert r.breaches(max_missed=0) != []


# --------------------------------------------------------------------------- parts
def test_fault_spec_grammar() -> None:
    got = parse_faults(" disconnect@bar=50, delay=200ms@bar=80,reject@bar=120,"
                       "partial=0.5@bar=30,slip=-2.5@bar=7,miss@bar=1,restart@bar=2")
    assert got == [Fault("disconnect", 50), Fault("delay", 80, 0.2), Fault("reject", 120),
                   Fault("partial", 30, 0.5), Fault("slip", 7, -2.5), Fault("miss", 1),
                   Fault("restart", 2)]
    assert parse_faults("delay=1.5s@bar=3") == [Fault("delay", 3, 1.5)]
    assert parse_faults(None) == parse_faults("") == []
    for bad, why in (("boom@bar=1", "unknown kind"), ("miss", "KIND"),
                     ("slip@bar=1", "needs a value"), ("miss=1@bar=1", "takes no value"),
                     ("partial=1.5@bar=1", "fraction"), ("delay=fast@bar=1", "time"),
                     ("slip=x@bar=1", "not a number")):
        with pytest.raises(ValueError, match=why):
            parse_faults(bad)
    with pytest.raises(ValueError, match="past the last bar"):
        run("ibkr", f"miss@bar={N}")


def test_the_matcher_fills_as_the_paper_broker_does() -> None:
    """Bar-market matching is the paper broker's: a market order at the next open with its
    slippage, a limit by the bar's low, a day order the paper rules expire."""
    bars = simbroker.sample_bars().rows(0, 10)
    m = BarMatcher(bars, slippage=5.0, fees=1.0)
    m.trade_bar()
    j = bars.symbol_index("AAPL")
    low = float(bars.low[1, j])
    assert m.sync([VenueOrder(1, "AAPL", "buy", 10, "market", None, None, "day"),
                   VenueOrder(2, "AAPL", "buy", 5, "limit", low * 1.0001, None, "gtc"),
                   VenueOrder(3, "AAPL", "buy", 5, "limit", low * 0.5, None, "day")]) == {}
    fills = {f.key: f for f in m.trade_bar()}
    o = float(bars.open[1, j])
    assert fills[1].price == pytest.approx(o * 1.0005, rel=1e-12)
    assert fills[1].ref_price == o
    assert fills[1].fee == pytest.approx(fills[1].price * 10e-4)
    assert fills[1].when == bars.index[1].to_pydatetime()
    assert 2 in fills
    assert 3 not in fills
    assert 3 in m.ended  # the day order's day is over
    # A planted slippage of 3 bps moves the price by 3 bps of the reference.
    m.sync([VenueOrder(4, "AAPL", "sell", 10, "market", None, None, "day")])
    f = m.trade_bar(BarFaults(extra_slippage_bps=3.0))[0]
    o2 = float(bars.open[2, j])
    assert f.price == pytest.approx(o2 * (1 - 5e-4) - o2 * 3e-4, rel=1e-12)
    assert not math.isnan(f.fee)
    refused = m.sync([VenueOrder(5, "AAPL", "buy", -1, "market", None, None, "day")])
    assert list(refused) == [5]


def test_cli_rehearse_exits_3_when_drift_exceeds_the_gate(tmp_path: Path) -> None:
    row = _fill_rows()[0]
    proc = subprocess.run(
        [sys.executable, "-m", "simbroker.cli", "rehearse", f"{SMA}:SmaCrossover",
         "--broker", "alpaca", "--data", "sample", "--end", str(BARS.index[row + 1].date()),
         "--speed", "0", "--faults", f"slip=10@bar={row}", "--max-drift-bps", "1",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "threshold exceeded" in proc.stderr
    assert "Documented venue differences" in proc.stdout
    for name in ("rehearsal.jsonl", "backtest.jsonl", "drift.html", "drift_fills.csv"):
        assert (tmp_path / "out" / name).exists()
