"""Time ``backtest_vectorized`` on synthetic data: cold (first call) and warm.

    python benchmarks/bench_vectorized.py                # 5 fresh processes per case
    python benchmarks/bench_vectorized.py --runs 9 --repeat 3
    python benchmarks/bench_vectorized.py --case daily   # one process, its own figures

Cases (targets on a 2-core machine, first call in a fresh process included):
1,000 symbols x 2,520 daily bars with 10/50 SMA-crossover targets (< 0.3 s) and
1 symbol x 500,000 minute bars with the same signal (< 0.1 s); and, without a target,
the daily panel with a target on every bar (hold while fast > slow), and the crossover
targets with a 5% stop-loss on every entry (``stop_loss=0.05``). Data generation and the
signal are computed before timing and not counted. Each run is its own Python process,
so its first call is really cold (first-touched memory and one-time library setup
included); a cold time is one sample, so the summary gives the median and range over
``--runs`` processes. Imports are timed separately. Peak memory: ``tracemalloc`` peak of
one extra call (Python and numpy allocations), and the process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc

CASES: dict[str, tuple[str, dict[str, object], float | None]] = {
    "daily": ("1,000 symbols x 2,520 daily bars", dict(n_symbols=1000, n_bars=2520, freq="1D"),
              0.3),
    "minute": ("1 symbol x 500,000 minute bars", dict(n_symbols=1, n_bars=500_000,
                                                       freq="1min"), 0.1),
    # The same signal as a target on every bar (hold 100 while fast > slow), as sweeps
    # and most hand-written target frames give it: no target, watched for regressions.
    "dense": ("1,000 x 2,520 daily, a target every bar", dict(n_symbols=1000, n_bars=2520,
                                                             freq="1D"), None),
    # The crossover targets with a 5% stop-loss on every entry (the exits kernel).
    "stops": ("1,000 x 2,520 daily, crossovers with 5% stop-loss exits",
              dict(n_symbols=1000, n_bars=2520, freq="1D"), None),
}
EXTRA: dict[str, dict[str, float]] = {"stops": {"stop_loss": 0.05}}


def run_case(key: str, repeat: int) -> dict[str, float]:
    """Time one case in this process; returns its figures (seconds, MiB)."""
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd

    import simbroker
    from simbroker.vectorized import backtest_vectorized
    t_import = time.perf_counter() - t0

    _, spec, _ = CASES[key]
    bars = simbroker.synthetic_bars(seed=42, **spec)  # type: ignore[arg-type]
    close = pd.DataFrame(bars.close, index=bars.index, columns=list(bars.symbols))
    fast = close.rolling(10, min_periods=10).mean()
    slow = close.rolling(50, min_periods=50).mean()
    above = (fast > slow).to_numpy()
    valid = (fast.notna() & slow.notna()).to_numpy()
    if key == "dense":
        grid = np.where(valid, np.where(above, 100.0, 0.0), np.nan)
    else:  # orders only where the fast average crosses the slow one
        cross = np.zeros(above.shape, np.int8)
        cross[1:] = np.where(valid[1:] & valid[:-1], above[1:].astype(np.int8)
                             - above[:-1].astype(np.int8), 0)
        grid = np.where(cross > 0, 100.0, np.where(cross < 0, 0.0, np.nan))
    targets = pd.DataFrame(grid, index=bars.index, columns=list(bars.symbols))
    extra = EXTRA.get(key, {})

    t0 = time.perf_counter()
    result = backtest_vectorized(bars, targets=targets, **extra)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        backtest_vectorized(bars, targets=targets, **extra)
        warm.append(time.perf_counter() - t0)
    tracemalloc.start()
    backtest_vectorized(bars, targets=targets, **extra)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "cold": cold, "warm_best": min(warm), "warm_median": statistics.median(warm),
        "cells": len(bars) * bars.n_symbols, "fills": int(result.stats["n_fills"]),
        "peak_mib": peak / 2**20,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "imports": t_import,
    }


def describe(key: str, r: dict[str, float]) -> str:
    name = CASES[key][0]
    return (f"{name}: cold {r['cold']:.3f} s, warm best {r['warm_best']:.3f} s / median "
            f"{r['warm_median']:.3f} s ({r['cells'] / r['warm_best']:,.0f} bars/s), "
            f"{r['fills']:,} fills; peak traced {r['peak_mib']:,.0f} MiB, max RSS "
            f"{r['rss_mib']:,.0f} MiB; imports {r['imports']:.2f} s (not counted)")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES),
                        help="run one case in this process and print its figures")
    parser.add_argument("--runs", type=int, default=5,
                        help="fresh processes per case (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="warm calls per process")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        r = run_case(args.case, max(args.repeat, 1))
        print(json.dumps(r) if args.json else describe(args.case, r))
        return 0
    for key, (name, _, target) in CASES.items():
        runs = []
        for _ in range(max(args.runs, 1)):  # a fresh interpreter each: the first call is cold
            out = subprocess.run([sys.executable, __file__, "--case", key, "--repeat",
                                  str(args.repeat), "--json"], check=True,
                                 capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        cold = sorted(r["cold"] for r in runs)
        med = statistics.median(cold)
        verdict = ("no target" if target is None else
                   f"target < {target} s: {'met' if med < target else 'NOT met'}")
        print(f"{name}: cold median {med:.3f} s (min {cold[0]:.3f}, max {cold[-1]:.3f}; "
              f"{len(runs)} processes; {verdict}), warm best "
              f"{min(r['warm_best'] for r in runs):.3f} s, {runs[0]['fills']:,} fills; "
              f"peak traced {max(r['peak_mib'] for r in runs):,.0f} MiB, max RSS "
              f"{max(r['rss_mib'] for r in runs):,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
