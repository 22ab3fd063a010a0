"""The ``simbroker`` command.

::

    simbroker backtest STRATEGY --data PATH [--cash --slippage-bps --fee-bps --out DIR]
    simbroker data validate PATH
    simbroker tradelog show FILE [--last N]
    simbroker tradelog replay FILE

A strategy is named ``module:Class`` or ``path/to/file.py:Class`` (a class is
instantiated without arguments; a function is used as ``on_bar``). Errors print one
line to stderr and exit non-zero; ``--traceback`` shows the full trace.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simbroker.data import load_bars
from simbroker.engine import backtest
from simbroker.errors import SimbrokerError
from simbroker.tradelog import read_trade_log, replay_trade_log

__all__ = ["load_strategy", "main"]


class CLIError(Exception):
    """A user error with a one-line message."""


def load_strategy(spec: str) -> Any:
    """Resolve ``module:Name`` or ``file.py:Name`` to a strategy object.

    A class is instantiated with no arguments; anything else is returned as is.
    """
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise CLIError(f"strategy {spec!r} must look like module:Class or path.py:Class")
    if target.endswith(".py"):
        path = Path(target)
        if not path.exists():
            raise CLIError(f"strategy file {path} does not exist")
        mod_name = f"_simbroker_strategy_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise CLIError(f"cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise CLIError(f"cannot import module {target!r}: {exc}") from None
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise CLIError(f"{target} has no attribute {name!r}") from None
    return obj() if isinstance(obj, type) else obj


def _cmd_backtest(args: argparse.Namespace) -> int:
    strategy = load_strategy(args.strategy)
    bars = load_bars(args.data)
    result = backtest(strategy, bars, cash=args.cash, slippage=args.slippage_bps,
                      fees=args.fee_bps, allow_short=not args.no_short,
                      trade_log=Path(args.out) / "tradelog.jsonl" if args.out else None)
    result.summary()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        save = getattr(result, "save", None)
        if callable(save):
            save(out)
        else:
            result.fills.to_parquet(out / "fills.parquet")
            result.equity.to_frame().to_parquet(out / "equity.parquet")
            result.positions.to_parquet(out / "positions.parquet")
        if args.report:
            report = getattr(result, "report", None)
            if not callable(report):
                raise CLIError("this version of simbroker cannot write HTML reports")
            report(out / "report.html")
        print(f"\nResults written to {out}")
    return 0


def _cmd_data_validate(args: argparse.Namespace) -> int:
    bars = load_bars(args.path)
    print(f"OK: {args.path}: {bars}")
    return 0


def _cmd_tradelog_show(args: argparse.Namespace) -> int:
    records = read_trade_log(args.file)
    if args.last:
        records = records[-args.last:]
    for rec in records:
        print(json.dumps(rec, default=str))
    return 0


def _cmd_tradelog_replay(args: argparse.Namespace) -> int:
    state = replay_trade_log(args.file)
    print(f"records:     {state.n_records}")
    print(f"last event:  {state.last_ts}")
    print(f"cash:        {state.cash:,.2f}")
    print(f"fills:       {len(state.fills)}")
    print(f"open orders: {len(state.open_orders)}")
    print("positions:   " + (", ".join(f"{s} {q:g}" for s, q in sorted(state.positions.items()))
                             or "flat"))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simbroker", description=__doc__.splitlines()[0])
    p.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bt = sub.add_parser("backtest", help="run a strategy over historical bars",
                        description="Run STRATEGY on the paper broker over --data.")
    bt.add_argument("strategy", help="module:Class or path.py:Class")
    bt.add_argument("--data", required=True, help="bars: CSV or Parquet, long form")
    bt.add_argument("--cash", type=float, default=100_000.0, help="starting cash (100000)")
    bt.add_argument("--slippage-bps", type=float, default=5.0, help="slippage in bps (5)")
    bt.add_argument("--fee-bps", type=float, default=1.0, help="fees in bps of notional (1)")
    bt.add_argument("--no-short", action="store_true", help="refuse short sales")
    bt.add_argument("--out", help="folder for results and the trade log")
    bt.add_argument("--report", action="store_true", help="also write report.html to --out")
    bt.set_defaults(func=_cmd_backtest)

    data = sub.add_parser("data", help="bar data tools").add_subparsers(
        dest="data_command", required=True, metavar="ACTION")
    dv = data.add_parser("validate", help="validate a bar file and summarize it")
    dv.add_argument("path")
    dv.set_defaults(func=_cmd_data_validate)

    tl = sub.add_parser("tradelog", help="trade log tools").add_subparsers(
        dest="tradelog_command", required=True, metavar="ACTION")
    show = tl.add_parser("show", help="print records as JSON lines")
    show.add_argument("file")
    show.add_argument("--last", type=int, default=0, help="only the last N records")
    show.set_defaults(func=_cmd_tradelog_show)
    rp = tl.add_parser("replay", help="rebuild cash and positions from a trade log")
    rp.add_argument("file")
    rp.set_defaults(func=_cmd_tradelog_replay)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (SimbrokerError, CLIError, OSError, ValueError, TypeError) as exc:
        if args.traceback:
            raise
        text = "; ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip())
        print(f"simbroker: error: {text or type(exc).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
