"""Risk state survives restarts: a resumed run makes the uninterrupted run's decisions."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simbroker
from simbroker import Bars, Broker, History, PaperBroker, RiskRejected
from simbroker.feeds import ReplayFeed
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.runner import RealtimeRunner, paper_broker_from_log, read_resume_point
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log

FILL_KEYS = ("timestamp", "symbol", "side", "qty", "price", "fee")


def flat_bars(closes: list[float], *, every: np.timedelta64, symbols: int = 1) -> Bars:
    ts = np.datetime64("2024-01-02T14:30", "ns") + np.arange(len(closes)) * every
    px = np.repeat(np.asarray(closes, float)[:, None], symbols, axis=1)
    names = ["A"] if symbols == 1 else [f"S{i}" for i in range(symbols)]
    return Bars.from_arrays(ts, names, open=px, high=px, low=px, close=px,
                            volume=np.full_like(px, 1e6))


class Crash(BaseException):
    """The process dying in the middle of a bar, after that bar's orders went out."""


class CrashAt:
    def __init__(self, inner: Any, at: int | None):
        self.inner, self.at = inner, at

    def on_bar(self, broker: Broker, history: History) -> None:
        self.inner.on_bar(broker, history)
        if history.t == self.at:
            raise Crash


def run(strategy: Any, bars: Bars, limits: RiskLimits, path: Path, *,
        max_bars: int | None = None, crash_at: int | None = None) -> RealtimeRunner:
    resume = read_resume_point(path)
    with TradeLog(path) as log:
        broker = paper_broker_from_log(bars, resume, trade_log=log)
        runner = RealtimeRunner(CrashAt(strategy, crash_at), broker, ReplayFeed(bars),
                                trade_log=log, risk=limits, resume=resume or False,
                                handle_signals=False, max_bars=max_bars)
        with contextlib.suppress(Crash):
            runner.run()
    return runner


def run_with_restarts(make: Any, bars: Bars, limits: RiskLimits, path: Path,
                      stops: list[tuple[str, int]]) -> None:
    """``("stop", n)``: a clean stop after n more bars; ``("crash", t)``: dies in bar t."""
    for kind, n in stops:
        if kind == "stop":
            run(make(), bars, limits, path, max_bars=n)
        else:
            run(make(), bars, limits, path, crash_at=n)
    run(make(), bars, limits, path)


def fills(path: Path) -> list[tuple[Any, ...]]:
    return [tuple(f[k] for k in FILL_KEYS) for f in replay_trade_log(path).fills]


def refusals(path: Path) -> dict[str, set[Any]]:
    """Which bars saw a refusal, per rule (a replayed bar refuses again: a set)."""
    out: dict[str, set[Any]] = {}
    for r in read_trade_log(path):
        if r["event"] == "rejected":
            out.setdefault(r["rule"], set()).add(r["ts"])
    return out


class BuyEachBar:
    def __init__(self, qty: float = 50, per_bar: int = 1):
        self.qty, self.per_bar = qty, per_bar

    def on_bar(self, broker: Broker, history: History) -> None:
        for _ in range(self.per_bar):
            broker.submit_order("A", "buy", self.qty)


class Swing:
    """Trades both ways on synthetic bars, so the daily P&L moves up and down."""

    def on_bar(self, broker: Broker, history: History) -> None:
        t = history.t
        held = broker.get_positions()
        for i, sym in enumerate(history.symbols):
            if (t + i) % 3 == 0:
                broker.submit_order(sym, "buy", 20)
            elif held.get(sym, 0) > 0 and (t + i) % 5 == 0:
                broker.submit_order(sym, "sell", held[sym])


STOPS = {
    "stop every 5 bars": [("stop", 5)] * 20,
    "stop every bar": [("stop", 1)] * 30,
    "crashes": [("crash", 3), ("crash", 9), ("crash", 12), ("crash", 13)],
    "mixed": [("stop", 2), ("crash", 6), ("stop", 4), ("crash", 14), ("crash", 14)],
}


@pytest.mark.parametrize("stops", list(STOPS.values()), ids=list(STOPS))
def test_daily_loss_baseline_survives_restarts(tmp_path: Path,
                                               stops: list[tuple[str, int]]) -> None:
    bars = flat_bars([100.0 - 0.5 * i for i in range(40)], every=np.timedelta64(1, "m"))
    limits = RiskLimits(max_daily_loss=2_000)
    run_with_restarts(BuyEachBar, bars, limits, tmp_path / "straight.jsonl", [])
    run_with_restarts(BuyEachBar, bars, limits, tmp_path / "restarts.jsonl", stops)
    want = fills(tmp_path / "straight.jsonl")
    assert 0 < len(want) < 40  # the kill switch tripped in the uninterrupted run
    assert fills(tmp_path / "restarts.jsonl") == want
    assert refusals(tmp_path / "restarts.jsonl") == refusals(tmp_path / "straight.jsonl")


@pytest.mark.parametrize("stops", list(STOPS.values()), ids=list(STOPS))
def test_rate_window_survives_restarts(tmp_path: Path, stops: list[tuple[str, int]]) -> None:
    bars = flat_bars([100.0] * 30, every=np.timedelta64(10, "s"))  # 6 bars a minute
    limits = RiskLimits(max_orders_per_minute=6)
    strategy = lambda: BuyEachBar(1, per_bar=2)  # noqa: E731 - 12 orders a minute
    run_with_restarts(strategy, bars, limits, tmp_path / "straight.jsonl", [])
    run_with_restarts(strategy, bars, limits, tmp_path / "restarts.jsonl", stops)
    want = fills(tmp_path / "straight.jsonl")
    assert len(want) < 59  # the limit refused some
    assert fills(tmp_path / "restarts.jsonl") == want
    assert refusals(tmp_path / "restarts.jsonl") == refusals(tmp_path / "straight.jsonl")


@pytest.mark.parametrize("every", [3, 7, 8])
def test_daily_loss_across_days_survives_restarts(tmp_path: Path, every: int) -> None:
    """Hourly bars over several days: restarts land mid-day and on day boundaries."""
    raw = simbroker.synthetic_bars(n_symbols=2, n_bars=64, seed=4)
    ts = np.datetime64("2024-01-02T00:00", "ns") + np.arange(64) * np.timedelta64(3, "h")
    bars = Bars.from_arrays(ts, list(raw.symbols), open=raw.open, high=raw.high, low=raw.low,
                            close=raw.close, volume=raw.volume)
    limits = RiskLimits(max_daily_loss=40, max_orders_per_minute=2, cancel_on_kill=False)
    run_with_restarts(Swing, bars, limits, tmp_path / "straight.jsonl", [])
    straight = read_trade_log(tmp_path / "straight.jsonl")
    assert [r for r in straight if r["event"] == "kill"], "this seed trips the kill switch"
    stops: list[tuple[str, int]] = [("stop", every)] * (64 // every)
    run_with_restarts(Swing, bars, limits, tmp_path / "restarts.jsonl", stops)
    assert fills(tmp_path / "restarts.jsonl") == fills(tmp_path / "straight.jsonl")
    assert refusals(tmp_path / "restarts.jsonl") == refusals(tmp_path / "straight.jsonl")


class RestingBuy:
    """Keeps a GTC buy limit of 100 at 50 working whenever it holds nothing."""

    def on_bar(self, broker: Broker, history: History) -> None:
        if not broker.get_positions():
            broker.submit_order("A", "buy", 100, "limit", limit_price=50, tif="gtc")


def test_replaced_orders_count_toward_exposure(tmp_path: Path) -> None:
    bars = flat_bars([100.0] * 6 + [45.0] * 4, every=np.timedelta64(1, "D"))
    path = tmp_path / "log.jsonl"
    run_with_restarts(RestingBuy, bars, RiskLimits(max_position=100), path, [("stop", 1)] * 5)
    assert replay_trade_log(path).positions == {"A": 100.0}
    records = read_trade_log(path)
    assert sum(r["event"] == "rejected" and r["rule"] == "max_position" for r in records) == 5
    assert sum(r["event"] == "filled" for r in records) == 1


class BuyThenRest:
    """Buys 100 at bar 0 and leaves a GTC buy limit of 10 at 60 working."""

    def on_bar(self, broker: Broker, history: History) -> None:
        if history.t == 0:
            broker.submit_order("A", "buy", 100)
            broker.submit_order("A", "buy", 10, "limit", limit_price=60, tif="gtc")


@pytest.mark.parametrize("stops", [[("stop", 2)], [("stop", 1)] * 4, [("crash", 3)],
                                   [("stop", 5)]], ids=["once", "each bar", "crash", "at kill"])
def test_the_kill_switch_cancels_replaced_orders(tmp_path: Path,
                                                 stops: list[tuple[str, int]]) -> None:
    bars = flat_bars([100.0] * 5 + [70.0, 55.0, 55.0], every=np.timedelta64(1, "D"))
    path = tmp_path / "log.jsonl"
    run_with_restarts(BuyThenRest, bars, RiskLimits(max_daily_loss=2_000), path, stops)
    records = read_trade_log(path)
    kill = next(i for i, r in enumerate(records) if r["event"] == "kill")
    assert not [r for r in records[kill:] if r["event"] == "filled"]
    assert replay_trade_log(path).open_orders == {}
    assert replay_trade_log(path).positions == {"A": 100.0}


class ProtocolOnly:
    """The six protocol methods and nothing else (like a live adapter without order lookup)."""

    def __init__(self, inner: PaperBroker):
        self.submit_order = inner.submit_order
        self.cancel_order = inner.cancel_order
        self.get_positions = inner.get_positions
        self.get_cash = inner.get_cash
        self.get_fills = inner.get_fills
        self.now = inner.now
        self.trade_log = inner.trade_log


def test_restore_takes_open_orders_from_the_log_when_the_broker_cannot_list_them(
        tmp_path: Path) -> None:
    bars = flat_bars([100.0] * 5, every=np.timedelta64(1, "D"))
    path = tmp_path / "log.jsonl"
    inner = PaperBroker(bars, slippage=0, fees=0, trade_log=path)
    inner.step()
    first = RiskBroker(ProtocolOnly(inner), RiskLimits(max_position=100))  # type: ignore[arg-type]
    first.submit_order("A", "buy", 60, client_order_id="a")
    inner.step()  # filled: held 60
    first.submit_order("A", "buy", 40, "limit", limit_price=50, tif="gtc", client_order_id="b")
    # A new session over the same venue (a restart): nothing in memory, only the log.
    second = RiskBroker(ProtocolOnly(inner), RiskLimits(max_position=100))  # type: ignore[arg-type]
    second.restore(read_trade_log(path))
    with pytest.raises(RiskRejected, match=r"held 60, open buy orders 40"):
        second.submit_order("A", "buy", 1)
    second.kill()  # cancels the order it adopted from the log
    assert inner.get_orders(open_only=True) == []
    inner.close()


def test_restore_cancels_replaced_orders_that_break_a_tightened_limit(tmp_path: Path) -> None:
    bars = flat_bars([100.0] * 5, every=np.timedelta64(1, "D"))
    path = tmp_path / "log.jsonl"
    inner = PaperBroker(bars, slippage=0, fees=0, trade_log=path)
    inner.step()
    RiskBroker(inner, RiskLimits(max_position=100)).submit_order(
        "A", "buy", 80, "limit", limit_price=50, tif="gtc")
    tighter = RiskBroker(inner, RiskLimits(max_position=50))
    canceled = tighter.restore(read_trade_log(path))
    assert [c["status"] for c in canceled] == ["canceled"]
    assert inner.get_orders(open_only=True) == []
    tighter.submit_order("A", "buy", 50)
    inner.close()


def test_a_kill_is_never_forgotten_and_not_re_logged(tmp_path: Path) -> None:
    bars = flat_bars([100.0] * 3 + [50.0] * 5, every=np.timedelta64(1, "D"))
    path = tmp_path / "log.jsonl"
    limits = RiskLimits(max_daily_loss=100)
    run_with_restarts(BuyThenRest, bars, limits, path, [("stop", 4), ("stop", 1), ("stop", 1)])
    records = read_trade_log(path)
    kills = [r for r in records if r["event"] == "kill"]
    assert len(kills) == 1
    assert kills[0]["reason"].startswith("daily loss")
    last = run(BuyThenRest(), bars, limits, path)
    assert last.risk_broker is not None
    assert last.risk_broker.killed == kills[0]["reason"]
