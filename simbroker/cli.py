"""The ``simbroker`` command line.

::

    simbroker backtest STRATEGY --data PATH [--cash --slippage-bps --fee-bps|--fees
                       --max-volume-share --account --venue alpaca|ibkr --out DIR]
    simbroker paper STRATEGY --broker paper|ibkr|alpaca [--data --speed --trade-log --shadow
                    --account --max-volume-share ...]
    simbroker live STRATEGY --broker ibkr|alpaca --confirm-live
    simbroker data validate PATH [--calendar XNYS]
    simbroker tradelog show FILE [--last N] [--repair]
    simbroker tradelog replay FILE [--repair]
    simbroker drift A B [--bars FILE] [--max-drift-bps X] [--max-missed N] [--out DIR]
    simbroker rehearse STRATEGY --broker ibkr|alpaca --data BARS [--speed N] [--faults SPEC]

A strategy is named ``module:Class`` or ``path/to/file.py:Class`` (a class is
instantiated without arguments; a function is used as ``on_bar``). Errors print one
line to stderr and exit non-zero; ``--traceback`` shows the full trace. Ctrl-C before a
run starts prints one line and exits 130 (during a run it stops after the bar in hand).

Every command that reads a bar file takes the same data options (one helper,
``_data_options``): ``--symbol``, ``--tz``, ``--bar-time``, ``--dayfirst``/``--monthfirst``,
``--volume``, ``--close``, ``--column``, ``--start``/``--end`` and ``--calendar``; ``--data
sample`` is the bundled sample.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import math
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from simbroker._strategy_spec import CLIError, load_strategy, parse_params
from simbroker.accounts import Account, account_model
from simbroker.bars import Bars
from simbroker.broker import Broker
from simbroker.config import BrokerConfig, IBKRConfig, PaperConfig, load_broker_config
from simbroker.data import load_bars, sample_bars, validate_bars
from simbroker.engine import backtest
from simbroker.errors import DataWarning, FeeScheduleError, SimbrokerError, StrategyError
from simbroker.feeds import BarFeed, ReplayFeed
from simbroker.models.fees import fee_model, fee_model_from_dict
from simbroker.models.slippage import slippage_model_from_dict
from simbroker.risk import RiskLimits
from simbroker.runner import (
    FROM_LOG,
    RealtimeRunner,
    ResumePoint,
    paper_broker_from_log,
    read_resume_point,
)
from simbroker.tradelog import TradeLog, read_trade_log, repair_trade_log, replay_trade_log

__all__ = ["load_strategy", "main"]


def _window(args: argparse.Namespace) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """``--start``/``--end`` as UTC times; a date-only ``--end`` includes that day."""
    out: list[pd.Timestamp | None] = []
    for flag in ("start", "end"):
        text = getattr(args, flag, None)
        if text is None:
            out.append(None)
            continue
        try:
            when = pd.Timestamp(text)
        except ValueError:
            raise CLIError(f"--{flag} {text!r} is not a date or time (e.g. 2012-01-31)") \
                from None
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        if flag == "end" and when == when.normalize() and ":" not in text:
            when += pd.Timedelta(days=1)
        out.append(when)
    start, end = out
    if start is not None and end is not None and end <= start:
        raise CLIError(f"--end {args.end} is not after --start {args.start}")
    return start, end


_SAMPLE = "sample"  # --data sample: the bundled sample (shipped inside the package)


def _load_data(args: argparse.Namespace, source: Any, *, tz: str | None = None) -> Bars:
    """``load_bars`` with the data options (``--symbol``, ``--tz``, ...) of the command line.

    A ``DataWarning`` is printed as one ``simbroker: warning:`` line on stderr.
    """
    columns: dict[str, str] = {}
    for item in getattr(args, "column", None) or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise CLIError(f"--column {item!r} must look like OLD=NEW (e.g. "
                           f"--column timestamp_utc=timestamp)")
        columns[old] = new
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        bars = load_bars(source, symbol=getattr(args, "symbol", None),
                         tz=getattr(args, "tz", None) or tz,
                         bar_time=getattr(args, "bar_time", None) or "open",
                         dayfirst=getattr(args, "dayfirst", None),
                         volume=getattr(args, "volume", None) or "reported",
                         close=getattr(args, "close", None), columns=columns or None)
    for w in caught:
        if issubclass(w.category, DataWarning):
            print(f"simbroker: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return bars


def _data_options_given(args: argparse.Namespace) -> list[str]:
    """The data-file options set on the command line (for brokers that read no file)."""
    flags = {"symbol": "--symbol", "tz": "--tz", "bar_time": "--bar-time",
             "dayfirst": "--dayfirst/--monthfirst", "volume": "--volume", "close": "--close",
             "column": "--column"}
    return [flag for name, flag in flags.items() if getattr(args, name, None)
            not in (None, [])]


def _bars_for(args: argparse.Namespace, data: Any, *, tz: str | None = None) -> Any:
    if isinstance(data, str) and data == _SAMPLE and not Path(data).exists():
        data = sample_bars()
    bars = _load_data(args, data, tz=tz) if not hasattr(data, "select") else data
    start, end = _window(args)
    if start is None and end is None:
        return _with_calendar(args, bars)
    picked = bars.select(start=start, end=end)
    if not len(picked):
        raise CLIError(f"no bars in --start {args.start} .. --end {args.end} "
                       f"(the data spans {bars})")
    return _with_calendar(args, picked)


def _calendar_arg(text: str) -> str | dict[str, str]:
    """``--calendar XNYS`` (every symbol) or ``--calendar ES=CMES,SPY=XNYS``."""
    if "=" not in text:
        return text
    pairs = [p.partition("=") for p in text.split(",") if p.strip()]
    bad = [f"{k}{sep}{v}" for k, sep, v in pairs if not (k.strip() and sep and v.strip())]
    if bad:
        raise CLIError(f"--calendar {text!r}: expected NAME or SYMBOL=NAME,SYMBOL=NAME; "
                       f"bad part {bad[0]!r}")
    return {k.strip(): v.strip() for k, _, v in pairs}


def _with_calendar(args: argparse.Namespace, bars: Any) -> Any:
    """The bars with ``--calendar`` sessions attached (unchanged without the option)."""
    text = getattr(args, "calendar", None)
    if not text:
        return bars
    from simbroker.sessions import with_calendar

    return with_calendar(bars, _calendar_arg(text))


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


def _cmd_backtest(args: argparse.Namespace) -> int:
    if args.report and not args.out:
        raise CLIError("--report writes report.html into the results folder: add --out DIR")
    strategy = load_strategy(args.strategy, parse_params(args.param))
    bars = _bars_for(args, args.data)
    out = _prepare_out(args.out, args.overwrite) if args.out else None
    try:
        result = backtest(strategy, bars, cash=args.cash, slippage=args.slippage_bps,
                          fees=_fees_arg(args, args.fee_bps), allow_short=not args.no_short,
                          trade_log=out / "tradelog.jsonl" if out else None,
                          max_volume_share=args.max_volume_share,
                          account=_account_arg(args.account), venue=args.venue)
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
    if limits.price_collar is None and limits.max_order_notional is None:
        # A limit or stop priced far from the market fills at the market: only a collar,
        # or a notional limit priced at the highest fill price, bounds such an order.
        missing.append("price_collar (or max_order_notional)")
    return ", ".join(missing) or None


def _cmd_realtime(args: argparse.Namespace, *, live: bool) -> int:
    command = "live" if live else "paper"
    config = load_broker_config(args.broker, config_dir=args.config_dir,
                                path=args.config) if (
        args.config or args.broker != "paper"
        or (Path(args.config_dir) / "brokers" / "paper.yaml").exists()) else PaperConfig()
    _hide_secrets(config)
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
    strategy = load_strategy(args.strategy, parse_params(args.param))
    log_path = args.trade_log or getattr(config, "trade_log", None)
    if log_path is None:
        log_path = f"tradelogs/{command}-{args.broker}.jsonl"
    log_path = Path(log_path)
    if args.fresh and log_path.exists() and log_path.stat().st_size:
        raise CLIError(f"--fresh: trade log {log_path} already exists; move it away or "
                       f"leave out --fresh to resume the run it records")
    resume = read_resume_point(log_path)
    # Real money: every record is on disk (fsync) before the run moves on.
    trade_log = TradeLog(log_path, fsync=live)
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
                                max_bars=args.max_bars, max_history=args.max_history,
                                shadow=_shadow_settings(args, config))
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
    if runner.shadow is not None:
        kinds = sorted({a["kind"] for a in report.alerts})
        print(f"Shadow paper log: {runner.shadow.path}; {len(report.alerts)} divergence "
              f"alert(s)" + (f" ({', '.join(kinds)})" if kinds else "")
              + f"; compare: simbroker drift {runner.shadow.path} {log_path}")
    return 0 if not report.stopped_by.startswith("error") else 1


def _shadow_settings(args: argparse.Namespace, config: BrokerConfig) -> Any:
    """``--shadow``: the paper broker's models from a paper config, else the defaults."""
    if not getattr(args, "shadow", False):
        return False
    from simbroker.shadow import ShadowSettings

    if isinstance(config, PaperConfig):
        unmodeled = [k for k in ("account", "max_volume_share", "borrow", "interest")
                     if getattr(config, k) is not None]
        if unmodeled or getattr(args, "account", None) or getattr(args, "max_volume_share",
                                                                   None):
            print(f"simbroker: warning: the --shadow paper broker does not model "
                  f"{', '.join(unmodeled) or 'the account or volume cap'} yet (see "
                  f"simbroker.shadow); its fills use slippage, fees and shorting only",
                  file=sys.stderr)
        return ShadowSettings(slippage=_model(config.slippage, "slippage"),
                              fees=_fees_arg(args, _model(config.fees, "fees")),
                              allow_short=config.allow_short)
    return ShadowSettings()


def _hide_secrets(config: Any) -> None:
    """Scrub the config's secrets from every log line of the process, any library's."""
    from simbroker.config import Secret
    from simbroker.redact import install_secret_filter

    values = [getattr(config, f.name) for f in dataclasses.fields(config)]
    install_secret_filter(v for v in values if isinstance(v, Secret))


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
        bars = _bars_for(args, data or sample_bars(), tz=config.data_tz)
        speed = args.speed if args.speed is not None else config.speed
        borrow, interest = config.financing()
        paper = paper_broker_from_log(
            bars, resume, trade_log=trade_log, cash=config.cash,
            slippage=_model(config.slippage, "slippage"),
            fees=_fees_arg(args, _model(config.fees, "fees")),
            allow_short=config.allow_short, borrow=borrow, interest=interest,
            max_volume_share=_volume_arg(args, config), account=_paper_account(args, config))
        return paper, ReplayFeed(bars, speed=speed if speed else math.inf,
                                 start=args.warmup)
    given = _data_options_given(args)
    if given or getattr(args, "start", None) or getattr(args, "end", None):
        raise CLIError(f"{', '.join(given) or '--start/--end'} appl"
                       f"{'ies' if len(given) < 2 else 'y'} to bar files (--data, the paper "
                       f"broker); the {args.broker} broker streams its own bars")
    symbols = args.symbols or list(getattr(load_strategy(args.strategy, parse_params(args.param)),
                                           "symbols", []) or [])
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
        if module == "ibkr" and missing in ("ib_insync", "ib_async", "eventkit"):
            missing = "ib_async"  # ib_insync is only the fallback tried last
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


def _paper_account(args: argparse.Namespace, config: PaperConfig) -> Any:
    """``--account``, else the config's ``account``, else the resumed log's (FROM_LOG)."""
    spec = getattr(args, "account", None)
    if spec is None:
        spec = config.account
    return FROM_LOG if spec is None else account_model(spec)


def _volume_arg(args: argparse.Namespace, config: PaperConfig) -> float | None:
    """``--max-volume-share``, else the config's."""
    share = getattr(args, "max_volume_share", None)
    return config.max_volume_share if share is None else float(share)


def _fees_arg(args: argparse.Namespace, default: Any) -> Any:
    """``--fees NAME`` (a published schedule, e.g. ibkr_fixed) over the config's or --fee-bps."""
    name = getattr(args, "fees", None)
    if name is None:
        return default
    try:
        return fee_model(name)
    except FeeScheduleError as exc:
        raise CLIError(f"--fees: {exc}") from None


def _model(value: Any, what: str) -> Any:
    if isinstance(value, dict):
        build = fee_model_from_dict if what == "fees" else slippage_model_from_dict
        return build(value)
    return value


def _cmd_paper(args: argparse.Namespace) -> int:
    return _cmd_realtime(args, live=False)


def _cmd_live(args: argparse.Namespace) -> int:
    return _cmd_realtime(args, live=True)


def _saved_result_dir(path: Path) -> Path | None:
    """The results folder when PATH is one (or its bars.parquet): it holds result.json."""
    folder = path if path.is_dir() else path.parent
    if (folder / "result.json").is_file() and (path.is_dir() or path.name == "bars.parquet"):
        return folder
    return None


def _cmd_data_validate(args: argparse.Namespace) -> int:
    path = Path(args.path)
    saved = _saved_result_dir(path)
    if saved is not None:
        # A saved result's bars.parquet is the wide panel cell by cell (NaN where a symbol
        # had no bar, times in UTC): read it as the result does, then check every bar.
        from simbroker.results import load_result

        bars = load_result(saved).bars
        validate_bars(bars)
        start, end = _window(args)
        if start is not None or end is not None:
            bars = bars.select(start=start, end=end)
    else:
        bars = _bars_for(args, str(path))
    print(f"OK: {args.path}: {bars}")
    return _validate_sessions(args, bars)


def _validate_sessions(args: argparse.Namespace, bars: Any) -> int:
    """``--calendar``: print the session problems; 1 when there are some."""
    if not getattr(args, "calendar", None):
        return 0
    from simbroker.sessions import validate_sessions

    problems = validate_sessions(bars, _calendar_arg(args.calendar))
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


def _cmd_tradelog_show(args: argparse.Namespace) -> int:
    _repair_first(args)
    records = read_trade_log(args.file)
    if args.last:
        records = records[-args.last:]
    for rec in records:
        print(json.dumps(rec, default=str))
    return 0


def _cmd_tradelog_replay(args: argparse.Namespace) -> int:
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


def _cmd_drift(args: argparse.Namespace) -> int:
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


def _cmd_rehearse(args: argparse.Namespace) -> int:
    from simbroker.rehearse import DEFAULT_SPEED, parse_faults, rehearse

    try:
        faults = parse_faults(args.faults)
    except ValueError as exc:
        raise CLIError(f"--faults: {exc}") from None
    params = parse_params(args.param)
    strategy = load_strategy(args.strategy, params)
    bars = _bars_for(args, args.data)
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


_DESCRIPTION = """\
Backtest a strategy on historical bars, then run the same strategy object on the paper
broker in real time and on Interactive Brokers or Alpaca (paper, then live, behind
explicit gates). Every run writes an append-only trade log that resumes after a crash."""

_EPILOG = """\
examples:
  simbroker backtest examples/sma_crossover.py:SmaCrossover --data sample
  simbroker backtest examples/sma_crossover.py:SmaCrossover --data sample \\
      --param fast=5 --param slow=30 --start 2010-01-01 --end 2012-12-31 --out results/sma
  simbroker backtest my.py:Strategy --data ES_1min.txt --symbol ES --tz America/Chicago \\
      --bar-time close
  simbroker data validate spx.csv --symbol SPX --tz America/New_York --volume unknown
  simbroker paper examples/sma_crossover.py:SmaCrossover --broker paper --speed 86400
  simbroker tradelog show results/sma/tradelog.jsonl --last 5"""


def _common(strategy: bool = True) -> argparse.ArgumentParser:
    """Options every subcommand takes (also after its name)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    if strategy:
        parent.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                            help="a strategy parameter, typed from its __init__ (repeat)")
    return parent


def _window_options(cmd: Any) -> None:
    cmd.add_argument("--start", help="first bar to use (a date or time, UTC unless given)")
    cmd.add_argument("--end", help="last bar to use (a date includes that whole day)")
    _calendar_option(cmd)


def _calendar_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--calendar", metavar="NAME",
                     help="exchange calendar for sessions (XNYS, CMES, ...; or "
                          "SYM=NAME,SYM=NAME): day orders expire at the regular close and "
                          "orders trade only in regular hours unless extended_hours "
                          "(needs simbroker[calendars])")


def _data_options(cmd: argparse.ArgumentParser) -> None:
    """How to read a bar file (``load_bars``' options), on every command that reads bars."""
    group = cmd.add_argument_group("reading bar files (see load_bars)")
    group.add_argument("--symbol", help="the symbol of every row, for a file without a "
                                        "symbol column")
    group.add_argument("--tz", help="the zone naive timestamps are written in (e.g. "
                                    "America/New_York; UTC if they are UTC); required for "
                                    "naive timestamps")
    group.add_argument("--bar-time", choices=("open", "close"),
                       help="what a timestamp marks: the bar's open (default) or its close")
    day = group.add_mutually_exclusive_group()
    day.add_argument("--dayfirst", dest="dayfirst", action="store_const", const=True,
                     help="dates are dd/mm/yyyy")
    day.add_argument("--monthfirst", dest="dayfirst", action="store_const", const=False,
                     help="dates are mm/dd/yyyy")
    group.add_argument("--volume", choices=("reported", "unknown"),
                       help="'unknown' for sources without real volume (an index): every "
                            "bar with a close is tradable")
    group.add_argument("--close", choices=("close", "adj_close"),
                       help="with an Adj Close column: which close the bars use")
    group.add_argument("--column", action="append", default=[], metavar="OLD=NEW",
                       help="rename a column before reading (e.g. "
                            "timestamp_utc=timestamp); repeat")
    _window_options(group)


def _version() -> str:
    from simbroker import __version__

    return f"simbroker {__version__}"



def _account_spec(text: str) -> Any:
    """``--account``: ``cash``, ``margin``, ``unconstrained`` or a JSON mapping of a
    model's parameters (``'{"model": "margin", "liquidate": true}'``)."""
    spec: Any = text
    if text.lstrip().startswith("{"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not a JSON mapping: {exc}") from None
    try:
        account_model(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


def _account_arg(spec: Any) -> Account | None:
    """A new account object for an ``--account`` value (``None``: unconstrained)."""
    return account_model(spec)


def _volume_share(text: str) -> float:
    """``--max-volume-share``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


_ACCOUNT_HELP = ("the account's money rules: cash (T+1, no borrowing), margin (Reg T), "
                 "unconstrained, or a JSON mapping of parameters, e.g. "
                 "'{\"model\": \"margin\", \"liquidate\": true}'")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simbroker", description=_DESCRIPTION, epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bt = sub.add_parser("backtest", help="run a strategy over historical bars",
                        parents=[_common()],
                        description="Run STRATEGY on the paper broker over the bars in --data "
                                    "and print its statistics; with --out, save the result "
                                    "(Parquet tables, result.json) and the trade log, and "
                                    "with --report an HTML report. A strategy that raises "
                                    "is reported with its own line, bar and time, and the "
                                    "run up to that bar is still saved.")
    bt.add_argument("strategy", help="module:Class or path.py:Class")
    bt.add_argument("--data", required=True,
                    help="bars: CSV or Parquet, long form ('sample': the bundled sample)")
    _data_options(bt)
    bt.add_argument("--cash", type=float, default=100_000.0, help="starting cash (100000)")
    bt.add_argument("--slippage-bps", type=float, default=5.0, help="slippage in bps (5)")
    bt.add_argument("--fee-bps", type=float, default=1.0, help="fees in bps of notional (1)")
    bt.add_argument("--fees", metavar="SCHEDULE",
                    help="a published fee schedule instead of --fee-bps: ibkr_fixed, "
                         "ibkr_tiered or alpaca (NAME@YYYY-MM-DD for undated fills' date)")
    bt.add_argument("--no-short", action="store_true", help="refuse short sales")
    bt.add_argument("--max-volume-share", type=_volume_share, default=None, metavar="SHARE",
                    help="partial fills: at most this share of a bar's volume, in (0, 1] "
                         "(e.g. 0.025; default: whole fills)")
    bt.add_argument("--account", type=_account_spec, default=None, metavar="MODEL",
                    help=_ACCOUNT_HELP + " (default: unconstrained)")
    bt.add_argument("--venue", choices=("alpaca", "ibkr"), default=None,
                    help="enforce this venue's order rules where the venues differ (alpaca: "
                         "no order crosses a position through zero or opens a side while "
                         "the other side has an open order; default: neither)")
    bt.add_argument("--out", help="folder for results and the trade log (must be empty)")
    bt.add_argument("--overwrite", action="store_true",
                    help="let --out replace what a previous run wrote there")
    bt.add_argument("--report", action="store_true", help="also write report.html to --out")
    bt.set_defaults(func=_cmd_backtest)

    for name, live in (("paper", False), ("live", True)):
        rt = sub.add_parser(
            name, parents=[_common()],
            help=("run a strategy in real time against real money (guarded)" if live
                  else "run a strategy in real time on a paper account or replay"),
            description=(
                "Run STRATEGY in real time. Orders pass the config's risk limits; every "
                "event goes to the trade log; SIGINT/SIGTERM stop cleanly after the bar in "
                "hand; running again with the same trade log resumes without duplicating "
                "orders." + (f" Refuses unless the config is live, {_LIVE_FLAG} is given "
                             "and risk limits are set (order size, position, daily loss, and a "
                             "price collar or an order notional limit)." if live else
                             " Refuses a config that trades real money.")))
        rt.add_argument("strategy", help="module:Class or path.py:Class")
        rt.add_argument("--broker", required=True,
                        choices=("ibkr", "alpaca") if live else ("paper", "ibkr", "alpaca"))
        rt.add_argument("--config-dir", default="CONFIG",
                        help="folder holding brokers/{broker}.yaml (CONFIG)")
        rt.add_argument("--config", help="a broker config file (instead of --config-dir)")
        rt.add_argument("--trade-log", help="trade log file (default: the config's)")
        rt.add_argument("--fees", metavar="SCHEDULE",
                        help="paper broker / --shadow: a published fee schedule (ibkr_fixed, "
                             "ibkr_tiered, alpaca) instead of the config's fees")
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
        rt.add_argument("--shadow", action="store_true",
                        help="run a paper broker beside the broker on the same bars and "
                             "orders, log it to TRADE_LOG.shadow.jsonl and alert (an 'alert' "
                             "record and a warning) when a fill diverges from paper's")
        if live:
            rt.add_argument(_LIVE_FLAG, dest="confirm_live", action="store_true",
                            help="confirm that this run trades real money")
            _data_options(rt)
            rt.set_defaults(func=_cmd_live, data=None, speed=None)
        else:
            rt.add_argument("--data", help="bars to replay (paper broker; default: the "
                                           "config's data, else the bundled sample)")
            _data_options(rt)
            rt.add_argument("--speed", type=float,
                            help="replay speed, x real time (paper broker; 0 = as fast as "
                                 "possible, the default)")
            rt.add_argument("--account", type=_account_spec, default=None, metavar="MODEL",
                            help=_ACCOUNT_HELP + " (paper broker and --shadow; default: the "
                                 "config's 'account', and a resumed run keeps its log's)")
            rt.add_argument("--max-volume-share", type=_volume_share, default=None,
                            metavar="SHARE",
                            help="partial fills: at most this share of a bar's volume, in "
                                 "(0, 1] (paper broker and --shadow; default: the config's "
                                 "'max_volume_share', else whole fills)")
            rt.set_defaults(func=_cmd_paper)

    dr = sub.add_parser(
        "drift", help="compare two runs' trade logs fill by fill (a deploy gate)",
        parents=[_common(strategy=False)],
        description="Compare run B against run A (trade logs, or saved result folders): "
                    "matched fills with their price difference split into reference-price "
                    "drift, slippage and fees, fills in one run only, orders refused in one "
                    "run only, partial fills, and the equity difference by cause. Exits "
                    f"{DRIFT_GATE_FAILED} when --max-drift-bps or --max-missed is exceeded.")
    dr.add_argument("a", help="the reference run (e.g. the backtest): trade log or folder")
    dr.add_argument("b", help="the run judged against it (rehearsal, paper, live)")
    dr.add_argument("--bars", help="the bars both ran on (reference prices and marks)")
    dr.add_argument("--max-drift-bps", type=float,
                    help="fail if any matched fill's price differs by more (bps)")
    dr.add_argument("--max-missed", type=int,
                    help="fail if more fills than this are in one run only")
    dr.add_argument("--time-window", help="pair orders without a shared id submitted this "
                                          "close (default: 3 bars, or 3 days)")
    dr.add_argument("--reference", choices=("rule", "open", "close"), default="rule",
                    help="reference price: the paper fill rule on the fill's bar (default), "
                         "or that bar's open or close")
    dr.add_argument("--rows", type=int, default=20, help="rows per table printed (20)")
    dr.add_argument("--out", help="folder for drift.html, drift.png and the tables as CSV")
    dr.set_defaults(func=_cmd_drift)

    rh = sub.add_parser(
        "rehearse", parents=[_common()],
        help="run a strategy through a real live adapter against its fake venue, then "
             "drift it against its backtest",
        description="Dress rehearsal: start the broker's loopback fake with --data as its "
                    "market (orders fill on each bar by the paper broker's rules), run "
                    "STRATEGY through the real adapter and the real-time runner, backtest "
                    "the same bars and print the drift. Exits "
                    f"{DRIFT_GATE_FAILED} when --max-drift-bps or --max-missed is exceeded. "
                    "--faults plants venue faults: a comma-separated list of "
                    "KIND[=VALUE]@bar=N with KIND one of slip=BPS, miss, partial=F, reject, "
                    "delay=T (200ms, 1s), disconnect, restart.")
    rh.add_argument("strategy", help="module:Class or path.py:Class")
    rh.add_argument("--broker", required=True, choices=("ibkr", "alpaca"))
    rh.add_argument("--data", required=True,
                    help="bars: CSV or Parquet, long form ('sample': the bundled sample)")
    _data_options(rh)
    rh.add_argument("--speed", type=float, default=None,
                    help="bars per second at most (default 200; 0 = as fast as the venue "
                         "and the adapter answer)")
    rh.add_argument("--faults", help="faults to plant, e.g. 'miss@bar=60,slip=3@bar=90'")
    rh.add_argument("--cash", type=float, default=10_000_000.0,
                    help="starting cash at the venue and in the backtest (10000000)")
    rh.add_argument("--slippage-bps", type=float, default=5.0,
                    help="slippage of the venue's engine and the backtest, bps (5)")
    rh.add_argument("--fee-bps", type=float, default=None,
                    help="fees in bps of notional (default: the venue's schedule: IBKR "
                         "per share, Alpaca none)")
    rh.add_argument("--max-drift-bps", type=float,
                    help="fail if any matched fill's price differs by more (bps)")
    rh.add_argument("--max-missed", type=int,
                    help="fail if more fills than this are in one run only")
    rh.add_argument("--rows", type=int, default=20, help="rows per table printed (20)")
    rh.add_argument("--out", help="folder for the two trade logs, drift.html and the drift "
                                  "tables as CSV")
    rh.set_defaults(func=_cmd_rehearse)

    data = sub.add_parser("data", help="bar data tools",
                          description="Check bar files before a run.").add_subparsers(
        dest="data_command", required=True, metavar="ACTION")
    dv = data.add_parser("validate", help="validate a bar file and summarize it",
                         parents=[_common(strategy=False)],
                         description="Load PATH as simbroker would (CSV or Parquet, long "
                                     "form), report the first bad rows by row, symbol, time "
                                     "and field, or summarize the bars.")
    dv.add_argument("path", help="a bar file, or a saved result's folder or bars.parquet")
    _data_options(dv)  # with --calendar
    dv.set_defaults(func=_cmd_data_validate)

    tl = sub.add_parser("tradelog", help="trade log tools",
                        description="Read a run's trade log (JSON lines).").add_subparsers(
        dest="tradelog_command", required=True, metavar="ACTION")
    show = tl.add_parser("show", help="print records as JSON lines",
                         parents=[_common(strategy=False)],
                         description="Print FILE's records, one JSON object a line.")
    show.add_argument("file")
    show.add_argument("--last", type=int, default=0, help="only the last N records")
    rp = tl.add_parser("replay", help="rebuild cash and positions from a trade log",
                       parents=[_common(strategy=False)],
                       description="Rebuild cash, positions, fills and open orders from "
                                   "FILE, as a resumed run would.")
    rp.add_argument("file")
    for cmd in (show, rp):
        cmd.add_argument("--repair", action="store_true",
                         help="first cut a damaged file back to its last valid record "
                              "(the original is kept as FILE.bak)")
    show.set_defaults(func=_cmd_tradelog_show)
    rp.set_defaults(func=_cmd_tradelog_replay)
    return p


def _print_strategy_error(exc: StrategyError) -> None:
    """The user's traceback from their own frame on (simbroker's frames above it are
    noise to them), then one line naming the strategy, bar and time."""
    cause = exc.__cause__
    if cause is not None:
        frames = traceback.extract_tb(cause.__traceback__)
        own = str(Path(__file__).resolve().parent)
        first = next((i for i, fr in enumerate(frames)
                      if not str(Path(fr.filename).resolve()).startswith(own)), 0)
        lines = ["Traceback (most recent call last):\n",
                 *traceback.format_list(frames[first:]),
                 *traceback.format_exception_only(type(cause), cause)]
        sys.stderr.write("".join(lines))
    print(f"simbroker: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`simbroker tradelog show | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except StrategyError as exc:
        if args.traceback:
            raise
        _print_strategy_error(exc)
        return 1
    except (SimbrokerError, OSError, ValueError, TypeError) as exc:
        if args.traceback:
            raise
        text = "; ".join(line.strip().removeprefix("- ") for line in str(exc).splitlines()
                         if line.strip())
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

