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
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given
from hypothesis import settings as Settings
from hypothesis import strategies as st

from simbroker.bars import FIELDS, Bars
from simbroker.engine import StrategyLike, _on_bar_of, backtest
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import BarContext, SlippageModel
from simbroker.paper import PaperBroker
from simbroker.results import BacktestResult
from simbroker.testing._conformance import ConformanceVenue, PaperVenue, check_broker_conformance
from simbroker.testing._property import fail
from simbroker.testing.strategies import fee_cases, slippage_cases
from simbroker.types import OrderInfo

__all__ = ["ConformanceVenue", "PaperVenue", "check_accounting", "check_broker_conformance",
           "check_fee_model", "check_no_lookahead", "check_slippage_model"]

_DEFAULT_SETTINGS = Settings(max_examples=200, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])


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
            raise fail(f"{model!r} breaks '{prop}'", detail)

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
            raise fail(f"{model!r} breaks '{prop}'", detail)

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
            raise fail("fill notional is qty x price",
                        f"fill {fills['fill_id'].iloc[i]!r}: {notional[i]!r} != "
                        f"{qty[i]!r} x {price[i]!r}")
        neg = np.flatnonzero(~(fee >= 0))
        if len(neg):
            i = int(neg[0])
            raise fail("fees are non-negative",
                        f"fill {fills['fill_id'].iloc[i]!r} has fee {fee[i]!r}")
        if np.any(qty <= 0) or not np.all(np.isfinite(price)):
            raise fail("fills have a positive quantity and a finite price",
                        f"qty {_arr(qty)}, price {_arr(price)}")
    sign = np.where(fills["side"].to_numpy(object) == "buy", 1.0, -1.0)
    ts = fills["timestamp"].to_numpy("datetime64[ns]").astype(np.int64)
    # The bar each fill belongs to (a fill is stamped within its bar).
    bar_of = np.searchsorted(bars.ts_ns, ts, side="right") - 1
    if len(fills) and (bar_of.min() < 0 or bar_of.max() >= n_t):
        raise fail("fills fall within the replayed bars",
                    f"fill times {fills['timestamp'].min()} .. {fills['timestamp'].max()} "
                    f"outside {bars.index[0]} .. {bars.index[-1]}")
    flow = np.zeros(n_t)
    np.add.at(flow, bar_of, -sign * notional - fee)
    expected_cash = cash0 + np.cumsum(flow)
    cash = result.cash.to_numpy(np.float64)
    bad = np.flatnonzero(~np.isclose(cash, expected_cash, rtol=0, atol=rtol * scale))
    if len(bad):
        t = int(bad[0])
        raise fail("cash is conserved by the fills",
                    f"after bar {t} ({bars.index[t]}): cash {cash[t]!r}, but starting cash "
                    f"{cash0!r} and the fills give {expected_cash[t]!r}")
    sym_col = {s: i for i, s in enumerate(bars.symbols)}
    cols = np.array([sym_col.get(s, -1) for s in fills["symbol"].to_numpy(object)],
                    np.int64)
    if len(cols) and cols.min() < 0:
        raise fail("fills are in the result's symbols",
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
        raise fail("shares are conserved by the fills",
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
        raise fail("equity is cash plus positions marked to the last close",
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
                raise fail("no look-ahead",
                            f"with the data {how} bar {t} ({bars.index[t]}) the strategy "
                            f"raised {type(exc).__name__}: {exc}") from exc
            if got != upto:
                k = next((i for i, (a, b) in enumerate(zip(got, upto, strict=False))
                          if a != b), min(len(got), len(upto)))
                mine = got[k] if k < len(got) else "nothing"
                theirs = upto[k] if k < len(upto) else "nothing"
                raise fail("no look-ahead",
                            f"with the data {how} bar {t} ({bars.index[t]}), decision {k} "
                            f"(bar, action, ...) is {mine}; on the full data it was "
                            f"{theirs}")

    base = settings or Settings(max_examples=25, deadline=None, database=None,
                                suppress_health_check=[HealthCheck.too_slow])
    base(run)()
