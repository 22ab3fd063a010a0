"""Commission reconciliation: the fees a venue reported on live fills against a schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simbroker.errors import DataError
from simbroker.models.fees import FeeModel, fee_model
from simbroker.models.schedules import ScheduleFee, fee_schedule

__all__ = ["CommissionReconciliation", "reconcile_commissions"]


@dataclass(frozen=True)
class CommissionReconciliation:
    """What :func:`reconcile_commissions` found.

    Attributes
    ----------
    fills
        One row per fill, in log order: ``fill_id``, ``order_id``, ``symbol``, ``time``,
        ``side``, ``qty``, ``price``, ``reported`` (the venue's fee), ``expected`` (the
        schedule's), ``difference`` (``reported - expected``) and ``over`` (``|difference|``
        above the tolerance).
    summary
        ``count``, ``reported_total``, ``expected_total``, ``total_drift`` (sum of the
        differences), ``mean_drift``, ``max_abs`` and ``max_abs_fill_id``,
        ``over_tolerance`` (how many fills), ``tolerance`` and ``model`` (the schedule's
        repr, with its version).
    """

    fills: pd.DataFrame
    summary: dict[str, Any]


def _records(fills: Any) -> pd.DataFrame:
    if isinstance(fills, (str, Path)):
        from simbroker.tradelog import read_trade_log

        fills = read_trade_log(fills)
    if isinstance(fills, pd.DataFrame):
        frame = fills.reset_index(drop=True)
    elif isinstance(fills, Iterable):
        rows = [dict(r) for r in fills if isinstance(r, Mapping)
                and r.get("event", "filled") == "filled"]
        frame = pd.DataFrame(rows)
    else:
        raise DataError(f"fills must be a trade log path, a DataFrame or records, "
                        f"got {type(fills).__name__}")
    if "event" in frame.columns:
        frame = frame[frame["event"].fillna("filled") == "filled"].reset_index(drop=True)
    out: pd.DataFrame = frame
    return out


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        raise DataError(f"fills lack the {name!r} field (they have: "
                        f"{', '.join(map(str, frame.columns)) or 'none'})")
    try:
        values = pd.to_numeric(frame[name], errors="raise").to_numpy(np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"fills: field {name!r} is not numeric ({exc})") from None
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"fills: row {row} has {name}={values[row]:g}, "
                        f"not a finite number >= 0",
                        problems=[{"row": row, "field": name, "reason": "not finite >= 0"}])
    return values


def reconcile_commissions(fills: Any, schedule: str | FeeModel, *,
                          tolerance: float = 0.01) -> CommissionReconciliation:
    """Compare the fees a venue reported on fills with what ``schedule`` charges.

    Parameters
    ----------
    fills
        A trade log path (its ``filled`` records are used), a DataFrame, or records
        (mappings; records with an ``event`` other than ``"filled"`` are skipped), each
        with ``side`` (``"buy"``/``"sell"``), ``qty``, ``price`` and ``fee`` (for IBKR, the
        commission IB reported), and optionally ``timestamp`` (or ``ts``), ``fill_id``,
        ``order_id``, ``symbol``. With times, each fill is priced at the rates of its own
        date and, for ``ibkr_tiered``, at the tier of the month's volume before it
        (the fills in log order, the month counted from the first fill of the log).
    schedule
        A schedule name (``"ibkr_fixed"``) or any :class:`~simbroker.models.FeeModel`.
    tolerance
        Fills whose ``|reported - expected|`` exceeds it are counted in ``over``
        (default one cent).

    Returns
    -------
    CommissionReconciliation
        The per-fill table and the summary.

    Raises
    ------
    DataError
        A fill lacks a field or has a bad value (the row and field are named).
    FeeScheduleError
        An unknown schedule name, or a fill dated before its first version.

    Examples
    --------
    >>> from simbroker.models import reconcile_commissions
    >>> t = "2024-06-03T15:00:00Z"  # before the CAT fee: commission only on a buy
    >>> log = [{"fill_id": "1", "side": "buy", "qty": 100, "price": 25.0, "fee": 1.0,
    ...         "timestamp": t},
    ...        {"fill_id": "2", "side": "buy", "qty": 1000, "price": 50.0, "fee": 5.25,
    ...         "timestamp": t}]
    >>> r = reconcile_commissions(log, "ibkr_fixed")
    >>> r.fills["difference"].round(2).tolist()
    [0.0, 0.25]
    >>> r.summary["over_tolerance"]
    1
    """
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance)
            and tolerance >= 0):
        raise DataError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    model = fee_model(schedule)
    if isinstance(model, ScheduleFee):  # a fresh copy: a tiered model's ledger starts empty
        model = fee_schedule(model.schedule.name, model.as_of)
    frame = _records(fills)
    n = len(frame)
    qty, price, reported = (_column(frame, k) for k in ("qty", "price", "fee"))
    side = frame["side"].astype(str).str.lower().to_numpy() if "side" in frame else None
    if side is None:
        raise DataError("fills lack the 'side' field")
    bad_side = ~np.isin(side, ["buy", "sell"])
    if bad_side.any():
        row = int(np.flatnonzero(bad_side)[0])
        raise DataError(f"fills: row {row} has side={side[row]!r}, not 'buy' or 'sell'",
                        problems=[{"row": row, "field": "side", "reason": "not buy/sell"}])
    sign = np.where(side == "buy", 1.0, -1.0)
    tcol = next((c for c in ("timestamp", "ts", "time") if c in frame.columns), None)
    times = None
    if tcol is not None:
        try:
            times = pd.to_datetime(frame[tcol], utc=True, format="mixed")
        except (ValueError, TypeError) as exc:
            raise DataError(f"fills: field {tcol!r} is not a time ({exc})") from None
        if times.isna().any():
            row = int(np.flatnonzero(times.isna().to_numpy())[0])
            raise DataError(f"fills: row {row} has no {tcol}",
                            problems=[{"row": row, "field": tcol, "reason": "missing"}])
    if times is not None and isinstance(model, ScheduleFee):
        when = times.dt.tz_localize(None).to_numpy("datetime64[ns]")
        expected = model.fees(sign, qty, price, when=when)
    else:
        expected = model.fees(sign, qty, price)
    expected = np.asarray(expected, np.float64)
    diff = reported - expected
    table = pd.DataFrame({
        "fill_id": frame["fill_id"].astype(str) if "fill_id" in frame else pd.Series(
            [str(i) for i in range(n)]),
        "order_id": frame.get("order_id"),
        "symbol": frame.get("symbol"),
        "time": times if times is not None else pd.NaT,
        "side": side, "qty": qty, "price": price,
        "reported": reported, "expected": expected, "difference": diff,
        "over": np.abs(diff) > tolerance + 1e-12,
    })
    k = int(np.argmax(np.abs(diff))) if n else -1
    summary = {
        "count": n,
        "reported_total": float(reported.sum()),
        "expected_total": float(expected.sum()),
        "total_drift": float(diff.sum()),
        "mean_drift": float(diff.mean()) if n else 0.0,
        "max_abs": float(abs(diff[k])) if n else 0.0,
        "max_abs_fill_id": str(table["fill_id"].iloc[k]) if n else None,
        "over_tolerance": int(table["over"].sum()),
        "tolerance": float(tolerance),
        "model": repr(model),
    }
    return CommissionReconciliation(table, summary)
