"""Reading the bar files a command is given, with the data options every command that
reads bars shares (``--symbol``, ``--tz``, ..., ``--start``/``--end``, ``--calendar``)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from simbroker._strategy_spec import CLIError
from simbroker.bars import Bars
from simbroker.cli._options import calendar_arg
from simbroker.data import load_bars, sample_bars
from simbroker.errors import DataWarning


def window(args: argparse.Namespace) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
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


SAMPLE = "sample"  # --data sample: the bundled sample (shipped inside the package)


def load_data(args: argparse.Namespace, source: Any, *, tz: str | None = None) -> Bars:
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


def data_options_given(args: argparse.Namespace) -> list[str]:
    """The data-file options set on the command line (for brokers that read no file)."""
    flags = {"symbol": "--symbol", "tz": "--tz", "bar_time": "--bar-time",
             "dayfirst": "--dayfirst/--monthfirst", "volume": "--volume", "close": "--close",
             "column": "--column"}
    return [flag for name, flag in flags.items() if getattr(args, name, None)
            not in (None, [])]


def bars_for(args: argparse.Namespace, data: Any, *, tz: str | None = None) -> Any:
    if isinstance(data, str) and data == SAMPLE and not Path(data).exists():
        data = sample_bars()
    bars = load_data(args, data, tz=tz) if not hasattr(data, "select") else data
    start, end = window(args)
    if start is None and end is None:
        return with_calendar_option(args, bars)
    picked = bars.select(start=start, end=end)
    if not len(picked):
        raise CLIError(f"no bars in --start {args.start} .. --end {args.end} "
                       f"(the data spans {bars})")
    return with_calendar_option(args, picked)


def with_calendar_option(args: argparse.Namespace, bars: Any) -> Any:
    """The bars with ``--calendar`` sessions attached (unchanged without the option)."""
    text = getattr(args, "calendar", None)
    if not text:
        return bars
    from simbroker.sessions import with_calendar

    return with_calendar(bars, calendar_arg(text))
