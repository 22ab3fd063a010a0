"""Time the SMA-crossover backtest with account models against the unconstrained one.

    python benchmarks/bench_accounts.py            # 100 symbols x 2,520 daily bars
    python benchmarks/bench_accounts.py --repeat 3

Runs ``simbroker.backtest(SmaCrossover(10, 50, qty=100), bars, account=...)`` on the
same synthetic panel with ``account=None`` (unconstrained, the default), ``"margin"``
(Reg T, liquidation off) and ``"cash"``, and prints each one's best time and its ratio
to the unconstrained run (goal: under 1.5x). Data generation is not counted. The cash
is 1,000,000 so that the strategy's orders are accepted in every account and the runs
do the same work.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from sma_crossover import SmaCrossover

import simbroker

ACCOUNTS: tuple[str | None, ...] = (None, "margin", "cash")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=2520)
    args = parser.parse_args()
    bars = simbroker.synthetic_bars(n_symbols=args.symbols, n_bars=args.bars, freq="1D",
                                    seed=42)
    best: dict[str | None, float] = {}
    fills: dict[str | None, int] = {}
    for account in ACCOUNTS:
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = simbroker.backtest(SmaCrossover(10, 50, qty=100), bars, cash=1_000_000,
                                        account=account, progress=False)
            times.append(time.perf_counter() - t0)
        best[account] = min(times)
        fills[account] = int(result.stats["n_fills"])
    base = best[None]
    for account in ACCOUNTS:
        print(f"{account or 'unconstrained'}: {best[account]:.3f} s "
              f"({best[account] / base:.2f}x), {fills[account]:,} fills "
              f"({args.symbols} symbols x {args.bars:,} bars)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
