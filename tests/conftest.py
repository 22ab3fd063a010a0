"""Fixtures shared by several test files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import simbroker
from simbroker import BacktestResult

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sma_result() -> BacktestResult:
    """The README's example: the 10/50 SMA crossover (100 shares) on the bundled sample."""
    path = ROOT / "examples" / "sma_crossover.py"
    spec = importlib.util.spec_from_file_location("sma_example_for_tests", path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return simbroker.backtest(mod.SmaCrossover(10, 50, qty=100), simbroker.sample_bars(),
                              cash=100_000)
