"""Count the instructions of the event-driven engine and its floor under callgrind.

    python benchmarks/bench_instructions_engine.py                  # every case
    python benchmarks/bench_instructions_engine.py --case minute --case orders
    python benchmarks/bench_instructions_engine.py --case minute --bars 100000  # iterating

Cases (issue 21 goals 1-2; timings here move 2x with load, instruction counts do not):

- ``minute``: ``simbroker.backtest`` of the SMA 10/50 example over 1 x 500,000 minute
  bars, and ``bench_backtest.plain_loop`` (the floor) over the same bars; the ratio
  engine / floor is printed.
- ``daily``: the same over 100 x 2,520 daily bars.
- ``orders``: ``bench_order_cost.replay`` of the example's daily orders, with and without
  the orders; (with - without) / orders is one order's round trip (submit, match, book).

Each count is its own process under ``valgrind --tool=callgrind``: a warm-up run on a
small panel (imports, caches, first calls), then the measured run, the only one
collected (it goes through ``functools.reduce``, and callgrind collects only inside it,
as in ``bench_instructions.py``). ``OPENBLAS_NUM_THREADS=1`` and ``PYTHONHASHSEED=0`` for
steady counts (with random string hashes the floor's count moved by ~50M, ~1%, run to run).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
_CHILD = """
import functools, sys
sys.path.insert(0, {here!r})
sys.path.insert(0, {examples!r})
import simbroker
import bench_backtest as bb
import bench_order_cost as bo
from sma_crossover import SmaCrossover
what, spec = {what!r}, {spec!r}
bars = simbroker.synthetic_bars(seed=42, **spec)
small = simbroker.synthetic_bars(seed=42, **{{**spec, "n_bars": min(spec["n_bars"], 2000)}})

def engine(b):
    r = simbroker.backtest(SmaCrossover(10, 50, qty=bb.QTY), b, cash=bb.CASH,
                           slippage=bb.SLIPPAGE_BPS, fees=bb.FEE_BPS, progress=False)
    return int(r.stats["n_fills"])

def floor(b):
    return bb.plain_loop(b, SmaCrossover(10, 50, qty=bb.QTY))[0]

if what in ("engine", "floor"):
    run = engine if what == "engine" else floor
    run(small)  # warm-up, not collected
    out = functools.reduce(lambda _, __: run(bars), [0, 0])
else:
    by_bar, n = bo.sma_orders(bars)
    use = by_bar if what == "with" else {{}}
    bo.replay(small, {{}})
    bo.replay(bars, use)  # warm-up (replay keeps no state between calls)
    functools.reduce(lambda _, __: bo.replay(bars, use), [0, 0])
    out = n
print(out)
"""
_SPECS = {
    "minute": {"n_symbols": 1, "n_bars": 500_000, "freq": "1min"},
    "daily": {"n_symbols": 100, "n_bars": 2520, "freq": "1D"},
}


def count(what: str, spec: dict[str, object]) -> tuple[int, int]:
    """(instructions of the measured run, the number the child printed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        script = Path(tmp) / "child.py"
        script.write_text(_CHILD.format(here=str(HERE), examples=str(HERE.parent / "examples"),
                                        what=what, spec=spec))
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent),
                                              os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no",
                               "--toggle-collect=functools_reduce",
                               f"--callgrind-out-file={out}", sys.executable, str(script)],
                              check=True, env=env, capture_output=True, text=True)
        printed = int(proc.stdout.split()[-1])
        for row in out.read_text().splitlines():
            m = re.match(r"(?:summary|totals): (\d+)", row)
            if m:
                return int(m.group(1)), printed
    raise RuntimeError(f"no instruction total in callgrind's output for {what!r}")


def main() -> int:
    """Parse the arguments and count the cases."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--case", action="append", choices=["minute", "daily", "orders"])
    parser.add_argument("--bars", type=int, default=None,
                        help="bars of the minute case (default 500,000; the engine / floor "
                             "ratio at 100,000 is the same, in a fifth of the time)")
    args = parser.parse_args()
    if args.bars is not None:
        _SPECS["minute"] = {**_SPECS["minute"], "n_bars": args.bars}
    for case in args.case or ["minute", "daily", "orders"]:
        if case == "orders":
            with_, n = count("with", _SPECS["daily"])
            without, _ = count("without", _SPECS["daily"])
            print(f"orders (100 x 2,520 daily, {n:,} orders): with {with_ / 1e6:,.1f}M, "
                  f"without {without / 1e6:,.1f}M instructions: "
                  f"{(with_ - without) / n:,.0f} per order round trip", flush=True)
            continue
        eng, fills = count("engine", _SPECS[case])
        flo, floor_fills = count("floor", _SPECS[case])
        same = "" if fills == floor_fills else f" (FILLS DIFFER: floor {floor_fills:,})"
        print(f"{case}: engine {eng / 1e6:,.1f}M, floor {flo / 1e6:,.1f}M instructions: "
              f"{eng / flo:.3f}x ({fills:,} fills){same}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
