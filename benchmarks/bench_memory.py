"""Peak memory of a run over its loaded panel: vectorized runner and event-driven engine.

    python benchmarks/bench_memory.py                         # both, 10,000 x 2,520
    python benchmarks/bench_memory.py --runner vectorized --symbols 1000
    python benchmarks/bench_memory.py --runner event --symbols 1000 --runs 3

Each figure is measured in its own fresh Python process: the panel (a random walk,
``--symbols`` x ``--bars`` daily bars, read-only arrays as ``load_bars`` leaves them) and
the strategy's inputs (10/50 SMA-crossover targets for the vectorized runner) are built
first; then the resident high-water mark (``VmHWM``) is reset and the run is made. The
figure is the growth of the high-water mark over the size just before the run, beside the
panel's bytes (5 x T x N x 8); for the event-driven engine also the mark when the replay
ends, before the result is built (what the broker and the strategy hold then). Goal
(issue 21): <= 1.5x the panel at 10,000 x 2,520. A run's own outputs count: the result
holds a (T, N) positions array (0.2x the panel) and the marks; the panel itself is kept
by reference (``result.bars is bars``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simbroker.bars import Bars

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def rss_now_and_peak() -> tuple[float, float]:
    """This process's resident set and its high-water mark, MiB (Linux /proc)."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak() -> float:
    """Reset the high-water mark to the current size; returns that size (MiB)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # the figure then includes the setup: an overstatement only
    return rss_now_and_peak()[0]


def panel(n_symbols: int, n_bars: int) -> Bars:
    """A daily random-walk panel with read-only arrays (no copy when Bars takes them)."""
    import numpy as np
    import pandas as pd

    from simbroker.bars import Bars

    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n_bars, n_symbols)), axis=0))
    open_ = np.empty_like(close)
    open_[0] = close[0]
    open_[1:] = close[:-1]
    high = np.maximum(open_, close) * 1.005
    low = np.minimum(open_, close) * 0.995
    volume = np.full_like(close, 1e6)
    for a in (open_, high, low, close, volume):
        a.setflags(write=False)
    stamps = pd.date_range("2000-01-03", periods=n_bars, freq="1D").to_numpy()
    return Bars(timestamps=stamps, symbols=tuple(f"S{i:05d}" for i in range(n_symbols)),
                interval=np.timedelta64(86_400_000_000_000, "ns"), open=open_, high=high,
                low=low, close=close, volume=volume)


def crossover_targets(bars: Bars) -> Any:
    """10/50 SMA crossover targets (100 shares while fast > slow), NaN between crossings."""
    import numpy as np
    import pandas as pd

    close = np.asarray(bars.close)
    csum = np.cumsum(close, axis=0)

    def sma(n: int, csum: np.ndarray = csum) -> np.ndarray:
        out = np.full_like(close, np.nan)
        out[n - 1] = csum[n - 1] / n
        out[n:] = (csum[n:] - csum[:-n]) / n
        return out

    fast, slow = sma(10), sma(50)
    del csum
    above = (fast > slow).astype(np.int8)
    valid = ~np.isnan(slow)
    cross = np.zeros(above.shape, np.int8)
    cross[1:] = np.where(valid[1:] & valid[:-1], above[1:] - above[:-1], 0)
    grid = np.where(cross > 0, 100.0, np.where(cross < 0, 0.0, np.nan))
    return pd.DataFrame(grid, index=bars.index, columns=list(bars.symbols), copy=False)


def run_one(runner: str, n_symbols: int, n_bars: int) -> dict[str, float]:
    """One run in this process: seconds, peak growth (MiB), panel MiB, fills."""
    import simbroker
    from simbroker.vectorized import backtest_vectorized

    bars = panel(n_symbols, n_bars)
    targets = crossover_targets(bars) if runner == "vectorized" else None
    if runner == "event":
        from sma_crossover import SmaCrossover  # type: ignore[import-not-found]

        strategy = SmaCrossover(10, 50, qty=100)
    replayed: list[float] = []  # event-driven: the high-water mark before the result build
    if runner == "event":
        import simbroker.engine as engine

        build = engine.build_result

        def timed_build(broker: Any) -> Any:
            replayed.append(rss_now_and_peak()[1])
            return build(broker)

        engine.build_result = timed_build
    base = reset_peak()
    t0 = time.perf_counter()
    if runner == "vectorized":
        result = backtest_vectorized(bars, targets=targets)
    else:
        result = simbroker.backtest(strategy, bars)
    elapsed = time.perf_counter() - t0
    _, peak = rss_now_and_peak()
    assert result.bars is bars  # kept by reference, never copied
    return {"seconds": elapsed, "peak_mib": peak - base,
            "replay_mib": (replayed[0] if replayed else peak) - base,
            "panel_mib": 5 * bars.close.nbytes / 2**20,
            "fills": float(result.stats["n_fills"])}


def main() -> None:
    """Run each runner in fresh processes and print its median figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runner", choices=["vectorized", "event", "both"], default="both")
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--bars", type=int, default=2520)
    parser.add_argument("--runs", type=int, default=3, help="processes per figure")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.runner, args.symbols, args.bars)))
        return
    runners = ["vectorized", "event"] if args.runner == "both" else [args.runner]
    for runner in runners:
        samples = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--one", "--runner", runner,
                                  "--symbols", str(args.symbols), "--bars", str(args.bars)],
                                 check=True, capture_output=True, text=True).stdout
            samples.append(json.loads(out.strip().splitlines()[-1]))
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        print(f"{runner}, {args.symbols:,} x {args.bars:,} daily, median of {args.runs}: "
              f"{med['seconds']:.2f} s, {int(med['fills']):,} fills, peak +"
              f"{med['peak_mib']:,.0f} MiB over a {med['panel_mib']:,.0f} MiB panel "
              f"({med['peak_mib'] / med['panel_mib']:.2f}x)"
              + (f"; +{med['replay_mib']:,.0f} MiB ({med['replay_mib'] / med['panel_mib']:.2f}x)"
                 " when the replay ends, before the result build" if runner == "event" else ""))


if __name__ == "__main__":
    main()
