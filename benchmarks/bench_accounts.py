"""Time the SMA-crossover backtest with account models against the unconstrained one.

    python benchmarks/bench_accounts.py            # 100 symbols x 2,520 daily bars
    python benchmarks/bench_accounts.py --repeat 3
    python benchmarks/bench_accounts.py --only vectorized

Event-driven: ``simbroker.backtest(SmaCrossover(10, 50, qty=100), bars, account=...)`` on
one synthetic panel with ``account=None`` (unconstrained, the default), ``"margin"``
(Reg T, liquidation off), ``"cash"``, and the realistic models together (margin account,
IBKR fixed fees, a 2.5% volume cap, borrow fees and debit interest). Vectorized:
``backtest_vectorized`` on the same crossover targets, unconstrained, with each account,
and with the realistic models (also without the account, to show what the account
adds), each once with 1,000,000 of cash (every order accepted: the same work as the
unconstrained run) and once with 20,000 ("tight": many refusals, the exact bar-by-bar
loop). Each line prints the best time and its ratio to the unconstrained run of its
runner (goal: realistic models under 1.5x), and the vectorized lines also to the
event-driven unconstrained run. Data generation and the signal are not counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from sma_crossover import SmaCrossover

import simbroker
from simbroker.financing import BorrowModel, InterestModel

ACCOUNTS: tuple[str | None, ...] = (None, "margin", "cash")
REALISTIC: dict[str, Any] = {"account": "margin", "fees": "ibkr_fixed",
                             "max_volume_share": 0.025, "borrow": BorrowModel(rate=0.03),
                             "interest": InterestModel(debit=0.08)}


def crossover_targets(bars: simbroker.Bars, fast: int = 10, slow: int = 50,
                      qty: float = 100.0) -> pd.DataFrame:
    """SmaCrossover's orders as targets: ``qty`` after a cross up, flat after a cross down."""
    close = bars.frame("close")
    f = close.rolling(fast, min_periods=fast).mean()
    s = close.rolling(slow, min_periods=slow).mean()
    valid = f.notna() & s.notna()
    above = (f > s) & valid
    prev_valid = valid.shift(1, fill_value=False)
    up = above & ~above.shift(1, fill_value=False) & valid & prev_valid
    down = ~above & above.shift(1, fill_value=False) & valid & prev_valid
    return pd.DataFrame(np.where(up, qty, np.where(down, 0.0, np.nan)), index=close.index,
                        columns=close.columns)


def best_of(repeat: int, run: Callable[[], simbroker.BacktestResult]
            ) -> tuple[float, simbroker.BacktestResult]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    assert result is not None
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=2520)
    parser.add_argument("--only", choices=("event", "vectorized"))
    args = parser.parse_args()
    bars = simbroker.synthetic_bars(n_symbols=args.symbols, n_bars=args.bars, freq="1D",
                                    seed=42)
    size = f"({args.symbols} symbols x {args.bars:,} bars)"
    event_base = None
    if args.only != "vectorized":
        best: dict[str | None, float] = {}
        for account in ACCOUNTS:
            best[account], result = best_of(args.repeat, lambda a=account: simbroker.backtest(
                SmaCrossover(10, 50, qty=100), bars, cash=1_000_000, account=a,
                progress=False))
            print(f"event-driven {account or 'unconstrained'}: {best[account]:.3f} s "
                  f"({best[account] / best[None]:.2f}x), {int(result.stats['n_fills']):,} "
                  f"fills {size}")
        event_base = best[None]
        seconds, result = best_of(args.repeat, lambda: simbroker.backtest(
            SmaCrossover(10, 50, qty=100), bars, cash=1_000_000, progress=False,
            **REALISTIC))
        print(f"event-driven realistic: {seconds:.3f} s ({seconds / event_base:.2f}x), "
              f"{int(result.stats['n_fills']):,} fills {size}")
    if args.only == "event":
        return 0
    targets = crossover_targets(bars)
    simbroker.backtest_vectorized(bars, targets=targets)  # first call: imports, caches
    no_account = {k: v for k, v in REALISTIC.items() if k != "account"}
    runs: list[tuple[str, dict[str, Any]]] = [("unconstrained", {}),
                                              ("fees+cap+borrow, no account", no_account)]
    for cash in (1_000_000.0, 20_000.0):
        tag = "" if cash > 100_000 else " tight"
        runs += [(f"margin{tag}", {"account": "margin", "cash": cash}),
                 (f"cash{tag}", {"account": "cash", "cash": cash}),
                 (f"realistic{tag}", {**REALISTIC, "cash": cash})]
    base = None
    for name, kw in runs:
        kw = {"cash": 1_000_000.0, **kw}
        seconds, result = best_of(args.repeat, lambda kw=kw: simbroker.backtest_vectorized(
            bars, targets=targets, **kw))
        base = base or seconds
        vs_event = f", {seconds / event_base:.2f}x event-driven" if event_base else ""
        refused = int(result.stats.get("n_refused", 0))
        print(f"vectorized {name}: {seconds:.3f} s ({seconds / base:.2f}x{vs_event}), "
              f"{int(result.stats['n_fills']):,} fills, {refused:,} refused {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
