"""Alpaca's fault scenario for ``bench_faults.py``: the adapter on alpaca-py's models
against FakeAlpaca while it stalls answers, rate-limits, loses answers, silences,
duplicates and reorders the stream, and restarts (itself and the adapter).

    python benchmarks/bench_faults.py --broker alpaca --orders 1000 --faults 50

The strategy sends ``orders`` orders, each with its own ``client_order_id``, and
resubmits the same id whenever ``submit_order`` raises (after Alpaca's wait on a 429),
except for a refusal by the venue's rules (:class:`~simbroker.errors.OrderRejected`,
e.g. a sell while flat with a buy still open: Alpaca's one side at a time), which is
final and counted in ``refused`` (``refused_but_placed`` must be 0);
the market trades every 10 orders. One order in 20 is a bracket (a market entry with
its two exits) and one in 20 a resting gtc limit that is then replaced (repeated while
``replace_order`` raises); ``replace_live_versions_wrong`` counts replaced orders that do
not end with exactly one live version at the venue. At the end every order at the venue
is compared with what the strategy was told, and every fill with what the adapter
reported.

Figures: the safety counts (all 0 for a safe run), ``faults_injected`` by kind,
``reconnects`` of the trade stream, the latencies of an acknowledged ``submit_order``
(the call that returned) and of a fill (from the venue's trade to the adapter having
booked it), and the same latencies for raw alpaca-py (``TradingClient`` and
``TradingStream``) on a fault-free fake.
"""

from __future__ import annotations

import random
import statistics
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simbroker.brokers.alpaca import AlpacaBroker, fill_id
from simbroker.errors import BrokerRateLimited, OrderRejected, ReplaceRejected, SimbrokerError
from simbroker.testing.fake_alpaca import OPEN, FakeAlpaca, stop_sdk_stream

SYMBOLS = [f"S{i:02d}" for i in range(10)]
KINDS = ("stalled_answer", "stalled_send", "stalled_send_and_lookup", "rate_limited",
         "lost_answer_504", "http_503", "silent_stream", "stream_drop", "duplicate_events",
         "reordered_events", "venue_restart", "adapter_restart")
BROKER_OPTS: dict[str, Any] = {"timeout": 0.5, "heartbeat": 0.6, "fallback_poll": 0.25,
                               "reconnect_backoff": (0.05, 0.3), "pending_grace": 5.0}


def _ms(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values) if values else 0.0


def _wait(cond: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class _Run:
    def __init__(self, fake: FakeAlpaca, seed: int):
        self.fake = fake
        self.rng = random.Random(seed)
        self.broker = self._connect()
        self.confirmed: dict[str, str] = {}  # client_order_id -> order id told
        self.ack: list[float] = []
        self.fill_lat: list[float] = []
        self.reconnects = 0
        self.injected: Counter[str] = Counter()
        self.attempts = 0
        self.replace_attempts = 0
        self.replaced: list[str] = []
        self.refused: list[str] = []  # refused by the venue's rules, never placed

    def _connect(self) -> AlpacaBroker:
        b = AlpacaBroker.for_fake(self.fake, **BROKER_OPTS)
        _wait(lambda: b.stream_state == "ready")
        return b

    def submit(self, cid: str, symbol: str, side: str, qty: float, **kinds: Any) -> None:
        while True:
            self.attempts += 1
            t0 = time.perf_counter()
            try:
                info = self.broker.submit_order(symbol, side, qty, client_order_id=cid,
                                                **kinds)
            except BrokerRateLimited as exc:
                time.sleep(exc.retry_after or 0.1)
                continue
            except OrderRejected:  # the venue's own rule (one side at a time): final
                self.refused.append(cid)
                return
            except SimbrokerError:
                time.sleep(0.05)
                continue
            self.ack.append(time.perf_counter() - t0)
            self.confirmed[cid] = info["order_id"]
            return

    def replace(self, cid: str, limit_price: float) -> None:
        oid = self.confirmed[cid]
        while True:
            self.replace_attempts += 1
            try:
                self.broker.replace_order(oid, limit_price=limit_price)
                return
            except BrokerRateLimited as exc:
                time.sleep(exc.retry_after or 0.1)
            except ReplaceRejected:
                raise  # never expected here: the order rests far from the market
            except SimbrokerError:
                time.sleep(0.05)

    def trade(self) -> None:
        t0 = time.perf_counter()
        made = self.fake.step()
        for a in made:
            if self.broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"])}, 15,
                                          reconcile=False):
                self.fill_lat.append(time.perf_counter() - t0)
        self.fake.duplicate_events = self.fake.reorder_events = False

    def inject(self, kind: str) -> None:
        fake = self.fake
        self.injected[kind] += 1
        if kind == "stalled_answer":
            fake.stall_next(1.0, method="POST", path="/v2/orders")
        elif kind == "stalled_send":
            fake.stall_next(1.0, method="POST", path="/v2/orders", before=True)
        elif kind == "stalled_send_and_lookup":
            fake.stall_next(1.0, method="POST", path="/v2/orders", before=True)
            fake.stall_next(1.0, method="GET", path="/v2/orders:by_client_order_id")
        elif kind == "rate_limited":
            fake.rate_limit_next(1, retry_after=0.2)
        elif kind == "lost_answer_504":
            fake.lose_next_response()
        elif kind == "http_503":
            fake.fail_next(503, message="service unavailable", method="POST")
        elif kind == "silent_stream":
            fake.silence_stream()
        elif kind == "stream_drop":
            fake.drop_stream()
        elif kind == "duplicate_events":
            fake.duplicate_events = True
        elif kind == "reordered_events":
            fake.reorder_events = True
        elif kind == "venue_restart":
            fake.restart(downtime=0.2)
        elif kind == "adapter_restart":
            self.reconnects += self.broker.stream_connects - 1
            self.broker.close()
            self.broker = self._connect()


def _live_versions(fake: FakeAlpaca, oid: str | None) -> int:
    """Open Alpaca orders in the replace chain that starts at ``oid``."""
    n = 0
    while oid is not None:
        n += fake.orders[oid]["status"] in OPEN
        oid = fake.orders[oid]["replaced_by"]
    return n


def run(orders: int, faults: int, seed: int) -> dict[str, Any]:
    """Send ``orders`` orders through ``faults`` injected faults; return the figures."""
    rng = random.Random(seed)
    cash0 = 1e12
    with FakeAlpaca(cash=cash0) as fake:
        for s in SYMBOLS:
            fake.set_price(s, 50.0 + rng.randrange(100))
        r = _Run(fake, seed)
        at = Counter(rng.randrange(orders) for _ in range(faults))
        kinds = [KINDS[i % len(KINDS)] for i in range(faults)]
        rng.shuffle(kinds)
        for i in range(orders):
            for _ in range(at.get(i, 0)):
                r.inject(kinds.pop())
            side = "buy" if rng.random() < 0.6 else "sell"
            sym, qty, cid = rng.choice(SYMBOLS), float(rng.randint(1, 5)), f"bench-{seed}-{i}"
            px = fake.prices[sym]
            if i % 20 == 5:
                r.submit(cid, sym, "buy", qty, order_class="bracket",
                         take_profit={"limit_price": round(px * 1.5, 2)},
                         stop_loss={"stop_price": round(px * 0.5, 2)})
            elif i % 20 == 15:
                r.submit(cid, sym, "buy", qty, order_type="limit", limit_price=1.0,
                         tif="gtc")
                if cid in r.confirmed:  # not refused (a sell of its symbol was open)
                    r.replace(cid, 2.0)
                    r.replaced.append(r.confirmed[cid])
            else:
                r.submit(cid, sym, side, qty)
            if i % 10 == 9:
                r.trade()
        r.trade()
        fake.release_stalls()
        venue_fills = {fill_id(a["order_id"], a["cum_qty"]): a for a in fake.activities}
        broker = r.broker
        broker.wait_for_fills(venue_fills, 20)
        fills = broker.get_fills()
        r.reconnects += broker.stream_connects - 1
        got = Counter(f["fill_id"] for f in fills)
        # The strategy's own orders: not the legs of its brackets, not replacements.
        venue = [(c, o) for c, o in fake.orders_by_client_id()
                 if o["_parent"] is None and o["replaces"] is None]
        per_cid = Counter(cid for cid, _ in venue)
        venue_ids = {cid: o["id"] for cid, o in venue}
        positions: dict[str, float] = {}
        cash = cash0
        for f in fills:
            sign = 1.0 if f["side"] == "buy" else -1.0
            positions[f["symbol"]] = positions.get(f["symbol"], 0.0) + sign * f["qty"]
            cash -= sign * f["qty"] * f["price"]
        positions = {s: q for s, q in positions.items() if abs(q) > 1e-9}
        held = broker.get_positions()
        figures: dict[str, Any] = {
            "duplicates": sum(n - 1 for n in per_cid.values()),
            "lost": sum(1 for cid in r.confirmed if cid not in venue_ids)
            + sum(1 for cid in venue_ids if cid not in r.confirmed),
            "refused_but_placed": sum(1 for cid in r.refused if cid in venue_ids),
            "id_collisions": sum(1 for cid, oid in r.confirmed.items()
                                 if venue_ids.get(cid, oid) != oid)
            + (len(r.confirmed) - len(set(r.confirmed.values()))),
            "fills_missed": sum(1 for k in venue_fills if k not in got),
            "fills_doubled": sum(n - 1 for n in got.values())
            + sum(1 for k in got if k not in venue_fills),
            "position_mismatch": sum(1 for s in set(positions) | set(fake.positions)
                                     | set(held)
                                     if not (abs(positions.get(s, 0.0)
                                                 - fake.positions.get(s, 0.0)) < 1e-9
                                             and abs(held.get(s, 0.0)
                                                     - fake.positions.get(s, 0.0)) < 1e-9)),
            "cash_mismatch": int(abs(cash - fake.cash) > 1e-3 * max(1.0, abs(cash0) * 1e-12)
                                 or abs(broker.get_cash() - fake.cash) > 1e-3),
            "replace_live_versions_wrong": sum(
                1 for oid in r.replaced if _live_versions(fake, oid) != 1),
            "orders": len(r.confirmed),
            "refused": len(r.refused),
            "replace_attempts": r.replace_attempts,
            "submit_attempts": r.attempts,
            "fills": len(fills),
            "faults_injected": dict(sorted(r.injected.items())),
            "venue_fault_events": dict(sorted(fake.faults.items())),
            "reconnects": r.reconnects,
            "ack_latency_ms_median": _median_ms(r.ack),
            "ack_latency_ms_p99": _ms(r.ack, 0.99),
            "fill_latency_ms_median": _median_ms(r.fill_lat),
            "fill_latency_ms_p99": _ms(r.fill_lat, 0.99),
        }
        broker.close()
    figures.update(_raw_sdk(min(orders, 500), seed))
    return figures


def _raw_sdk(orders: int, seed: int) -> dict[str, Any]:
    """alpaca-py's TradingClient and TradingStream on a fault-free fake."""

    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from alpaca.trading.stream import TradingStream

    rng = random.Random(seed)
    ack: list[float] = []
    fill_lat: list[float] = []
    with FakeAlpaca(cash=1e12) as fake:
        for s in SYMBOLS:
            fake.set_price(s, 50.0 + rng.randrange(100))
        tc = TradingClient(fake.key, fake.secret, paper=True, url_override=fake.rest_url)
        seen: dict[str, float] = {}
        lock = threading.Lock()

        async def on_update(update: Any) -> None:
            if str(getattr(update.event, "value", update.event)) in ("fill", "partial_fill"):
                with lock:
                    seen[f"{update.order.id}-{float(update.order.filled_qty)!r}"] = \
                        time.perf_counter()

        stream = TradingStream(fake.key, fake.secret, paper=True,
                               url_override=fake.stream_url)
        stream.subscribe_trade_updates(on_update)
        thread = threading.Thread(target=stream.run, daemon=True)
        thread.start()
        _wait(lambda: fake.listeners == 1)
        try:
            for i in range(orders):
                req = MarketOrderRequest(symbol=rng.choice(SYMBOLS), qty=rng.randint(1, 5),
                                         side=OrderSide.BUY if rng.random() < 0.6
                                         else OrderSide.SELL,
                                         time_in_force=TimeInForce.DAY,
                                         client_order_id=f"raw-{seed}-{i}")
                t0 = time.perf_counter()
                try:
                    tc.submit_order(req)
                except APIError:  # 403: one side at a time; Alpaca's answer all the same
                    continue
                ack.append(time.perf_counter() - t0)
                if i % 10 == 9:
                    t0 = time.perf_counter()
                    made = fake.step()
                    want = [fill_id(a["order_id"], a["cum_qty"]) for a in made]
                    _wait(lambda want=want: all(w in seen for w in want), 10)
                    with lock:
                        fill_lat.extend(seen[w] - t0 for w in want if w in seen)
        finally:
            stop_sdk_stream(fake, stream, thread)
    return {"raw_orders": orders,
            "raw_ack_latency_ms_median": _median_ms(ack), "raw_ack_latency_ms_p99": _ms(ack, 0.99),
            "raw_fill_latency_ms_median": _median_ms(fill_lat),
            "raw_fill_latency_ms_p99": _ms(fill_lat, 0.99)}


if __name__ == "__main__":
    import json

    print(json.dumps(run(200, 12, 7), indent=2))
