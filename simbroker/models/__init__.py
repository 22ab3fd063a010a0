"""Cost models: slippage (against the trader) and fees (on fill notional).

Each is a small frozen dataclass with an array method (arrays in, arrays out) and a
scalar convenience; its repr shows its parameters, so a result records what ran.
"""

from __future__ import annotations

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
    "BarContext",
    "BarRange",
    "BpsOfNotional",
    "FeeModel",
    "FeeSum",
    "FixedBps",
    "NoFee",
    "NoSlippage",
    "PerOrder",
    "PerShare",
    "SlippageModel",
    "VolumeShare",
    "fee_model",
    "fee_model_from_dict",
    "slippage_model",
    "slippage_model_from_dict",
]
