"""The ways around the pre-trade risk limits of issue #14, measured on the paper broker.

    python benchmarks/bench_risk_bypass.py [--trials 20]

Each scenario runs the paper broker behind :class:`~simbroker.risk.RiskBroker` (through the
real-time runner where a restart is involved) and prints what got through. A safe build
prints ``ok`` on every line and exits 0; any bypass exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from simbroker import Bars, Broker, History, PaperBroker, RiskRejected
from simbroker.feeds import ReplayFeed
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.runner import RealtimeRunner, paper_broker_from_log, read_resume_point
from simbroker.tradelog import TradeLog, read_trade_log, replay_trade_log


def flat_bars(closes: list[float], *, step: str = "D", every: int = 1,
              symbols: tuple[str, ...] = ("A",), start: str = "2024-01-02T14:30") -> Bars:
    """Bars ``every`` ``step`` apart whose open, high, low and close are ``closes[t]``."""
    n = len(closes)
    ts = np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(every, step)
    px = np.repeat(np.asarray(closes, float)[:, None], len(symbols), axis=1)
    return Bars.from_arrays(ts, list(symbols), open=px, high=px, low=px, close=px,
                            volume=np.full_like(px, 1e6))


def guarded(limits: RiskLimits, closes: list[float] | None = None) -> tuple[RiskBroker,
                                                                             PaperBroker]:
    inner = PaperBroker(flat_bars(closes or [100.0] * 5), slippage=0, fees=0,
                        cash=1_000_000)
    inner.step()
    return RiskBroker(inner, limits), inner


def accepted(fn: Any) -> bool:
    try:
        fn()
    except RiskRejected:
        return False
    return True


# ------------------------------------------------------------------ single broker
def netting() -> dict[str, Any]:
    broker, inner = guarded(RiskLimits(max_position=100))
    broker.submit_order("A", "sell", 100, "limit", limit_price=150, tif="gtc")
    ok = accepted(lambda: broker.submit_order("A", "buy", 200))
    inner.step()
    return {"buy_200_accepted": ok, "position": inner.get_positions().get("A", 0.0),
            "bypassed": ok}


def notional() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kw in (("sell_limit_0.01", {"side": "sell", "order_type": "limit",
                                          "limit_price": 0.01}),
                     ("buy_stop_0.01", {"side": "buy", "order_type": "stop",
                                        "stop_price": 0.01})):
        broker, inner = guarded(RiskLimits(max_order_notional=10_000))
        accepted(lambda kw=kw, b=broker: b.submit_order("A", qty=1000, **kw))
        inner.step()
        out[name] = sum(f["notional"] for f in inner.get_fills())
    out["bypassed"] = any(v > 10_000 for v in out.values())
    return out


class Latency:
    """The paper broker with a network round trip (1 ms) in ``submit_order``."""

    def __init__(self, inner: PaperBroker):
        self.inner = inner

    def submit_order(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.001)
        return self.inner.submit_order(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def threads(trials: int) -> dict[str, Any]:
    over, worst = 0, 0.0
    for _ in range(trials):
        _, inner = guarded(RiskLimits())
        broker = RiskBroker(Latency(inner), RiskLimits(max_position=100))  # type: ignore[arg-type]
        barrier = threading.Barrier(4)
        results: list[bool] = []

        def buy(barrier: threading.Barrier = barrier, broker: RiskBroker = broker,
                results: list[bool] = results) -> None:
            barrier.wait()
            results.append(accepted(lambda: broker.submit_order("A", "buy", 100)))

        ts = [threading.Thread(target=buy) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        pending = sum(o["qty"] for o in inner.get_orders(open_only=True))
        over += sum(results) > 1
        worst = max(worst, pending)
    return {"trials": trials, "trials_over_limit": over, "max_pending": worst,
            "bypassed": over > 0}


def passthrough() -> dict[str, Any]:
    broker, _ = guarded(RiskLimits(max_position=100))
    try:
        n = len(broker.get_orders())  # type: ignore[attr-defined]
        broker.get_order  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        return {"error": type(exc).__name__, "bypassed": True}
    return {"get_orders": n, "bypassed": False}


# ------------------------------------------------------------------ restarts
class Stop(BaseException):
    """The process dying in the middle of a run."""


def run_in_pieces(strategy: Any, bars: Bars, limits: RiskLimits, pieces: list[int],
                  path: Path) -> None:
    """Run to the end, stopping (clean max_bars stops) after each count in ``pieces``."""
    for n in [*pieces, None]:
        resume = read_resume_point(path)
        with TradeLog(path) as log:
            broker = paper_broker_from_log(bars, resume, trade_log=log, slippage=0, fees=0)
            runner = RealtimeRunner(strategy, broker, ReplayFeed(bars), trade_log=log,
                                    risk=limits, resume=resume or False,
                                    handle_signals=False, max_bars=n)
            with contextlib.suppress(Stop):
                runner.run()


class BuyEachBar:
    """Buys ``qty`` at market on every bar."""

    def __init__(self, qty: float = 10, per_bar: int = 1):
        self.qty, self.per_bar = qty, per_bar

    def on_bar(self, broker: Broker, history: History) -> None:
        for _ in range(self.per_bar):
            broker.submit_order("A", "buy", self.qty)


def fills_and_pnl(path: Path, cash0: float = 100_000.0) -> tuple[int, float]:
    state = replay_trade_log(path)
    last = 0.0
    for rec in read_trade_log(path):
        if rec["event"] == "filled":
            last = float(rec["price"])
    equity = state.cash + sum(q * last for q in state.positions.values())
    return len(state.fills), equity - cash0


def daily_loss(tmp: Path) -> dict[str, Any]:
    closes = [100.0 - 0.5 * i for i in range(120)]  # minute bars falling all day
    bars = flat_bars(closes, step="m")
    limits = RiskLimits(max_daily_loss=2_000)
    run_in_pieces(BuyEachBar(50), bars, limits, [], tmp / "straight.jsonl")
    run_in_pieces(BuyEachBar(50), bars, limits, [5] * 20, tmp / "restarts.jsonl")
    a, b = fills_and_pnl(tmp / "straight.jsonl"), fills_and_pnl(tmp / "restarts.jsonl")
    return {"fills_uninterrupted": a[0], "pnl_uninterrupted": round(a[1]),
            "fills_with_restarts": b[0], "pnl_with_restarts": round(b[1]),
            "bypassed": b[0] != a[0]}


def rate(tmp: Path) -> dict[str, Any]:
    bars = flat_bars([100.0] * 30, step="s", every=10)  # 6 bars a minute, 2 orders each
    limits = RiskLimits(max_orders_per_minute=6)
    run_in_pieces(BuyEachBar(1, per_bar=2), bars, limits, [], tmp / "rs.jsonl")
    run_in_pieces(BuyEachBar(1, per_bar=2), bars, limits, [2] * 14, tmp / "rr.jsonl")
    a, b = fills_and_pnl(tmp / "rs.jsonl")[0], fills_and_pnl(tmp / "rr.jsonl")[0]
    return {"fills_uninterrupted": a, "fills_with_restarts": b, "bypassed": a != b}


class RestingBuy:
    """Keeps a GTC buy limit of 100 at 50 working whenever it holds nothing."""

    def on_bar(self, broker: Broker, history: History) -> None:
        if not broker.get_positions():
            broker.submit_order("A", "buy", 100, "limit", limit_price=50, tif="gtc")


def replaced(tmp: Path) -> dict[str, Any]:
    bars = flat_bars([100.0] * 6 + [45.0] * 4)
    path = tmp / "replaced.jsonl"
    run_in_pieces(RestingBuy(), bars, RiskLimits(max_position=100), [1] * 5, path)
    pos = replay_trade_log(path).positions.get("A", 0.0)
    return {"final_position": pos, "bypassed": pos > 100}


class BuyThenRest:
    """Buys 100 at bar 0 and leaves a GTC buy limit of 10 at 60 working."""

    def on_bar(self, broker: Broker, history: History) -> None:
        if history.t == 0:
            broker.submit_order("A", "buy", 100)
            broker.submit_order("A", "buy", 10, "limit", limit_price=60, tif="gtc")


def kill_cancels(tmp: Path) -> dict[str, Any]:
    bars = flat_bars([100.0] * 5 + [70.0, 55.0, 55.0])
    path = tmp / "kill.jsonl"
    run_in_pieces(BuyThenRest(), bars, RiskLimits(max_daily_loss=2_000), [2], path)
    records = read_trade_log(path)
    kill = next((i for i, r in enumerate(records) if r["event"] == "kill"), len(records))
    after = sum(1 for r in records[kill:] if r["event"] == "filled")
    return {"kill_switch_tripped": kill < len(records), "fills_after_kill": after,
            "bypassed": after > 0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="thread-race trials (20)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # refused orders are expected here
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        scenarios = {
            "opposite orders netted": netting,
            "notional priced off the order's price": notional,
            "restart resets the daily-loss baseline": lambda: daily_loss(tmp),
            "restart resets the rate window": lambda: rate(tmp),
            "re-placed orders invisible to the checks": lambda: replaced(tmp),
            "kill switch leaves re-placed orders": lambda: kill_cancels(tmp),
            "not thread-safe": lambda: threads(args.trials),
            "get_orders/get_order not passed through": passthrough,
        }
        bad = 0
        for name, fn in scenarios.items():
            figures = fn()
            flag = "BYPASSED" if figures.pop("bypassed") else "ok"
            bad += flag != "ok"
            print(f"{flag:9} {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
