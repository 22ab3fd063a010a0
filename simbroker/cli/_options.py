"""Option values of the ``simbroker`` command line turned into what the library takes
(account and fee models, durations, calendars, volume shares); bad values fail with a
:class:`~simbroker._strategy_spec.CLIError` or argparse's own message naming the option."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

import pandas as pd

from simbroker._strategy_spec import CLIError
from simbroker.accounts import Account, account_model
from simbroker.config import PaperConfig
from simbroker.errors import FeeScheduleError
from simbroker.models.fees import fee_model, fee_model_from_dict
from simbroker.models.slippage import slippage_model_from_dict
from simbroker.runner import (
    FROM_LOG,
)


def calendar_arg(text: str) -> str | dict[str, str]:
    """``--calendar XNYS`` (every symbol) or ``--calendar ES=CMES,SPY=XNYS``."""
    if "=" not in text:
        return text
    pairs = [p.partition("=") for p in text.split(",") if p.strip()]
    bad = [f"{k}{sep}{v}" for k, sep, v in pairs if not (k.strip() and sep and v.strip())]
    if bad:
        raise CLIError(f"--calendar {text!r}: expected NAME or SYMBOL=NAME,SYMBOL=NAME; "
                       f"bad part {bad[0]!r}")
    return {k.strip(): v.strip() for k, _, v in pairs}


def interval(text: str) -> timedelta:
    try:
        value = pd.Timedelta(text)
    except ValueError:
        raise CLIError(f"--interval {text!r} is not a duration (e.g. 1min, 5min, 1h, 1D)") \
            from None
    if value <= pd.Timedelta(0):
        raise CLIError(f"--interval must be positive, got {text!r}")
    out: timedelta = value.to_pytimedelta()
    return out


def fees_arg(args: argparse.Namespace, default: Any) -> Any:
    """``--fees NAME`` (a published schedule, e.g. ibkr_fixed) over the config's or --fee-bps."""
    name = getattr(args, "fees", None)
    if name is None:
        return default
    try:
        return fee_model(name)
    except FeeScheduleError as exc:
        raise CLIError(f"--fees: {exc}") from None


def model(value: Any, what: str) -> Any:
    if isinstance(value, dict):
        build = fee_model_from_dict if what == "fees" else slippage_model_from_dict
        return build(value)
    return value


def account_spec(text: str) -> Any:
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


def account_arg(spec: Any) -> Account | None:
    """A new account object for an ``--account`` value (``None``: unconstrained)."""
    return account_model(spec)


def volume_share(text: str) -> float:
    """``--max-volume-share``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def volume_arg(args: argparse.Namespace, config: PaperConfig) -> float | None:
    """``--max-volume-share``, else the config's."""
    share = getattr(args, "max_volume_share", None)
    return config.max_volume_share if share is None else float(share)


def paper_account(args: argparse.Namespace, config: PaperConfig) -> Any:
    """``--account``, else the config's ``account``, else the resumed log's (FROM_LOG)."""
    spec = getattr(args, "account", None)
    if spec is None:
        spec = config.account
    return FROM_LOG if spec is None else account_model(spec)
