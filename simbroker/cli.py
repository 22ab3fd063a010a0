"""The ``simbroker`` command.

::

    simbroker backtest STRATEGY --data PATH [--cash --slippage-bps --fee-bps --out DIR]
    simbroker paper STRATEGY --broker paper|ibkr|alpaca [--data --speed --trade-log ...]
    simbroker live STRATEGY --broker ibkr|alpaca --confirm-live
    simbroker data validate PATH
    simbroker tradelog show FILE [--last N]
    simbroker tradelog replay FILE

A strategy is named ``module:Class`` or ``path/to/file.py:Class`` (a class is
instantiated without arguments; a function is used as ``on_bar``). Errors print one
line to stderr and exit non-zero; ``--traceback`` shows the full trace. Ctrl-C before a
run starts prints one line and exits 130 (during a run it stops after the bar in hand).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from simbroker.broker import Broker
from simbroker.config import BrokerConfig, IBKRConfig, PaperConfig, load_broker_config
from simbroker.data import load_bars, sample_bars
from simbroker.engine import backtest
from simbroker.errors import SimbrokerError
from simbroker.feeds import BarFeed, ReplayFeed
from simbroker.models.fees import fee_model_from_dict
from simbroker.models.slippage import slippage_model_from_dict
from simbroker.risk import RiskLimits
from simbroker.runner import (
    RealtimeRunner,
    ResumePoint,
    paper_broker_from_log,
    read_resume_point,
)
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log

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
    if args.report and not args.out:
        raise CLIError("--report writes report.html into the results folder: add --out DIR")
    strategy = load_strategy(args.strategy)
    bars = load_bars(args.data)
    result = backtest(strategy, bars, cash=args.cash, slippage=args.slippage_bps,
                      fees=args.fee_bps, allow_short=not args.no_short,
                      trade_log=Path(args.out) / "tradelog.jsonl" if args.out else None)
    result.summary()
    if args.out:
        out = result.save(args.out)
        if args.report:
            result.report(out / "report.html", title=f"Backtest: {args.strategy}")
        print(f"\nResults written to {out}" + (" (report.html)" if args.report else ""))
    return 0


_LIVE_FLAG = "--confirm-live"


def _risk_is_set(limits: RiskLimits) -> str | None:
    """Why ``limits`` are not enough for real money, or ``None`` when they are."""
    missing = []
    if limits.max_order_qty is None and limits.max_order_notional is None:
        missing.append("max_order_qty or max_order_notional")
    if limits.max_position is None and limits.max_position_notional is None \
            and limits.max_gross_exposure is None:
        missing.append("max_position, max_position_notional or max_gross_exposure")
    if limits.max_daily_loss is None:
        missing.append("max_daily_loss")
    return ", ".join(missing) or None


def _cmd_realtime(args: argparse.Namespace, *, live: bool) -> int:
    command = "live" if live else "paper"
    config = load_broker_config(args.broker, config_dir=args.config_dir,
                                path=args.config) if (
        args.config or args.broker != "paper"
        or (Path(args.config_dir) / "brokers" / "paper.yaml").exists()) else PaperConfig()
    if live:
        if not config.is_live:
            raise CLIError(f"the {args.broker} config is not a live config (IBKR: "
                           f"trading_mode: live on a live port; Alpaca: paper: false); "
                           f"use 'simbroker paper' for paper trading")
        if not args.confirm_live:
            raise CLIError(f"'simbroker live' trades real money: pass {_LIVE_FLAG} to confirm")
        why = _risk_is_set(config.risk)
        if why:
            raise CLIError(f"'simbroker live' needs risk limits in the config: set {why}")
    elif config.is_live:
        raise CLIError(f"the {args.broker} config trades real money (IBKR live port or "
                       f"trading_mode: live; Alpaca paper: false); only 'simbroker live' "
                       f"accepts it")
    strategy = load_strategy(args.strategy)
    log_path = args.trade_log or getattr(config, "trade_log", None)
    if log_path is None:
        log_path = f"tradelogs/{command}-{args.broker}.jsonl"
    log_path = Path(log_path)
    if args.fresh and log_path.exists() and log_path.stat().st_size:
        raise CLIError(f"--fresh: trade log {log_path} already exists; move it away or "
                       f"leave out --fresh to resume the run it records")
    resume = read_resume_point(log_path)
    trade_log = TradeLog(log_path)
    broker: Broker | None = None
    try:
        broker, feed = _open_broker(args, config, trade_log, resume, live=live)
        risk = config.risk if config.risk != RiskLimits() else None
        if resume is not None:
            print(f"Resuming run {resume.run_id} from {log_path}: {resume.bars_done} bars "
                  f"done, last {resume.last_bar_close or 'none'}"
                  + ("" if resume.clean_stop else " (previous run did not stop cleanly)"))
        runner = RealtimeRunner(strategy, broker, feed, trade_log=trade_log, risk=risk,
                                resume=resume if resume is not None else False,
                                max_bars=args.max_bars, max_history=args.max_history)
        report = runner.run()
    finally:
        close = getattr(broker, "close", None)
        if callable(close) and not isinstance(config, PaperConfig):
            close()  # disconnects a live adapter; a paper broker shares our trade log
        trade_log.close()
    print(f"Run {report.run_id}: {report.bars} bars, {report.orders} orders, "
          f"{report.fills} fills; stopped: {report.stopped_by}"
          + (f"; skipped {report.skipped} bars already done" if report.skipped else ""))
    state = replay_trade_log(log_path)
    print(f"cash {state.cash:,.2f}; positions "
          + (", ".join(f"{s} {q:g}" for s, q in sorted(state.positions.items())) or "flat"))
    print(f"Trade log: {log_path}")
    return 0 if not report.stopped_by.startswith("error") else 1


def _interval(text: str) -> timedelta:
    try:
        value = pd.Timedelta(text)
    except ValueError:
        raise CLIError(f"--interval {text!r} is not a duration (e.g. 1min, 5min, 1h, 1D)") \
            from None
    if value <= pd.Timedelta(0):
        raise CLIError(f"--interval must be positive, got {text!r}")
    out: timedelta = value.to_pytimedelta()
    return out


def _open_broker(args: argparse.Namespace, config: BrokerConfig, trade_log: TradeLog,
                 resume: ResumePoint | None, *, live: bool) -> tuple[Broker, BarFeed]:
    if isinstance(config, PaperConfig):
        data = args.data or config.data
        bars = load_bars(data) if data else sample_bars()
        speed = args.speed if args.speed is not None else config.speed
        paper = paper_broker_from_log(
            bars, resume, trade_log=trade_log, cash=config.cash,
            slippage=_model(config.slippage, "slippage"), fees=_model(config.fees, "fees"),
            allow_short=config.allow_short)
        return paper, ReplayFeed(bars, speed=speed if speed else math.inf,
                                 start=args.warmup)
    symbols = args.symbols or list(getattr(load_strategy(args.strategy), "symbols", []) or [])
    if not symbols:
        raise CLIError("name the symbols to trade with --symbols (or give the strategy a "
                       "'symbols' attribute)")
    # Imported here: the client libraries are optional extras.
    module, cls = (("ibkr", "IBKRBroker") if isinstance(config, IBKRConfig)
                   else ("alpaca", "AlpacaBroker"))
    try:
        adapter = getattr(importlib.import_module(f"simbroker.brokers.{module}"), cls)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if missing == f"simbroker.brokers.{module}":
            raise CLIError(f"this simbroker has no {args.broker} adapter (module "
                           f"simbroker.brokers.{module} is missing)") from None
        raise CLIError(f"the {args.broker} adapter needs {missing!r}: "
                       f"pip install 'simbroker[{module}]'") from None
    broker: Any = adapter.from_config(config, allow_live=live, trade_log=trade_log)
    try:
        feed: BarFeed = broker.bar_feed(symbols, _interval(args.interval),
                                        warmup=args.warmup)
    except BaseException:
        broker.close()
        raise
    return broker, feed


def _model(value: Any, what: str) -> Any:
    if isinstance(value, dict):
        build = fee_model_from_dict if what == "fees" else slippage_model_from_dict
        return build(value)
    return value


def _cmd_paper(args: argparse.Namespace) -> int:
    return _cmd_realtime(args, live=False)


def _cmd_live(args: argparse.Namespace) -> int:
    return _cmd_realtime(args, live=True)


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

    for name, live in (("paper", False), ("live", True)):
        rt = sub.add_parser(
            name, help=("run a strategy in real time against real money (guarded)" if live
                        else "run a strategy in real time on a paper account or replay"),
            description=(
                "Run STRATEGY in real time. Orders pass the config's risk limits; every "
                "event goes to the trade log; SIGINT/SIGTERM stop cleanly after the bar in "
                "hand; running again with the same trade log resumes without duplicating "
                "orders." + (f" Refuses unless the config is live, {_LIVE_FLAG} is given "
                             "and risk limits are set." if live else
                             " Refuses a config that trades real money.")))
        rt.add_argument("strategy", help="module:Class or path.py:Class")
        rt.add_argument("--broker", required=True,
                        choices=("ibkr", "alpaca") if live else ("paper", "ibkr", "alpaca"))
        rt.add_argument("--config-dir", default="CONFIG",
                        help="folder holding brokers/{broker}.yaml (CONFIG)")
        rt.add_argument("--config", help="a broker config file (instead of --config-dir)")
        rt.add_argument("--trade-log", help="trade log file (default: the config's)")
        rt.add_argument("--fresh", action="store_true",
                        help="refuse to run if the trade log exists (no resume)")
        rt.add_argument("--max-bars", type=int, help="stop after N bars")
        rt.add_argument("--max-history", type=int,
                        help="keep only the last N bars (at least) for the strategy's "
                             "history and indicators (default: all, which gives exactly "
                             "the backtest's indicator values)")
        rt.add_argument("--warmup", type=int, default=0,
                        help="bars of history before the first traded bar (0)")
        rt.add_argument("--symbols", nargs="+", help="symbols to trade (live brokers)")
        rt.add_argument("--interval", default="1min", help="bar length for live bars (1min)")
        if live:
            rt.add_argument(_LIVE_FLAG, dest="confirm_live", action="store_true",
                            help="confirm that this run trades real money")
            rt.set_defaults(func=_cmd_live, data=None, speed=None)
        else:
            rt.add_argument("--data", help="bars to replay (paper broker; default: the "
                                           "config's data, else the bundled sample)")
            rt.add_argument("--speed", type=float,
                            help="replay speed, x real time (paper broker; 0 = as fast as "
                                 "possible, the default)")
            rt.set_defaults(func=_cmd_paper)

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
    except KeyboardInterrupt:
        # Ctrl-C before the runner installs its own handler (loading the config, the data,
        # the strategy, connecting): nothing ran yet, so stop with the shell's code for SIGINT.
        if args.traceback:
            raise
        print("simbroker: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
