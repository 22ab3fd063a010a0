"""Count the instructions of one ``bench_accounts.py`` line under valgrind's callgrind.

    python benchmarks/bench_instructions.py                      # the usual four lines
    python benchmarks/bench_instructions.py --line "long/short realistic" --line unconstrained
    python benchmarks/bench_instructions.py --vectorized         # the backtest_vectorized lines

On a machine shared with other work, timings of the same tree moved 2x between runs
(``benchmarks/README.md``, "Machine and noise"), so the account models' cost is ranked
here by instruction count, which load does not move. Each line runs in its own process
under ``valgrind --tool=callgrind``: one warm-up run (imports, caches, first-call
compilation) and then the measured run, the only one collected: the measured call goes
through ``functools.reduce``, and callgrind collects only inside it
(``--collect-atstart=no --toggle-collect=functools_reduce``). ``OPENBLAS_NUM_THREADS=1``
because OpenBLAS's spinning threads moved counts by up to +-13M a run, and
``PYTHONHASHSEED=0`` because random string hashes move them by about 1%. The count is
"Ir" of the collected part, printed with its ratio to the unconstrained line of the same
strategy. Needs valgrind (Debian package ``valgrind``); a line takes about a minute.
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
DEFAULT = ("unconstrained", "realistic", "long/short unconstrained", "long/short realistic")
_CHILD = """
import functools, sys
sys.path.insert(0, {here!r})
import bench_accounts as ba
import simbroker
name = {name!r}
vectorized = name.startswith("vectorized ")
name = name.removeprefix("vectorized ")
kind = ba.SmaLongShort if name.startswith("long/short") else ba.SmaCrossover
base = name.removeprefix("long/short ")
kw = {{"cash": ba.SHORT_CASH}} if kind is ba.SmaLongShort else {{"cash": 1_000_000.0}}
kw.update({{"realistic": ba.REALISTIC, "fees+cap, no account": ba.FEES_CAP,
           "unconstrained": {{}}}}.get(base, {{"account": base}}))
bars = simbroker.synthetic_bars(n_symbols={symbols}, n_bars={bars}, freq="1D", seed=42,
                                start={start!r})
if vectorized:  # bench_accounts' vectorized lines: the crossings as targets
    kw["targets"] = ba.crossover_targets(bars, short=kind is ba.SmaLongShort)
    def run():
        return simbroker.backtest_vectorized(bars, **kw)
else:
    def run():
        return ba.event_run(kind, bars, kw)
run()  # warm-up, not collected
result = functools.reduce(lambda _, __: run(), [0, 0])
print("fills", int(result.stats["n_fills"]))
"""


def count(name: str, symbols: int, bars: int, start: str = "2015-01-02") -> int:
    """Instructions of one measured run of line ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        script = Path(tmp) / "child.py"
        script.write_text(_CHILD.format(here=str(HERE), name=name, symbols=symbols,
                                        bars=bars, start=start))
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent),
                                              os.environ.get("PYTHONPATH", "")])}
        subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no",
                        "--toggle-collect=functools_reduce",
                        f"--callgrind-out-file={out}", sys.executable, str(script)],
                       check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        for row in out.read_text().splitlines():
            m = re.match(r"(?:summary|totals): (\d+)", row)
            if m:
                return int(m.group(1))
    raise RuntimeError(f"no instruction total in callgrind's output for {name!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--line", action="append", help="a bench_accounts line "
                        "(unconstrained, margin, cash, fees+cap, no account, realistic, "
                        "each also with 'long/short ' before it; event-driven unless "
                        "--vectorized)")
    parser.add_argument("--vectorized", action="store_true",
                        help="the same lines through backtest_vectorized (targets)")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=2520)
    parser.add_argument("--start", default="2015-01-02",
                        help="first bar's date (the default keeps the figures comparable "
                        "with earlier stops; 2019-01-02 puts the last two years under "
                        "the 2024-26 rates: the CAT fee on every fill, the 2026 SEC fee)")
    args = parser.parse_args()
    names = tuple(args.line or DEFAULT)
    if args.vectorized:
        names = tuple(f"vectorized {name}" for name in names)
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = count(name, args.symbols, args.bars, args.start)
        runner = "vectorized " if name.startswith("vectorized ") else ""
        base_name = runner + ("long/short unconstrained"
                              if name.removeprefix(runner).startswith("long/short")
                              else "unconstrained")
        base = counts.get(base_name)
        ratio = f" ({counts[name] / base:.3f}x {base_name})" if base else ""
        print(f"{name}: {counts[name] / 1e6:,.0f}M instructions{ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
