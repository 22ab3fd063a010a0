"""Hypothesis strategies for simbroker's data types.

Plain functions with plural-noun names and keyword-only options, each taking a value or
a strategy where that makes sense, in the style of ``hypothesis.extra.numpy``::

    from hypothesis import given
    from simbroker.testing.strategies import bar_panels

    @given(bar_panels(n_symbols=2, allow_missing=True))
    def test_my_slippage_model(bars): ...

Bad arguments raise :class:`hypothesis.errors.InvalidArgument` at once, quoting the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from simbroker.bars import FIELDS, Bars
from simbroker.models.fees import BpsOfNotional, FeeModel, NoFee, PerOrder, PerShare
from simbroker.models.slippage import (
    BarContext,
    BarRange,
    FixedBps,
    NoSlippage,
    SlippageModel,
    VolumeShare,
)

__all__ = ["OrderSpec", "bar_panels", "fee_cases", "fee_models", "order_streams", "orders",
           "slippage_cases", "slippage_models", "target_frames"]

MAX_SYMBOLS = 26
"""``bar_panels`` names symbols ``"A"`` .. ``"Z"``."""

MAX_LOG_MOVE = 0.1
"""Bound on a bar's open-to-close log return and on its opening gap (about 10 %)."""

MAX_WICK = 0.05
"""Bound on a wick, as a log distance beyond ``max(open, close)`` or ``min(open, close)``."""

_START = np.datetime64("2020-01-01T00:00:00", "ns")
_DAY = np.timedelta64(1, "D").astype("timedelta64[ns]")
_DEFAULT_N_SYMBOLS = st.integers(1, 3)
_DEFAULT_N_BARS = st.integers(1, 30)

F64 = npt.NDArray[np.float64]


def bar_panels(
    *,
    n_symbols: int | st.SearchStrategy[int] = _DEFAULT_N_SYMBOLS,
    n_bars: int | st.SearchStrategy[int] = _DEFAULT_N_BARS,
    min_price: float = 1.0,
    max_price: float = 10_000.0,
    allow_gaps: bool = True,
    allow_flat: bool = True,
    allow_zero_volume: bool = True,
    allow_missing: bool = False,
) -> st.SearchStrategy[Bars]:
    """Valid daily OHLCV panels (:class:`~simbroker.bars.Bars`) that shrink well.

    Every panel passes :func:`simbroker.validate_bars` and survives
    ``load_bars(bars.to_frame())`` unchanged. Bars are daily, starting 2020-01-01 (UTC),
    symbols ``"A"``, ``"B"``, ... Each bar is drawn as bounded numbers: an opening gap and
    an open-to-close log return in ``[-0.1, 0.1]``, wicks in ``[0, 0.05]``, an integer
    volume; so failing examples shrink toward one symbol, one bar, flat prices and zero
    volume. Try ``bar_panels().example()`` to see one.

    Parameters
    ----------
    n_symbols : int or SearchStrategy[int], default ``st.integers(1, 3)``
        - how many symbols, 1 to 26; a strategy is drawn from per example.
    n_bars : int or SearchStrategy[int], default ``st.integers(1, 30)``
        - how many bar times (>= 1).
    min_price, max_price : float, default 1.0 and 10,000.0
        - every price (open, high, low, close) lies in ``[min_price, max_price]``;
          ``0 < min_price < max_price``. Paths that would leave the range are pinned at
          its edges (less the largest wick).
    allow_gaps : bool, default True
        - if False, every open equals the previous close of the same symbol exactly.
    allow_flat : bool, default True
        - allow flat bars, ``open == high == low == close``; if False every bar has
          ``high > low``.
    allow_zero_volume : bool, default True
        - allow ``volume == 0``; if False every volume is >= 1.
    allow_missing : bool, default False
        - put ``NaN`` holes where a symbol has no bar (all five fields at once). Every
          symbol keeps at least one bar and every bar time has at least one symbol.

    Returns
    -------
    SearchStrategy[Bars]

    Examples
    --------
    >>> bars = bar_panels(n_symbols=2, n_bars=5).example()  # doctest: +SKIP
    >>> bars.symbols, len(bars)  # doctest: +SKIP
    (('A', 'B'), 5)
    """
    _check_count("n_symbols", n_symbols, 1, MAX_SYMBOLS)
    _check_count("n_bars", n_bars, 1, None)
    for name, value in (("min_price", min_price), ("max_price", max_price)):
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value <= 0):
            raise InvalidArgument(f"{name}={value!r} must be a finite number > 0")
    if not max_price > min_price or math.log(max_price / min_price) < 1e-6:
        raise InvalidArgument(
            f"max_price={max_price!r} must exceed min_price={min_price!r} by at least "
            "one part in a million"
        )
    for name, flag in (("allow_gaps", allow_gaps), ("allow_flat", allow_flat),
                       ("allow_zero_volume", allow_zero_volume),
                       ("allow_missing", allow_missing)):
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{name}={flag!r} must be True or False")
    return _bar_panels(
        n_symbols=n_symbols, n_bars=n_bars, min_price=float(min_price),
        max_price=float(max_price), allow_gaps=allow_gaps, allow_flat=allow_flat,
        allow_zero_volume=allow_zero_volume, allow_missing=allow_missing,
    )


@st.composite
def _bar_panels(
    draw: st.DrawFn,
    *,
    n_symbols: int | st.SearchStrategy[int],
    n_bars: int | st.SearchStrategy[int],
    min_price: float,
    max_price: float,
    allow_gaps: bool,
    allow_flat: bool,
    allow_zero_volume: bool,
    allow_missing: bool,
) -> Bars:
    n = _draw_count(draw, "n_symbols", n_symbols, 1, MAX_SYMBOLS)
    t = _draw_count(draw, "n_bars", n_bars, 1, None)
    shape = (t, n)
    lo, hi = math.log(min_price), math.log(max_price)
    wick_max = min(MAX_WICK, (hi - lo) / 4)  # leaves room for wicks inside the range
    wick_min = 0.0 if allow_flat else wick_max / 10
    body_lo, body_hi = lo + wick_max, hi - wick_max  # where open and close may go

    def floats(a: float, b: float) -> st.SearchStrategy[float]:
        return st.floats(a, b, allow_nan=False, allow_infinity=False, allow_subnormal=False)

    def grid(elements: st.SearchStrategy[float]) -> F64:
        return np.asarray(draw(hnp.arrays(np.float64, shape, elements=elements)))

    start = np.log(np.asarray(
        draw(st.lists(floats(math.exp(body_lo), math.exp(body_hi)), min_size=n, max_size=n)),
        dtype=np.float64,
    ))
    ret = grid(floats(-MAX_LOG_MOVE, MAX_LOG_MOVE))
    gap = grid(floats(-MAX_LOG_MOVE, MAX_LOG_MOVE)) if allow_gaps else np.zeros(shape)
    wick_up = grid(floats(wick_min, wick_max))
    wick_down = grid(floats(wick_min, wick_max))
    if allow_flat:
        flat = np.asarray(draw(hnp.arrays(np.bool_, shape)))
        ret[flat] = 0.0
        wick_up[flat] = 0.0
        wick_down[flat] = 0.0
    missing = np.zeros(shape, dtype=bool)
    if allow_missing:
        missing = np.asarray(draw(hnp.arrays(np.bool_, shape)))
        rows = np.arange(max(t, n))
        missing[rows % t, rows % n] = False  # a bar in every row and every column
        ret[missing] = 0.0  # a hole keeps the price, so no gap appears across it
        gap[missing] = 0.0
    volume = np.asarray(draw(hnp.arrays(
        np.int64, shape, elements=st.integers(0 if allow_zero_volume else 1, 1_000_000),
    )), dtype=np.float64)

    # log close_t = log close_{t-1} + gap_t + ret_t; log open_t = log close_{t-1} + gap_t.
    log_close = start + np.cumsum(gap + ret, axis=0)
    log_open = np.vstack([start[None, :], log_close[:-1]]) + gap
    open_ = np.exp(np.clip(log_open, body_lo, body_hi))
    close = np.exp(np.clip(log_close, body_lo, body_hi))
    high = np.minimum(np.maximum(open_, close) * np.exp(wick_up), max_price)
    low = np.maximum(np.minimum(open_, close) * np.exp(-wick_down), min_price)
    fields = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    for a in fields.values():
        a[missing] = np.nan
        a.setflags(write=False)
    return Bars(
        timestamps=_START + _DAY * np.arange(t),
        symbols=tuple(chr(ord("A") + i) for i in range(n)),
        interval=_DAY,
        **{name: fields[name] for name in FIELDS},
    )


def _check_count(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, st.SearchStrategy):
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{name}={value!r} must be an int or a strategy of ints")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidArgument(f"{name}={value!r} must be {bounds}")


def _draw_count(
    draw: st.DrawFn, name: str, value: int | st.SearchStrategy[int], low: int, high: int | None
) -> int:
    drawn = draw(value) if isinstance(value, st.SearchStrategy) else value
    _check_count(name, drawn, low, high)
    return int(drawn)


ORDER_TYPES: tuple[str, ...] = ("market", "limit", "stop", "stop_limit")


@dataclass(frozen=True)
class OrderSpec:
    """One order of a generated stream: submit it once bar ``bar`` has closed.

    ``bar = -1`` means before the first bar. Prices are absolute; use :meth:`kwargs` for
    the keyword arguments of ``Broker.submit_order``.
    """

    bar: int
    symbol: str
    side: str
    qty: float
    order_type: str = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = "day"

    def kwargs(self) -> dict[str, Any]:
        """``order_type``, prices and ``tif`` as keyword arguments for ``submit_order``."""
        return {"order_type": self.order_type, "limit_price": self.limit_price,
                "stop_price": self.stop_price, "tif": self.tif}


def _known_price(bars: Bars, bar: int, col: int) -> float:
    """The last close a strategy could know at submission (the first open before bar 0)."""
    if bar >= 0:
        closes = bars.close[: bar + 1, col]
        known = closes[~np.isnan(closes)]
        if len(known):
            return float(known[-1])
    opens = bars.open[:, col]
    opens = opens[~np.isnan(opens)]
    return float(opens[0]) if len(opens) else 100.0


def orders(
    bars: Bars,
    *,
    order_types: tuple[str, ...] = ORDER_TYPES,
    tifs: tuple[str, ...] = ("day", "gtc"),
    max_qty: int = 1_000,
    fractional: bool = False,
    max_offset: float = 0.05,
) -> st.SearchStrategy[OrderSpec]:
    """Single valid orders over ``bars``, of every type and side.

    Limit and stop prices sit within ``max_offset`` (a fraction) of the last close known
    at submission, so they fill sometimes and rest sometimes.

    - ``bars``: the panel the orders are for.
    - ``order_types``: a non-empty subset of ``"market", "limit", "stop", "stop_limit"``.
    - ``tifs``: a non-empty subset of ``"day", "gtc"``.
    - ``max_qty``: the largest quantity (>= 1).
    - ``fractional``: draw fractional quantities too.
    - ``max_offset``: in [0, 0.5).

    ``orders(simbroker.synthetic_bars(2, 10)).example()`` shows one.
    """
    if not isinstance(bars, Bars) or len(bars) == 0 or bars.n_symbols == 0:
        raise InvalidArgument(f"bars={bars!r} must be a non-empty Bars panel")
    bad = [t for t in order_types if t not in ORDER_TYPES]
    if not order_types or bad:
        raise InvalidArgument(f"order_types={order_types!r} must be a non-empty subset of "
                              f"{ORDER_TYPES!r}")
    if not tifs or any(t not in ("day", "gtc") for t in tifs):
        raise InvalidArgument(f"tifs={tifs!r} must be a non-empty subset of ('day', 'gtc')")
    if not isinstance(max_qty, int) or max_qty < 1:
        raise InvalidArgument(f"max_qty={max_qty!r} must be an int >= 1")
    if not 0 <= max_offset < 0.5:
        raise InvalidArgument(f"max_offset={max_offset!r} must be in [0, 0.5)")
    return _orders(bars, order_types, tifs, max_qty, fractional, max_offset)


@st.composite
def _orders(draw: st.DrawFn, bars: Bars, order_types: tuple[str, ...],
            tifs: tuple[str, ...], max_qty: int, fractional: bool,
            max_offset: float) -> OrderSpec:
    bar = draw(st.integers(-1, max(len(bars) - 2, -1)), label="bar")
    col = draw(st.integers(0, bars.n_symbols - 1), label="symbol")
    side = draw(st.sampled_from(("buy", "sell")), label="side")
    if fractional:
        qty = draw(st.floats(0.001, float(max_qty), allow_nan=False, allow_infinity=False))
    else:
        qty = float(draw(st.integers(1, max_qty)))
    otype = draw(st.sampled_from(order_types), label="order_type")
    ref = _known_price(bars, bar, col)
    offset = st.floats(-max_offset, max_offset, allow_nan=False)
    limit = ref * (1 + draw(offset)) if otype in ("limit", "stop_limit") else None
    stop = ref * (1 + draw(offset)) if otype in ("stop", "stop_limit") else None
    tif = draw(st.sampled_from(tifs), label="tif")
    return OrderSpec(bar=bar, symbol=bars.symbols[col], side=side, qty=qty, order_type=otype,
                     limit_price=limit, stop_price=stop, tif=tif)


def order_streams(
    bars: Bars,
    *,
    min_size: int = 0,
    max_size: int = 20,
    **order_options: Any,
) -> st.SearchStrategy[list[OrderSpec]]:
    """Lists of orders over ``bars``, sorted by submission bar.

    - ``bars``: the panel.
    - ``min_size``, ``max_size``: bounds on the number of orders.
    - ``order_options``: passed to :func:`orders`.

    Drive a broker with :func:`simbroker.testing.run_order_stream`.
    """
    if not 0 <= min_size <= max_size:
        raise InvalidArgument(f"need 0 <= min_size <= max_size, got {min_size!r}, {max_size!r}")
    return st.lists(orders(bars, **order_options), min_size=min_size,
                    max_size=max_size).map(lambda xs: sorted(xs, key=lambda o: o.bar))


def target_frames(
    bars: Bars,
    *,
    elements: st.SearchStrategy[float] | None = None,
) -> st.SearchStrategy[pd.DataFrame]:
    """Target-position frames for ``bars``: timestamps x symbols, shares, ``NaN`` = keep.

    The default cells mix ``NaN``, whole and fractional share counts, both signs, and the
    values that expose summation dust (``0.1``, ``0.3``, ``1e-12``, ``3.0000000001``), as
    :func:`simbroker.backtest_vectorized` and :class:`simbroker.TargetPositions` take them.

    - ``bars``: the panel the targets are for.
    - ``elements``: a strategy for one cell instead of the default.
    """
    if not isinstance(bars, Bars) or bars.n_symbols == 0:
        raise InvalidArgument(f"bars={bars!r} must be a Bars panel with symbols")
    cells = elements if elements is not None else _TARGET_CELLS
    return hnp.arrays(np.float64, (len(bars), bars.n_symbols), elements=cells).map(
        lambda grid: pd.DataFrame(grid, index=bars.index, columns=list(bars.symbols)))


_TARGET_CELLS: st.SearchStrategy[float] = st.one_of(
    st.just(math.nan),
    st.integers(-50, 50).map(float),
    st.floats(-100, 100, allow_nan=False, allow_subnormal=False),
    st.sampled_from([0.1, 0.2, 0.3, -0.1, 1e-12, 3.0000000001]),
)


def slippage_models() -> st.SearchStrategy[SlippageModel]:
    """simbroker's own slippage models with typical parameters (for parity properties)."""
    return st.sampled_from([NoSlippage(), FixedBps(5.0), FixedBps(10.0), VolumeShare(),
                            BarRange()])


def fee_models() -> st.SearchStrategy[FeeModel]:
    """simbroker's own fee models, a sum among them (for parity properties)."""
    return st.sampled_from([NoFee(), BpsOfNotional(1.0), PerShare(), PerOrder(0.35),
                            BpsOfNotional(2.0) + PerOrder(1.0)])


def _float_arrays(draw: st.DrawFn, n: int, elements: st.SearchStrategy[float]) -> F64:
    out: F64 = draw(hnp.arrays(np.float64, n, elements=elements))
    return out


@st.composite
def slippage_cases(draw: st.DrawFn, *, max_orders: int = 8
                   ) -> tuple[F64, F64, F64, BarContext]:
    """Batches for a slippage model: ``(side, qty, price, bar)``, aligned arrays.

    ``side`` is +1/-1; ``qty`` includes zeros, tiny and huge sizes; ``price`` is the
    reference price; ``bar`` (a :class:`~simbroker.models.slippage.BarContext`) is the bar
    each order fills on, with zero, tiny (even subnormal), unknown (``NaN``) and unlimited
    volumes and closes, as live data has them. Pass them to ``model.rate`` or
    ``model.fill_prices``.
    """
    n = draw(st.integers(0, max_orders), label="n_orders")
    side = _float_arrays(draw, n, st.sampled_from([1.0, -1.0]))
    qty = _float_arrays(draw, n, st.one_of(st.just(0.0), st.floats(1e-6, 1e7)))
    price = _float_arrays(draw, n, st.floats(0.01, 1e5))
    low = _float_arrays(draw, n, st.floats(0.01, 1e5))
    high = low + _float_arrays(draw, n, st.floats(0.0, 1e4))
    close = _float_arrays(draw, n, st.one_of(st.floats(0.0, 2e5), st.just(math.nan)))
    volume = _float_arrays(draw, n, st.one_of(st.floats(0.0, 1e12), st.just(math.nan),
                                              st.just(math.inf)))
    bar = BarContext(open=price.copy(), high=high, low=low, close=close, volume=volume)
    return side, qty, price, bar


@st.composite
def fee_cases(draw: st.DrawFn, *, max_fills: int = 8) -> tuple[F64, F64, F64]:
    """Batches for a fee model: ``(side, qty, price)``, aligned arrays of fills.

    Quantities include zero, fractional and whole shares; prices include zero (a
    worthless fill) up to 100,000.
    """
    n = draw(st.integers(1, max_fills), label="n_fills")
    side = _float_arrays(draw, n, st.sampled_from([1.0, -1.0]))
    qty = _float_arrays(draw, n, st.one_of(st.just(0.0), st.floats(1e-4, 1e7),
                                           st.integers(1, 10_000).map(float)))
    price = _float_arrays(draw, n, st.floats(0.0, 1e5))
    return side, qty, price
