"""The ``simbroker`` command line.

::

    simbroker backtest STRATEGY --data PATH [--cash --slippage-bps --fee-bps|--fees
                       --max-volume-share --account --venue alpaca|ibkr --out DIR]
    simbroker paper STRATEGY --broker paper|ibkr|alpaca [--data --speed --trade-log --shadow
                    --account --max-volume-share ...]
    simbroker live STRATEGY --broker ibkr|alpaca --confirm-live [--shadow --account ...]
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

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from simbroker._strategy_spec import load_strategy
from simbroker.cli._commands import DRIFT_GATE_FAILED
from simbroker.cli._parser import build_parser
from simbroker.errors import SimbrokerError, StrategyError

__all__ = ["DRIFT_GATE_FAILED", "load_strategy", "main"]


def _print_strategy_error(exc: StrategyError) -> None:
    """The user's traceback from their own frame on (simbroker's frames above it are
    noise to them), then one line naming the strategy, bar and time."""
    cause = exc.__cause__
    if cause is not None:
        frames = traceback.extract_tb(cause.__traceback__)
        own = str(Path(__file__).resolve().parents[1])  # the simbroker package
        first = next((i for i, fr in enumerate(frames)
                      if not str(Path(fr.filename).resolve()).startswith(own)), 0)
        lines = ["Traceback (most recent call last):\n",
                 *traceback.format_list(frames[first:]),
                 *traceback.format_exception_only(type(cause), cause)]
        sys.stderr.write("".join(lines))
    print(f"simbroker: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
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
