"""Time the SMA-crossover example through ``simbroker.backtest`` on synthetic data.

    python benchmarks/bench_backtest.py            # both cases
    python benchmarks/bench_backtest.py --repeat 5

Cases (targets on a 2-core machine): 100 symbols x 2,520 daily bars (< 1 s) and
1 symbol x 500,000 minute bars (< 5 s). Data generation is timed separately and not
counted. Prints seconds (best and median of the repeats) and bars per second, where a
"bar" is one symbol's bar (T x N).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from sma_crossover import SmaCrossover

import simbroker

CASES = {
    "100 symbols x 2,520 daily bars": dict(n_symbols=100, n_bars=2520, freq="1D"),
    "1 symbol x 500,000 minute bars": dict(n_symbols=1, n_bars=500_000, freq="1min"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, spec in CASES.items():
        t0 = time.perf_counter()
        bars = simbroker.synthetic_bars(seed=42, **spec)  # type: ignore[arg-type]
        gen = time.perf_counter() - t0
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = simbroker.backtest(SmaCrossover(10, 50, qty=100), bars)
            times.append(time.perf_counter() - t0)
        cells = len(bars) * bars.n_symbols
        best, med = min(times), statistics.median(times)
        print(f"{name}: best {best:.3f} s, median {med:.3f} s, "
              f"{cells / best:,.0f} bars/s, {result.stats['n_fills']:,} fills "
              f"(data generated in {gen:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
