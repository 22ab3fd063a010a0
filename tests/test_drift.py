"""simbroker.drift: two runs compared fill by fill, each difference put down to its cause."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import cli
from simbroker.drift import BUCKETS, drift
from simbroker.tradelog import read_trade_log

T0 = datetime(2024, 1, 2, tzinfo=timezone.utc)
DAY = timedelta(days=1)
BARS = simbroker.synthetic_bars(n_symbols=2, n_bars=40, seed=11, start="2024-01-02")
SYMS = list(BARS.symbols)


def _run(strategy: Any, tmp_path: Path, name: str, **kw: Any) -> Path:
    path = tmp_path / f"{name}.jsonl"
    simbroker.backtest(strategy, BARS, trade_log=path, **kw)
    return path


def _trader(times: dict[int, tuple[str, str, float]], **order: Any) -> Any:
    def on_bar(broker: Any, history: Any) -> None:
        if history.t in times:
            sym, side, qty = times[history.t]
            with contextlib.suppress(simbroker.OrderRejected):  # logged; the run goes on
                broker.submit_order(sym, side, qty, **order)
    return on_bar


ORDERS = {3: (SYMS[0], "buy", 10.0), 8: (SYMS[1], "buy", 5.0), 15: (SYMS[0], "sell", 10.0),
          20: (SYMS[1], "sell", 5.0)}


def _rewrite(path: Path, out: Path, change: Any) -> Path:
    """Write ``path``'s records, changed by ``change(rec) -> rec | None``, to ``out``."""
    recs = []
    for rec in read_trade_log(path):
        rec = change(dict(rec))
        if rec is not None:
            recs.append(rec)
    log = simbroker.TradeLog(out)
    for rec in recs:
        fields = {k: v for k, v in rec.items() if k not in ("seq", "prev", "ts", "event")}
        log.write(rec["event"], rec["ts"], **fields)
    log.close()
    return out


# --------------------------------------------------------------------------- named cases
def test_identical_logs_drift_exactly_zero(tmp_path: Path) -> None:
    a = _run(_trader(ORDERS), tmp_path, "a")
    d = drift(a, a, bars=BARS)
    assert len(d.fills) == 4
    assert d.only_a.empty
    assert d.only_b.empty
    assert d.refusals.empty
    assert d.partials.empty
    for col in ("price_diff_bps", "ref_drift_bps", "slippage_bps", "fee_bps", "price_pnl",
                "fee_pnl"):
        assert (d.fills[col] == 0.0).all(), col
    assert (d.fills["time_diff"] == pd.Timedelta(0)).all()
    assert (d.equity[["difference", *BUCKETS]].to_numpy() == 0.0).all()
    assert d.summary["equity_diff"] == 0.0
    assert d.breaches(max_drift_bps=0, max_missed=0) == []


def test_planted_slippage_of_3_bps_on_one_fill(tmp_path: Path) -> None:
    a = _run(_trader(ORDERS), tmp_path, "a")
    target = "O2-1"

    def slip(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["event"] == "filled" and rec["fill_id"] == target:
            s = 1 if rec["side"] == "buy" else -1
            row = int(np.searchsorted(BARS.index, pd.Timestamp(rec["timestamp"])))
            col = SYMS.index(rec["symbol"])
            ref = float(BARS.open[row, col])
            rec["price"] = rec["price"] + s * ref * 3e-4
            rec["notional"] = rec["qty"] * rec["price"]
        return rec

    b = _rewrite(a, tmp_path / "b.jsonl", slip)
    d = drift(a, b, bars=BARS)
    assert len(d.fills) == 4
    hit = d.fills[d.fills["order_id_a"] == "O2"].iloc[0]
    assert hit["slippage_bps"] == pytest.approx(3.0, abs=1e-9)
    assert hit["ref_drift_bps"] == pytest.approx(0.0, abs=1e-9)
    assert hit["slip_bps_b"] - hit["slip_bps_a"] == pytest.approx(3.0, abs=1e-9)
    others = d.fills[d.fills["order_id_a"] != "O2"]
    assert (others["price_diff_bps"] == 0.0).all()
    # The equity split: slippage of that fill, exactly the cash it cost, nothing else.
    assert d.summary["pnl_slippage"] == pytest.approx(-hit["qty"] * hit["ref_a"] * 3e-4)
    assert d.summary["pnl_reference"] == pytest.approx(0.0, abs=1e-9)
    assert d.summary["pnl_missed"] == 0.0


def test_dropped_fill_is_reported_missed(tmp_path: Path) -> None:
    a = _run(_trader(ORDERS), tmp_path, "a")
    b = _rewrite(a, tmp_path / "b.jsonl",
                 lambda r: None if r["event"] == "filled" and r["fill_id"] == "O3-1" else r)
    d = drift(a, b, bars=BARS)
    assert len(d.fills) == 3
    assert d.only_b.empty
    assert len(d.only_a) == 1
    miss = d.only_a.iloc[0]
    assert (miss["order_id"], miss["symbol"], miss["side"]) == ("O3", SYMS[0], "sell")
    assert miss["reason"].startswith("open and unfilled in ")
    assert "b.jsonl" in miss["reason"]
    assert d.summary["missed"] == 1
    assert d.summary["extra"] == 0
    # The missed sale is marked to market: its cost is the other run's position held on.
    assert d.equity["missed"].iloc[-1] != 0.0
    back = drift(b, a, bars=BARS)
    assert len(back.only_b) == 1
    assert back.only_a.empty
    assert back.summary["pnl_extra"] == -d.summary["pnl_missed"]


def test_refusal_in_one_run_only_is_reported_with_its_reason(tmp_path: Path) -> None:
    orders = {3: (SYMS[0], "buy", 10.0), 9: (SYMS[0], "sell", 30.0)}
    a = _run(_trader(orders), tmp_path, "a")
    b = _run(_trader(orders), tmp_path, "b", allow_short=False)
    d = drift(a, b, bars=BARS)
    assert len(d.refusals) == 1
    ref = d.refusals.iloc[0]
    assert ref["refused_in"] == "b"
    assert ref["symbol"] == SYMS[0]
    assert ref["qty"] == 30.0
    assert "short" in ref["reason"].lower()
    assert ref["rule"] == "allow_short"
    assert ref["other_status"] == "filled"
    assert len(d.only_a) == 1
    assert d.only_a.iloc[0]["reason"].startswith("refused in ")
    assert d.summary["refused_in_b"] == 1
    assert d.summary["refused_in_a"] == 0


def test_price_from_a_different_bar_is_reference_drift(tmp_path: Path) -> None:
    a = _run(_trader(ORDERS), tmp_path, "a")
    moved = "O1-1"

    def later_bar(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["event"] == "filled" and rec["fill_id"] == moved:
            row = int(np.searchsorted(BARS.index, pd.Timestamp(rec["timestamp"])))
            col = SYMS.index(rec["symbol"])
            old_ref, new_ref = float(BARS.open[row, col]), float(BARS.open[row + 1, col])
            rec["timestamp"] = BARS.index[row + 1].to_pydatetime()
            rec["price"] = rec["price"] / old_ref * new_ref  # the same 5 bps, later bar
            rec["notional"] = rec["qty"] * rec["price"]
            rec["fee"] = rec["notional"] * 1e-4
        return rec

    b = _rewrite(a, tmp_path / "b.jsonl", later_bar)
    d = drift(a, b, bars=BARS)
    hit = d.fills[d.fills["order_id_a"] == "O1"].iloc[0]
    assert hit["bar_b"] - hit["bar_a"] == pd.Timedelta(days=1)
    assert hit["time_diff"] == pd.Timedelta(days=1)
    assert hit["slippage_bps"] == pytest.approx(0.0, abs=1e-9)
    assert hit["ref_drift_bps"] == pytest.approx(hit["price_diff_bps"], abs=1e-9)
    assert abs(hit["ref_drift_bps"]) > 1
    # All of the price difference (a buy: b paid more) is booked as reference drift.
    expect = -hit["qty"] * (hit["price_b"] - hit["price_a"])
    assert d.summary["pnl_reference"] == pytest.approx(expect, rel=1e-9)
    assert d.summary["pnl_slippage"] == pytest.approx(0.0, abs=1e-9)


def test_client_ids_and_runner_keys_pair_orders(tmp_path: Path) -> None:
    def rec(event: str, when: datetime, **kw: Any) -> dict[str, Any]:
        return {"event": event, "ts": when, **kw}

    def log(run_id: str, price: float) -> list[dict[str, Any]]:
        cid = f"{run_id}-20240103T000000Z-1"
        return [rec("start", T0, cash=1000.0),
                rec("submitted", T0 + DAY, order_id="X1", client_order_id=cid,
                    symbol="A", side="buy", qty=2.0, order_type="market"),
                rec("filled", T0 + DAY, fill_id="f1", order_id="X1", client_order_id=cid,
                    symbol="A", side="buy", qty=1.0, price=price, fee=0.1,
                    timestamp=T0 + DAY, notional=price),
                rec("filled", T0 + 2 * DAY, fill_id="f2", order_id="X1",
                    client_order_id=cid, symbol="A", side="buy", qty=1.0, price=price + 2,
                    fee=0.1, timestamp=T0 + 2 * DAY, notional=price + 2)]

    d = drift(log("run1", 100.0), log("run2", 101.0), time_window="0s")
    assert len(d.fills) == 1
    assert d.fills["matched_by"].iloc[0] == "runner key"
    row = d.fills.iloc[0]
    assert row["qty"] == 2.0
    assert row["price_a"] == 101.0
    assert row["price_b"] == 102.0
    assert d.reference == "none"
    assert math.isnan(row["slippage_bps"])
    assert row["price_diff_bps"] == pytest.approx(1 / 101.5 * 1e4)
    assert d.summary["pnl_price"] == pytest.approx(-2.0)


def test_partial_fill_is_reported(tmp_path: Path) -> None:
    a = _run(_trader(ORDERS), tmp_path, "a")

    def half(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["event"] == "filled" and rec["fill_id"] == "O2-1":
            rec["qty"] = rec["qty"] / 2
            rec["notional"] = rec["qty"] * rec["price"]
            rec["fee"] = rec["fee"] / 2
        return rec

    d = drift(a, _rewrite(a, tmp_path / "b.jsonl", half), bars=BARS)
    assert len(d.partials) == 1
    p = d.partials.iloc[0]
    assert p["filled_a"] == 5.0
    assert p["filled_b"] == 2.5
    assert p["qty_diff"] == -2.5
    assert d.fills[d.fills["order_id_a"] == "O2"]["qty"].iloc[0] == 2.5
    assert d.summary["pnl_partial"] != 0.0


def test_saved_result_folder_and_result_object(tmp_path: Path) -> None:
    res = simbroker.backtest(_trader(ORDERS), BARS, trade_log=tmp_path / "x.jsonl")
    res.save(tmp_path / "saved")
    d = drift(tmp_path / "saved", res)
    assert d.reference == "bars"
    assert len(d.fills) == 4
    assert d.summary["equity_diff"] == 0.0
    with pytest.raises(TypeError, match="give a path"):
        drift(42, res)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties
@st.composite
def log_pairs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two logs of the same decisions, the second with prices moved, fills dropped or
    split, orders refused, fills shifted in time."""
    n = draw(st.integers(0, 8))
    a: list[dict[str, Any]] = [{"event": "start", "ts": T0, "cash": 10_000.0}]
    b: list[dict[str, Any]] = [{"event": "start", "ts": T0,
                                "cash": draw(st.sampled_from([10_000.0, 9_000.0]))}]
    prices = st.floats(50, 150, allow_nan=False)
    for k in range(n):
        sym = draw(st.sampled_from(SYMS))
        side = draw(st.sampled_from(["buy", "sell"]))
        qty = float(draw(st.integers(1, 20)))
        bar = draw(st.integers(0, 30))
        cid = draw(st.sampled_from([None, f"c{k}"]))
        sub = {"order_id": f"O{k}", "client_order_id": cid, "symbol": sym, "side": side,
               "qty": qty, "order_type": "market"}
        for log, which in ((a, "a"), (b, "b")):
            fate = draw(st.sampled_from(["fill", "fill", "refuse", "none", "split"]))
            if fate == "refuse":
                log.append({"event": "rejected", "ts": T0 + bar * DAY, **sub,
                            "order_id": None, "reason": f"no ({which})", "rule": "r"})
                continue
            log.append({"event": "submitted", "ts": T0 + bar * DAY, **sub})
            if fate == "none":
                continue
            shift = draw(st.integers(0, 2))
            when = BARS.index[bar + 1 + shift].to_pydatetime()
            parts = [qty] if fate == "fill" else [qty / 2, qty / 2]
            for m, q in enumerate(parts):
                px = draw(prices)
                log.append({"event": "filled", "ts": when, "fill_id": f"O{k}-{m}",
                            "order_id": f"O{k}", "client_order_id": cid, "symbol": sym,
                            "side": side, "qty": q, "price": px, "fee": draw(
                                st.floats(0, 2)), "notional": q * px, "timestamp": when})
    return a, b


_SIGNED_FILL = ["time_diff", "price_diff_bps", "ref_drift_bps", "slippage_bps", "fee_bps",
                "total_bps", "price_pnl", "ref_pnl", "slippage_pnl", "fee_pnl"]
_SWAPPED = [("time_a", "time_b"), ("price_a", "price_b"), ("ref_a", "ref_b"),
            ("fee_a", "fee_b"), ("order_id_a", "order_id_b"), ("bar_a", "bar_b")]
_SIGNED_SUMMARY = ["price_diff_bps", "ref_drift_bps", "slippage_bps", "fee_bps",
                   "total_bps", "time_diff", "equity_diff",
                   *(f"pnl_{b}" for b in BUCKETS if b not in ("missed", "extra"))]


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or x == y
    return bool(x == y) or (pd.isna(x) and pd.isna(y))


@settings(max_examples=30, deadline=None)
@given(log_pairs(), st.booleans())
def test_identical_logs_are_exactly_zero(logs: Any, with_bars: bool) -> None:
    a, _ = logs
    d = drift(a, a, bars=BARS if with_bars else None)
    assert d.only_a.empty
    assert d.only_b.empty
    assert d.refusals.empty
    for col in _SIGNED_FILL:
        vals = d.fills[col]
        zero = pd.Timedelta(0) if col == "time_diff" else 0.0
        assert ((vals == zero) | vals.isna()).all(), col
    assert (d.equity[["difference", *BUCKETS]].fillna(0).to_numpy() == 0.0).all()


@settings(max_examples=40, deadline=None)
@given(log_pairs(), st.booleans())
def test_drift_is_antisymmetric(logs: Any, with_bars: bool) -> None:
    a, b = logs
    bars = BARS if with_bars else None
    ab, ba = drift(a, b, bars=bars), drift(b, a, bars=bars)
    assert len(ab.fills) == len(ba.fills)
    for col in _SIGNED_FILL:
        for x, y in zip(ab.fills[col], ba.fills[col], strict=True):
            assert _same(x, -y), (col, x, y)
    for ca, cb in _SWAPPED:
        assert all(_same(x, y) for x, y in zip(ab.fills[ca], ba.fills[cb], strict=True))
    for key in ("qty", "notional", "symbol", "side"):
        assert all(_same(x, y) for x, y in zip(ab.fills[key], ba.fills[key], strict=True))
    assert ab.only_a[["order_id", "symbol", "qty"]].equals(
        ba.only_b[["order_id", "symbol", "qty"]])
    assert ab.only_b[["order_id", "symbol", "qty"]].equals(
        ba.only_a[["order_id", "symbol", "qty"]])
    flip = ba.refusals["refused_in"].map({"a": "b", "b": "a"})
    assert sorted(zip(ab.refusals["refused_in"], ab.refusals["reason"], strict=True)) == \
        sorted(zip(flip, ba.refusals["reason"], strict=True))
    ea, eb = ab.equity, ba.equity
    assert (ea["equity_a"].to_numpy() == eb["equity_b"].to_numpy()).all()
    for col in ("difference", "start", "reference", "slippage", "price", "fees", "timing",
                "partial"):
        assert _arr_neg(ea[col], eb[col]), col
    assert _arr_neg(ea["missed"], eb["extra"])
    assert _arr_neg(ea["extra"], eb["missed"])
    for key in _SIGNED_SUMMARY:
        x, y = ab.summary[key], ba.summary[key]
        assert _same(x, -y), (key, x, y)
    assert ab.summary["missed"] == ba.summary["extra"]
    assert _same(ab.summary["pnl_missed"], -ba.summary["pnl_extra"])
    assert ab.summary["refused_in_a"] == ba.summary["refused_in_b"]
    # The split is exact: the causes add up to the difference.
    parts = ea[list(BUCKETS)].sum(axis=1).to_numpy()
    assert np.allclose(parts, ea["difference"].to_numpy(), rtol=0, atol=1e-6)


def _arr_neg(x: pd.Series, y: pd.Series) -> bool:
    a, b = x.to_numpy(np.float64), y.to_numpy(np.float64)
    return bool(((a == -b) | (np.isnan(a) & np.isnan(b))).all())


# --------------------------------------------------------------------------- the CLI gate
def test_cli_gate_exits_non_zero_above_threshold(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    a = _run(_trader(ORDERS), tmp_path, "a", slippage=5)
    b = _run(_trader(ORDERS), tmp_path, "b", slippage=9)
    bars_file = tmp_path / "bars.csv"
    BARS.to_frame().to_csv(bars_file, index=False)
    assert cli.main(["drift", str(a), str(b), "--bars", str(bars_file),
                     "--max-drift-bps", "5"]) == 0
    out = capsys.readouterr().out
    assert "slippage +4.00" in out
    assert "matched 4" in out
    assert cli.main(["drift", str(a), str(b), "--bars", str(bars_file),
                     "--max-drift-bps", "3"]) == 3
    captured = capsys.readouterr()
    assert "drift more than 3 bps" in captured.err
    dropped = _rewrite(a, tmp_path / "c.jsonl", lambda r: None if r["event"] == "filled"
                       and r["fill_id"] == "O1-1" else r)
    assert cli.main(["drift", str(a), str(dropped), "--max-missed", "0"]) == 3
    assert cli.main(["drift", str(a), str(dropped), "--max-missed", "1"]) == 0
    out_dir = tmp_path / "out"
    assert cli.main(["drift", str(a), str(b), "--out", str(out_dir)]) == 0
    html = (out_dir / "drift.html").read_text()
    assert "Drift" in html
    assert "slippage" in html
    assert (out_dir / "drift_fills.csv").is_file()
    assert (out_dir / "drift.png").is_file()  # matplotlib is a test dependency


def test_report_section_plot_and_notebook_view(tmp_path: Path) -> None:
    res_a = simbroker.backtest(_trader(ORDERS), BARS, slippage=5)
    res_b = simbroker.backtest(_trader(ORDERS), BARS, slippage=9)
    d = drift(res_a, res_b, names=("backtest", "live"))
    assert "Drift(live vs backtest: 4 matched" in repr(d)
    html = d._repr_html_()
    assert "drift-fills" in html
    assert "+4.00 bps" in html
    page = simbroker.report.write_report(res_a, tmp_path / "r.html", drift=d).read_text()
    assert "id='drift'" in page
    assert "id='fills'" in page  # the backtest's own tables are still there
    fig = d.plot(tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 1000
    assert fig is not None
    text = d.table()
    assert "slippage +4.00" in text
    assert "Matched fills, largest drift first" in text


def test_bad_input_is_named(tmp_path: Path) -> None:
    a = _run(_trader(ORDERS), tmp_path, "a")
    other = simbroker.synthetic_bars(n_symbols=1, n_bars=40, seed=2, start="2024-01-02")
    with pytest.raises(simbroker.DataError, match="the bars hold no SYM001"):
        drift(a, a, bars=other)
    with pytest.raises(ValueError, match="reference must be one of"):
        drift(a, a, reference="vwap")
    bad = [{"event": "filled", "ts": T0, "fill_id": "x", "order_id": "O1", "symbol": "A",
            "side": "buy", "qty": -1, "price": 10.0}]
    with pytest.raises(simbroker.TradeLogError, match="positive 'qty'"):
        drift(bad, bad)
    # The same client order id on another side is another decision: nothing pairs.
    one = [{"event": "filled", "ts": T0, "fill_id": "f", "order_id": "O1",
            "client_order_id": "c1", "symbol": "A", "side": side, "qty": 1.0,
            "price": 10.0, "timestamp": T0} for side in ("buy",)]
    two = [{**one[0], "side": "sell"}]
    d = drift(one, two, time_window="0s")
    assert d.fills.empty
    assert len(d.only_a) == 1
    assert len(d.only_b) == 1
