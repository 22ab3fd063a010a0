"""``simbroker.drift(a, b)``: match two runs order by order and attribute every difference."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from simbroker.bars import Bars
from simbroker.drift._attribute import (
    BUCKETS,
    REFERENCES,
    EquityRows,
    equity_effects,
    marks_from_bars,
    marks_from_fills,
    reference_prices,
)
from simbroker.drift._match import pair_orders
from simbroker.drift._result import Drift
from simbroker.drift._runs import Run, RunSource, load_run
from simbroker.errors import DataError

__all__ = ["drift"]

_EPS = 1e-9


def _bars_of(a: Run, b: Run, bars: Bars | None) -> Bars | None:
    if bars is not None:
        if not isinstance(bars, Bars):
            raise TypeError(f"bars must be simbroker Bars (simbroker.load_bars(...)), got "
                            f"{type(bars).__name__}")
        return bars
    have = [r.bars for r in (a, b) if r.bars is not None]
    if len(have) == 2 and not _same_bars(have[0], have[1]):
        raise DataError("the two saved results replayed different bars; pass bars= to "
                        "choose the ones to take reference prices and marks from")
    return have[0] if have else None


def _same_bars(x: Bars, y: Bars) -> bool:
    return (x.symbols == y.symbols and np.array_equal(x.ts_ns, y.ts_ns)
            and all(np.array_equal(x.field(f), y.field(f), equal_nan=True)
                    for f in ("open", "high", "low", "close")))


def _status_text(row: pd.Series | None, run: str) -> str:
    if row is None:
        return f"no such order in {run}"
    status = row["status"]
    reason = row["reason"]
    if status == "rejected":
        return f"refused in {run}: {reason}" if reason else f"refused in {run}"
    if status in ("expired", "canceled"):
        return f"{status} unfilled in {run}" + (f" ({reason})" if reason else "")
    return f"{status} and unfilled in {run}"


def drift(a: RunSource, b: RunSource, *, bars: Bars | None = None,
          time_window: str | pd.Timedelta | None = None, reference: str = "rule",
          names: tuple[str, str] | None = None) -> Drift:
    """Compare two runs fill by fill and attribute every difference to its cause.

    Parameters
    ----------
    a, b
        The runs: trade-log paths, saved result folders (``BacktestResult.save``, read
        through their ``tradelog.jsonl`` when present), :class:`~simbroker.TradeLog`
        objects, :class:`~simbroker.BacktestResult` objects, or lists of trade-log
        records. ``a`` is the reference (a backtest, say) and ``b`` the run judged
        against it (a rehearsal, paper, live): "missed" means filled in ``a`` only.
    bars
        The bars both runs traded. They give each fill its reference price (see
        ``reference``) and mark positions to market over time. Without them, a saved
        result's own bars are used; failing that, each fill's recorded ``ref_price``
        (when its trade log has one), and positions are marked at the latest fill price.
    time_window
        How far apart two orders of the same symbol and side may be submitted (or first
        filled) to be paired when neither a client order id nor a real-time runner key
        pairs them. Default: 3 bar intervals with bars, else 3 days.
    reference
        ``"rule"`` (the paper broker's fill rule on the fill's bar: the open for market
        orders, capped by a limit or stop), ``"open"`` or ``"close"`` of the fill's bar.
    names
        How to name the runs in the report (default: their paths, or ``"a"``/``"b"``).

    Returns
    -------
    Drift
        ``.fills`` (matched orders with the price difference split into reference-price
        drift, slippage and fee, and the time difference), ``.only_a`` / ``.only_b``
        (fills in one run only, with what happened in the other), ``.refusals`` (orders
        refused in one run only, with the reason), ``.partials`` (orders the runs filled
        in different quantities), ``.equity`` (both equity curves and their difference
        split by cause) and ``.summary``. All signs read "``b`` relative to ``a``", and
        ``drift(b, a)`` negates every signed figure.

    Examples
    --------
    >>> import simbroker
    >>> bars = simbroker.synthetic_bars(n_symbols=1, n_bars=30, seed=3)
    >>> def buy_once(broker, history):
    ...     if history.t == 5:
    ...         broker.submit_order("SYM000", "buy", 10)
    >>> a = simbroker.backtest(buy_once, bars, slippage=5)
    >>> b = simbroker.backtest(buy_once, bars, slippage=8)
    >>> d = simbroker.drift(a, b)
    >>> round(float(d.fills["slippage_bps"].iloc[0]), 6)
    3.0
    """
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {', '.join(REFERENCES)}; got "
                         f"{reference!r}")
    na, nb = names if names is not None else ("a", "b")
    run_a, run_b = load_run(a, na), load_run(b, nb)
    if names is None:
        na = run_a.name if run_a.name != "a" else "a"
        nb = run_b.name if run_b.name != "b" else "b"
        if na == nb:
            na, nb = f"a: {na}", f"b: {nb}"
    used = _bars_of(run_a, run_b, bars)
    if time_window is None:
        window = (pd.Timedelta(int(np.asarray(used.interval, "m8[ns]").astype(np.int64)) * 3)
                  if used is not None else pd.Timedelta(days=3))
    else:
        window = pd.Timedelta(time_window)
        if window < pd.Timedelta(0):
            raise ValueError(f"time_window must be >= 0, got {time_window!r}")
    oa, ob = run_a.orders.copy(), run_b.orders.copy()
    for frame in (oa, ob):
        if used is not None:
            ref, bar = reference_prices(frame, used, reference)
            frame["ref"], frame["bar"] = ref, pd.to_datetime(bar).tz_localize("UTC")
        else:
            frame["ref"] = frame["recorded_ref"]
            frame["bar"] = pd.NaT
    source = "bars" if used is not None else (
        "recorded" if np.isfinite(pd.concat([oa["ref"], ob["ref"]]).to_numpy(np.float64)).any()
        else "none")
    pairs = pair_orders(oa, ob, window)
    how = _matched_by(oa, ob, pairs)
    return _assemble(oa, ob, pairs, how, used, (na, nb),
                     (run_a.start_cash, run_b.start_cash), source, reference)


def _matched_by(oa: pd.DataFrame, ob: pd.DataFrame, pairs: list[tuple[int, int]]) -> list[str]:
    from simbroker.drift._match import _runner_key

    out = []
    for i, j in pairs:
        ca, cb = oa["client_order_id"].iat[i], ob["client_order_id"].iat[j]
        if isinstance(ca, str) and ca == cb:
            out.append("client_order_id")
        elif _runner_key(ca) is not None and _runner_key(ca) == _runner_key(cb):
            out.append("runner key")
        else:
            out.append("time window")
    return out


def _ns(value: Any) -> int:
    return int(pd.Timestamp(value).value)


def _assemble(oa: pd.DataFrame, ob: pd.DataFrame, pairs: list[tuple[int, int]],
              how: list[str], bars: Bars | None, names: tuple[str, str],
              start_cash: tuple[float, float], source: str, reference: str) -> Drift:
    paired_a = {i: j for i, j in pairs}
    paired_b = {j: i for i, j in pairs}
    run_rows = (EquityRows(), EquityRows())
    buckets = {name: EquityRows() for name in BUCKETS if name not in ("start", "timing")}
    for k, frame in enumerate((oa, ob)):
        for r in frame[frame["filled_qty"] > 0].itertuples(index=False):
            s = 1.0 if r.side == "buy" else -1.0
            run_rows[k].fill(_ns(r.first_fill), r.symbol, s * r.filled_qty, r.price, r.fee)

    fills, partials = [], []
    for (i, j), matched_by in zip(pairs, how, strict=True):
        ra, rb = oa.iloc[i], ob.iloc[j]
        fa, fb = float(ra["filled_qty"]), float(rb["filled_qty"])
        if fa > 0 and fb > 0:
            row = _pair_row(ra, rb, matched_by, buckets)
            fills.append(row)
        if fa > 0 and fb > 0 and (abs(fa - fb) > _EPS * max(fa, fb)
                                  or fa < ra["qty"] * (1 - _EPS)
                                  or fb < rb["qty"] * (1 - _EPS)):
            partials.append(_partial_row(ra, rb, buckets))

    only = []
    for k, (mine, other, paired, other_name) in enumerate(
            ((oa, ob, paired_a, names[1]), (ob, oa, paired_b, names[0]))):
        rows = []
        for i in np.flatnonzero(mine["filled_qty"].to_numpy() > 0).tolist():
            jj = paired.get(i)
            o_row = other.iloc[jj] if jj is not None else None
            if o_row is not None and o_row["filled_qty"] > 0:
                continue
            r = mine.iloc[i]
            s = 1.0 if r["side"] == "buy" else -1.0
            bucket = buckets["missed" if k == 0 else "extra"]
            bucket.fill(_ns(r["first_fill"]), r["symbol"], s * r["filled_qty"], r["price"],
                        r["fee"], sign=-1.0 if k == 0 else 1.0)
            rows.append({
                "time": r["first_fill"], "symbol": r["symbol"], "side": r["side"],
                "qty": r["filled_qty"], "price": r["price"], "fee": r["fee"],
                "order_type": r["order_type"], "order_id": r["order_id"],
                "client_order_id": r["client_order_id"],
                "other_order_id": None if o_row is None else o_row["order_id"],
                "other_status": None if o_row is None else o_row["status"],
                "reason": _status_text(o_row, other_name)})
        only.append(_frame(rows, _ONLY_COLUMNS, "time"))

    refusals = []
    for k, (mine, other, paired) in enumerate(((oa, ob, paired_a), (ob, oa, paired_b))):
        for i in np.flatnonzero((mine["status"] == "rejected").to_numpy()).tolist():
            jj = paired.get(i)
            o_row = other.iloc[jj] if jj is not None else None
            if o_row is not None and o_row["status"] == "rejected":
                continue  # refused by both: the same decision, no drift
            r = mine.iloc[i]
            refusals.append({
                "refused_in": "a" if k == 0 else "b", "time": r["submitted"],
                "symbol": r["symbol"], "side": r["side"], "qty": r["qty"],
                "order_type": r["order_type"], "reason": r["reason"], "rule": r["rule"],
                "client_order_id": r["client_order_id"],
                "other_status": "not sent" if o_row is None else o_row["status"],
                "other_filled_qty": 0.0 if o_row is None else o_row["filled_qty"]})

    if bars is not None:
        traded = set(oa.loc[oa["filled_qty"] > 0, "symbol"]) | set(
            ob.loc[ob["filled_qty"] > 0, "symbol"])
        missing = sorted(str(s) for s in traded if s not in bars)
        if missing:
            raise DataError(f"the bars hold no {', '.join(missing[:10])}"
                            f"{' ...' if len(missing) > 10 else ''}, traded in the runs: "
                            f"pass the bars both runs traded (or none)")
        grid, marks = marks_from_bars(bars)
    else:
        both = pd.concat([oa, ob])
        both = both[both["filled_qty"] > 0]
        grid, marks = marks_from_fills(
            np.asarray(both["first_fill"].astype("int64"), np.int64),
            both["symbol"].to_numpy(object), both["price"].to_numpy(np.float64))
    cash = tuple(0.0 if math.isnan(c) else float(c) for c in start_cash)
    equity = equity_effects(grid, marks, run_rows, (cash[0], cash[1]), buckets)
    fills_frame = _frame(fills, _FILL_COLUMNS, "time_a", sort_sym=True)
    if len(fills_frame):
        fills_frame["time_diff"] = pd.to_timedelta(fills_frame["time_diff"]).dt.as_unit("ns")
    return Drift(
        fills=fills_frame, only_a=only[0], only_b=only[1],
        refusals=_frame(refusals, _REFUSAL_COLUMNS, "time"),
        partials=_frame(partials, _PARTIAL_COLUMNS, "time_a", sort_sym=True),
        equity=equity, names=names, reference=source, reference_rule=reference)


_FILL_COLUMNS = ["symbol", "side", "order_type", "qty", "notional", "time_a", "time_b", "time_diff",
                 "price_a", "price_b", "ref_a", "ref_b", "bar_a", "bar_b", "slip_bps_a",
                 "slip_bps_b", "price_diff_bps", "ref_drift_bps", "slippage_bps", "fee_bps",
                 "total_bps", "fee_a", "fee_b", "price_pnl", "ref_pnl", "slippage_pnl",
                 "fee_pnl", "order_id_a", "order_id_b", "client_order_id_a",
                 "client_order_id_b", "matched_by"]
_ONLY_COLUMNS = ["time", "symbol", "side", "qty", "price", "fee", "order_type", "order_id",
                 "client_order_id", "other_order_id", "other_status", "reason"]
_REFUSAL_COLUMNS = ["refused_in", "time", "symbol", "side", "qty", "order_type", "reason",
                    "rule", "client_order_id", "other_status", "other_filled_qty"]
_PARTIAL_COLUMNS = ["symbol", "side", "time_a", "time_b", "ordered_a", "ordered_b",
                    "filled_a", "filled_b", "qty_diff", "n_fills_a", "n_fills_b",
                    "status_a", "status_b", "order_id_a", "order_id_b"]


def _frame(rows: list[dict[str, Any]], columns: list[str], time_col: str,
           sort_sym: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    if not len(frame):
        return frame  # type: ignore[no-any-return]
    if sort_sym:  # the same order whichever run is a: earliest of the two times first
        t_a = pd.to_datetime(frame[time_col], utc=True).dt.as_unit("ns").astype("int64")
        t_b = pd.to_datetime(frame[time_col[:-1] + "b"], utc=True).dt.as_unit("ns").astype(
            "int64")
        key = pd.DataFrame({"t0": np.minimum(t_a, t_b), "t1": np.maximum(t_a, t_b),
                            "symbol": frame["symbol"], "side": frame["side"]})
        order = key.sort_values(["t0", "t1", "symbol", "side"], kind="stable").index
    else:
        order = frame.sort_values([time_col, "symbol"], kind="stable").index
    out: pd.DataFrame = frame.loc[order].reset_index(drop=True)
    return out


def _pair_row(ra: pd.Series, rb: pd.Series, matched_by: str,
              buckets: dict[str, EquityRows]) -> dict[str, Any]:
    s = 1.0 if ra["side"] == "buy" else -1.0
    fa, fb = float(ra["filled_qty"]), float(rb["filled_qty"])
    q = min(fa, fb)
    pa, pb = float(ra["price"]), float(rb["price"])
    ref_a, ref_b = float(ra["ref"]), float(rb["ref"])
    fee_a, fee_b = float(ra["fee"]) * (q / fa), float(rb["fee"]) * (q / fb)
    refs = math.isfinite(ref_a) and math.isfinite(ref_b)
    base = q * ((ref_a + ref_b) / 2 if refs else (pa + pb) / 2)
    price_pnl = -s * q * (pb - pa)
    # Slippage is the difference of the two slippage rates, each from its own reference,
    # applied to the mean reference; the reference-price drift is the rest of the price
    # difference. So the same bps of slippage from another bar's price is all reference.
    slip_pnl = (-s * q * ((ref_a + ref_b) / 2) * ((pb - ref_b) / ref_b - (pa - ref_a) / ref_a)
                if refs and ref_a and ref_b else math.nan)
    ref_pnl = price_pnl - slip_pnl if refs else math.nan
    fee_pnl = -(fee_b - fee_a)
    when = max(_ns(ra["first_fill"]), _ns(rb["first_fill"]))
    if refs:
        buckets["reference"].amount(when, ref_pnl)
        buckets["slippage"].amount(when, slip_pnl)
    else:
        buckets["price"].amount(when, price_pnl)
    buckets["fees"].amount(when, fee_pnl)

    def bps(pnl: float) -> float:
        return -pnl / base * 1e4 + 0.0 if base else math.nan

    def own_slip(p: float, r: float) -> float:
        return s * (p - r) / r * 1e4 if math.isfinite(r) and r else math.nan

    return {
        "symbol": ra["symbol"], "side": ra["side"], "order_type": ra["order_type"], "qty": q,
        "notional": base,
        "time_a": ra["first_fill"], "time_b": rb["first_fill"],
        "time_diff": rb["first_fill"] - ra["first_fill"], "price_a": pa, "price_b": pb,
        "ref_a": ref_a, "ref_b": ref_b, "bar_a": ra["bar"], "bar_b": rb["bar"],
        "slip_bps_a": own_slip(pa, ref_a), "slip_bps_b": own_slip(pb, ref_b),
        "price_diff_bps": bps(price_pnl), "ref_drift_bps": bps(ref_pnl),
        "slippage_bps": bps(slip_pnl), "fee_bps": bps(fee_pnl),
        "total_bps": bps(price_pnl) + bps(fee_pnl), "fee_a": fee_a, "fee_b": fee_b,
        "price_pnl": price_pnl, "ref_pnl": ref_pnl, "slippage_pnl": slip_pnl,
        "fee_pnl": fee_pnl, "order_id_a": ra["order_id"], "order_id_b": rb["order_id"],
        "client_order_id_a": ra["client_order_id"], "client_order_id_b": rb["client_order_id"],
        "matched_by": matched_by,
    }


def _partial_row(ra: pd.Series, rb: pd.Series, buckets: dict[str, EquityRows]
                 ) -> dict[str, Any]:
    s = 1.0 if ra["side"] == "buy" else -1.0
    fa, fb = float(ra["filled_qty"]), float(rb["filled_qty"])
    if fa != fb:
        big, sign, f = (ra, -1.0, fa) if fa > fb else (rb, 1.0, fb)
        extra = abs(fa - fb)
        buckets["partial"].fill(_ns(big["first_fill"]), big["symbol"], s * extra,
                                float(big["price"]), float(big["fee"]) * (extra / f), sign)
    return {
        "symbol": ra["symbol"], "side": ra["side"], "time_a": ra["first_fill"],
        "time_b": rb["first_fill"], "ordered_a": ra["qty"], "ordered_b": rb["qty"],
        "filled_a": fa, "filled_b": fb, "qty_diff": fb - fa, "n_fills_a": ra["n_fills"],
        "n_fills_b": rb["n_fills"], "status_a": ra["status"], "status_b": rb["status"],
        "order_id_a": ra["order_id"], "order_id_b": rb["order_id"],
    }
