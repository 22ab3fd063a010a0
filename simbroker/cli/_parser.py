"""The ``simbroker`` argument parser: every command, its options and help."""

from __future__ import annotations

import argparse
from typing import Any

from simbroker.cli._commands import (
    DRIFT_GATE_FAILED,
    cmd_backtest,
    cmd_data_validate,
    cmd_drift,
    cmd_rehearse,
    cmd_tradelog_replay,
    cmd_tradelog_show,
)
from simbroker.cli._options import account_spec, volume_share
from simbroker.cli._realtime import LIVE_FLAG, cmd_live, cmd_paper

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


ACCOUNT_HELP = ("the account's money rules: cash (T+1, no borrowing), margin (Reg T), "
                 "unconstrained, or a JSON mapping of parameters, e.g. "
                 "'{\"model\": \"margin\", \"liquidate\": true}'")


def build_parser() -> argparse.ArgumentParser:
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
    bt.add_argument("--max-volume-share", type=volume_share, default=None, metavar="SHARE",
                    help="partial fills: at most this share of a bar's volume, in (0, 1] "
                         "(e.g. 0.025; default: whole fills)")
    bt.add_argument("--account", type=account_spec, default=None, metavar="MODEL",
                    help=ACCOUNT_HELP + " (default: unconstrained)")
    bt.add_argument("--venue", choices=("alpaca", "ibkr"), default=None,
                    help="enforce this venue's order rules where the venues differ (alpaca: "
                         "no order crosses a position through zero or opens a side while "
                         "the other side has an open order; default: neither)")
    bt.add_argument("--out", help="folder for results and the trade log (must be empty)")
    bt.add_argument("--overwrite", action="store_true",
                    help="let --out replace what a previous run wrote there")
    bt.add_argument("--report", action="store_true", help="also write report.html to --out")
    bt.set_defaults(func=cmd_backtest)

    for name, live in (("paper", False), ("live", True)):
        rt = sub.add_parser(
            name, parents=[_common()],
            help=("run a strategy in real time against real money (guarded)" if live
                  else "run a strategy in real time on a paper account or replay"),
            description=(
                "Run STRATEGY in real time. Orders pass the config's risk limits; every "
                "event goes to the trade log; SIGINT/SIGTERM stop cleanly after the bar in "
                "hand; running again with the same trade log resumes without duplicating "
                "orders." + (f" Refuses unless the config is live, {LIVE_FLAG} is given "
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
            rt.add_argument(LIVE_FLAG, dest="confirm_live", action="store_true",
                            help="confirm that this run trades real money")
            rt.add_argument("--account", type=account_spec, default=None, metavar="MODEL",
                            help=ACCOUNT_HELP + " (--shadow only: the shadow paper "
                                 "account's model; give the live account's kind so the "
                                 "shadow refuses what it would; default: unconstrained, "
                                 "and a resumed shadow keeps its log's)")
            _data_options(rt)
            rt.set_defaults(func=cmd_live, data=None, speed=None)
        else:
            rt.add_argument("--data", help="bars to replay (paper broker; default: the "
                                           "config's data, else the bundled sample)")
            _data_options(rt)
            rt.add_argument("--speed", type=float,
                            help="replay speed, x real time (paper broker; 0 = as fast as "
                                 "possible, the default)")
            rt.add_argument("--account", type=account_spec, default=None, metavar="MODEL",
                            help=ACCOUNT_HELP + " (paper broker and --shadow; default: the "
                                 "config's 'account', and a resumed run keeps its log's)")
            rt.add_argument("--max-volume-share", type=volume_share, default=None,
                            metavar="SHARE",
                            help="partial fills: at most this share of a bar's volume, in "
                                 "(0, 1] (paper broker; --shadow fills whole and warns; "
                                 "default: the config's 'max_volume_share', else whole "
                                 "fills)")
            rt.set_defaults(func=cmd_paper)

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
    dr.set_defaults(func=cmd_drift)

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
    rh.set_defaults(func=cmd_rehearse)

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
    dv.set_defaults(func=cmd_data_validate)

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
    show.set_defaults(func=cmd_tradelog_show)
    rp.set_defaults(func=cmd_tradelog_replay)
    return p
