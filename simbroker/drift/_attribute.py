"""What each difference between two runs cost: per matched order, and over time.

Conventions (run ``b`` against run ``a``; swapping the runs negates every signed figure):

- ``s`` is +1 for a buy and -1 for a sell; ``q`` the quantity both runs filled; ``p_x``
  each run's volume-weighted fill price and ``ref_x`` its reference price (the price the
  fill rule started from before slippage: see :func:`reference_prices`).
- Equity effects (``*_pnl``) are money added to ``b``'s equity relative to ``a``'s:
  ``price_pnl = -s q (p_b - p_a) = ref_pnl + slippage_pnl`` with
  ``slippage_pnl = -s q ref_mid (slip_b - slip_a)``, ``slip_x = (p_x - ref_x) / ref_x``
  (each run's slippage rate from its own reference, ``ref_mid = (ref_a + ref_b) / 2``),
  and ``ref_pnl = price_pnl - slippage_pnl`` (about ``-s q (ref_b - ref_a)``: the same
  slippage rate from another bar's price is reference drift, not slippage);
  ``fee_pnl = -(fee_b q / filled_b - fee_a q / filled_a)`` (fees of the matched quantity).
- Basis points (``*_bps``) are costs: positive when ``b`` executed worse, in bps of
  ``q * (ref_a + ref_b) / 2`` (of the mean fill price when the references are unknown):
  ``x_bps = -x_pnl / base * 1e4``.
- Over time (:func:`equity_effects`), each run's equity is its start cash plus its fills
  marked to market; the difference ``b - a`` is split exactly into ``start`` (cash),
  ``reference``, ``slippage``, ``price`` (price differences without known references),
  ``fees`` (these four booked when the later of the two fills happened), ``missed`` (fills
  in ``a`` only), ``extra`` (fills in ``b`` only), ``partial`` (the quantity one run filled
  beyond the other), the last three marked to market from their fill on, and ``timing``:
  the rest, which is the market move on a matched fill while only one run held it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simbroker.bars import Bars

__all__ = ["BUCKETS", "EquityRows", "equity_effects", "reference_prices"]

BUCKETS = ("start", "reference", "slippage", "price", "fees", "timing", "partial", "missed",
           "extra")

REFERENCES = ("rule", "open", "close")


def reference_prices(orders: pd.DataFrame, bars: Bars, reference: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The reference price of each order's first fill, and the open time of its bar.

    The bar is the one whose ``[open, close)`` holds the first fill's time. ``reference``:

    - ``"rule"`` (default): the paper broker's rule for the order type on that bar:
      market at the open; a buy limit at ``min(open, limit)``, a sell limit at
      ``max(open, limit)``; a buy stop at ``max(open, stop)``, a sell stop at
      ``min(open, stop)``; a stop-limit at the stop's price, capped at the limit;
    - ``"open"`` / ``"close"``: that bar's open or close whatever the order type.

    NaN (and NaT) where the fill lies outside every bar or the symbol has no bar there.
    """
    n = len(orders)
    ref = np.full(n, np.nan)
    bar_time = np.full(n, np.datetime64("NaT"), "datetime64[ns]")
    if n == 0:
        return ref, bar_time
    t = np.asarray(orders["first_fill"].astype("int64"))
    filled = orders["first_fill"].notna().to_numpy()
    idx = np.searchsorted(bars.ts_ns, t, side="right") - 1
    inside = filled & (idx >= 0) & (t < bars.close_ns[np.clip(idx, 0, None)])
    known = np.array([s in bars for s in orders["symbol"]], np.bool_)
    ok = inside & known
    if not ok.any():
        return ref, bar_time
    rows = idx[ok]
    cols = np.array([bars.symbol_index(s) for s in orders["symbol"][ok]], np.int64)
    o = bars.open[rows, cols]
    if reference == "open":
        r = o
    elif reference == "close":
        r = bars.close[rows, cols]
    else:
        buy = (orders["side"][ok] == "buy").to_numpy()
        kind = orders["order_type"][ok].to_numpy(object)
        lim = orders["limit_price"][ok].to_numpy(np.float64)
        stp = orders["stop_price"][ok].to_numpy(np.float64)
        r = o.copy()
        is_lim, is_stp, is_sl = kind == "limit", kind == "stop", kind == "stop_limit"
        r = np.where(is_lim, np.where(buy, np.fmin(o, lim), np.fmax(o, lim)), r)
        r = np.where(is_stp, np.where(buy, np.fmax(o, stp), np.fmin(o, stp)), r)
        sl = np.where(buy, np.fmin(np.fmax(o, stp), lim), np.fmax(np.fmin(o, stp), lim))
        r = np.where(is_sl, sl, r)
    ref[ok] = r
    bar_time[ok] = bars.ts_ns[rows].view("datetime64[ns]")
    return ref, bar_time


class EquityRows:
    """Contributions to an equity curve: position changes (marked) and cash amounts.

    A row adds ``qty * mark(T, symbol) - cash`` to every time ``T`` at or after its time.
    """

    def __init__(self) -> None:
        self.time: list[int] = []
        self.sym: list[str] = []
        self.qty: list[float] = []
        self.cash: list[float] = []

    def fill(self, time: int, sym: str, signed_qty: float, price: float, fee: float,
             sign: float = 1.0) -> None:
        """A fill: ``signed_qty`` shares at ``price`` with ``fee``, times ``sign``."""
        self.time.append(time)
        self.sym.append(sym)
        self.qty.append(sign * signed_qty)
        self.cash.append(sign * (signed_qty * price + fee))

    def amount(self, time: int, money: float) -> None:
        """``money`` added to equity from ``time`` on."""
        if money == 0.0 or math.isnan(money):
            return
        self.time.append(time)
        self.sym.append("")
        self.qty.append(0.0)
        self.cash.append(-money)


def _cell_sums(cells: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Exactly rounded sums of ``values`` by cell, whatever their order."""
    out = np.zeros(n)
    if not len(cells):
        return out
    order = np.argsort(cells, kind="stable")
    c, v = cells[order], values[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    ends = np.r_[starts[1:], len(c)]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        out[c[s]] = math.fsum(v[s:e].tolist())
    return out


def _curve(rows: EquityRows, grid: np.ndarray, marks: pd.DataFrame) -> np.ndarray:
    """``sum over rows with time <= T of qty * mark(T, symbol) - cash``, for each ``T``."""
    g = len(grid)
    if not rows.time:
        return np.zeros(g)
    t = np.asarray(rows.time, np.int64)
    cell = np.clip(np.searchsorted(grid, t, side="right") - 1, 0, max(g - 1, 0))
    qty, cash = np.asarray(rows.qty), np.asarray(rows.cash)
    total = -np.cumsum(_cell_sums(cell, cash, g))
    syms = np.asarray(rows.sym, object)
    for sym in sorted(set(rows.sym) - {""}):
        mine = syms == sym
        held = np.cumsum(_cell_sums(cell[mine], qty[mine], g))
        m = marks[sym].to_numpy(np.float64) if sym in marks else np.full(g, np.nan)
        with np.errstate(invalid="ignore"):
            total = total + np.where(held == 0.0, 0.0, held * m)
    return total


def marks_from_bars(bars: Bars) -> tuple[np.ndarray, pd.DataFrame]:
    """The time grid (bar open times, ns) and each symbol's last close at each bar."""
    close = pd.DataFrame(np.asarray(bars.close), columns=list(bars.symbols)).ffill()
    return np.asarray(bars.ts_ns, np.int64), close


def marks_from_fills(times: np.ndarray, syms: np.ndarray, prices: np.ndarray
                     ) -> tuple[np.ndarray, pd.DataFrame]:
    """Without bars: the grid of fill times, each symbol marked at its latest fill price
    (the mean over both runs of the fills at that latest time)."""
    grid = np.unique(times)
    cols: dict[str, np.ndarray] = {}
    for sym in sorted(set(syms.tolist())):
        mine = syms == sym
        cell = np.searchsorted(grid, times[mine])
        px = prices[mine]
        mark = np.full(len(grid), np.nan)
        for c in np.unique(cell).tolist():
            at = px[cell == c]
            mark[c] = math.fsum(at.tolist()) / len(at)
        cols[sym] = pd.Series(mark).ffill().to_numpy()
    return grid, pd.DataFrame(cols, index=range(len(grid)))


def equity_effects(grid: np.ndarray, marks: pd.DataFrame, runs: tuple[EquityRows, EquityRows],
                   start: tuple[float, float], buckets: dict[str, EquityRows]
                   ) -> pd.DataFrame:
    """Both runs' equity on ``grid`` and their difference split into :data:`BUCKETS`."""
    eq_a = start[0] + _curve(runs[0], grid, marks)
    eq_b = start[1] + _curve(runs[1], grid, marks)
    diff = eq_b - eq_a
    out = {"equity_a": eq_a, "equity_b": eq_b, "difference": diff}
    parts = {name: _curve(buckets[name], grid, marks) for name in BUCKETS
             if name not in ("start", "timing")}
    parts["start"] = np.full(len(grid), start[1] - start[0])
    known = (((((parts["start"] + parts["reference"]) + parts["slippage"]) + parts["price"])
              + parts["fees"]) + parts["partial"]) + (parts["missed"] + parts["extra"])
    parts["timing"] = diff - known
    out.update({name: parts[name] for name in BUCKETS})
    index = pd.DatetimeIndex(grid.view("datetime64[ns]"), name="time").tz_localize("UTC")
    frame: pd.DataFrame = pd.DataFrame(out, index=index)
    return frame
