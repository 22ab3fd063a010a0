"""What one order, one query and one empty bar cost in the paper broker.

    python benchmarks/bench_order_cost.py             # 5 runs of each, medians
    python benchmarks/bench_order_cost.py --repeat 9

Figures (goals of issue 21 beside each):

- **order round trip** (goal <= 15 us): the SMA 10/50 example's own orders on 100 x 2,520
  daily bars, replayed straight into a :class:`~simbroker.PaperBroker` with no trade log:
  at each bar the orders the strategy placed there are submitted, then the next bar
  matches and books them. The cost is (that loop's time - the same loop's time without
  orders) / orders: submission, matching and booking, without the strategy, the engine
  or the result builder.
- **get_positions / get_cash / now** (goal <= 1 us each): per call on a broker holding ten
  positions, between two bars.
- **empty-book step** (goal well under 1 us): ``step()`` per bar over 1 x 500,000 minute
  bars with no order, account, financing or corporate actions.
- **Order.create and bytes per Order**: one market order's validation and construction,
  and the memory ``tracemalloc`` counts per :class:`~simbroker.types.Order` kept (20,000
  of them in a list, the list's 8-byte slot included).

Times are CPU time of this process (``time.process_time``), so other work on a shared
machine disturbs them less than wall time; each figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from sma_crossover import SmaCrossover

import simbroker
from simbroker import Bars, PaperBroker
from simbroker.types import Order

Orders = dict[int, list[tuple[str, str, float]]]


def sma_orders(bars: Bars) -> tuple[Orders, int]:
    """The SMA example's orders, by the bar after whose close it placed them."""
    by_bar: Orders = {}

    class Recording(SmaCrossover):
        def on_bar(self, broker: simbroker.Broker, history: simbroker.History) -> None:
            real = broker.submit_order

            def submit(symbol: str, side: str, qty: float, *args: Any, **kw: Any) -> Any:
                by_bar.setdefault(history.t, []).append((symbol, side, qty))
                return real(symbol, side, qty, *args, **kw)

            broker.submit_order = submit  # type: ignore[method-assign]
            try:
                super().on_bar(broker, history)
            finally:
                del broker.submit_order

    simbroker.backtest(Recording(10, 50, qty=100), bars)
    return by_bar, sum(len(v) for v in by_bar.values())


def replay(bars: Bars, by_bar: Orders) -> float:
    """CPU seconds to step every bar, submitting ``by_bar``'s orders after each close."""
    broker = PaperBroker(bars, cash=100_000)
    step, submit = broker.step, broker.submit_order
    empty: list[tuple[str, str, float]] = []
    t0 = time.process_time()
    for t in range(len(bars)):
        step()
        for symbol, side, qty in by_bar.get(t, empty):
            submit(symbol, side, qty)
    return time.process_time() - t0


def per_call(fn: Callable[[], object], number: int = 200_000) -> float:
    """Microseconds per call of ``fn`` (the best of three batches)."""
    return min(timeit.repeat(fn, number=number, repeat=3, timer=time.process_time)) \
        / number * 1e6


def line(what: str, value: float, goal: str) -> None:
    print(f"  {what:<44} {value:8.2f} us   (goal {goal})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    daily = simbroker.synthetic_bars(n_symbols=100, n_bars=2520, freq="1D", seed=42)
    by_bar, n_orders = sma_orders(daily)
    with_orders, without = [], []
    for _ in range(args.repeat):
        with_orders.append(replay(daily, by_bar))
        without.append(replay(daily, {}))
    cost = [(a - b) / n_orders * 1e6 for a, b in zip(with_orders, without, strict=True)]
    print(f"SMA 10/50, 100 x 2,520 daily bars, {n_orders:,} orders, median of {args.repeat}:")
    print(f"  bars with orders {statistics.median(with_orders):.3f} s, without "
          f"{statistics.median(without):.3f} s")
    line("order round trip (submit + match + book)", statistics.median(cost), "<= 15 us")

    broker = PaperBroker(daily, positions={s: 100.0 for s in daily.symbols[:10]})
    for _ in range(60):
        broker.step()
    print("Queries on a broker holding 10 positions:")
    for name, fn in (("get_positions()", broker.get_positions), ("get_cash()", broker.get_cash),
                     ("now()", broker.now)):
        line(name, statistics.median(per_call(fn) for _ in range(args.repeat)), "<= 1 us")

    minute = simbroker.synthetic_bars(n_symbols=1, n_bars=500_000, freq="1min", seed=42)
    steps = []
    for _ in range(args.repeat):
        broker = PaperBroker(minute)
        step = broker.step
        t0 = time.process_time()
        for _ in range(len(minute)):
            step()
        steps.append((time.process_time() - t0) / len(minute) * 1e6)
    print("Empty book, 1 x 500,000 minute bars:")
    line("step() per bar", statistics.median(steps), "well under 1 us")

    def create() -> Order:
        return Order.create("SYM001", "buy", 100.0)

    print("One market order:")
    line("Order.create", statistics.median(per_call(create) for _ in range(args.repeat)),
         "-")
    tracemalloc.start()
    kept = [create() for _ in range(20_000)]
    size = tracemalloc.get_traced_memory()[0] / len(kept)
    tracemalloc.stop()
    print(f"  {'bytes per Order (tracemalloc)':<44} {size:8.0f} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
