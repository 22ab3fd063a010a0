"""Corporate actions: the table, attaching it to bars, splits and dividends in both
engines, adjusted prices, and the trade log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simbroker.actions import CorporateActions, attach_actions, schedule
from simbroker.bars import Bars
from simbroker.errors import DataError

DAYS = pd.date_range("2014-06-02", periods=10, freq="B", tz="UTC")


def _aapl() -> Bars:
    """Ten daily bars around a 7:1 split on Monday 2014-06-09 (bar 5)."""
    close = np.array([630.0, 637.0, 644.0, 647.0, 645.5, 92.2, 93.0, 94.0, 93.5, 92.5])
    open_ = np.array([628.0, 631.0, 637.0, 645.0, 647.0, 92.7, 92.0, 93.0, 94.0, 93.0])
    c = close.reshape(-1, 1)
    o = open_.reshape(-1, 1)
    return Bars.from_arrays(DAYS, ["AAPL"], open=o, high=np.maximum(o, c) + 1,
                            low=np.minimum(o, c) - 1, close=c, volume=np.full_like(c, 1e6))


def _aapl_actions() -> CorporateActions:
    return CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL", "AAPL"], "ex_date": ["2014-06-09", "2014-06-11"],
        "split": [7.0, 0.0], "dividend": [0.0, 0.47]}))


# ------------------------------------------------------------------------- table
def test_from_frame_reads_splits_and_dividends_in_one_frame() -> None:
    acts = _aapl_actions()
    assert len(acts) == 2
    frame = acts.frame()
    assert frame["kind"].tolist() == ["split", "dividend"]
    assert frame["value"].tolist() == [7.0, 0.47]
    assert frame["pay_date"].tolist() == frame["ex_date"].tolist()  # default = ex-date


def test_from_frame_yfinance_shape_with_index_and_symbol_argument() -> None:
    idx = pd.DatetimeIndex(["2014-05-08 00:00:00-04:00", "2014-06-09 00:00:00-04:00"])
    frame = pd.DataFrame({"Dividends": [3.29, 0.0], "Stock Splits": [0.0, 7.0]}, index=idx)
    acts = CorporateActions.from_frame(frame, symbol="AAPL", tz="America/New_York")
    assert acts.ex_date.tolist() == [np.datetime64("2014-05-08"), np.datetime64("2014-06-09")]
    assert acts.kinds.tolist() == ["dividend", "split"]


def test_from_frame_long_form_and_pay_date() -> None:
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["KO", "KO"], "ex_date": ["2020-03-13", "2020-06-12"],
        "kind": ["dividend", "dividend"], "value": [0.41, 0.41],
        "pay_date": ["2020-04-01", None]}))
    assert acts.pay_date.tolist() == [np.datetime64("2020-04-01"), np.datetime64("2020-06-12")]


@pytest.mark.parametrize(("column", "value", "field"), [
    ("dividend", -0.5, "dividend"), ("split", -2.0, "split"), ("dividend", "abc", "dividend"),
    ("ex_date", "not a date", "ex_date")])
def test_bad_rows_are_named(column: str, value: object, field: str) -> None:
    frame = pd.DataFrame({"symbol": ["A", "A"], "ex_date": ["2020-01-02", "2020-01-03"],
                          "dividend": [0.1, 0.2], "split": [0.0, 0.0]})
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    with pytest.raises(DataError) as err:
        CorporateActions.from_frame(frame)
    assert err.value.problems[0]["row"] == 1
    assert err.value.problems[0]["field"] == field
    assert f"field={field}" in str(err.value)


def test_pay_before_ex_and_duplicates_are_refused() -> None:
    with pytest.raises(DataError, match="pay date"):
        CorporateActions.from_frame(pd.DataFrame({
            "symbol": ["A"], "ex_date": ["2020-01-10"], "dividend": [0.1],
            "pay_date": ["2020-01-02"]}))
    with pytest.raises(DataError, match="second dividend"):
        CorporateActions.from_frame(pd.DataFrame({
            "symbol": ["A", "A"], "ex_date": ["2020-01-10", "2020-01-10"],
            "dividend": [0.1, 0.2]}))


def test_from_rows_takes_only_real_actions() -> None:
    ts = DAYS.asi8[:4]
    acts = CorporateActions.from_rows(["A", "A", "B", "B"], ts,
                                      dividend=np.array([0.0, 0.5, np.nan, 0.0]),
                                      split=np.array([0.0, 1.0, 7.0, np.nan]))
    assert acts.frame()[["symbol", "kind", "value"]].values.tolist() == [
        ["A", "dividend", 0.5], ["B", "split", 7.0]]
    with pytest.raises(DataError) as err:
        CorporateActions.from_rows(["A"], ts[:1], dividend=np.array([-1.0]))
    assert err.value.problems[0]["row"] == 0


def test_read_csv_and_parquet(tmp_path: object) -> None:
    from pathlib import Path
    base = Path(str(tmp_path))
    frame = _aapl_actions().frame()
    frame.to_csv(base / "a.csv", index=False)
    frame.to_parquet(base / "a.parquet")
    for name in ("a.csv", "a.parquet"):
        got = CorporateActions.read(base / name)
        assert got.frame().equals(_aapl_actions().frame())
    with pytest.raises(DataError, match="not found"):
        CorporateActions.read(base / "missing.csv")


def test_table_is_read_only() -> None:
    acts = _aapl_actions()
    with pytest.raises(ValueError, match="read-only"):
        acts.value[0] = 2.0
    with pytest.raises(AttributeError):
        acts.tz = "X"  # type: ignore[misc]


# ----------------------------------------------------------------------- attaching
def test_attach_carries_through_select_and_rows() -> None:
    bars = attach_actions(_aapl(), _aapl_actions())
    assert bars.actions is not None
    assert bars.actions.prices == "raw"
    assert bars.rows(0, 5).actions is bars.actions
    assert bars.select(["AAPL"]).actions is not None
    assert _aapl().actions is None


def test_attach_names_unknown_symbols() -> None:
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["MSFT"], "ex_date": ["2014-06-09"], "dividend": [0.28]}))
    with pytest.raises(DataError, match="'MSFT'"):
        attach_actions(_aapl(), acts)
    assert len(attach_actions(_aapl(), acts, unknown_symbols="drop").actions or ()) == 0


def test_attach_refuses_adjusted_prices_next_to_split_factors() -> None:
    raw = _aapl()
    k = np.where(np.arange(10) < 5, 1 / 7, 1.0).reshape(-1, 1)
    adjusted = Bars.from_arrays(DAYS, ["AAPL"], open=raw.open * k, high=raw.high * k,
                                low=raw.low * k, close=raw.close * k, volume=raw.volume)
    with pytest.raises(DataError, match="already split-adjusted") as err:
        attach_actions(adjusted, _aapl_actions())
    assert err.value.problems[0]["symbol"] == "AAPL"
    told = attach_actions(adjusted, _aapl_actions(), prices="adjusted")
    assert told.actions is not None
    assert told.actions.prices == "adjusted"


def test_schedule_ex_bar_and_pay_bar() -> None:
    acts = CorporateActions.from_frame(pd.DataFrame({
        "symbol": ["AAPL", "AAPL", "AAPL"],
        "ex_date": ["2014-06-07", "2014-06-11", "2014-01-01"],  # a Saturday; one before
        "kind": ["split", "dividend", "dividend"], "value": [7.0, 0.47, 1.0],
        "pay_date": [None, "2014-06-14", None]}))
    sched = schedule(_aapl(), acts)
    assert sched.t.tolist() == [5, 7]  # Monday 2014-06-09 is bar 5; before-data dropped
    assert sched.pay_t.tolist() == [5, 10]  # paid on a Saturday: after the last bar (index 9)
