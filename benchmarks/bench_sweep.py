"""Time a 200-combination sweep of the SMA example: serial, process pool, vectorized.

100 synthetic symbols x 2,520 daily bars; fast in 2..21, slow in 30..120 (10 x 20 grid).
Targets on a 2-core machine: the process pool at least 1.7x faster than serial.

    python benchmarks/bench_sweep.py [--combos N]

``--combos`` runs only the first N combinations of the grid (the serial run of all 200
takes minutes).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

import simbroker
from simbroker.sweeps import expand_grid, sweep, sweep_vectorized

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sma_crossover", ROOT / "examples"
                                               / "sma_crossover.py")
assert _spec is not None
assert _spec.loader is not None
sma = importlib.util.module_from_spec(_spec)
sys.modules["sma_crossover"] = sma  # picklable by reference in the pool's workers
_spec.loader.exec_module(sma)

GRID = {"fast": list(range(2, 22, 2)), "slow": list(range(30, 130, 5))}


def sma_targets(bars: simbroker.Bars, fast: int, slow: int) -> np.ndarray:
    """The example's signal as targets: hold 100 shares while fast > slow."""
    import pandas as pd

    close = pd.DataFrame(bars.close)
    f = close.rolling(fast, min_periods=fast).mean().to_numpy()
    s = close.rolling(slow, min_periods=slow).mean().to_numpy()
    with np.errstate(invalid="ignore"):
        return np.where(f > s, 100.0, np.where(f < s, 0.0, np.nan))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--combos", type=int, default=200)
    args = parser.parse_args()
    grid = expand_grid(GRID)[: args.combos]
    bars = simbroker.synthetic_bars(n_symbols=100, n_bars=2520, seed=7)
    print(f"{len(grid)} combinations of SmaCrossover on {bars.n_symbols} symbols x "
          f"{len(bars):,} bars; {os.cpu_count()} cores")

    t0 = time.perf_counter()
    serial = sweep(sma.SmaCrossover, grid, bars, executor="serial", progress=False)
    t_serial = time.perf_counter() - t0
    print(f"serial:        {t_serial:8.2f} s  ({t_serial / len(grid) * 1000:.0f} ms each)")

    t0 = time.perf_counter()
    pooled = sweep(sma.SmaCrossover, grid, bars, progress=False)
    t_pool = time.perf_counter() - t0
    print(f"process pool:  {t_pool:8.2f} s  ({t_serial / t_pool:.2f}x serial)")
    same = serial.drop(columns=["seconds", "traceback"]).sort_values("combo").reset_index(
        drop=True).equals(pooled.drop(columns=["seconds", "traceback"]).sort_values("combo")
                          .reset_index(drop=True))
    print(f"  identical rows: {same}")

    t0 = time.perf_counter()
    sweep_vectorized(sma_targets, grid, bars, progress=False)
    t_vec = time.perf_counter() - t0
    print(f"vectorized:    {t_vec:8.2f} s  (target strategy, same signal)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB (this process), {child:.0f} MiB (largest worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
