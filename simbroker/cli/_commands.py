"""The commands that run once and print: ``backtest``, ``data validate``, ``tradelog
show|replay``, ``drift`` and ``rehearse``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simbroker._strategy_spec import CLIError, load_strategy, parse_params
from simbroker.cli._data import bars_for, window
from simbroker.cli._options import account_arg, calendar_arg, fees_arg
from simbroker.data import load_bars, validate_bars
from simbroker.engine import backtest
from simbroker.errors import StrategyError
from simbroker.tradelog import read_trade_log, repair_trade_log, replay_trade_log


def _prepare_out(out: str, overwrite: bool) -> Path:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"--out {folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise CLIError(f"--out {folder} is not empty; choose another folder or pass "
                           f"--overwrite to replace what a previous run wrote there")
        for name in ("tradelog.jsonl", "result.json", "report.html"):
            (folder / name).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cmd_backtest(args: argparse.Namespace) -> int:
    if args.report and not args.out:
        raise CLIError("--report writes report.html into the results folder: add --out DIR")
    strategy = load_strategy(args.strategy, parse_params(args.param))
    bars = bars_for(args, args.data)
    out = _prepare_out(args.out, args.overwrite) if args.out else None
    try:
        result = backtest(strategy, bars, cash=args.cash, slippage=args.slippage_bps,
                          fees=fees_arg(args, args.fee_bps), allow_short=not args.no_short,
                          trade_log=out / "tradelog.jsonl" if out else None,
                          max_volume_share=args.max_volume_share,
                          account=account_arg(args.account), venue=args.venue)
    except StrategyError as exc:
        if out is not None and exc.result is not None:
            exc.result.save(out)
            print(f"The run up to bar {exc.bar} is saved in {out} (result and trade log; "
                  f"result.json says where it stopped)", file=sys.stderr)
        raise
    result.summary()
    if out is not None:
        result.save(out)
        if args.report:
            result.report(out / "report.html", title=f"Backtest: {args.strategy}")
        print(f"\nResults written to {out}" + (" (report.html)" if args.report else ""))
    return 0


def _saved_result_dir(path: Path) -> Path | None:
    """The results folder when PATH is one (or its bars.parquet): it holds result.json."""
    folder = path if path.is_dir() else path.parent
    if (folder / "result.json").is_file() and (path.is_dir() or path.name == "bars.parquet"):
        return folder
    return None


def cmd_data_validate(args: argparse.Namespace) -> int:
    path = Path(args.path)
    saved = _saved_result_dir(path)
    if saved is not None:
        # A saved result's bars.parquet is the wide panel cell by cell (NaN where a symbol
        # had no bar, times in UTC): read it as the result does, then check every bar.
        from simbroker.results import load_result

        bars = load_result(saved).bars
        validate_bars(bars)
        start, end = window(args)
        if start is not None or end is not None:
            bars = bars.select(start=start, end=end)
    else:
        bars = bars_for(args, str(path))
    print(f"OK: {args.path}: {bars}")
    return _validate_sessions(args, bars)


def _validate_sessions(args: argparse.Namespace, bars: Any) -> int:
    """``--calendar``: print the session problems; 1 when there are some."""
    if not getattr(args, "calendar", None):
        return 0
    from simbroker.sessions import validate_sessions

    problems = validate_sessions(bars, calendar_arg(args.calendar))
    for line in problems:
        print(f"problem: {line}")
    if not problems:
        print(f"{args.calendar}: no session problems (every session and bar present, "
              f"no bar outside a trading day)")
    return 1 if problems else 0


def _repair_first(args: argparse.Namespace) -> None:
    if not args.repair:
        return
    report = repair_trade_log(args.file)
    if report.backup is None:
        print(f"{args.file}: intact ({report.kept_records} records); nothing to repair",
              file=sys.stderr)
    else:
        print(f"{args.file}: repaired: kept {report.kept_records} records, cut "
              f"{report.removed_bytes} bytes; the original is {report.backup}; first problem: "
              f"{report.reason}", file=sys.stderr)


def cmd_tradelog_show(args: argparse.Namespace) -> int:
    _repair_first(args)
    records = read_trade_log(args.file)
    if args.last:
        records = records[-args.last:]
    for rec in records:
        print(json.dumps(rec, default=str))
    return 0


def cmd_tradelog_replay(args: argparse.Namespace) -> int:
    _repair_first(args)
    state = replay_trade_log(args.file)
    print(f"records:     {state.n_records}")
    print(f"last event:  {state.last_ts}")
    print(f"cash:        {state.cash:,.2f}")
    print(f"fills:       {len(state.fills)}")
    print(f"open orders: {len(state.open_orders)}")
    print("positions:   " + (", ".join(f"{s} {q:g}" for s, q in sorted(state.positions.items()))
                             or "flat"))
    return 0


#: ``simbroker drift`` exits with this when a threshold is exceeded (a failed gate).
DRIFT_GATE_FAILED = 3


def cmd_drift(args: argparse.Namespace) -> int:
    from simbroker.drift import drift

    bars = load_bars(args.bars) if args.bars else None
    result = drift(args.a, args.b, bars=bars, time_window=args.time_window,
                   reference=args.reference)
    print(result.table(max_rows=args.rows))
    if args.out:
        folder = Path(args.out)
        if folder.exists() and not folder.is_dir():
            raise CLIError(f"--out {folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("fills", "only_a", "only_b", "refusals", "partials", "equity"):
            getattr(result, name).to_csv(folder / f"drift_{name}.csv",
                                         index=name == "equity")
        result.report(folder / "drift.html")
        wrote = "drift.html and drift_*.csv"
        try:
            result.plot(folder / "drift.png")
            wrote += " and drift.png"
        except ImportError as exc:
            print(f"(no plot: {exc})", file=sys.stderr)
        print(f"\nDrift report written to {folder} ({wrote})")
    breaches = result.breaches(max_drift_bps=args.max_drift_bps, max_missed=args.max_missed)
    for why in breaches:
        print(f"simbroker drift: threshold exceeded: {why}", file=sys.stderr)
    return DRIFT_GATE_FAILED if breaches else 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    from simbroker.rehearse import DEFAULT_SPEED, parse_faults, rehearse

    try:
        faults = parse_faults(args.faults)
    except ValueError as exc:
        raise CLIError(f"--faults: {exc}") from None
    params = parse_params(args.param)
    strategy = load_strategy(args.strategy, params)
    bars = bars_for(args, args.data)
    speed = DEFAULT_SPEED if args.speed is None else args.speed
    result = rehearse(strategy, bars, broker=args.broker, speed=speed, faults=faults,
                      cash=args.cash, slippage=args.slippage_bps, fees=args.fee_bps,
                      out=args.out,
                      strategy_factory=lambda: load_strategy(args.strategy, params))
    print(f"Rehearsed {result.bars} bars on the {args.broker} fake in "
          f"{result.seconds:.1f} s ({result.run.fills} fills"
          + (f"; faults: {', '.join(str(f) for f in faults)}" if faults else "") + ")\n")
    print(result.drift.table(max_rows=args.rows))
    print("\nDocumented venue differences (not drift):")
    for line in result.documented:
        print(f"  - {line}")
    if result.out is not None:
        print(f"\nRehearsal written to {result.out} (rehearsal.jsonl, backtest.jsonl, "
              f"drift.html, drift_*.csv)")
    breaches = result.breaches(max_drift_bps=args.max_drift_bps, max_missed=args.max_missed)
    for why in breaches:
        print(f"simbroker rehearse: threshold exceeded: {why}", file=sys.stderr)
    return DRIFT_GATE_FAILED if breaches else 0
