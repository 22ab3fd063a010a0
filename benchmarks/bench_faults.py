"""Orders through a live adapter while the project's loopback fake injects faults.

    python benchmarks/bench_faults.py --broker ibkr --orders 1000 --faults 50
    python benchmarks/bench_faults.py --broker alpaca --orders 1000 --faults 50

The real client library (ib_async / alpaca-py) talks to the fake over loopback; the
strategy resubmits the same ``client_order_id`` whenever ``submit_order`` raises, as a
careful user would. Each venue's scenario lives in ``faults_<broker>.py`` beside this file
and returns one dict of figures; this script prints them and exits non-zero when any
safety figure (duplicates, lost orders, id collisions, fills missed or doubled, the final
position or cash mismatch) is not zero.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SAFETY = ("duplicates", "lost", "id_collisions", "fills_missed", "fills_doubled",
          "position_mismatch", "cash_mismatch", "refused_but_placed")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", choices=("ibkr", "alpaca"), required=True)
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--faults", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    scenario = importlib.import_module(f"faults_{args.broker}")
    figures: dict[str, Any] = scenario.run(orders=args.orders, faults=args.faults,
                                           seed=args.seed)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        width = max(len(k) for k in figures)
        print(f"{args.broker}: {args.orders} orders, {args.faults} faults, seed {args.seed}")
        for key, value in figures.items():
            print(f"  {key:<{width}}  {_fmt(value)}")
    bad = [k for k in SAFETY if figures.get(k, 0)]
    if bad:
        print("NOT SAFE: " + ", ".join(f"{k}={figures[k]}" for k in bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
