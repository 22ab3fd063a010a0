"""Time ``backtest_vectorized`` on synthetic data: cold (first call) and warm.

    python benchmarks/bench_vectorized.py              # each case in a fresh process
    python benchmarks/bench_vectorized.py --case daily --repeat 5

Cases (targets on a 2-core machine, first call in a fresh process included):
1,000 symbols x 2,520 daily bars with 10/50 SMA-crossover targets (< 0.3 s) and
1 symbol x 500,000 minute bars with the same signal (< 0.1 s). Data generation and the
signal are computed before timing and not counted. Each case runs in its own Python
process so its first call is really cold; imports are timed separately. Peak memory:
``tracemalloc`` peak of one extra call (Python and numpy allocations), and the process's
max RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc

CASES = {
    "daily": ("1,000 symbols x 2,520 daily bars", dict(n_symbols=1000, n_bars=2520, freq="1D")),
    "minute": ("1 symbol x 500,000 minute bars", dict(n_symbols=1, n_bars=500_000,
                                                       freq="1min")),
}


def run_case(key: str, repeat: int) -> None:
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd

    import simbroker
    from simbroker.vectorized import backtest_vectorized
    t_import = time.perf_counter() - t0

    name, spec = CASES[key]
    bars = simbroker.synthetic_bars(seed=42, **spec)  # type: ignore[arg-type]
    close = pd.DataFrame(bars.close, index=bars.index, columns=list(bars.symbols))
    fast = close.rolling(10, min_periods=10).mean()
    slow = close.rolling(50, min_periods=50).mean()
    above = (fast > slow).to_numpy()
    valid = (fast.notna() & slow.notna()).to_numpy()
    cross = np.zeros(above.shape, np.int8)
    cross[1:] = np.where(valid[1:] & valid[:-1], above[1:].astype(np.int8)
                         - above[:-1].astype(np.int8), 0)
    targets = pd.DataFrame(np.where(cross > 0, 100.0, np.where(cross < 0, 0.0, np.nan)),
                           index=bars.index, columns=list(bars.symbols))

    t0 = time.perf_counter()
    result = backtest_vectorized(bars, targets=targets)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        backtest_vectorized(bars, targets=targets)
        warm.append(time.perf_counter() - t0)
    tracemalloc.start()
    backtest_vectorized(bars, targets=targets)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    cells = len(bars) * bars.n_symbols
    print(f"{name}: cold {cold:.3f} s, warm best {min(warm):.3f} s / median "
          f"{statistics.median(warm):.3f} s ({cells / min(warm):,.0f} bars/s), "
          f"{result.stats['n_fills']:,} fills; peak traced {peak / 2**20:,.0f} MiB, "
          f"max RSS {rss:,.0f} MiB; imports {t_import:.2f} s (not counted)")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.case:
        run_case(args.case, args.repeat)
        return 0
    for key in CASES:  # a fresh interpreter per case: the first call is really cold
        subprocess.run([sys.executable, __file__, "--case", key, "--repeat", str(args.repeat)],
                       check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
