"""Cost models: slippage (against the trader) and fees (on fill notional).

Each is a small frozen dataclass with an array method (arrays in, arrays out) and a
scalar convenience; its repr shows its parameters, so a result records what ran.
Published broker schedules (IBKR Pro fixed and tiered, Alpaca) are dated data files read
by :func:`fee_schedule`; :func:`reconcile_commissions` checks a live log against one.
"""

from __future__ import annotations

from simbroker.models._reconcile import CommissionReconciliation, reconcile_commissions
from simbroker.models.fees import (
    BpsOfNotional,
    FeeModel,
    FeeSum,
    NoFee,
    PerOrder,
    PerShare,
    fee_model,
    fee_model_from_dict,
)
from simbroker.models.schedules import (
    AlpacaFee,
    FeeSchedule,
    IBKRFixedFee,
    IBKRTieredFee,
    ScheduleFee,
    fee_schedule,
)
from simbroker.models.slippage import (
    BarContext,
    BarRange,
    FixedBps,
    NoSlippage,
    SlippageModel,
    VolumeShare,
    slippage_model,
    slippage_model_from_dict,
)

__all__ = [
    "AlpacaFee",
    "BarContext",
    "BarRange",
    "BpsOfNotional",
    "CommissionReconciliation",
    "FeeModel",
    "FeeSchedule",
    "FeeSum",
    "FixedBps",
    "IBKRFixedFee",
    "IBKRTieredFee",
    "NoFee",
    "NoSlippage",
    "PerOrder",
    "PerShare",
    "ScheduleFee",
    "SlippageModel",
    "VolumeShare",
    "fee_model",
    "fee_model_from_dict",
    "fee_schedule",
    "reconcile_commissions",
    "slippage_model",
    "slippage_model_from_dict",
]
