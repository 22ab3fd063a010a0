"""Sweeps: the same rows serially, on a process pool and on a Dask cluster; vectorized
sweeps equal one-by-one runs; walk-forward never lets out-of-sample data choose."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import Bars
from simbroker.sweeps import (
    WalkForwardResult,
    expand_grid,
    load_sweep,
    plot_heatmap,
    save_sweep,
    sweep,
    sweep_vectorized,
    walk_forward,
)
from simbroker.testing.checks import _perturbed

VOLATILE = ["seconds", "traceback"]


class Sma:
    """A small SMA crossover (module level: picklable for pools and Dask)."""

    def __init__(self, fast: int, slow: int, qty: float = 10):
        if fast >= slow:
            raise ValueError(f"fast {fast} must be below slow {slow}")
        self.fast, self.slow, self.qty = fast, slow, qty

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        close = bars.frame("close")
        return {"f": close.rolling(self.fast).mean().to_numpy(),
                "s": close.rolling(self.slow).mean().to_numpy()}

    def on_bar(self, broker: Any, history: Any) -> None:
        f, s = history.last("f"), history.last("s")
        held = broker.get_positions()
        for i, sym in enumerate(history.symbols):
            if f[i] > s[i] and sym not in held:
                broker.submit_order(sym, "buy", self.qty)
            elif f[i] < s[i] and sym in held:
                broker.submit_order(sym, "sell", held[sym])


def sma_targets(bars: Bars, fast: int, slow: int, qty: float = 10) -> np.ndarray:
    close = bars.frame("close")
    f = close.rolling(fast).mean().to_numpy()
    s = close.rolling(slow).mean().to_numpy()
    with np.errstate(invalid="ignore"):
        return np.where(f > s, qty, np.where(f < s, 0.0, np.nan))


@pytest.fixture(scope="module")
def bars() -> Bars:
    return simbroker.synthetic_bars(n_symbols=3, n_bars=300, seed=11)


GRID = {"fast": [3, 5, 8], "slow": [5, 20]}  # (5, 5) and (8, 5) fail: fast >= slow


def stable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=VOLATILE).sort_values("combo").reset_index(drop=True)


def test_expand_grid() -> None:
    assert expand_grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert expand_grid([{"a": 1}, {"a": 3, "b": 2}]) == [{"a": 1}, {"a": 3, "b": 2}]
    with pytest.raises(ValueError, match=r"grid\['b'\] has no values"):
        expand_grid({"a": [1], "b": []})
    with pytest.raises(ValueError, match=r"grid\['a'\] must be a list"):
        expand_grid({"a": 5})
    with pytest.raises(ValueError, match=r"grid\[1\] must be a dict"):
        expand_grid([{"a": 1}, 7])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="grid is empty"):
        expand_grid({})


def test_serial_sweep_ranks_and_reports_failures(bars: Bars) -> None:
    table = sweep(Sma, GRID, bars, executor="serial", metric="total_return")
    assert len(table) == 6
    failed = table[table["error"].notna()]
    assert sorted(zip(failed["fast"], failed["slow"], strict=True)) == [(5, 5), (8, 5)]
    assert all("ValueError: fast" in e for e in failed["error"])
    ok = table[table["error"].isna()]
    assert list(ok.index) == list(range(4))  # failures sort last
    assert ok["total_return"].is_monotonic_decreasing
    # Each row is exactly the backtest of its parameters.
    one = simbroker.backtest(Sma(3, 20), bars)
    row = table[(table["fast"] == 3) & (table["slow"] == 20)].iloc[0]
    assert row["total_return"] == one.stats["total_return"]
    assert row["n_fills"] == one.stats["n_fills"]


def test_process_pool_and_threads_give_identical_rows(bars: Bars) -> None:
    serial = stable(sweep(Sma, GRID, bars, executor="serial"))
    pooled = stable(sweep(Sma, GRID, bars, max_workers=2))
    pd.testing.assert_frame_equal(pooled, serial, check_exact=True)
    with ThreadPoolExecutor(2) as threads:
        pd.testing.assert_frame_equal(stable(sweep(Sma, GRID, bars, executor=threads)),
                                      serial, check_exact=True)
    with ProcessPoolExecutor(2) as procs:
        pd.testing.assert_frame_equal(stable(sweep(Sma, GRID, bars, executor=procs)),
                                      serial, check_exact=True)


@pytest.fixture
def common_ports_taken() -> Iterator[list[int]]:
    """Hold Dask's default ports (scheduler 8786, dashboard 8787) while a test runs, as a
    user's own cluster or notebook would; ports something else already holds count too."""
    held: list[socket.socket] = []
    for port in (8786, 8787):
        s = socket.socket()
        try:
            s.bind(("0.0.0.0", port))
            s.listen()
            held.append(s)
        except OSError:  # taken already: the condition under test holds anyway
            s.close()
    try:
        yield [8786, 8787]
    finally:
        for s in held:
            s.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_dask_cluster_gives_identical_rows(bars: Bars, common_ports_taken: list[int]) -> None:
    distributed = pytest.importorskip("distributed")
    assert not any(_port_free(p) for p in common_ports_taken)
    serial = stable(sweep(Sma, GRID, bars, executor="serial"))
    # dashboard_address=None means the default :8787 to distributed, and a taken port
    # warns (an error under filterwarnings=error): any free port, on loopback only.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", scheduler_port=0,
                                  dashboard_address="127.0.0.1:0",
                                  silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        on_client = stable(sweep(Sma, GRID, bars, executor=client))
        on_executor = stable(sweep(Sma, GRID, bars, executor=client.get_executor()))
    pd.testing.assert_frame_equal(on_client, serial, check_exact=True)
    pd.testing.assert_frame_equal(on_executor, serial, check_exact=True)


def test_vectorized_sweep_equals_one_by_one(bars: Bars) -> None:
    grid = {"fast": [3, 5, 8], "slow": [12, 20], "qty": [10, 7.5]}
    fast = sweep_vectorized(sma_targets, grid, bars, fees=simbroker.PerShare(),
                            max_cells=bars.n_symbols * len(bars) * 5)  # three passes
    assert fast["error"].isna().all()
    for _, row in fast.iterrows():
        params = {k: row[k] for k in grid}
        alone = simbroker.backtest_vectorized(
            bars, targets=sma_targets(bars, **params), fees=simbroker.PerShare())
        for key, value in alone.stats.items():
            got = row[key]
            if isinstance(value, float) and np.isnan(value):
                assert np.isnan(got), key
            else:
                assert got == value, (params, key, got, value)


def test_vectorized_sweep_reports_a_bad_combination(bars: Bars) -> None:
    def targets(bars: Bars, n: int) -> Any:
        if n == 2:
            raise RuntimeError("boom")
        return {"entries": np.ones((len(bars), bars.n_symbols), bool), "size": n}

    table = sweep_vectorized(targets, {"n": [1, 2, 3]}, bars, metric="n_fills")
    assert table.loc[table["n"] == 2, "error"].item() == "RuntimeError: boom"
    assert table.loc[table["n"] == 3, "n_fills"].item() == bars.n_symbols


def test_a_metric_that_is_not_a_statistic_is_named(bars: Bars) -> None:
    with pytest.raises(ValueError, match="metric 'sharp' is not a statistic"):
        sweep(Sma, {"fast": [3], "slow": [9]}, bars, executor="serial", metric="sharp")


def test_walk_forward_stitches_out_of_sample(bars: Bars) -> None:
    wf = walk_forward(Sma, GRID, bars, train=100, test=50, metric="total_return")
    assert len(wf.windows) == 4  # test windows start at 100, 150, 200, 250
    assert list(wf.windows["test_start"]) == [bars.index[i] for i in (100, 150, 200, 250)]
    assert (wf.windows["train_end"] == wf.windows["test_start"]).all()
    assert len(wf.equity) == 200
    assert wf.equity.index[0] == bars.index[100]
    # Window 0's choice is the best of its own in-sample sweep.
    best = wf.sweeps[0].iloc[0]
    assert (wf.windows.loc[0, "fast"], wf.windows.loc[0, "slow"]) == (best["fast"],
                                                                      best["slow"])
    # The chained equity: each window starts with the cash the previous one ended with.
    assert wf.stats["start_equity"] == 100_000.0
    assert wf.stats["final_equity"] == wf.equity.iloc[-1]
    anchored = walk_forward(Sma, GRID, bars, train=100, test=50, anchored=True)
    assert (anchored.windows["train_start"] == bars.index[0]).all()


_WALK_FORWARD: dict[int, WalkForwardResult] = {}


def _unperturbed_walk_forward(bars: Bars) -> WalkForwardResult:
    """The walk forward on the fixture's bars, run once for every example."""
    if id(bars) not in _WALK_FORWARD:
        _WALK_FORWARD[id(bars)] = walk_forward(Sma, GRID, bars, train=100, test=50,
                                               metric="total_return")
    return _WALK_FORWARD[id(bars)]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window=st.integers(0, 3), seed=st.integers(0, 1000))
def test_walk_forward_never_lets_later_data_choose(bars: Bars, window: int,
                                                   seed: int) -> None:
    """Changing every bar from a window's test start on changes no choice up to it."""
    base = _unperturbed_walk_forward(bars)
    cut = 100 + 50 * window
    changed = walk_forward(Sma, GRID, _perturbed(bars, cut - 1, seed, 0.2), train=100,
                           test=50, metric="total_return")
    cols = ["fast", "slow", "in_sample"]
    pd.testing.assert_frame_equal(changed.windows.loc[:window, cols],
                                  base.windows.loc[:window, cols])


def test_save_load_and_heatmap(bars: Bars, tmp_path: Path) -> None:
    table = sweep(Sma, GRID, bars, executor="serial")
    path = save_sweep(table, tmp_path / "sweep.parquet")
    back = load_sweep(path)
    pd.testing.assert_frame_equal(back.drop(columns=VOLATILE), table.drop(columns=VOLATILE),
                                  check_dtype=False)
    pytest.importorskip("matplotlib")
    fig = plot_heatmap(table, "fast", "slow", "sharpe", path=tmp_path / "heat.png")
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"
    assert fig.axes[0].get_xlabel() == "fast"
    with pytest.raises(ValueError, match="'nope' is not in the sweep table"):
        plot_heatmap(table, "fast", "nope")
