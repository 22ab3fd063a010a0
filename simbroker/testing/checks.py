"""Invariant checks: prove your slippage, fee, strategy and broker code as simbroker does.

Each check raises an :class:`AssertionError` whose message names the property that failed
and the smallest input found (Hypothesis shrinks the model checks' inputs), and returns
``None`` when every property holds::

    from simbroker.testing.checks import check_slippage_model

    def test_my_model():
        check_slippage_model(MyImpactModel(k=0.1))

- :func:`check_slippage_model` and :func:`check_fee_model` test a cost model over
  generated batches (Hypothesis; pass ``settings=`` to search harder).
- :func:`check_accounting` tests a :class:`~simbroker.BacktestResult`: cash and shares
  conserved by the fills, equity = cash + marked positions at every bar.
- :func:`check_no_lookahead` reruns a strategy on data cut or changed after a bar and
  demands the same orders up to that bar (catches indicators that peek ahead).
- :func:`check_broker_conformance` drives any :class:`~simbroker.Broker` through a
  scripted session on a :class:`ConformanceVenue` (:class:`PaperVenue` for the paper
  broker; the live adapters' fakes provide theirs).

Needs ``hypothesis`` (``pip install 'simbroker[test]'``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given
from hypothesis import settings as Settings
from hypothesis import strategies as st

from simbroker.bars import FIELDS, Bars
from simbroker.broker import AccountBroker, Broker, OrderManagingBroker
from simbroker.engine import StrategyLike, _on_bar_of, backtest
from simbroker.errors import InvalidOrder, ReplaceRejected, UnknownOrder
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import BarContext, SlippageModel
from simbroker.paper import PaperBroker
from simbroker.results import BacktestResult
from simbroker.testing.strategies import fee_cases, slippage_cases
from simbroker.types import AccountInfo, Fill, OrderInfo, OrderStatus

__all__ = ["ConformanceVenue", "PaperVenue", "check_accounting", "check_broker_conformance",
           "check_fee_model", "check_no_lookahead", "check_slippage_model"]

_DEFAULT_SETTINGS = Settings(max_examples=200, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])


def _fail(prop: str, detail: str) -> AssertionError:
    return AssertionError(f"{prop}: {detail}")


def _arr(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=17, separator=", ")


# --------------------------------------------------------------------------- slippage
def slippage_violations(model: SlippageModel, side: np.ndarray, qty: np.ndarray,
                        price: np.ndarray, bar: BarContext) -> list[tuple[str, str]]:
    """Every slippage property that fails on one batch, as ``(property, detail)``."""
    out: list[tuple[str, str]] = []
    case = (f"side={_arr(side)}, qty={_arr(qty)}, price={_arr(price)}, bar high="
            f"{_arr(bar.high)} low={_arr(bar.low)} close={_arr(bar.close)} "
            f"volume={_arr(bar.volume)}")
    try:
        rate = np.asarray(model.rate(side, qty, price, bar), np.float64)
        fills = np.asarray(model.fill_prices(side, qty, price, bar), np.float64)
    except Exception as exc:  # a model must take every valid batch
        return [("slippage model raises on valid input",
                 f"{type(exc).__name__}: {exc}; {case}")]
    if rate.shape != qty.shape or fills.shape != qty.shape:
        return [("one rate and fill price per order",
                 f"rate shape {rate.shape}, fill shape {fills.shape} for {len(qty)} orders; "
                 f"{case}")]
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(fills))):
        out.append(("slippage is finite", f"rate={_arr(rate)}; {case}"))
        return out
    buy = side > 0
    if np.any(fills[buy] < price[buy]) or np.any(fills[~buy] > price[~buy]):
        out.append(("slippage is never in the trader's favour",
                    f"fill prices {_arr(fills)} vs reference {_arr(price)}; {case}"))
    if np.any(rate < 0):
        out.append(("slippage rate is non-negative", f"rate={_arr(rate)}; {case}"))
    zero = qty == 0
    if np.any(rate[zero] != 0) or np.any(fills[zero] != price[zero]):
        out.append(("zero quantity, zero slippage", f"rate={_arr(rate)}; {case}"))
    bound = model.max_bps
    if np.any(rate * 1e4 > bound * (1 + 1e-12) + 1e-12):
        out.append((f"slippage within the declared max_bps={bound!r}",
                    f"rate in bps {_arr(rate * 1e4)}; {case}"))
    for i in range(len(qty)):
        one = model.fill_price("buy" if side[i] > 0 else "sell", float(qty[i]),
                               float(price[i]), open=float(bar.open[i]),
                               high=float(bar.high[i]), low=float(bar.low[i]),
                               close=float(bar.close[i]), volume=float(bar.volume[i]))
        if one != fills[i]:
            out.append(("the scalar fill_price equals the array method",
                        f"order {i}: {one!r} != {fills[i]!r}; {case}"))
            break
    return out


def check_slippage_model(model: SlippageModel, *, settings: Settings | None = None) -> None:
    """Prove a slippage model's invariants over generated orders and bars.

    Properties: the fill price is never in the trader's favour (a buy at or above the
    reference price, a sell at or below), the rate is finite and non-negative, a zero
    quantity slips zero, the rate stays within the model's declared ``max_bps``, and the
    scalar :meth:`~simbroker.SlippageModel.fill_price` equals the array method. Bars
    include zero, unknown (``NaN``) and unlimited volume and closes.

    Raises
    ------
    AssertionError
        Naming the property and the smallest failing batch Hypothesis found.
    """
    if not isinstance(model, SlippageModel):
        raise TypeError(f"check_slippage_model needs a SlippageModel, got "
                        f"{type(model).__name__}")

    @given(case=slippage_cases())
    def run(case: tuple[np.ndarray, np.ndarray, np.ndarray, BarContext]) -> None:
        bad = slippage_violations(model, *case)
        if bad:
            prop, detail = bad[0]
            raise _fail(f"{model!r} breaks '{prop}'", detail)

    (settings or _DEFAULT_SETTINGS)(run)()


# --------------------------------------------------------------------------- fees
_SWEEP_QTY = np.concatenate([[0.0], np.geomspace(1e-4, 1e7, 400)])
_SWEEP_PRICE = np.concatenate([[0.0], np.geomspace(1e-2, 1e5, 400)])


def fee_violations(model: FeeModel, side: np.ndarray, qty: np.ndarray,
                   price: np.ndarray) -> list[tuple[str, str]]:
    """Every fee property that fails on one batch, as ``(property, detail)``."""
    case = f"side={_arr(side)}, qty={_arr(qty)}, price={_arr(price)}"
    try:
        fees = np.asarray(model.fees(side, qty, price), np.float64)
    except Exception as exc:
        return [("fee model raises on valid input", f"{type(exc).__name__}: {exc}; {case}")]
    if fees.shape != qty.shape:
        return [("one fee per fill", f"shape {fees.shape} for {len(qty)} fills; {case}")]
    out: list[tuple[str, str]] = []
    if not np.all(np.isfinite(fees)):
        return [("fees are finite", f"fees={_arr(fees)}; {case}")]
    # The drawn values sorted, plus a dense sweep through them, so a tier boundary (a
    # cliff) or a rebate anywhere in the range is found.
    q_sorted = np.unique(np.concatenate([qty, _SWEEP_QTY]))
    same = np.full(q_sorted.shape, side[0])
    by_qty = np.asarray(model.fees(same, q_sorted, np.full(q_sorted.shape, price[0])))
    p_sorted = np.unique(np.concatenate([price, _SWEEP_PRICE]))
    same = np.full(p_sorted.shape, side[0])
    by_price = np.asarray(model.fees(same, np.full(p_sorted.shape, qty[0]), p_sorted))
    at = f"side {side[0]:+.0f}"
    if np.any(fees < 0):
        out.append(("fees are non-negative", f"fees={_arr(fees)}; {case}"))
    elif np.any(by_qty < 0):
        i = int(np.argmax(by_qty < 0))
        out.append(("fees are non-negative", f"{at}, qty {float(q_sorted[i])!r} at price "
                    f"{float(price[0])!r} costs {float(by_qty[i])!r}"))
    elif np.any(by_price < 0):
        i = int(np.argmax(by_price < 0))
        out.append(("fees are non-negative", f"{at}, qty {float(qty[0])!r} at price "
                    f"{float(p_sorted[i])!r} costs {float(by_price[i])!r}"))
    if np.any(fees[qty == 0] != 0):
        out.append(("no fee when nothing trades", f"fees={_arr(fees)}; {case}"))
    if np.any(fees[qty > 0] < model.min_fee):
        out.append((f"the declared minimum min_fee={model.min_fee!r} is honoured",
                    f"fees={_arr(fees)}; {case}"))
    k = np.flatnonzero(np.diff(by_qty) < 0)
    if len(k):
        i = int(k[0])
        out.append(("fees are monotone in quantity",
                    f"{at}, price {float(price[0])!r}: qty {float(q_sorted[i])!r} costs "
                    f"{float(by_qty[i])!r} but qty {float(q_sorted[i + 1])!r} costs "
                    f"{float(by_qty[i + 1])!r}"))
    k = np.flatnonzero(np.diff(by_price) < 0)
    if len(k):
        i = int(k[0])
        out.append(("fees are monotone in notional",
                    f"{at}, qty {float(qty[0])!r}: price {float(p_sorted[i])!r} costs "
                    f"{float(by_price[i])!r} but price {float(p_sorted[i + 1])!r} costs "
                    f"{float(by_price[i + 1])!r}"))
    for i in range(len(qty)):
        one = model.fee("buy" if side[i] > 0 else "sell", float(qty[i]), float(price[i]))
        if one != fees[i]:
            out.append(("the scalar fee equals the array method",
                        f"fill {i}: {one!r} != {fees[i]!r}; {case}"))
            break
    return out


def check_fee_model(model: FeeModel, *, settings: Settings | None = None) -> None:
    """Prove a fee model's invariants over generated fills.

    Properties: fees are finite and non-negative, zero when nothing trades, at least
    the declared ``min_fee`` on any fill, monotone (never falling) in quantity and in
    price at a fixed side, and the scalar :meth:`~simbroker.FeeModel.fee` equals the
    array method.

    Raises
    ------
    AssertionError
        Naming the property and the smallest failing batch Hypothesis found.
    """
    if not isinstance(model, FeeModel):
        raise TypeError(f"check_fee_model needs a FeeModel, got {type(model).__name__}")

    @given(case=fee_cases())
    def run(case: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        bad = fee_violations(model, *case)
        if bad:
            prop, detail = bad[0]
            raise _fail(f"{model!r} breaks '{prop}'", detail)

    (settings or _DEFAULT_SETTINGS)(run)()


# --------------------------------------------------------------------------- accounting
def check_accounting(result: BacktestResult, *, rtol: float = 1e-9) -> None:
    """Prove a result's books balance at every bar.

    Properties: each fill's notional is ``qty x price`` and its fee is non-negative;
    cash after each bar is the starting cash minus what the fills up to that bar bought,
    plus what they sold, minus their fees; each position is the starting position plus
    the signed fills; equity is cash plus positions marked to the last known close.
    Works for results of :func:`~simbroker.backtest` and
    :func:`~simbroker.backtest_vectorized` (and loaded ones).

    Raises
    ------
    AssertionError
        Naming the property, the first bar (and symbol) where it fails and the numbers.
    """
    fills, bars = result.fills, result.bars
    n_t, n = len(bars), bars.n_symbols
    cash0 = float(result.config["cash"])
    init = dict(result.config.get("positions") or {})
    qty = fills["qty"].to_numpy(np.float64)
    price = fills["price"].to_numpy(np.float64)
    fee = fills["fee"].to_numpy(np.float64)
    notional = fills["notional"].to_numpy(np.float64)
    scale = max(1.0, abs(cash0), float(np.abs(notional).sum()))
    if len(fills):
        bad = np.flatnonzero(~np.isclose(notional, qty * price, rtol=rtol, atol=0))
        if len(bad):
            i = int(bad[0])
            raise _fail("fill notional is qty x price",
                        f"fill {fills['fill_id'].iloc[i]!r}: {notional[i]!r} != "
                        f"{qty[i]!r} x {price[i]!r}")
        neg = np.flatnonzero(~(fee >= 0))
        if len(neg):
            i = int(neg[0])
            raise _fail("fees are non-negative",
                        f"fill {fills['fill_id'].iloc[i]!r} has fee {fee[i]!r}")
        if np.any(qty <= 0) or not np.all(np.isfinite(price)):
            raise _fail("fills have a positive quantity and a finite price",
                        f"qty {_arr(qty)}, price {_arr(price)}")
    sign = np.where(fills["side"].to_numpy(object) == "buy", 1.0, -1.0)
    ts = fills["timestamp"].to_numpy("datetime64[ns]").astype(np.int64)
    # The bar each fill belongs to (a fill is stamped within its bar).
    bar_of = np.searchsorted(bars.ts_ns, ts, side="right") - 1
    if len(fills) and (bar_of.min() < 0 or bar_of.max() >= n_t):
        raise _fail("fills fall within the replayed bars",
                    f"fill times {fills['timestamp'].min()} .. {fills['timestamp'].max()} "
                    f"outside {bars.index[0]} .. {bars.index[-1]}")
    flow = np.zeros(n_t)
    np.add.at(flow, bar_of, -sign * notional - fee)
    expected_cash = cash0 + np.cumsum(flow)
    cash = result.cash.to_numpy(np.float64)
    bad = np.flatnonzero(~np.isclose(cash, expected_cash, rtol=0, atol=rtol * scale))
    if len(bad):
        t = int(bad[0])
        raise _fail("cash is conserved by the fills",
                    f"after bar {t} ({bars.index[t]}): cash {cash[t]!r}, but starting cash "
                    f"{cash0!r} and the fills give {expected_cash[t]!r}")
    sym_col = {s: i for i, s in enumerate(bars.symbols)}
    cols = np.array([sym_col.get(s, -1) for s in fills["symbol"].to_numpy(object)],
                    np.int64)
    if len(cols) and cols.min() < 0:
        raise _fail("fills are in the result's symbols",
                    f"{fills['symbol'].iloc[int(np.argmin(cols))]!r} is not in {bars.symbols}")
    moves = np.zeros((n_t, n))
    np.add.at(moves, (bar_of, cols), sign * qty)
    start = np.array([float(init.get(s, 0.0)) for s in bars.symbols])
    expected_pos = start + np.cumsum(moves, axis=0)
    pos = result.positions.to_numpy(np.float64)
    qscale = max(1.0, float(np.abs(qty).sum()) + float(np.abs(start).sum()))
    bad_pos = ~np.isclose(pos, expected_pos, rtol=0, atol=rtol * qscale)
    if bad_pos.any():
        t, j = (int(x[0]) for x in np.nonzero(bad_pos))
        raise _fail("shares are conserved by the fills",
                    f"{bars.symbols[j]!r} after bar {t} ({bars.index[t]}): position "
                    f"{pos[t, j]!r}, but the fills give {expected_pos[t, j]!r}")
    close = pd.DataFrame(bars.close).ffill().bfill().to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        marked = cash + np.nansum(np.where(pos != 0, pos * close, 0.0), axis=1)
    equity = result.equity.to_numpy(np.float64)
    escale = max(scale, float(np.nanmax(np.abs(marked))) if n_t else 1.0)
    bad = np.flatnonzero(~np.isclose(equity, marked, rtol=0, atol=rtol * escale))
    if len(bad):
        t = int(bad[0])
        raise _fail("equity is cash plus positions marked to the last close",
                    f"after bar {t} ({bars.index[t]}): equity {equity[t]!r}, cash {cash[t]!r} "
                    f"+ marked positions {marked[t] - cash[t]!r} = {marked[t]!r}")


# --------------------------------------------------------------------------- look-ahead
class _Recorder:
    """A broker proxy that records each order decision with the bar it was made on."""

    def __init__(self, broker: PaperBroker, log: list[tuple[Any, ...]]):
        self._broker = broker
        self._log = log

    def submit_order(self, symbol: str, side: str, qty: float, order_type: str = "market",
                     **kwargs: Any) -> OrderInfo:
        kw = tuple(sorted((k, v) for k, v in kwargs.items() if k != "client_order_id"))
        self._log.append((self._broker.bar_index, "submit", symbol, side, float(qty),
                          order_type, kw))
        return self._broker.submit_order(symbol, side, qty, order_type, **kwargs)

    def cancel_order(self, order_id: str) -> OrderInfo:
        self._log.append((self._broker.bar_index, "cancel", order_id))
        return self._broker.cancel_order(order_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)


def _decisions(strategy: StrategyLike, bars: Bars, kwargs: dict[str, Any]
               ) -> list[tuple[Any, ...]]:
    log: list[tuple[Any, ...]] = []
    inner = copy.deepcopy(strategy)
    call = _on_bar_of(inner)

    class Wrapped:
        def indicators(self, b: Bars) -> Any:
            declare = getattr(inner, "indicators", None)
            return declare(b) if callable(declare) else {}

        def on_bar(self, broker: Any, history: Any) -> None:
            call(_Recorder(broker, log), history)

    backtest(Wrapped(), bars, **kwargs)
    return log


def _perturbed(bars: Bars, t: int, seed: int, scale: float) -> Bars:
    """``bars`` with every bar after ``t`` moved by a random factor (valid OHLC kept)."""
    rng = np.random.default_rng(seed)
    factor = np.ones((len(bars), bars.n_symbols))
    factor[t + 1:] = np.exp(rng.normal(0.0, scale, (len(bars) - t - 1, bars.n_symbols)))
    fields: dict[str, Any] = {
        f: bars.field(f) * (factor if f != "volume" else np.round(factor * 7) / 7)
        for f in FIELDS}
    return Bars(timestamps=bars.timestamps, symbols=bars.symbols, interval=bars.interval,
                actions=bars.actions, volume_known=bars.volume_known, **fields)


def check_no_lookahead(strategy: StrategyLike, bars: Bars, *, settings: Settings | None = None,
                       **backtest_kwargs: Any) -> None:
    """Prove a strategy decides each bar's orders from data up to that bar only.

    The strategy runs once on ``bars``; then, for bars ``t`` chosen by Hypothesis, on the
    data cut after ``t`` and on the data with every later bar moved by random factors.
    Each order submitted or canceled at or before ``t`` must be the same in every run.
    Indicators computed in ``indicators(bars)`` are recomputed on the changed data, so an
    indicator that reads later rows (a centred window, ``shift(-1)``) fails the check,
    as does a strategy that keeps a reference to the bars and reads ahead.

    ``strategy`` is deep-copied for every run, so its state never leaks between runs.
    ``backtest_kwargs`` go to :func:`~simbroker.backtest` (cash, slippage, ...).

    Raises
    ------
    AssertionError
        Naming the bar, the change (cut or perturbed) and the first differing decision.
    """
    if len(bars) < 2:
        raise ValueError("check_no_lookahead needs at least two bars")
    full = _decisions(strategy, bars, backtest_kwargs)

    @given(t=st.integers(0, len(bars) - 2), seed=st.integers(0, 2**32 - 1),
           scale=st.sampled_from([0.02, 0.1, 0.5]))
    def run(t: int, seed: int, scale: float) -> None:
        upto = [d for d in full if d[0] <= t]
        for how, data in (("cut after", bars.rows(0, t + 1)),
                          ("perturbed after", _perturbed(bars, t, seed, scale))):
            try:
                got = [d for d in _decisions(strategy, data, backtest_kwargs) if d[0] <= t]
            except Exception as exc:
                raise _fail("no look-ahead",
                            f"with the data {how} bar {t} ({bars.index[t]}) the strategy "
                            f"raised {type(exc).__name__}: {exc}") from exc
            if got != upto:
                k = next((i for i, (a, b) in enumerate(zip(got, upto, strict=False))
                          if a != b), min(len(got), len(upto)))
                mine = got[k] if k < len(got) else "nothing"
                theirs = upto[k] if k < len(upto) else "nothing"
                raise _fail("no look-ahead",
                            f"with the data {how} bar {t} ({bars.index[t]}), decision {k} "
                            f"(bar, action, ...) is {mine}; on the full data it was "
                            f"{theirs}")

    base = settings or Settings(max_examples=25, deadline=None, database=None,
                                suppress_health_check=[HealthCheck.too_slow])
    base(run)()


# --------------------------------------------------------------------------- conformance
@runtime_checkable
class ConformanceVenue(Protocol):
    """A market the conformance check can move, with a broker under test attached.

    ``step()`` lets the market trade once at the current prices: market orders fill at
    the price, resting limit and stop orders the price reaches fill; it returns only
    after the broker under test has observed every resulting event.
    """

    broker: Broker

    def set_price(self, symbol: str, price: float) -> None:
        """Where ``symbol`` trades from the next step on."""

    def step(self) -> None:
        """Trade once at the current prices."""

    def close(self) -> None:
        """Disconnect and release everything."""


class PaperVenue:
    """A :class:`ConformanceVenue` for the :class:`~simbroker.PaperBroker`.

    Prices set with :meth:`set_price` become the next bar (open = high = low = close,
    ample volume); :meth:`step` closes it. Up to ``horizon`` steps.
    """

    def __init__(self, symbols: Sequence[str] = ("AAA", "BBB"), *, horizon: int = 512,
                 start_price: float = 100.0, **broker_kwargs: Any):
        n = len(symbols)
        self._px = np.full((horizon, n), float(start_price))
        self._vol = np.full((horizon, n), 1e9)
        # Read-only views of buffers this venue keeps writing: Bars shares them, so the
        # broker sees each bar's prices once they are set.
        px, vol = self._px.view(), self._vol.view()
        px.setflags(write=False)
        vol.setflags(write=False)
        ts = np.datetime64("2024-01-02T14:30", "ns") + np.arange(horizon) * np.timedelta64(
            60_000_000_000, "ns")
        bars = Bars(timestamps=ts, symbols=tuple(symbols), open=px, high=px, low=px,
                    close=px, volume=vol, interval=np.timedelta64(60_000_000_000, "ns"))
        self.broker: PaperBroker = PaperBroker(bars, **broker_kwargs)
        self._col = {s: i for i, s in enumerate(symbols)}

    def set_price(self, symbol: str, price: float) -> None:
        """Set where ``symbol`` trades on the next step (and after, until changed)."""
        t = self.broker.bar_index + 1
        if t >= len(self._px):
            raise RuntimeError("PaperVenue: horizon reached; make it longer")
        self._px[t:, self._col[symbol]] = float(price)

    def step(self) -> None:
        """Close the next bar at the current prices."""
        self.broker.step()

    def close(self) -> None:
        """Close the broker's trade log, if any."""
        self.broker.close()


_ORDER_KEYS = set(OrderInfo.__annotations__)
_FILL_KEYS = set(Fill.__annotations__)
_ACCOUNT_KEYS = set(AccountInfo.__annotations__)
_ACCOUNT_TYPES = {"cash", "margin", "unconstrained"}
_STATUSES = {s.value for s in OrderStatus}
_OPEN = {s.value for s in OrderStatus if s.is_open}


@dataclass
class _Session:
    venue: ConformanceVenue
    symbol: str
    broker: Broker

    def fills_of(self, order_id: str) -> list[Fill]:
        return [f for f in self.broker.get_fills() if f["order_id"] == order_id]


def _check_order_info(info: Any, what: str) -> None:
    if not isinstance(info, dict):
        raise _fail("submit_order/cancel_order return an OrderInfo dict",
                    f"{what} returned {type(info).__name__}")
    missing = _ORDER_KEYS - set(info)
    if missing:
        raise _fail("OrderInfo has every documented key", f"{what}: missing {sorted(missing)}")
    if info["status"] not in _STATUSES:
        raise _fail("status is an OrderStatus value", f"{what}: status {info['status']!r}")
    when = info["submitted_at"]
    if not isinstance(when, datetime) or when.utcoffset() != timedelta(0):
        raise _fail("submitted_at is a tz-aware UTC datetime", f"{what}: {when!r}")
    if not isinstance(info["order_id"], str) or not info["order_id"]:
        raise _fail("order_id is a non-empty string", f"{what}: {info['order_id']!r}")


def _check_account(broker: Broker, when: str, rtol: float) -> None:
    """``get_account`` keeps its keys and sums, when the broker has it."""
    if not isinstance(broker, AccountBroker):
        return
    info: Any = broker.get_account()
    if not isinstance(info, dict):
        raise _fail("get_account returns an AccountInfo dict",
                    f"{when}: {type(info).__name__}")
    missing = _ACCOUNT_KEYS - set(info)
    if missing:
        raise _fail("AccountInfo has every documented key", f"{when}: missing {sorted(missing)}")
    for key in ("cash", "equity", "buying_power", "maintenance_margin", "initial_margin",
                "long_market_value", "short_market_value"):
        if not isinstance(info[key], (int, float)) or math.isnan(info[key]):
            raise _fail("AccountInfo amounts are numbers", f"{when}: {key}={info[key]!r}")
    if info["account_type"] not in _ACCOUNT_TYPES:
        raise _fail("account_type is cash, margin or unconstrained",
                    f"{when}: {info['account_type']!r}")
    if info["long_market_value"] < 0 or info["short_market_value"] > 0:
        raise _fail("long value >= 0 and short value <= 0", f"{when}: {info}")
    total = info["cash"] + info["long_market_value"] + info["short_market_value"]
    scale = abs(info["cash"]) + info["long_market_value"] - info["short_market_value"]
    if not math.isclose(info["equity"], total, rel_tol=rtol, abs_tol=1e-6 + rtol * scale):
        raise _fail("equity = cash + long value + short value", f"{when}: {info}")
    cash = broker.get_cash()
    if not math.isclose(info["cash"], cash, rel_tol=rtol, abs_tol=1e-6):
        raise _fail("get_account cash equals get_cash", f"{when}: {info['cash']!r} vs {cash!r}")


def _check_fill(fill: Any) -> None:
    missing = _FILL_KEYS - set(fill)
    if missing:
        raise _fail("Fill has every documented key", f"missing {sorted(missing)} in {fill}")
    when = fill["timestamp"]
    if not isinstance(when, datetime) or when.utcoffset() != timedelta(0):
        raise _fail("fill timestamp is tz-aware UTC", f"{when!r} in {fill}")
    if not (fill["qty"] > 0 and math.isfinite(fill["price"]) and fill["price"] > 0):
        raise _fail("a fill has a positive quantity and price", str(fill))
    if not fill["fee"] >= 0:
        raise _fail("fees are non-negative", str(fill))
    if not math.isclose(fill["notional"], fill["qty"] * fill["price"], rel_tol=1e-9):
        raise _fail("fill notional is qty x price", str(fill))


@contextmanager
def _unchanged(broker: Broker, what: str) -> Iterator[None]:
    cash, pos, n_fills = broker.get_cash(), broker.get_positions(), len(broker.get_fills())
    yield
    if broker.get_cash() != cash or broker.get_positions() != pos \
            or len(broker.get_fills()) != n_fills:
        raise _fail("a rejected or repeated request changes nothing",
                    f"{what} changed cash {cash!r} -> {broker.get_cash()!r}, positions "
                    f"{pos} -> {broker.get_positions()}")


def check_broker_conformance(make_venue: Callable[[], ConformanceVenue], *,
                             symbol: str = "AAA", price: float = 100.0,
                             qty: float = 10.0, rtol: float = 1e-9,
                             order_kinds: bool = True) -> None:
    """Drive a broker through a scripted session and check it keeps the contract.

    ``make_venue()`` returns a fresh :class:`ConformanceVenue` whose ``broker`` is the
    broker under test, flat or not. The session: a market buy fills at the next step;
    resubmitting its ``client_order_id`` returns the same order; a far limit rests; it
    cancels, and cancelling again changes nothing; cancelling an unknown id raises
    :class:`~simbroker.UnknownOrder`; an invalid order raises
    :class:`~simbroker.InvalidOrder` and changes nothing; a market sell flattens.
    Throughout: result keys and types, status values and transitions, cash moving by
    exactly notional and fee, positions by the filled quantity, and ``get_fills(since)``
    returning the fills at or after ``since``.

    With ``order_kinds`` (the default; every simbroker broker passes it), the broker must
    be an :class:`~simbroker.OrderManagingBroker` and the session goes on: ``get_order``
    and ``get_orders(open_only=)`` agree with what happened (``remaining_qty`` too); a
    bracket's children are listed ``held`` with ``parent_id`` and become live when the
    entry fills; the price rising through the take-profit fills exactly that leg and
    cancels the stop; an OCO's stop leg fills on a drop and cancels its limit leg; a
    trailing sell stop follows a rise and fills on the fall; a far limit is replaced
    (same ``order_id``, new quantity and price) and a replace of a closed order raises
    :class:`~simbroker.ReplaceRejected` changing nothing; an ``ioc`` limit that cannot
    fill is closed after one step. The position ends where it started and cash moves by
    the section's fills exactly.

    A broker with ``get_account`` (an :class:`~simbroker.AccountBroker`) must return
    every :class:`~simbroker.types.AccountInfo` key, numbers where numbers are due,
    ``equity = cash + long_market_value + short_market_value`` and
    ``get_account()["cash"] == get_cash()``, before and after the session's first fill.

    Raises
    ------
    AssertionError
        Naming the property and the step of the session where it failed.
    """
    venue = make_venue()
    try:
        session = _Session(venue, symbol, venue.broker)
        _conformance_session(session, price, qty, rtol)
        if order_kinds:
            _order_kinds_session(session, price, qty, rtol)
    except AssertionError:
        raise
    except Exception as exc:
        raise _fail("the broker completes the conformance session",
                    f"{type(exc).__name__}: {exc}") from exc
    finally:
        venue.close()


def _conformance_session(s: _Session, price: float, qty: float, rtol: float) -> None:
    b, sym, venue = s.broker, s.symbol, s.venue
    if not isinstance(b, Broker):
        raise _fail("the broker satisfies simbroker.Broker", f"{type(b).__name__} does not")
    now = b.now()
    if not isinstance(now, datetime) or now.utcoffset() != timedelta(0):
        raise _fail("now() is tz-aware UTC", repr(now))
    venue.set_price(sym, price)
    _check_account(b, "before the first order", rtol)
    cash0, pos0 = b.get_cash(), b.get_positions().get(sym, 0.0)
    before = {f["fill_id"] for f in b.get_fills()}

    # 1. A market buy: accepted open, then filled at the next step.
    cid = f"conformance-{datetime.now(timezone.utc):%H%M%S%f}"
    buy = b.submit_order(sym, "buy", qty, "market", client_order_id=cid)
    _check_order_info(buy, "market buy")
    if buy["status"] not in _OPEN | {"filled", "partially_filled"}:
        raise _fail("a new market order is open (or already filled)", str(buy))
    if buy["client_order_id"] != cid or buy["qty"] != qty or buy["side"] != "buy":
        raise _fail("OrderInfo echoes what was submitted", str(buy))
    with _unchanged(b, "resubmitting a client_order_id"):
        again = b.submit_order(sym, "buy", qty, "market", client_order_id=cid)
    if again["order_id"] != buy["order_id"]:
        raise _fail("a repeated client_order_id returns the same order",
                    f"{buy['order_id']!r} then {again['order_id']!r}")
    venue.step()
    fills = s.fills_of(buy["order_id"])
    if not fills or abs(sum(f["qty"] for f in fills) - qty) > 1e-9 * qty:
        raise _fail("a market order fills at the next step",
                    f"fills for {buy['order_id']!r}: {fills}")
    for f in fills:
        _check_fill(f)
        if f["fill_id"] in before:
            raise _fail("fill ids are unique", f"{f['fill_id']!r} seen before")
        if f["client_order_id"] != cid or f["symbol"] != sym or f["side"] != "buy":
            raise _fail("a fill names its order", str(f))
    spent = sum(f["notional"] + f["fee"] for f in fills)
    if not math.isclose(b.get_cash(), cash0 - spent, rel_tol=rtol, abs_tol=rtol * spent):
        raise _fail("cash moves by notional plus fees",
                    f"cash {cash0!r} -> {b.get_cash()!r} after buying for {spent!r}")
    if not math.isclose(b.get_positions().get(sym, 0.0), pos0 + qty, abs_tol=1e-9 * qty):
        raise _fail("positions move by the filled quantity",
                    f"{sym} {pos0!r} -> {b.get_positions().get(sym)!r} after buying {qty!r}")
    _check_account(b, "after the market buy filled", rtol)
    with _unchanged(b, "cancelling a filled order"):
        try:
            done = b.cancel_order(buy["order_id"])
        except Exception as exc:
            raise _fail("cancelling a final order returns it unchanged",
                        f"cancelling filled {buy['order_id']!r} raised "
                        f"{type(exc).__name__}: {exc}") from exc
    _check_order_info(done, "cancel of a filled order")
    if done["status"] != "filled":
        raise _fail("a filled order stays filled", str(done))

    # 2. get_fills(since): inclusive cursor.
    last = max(f["timestamp"] for f in fills)
    since = b.get_fills(since=last)
    if not {f["fill_id"] for f in fills if f["timestamp"] >= last} <= \
            {f["fill_id"] for f in since}:
        raise _fail("get_fills(since) includes fills at since", f"since={last}: {since}")
    if any(f["timestamp"] < last for f in since):
        raise _fail("get_fills(since) returns nothing before since", f"since={last}: {since}")
    later = b.get_fills(since=last + timedelta(microseconds=1))
    if any(f["fill_id"] in {g["fill_id"] for g in fills} for f in later):
        raise _fail("get_fills(since) excludes fills before since", str(later))

    # 3. A far limit rests; cancel is idempotent.
    limit = b.submit_order(sym, "buy", qty, "limit", limit_price=round(price * 0.5, 2),
                           tif="gtc")
    _check_order_info(limit, "far limit buy")
    with _unchanged(b, "a step with a far limit resting"):
        venue.step()
    resting = s.fills_of(limit["order_id"])
    if resting:
        raise _fail("a limit the price never reaches does not fill", str(resting))
    canceled = b.cancel_order(limit["order_id"])
    _check_order_info(canceled, "cancel")
    if canceled["status"] != "canceled":
        raise _fail("cancel of an open order ends canceled", str(canceled))
    with _unchanged(b, "cancelling twice"):
        try:
            twice = b.cancel_order(limit["order_id"])
        except Exception as exc:
            raise _fail("cancel is idempotent", f"cancelling {limit['order_id']!r} a second "
                        f"time raised {type(exc).__name__}: {exc}") from exc
    if twice["status"] != "canceled" or twice["order_id"] != limit["order_id"]:
        raise _fail("cancel is idempotent", f"second cancel returned {twice}")
    with _unchanged(b, "cancelling an unknown order"):
        try:
            b.cancel_order("no-such-order-id")
        except UnknownOrder:
            pass
        else:
            raise _fail("cancelling an unknown id raises UnknownOrder", "it returned")

    # 4. Invalid orders are refused before anything happens.
    for bad, what in (({"qty": 0.0}, "qty 0"), ({"qty": -qty}, "negative qty"),
                      ({"order_type": "limit"}, "limit without a price"),
                      ({"side": "hold"}, "side 'hold'")):
        args: dict[str, Any] = {"symbol": sym, "side": "sell", "qty": qty,
                                "order_type": "market"} | bad
        with _unchanged(b, f"an invalid order ({what})"):
            try:
                b.submit_order(args.pop("symbol"), args.pop("side"), args.pop("qty"),
                               args.pop("order_type"))
            except InvalidOrder:
                pass
            else:
                raise _fail("an invalid order raises InvalidOrder", f"{what} was accepted")

    # 5. A market sell flattens what the buy added.
    cash1 = b.get_cash()
    sell = b.submit_order(sym, "sell", qty, "market")
    _check_order_info(sell, "market sell")
    venue.step()
    sfills = s.fills_of(sell["order_id"])
    if abs(sum(f["qty"] for f in sfills) - qty) > 1e-9 * qty:
        raise _fail("a market sell fills at the next step", str(sfills))
    for f in sfills:
        _check_fill(f)
    got = sum(f["notional"] - f["fee"] for f in sfills)
    if not math.isclose(b.get_cash(), cash1 + got, rel_tol=rtol, abs_tol=rtol * got):
        raise _fail("cash moves by notional less fees",
                    f"cash {cash1!r} -> {b.get_cash()!r} after selling for {got!r}")
    if not math.isclose(b.get_positions().get(sym, 0.0), pos0, abs_tol=1e-9 * qty):
        raise _fail("positions move by the filled quantity",
                    f"{sym} should be back at {pos0!r}, is {b.get_positions().get(sym)!r}")
    if pos0 == 0 and sym in b.get_positions():
        raise _fail("flat symbols are left out of get_positions", str(b.get_positions()))


def _open_ids(b: OrderManagingBroker) -> set[str]:
    listed = b.get_orders(open_only=True)
    for info in listed:
        _check_order_info(info, "get_orders(open_only=True)")
        if info["status"] not in _OPEN:
            raise _fail("get_orders(open_only=True) lists only open orders", str(info))
    return {o["order_id"] for o in listed}


def _status(b: OrderManagingBroker, order_id: str) -> str:
    info = b.get_order(order_id)
    _check_order_info(info, f"get_order({order_id!r})")
    if not math.isclose(info["remaining_qty"], info["qty"] - info["filled_qty"],
                        abs_tol=1e-9 * info["qty"]):
        raise _fail("remaining_qty is qty - filled_qty", str(info))
    return str(info["status"])


def _order_kinds_session(s: _Session, price: float, qty: float, rtol: float) -> None:
    b0, sym, venue = s.broker, s.symbol, s.venue
    if not isinstance(b0, OrderManagingBroker):
        raise _fail("the broker satisfies simbroker.OrderManagingBroker",
                    f"{type(b0).__name__} lacks get_order, get_orders or replace_order")
    b: OrderManagingBroker = b0
    cash0, pos0 = b.get_cash(), b.get_positions().get(sym, 0.0)
    seen = {f["fill_id"] for f in b.get_fills()}
    with _unchanged(b, "get_order of an unknown id"):
        try:
            b.get_order("no-such-order-id")
        except UnknownOrder:
            pass
        else:
            raise _fail("get_order of an unknown id raises UnknownOrder", "it returned")
    every = {o["order_id"] for o in b.get_orders()}

    # 6. A bracket: held children, born on the entry's fill; one exit fills.
    venue.set_price(sym, price)
    parent = b.submit_order(sym, "buy", qty, "market", order_class="bracket",
                            take_profit={"limit_price": round(price * 1.1, 2)},
                            stop_loss={"stop_price": round(price * 0.9, 2)}, tif="gtc")
    _check_order_info(parent, "bracket")
    legs = list(parent["legs"])
    if parent["order_class"] != "bracket" or len(legs) != 2:
        raise _fail("a bracket lists its two legs", str(parent))
    for leg in legs:
        info = b.get_order(leg)
        if info["parent_id"] != parent["order_id"] or info["side"] != "sell":
            raise _fail("a bracket's legs name their parent and sell", str(info))
        if parent["status"] not in ("filled", "partially_filled") and info["status"] != "held":
            raise _fail("a bracket's legs are held until the entry fills", str(info))
    if not set(legs) | {parent["order_id"]} <= _open_ids(b) | {
            o["order_id"] for o in b.get_orders() if o["status"] == "filled"}:
        raise _fail("get_orders(open_only=True) lists a bracket and its held legs",
                    str(b.get_orders(open_only=True)))
    venue.step()
    if _status(b, parent["order_id"]) != "filled":
        raise _fail("a bracket's market entry fills at the next step",
                    str(b.get_order(parent["order_id"])))
    if any(_status(b, leg) not in ("new", "pending_confirm") for leg in legs):
        raise _fail("a bracket's legs are live once the entry filled",
                    str([b.get_order(leg) for leg in legs]))
    venue.set_price(sym, round(price * 1.2, 2))
    venue.step()
    states = [_status(b, leg) for leg in legs]
    if states != ["filled", "canceled"]:
        raise _fail("the price rising through the take-profit fills it and cancels the stop",
                    f"leg statuses {states}")
    if not math.isclose(b.get_positions().get(sym, 0.0), pos0, abs_tol=1e-9 * qty):
        raise _fail("a bracket's exit closes exactly what its entry opened",
                    f"{sym} {b.get_positions().get(sym)!r}, started at {pos0!r}")

    # 7. An OCO on a held position: the stop fills on a drop, the limit is canceled.
    venue.set_price(sym, price)
    buy = b.submit_order(sym, "buy", qty, "market")
    venue.step()
    oco = b.submit_order(sym, "sell", qty, "limit", order_class="oco",
                         take_profit={"limit_price": round(price * 1.1, 2)},
                         stop_loss={"stop_price": round(price * 0.9, 2)}, tif="gtc")
    _check_order_info(oco, "oco")
    if len(oco["legs"]) != 1 or b.get_order(oco["legs"][0])["status"] == "held":
        raise _fail("an OCO's limit leg lists its stop leg, live at once", str(oco))
    venue.set_price(sym, round(price * 0.85, 2))
    venue.step()
    states = [_status(b, oco["order_id"]), _status(b, oco["legs"][0])]
    if states != ["canceled", "filled"]:
        raise _fail("a drop through an OCO's stop fills it and cancels the limit leg",
                    f"limit, stop statuses {states}")

    # 8. A trailing sell stop follows a rise, then fills on the fall.
    venue.set_price(sym, price)
    b.submit_order(sym, "buy", qty, "market")
    venue.step()
    trail = b.submit_order(sym, "sell", qty, "trailing_stop", trail_percent=5.0, tif="gtc")
    _check_order_info(trail, "trailing stop")
    if trail["trail_percent"] != 5.0 or trail["trail_amount"] is not None:
        raise _fail("a trailing stop echoes its trail", str(trail))
    venue.set_price(sym, round(price * 1.1, 2))
    venue.step()
    if _status(b, trail["order_id"]) not in _OPEN:
        raise _fail("a trailing stop does not fill on a rise", str(b.get_order(trail["order_id"])))
    venue.set_price(sym, round(price * 0.9, 2))
    venue.step()
    if _status(b, trail["order_id"]) != "filled":
        raise _fail("a trailing sell stop fills when the price falls through its trail",
                    str(b.get_order(trail["order_id"])))

    # 9. Replace keeps the order id; a replace of a closed order changes nothing.
    venue.set_price(sym, price)
    far = b.submit_order(sym, "buy", qty, "limit", limit_price=round(price * 0.5, 2),
                         tif="gtc")
    new = b.replace_order(far["order_id"], qty=qty / 2, limit_price=round(price * 0.6, 2))
    _check_order_info(new, "replace_order")
    if new["order_id"] != far["order_id"]:
        raise _fail("replace_order keeps the order id", f"{far['order_id']!r} -> {new}")
    venue.step()
    now = b.get_order(far["order_id"])
    if not (math.isclose(now["qty"], qty / 2) and math.isclose(
            float(now["limit_price"] or 0), round(price * 0.6, 2))):
        raise _fail("a replace changes the order's quantity and price", str(now))
    b.cancel_order(far["order_id"])
    with _unchanged(b, "replacing a canceled order"):
        try:
            b.replace_order(far["order_id"], qty=qty)
        except ReplaceRejected:
            pass
        else:
            raise _fail("a replace of a closed order raises ReplaceRejected", "it returned")

    # 10. An ioc limit that cannot fill is closed after one step.
    ioc = b.submit_order(sym, "buy", qty, "limit", limit_price=round(price * 0.5, 2),
                         tif="ioc")
    venue.step()
    if _status(b, ioc["order_id"]) in _OPEN:
        raise _fail("an ioc order is closed after the step it could not fill in",
                    str(b.get_order(ioc["order_id"])))

    # Accounting over the section; every order submitted is listed.
    if not math.isclose(b.get_positions().get(sym, 0.0), pos0, abs_tol=1e-9 * qty):
        raise _fail("the order kinds leave the position where it started",
                    f"{sym} {b.get_positions().get(sym)!r}, started at {pos0!r}")
    fills = [f for f in b.get_fills() if f["fill_id"] not in seen]
    for f in fills:
        _check_fill(f)
    flow = sum((f["notional"] if f["side"] == "sell" else -f["notional"]) - f["fee"]
               for f in fills)
    scale = sum(f["notional"] for f in fills) or 1.0
    if not math.isclose(b.get_cash(), cash0 + flow, rel_tol=rtol, abs_tol=rtol * scale):
        raise _fail("cash moves by the fills' notional and fees",
                    f"cash {cash0!r} -> {b.get_cash()!r}, fills say {cash0 + flow!r}")
    ids = {o["order_id"] for o in b.get_orders()} - every
    wanted = {parent["order_id"], *legs, buy["order_id"], oco["order_id"], *oco["legs"],
              trail["order_id"], far["order_id"], ioc["order_id"]}
    if not wanted <= ids:
        raise _fail("get_orders() lists every order", f"missing {sorted(wanted - ids)}")
