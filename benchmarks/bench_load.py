"""Time and measure ``load_bars`` from Parquet and CSV against the pyarrow floor.

    python benchmarks/bench_load.py                 # 1,000 x 2,520 daily, 3 runs each
    python benchmarks/bench_load.py --big           # also 1 x 20,000,000 minute bars
    python benchmarks/bench_load.py --runs 5 --formats parquet

For each case the files are written once to a temporary directory (long form, one row
per symbol and bar, symbol-major as ``Bars.to_frame`` writes it; the minute case
time-major). Then, each in its own fresh Python process so that peaks do not mix:

- ``floor``: ``pyarrow.parquet.read_table`` (or ``pyarrow.csv.read_csv``) of the file,
  plus the pivot to the panel with no checks at all: symbols dictionary-encoded,
  timestamps factorized, one scatter per field into preallocated (T, N) arrays;
- ``load_bars``: the same file through :func:`simbroker.load_bars` (every row
  validated).

Reported: the median wall time over ``--runs`` processes and the ratio to the floor;
peak memory as the growth of the process's resident high-water mark (``VmHWM``, reset
just before the call) over its size then (pyarrow, pandas and simbroker already
imported), next to the panel's bytes
(5 x T x N x 8), and the high-water mark of Arrow's memory pool (a part of that peak:
buffers Arrow held at once). Goals (issue 21): Parquet within 2x of the floor, peak <=
2x the panel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CASES: dict[str, tuple[str, int, int]] = {
    "daily": ("1,000 symbols x 2,520 daily bars", 1000, 2520),
    "minute": ("1 symbol x 20,000,000 minute bars", 1, 20_000_000),
}


def write_files(key: str, where: Path, formats: list[str]) -> dict[str, Path]:
    """Write the case's long-form bars as Parquet and/or CSV; returns format -> path."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    _, n_symbols, n_bars = CASES[key]
    if n_symbols == 1:  # a random walk, built directly (the generator's frame is slow here)
        rng = np.random.default_rng(1)
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-4, n_bars)))
        open_ = np.r_[close[0], close[:-1]]
        stamps = pd.date_range("1990-01-02", periods=n_bars, freq="1min", tz="UTC")
        table = pa.table({
            "timestamp": pa.array(stamps.asi8, pa.timestamp("ns", "UTC")),
            "symbol": pa.array(np.full(n_bars, "ABC", dtype=object)),
            "open": open_, "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995, "close": close,
            "volume": rng.integers(1, 1000, n_bars).astype(np.float64),
        })
    else:
        import simbroker

        bars = simbroker.synthetic_bars(n_symbols, n_bars, seed=1, freq="1D")
        table = pa.Table.from_pandas(bars.to_frame(), preserve_index=False)
    out: dict[str, Path] = {}
    if "parquet" in formats:
        out["parquet"] = where / f"{key}.parquet"
        pq.write_table(table, out["parquet"])
    if "csv" in formats:
        out["csv"] = where / f"{key}.csv"
        pacsv.write_csv(table, out["csv"])
    return out


def run_one(mode: str, path: str) -> dict[str, float]:
    """One measurement in this process: seconds, peak RSS growth, panel and the high-water
    mark of Arrow's memory pool (MiB)."""
    import time

    import numpy as np
    import pandas as pd
    import pyarrow
    import pyarrow.compute  # imported before the baseline, as load_bars does
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    import simbroker
    import simbroker._data_parquet

    base, _ = reset_peak()
    t0 = time.perf_counter()
    if mode == "floor":
        table = pq.read_table(path) if path.endswith(".parquet") else pacsv.read_csv(path)
        ts = np.asarray(table.column("timestamp").to_numpy()).view(np.int64)
        symbols = table.column("symbol").combine_chunks().dictionary_encode()
        codes = np.asarray(symbols.indices.to_numpy()).astype(np.int64)
        tcodes, times = pd.factorize(ts, sort=True)
        n_s = len(symbols.dictionary)
        flat = tcodes * n_s + codes
        panel = 0
        for name in ("open", "high", "low", "close", "volume"):
            wide = np.full(len(times) * n_s, np.nan)
            wide[flat] = table.column(name).to_numpy()
            panel += wide.nbytes
    else:
        bars = simbroker.load_bars(path)
        panel = 5 * bars.close.nbytes
    elapsed = time.perf_counter() - t0
    _, peak = rss_now_and_peak()
    return {"seconds": elapsed, "peak_mib": peak - base, "panel_mib": panel / 2**20,
            "arrow_mib": pyarrow.default_memory_pool().max_memory() / 2**20}


def rss_now_and_peak() -> tuple[float, float]:
    """This process's resident set and its high-water mark, MiB (Linux /proc)."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak() -> tuple[float, float]:
    """Reset the RSS high-water mark to the current size (``clear_refs`` 5); returns
    (current, peak) after the reset. ``getrusage``'s max RSS cannot be used: it survives
    ``exec`` and so carries the parent's peak into a fresh process."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # the peak then includes the imports: an overstatement, never an understatement
    return rss_now_and_peak()


def measure(mode: str, path: Path, runs: int) -> dict[str, float]:
    """Median figures over ``runs`` fresh processes."""
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--one", mode, str(path)],
                             check=True, capture_output=True, text=True).stdout
        samples.append(json.loads(out.strip().splitlines()[-1]))
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]} | {
        "min_seconds": min(s["seconds"] for s in samples),
        "max_seconds": max(s["seconds"] for s in samples)}


def main() -> None:
    """Parse the arguments, write the files, run the cases and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="processes per figure")
    parser.add_argument("--big", action="store_true",
                        help="also the 1 x 20,000,000 minute case (minutes, ~3 GB disk)")
    parser.add_argument("--formats", default="parquet,csv",
                        help="comma-separated: parquet, csv")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    keys = ["daily", "minute"] if args.big else ["daily"]
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            files = write_files(key, Path(tmp), formats)
            for fmt, path in files.items():
                floor = measure("floor", path, args.runs)
                load = measure("load", path, args.runs)
                print(f"{CASES[key][0]}, {fmt} ({path.stat().st_size / 2**20:.0f} MiB file), "
                      f"panel {load['panel_mib']:.0f} MiB, median of {args.runs}:")
                print(f"  floor      {floor['seconds']:7.3f} s "
                      f"[{floor['min_seconds']:.3f}-{floor['max_seconds']:.3f}]  "
                      f"peak +{floor['peak_mib']:6.0f} MiB "
                      f"({floor['peak_mib'] / load['panel_mib']:.2f}x panel)")
                print(f"  load_bars  {load['seconds']:7.3f} s "
                      f"[{load['min_seconds']:.3f}-{load['max_seconds']:.3f}]  "
                      f"peak +{load['peak_mib']:6.0f} MiB "
                      f"({load['peak_mib'] / load['panel_mib']:.2f}x panel)  "
                      f"{load['seconds'] / floor['seconds']:.2f}x the floor")
                print(f"  Arrow pool high-water: floor {floor['arrow_mib']:.0f} MiB, "
                      f"load_bars {load['arrow_mib']:.0f} MiB")
                path.unlink()


if __name__ == "__main__":
    main()
