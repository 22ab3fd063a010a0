"""``simbroker paper`` and ``simbroker live``: a strategy run in real time against the
paper broker or a live adapter, behind the live gates (a live config, ``--confirm-live``,
risk limits), resumed from its trade log."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

from simbroker._strategy_spec import CLIError, load_strategy, parse_params
from simbroker.broker import Broker
from simbroker.cli._data import bars_for, data_options_given
from simbroker.cli._options import fees_arg, interval, model, paper_account, volume_arg
from simbroker.config import BrokerConfig, IBKRConfig, PaperConfig, load_broker_config
from simbroker.data import sample_bars
from simbroker.feeds import BarFeed, ReplayFeed
from simbroker.risk import RiskLimits
from simbroker.runner import (
    RealtimeRunner,
    ResumePoint,
    paper_broker_from_log,
    read_resume_point,
)
from simbroker.tradelog import TradeLog, replay_trade_log

LIVE_FLAG = "--confirm-live"


def risk_is_set(limits: RiskLimits) -> str | None:
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
    if live and getattr(args, "account", None) is not None and not args.shadow:
        raise CLIError("--account on 'simbroker live' sets the --shadow paper account "
                       "(the live account is the broker's own): pass --shadow too")
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
            raise CLIError(f"'simbroker live' trades real money: pass {LIVE_FLAG} to confirm")
        why = risk_is_set(config.risk)
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
    """``--shadow``: the paper broker's models and account from a paper config (``--account``
    over its ``account``; a resumed shadow keeps the one its log names), else the
    defaults with the venue's rules and ``--account``."""
    if not getattr(args, "shadow", False):
        return False
    from simbroker.shadow import ShadowSettings

    account = getattr(args, "account", None)
    if isinstance(config, PaperConfig):
        unmodeled = [k for k in ("max_volume_share", "borrow", "interest")
                     if getattr(config, k) is not None]
        if unmodeled or getattr(args, "max_volume_share", None):
            print(f"simbroker: warning: the --shadow paper broker does not model "
                  f"{', '.join(unmodeled) or 'the volume cap'} yet (see simbroker.shadow); "
                  f"its fills use slippage, fees, shorting and the account only",
                  file=sys.stderr)
        return ShadowSettings(slippage=model(config.slippage, "slippage"),
                              fees=fees_arg(args, model(config.fees, "fees")),
                              allow_short=config.allow_short,
                              account=config.account if account is None else account)
    return ShadowSettings(venue=config.broker, account=account)


def _hide_secrets(config: Any) -> None:
    """Scrub the config's secrets from every log line of the process, any library's."""
    from simbroker.config import Secret
    from simbroker.redact import install_secret_filter

    values = [getattr(config, f.name) for f in dataclasses.fields(config)]
    install_secret_filter(v for v in values if isinstance(v, Secret))


def _open_broker(args: argparse.Namespace, config: BrokerConfig, trade_log: TradeLog,
                 resume: ResumePoint | None, *, live: bool) -> tuple[Broker, BarFeed]:
    if isinstance(config, PaperConfig):
        data = args.data or config.data
        bars = bars_for(args, data or sample_bars(), tz=config.data_tz)
        speed = args.speed if args.speed is not None else config.speed
        borrow, interest = config.financing()
        paper = paper_broker_from_log(
            bars, resume, trade_log=trade_log, cash=config.cash,
            slippage=model(config.slippage, "slippage"),
            fees=fees_arg(args, model(config.fees, "fees")),
            allow_short=config.allow_short, borrow=borrow, interest=interest,
            max_volume_share=volume_arg(args, config), account=paper_account(args, config))
        return paper, ReplayFeed(bars, speed=speed if speed else math.inf,
                                 start=args.warmup)
    given = data_options_given(args)
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
        feed: BarFeed = broker.bar_feed(symbols, interval(args.interval),
                                        warmup=args.warmup)
    except BaseException:
        broker.close()
        raise
    return broker, feed


def cmd_paper(args: argparse.Namespace) -> int:
    return _cmd_realtime(args, live=False)


def cmd_live(args: argparse.Namespace) -> int:
    return _cmd_realtime(args, live=True)
