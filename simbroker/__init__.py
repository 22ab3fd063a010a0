"""simbroker: backtest on bars, then trade the same strategy object on paper and live.

One :class:`Broker` protocol; a vectorized :class:`PaperBroker` that replays OHLCV bars
through a controllable clock with slippage and fee models; :func:`backtest` to run a
strategy and read a :class:`BacktestResult`.

>>> import simbroker
>>> bars = simbroker.synthetic_bars(n_symbols=3, n_bars=100, seed=1)
>>> result = simbroker.backtest(lambda broker, history: None, bars)
>>> result.stats["n_fills"]
0
"""

from __future__ import annotations

from simbroker.accounts import Account, CashAccount, MarginAccount
from simbroker.actions import CorporateActions, attach_actions
from simbroker.bars import Bars
from simbroker.broker import AccountBroker, Broker, OrderManagingBroker
from simbroker.clock import Clock, SimulatedClock, WallClock
from simbroker.data import load_bars, sample_bars, validate_bars
from simbroker.drift import Drift, drift
from simbroker.engine import History, Strategy, backtest
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    BrokerError,
    BrokerRateLimited,
    BrokerTimeout,
    ClockError,
    ConfigError,
    DataError,
    DataWarning,
    HardToBorrow,
    InsufficientBuyingPower,
    InvalidOrder,
    OrderRejected,
    OrderStatusUnknown,
    PatternDayTrading,
    PositionConflict,
    ReplaceRejected,
    RiskRejected,
    ShortingNotAllowed,
    SimbrokerError,
    StrategyError,
    TradeLogError,
    UnknownOrder,
)
from simbroker.financing import BorrowModel, InterestModel
from simbroker.models import (
    BarRange,
    BpsOfNotional,
    FeeModel,
    FeeSum,
    FixedBps,
    NoFee,
    NoSlippage,
    PerOrder,
    PerShare,
    SlippageModel,
    VolumeShare,
)
from simbroker.paper import PaperBroker
from simbroker.results import BacktestResult, load_result
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.sweeps import sweep, sweep_vectorized, walk_forward
from simbroker.synthetic import synthetic_bars
from simbroker.tradelog import TradeLog, read_trade_log, repair_trade_log, replay_trade_log
from simbroker.types import (
    AccountInfo,
    Fill,
    Order,
    OrderClass,
    OrderInfo,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from simbroker.vectorized import TargetPositions, backtest_vectorized
from simbroker.vectorized_exits import TargetExits

__version__ = "0.1.0"

__all__ = [
    "Account",
    "AccountBroker",
    "AccountInfo",
    "BacktestResult",
    "BarRange",
    "Bars",
    "BorrowModel",
    "BpsOfNotional",
    "Broker",
    "BrokerAPIError",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerRateLimited",
    "BrokerTimeout",
    "CashAccount",
    "Clock",
    "ClockError",
    "ConfigError",
    "CorporateActions",
    "DataError",
    "DataWarning",
    "Drift",
    "FeeModel",
    "FeeSum",
    "Fill",
    "FixedBps",
    "HardToBorrow",
    "History",
    "InsufficientBuyingPower",
    "InterestModel",
    "InvalidOrder",
    "MarginAccount",
    "NoFee",
    "NoSlippage",
    "Order",
    "OrderClass",
    "OrderInfo",
    "OrderManagingBroker",
    "OrderRejected",
    "OrderStatus",
    "OrderStatusUnknown",
    "OrderType",
    "PaperBroker",
    "PatternDayTrading",
    "PerOrder",
    "PerShare",
    "PositionConflict",
    "ReplaceRejected",
    "RiskBroker",
    "RiskLimits",
    "RiskRejected",
    "ShortingNotAllowed",
    "Side",
    "SimbrokerError",
    "SimulatedClock",
    "SlippageModel",
    "Strategy",
    "StrategyError",
    "TargetExits",
    "TargetPositions",
    "TimeInForce",
    "TradeLog",
    "TradeLogError",
    "UnknownOrder",
    "VolumeShare",
    "WallClock",
    "attach_actions",
    "backtest",
    "backtest_vectorized",
    "drift",
    "load_bars",
    "load_result",
    "read_trade_log",
    "repair_trade_log",
    "replay_trade_log",
    "sample_bars",
    "sweep",
    "sweep_vectorized",
    "synthetic_bars",
    "validate_bars",
    "walk_forward",
]
