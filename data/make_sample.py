"""Regenerate ``simbroker/sample_data/sample_daily.csv`` from the ``bokeh-sampledata`` package.

The sample ships inside the package (so a wheel install has it); this script stays in the
repository's ``data/`` folder, out of the wheel.

Requirement (only for this script; it is not a dependency of simbroker)::

    pip install "bokeh-sampledata>=2026.1"

Usage::

    python data/make_sample.py            # writes simbroker/sample_data/sample_daily.csv
    python data/make_sample.py OUT.csv    # or anywhere else

The output is byte-identical on every run: unadjusted daily OHLCV of AAPL, GOOG, IBM and
MSFT from 2008-01-02 through 2013-03-01 and FB from its IPO (2012-05-18), the Quandl WIKI
prices (public domain) as bokeh-sampledata ships them. Each day is written as its 00:00 UTC
(``2008-01-02T00:00:00Z``), so the file says its own time zone and loads without ``tz=``.
Before writing, the script checks that there is no split in the window (the ratio of the
unadjusted to the adjusted close never moves by more than a dividend's worth from one day
to the next) and that every bar is consistent (prices > 0, low <= open, close <= high,
volume >= 0, one row per day).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

OUTPUT = (Path(__file__).resolve().parents[1] / "simbroker" / "sample_data"
          / "sample_daily.csv")
SYMBOLS = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
FIRST_DAY = "2008-01-02"
LAST_DAY = "2013-03-01"
COLUMNS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
# A day-to-day change of close / adj_close above this is a split (2:1 would be 100 %);
# dividends in the window move it by well under 1 %.
MAX_ADJUSTMENT_STEP = 0.05


def build() -> pd.DataFrame:
    """The sample in long form, checked, sorted by symbol and then date."""
    try:
        from bokeh_sampledata.stocks import data
    except ImportError:
        sys.exit('this script needs bokeh-sampledata: pip install "bokeh-sampledata>=2026.1"')
    frame = data[data["ticker"].isin(SYMBOLS)]
    day = pd.to_datetime(frame["date"])
    frame = frame[(day >= FIRST_DAY) & (day <= LAST_DAY)]
    frame = frame.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    check(frame)
    return pd.DataFrame({
        "timestamp": pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%dT00:00:00Z"),
        "symbol": frame["ticker"].astype(str),
        "open": frame["open"].astype(np.float64),
        "high": frame["high"].astype(np.float64),
        "low": frame["low"].astype(np.float64),
        "close": frame["close"].astype(np.float64),
        "volume": frame["volume"].astype(np.int64),
    })[COLUMNS]


def check(frame: pd.DataFrame) -> None:
    """Refuse to write a sample with a split, a bad bar or a repeated day."""
    problems: list[str] = []
    if set(frame["ticker"]) != set(SYMBOLS):
        problems.append(f"symbols {sorted(set(frame['ticker']))}, expected {list(SYMBOLS)}")
    if frame[["open", "high", "low", "close", "volume", "adj_close"]].isna().any().any():
        problems.append("missing values")
    o, h, lo, c, v = (frame[k].to_numpy(np.float64)
                      for k in ("open", "high", "low", "close", "volume"))
    bad = ~((lo > 0) & (h >= np.maximum(o, c)) & (lo <= np.minimum(o, c)) & (v >= 0))
    problems += [f"inconsistent bar {frame.loc[i, 'ticker']} {frame.loc[i, 'date']}"
                 for i in np.flatnonzero(bad)]
    if frame.duplicated(["ticker", "date"]).any():
        problems.append("repeated (symbol, day)")
    ratio = frame["close"] / frame["adj_close"]
    step = (ratio / ratio.groupby(frame["ticker"]).shift(1) - 1).abs()
    for i in np.flatnonzero(step.to_numpy() > MAX_ADJUSTMENT_STEP):
        problems.append(f"split-like adjustment {step.iloc[i]:.1%} at "
                        f"{frame.loc[i, 'ticker']} {frame.loc[i, 'date']}")
    if problems:
        sys.exit("refusing to write the sample:\n  " + "\n  ".join(problems))


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else OUTPUT
    sample = build()
    sample.to_csv(out, index=False, lineterminator="\n")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    counts = sample.groupby("symbol")["timestamp"].agg(["count", "min", "max"])
    print(f"wrote {out} ({len(sample)} rows, sha256 {digest})")
    print(counts.to_string())


if __name__ == "__main__":
    main(sys.argv)
