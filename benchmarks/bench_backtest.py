"""Time the SMA-crossover example through ``simbroker.backtest`` beside a plain Python loop.

    python benchmarks/bench_backtest.py              # both cases, 5 runs each
    python benchmarks/bench_backtest.py --repeat 7 --case minute

Cases: 100 symbols x 2,520 daily bars and 1 symbol x 500,000 minute bars (synthetic,
seed 42; generation is not timed). Each run times ``simbroker.backtest`` and then, in the
same process, the floor: a plain Python loop doing the same work on the same arrays (the
strategy's own ``indicators``, then per bar: fill the orders of the previous bar at this
bar's open with 5 bps slippage and a 1 bp fee, read the ``cross`` row, and for crossings
decide from a position array exactly as ``SmaCrossover.on_bar`` does). The two alternate,
so machine load hits both alike; the figures are medians, and the ratio is of the
medians. CPU time (``time.process_time``) is printed beside wall time: on a shared
machine it moves less with the other processes' load. Issue 21's goals: 1 x 500,000
<= 1.3x the floor, 100 x 2,520 <= the floor.

The floor must do the same work: the script checks that its fill count and final cash
equal simbroker's, bit for bit, and says so (a mismatch is printed, not hidden).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from sma_crossover import SmaCrossover  # type: ignore[import-not-found]

import simbroker
from simbroker.bars import Bars

CASES: dict[str, tuple[str, dict[str, Any], float]] = {
    "daily": ("100 symbols x 2,520 daily bars",
              dict(n_symbols=100, n_bars=2520, freq="1D"), 1.0),
    "minute": ("1 symbol x 500,000 minute bars",
               dict(n_symbols=1, n_bars=500_000, freq="1min"), 1.3),
}

CASH = 100_000.0
SLIPPAGE_BPS = 5.0
FEE_BPS = 1.0
QTY = 100.0


def plain_loop(bars: Bars, strategy: SmaCrossover) -> tuple[int, float]:
    """The SMA crossover as a quant would write it without a framework.

    Same arithmetic as the paper broker's defaults: a market order submitted at bar
    ``t``'s close fills at bar ``t + 1``'s open, ``price = open * (1 + side * 5e-4)``,
    ``fee = 1e-4 * qty * price``, cash moves by the notional and the fee. Returns the
    number of fills and the final cash.
    """
    cross = strategy.indicators(bars)["cross"]
    open_ = bars.open
    pos = np.zeros(bars.n_symbols)
    cash = CASH
    slip = SLIPPAGE_BPS / 1e4
    fee_rate = FEE_BPS / 1e4
    pending: list[tuple[int, float, float]] = []  # (column, +1 buy / -1 sell, qty)
    n_fills = 0
    for t in range(len(cross)):
        if pending:
            row_open = open_[t]
            for col, side, qty in pending:
                price = float(row_open[col]) * (1.0 + side * slip)
                notional = qty * price
                fee = fee_rate * qty * price
                if side > 0:
                    cash = cash - notional - fee
                    pos[col] += qty
                else:
                    cash = cash + notional - fee
                    pos[col] -= qty
                n_fills += 1
            pending = []
        row = cross[t]
        if not row.any():
            continue
        for i in np.flatnonzero(row).tolist():
            held = pos[i]
            if row[i] > 0 and held <= 0:
                pending.append((i, 1.0, QTY))
            elif row[i] < 0 and held > 0:
                pending.append((i, -1.0, float(held)))
    return n_fills, cash


def run_case(key: str, repeat: int) -> None:
    """Time one case: simbroker and the floor alternately, then print medians."""
    name, spec, goal = CASES[key]
    t0 = time.perf_counter()
    bars = simbroker.synthetic_bars(seed=42, **spec)
    gen = time.perf_counter() - t0
    sim, floor, sim_cpu, floor_cpu = [], [], [], []
    result = None
    floor_out = (0, 0.0)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = simbroker.backtest(SmaCrossover(10, 50, qty=QTY), bars, cash=CASH,
                                    slippage=SLIPPAGE_BPS, fees=FEE_BPS, progress=False)
        sim.append(time.perf_counter() - t0)
        sim_cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        floor_out = plain_loop(bars, SmaCrossover(10, 50, qty=QTY))
        floor.append(time.perf_counter() - t0)
        floor_cpu.append(time.process_time() - c0)
    assert result is not None
    n_fills = int(result.stats["n_fills"])
    cash = float(result.cash.iloc[-1])
    same = n_fills == floor_out[0] and cash == floor_out[1]
    check = (f"same work: {n_fills:,} fills, final cash {cash:,.6f} in both (bit for bit)"
             if same else
             f"MISMATCH: simbroker {n_fills:,} fills, cash {cash!r}; "
             f"plain loop {floor_out[0]:,} fills, cash {floor_out[1]!r}")
    s_med, f_med = statistics.median(sim), statistics.median(floor)
    ratio = s_med / f_med
    cells = len(bars) * bars.n_symbols
    print(f"{name} (data generated in {gen:.2f} s), median of {repeat}:")
    print(f"  simbroker.backtest  {s_med:7.3f} s (best {min(sim):.3f}), "
          f"{cells / s_med:,.0f} bars/s")
    print(f"  plain Python loop   {f_med:7.3f} s (best {min(floor):.3f})")
    cpu_ratio = statistics.median(sim_cpu) / statistics.median(floor_cpu)
    print(f"  ratio {ratio:.2f}x the plain loop (goal <= {goal:g}x: "
          f"{'met' if ratio <= goal else 'not met'}); CPU time "
          f"{statistics.median(sim_cpu):.3f} s / {statistics.median(floor_cpu):.3f} s = "
          f"{cpu_ratio:.2f}x (steadier on a shared machine)")
    print(f"  {check}")


def main() -> int:
    """Parse the arguments and run the cases."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--case", choices=["daily", "minute", "both"], default="both")
    args = parser.parse_args()
    for key in (["daily", "minute"] if args.case == "both" else [args.case]):
        run_case(key, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
