"""Broker fee schedules as dated, versioned data files, and the fee models built from them.

Each ``*.yaml`` file beside this module is one broker's schedule: a list of versions, each
with the date it took effect, its rates and the source the rates were read from.
``us_regulatory.yaml`` holds the regulatory pass-throughs (SEC Section 31 fee, FINRA TAF,
FINRA CAT fee), each with its own dated versions. :func:`fee_schedule` loads a schedule
by name as a :class:`~simbroker.models.FeeModel`.

Which rate a fill pays
----------------------
A fill pays the rates effective on its own trade date (the UTC date of its time) when
the caller passes ``when=`` (the paper broker and the vectorized runners do), so a
backtest over 2024-2025 pays the SEC fee of $27.80 per million up to 2025-05-13 and
$0.00 from 2025-05-14. Without ``when`` (a plain ``fees(side, qty, price)`` call) every
fill pays the version effective on ``as_of`` (default: the newest version of every
part). A date before a schedule's first version is refused by name.
"""

from __future__ import annotations

from simbroker.models.schedules._loader import (
    SCHEDULE_NAMES,
    FeeSchedule,
    fee_schedule,
    load_schedule_data,
)
from simbroker.models.schedules._models import (
    AlpacaFee,
    IBKRFixedFee,
    IBKRTieredFee,
    ScheduleFee,
    fees_at,
    fill_fees,
    order_fees_at,
)

__all__ = [
    "SCHEDULE_NAMES",
    "AlpacaFee",
    "FeeSchedule",
    "IBKRFixedFee",
    "IBKRTieredFee",
    "ScheduleFee",
    "fee_schedule",
    "fees_at",
    "fill_fees",
    "load_schedule_data",
    "order_fees_at",
]
