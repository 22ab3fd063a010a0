"""kill -9 loop: ``simbroker paper`` killed at random moments, resumed, and checked.

    python benchmarks/bench_crash.py --runs 4 --kills 8 --seed 1

Each run starts ``simbroker paper`` on the bundled sample bars (1,300 daily bars, 5
symbols) with the :class:`Trader` strategy below (market entries, GTC limit exits,
stop-limits, day limits that expire, cancels), SIGKILLs it after a random delay, checks
that the trade log still reads (chain intact; a torn last line is allowed), and starts it
again, which resumes from the log; after ``--kills`` kills it lets the run finish. Kills
land anywhere: mid-bar, mid-write, during a resume's start-up. The final log is then
compared with one uninterrupted run:

- kills survived: kills after which the log read back and the run could go on (half the
  kills wait until the process has written records, half land anywhere after launch);
- duplicates: fills in the killed run's log beyond the uninterrupted run's (same client
  order id, symbol, side, qty, price, fee and time), plus any client order id filled
  beyond its order's quantity;
- lost records: fills of the uninterrupted run missing from the killed run's log;
- state mismatches: runs whose replayed cash, positions or open orders differ.

Exits non-zero when any of the last three is not zero, or a log failed to read.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from simbroker import Broker, History
from simbroker.errors import TradeLogError
from simbroker.tradelog import read_trade_log, replay_trade_log

SPEED = 86_400 * 400  # daily bars at ~2.5 ms each


class Trader:
    """Deterministic in (history, positions), so every resumed bar sends the same orders."""

    def on_bar(self, broker: Broker, history: History) -> None:
        t = history.t
        close = history.last("close")
        held = broker.get_positions()
        for i, sym in enumerate(history.symbols):
            c = float(close[i])
            if np.isnan(c):
                continue
            if (t + i) % 9 == 0:
                broker.submit_order(sym, "buy", 10)
            pos = held.get(sym, 0.0)
            if pos > 0 and (t + i) % 11 == 0:
                broker.submit_order(sym, "sell", pos, "limit", limit_price=c * 1.01, tif="gtc")
            if (t + i) % 13 == 1:
                broker.submit_order(sym, "buy", 3, "stop_limit", stop_price=c * 1.004,
                                    limit_price=c * 0.998, tif="gtc")
            if (t + i) % 17 == 2:
                info = broker.submit_order(sym, "buy", 2, "limit", limit_price=c * 0.97)
                if t % 2:
                    broker.cancel_order(info["order_id"])


def _command(log: Path) -> list[str]:
    return [sys.executable, "-m", "simbroker.cli", "paper", f"{Path(__file__).resolve()}:Trader",
            "--broker", "paper", "--speed", str(SPEED), "--trade-log", str(log)]


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _finish(log: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(log), cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=600, check=False)


def _cid(value: Any) -> str:
    """A client order id without its run id (each run draws its own)."""
    return str(value).split("-", 1)[-1]


def _fills(log: Path) -> collections.Counter[tuple[Any, ...]]:
    return collections.Counter(
        (_cid(f["client_order_id"]), f["symbol"], f["side"], f["qty"], f["price"], f["fee"],
         f["timestamp"]) for f in replay_trade_log(log).fills)


def _state(log: Path) -> tuple[Any, ...]:
    st = replay_trade_log(log)
    return (st.cash, st.positions,
            sorted(_cid(o.get("client_order_id")) for o in st.open_orders.values()))


def _overfilled(log: Path) -> int:
    records = read_trade_log(log)
    ordered: dict[str, float] = {}
    for r in records:
        if r["event"] == "submitted" and r.get("client_order_id"):
            ordered.setdefault(str(r["client_order_id"]), float(r["qty"]))
    filled: collections.Counter[str] = collections.Counter()
    for f in replay_trade_log(records).fills:
        filled[str(f["client_order_id"])] += float(f["qty"])
    return sum(1 for cid, q in filled.items() if q > ordered.get(cid, q) + 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--kills", type=int, default=8, help="kills per run")
    ap.add_argument("--min-delay", type=float, default=0.4)
    ap.add_argument("--max-delay", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench_crash_"))

    t0 = time.monotonic()
    ref_log = work / "reference.jsonl"
    ref = _finish(ref_log, work)
    if ref.returncode != 0:
        print(ref.stderr, file=sys.stderr)
        return 2
    want_fills, want_state = _fills(ref_log), _state(ref_log)
    print(f"uninterrupted run: {sum(want_fills.values())} fills, "
          f"{len(read_trade_log(ref_log))} records, {time.monotonic() - t0:.1f} s")

    totals = collections.Counter[str]()
    for run in range(args.runs):
        log = work / f"run{run}.jsonl"
        kills = 0
        for _ in range(args.kills):
            size0 = log.stat().st_size if log.exists() else 0
            proc = subprocess.Popen(_command(log), cwd=work, env=_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if rng.random() < 0.5:  # half the kills only once this process writes records
                grow_by = time.monotonic() + 60
                while (time.monotonic() < grow_by and proc.poll() is None
                       and (log.stat().st_size if log.exists() else 0) <= size0):
                    time.sleep(0.002)
                deadline = time.monotonic() + rng.uniform(0.0, args.max_delay - args.min_delay)
            else:  # the other half anywhere, start-up and resume included
                deadline = time.monotonic() + rng.uniform(args.min_delay, args.max_delay)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.002)
            if proc.poll() is not None:  # it finished before the kill: the run is over
                proc.communicate()
                break
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            kills += 1
            totals["kills"] += 1
            if (log.stat().st_size if log.exists() else 0) > size0:
                totals["kills_mid_run"] += 1  # it had written records when it died
            try:
                if log.exists():
                    read_trade_log(log)
                totals["kills_survived"] += 1
            except TradeLogError as exc:
                totals["unreadable_logs"] += 1
                print(f"run {run}: log unreadable after kill {kills}: {exc}", file=sys.stderr)
                break
        done = _finish(log, work)
        if done.returncode != 0:
            totals["failed_resumes"] += 1
            print(f"run {run}: resume failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
            continue
        got = _fills(log)
        dup = sum((got - want_fills).values()) + _overfilled(log)
        lost = sum((want_fills - got).values())
        mismatch = _state(log) != want_state
        totals["runs"] += 1
        totals["duplicates"] += dup
        totals["lost_records"] += lost
        totals["state_mismatches"] += int(mismatch)
        starts = sum(1 for r in read_trade_log(log) if r["event"] == "start")
        print(f"run {run}: {kills} kills, {starts} sessions, {sum(got.values())} fills, "
              f"duplicates {dup}, lost {lost}, state {'MISMATCH' if mismatch else 'equal'}")

    print(f"\nkills: {totals['kills']} ({totals['kills_mid_run']} after the process had "
          f"written records), kills survived: {totals['kills_survived']}, "
          f"duplicates: {totals['duplicates']}, lost records: {totals['lost_records']}, "
          f"state mismatches: {totals['state_mismatches']} of {totals['runs']} runs, "
          f"unreadable logs: {totals['unreadable_logs']}, failed resumes: "
          f"{totals['failed_resumes']} ({time.monotonic() - t0:.0f} s)")
    bad = (totals["duplicates"] + totals["lost_records"] + totals["state_mismatches"]
           + totals["unreadable_logs"] + totals["failed_resumes"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
