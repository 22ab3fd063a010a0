"""The SMA 10/50 crossover in simbroker beside backtesting.py and vectorbt, same data.

    python benchmarks/bench_peers.py                 # 100 x 2,520 daily, 3 runs each
    /work/venv-bench/bin/python benchmarks/bench_peers.py --repeat 5

Data: ``simbroker.synthetic_bars(seed=42, n_symbols=100, n_bars=2520, freq="1D")``, as
``bench_backtest.py`` uses. Every engine runs the same rules: buy 100 shares when the
10-bar SMA crosses above the 50-bar SMA, sell the whole position when it crosses back;
orders decided at a bar's close fill at the next bar's open, 5 bps slippage against the
trader and a 1 bp fee on the notional, 100,000 starting cash (per symbol in the peers,
which run one symbol per portfolio).

- simbroker, event-driven: ``simbroker.backtest(SmaCrossover(10, 50, qty=100), bars)``.
- simbroker, vectorized: ``backtest_vectorized(bars, targets=...)`` with the crossovers
  as targets (100 on a cross up, 0 on a cross down).
- backtesting.py: a ``Strategy`` with ``self.I`` SMAs, ``spread=0.0005``,
  ``commission=0.0001``, run once per symbol (it backtests one instrument at a time):
  the time is the sum of the 100 runs.
- vectorbt: ``Portfolio.from_signals`` on the 100 columns at once, entries and exits
  shifted one bar and ``price=open`` (next-bar-open fills), ``size=100``,
  ``fees=0.0001``, ``slippage=0.0005``. Its first call compiles with numba: reported
  apart ("cold"), the median is of the calls after it.

A peer that is not installed is skipped with a note (``pip install -e ".[bench]"``;
install them in a separate virtualenv, vectorbt pulls numba). Each engine's fill count is
printed so that "the same work" can be checked; the peers' own rules (whole-share
sizing, when an entry is skipped) may differ by a few fills. Medians of ``--repeat``
runs in this process; data generation and signals are not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from sma_crossover import SmaCrossover  # type: ignore[import-not-found]

import simbroker
from simbroker.bars import Bars
from simbroker.vectorized import backtest_vectorized

FAST, SLOW, QTY, CASH = 10, 50, 100.0, 100_000.0
SLIPPAGE, FEE = 0.0005, 0.0001


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """``repeat`` timings of ``fn`` and its last return value."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def crossings(bars: Bars) -> np.ndarray:
    """+1 / -1 where the fast SMA crosses above / below the slow one (0 elsewhere)."""
    cross: np.ndarray = SmaCrossover(FAST, SLOW).indicators(bars)["cross"]
    return cross


def run_simbroker_event(bars: Bars) -> int:
    result = simbroker.backtest(SmaCrossover(FAST, SLOW, qty=QTY), bars, cash=CASH,
                                slippage=SLIPPAGE * 1e4, fees=FEE * 1e4, progress=False)
    return int(result.stats["n_fills"])


def run_simbroker_vectorized(bars: Bars, targets: pd.DataFrame) -> int:
    result = backtest_vectorized(bars, targets=targets, cash=CASH,
                                 slippage=SLIPPAGE * 1e4, fees=FEE * 1e4)
    return int(result.stats["n_fills"])


def backtesting_runner(bars: Bars) -> Callable[[], int] | str:
    """A callable running backtesting.py over every symbol, or why it cannot."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py draws a bar per run
    try:
        from backtesting import Backtest, Strategy  # type: ignore[import-not-found]
    except ImportError:
        return "backtesting.py not installed (pip install backtesting)"

    def sma(values: Any, n: int) -> np.ndarray:
        out: np.ndarray = pd.Series(values).rolling(n, min_periods=n).mean().to_numpy()
        return out

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            f0, f1, s0, s1 = self.fast[-2], self.fast[-1], self.slow[-2], self.slow[-1]
            if f0 <= s0 and f1 > s1 and not self.position:
                self.buy(size=int(QTY))
            elif f0 >= s0 and f1 < s1 and self.position:
                self.position.close()

    frames = [pd.DataFrame({"Open": bars.open[:, j], "High": bars.high[:, j],
                            "Low": bars.low[:, j], "Close": bars.close[:, j],
                            "Volume": bars.volume[:, j]},
                           index=bars.index.tz_localize(None))
              for j in range(bars.n_symbols)]

    def run() -> int:
        fills = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for frame in frames:
                stats = Backtest(frame, SmaCross, cash=CASH, spread=SLIPPAGE,
                                 commission=FEE).run()
                # Closed trades are two fills; a position still open at the end is
                # one (its entry; ``_trades`` lists closed trades only).
                fills += 2 * len(stats["_trades"]) + bool(stats["_strategy"].position)
        return fills

    return run


def vectorbt_runner(bars: Bars, cross: np.ndarray) -> Callable[[], int] | str:
    """A callable running vectorbt's ``Portfolio.from_signals``, or why it cannot."""
    try:
        import vectorbt as vbt  # type: ignore[import-not-found]
    except ImportError:
        return "vectorbt not installed (pip install vectorbt)"
    cols = list(bars.symbols)
    index = bars.index
    close = pd.DataFrame(bars.close, index=index, columns=cols)
    open_ = pd.DataFrame(bars.open, index=index, columns=cols)
    # A signal at bar t trades at bar t + 1's open.
    entries = pd.DataFrame(np.vstack([np.zeros((1, len(cols)), bool), cross[:-1] > 0]),
                           index=index, columns=cols)
    exits = pd.DataFrame(np.vstack([np.zeros((1, len(cols)), bool), cross[:-1] < 0]),
                         index=index, columns=cols)

    def run() -> int:
        pf = vbt.Portfolio.from_signals(close, entries, exits, price=open_, size=QTY,
                                        fees=FEE, slippage=SLIPPAGE, init_cash=CASH,
                                        freq="1D")
        return int(pf.orders.count().sum())

    return run


def main() -> int:
    """Time each engine and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=2520)
    args = parser.parse_args()
    bars = simbroker.synthetic_bars(seed=42, n_symbols=args.symbols, n_bars=args.bars,
                                    freq="1D")
    cross = crossings(bars)
    targets = pd.DataFrame(np.where(cross > 0, QTY, np.where(cross < 0, 0.0, np.nan)),
                           index=bars.index, columns=list(bars.symbols))
    print(f"SMA {FAST}/{SLOW} crossover, {args.symbols} symbols x {args.bars:,} daily bars, "
          f"median of {args.repeat}:")
    rows: list[tuple[str, float, int, str]] = []
    run_simbroker_vectorized(bars, targets)  # first call: imports and first-touch memory
    times, fills = timed(lambda: run_simbroker_event(bars), args.repeat)
    rows.append(("simbroker backtest (event-driven)", statistics.median(times), fills, ""))
    times, fills = timed(lambda: run_simbroker_vectorized(bars, targets), args.repeat)
    rows.append(("simbroker backtest_vectorized", statistics.median(times), fills, ""))
    peer = backtesting_runner(bars)
    if isinstance(peer, str):
        print(f"  skipped: {peer}")
    else:
        times, fills = timed(peer, args.repeat)
        rows.append(("backtesting.py (one run per symbol)", statistics.median(times), fills,
                     ""))
    peer = vectorbt_runner(bars, cross)
    if isinstance(peer, str):
        print(f"  skipped: {peer}")
    else:
        t0 = time.perf_counter()
        peer()
        cold = time.perf_counter() - t0
        times, fills = timed(peer, args.repeat)
        rows.append(("vectorbt Portfolio.from_signals", statistics.median(times), fills,
                     f"; first call {cold:.2f} s (numba compiles)"))
    event = rows[0][1]
    for name, sec, n_fills, note in rows:
        print(f"  {name:38s} {sec:8.3f} s  {sec / event:6.2f}x event-driven  "
              f"{n_fills:,} fills{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
