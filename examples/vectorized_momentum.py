"""Cross-sectional momentum over every sample symbol, run vectorized and event-driven.

At each month-end close, rank the symbols that have a price by their trailing 60-bar
return and hold the top two, 100 shares each (the rest flat); between rebalances the
targets are NaN (keep). The same targets frame runs through ``backtest_vectorized`` and,
bar by bar, through ``simbroker.backtest`` with its event-driven twin
``TargetPositions``; the script prints both summaries and checks that fills, cash and
equity agree exactly.

Run it:  python examples/vectorized_momentum.py
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

import simbroker
from simbroker.vectorized import TargetPositions, backtest_vectorized


def momentum_targets(bars: simbroker.Bars, lookback: int = 60, top: int = 2,
                     qty: float = 100.0) -> pd.DataFrame:
    """Month-end targets: ``qty`` shares in the ``top`` best trailing returns, 0 elsewhere."""
    close = bars.frame("close")
    momentum = close / close.shift(lookback) - 1.0  # uses closes up to t only
    rank = momentum.rank(axis=1, ascending=False)
    month_end = close.index.to_series().dt.month.diff().shift(-1).fillna(0).ne(0).to_numpy()
    targets = pd.DataFrame(np.where(rank <= top, qty, 0.0), index=close.index,
                           columns=close.columns)
    targets[~month_end | momentum.isna().all(axis=1).to_numpy()] = np.nan
    return targets.where(close.notna())  # no decision for a symbol without a bar


def main() -> int:
    bars = simbroker.sample_bars()
    targets = momentum_targets(bars)

    t0 = time.perf_counter()
    fast = backtest_vectorized(bars, targets=targets)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    event = simbroker.backtest(TargetPositions(targets), bars)
    t_event = time.perf_counter() - t0

    print(f"vectorized: {t_fast * 1e3:.1f} ms    event-driven: {t_event * 1e3:.1f} ms")
    fast.summary()
    same_fills = fast.fills.equals(event.fills)
    same_cash = fast.cash.equals(event.cash)
    same_equity = fast.equity.equals(event.equity)
    print(f"fills identical: {same_fills} ({len(fast.fills)} fills)")
    print(f"cash identical: {same_cash}; equity identical: {same_equity}; final equity "
          f"{fast.equity.iloc[-1]:,.2f} vs {event.equity.iloc[-1]:,.2f}")
    print("final positions:", fast.final_positions or "flat")
    ok = same_fills and same_cash and same_equity
    print("results agree" if ok else "RESULTS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
