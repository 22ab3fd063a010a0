"""Run a strategy: the event-driven backtest loop.

A strategy is an object with ``on_bar(broker, history)`` (or a plain callable taking the
same two arguments). It may also define ``indicators(bars) -> {name: array}``, computed
once, vectorized, over the whole panel before the loop; ``history`` then reveals each
indicator only up to the current bar, exactly like the bars themselves.

On bars attached with ``adjust="splits"`` or ``"all"``
(:func:`simbroker.actions.attach_actions`), ``indicators`` receives forward-adjusted
bars (:func:`simbroker.actions.adjusted_bars`: continuous through splits and dividends,
no look-ahead) while orders fill at the raw prices; a strategy with ``raw_prices = True``
gets the raw bars instead. ``history.adjusted(field)`` gives the point-in-time view.

The indicator arrays are not copied: ``history`` holds read-only views of the arrays
``indicators`` returned, so a strategy that writes into its own array later sees the
change through ``history``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from simbroker._progress import progress_iter
from simbroker.accounts import Account
from simbroker.actions._adjust import adjusted_bars, adjustment_factors
from simbroker.bars import FIELDS, Bars
from simbroker.broker import Broker
from simbroker.clock import _BarClock
from simbroker.data import load_bars
from simbroker.errors import StrategyError
from simbroker.financing import BorrowModel, InterestModel
from simbroker.models.fees import FeeModel
from simbroker.models.slippage import SlippageModel
from simbroker.paper import PaperBroker
from simbroker.results import BacktestResult, build_result
from simbroker.tradelog import TradeLog

__all__ = ["History", "Strategy", "StrategyLike", "backtest"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INLINE_IDLE = True
"""Close idle bars in :func:`backtest`'s loop rather than through ``PaperBroker.step``
(tests set it False to force the call on every bar and compare)."""


@runtime_checkable
class Strategy(Protocol):
    """What the engine calls. ``indicators`` is optional (see the module docstring)."""

    def on_bar(self, broker: Broker, history: History) -> None:
        """Called once each bar has closed; submit or cancel orders through ``broker``."""
        ...


StrategyLike = Strategy | Callable[[Broker, "History"], None]


class History:
    """What a strategy may see at the close of bar ``t``: bars and indicators up to ``t``.

    Every array is a read-only view of rows ``0..t`` (inclusive), shape ``(t + 1, N)``,
    columns in ``symbols`` order; nothing after ``t`` is reachable through it. For pandas,
    :meth:`frame` gives a wide DataFrame (timestamps by symbols).

    Attributes
    ----------
    t : int
        Index of the current (latest closed) bar.
    symbols : tuple of str
    """

    __slots__ = ("_arrays", "_bars", "_factors", "_indicators", "symbols", "t")

    def __init__(self, bars: Bars, indicators: Mapping[str, np.ndarray] | None = None):
        self._bars = bars
        self._indicators: dict[str, np.ndarray] = dict(indicators or {})
        # Every name :meth:`last` answers, fields and indicators, in one lookup (the
        # panel is frozen, so its arrays can be held here).
        self._arrays: dict[str, np.ndarray] = {
            **{f: getattr(bars, f) for f in FIELDS}, **self._indicators}
        self._factors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.symbols = bars.symbols
        self.t = -1

    def __len__(self) -> int:
        return self.t + 1

    @property
    def timestamps(self) -> np.ndarray:
        """Bar open times up to ``t`` (datetime64[ns], UTC)."""
        return self._bars.timestamps[: self.t + 1]

    @property
    def now(self) -> datetime:
        """The close time of bar ``t`` (tz-aware UTC)."""
        ns = int(self._bars.ts_ns[self.t]) + int(self._bars.interval.astype(np.int64))
        return _EPOCH + timedelta(microseconds=ns // 1000)

    @property
    def open(self) -> np.ndarray:
        """Opens up to ``t``."""
        return self._bars.open[: self.t + 1]

    @property
    def high(self) -> np.ndarray:
        """Highs up to ``t``."""
        return self._bars.high[: self.t + 1]

    @property
    def low(self) -> np.ndarray:
        """Lows up to ``t``."""
        return self._bars.low[: self.t + 1]

    @property
    def close(self) -> np.ndarray:
        """Closes up to ``t``."""
        return self._bars.close[: self.t + 1]

    @property
    def volume(self) -> np.ndarray:
        """Volumes up to ``t``."""
        return self._bars.volume[: self.t + 1]

    def adjusted(self, name: str = "close", adjust: str | None = None) -> np.ndarray:
        """A bar field up to ``t``, adjusted for corporate actions as seen at bar ``t``.

        Rows ``0..t`` in the shares of bar ``t``: each earlier price times the split
        ratios (and, with ``"all"``, the dividend factors) of the actions between it and
        ``t``, so row ``t`` is the raw price and nothing after ``t`` is used (see
        :mod:`simbroker.actions._adjust`). ``adjust`` defaults to the bars' own
        (``attach_actions(adjust=...)``); without actions or a setting, the raw field.
        """
        if name not in FIELDS:
            raise KeyError(f"unknown bar field {name!r}; fields are {', '.join(FIELDS)}")
        raw: np.ndarray = getattr(self._bars, name)[: self.t + 1]
        acts = self._bars.actions
        how = adjust if adjust is not None else (acts.adjust if acts is not None else None)
        if acts is None or how is None or self.t < 0:
            return raw
        factors = self._factors.get(how)
        if factors is None:
            factors = adjustment_factors(self._bars, how)
            self._factors[how] = factors
        price, split = factors
        if name == "volume":
            out: np.ndarray = raw / split[: self.t + 1] * split[self.t]
        else:
            out = raw * (price[: self.t + 1] / price[self.t])
        out.setflags(write=False)
        return out

    @property
    def indicator_names(self) -> tuple[str, ...]:
        """Names of the strategy's declared indicators."""
        return tuple(self._indicators)

    def indicator(self, name: str) -> np.ndarray:
        """A declared indicator up to ``t``."""
        try:
            return self._indicators[name][: self.t + 1]
        except KeyError:
            known = ", ".join(self._indicators) or "none"
            raise KeyError(f"no indicator {name!r}; declared: {known}") from None

    def __getitem__(self, name: str) -> np.ndarray:
        """A bar field or an indicator by name, up to ``t``."""
        if name in FIELDS:
            arr: np.ndarray = getattr(self._bars, name)
            return arr[: self.t + 1]
        return self.indicator(name)

    def last(self, name: str) -> np.ndarray:
        """Row ``t`` of a field or indicator: one value per symbol (a read-only view)."""
        try:
            return self._arrays[name][self.t]  # type: ignore[no-any-return]
        except KeyError:
            self.indicator(name)  # raises the KeyError naming what exists
            raise

    def frame(self, name: str = "close") -> pd.DataFrame:
        """A field or indicator up to ``t`` as a wide DataFrame (UTC timestamps x symbols)."""
        data = self[name]
        wide: pd.DataFrame = pd.DataFrame(data, index=self._bars.index[: self.t + 1],
                                          columns=pd.Index(self.symbols, name="symbol"))
        return wide

    def __repr__(self) -> str:
        return f"History(t={self.t}, {len(self.symbols)} symbols)"


def _prepare_indicators(strategy: Any, bars: Bars) -> dict[str, np.ndarray]:
    declare = getattr(strategy, "indicators", None)
    if declare is None or not callable(declare):
        return {}
    acts = bars.actions
    if acts is not None and acts.adjust is not None and not getattr(strategy, "raw_prices",
                                                                     False):
        raw = declare(adjusted_bars(bars))
    else:
        raw = declare(bars)
    if not isinstance(raw, Mapping):
        raise TypeError(
            f"{type(strategy).__name__}.indicators(bars) must return a mapping of name to "
            f"array, got {type(raw).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    shape = (len(bars), bars.n_symbols)
    for name, value in raw.items():
        arr = np.asarray(value.to_numpy() if isinstance(value, (pd.DataFrame, pd.Series))
                         else value)
        if arr.ndim == 1 and bars.n_symbols == 1:
            arr = arr.reshape(-1, 1)
        if arr.shape != shape:
            raise ValueError(
                f"indicator {name!r} has shape {arr.shape}; expected {shape} "
                "(bars x symbols, aligned with the bars)"
            )
        if name in FIELDS:
            raise ValueError(f"indicator name {name!r} clashes with a bar field")
        # A read-only view, not a copy: at 1,000 x 2,520 a copy of the SMA example's three
        # indicators was 41 MiB (0.4x the panel) made beside the originals, whatever their
        # layout (pandas hands back column-major arrays; a row of one is a strided view).
        arr = arr.view()
        arr.setflags(write=False)
        out[str(name)] = arr
    return out


def _on_bar_of(strategy: Any) -> Callable[[Broker, History], None]:
    on_bar = getattr(strategy, "on_bar", None)
    if callable(on_bar):
        return on_bar  # type: ignore[no-any-return]
    if callable(strategy):
        return strategy  # type: ignore[no-any-return]
    raise TypeError(
        f"a strategy needs an on_bar(broker, history) method or must be callable; "
        f"got {type(strategy).__name__}"
    )


def backtest(
    strategy: StrategyLike,
    bars: Bars | pd.DataFrame | str | Path,
    *,
    cash: float = 100_000.0,
    slippage: float | SlippageModel | None = 5.0,
    fees: float | str | FeeModel | None = 1.0,
    allow_short: bool = True,
    positions: Mapping[str, float] | None = None,
    trade_log: str | Path | TradeLog | None = None,
    clip_to_bar: bool = False,
    session_tz: str = "UTC",
    progress: bool | None = None,
    borrow: BorrowModel | None = None,
    interest: InterestModel | None = None,
    max_volume_share: float | None = None,
    account: str | Account | None = None,
    venue: str | None = None,
) -> BacktestResult:
    """Run ``strategy`` over ``bars`` on a :class:`~simbroker.PaperBroker`.

    At each bar the broker first fills the orders that bar reaches (orders submitted at
    the previous close trade from this bar's open), then the strategy sees the bar and
    may submit orders, which first trade on the next bar. Nothing the strategy sees is
    later than the bar that just closed.

    Parameters
    ----------
    strategy
        An object with ``on_bar(broker, history)``, or a callable with that signature.
        An optional ``indicators(bars)`` returns ``{name: (T, N) array}`` computed once.
    bars
        :class:`~simbroker.Bars`, a long-form DataFrame or a CSV/Parquet path.
    cash, slippage, fees, allow_short, positions, trade_log, clip_to_bar, session_tz, account, venue
        Passed to :class:`~simbroker.PaperBroker`: slippage and fees take a number (bps)
        or a model.
    borrow, interest
        Passed to :class:`~simbroker.PaperBroker`: a
        :class:`~simbroker.financing.BorrowModel` (borrow fees on shorts, hard-to-borrow
        refusals) and an :class:`~simbroker.financing.InterestModel` (debit and credit
        interest), accrued at each trading day's end.
    progress
        A progress bar over the bars on ``stderr``: ``None`` (default) shows one on an
        interactive terminal outside CI, ``True`` always (needs ``tqdm``), ``False`` never.
    max_volume_share
        Partial fills by volume (:class:`~simbroker.PaperBroker`'s ``max_volume_share``):
        at most this share of a bar's volume per symbol; ``None`` (default) fills whole.

    Returns
    -------
    BacktestResult
        Fills, orders, equity, cash and positions over time, and statistics.

    Raises
    ------
    StrategyError
        The strategy raised (in ``indicators`` or ``on_bar``): it names the strategy, the
        bar and its time and the line of the strategy's code; the original exception is
        its ``__cause__`` and ``.result`` holds the run up to that bar (its ``config``
        says where it stopped). A trade log gets a ``strategy_error`` record.

    Examples
    --------
    >>> import simbroker
    >>> bars = simbroker.synthetic_bars(n_symbols=2, n_bars=50, seed=3)
    >>> def buy_once(broker, history):
    ...     if history.t == 0:
    ...         broker.submit_order("SYM000", "buy", 10)
    >>> result = simbroker.backtest(buy_once, bars)
    >>> len(result.fills)
    1
    """
    if not isinstance(bars, Bars):
        bars = load_bars(bars)
    on_bar = _on_bar_of(strategy)
    broker = PaperBroker(bars, cash=cash, slippage=slippage, fees=fees, allow_short=allow_short,
                         positions=positions, trade_log=trade_log, clip_to_bar=clip_to_bar,
                         session_tz=session_tz, borrow=borrow, interest=interest,
                         max_volume_share=max_volume_share, account=account, venue=venue)
    broker.fees.reset()  # a fee model passed to an earlier run prices this one alike
    bar_clock: _BarClock | None = None
    try:
        try:
            indicators = _prepare_indicators(strategy, bars)
        except Exception as exc:
            raise _strategy_error(strategy, exc, None, None) from exc
        history = History(bars, indicators)
        step = broker.step
        # PaperBroker.step's first branch (an empty book on a broker without account,
        # financing or corporate actions: the bar only moves the clock) done here without
        # the call, which was most of an idle bar's cost: the same tests, and only the bar
        # index is stored; the clock (a _BarClock following the broker) reads that bar's
        # close time when asked, so the loop needs neither the time nor a clock write.
        # Bar t closes here only if the broker's index is still the object this loop last
        # saw equal to t - 1 (``prev``): a strategy that steps the broker itself leaves
        # another object, and step() then closes the right bar. ``is`` is cheaper than
        # ``==`` and stricter; a false "no" only sends a bar the slow way.
        book, pending = broker._book, broker._groups.pending
        inline = _INLINE_IDLE and broker._plain
        if inline:  # the same time, now read from the bar index (nothing holds the old clock)
            bar_clock = _BarClock()
            bar_clock._ns = broker._clock._ns
            bar_clock.attach(broker, broker._close_at)
            broker._clock = bar_clock
        prev: object = broker._t if inline else object()
        failed: Exception | None = None
        t = -1
        for t in progress_iter(range(len(bars)), total=len(bars), desc="backtest",
                               progress=progress, unit="bar"):
            if broker._t is prev and not book.n and not pending:
                broker._t = prev = t
            else:
                step()  # a failure here is the broker's: its own error says why
                if inline and broker._t == t:  # in step again: the next bar may be idle
                    prev = broker._t
            history.t = t
            try:
                on_bar(broker, history)
            except Exception as exc:  # costs nothing until raised (3.11 zero-cost try)
                failed = exc
                break
        if failed is not None:
            when = pd.Timestamp(int(bars.ts_ns[t]), unit="ns", tz="UTC")
            error = _strategy_error(strategy, failed, t, when)
            log = broker.trade_log
            if log is not None and not log.closed:
                log.write("strategy_error", broker.now(), strategy=error.strategy, bar=t,
                          error=f"{type(failed).__name__}: {failed}", where=error.where)
            error.result = _partial(broker, error, failed)
            raise error from failed
    finally:
        if bar_clock is not None:
            bar_clock.detach()
        if trade_log is not None and not isinstance(trade_log, TradeLog):
            broker.close()
    return build_result(broker)


def _strategy_name(strategy: Any) -> str:
    name = getattr(strategy, "__qualname__", None)  # a function or a class
    return str(name) if name else type(strategy).__name__


def user_frame(exc: BaseException) -> str | None:
    """``file:line (function)`` of the innermost frame of ``exc`` in the user's own code:
    not simbroker's, not an installed library's, not the standard library's."""
    import sysconfig
    import traceback

    skip = tuple({str(Path(__file__).resolve().parent),
                  *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib",
                                                         "platlib"))})
    frames = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(frames):
        path = str(Path(fr.filename).resolve()) if not fr.filename.startswith("<") else ""
        if path and not path.startswith(skip):
            return f"{fr.filename}:{fr.lineno} ({fr.name})"
    return None


def _strategy_error(strategy: Any, exc: Exception, bar: int | None,
                    when: pd.Timestamp | None) -> StrategyError:
    return StrategyError(_strategy_name(strategy), bar=bar,
                         timestamp=None if when is None else when.isoformat(), error=exc,
                         where=user_frame(exc))


def _partial(broker: PaperBroker, error: StrategyError, exc: Exception
             ) -> BacktestResult | None:
    """The run up to the failing bar, marked with where and why it stopped."""
    try:
        result = build_result(broker)
    except Exception:  # a result is a courtesy here; the strategy's error is the news
        return None
    result.config["stopped"] = {"bar": error.bar, "timestamp": error.timestamp,
                                "error": f"{type(exc).__name__}: {exc}", "where": error.where}
    return result
