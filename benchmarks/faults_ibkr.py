"""IBKR under injected faults: the scenario ``bench_faults.py --broker ibkr`` runs.

A strategy sends ``orders`` orders (80 % market, filled at the next step; 10 % market
brackets, whose parent fills at the next step and whose exits are then cancelled; 10 %
far limits, cancelled right after) through :class:`~simbroker.brokers.ibkr.IBKRBroker` with
the real client library against :class:`~simbroker.testing.fake_tws.FakeTWS`, which
injects ``faults`` faults at random orders, in turn: the socket closes before TWS reads
the order, after it reads it but before the ack, while a fill is delivered, and a drop
whose reconnect is dropped again during the start-up sync (for a bracket, a drop before
TWS reads a leg hits a random one of its three legs). Whenever ``submit_order`` (or
``cancel_order``) raises, the strategy calls it again with the same ``client_order_id``.

The venue's own records are the truth the figures are counted against (the orders TWS
transmitted: a bracket leg it held untransmitted when the connection dropped, and that the
adapter then canceled there, never worked; a bracket whose parent filled without its
stop-loss at TWS counts as lost). The raw client's
latencies come from the same fake, with no faults, placing orders directly with
``IB.placeOrder``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import threading
import time
from collections import Counter
from typing import Any

from simbroker.brokers.ibkr import IBKRBroker
from simbroker.brokers.ibkr.translate import ib_lib
from simbroker.errors import OrderRejected, SimbrokerError
from simbroker.testing.fake_tws import FakeTWS

KINDS = ("drop_before_read", "drop_after_read", "drop_during_fill", "drop_during_sync")
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
RETRIES = 200


def _ms(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    if q == 0.5:
        return statistics.median(samples) * 1000
    xs = sorted(samples)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def _retry(call: Any) -> tuple[Any, int]:
    """``call()`` until it answers (the strategy's policy); the answer and the errors."""
    errors = 0
    for _ in range(RETRIES):
        try:
            return call(), errors
        except OrderRejected:
            raise
        except SimbrokerError:
            errors += 1
    raise RuntimeError(f"no answer after {RETRIES} tries")


def _raw_latencies(tws: FakeTWS, n: int) -> dict[str, float]:
    """The client library alone (no adapter) on the same fake: ack and fill latency."""
    acks: list[float] = []
    fills: list[float] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        ib = ib_lib.IB()
        ib.connect("127.0.0.1", tws.port, clientId=77, timeout=5)
        try:
            for i in range(n):
                t0 = time.perf_counter()
                trade = ib.placeOrder(ib_lib.Stock("AAA", "SMART", "USD"),
                                      ib_lib.MarketOrder("BUY" if i % 2 else "SELL", 1,
                                                         tif="DAY", orderRef=f"raw-{i}"))
                while trade.orderStatus.status in ("PendingSubmit", ""):
                    ib.sleep(0)
                acks.append(time.perf_counter() - t0)
                tws.step()
                while not trade.fills or trade.fills[-1].commissionReport.execId == "":
                    ib.sleep(0)
                fills.append(time.perf_counter() - t0)
        finally:
            ib.disconnect()
            loop.close()

    worker = threading.Thread(target=run, name="raw-client")
    worker.start()
    worker.join()
    return {"raw_ack_latency_ms_median": _ms(acks, 0.5), "raw_ack_latency_ms_p99": _ms(acks, 0.99),
            "raw_fill_latency_ms_median": _ms(fills, 0.5),
            "raw_fill_latency_ms_p99": _ms(fills, 0.99)}


def run(orders: int, faults: int, seed: int) -> dict[str, Any]:
    """Run the scenario; every safety figure (``duplicates`` ... ``cash_mismatch``) must
    be 0."""
    logging.getLogger(ib_lib.__name__).setLevel(logging.CRITICAL)
    logging.getLogger("simbroker.brokers.ibkr").setLevel(logging.CRITICAL)
    rng = random.Random(seed)
    at = dict(zip(sorted(rng.sample(range(orders), min(faults, orders))),
                  (KINDS[k % len(KINDS)] for k in range(faults)), strict=False))
    with FakeTWS(cash=10_000_000.0) as tws:
        for s in SYMBOLS:
            tws.set_price(s, 100.0)
        broker = IBKRBroker("127.0.0.1", tws.port, 1, timeout=2.0, ready_wait=10.0,
                            reconnect_backoff=(0.05, 0.25), max_reconnect_attempts=30)
        placed: dict[str, str] = {}   # client order id -> the order id the strategy was told
        brackets: list[str] = []
        group_faults = 0
        cancelled: set[str] = set()
        acks: list[float] = []
        fills: list[float] = []
        errors = 0
        t_start = time.perf_counter()
        try:
            for i in range(orders):
                cid = f"bench-{seed}-{i}"
                sym = rng.choice(SYMBOLS)
                side = rng.choice(("buy", "sell"))
                qty = float(rng.randint(1, 10))
                kind = at.get(i)
                roll = rng.random()
                limit = roll < 0.1 and kind != "drop_during_fill"
                group = 0.1 <= roll < 0.2
                if kind == "drop_before_read":
                    tws.inject(kind, skip=rng.randint(0, 2) if group else 0)
                elif kind == "drop_after_read":
                    tws.inject(kind, skip=2 if group else 0)
                elif kind == "drop_during_sync":
                    tws.inject(kind)
                    tws.drop_connections()
                t0 = time.perf_counter()
                if group:
                    lo, hi = (50.0, 150.0) if side == "buy" else (150.0, 50.0)
                    info, e = _retry(lambda cid=cid, sym=sym, side=side, qty=qty, lo=lo,
                                     hi=hi: broker.submit_order(
                                         sym, side, qty, order_class="bracket",
                                         take_profit={"limit_price": hi},
                                         stop_loss={"stop_price": lo}, client_order_id=cid))
                    brackets.append(cid)
                    group_faults += kind is not None
                elif limit:
                    px = 50.0 if side == "buy" else 150.0
                    info, e = _retry(lambda cid=cid, sym=sym, side=side, qty=qty, px=px:
                                     broker.submit_order(sym, side, qty, "limit",
                                                         limit_price=px, tif="gtc",
                                                         client_order_id=cid))
                else:
                    info, e = _retry(lambda cid=cid, sym=sym, side=side, qty=qty:
                                     broker.submit_order(sym, side, qty,
                                                         client_order_id=cid))
                acks.append(time.perf_counter() - t0)
                errors += e
                placed[cid] = info["order_id"]
                if limit:
                    _, e = _retry(lambda oid=info["order_id"]: broker.cancel_order(oid))
                    errors += e
                    cancelled.add(cid)
                    continue
                if kind == "drop_during_fill":
                    tws.inject(kind)
                made = tws.step()
                if not broker.wait_for_fills({x.exec_id for x in made}, 30):
                    raise RuntimeError(f"fills of {cid} never arrived")
                fills.append(time.perf_counter() - t0)
                for leg in info["legs"]:  # the bracket's exits, now live: cancel them
                    _, e = _retry(lambda leg=leg: broker.cancel_order(leg))
                    errors += e
                    cancelled.add(leg)
            elapsed = time.perf_counter() - t_start
            wait_ok = broker.wait_for_fills({x.exec_id for x in tws.executions}, 30)
            _retry(broker.get_positions)
            got = broker.get_fills()
            positions = broker.get_positions()
            cash = broker.get_cash()
            reconnects = broker.reconnects
            opened = broker.conn.connections_opened
            per_outage = list(broker.conn.attempts_per_outage)
        finally:
            broker.close()
        worked = [o for o in tws.orders.values() if o.worked]
        refs = Counter(o.order_ref for o in worked)
        unprotected = sum(1 for cid in brackets if refs[cid] and not refs[f"{cid}.sl"])
        venue_ids = {x.exec_id for x in tws.executions}
        got_ids = Counter(f["fill_id"] for f in got)
        told = Counter(placed.values())
        wrong_cancel = sum(1 for o in worked
                           if o.status == "Cancelled" and o.order_ref not in cancelled)
        symbols = set(tws.positions) | set(positions)
        figures: dict[str, Any] = {
            "duplicates": sum(n - 1 for n in refs.values() if n > 1),
            "lost": sum(1 for cid in placed if refs[cid] == 0) + unprotected
                    + sum(1 for cid in cancelled
                          if any(o.order_ref == cid and o.status != "Cancelled"
                                 for o in worked)),
            "id_collisions": sum(n - 1 for n in told.values() if n > 1) + wrong_cancel
                             + sum(1 for cid, oid in placed.items() if oid != cid),
            "fills_missed": len(venue_ids - set(got_ids)) + (0 if wait_ok else 1),
            "fills_doubled": sum(n - 1 for n in got_ids.values() if n > 1)
                             + len(set(got_ids) - venue_ids),
            "position_mismatch": sum(1 for s in symbols if abs(
                positions.get(s, 0.0) - tws.positions.get(s, 0.0)) > 1e-9),
            "cash_mismatch": int(abs(cash - tws.cash) > 1e-6),
            "orders": orders,
            "brackets": len(brackets),
            "faults_on_brackets": group_faults,
            "faults_injected": dict(tws.faults_injected),
            "faults_unfired": len(tws.armed()),
            "strategy_retries": errors,
            "reconnects": reconnects,
            "connections_opened": opened,
            "max_connections_per_outage": max(per_outage, default=0),
            "seconds": elapsed,
            "ack_latency_ms_median": _ms(acks, 0.5),
            "ack_latency_ms_p99": _ms(acks, 0.99),
            "fill_latency_ms_median": _ms(fills, 0.5),
            "fill_latency_ms_p99": _ms(fills, 0.99),
        }
        figures.update(_raw_latencies(tws, min(orders, 300)))
    return figures
