"""The tear-sheet numbers (results.analytics), the plot, and the HTML report in a browser.

The browser test renders the report in a real headless Chromium at 1,400 x 900, writes
its screenshot under this run's pytest temporary directory (``report-artifacts*/``; the
path is printed, and copied to ``$SIMBROKER_ARTIFACTS`` when that is set), and reads the
DOM back after the page's script ran: the page fits without horizontal scrolling, a
click on a header sorts its table, the wheel zooms the equity chart. It skips only when
no Chromium/Chrome can be found, and says so.
"""

from __future__ import annotations

import html
import importlib.util
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import Bars, PaperBroker
from simbroker.report.charts import nice_ticks
from simbroker.report.page import _TRADE_COLUMNS, interval_text
from simbroker.results import BacktestResult, analytics, build_result
from simbroker.testing import run_order_stream
from simbroker.testing.strategies import OrderSpec, bar_panels, order_streams

PROPS = settings(max_examples=40, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow,
                                        HealthCheck.function_scoped_fixture])


@pytest.fixture
def sma(sma_result: BacktestResult) -> BacktestResult:
    return sma_result


def run_orders(bars: Bars, orders: list[OrderSpec], **kw: object) -> BacktestResult:
    broker = PaperBroker(bars, **kw)  # type: ignore[arg-type]
    return build_result(run_order_stream(broker, orders))


@st.composite
def runs(draw: st.DrawFn) -> BacktestResult:
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 40)))
    orders = draw(order_streams(bars, max_size=25))
    init = draw(st.dictionaries(st.sampled_from(bars.symbols),
                                st.integers(-50, 50).map(float), max_size=2))
    return run_orders(bars, orders, slippage=draw(st.floats(0, 20)),
                      fees=draw(st.floats(0, 20)), positions=init, cash=1e6)


@st.composite
def equity_curves(draw: st.DrawFn) -> tuple[pd.Series, float]:
    n = draw(st.integers(1, 400))
    freq = draw(st.sampled_from(["D", "7D", "h", "31D"]))
    start = draw(st.datetimes(min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
                              max_value=pd.Timestamp("2030-01-01").to_pydatetime()))
    steps = draw(st.lists(st.floats(-0.2, 0.2), min_size=n, max_size=n))
    start_equity = draw(st.floats(1.0, 1e7))
    eq = start_equity * np.cumprod(1.0 + np.asarray(steps))
    index = pd.date_range(pd.Timestamp(start).floor("h"), periods=n, freq=freq, tz="UTC")
    return pd.Series(eq, index=index, name="equity"), start_equity


# --------------------------------------------------------------------------- analytics
@PROPS
@given(equity_curves())
def test_monthly_and_yearly_returns_compound_to_the_total(curve: tuple[pd.Series, float]
                                                          ) -> None:
    eq, start = curve
    total = float(eq.iloc[-1]) / start
    monthly = analytics.monthly_returns(eq, start)
    cells = monthly.to_numpy().ravel()
    cells = cells[~np.isnan(cells)]
    months = {(t.year, t.month) for t in eq.index}
    assert len(cells) == len(months)
    assert float(np.prod(1.0 + cells)) == pytest.approx(total, rel=1e-9)
    yearly = analytics.yearly_returns(eq, start)
    assert list(yearly.index) == sorted({t.year for t in eq.index})
    assert float(np.prod(1.0 + yearly.to_numpy())) == pytest.approx(total, rel=1e-9)
    # A year's months compound to that year.
    for year, r in yearly.items():
        row = monthly.loc[year].to_numpy()
        assert float(np.prod(1.0 + row[~np.isnan(row)])) == pytest.approx(1.0 + r, rel=1e-9)


@PROPS
@given(runs())
def test_symbol_pnl_sums_to_the_equity_change(r: BacktestResult) -> None:
    pnl = r.symbol_pnl()
    change = r.stats["final_equity"] - r.stats["start_equity"]
    scale = max(1.0, float(r.fills["notional"].sum()) if len(r.fills) else 1.0,
                abs(r.stats["start_equity"]))
    assert float(pnl["total"].sum()) == pytest.approx(change, abs=1e-9 * scale)
    np.testing.assert_allclose(pnl["total"], pnl["realized"] + pnl["unrealized"])
    assert float(pnl["fees"].sum()) == pytest.approx(r.stats["fees_paid"], abs=1e-9 * scale)
    assert int(pnl["fills"].sum()) == len(r.fills)
    assert int(pnl["trips"].sum()) == r.stats["round_trips"]
    assert list(pnl["total"]) == sorted(pnl["total"], reverse=True)


@PROPS
@given(runs())
def test_drawdown_table_matches_the_drawdown_series(r: BacktestResult) -> None:
    dd = r.drawdown
    table = r.drawdowns(None)
    assert (table["depth"] < 0).all()
    assert list(table["depth"]) == sorted(table["depth"])
    if not len(table):
        assert (dd >= 0).all()
        assert r.stats["max_drawdown"] == 0.0
        return
    assert table["depth"].iloc[0] == pytest.approx(dd.min(), abs=1e-12)
    assert table["depth"].iloc[0] == pytest.approx(r.stats["max_drawdown"], abs=1e-12)
    assert int(table["bars"].max()) == r.stats["max_drawdown_bars"]
    assert table["length"].max() == r.stats["max_drawdown_duration"]
    assert int(table["is_open"].sum()) == int(dd.iloc[-1] < 0)
    for row in table.itertuples():
        # The depth is the lowest drawdown between the peak and the recovery.
        stop = row.recovery if not row.is_open else dd.index[-1]
        window = dd[(dd.index >= row.start) & (dd.index <= stop)]
        assert float(window.min()) == pytest.approx(row.depth, abs=1e-12)
        assert dd[row.trough] == pytest.approx(row.depth, abs=1e-12)
        if not row.is_open:
            assert dd[row.recovery] == 0.0
    assert len(r.drawdowns(2)) == min(2, len(table))


@PROPS
@given(bar_panels(n_symbols=1, n_bars=st.integers(1, 60)), st.floats(1.0, 1e7))
def test_benchmark_of_one_symbol_is_its_close_scaled(bars: Bars, cash: float) -> None:
    r = run_orders(bars, [], cash=cash)
    bench = r.benchmark()
    close = bars.close[:, 0]
    np.testing.assert_allclose(bench.to_numpy(), cash * close / close[0], rtol=1e-12)
    assert bench.index.equals(r.equity.index)
    # A given price series, aligned to the bars, is the same benchmark.
    given_series = pd.Series(close * 3.0, index=pd.DatetimeIndex(bars.timestamps))
    np.testing.assert_allclose(r.benchmark(given_series).to_numpy(), bench.to_numpy(),
                               rtol=1e-12)


def test_buy_and_hold_waits_for_a_symbol_that_starts_later() -> None:
    ts = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    close = np.array([[100.0, np.nan], [110.0, 50.0], [110.0, 100.0], [121.0, np.nan]])
    bars = Bars.from_arrays(ts, ["A", "B"], open=close, high=close, low=close, close=close,
                            volume=np.ones_like(close), interval="1D")
    bench = analytics.buy_and_hold(bars, 1000.0)
    # B's half stays in cash until its first close, then doubles; carried over the gap.
    np.testing.assert_allclose(bench.to_numpy(), [1000.0, 1050.0, 1550.0, 1605.0])


def test_a_given_benchmark_is_aligned_and_rescaled(sma: BacktestResult) -> None:
    idx = pd.DatetimeIndex(sma.equity.index)
    weekly = pd.Series(np.linspace(10.0, 20.0, 300),
                       index=pd.date_range("2008-02-01", periods=300, freq="7D"), name="IDX")
    bench = sma.benchmark(weekly)
    assert bench.index.equals(idx)
    start = sma.stats["start_equity"]
    assert (bench[idx < pd.Timestamp("2008-02-01", tz="UTC")] == start).all()
    assert bench.iloc[-1] == pytest.approx(start * weekly.asof(idx[-1].tz_localize(None))
                                           / 10.0)
    with pytest.raises(ValueError, match="DatetimeIndex"):
        sma.benchmark(pd.Series([1.0, 2.0]))
    with pytest.raises(ValueError, match="no value at or before"):
        sma.benchmark(pd.Series([1.0], index=pd.DatetimeIndex(["2030-01-01"])))
    with pytest.raises(ValueError, match="positive"):
        sma.benchmark(pd.Series([1.0, -1.0], index=pd.DatetimeIndex(["2009-01-01",
                                                                      "2009-01-02"])))


def test_rolling_sharpe_and_volatility_match_the_statistics_over_a_window(
        sma: BacktestResult) -> None:
    rets = sma.returns.to_numpy()
    assert analytics.default_window(len(rets), 252.0) == 126
    assert analytics.default_window(100, 252.0) == 25  # a short run: a quarter of it
    sharpe = sma.rolling_sharpe(126, periods_per_year=252)
    vol = sma.rolling_volatility(126, periods_per_year=252)
    assert sharpe.iloc[:125].isna().all()
    last = rets[-126:]
    assert sharpe.iloc[-1] == pytest.approx(last.mean() / last.std(ddof=1) * math.sqrt(252))
    assert vol.iloc[-1] == pytest.approx(last.std(ddof=1) * math.sqrt(252))
    assert sma.rolling_sharpe().index.equals(sma.equity.index)
    with pytest.raises(ValueError, match="window"):
        sma.rolling_sharpe(1)


def test_returns_histogram_counts_every_finite_return(sma: BacktestResult) -> None:
    hist = analytics.returns_histogram(sma.returns, bins=30)
    assert len(hist) == 30
    assert int(hist["count"].sum()) == len(sma.returns)
    assert (hist["left"] < hist["right"]).all()
    assert hist["left"].iloc[0] == sma.returns.min()
    assert len(analytics.returns_histogram(pd.Series([np.nan]))) == 0


def test_relative_stats_of_the_benchmark_against_itself(sma: BacktestResult) -> None:
    b = sma.benchmark().pct_change().fillna(0.0)
    rel = analytics.relative_stats(b, b, 252.0)
    assert rel["beta"] == pytest.approx(1.0)
    assert rel["correlation"] == pytest.approx(1.0)
    assert rel["alpha"] == pytest.approx(0.0, abs=1e-12)
    assert rel["tracking_error"] == 0.0
    assert math.isnan(rel["information_ratio"])


def test_words_for_intervals_and_round_ticks() -> None:
    assert interval_text(np.timedelta64(1, "D")) == "1 day"
    assert interval_text(np.timedelta64(1, "m")) == "1 minute"
    assert interval_text(np.timedelta64(5, "m")) == "5 minutes"
    assert interval_text(np.timedelta64(2, "h")) == "2 hours"
    assert nice_ticks(61_000, 181_000, 6) == [80_000, 100_000, 120_000, 140_000, 160_000,
                                              180_000]
    assert nice_ticks(-0.43, 0.0, 3) == [-0.4, -0.2, 0.0]


# --------------------------------------------------------------------------- plot
def test_plot_writes_a_png(sma: BacktestResult, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    fig = sma.plot(tmp_path / "plots" / "equity.png", symbol="AAPL")
    data = (tmp_path / "plots" / "equity.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    axes = fig.get_axes()
    assert len(axes) == 3
    # The equity line holds every bar, then the benchmark; markers = fills, by symbol.
    eq_line, bench_line = axes[0].lines[:2]
    assert len(eq_line.get_xdata()) == len(sma.equity)
    np.testing.assert_allclose(bench_line.get_ydata(), sma.benchmark().to_numpy())
    n_markers = sum(len(c.get_offsets()) for c in axes[0].collections)
    assert n_markers == len(sma.fills)
    labels = axes[0].get_legend_handles_labels()[1]
    for sym in set(sma.fills["symbol"]):
        assert any(label.startswith(f"{sym} buy") for label in labels), labels
    aapl = int((sma.fills["symbol"] == "AAPL").sum())
    price_markers = [c for c in axes[2].collections if len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in price_markers) == aapl
    assert any("AAPL buy fills" in t for t in axes[2].get_legend_handles_labels()[1])
    # Thousands separators on the equity axis.
    fmt = axes[0].yaxis.get_major_formatter()
    assert fmt(150_000.0, 0) == "150,000"
    with pytest.raises(ValueError, match="'NOPE' is not in the result"):
        sma.plot(tmp_path / "x.png", symbol="NOPE")


def test_plot_log_scale_order_levels_and_na_title(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    ts = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    p = np.array([100.0, 100, 98, 97, 103, 104]).reshape(-1, 1)
    bars = Bars.from_arrays(ts, ["AAA"], open=p, high=p + 1, low=p - 1, close=p,
                            volume=np.full_like(p, 1e6), interval="1D")
    orders = [OrderSpec(bar=0, symbol="AAA", side="buy", qty=10, order_type="limit",
                        limit_price=97.5, tif="gtc"),
              OrderSpec(bar=3, symbol="AAA", side="sell", qty=10, order_type="stop",
                        stop_price=90.0, tif="gtc")]
    r = run_orders(bars, orders, cash=10_000)
    fig = r.plot(tmp_path / "p.png", log=True, benchmark=False)
    ax_eq, _, ax_px = fig.get_axes()
    assert ax_eq.get_yscale() == "log"
    assert len(ax_eq.lines) == 1  # no benchmark line
    labels = ax_px.get_legend_handles_labels()[1]
    assert "limit levels (1)" in labels
    assert "stop levels (1)" in labels
    levels = [c for c in ax_px.collections if "levels" in str(c.get_label())]
    ys = sorted(float(seg[0][1]) for c in levels for seg in c.get_segments())
    assert ys == [90.0, 97.5]
    assert "total return" in fig.get_suptitle()
    flat = run_orders(bars, [], cash=1000)  # no returns: Sharpe is undefined
    flat_title = flat.plot(tmp_path / "f.png").get_suptitle()
    assert "Sharpe n/a" in flat_title
    assert "nan" not in flat_title.lower()


# --------------------------------------------------------------------------- report
def test_report_is_one_self_contained_readable_html_file(sma: BacktestResult,
                                                         tmp_path: Path) -> None:
    path = sma.report(tmp_path / "report.html", title="SMA <10/50>", max_rows=50)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "SMA &lt;10/50&gt;" in text  # escaped
    # Offline: nothing fetched, no library; one inline script of our own.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text
    assert text.count("<script>") == 1
    if importlib.util.find_spec("matplotlib"):  # the price panel, embedded as data
        assert "src='data:image/png;base64," in text
    assert "<script src" not in text
    for section in ("Statistics", "Monthly returns", "Worst drawdowns", "Rolling Sharpe",
                    "Distribution of returns", "P&amp;L by symbol", "Yearly returns"):
        assert section in text, section
    trips = sma.trades
    n_open = int(trips["is_open"].sum())
    assert (f"Round trips (first 50 of {len(trips)}: {len(trips) - n_open} closed, "
            f"{n_open} open)") in text
    assert "Round trips (closed)" in text  # the statistic says which it counts
    assert f"Fills (first 50 of {len(sma.fills):,})" in text
    assert "interval 1 day;" in text
    assert "buy and hold AAPL, FB, GOOG, IBM, MSFT, equal weight" in text

    shown = _visible_text(text)
    assert "T00:00:00" not in shown
    assert "00:00:00" not in shown
    assert not re.search(r"\d\.\d{5,}", shown), re.search(r".{30}\d\.\d{5,}.{10}", shown)
    assert not re.search(r"\bnan\b", shown, re.I)
    assert "2008-01-02" in shown

    fills_section = text.split("<h2 id='fills'>")[1]
    assert fills_section.count("<tr>") == 1 + 50  # header + the first 50 fills
    first = sma.fills.iloc[0]
    assert f'data-v="{first["fill_id"]}">{first["fill_id"]}</td>' in fills_section
    # Cells sort by their raw values.
    assert f'data-v="{float(first["price"])!r}"' in fills_section


def test_report_takes_a_benchmark_series_or_none(sma: BacktestResult, tmp_path: Path) -> None:
    series = pd.Series(np.linspace(1.0, 2.0, len(sma.equity)), index=sma.equity.index,
                       name="My index")
    text = sma.report(tmp_path / "b.html", benchmark=series).read_text()
    assert "benchmark: My index" in text
    assert "benchmark 100.00%" in text  # the series doubles
    none = sma.report(tmp_path / "n.html", benchmark=False).read_text()
    assert "benchmark: none" in none
    assert "Beta to benchmark" not in none


def test_report_of_a_run_without_fills(tmp_path: Path) -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=30, seed=1, freq="1min")
    r = run_orders(bars, [], cash=1000)
    text = r.report(tmp_path / "e.html").read_text()
    assert "Round trips (0)" in text
    assert "Fills (0)" in text
    assert "interval 1 minute (times in UTC);" in text
    assert not re.search(r"\bnan\b", _visible_text(text), re.I)


def _visible_text(page: str) -> str:
    """The page's text as a reader sees it: no tags, scripts, styles or JSON specs."""
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# --------------------------------------------------------------------------- in a browser
def _chromium() -> str | None:
    for name in (os.environ.get("SIMBROKER_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        if name and (found := shutil.which(name)):
            return found
    return None


_PROBE = """<script>
(function () {
  var th = document.querySelector("#trades th[data-col=pnl]");
  th.click();
  var chart = document.getElementById("equity-chart");
  var box = chart.getBoundingClientRect();
  chart.dispatchEvent(new WheelEvent("wheel", {deltaY: -100, bubbles: true,
    cancelable: true, clientX: box.left + box.width / 2, clientY: box.top + 50}));
  // Drag across the middle third of the rolling chart: it zooms to about that range.
  var roll = document.getElementById("rolling-chart"), rb = roll.getBoundingClientRect();
  function mouse(type, f, target) {
    target.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true,
      clientX: rb.left + rb.width * f, clientY: rb.top + 60}));
  }
  mouse("mousedown", 0.4, roll); mouse("mousemove", 0.7, roll); mouse("mouseup", 0.7, window);
  document.documentElement.dataset.probe = "ran";
})();
</script>"""


def _browser(exe: str, args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
           "--window-size=1400,900", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_report_in_a_real_browser(sma: BacktestResult,
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium or Chrome found (apt-get install chromium, or set "
                    "SIMBROKER_CHROMIUM): the report's look was not checked in a browser")
    out = tmp_path_factory.mktemp("report-artifacts")
    page = sma.report(out / "report.html", max_rows=200)
    shot = out / "report-1400x900.png"
    done = _browser(exe, [f"--screenshot={shot}", page.as_uri()], out / "profile")
    assert shot.exists(), done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"report screenshot: {shot}")
    if target := os.environ.get("SIMBROKER_ARTIFACTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)

    probed = out / "probed.html"
    probed.write_text(page.read_text().replace("</body>", _PROBE + "\n</body>"))
    dom = _browser(exe, ["--dump-dom", probed.as_uri()], out / "profile").stdout
    root = re.search(r"<html[^>]*>", dom)
    assert root is not None, dom[:500]
    tag = root.group(0)
    assert 'data-probe="ran"' in tag, tag
    assert 'data-fits="true"' in tag, tag  # no horizontal scrolling at 1,400 px
    # The click sorted the round trips by P&L, ascending, empty cells last.
    trades = dom.split('<table id="trades"')[1].split("</table>")[0]
    assert 'aria-sort="ascending"' in trades
    col = [c.key for c in _TRADE_COLUMNS].index("pnl")
    rows = re.findall(r"<tr>(.*?)</tr>", trades.split("<tbody>")[1], re.S)
    values = [float(re.findall(r'data-v="([^"]*)"', row)[col]) for row in rows]
    assert len(values) == min(200, len(sma.trades))
    assert values == sorted(values)
    # The wheel zoomed the equity chart in.
    rng = re.search(r'id="equity-chart"[^>]*data-range="(\d+):(\d+)"', dom)
    assert rng is not None
    assert 0 < int(rng.group(2)) - int(rng.group(1)) < len(sma.equity) - 1
    drag = re.search(r'id="rolling-chart"[^>]*data-range="(\d+):(\d+)"', dom)
    assert drag is not None
    lo, hi = int(drag.group(1)), int(drag.group(2))
    n = len(sma.equity)
    assert 0.25 * n < lo < 0.45 * n
    assert 0.6 * n < hi < 0.8 * n
