"""Time hostile inputs to the config loader, ``load_bars`` and ``submit_order``.

    python benchmarks/bench_inputs.py

Each case prints what was raised and how long it took (best of 3). Targets: every YAML
bomb fails in well under a second with ``ConfigError``; a 64 KiB config of the worst
allowed shape (flat, deep to the limit, aliases to the limit) parses in well under a
second too; order and bar errors are ``InvalidOrder``/``DataError`` in milliseconds.
Exits non-zero when any case raises something that is not a ``SimbrokerError``.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from simbroker import Bars, PaperBroker, SimbrokerError
from simbroker.config import MAX_CONFIG_BYTES, load_broker_config
from simbroker.data import load_bars


def laughs(fan_out: int, levels: int = 9) -> str:
    names = "abcdefghijklmnop"[:levels]
    return f"a: &a [{', '.join(['lol'] * fan_out)}]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * fan_out)}]\n" for p, c in itertools.pairwise(names))


def main() -> int:
    tmp = Path(tempfile.mkdtemp())
    secret = "bench-not-a-real-secret-0123456789"

    def config(broker: str, text: str, env: dict[str, str] | None = None) -> Callable[[], object]:
        path = tmp / f"{broker}-{abs(hash(text))}.yaml"
        path.write_text(text)
        return lambda: load_broker_config(broker, path=path, env=env or {})

    flat = "risk:\n  allowed_symbols:\n" + "".join(
        f"  - S{i:05d}\n" for i in range((MAX_CONFIG_BYTES - 40) // 11))
    one_line = "risk: {allowed_symbols: [" + ", ".join(
        f"S{i:05d}" for i in range((MAX_CONFIG_BYTES - 40) // 8)) + "]}\n"
    nested = "risk: {allowed_symbols: " + "[" * 28 + "A" + "]" * 28 + "}\n"  # 32 with root
    cases: dict[str, Callable[[], object]] = {
        "billion laughs (9 x 9 aliases)": config("paper", laughs(9)),
        "wide laughs (8 x 7 aliases)": config("paper", laughs(7, 9)),
        "10,000 nested brackets": config("paper", "cash: " + "[" * 10_000 + "]" * 10_000),
        "10,000 nested braces": config("paper", "cash: " + "{a: " * 10_000 + "}" * 10_000),
        "recursive alias": config("paper", "a: &a [*a]\n"),
        f"block list near {MAX_CONFIG_BYTES // 1024} KiB (valid)": config("paper", flat),
        f"one-line list near {MAX_CONFIG_BYTES // 1024} KiB (valid)": config("paper", one_line),
        "28 nested brackets (allowed)": config("paper", nested),
        "10,000 unclosed ${A:- (allowed)": config("paper", 'data: "' + "${A:-" * 10_000 + '"'),
        "65 KiB file": config("paper", "#" * (MAX_CONFIG_BYTES + 1)),
        "int above 1.8e308": config("paper", "cash: " + "9" * 400 + "\n"),
        "alpaca without keys": config("alpaca", "paper: true\n"),
        "secret env var under data_feed": config(
            "alpaca", "api_key: k\nsecret_key: s\ndata_feed: ${ALPACA_SECRET_KEY}\n",
            {"ALPACA_SECRET_KEY": secret}),
    }
    ts = np.datetime64("2024-01-01", "ns") + np.arange(3) * np.timedelta64(86_400, "s")
    col = np.full((3, 1), 100.0)
    bars = Bars.from_arrays(ts, ["X"], open=col, high=col, low=col, close=col, volume=col)
    for name, kwargs in {"qty 10**309": {"qty": 10**309}, "qty 1e308": {"qty": 1e308},
                         "limit_price True": {"order_type": "limit", "limit_price": True}}.items():
        def submit(kwargs: dict[str, object] = kwargs) -> object:
            args: dict[str, object] = {"qty": 1, "order_type": "market", **kwargs}
            qty, order_type = args.pop("qty"), args.pop("order_type")
            return PaperBroker(bars).submit_order("X", "buy", qty, order_type, **args)
        cases[f"submit_order {name}"] = submit
    dup = pd.DataFrame({"timestamp": ["2024-01-02"], "symbol": ["A"], "open": [10.0],
                        "high": [11.0], "low": [9.0], "Close": [10.5], "close": [99.0],
                        "volume": [100.0]})
    dup.to_csv(tmp / "dup.csv", index=False)
    dup.to_parquet(tmp / "dup.parquet")
    cases["CSV with Close and close"] = lambda: load_bars(tmp / "dup.csv")
    cases["Parquet with Close and close"] = lambda: load_bars(tmp / "dup.parquet")

    failed = 0
    for name, case in cases.items():
        best, outcome = float("inf"), ""
        for _ in range(3):
            start = time.perf_counter()
            try:
                case()
                outcome = "no error"
            except SimbrokerError as exc:
                outcome = f"{type(exc).__name__}: {str(exc).replace(str(tmp), 'TMP')[:90]}"
            except Exception as exc:
                outcome = f"ESCAPED {type(exc).__name__}: {str(exc)[:80]}"
                failed += 1
            best = min(best, time.perf_counter() - start)
        if secret in outcome:
            outcome, failed = "SECRET SHOWN", failed + 1
        print(f"{name:36s} {best * 1000:9.1f} ms  {outcome[:100]}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
