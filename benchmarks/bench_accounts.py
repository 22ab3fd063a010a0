"""Time the SMA-crossover backtest with account models against the unconstrained one.

    python benchmarks/bench_accounts.py            # 100 symbols x 2,520 daily bars
    python benchmarks/bench_accounts.py --repeat 3
    python benchmarks/bench_accounts.py --only vectorized

Event-driven: ``simbroker.backtest(SmaCrossover(10, 50, qty=100), bars, account=...)`` on
one synthetic panel with ``account=None`` (unconstrained, the default), ``"margin"``
(Reg T, liquidation off), ``"cash"``, the realistic models together (margin account,
IBKR fixed fees, a 2.5% volume cap, borrow fees and debit interest), and their fees and
cap alone ("fees+cap, no account": what matching and pricing add). Vectorized:
``backtest_vectorized`` on the same crossover targets, unconstrained, with each account,
and with the realistic models (also without the account, to show what the account
adds), each once with 1,000,000 of cash (every order accepted: the same work as the
unconstrained run) and once with 20,000 ("tight": many refusals, the exact bar-by-bar
loop). The crossover is long-only, so borrow fees never accrue in those runs: the
``long/short`` lines run the same crossings as a reversal (``+qty`` after a cross up,
``-qty`` after a cross down), unconstrained and with the realistic models, so that the
borrow fee and the short's margin are paid every day a short is held. Each line prints
the median CPU time (``time.process_time``, steady on a shared machine) and the best
wall time, and the CPU ratio to the unconstrained run of its runner and strategy (goal:
realistic models under 1.5x); the vectorized lines also give their ratio to the
event-driven unconstrained run. Data generation and the signal are not counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
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
FEES_CAP: dict[str, Any] = {"fees": REALISTIC["fees"],
                            "max_volume_share": REALISTIC["max_volume_share"]}
"""The realistic models' matching part alone: the schedule fees and the volume cap."""
SHORT_CASH = 10_000_000.0
"""The long/short runs' cash: enough for every symbol long or short at once."""


class SmaLongShort(SmaCrossover):
    """The crossover as a reversal: long ``qty`` after a cross up, short ``qty`` after a
    cross down (one order for the whole change of position)."""

    def on_bar(self, broker: simbroker.Broker, history: simbroker.History) -> None:
        cross = history.last("cross")
        if not cross.any():
            return
        held = broker.get_positions()
        for i in np.flatnonzero(cross):
            symbol = history.symbols[i]
            change = (self.qty if cross[i] > 0 else -self.qty) - held.get(symbol, 0.0)
            if change:
                broker.submit_order(symbol, "buy" if change > 0 else "sell", abs(change))


def event_run(kind: type[SmaCrossover], bars: simbroker.Bars, kw: dict[str, Any]
              ) -> simbroker.BacktestResult:
    """One event-driven run of ``kind(10, 50, qty=100)``."""
    return simbroker.backtest(kind(10, 50, qty=100), bars, progress=False, **kw)


def crossover_targets(bars: simbroker.Bars, fast: int = 10, slow: int = 50,
                      qty: float = 100.0, short: bool = False) -> pd.DataFrame:
    """SmaCrossover's orders as targets: ``qty`` after a cross up, flat (``-qty`` with
    ``short``) after a cross down."""
    close = bars.frame("close")
    f = close.rolling(fast, min_periods=fast).mean()
    s = close.rolling(slow, min_periods=slow).mean()
    valid = f.notna() & s.notna()
    above = (f > s) & valid
    prev_valid = valid.shift(1, fill_value=False)
    up = above & ~above.shift(1, fill_value=False) & valid & prev_valid
    down = ~above & above.shift(1, fill_value=False) & valid & prev_valid
    return pd.DataFrame(np.where(up, qty, np.where(down, -qty if short else 0.0, np.nan)),
                        index=close.index, columns=close.columns)


def timed(repeat: int, run: Callable[[], simbroker.BacktestResult]
          ) -> tuple[float, float, simbroker.BacktestResult]:
    """Median CPU seconds, best wall seconds and the last result of ``repeat`` runs."""
    cpu, wall, result = [], [], None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        result = run()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    assert result is not None
    return float(np.median(cpu)), min(wall), result


def line(name: str, cpu: float, wall: float, base: float, result: simbroker.BacktestResult,
         size: str, extra: str = "") -> None:
    """One benchmark line: times, the CPU ratio to ``base``, fills, refusals, borrow."""
    stats = result.stats
    borrow = float(stats.get("borrow_fees", 0.0))
    tail = f", borrow fees {borrow:,.0f}" if borrow else ""
    refused = int(stats.get("n_refused", 0))
    print(f"{name}: CPU {cpu:.3f} s ({cpu / base:.2f}x{extra}), wall best {wall:.3f} s, "
          f"{int(stats['n_fills']):,} fills, {refused:,} refused{tail} {size}")


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
        event_runs: list[tuple[str, type[SmaCrossover], dict[str, Any]]] = [
            (account or "unconstrained", SmaCrossover, {"account": account})
            for account in ACCOUNTS]
        event_runs += [("fees+cap, no account", SmaCrossover, FEES_CAP),
                       ("realistic", SmaCrossover, REALISTIC),
                       ("long/short unconstrained", SmaLongShort, {"cash": SHORT_CASH}),
                       ("long/short realistic", SmaLongShort,
                        {**REALISTIC, "cash": SHORT_CASH})]
        bases: dict[type[SmaCrossover], float] = {}
        for name, kind, kw in event_runs:
            kw = {"cash": 1_000_000.0, **kw}
            cpu, wall, result = timed(args.repeat, partial(
                event_run, kind, bars, kw))
            base_cpu = bases.setdefault(kind, cpu)
            line(f"event-driven {name}", cpu, wall, base_cpu, result, size)
        event_base = bases[SmaCrossover]
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
    short_targets = crossover_targets(bars, short=True)
    runs += [("long/short unconstrained", {"targets": short_targets, "cash": SHORT_CASH}),
             ("long/short realistic", {**REALISTIC, "targets": short_targets,
                                       "cash": SHORT_CASH})]
    bases_v: dict[bool, float] = {}
    for name, kw in runs:
        kw = {"cash": 1_000_000.0, "targets": targets, **kw}
        cpu, wall, result = timed(args.repeat, partial(simbroker.backtest_vectorized, bars,
                                                       **kw))
        base_cpu = bases_v.setdefault(kw["targets"] is short_targets, cpu)
        vs_event = f", {cpu / event_base:.2f}x event-driven" if event_base else ""
        line(f"vectorized {name}", cpu, wall, base_cpu, result, size, vs_event)
    return 0


if __name__ == "__main__":
    sys.exit(main())
