"""Inputs from outside: order arguments, config files and bar files raise only simbroker errors.

Hand-picked cases first (each names the field or key it is about), then Hypothesis fuzz:
whatever arrives, the error is a :class:`~simbroker.errors.SimbrokerError` subclass and a
refused order changes nothing.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from simbroker import Bars, ConfigError, DataError, InvalidOrder, PaperBroker, SimbrokerError
from simbroker.config import AlpacaConfig, IBKRConfig, PaperConfig, load_broker_config
from simbroker.data import load_bars
from simbroker.tradelog import read_trade_log
from simbroker.types import MAX_PRICE, MAX_QTY, Order

# FUZZ_EXAMPLES=5000 for a long hunt; the default keeps this file well under 30 s.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


# How a file is read: every combination of load_bars' reading options.
LOAD_OPTIONS = st.fixed_dictionaries({
    "tz": st.sampled_from([None, "UTC", "America/Chicago"]),
    "dayfirst": st.sampled_from([None, True, False]),
    "bar_time": st.sampled_from(["open", "close"]),
    "volume": st.sampled_from(["reported", "unknown"]),
})


def one_symbol_bars(n: int = 4) -> Bars:
    ts = np.datetime64("2024-01-01", "ns") + np.arange(n) * np.timedelta64(86_400, "s")
    col = np.full((n, 1), 100.0)
    return Bars.from_arrays(ts, ["X"], open=col, high=col + 5, low=col - 5, close=col,
                            volume=col * 10)


BARS = one_symbol_bars()


# -------------------------------------------------------------------- orders
BAD_NUMBERS = [
    10**309, -(10**309), 10**5000, 1e308, MAX_QTY * 2, True, False, np.True_, "5", b"5",
    math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf"), Decimal("NaN"),
    Decimal("1e400"), Decimal("-1"), Fraction(10**400, 3), 0, -1, 1j, None, [1], object(),
]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("field", ["qty", "limit_price", "stop_price"])
def test_bad_numbers_are_invalid_orders_naming_the_field(field: str, value: Any) -> None:
    if value is None and field != "qty":
        pytest.skip("a missing price has its own message")
    args: dict[str, Any] = {"qty": 1, "limit_price": 100.0, "stop_price": 100.0, field: value}
    with pytest.raises(InvalidOrder) as exc:
        Order.create("X", "buy", args["qty"], "stop_limit", limit_price=args["limit_price"],
                     stop_price=args["stop_price"])
    assert exc.value.field == field
    assert str(exc.value).startswith(f"{field} for X must be")
    assert len(str(exc.value)) < 200


def test_huge_quantities_name_the_bound_and_never_reach_inf() -> None:
    with pytest.raises(InvalidOrder, match=r"qty for X must be at most 1e\+15, got an integer "
                                           r"of about 310 digits"):
        Order.create("X", "buy", 10**309)
    with pytest.raises(InvalidOrder, match=r"qty for X must be at most 1e\+15, got 1e\+308"):
        Order.create("X", "buy", 1e308)
    with pytest.raises(InvalidOrder, match=r"limit_price for X must be a number, got True"):
        Order.create("X", "buy", 1, "limit", limit_price=True)
    order = Order.create("X", "buy", MAX_QTY, "limit", limit_price=MAX_PRICE)
    assert math.isfinite(order.qty * order.limit_price * 1e9)  # qty x price, summed a lot


@pytest.mark.parametrize(("value", "expected"), [
    (np.float32(2.5), 2.5), (np.int64(3), 3.0), (np.uint8(7), 7.0), (np.float64(1.25), 1.25),
    (Decimal("1.5"), 1.5), (Fraction(3, 2), 1.5), (10**15, 1e15), (5e-3, 5e-3),
], ids=lambda v: type(v).__name__)
def test_numpy_and_exact_numbers_are_accepted(value: Any, expected: float) -> None:
    order = Order.create("X", "sell", value, "limit", limit_price=value)
    assert order.qty == expected
    assert type(order.qty) is float
    assert order.limit_price == expected
    assert type(order.limit_price) is float


@pytest.mark.parametrize("qty", [10**309, 1e308, True, math.nan, "10"], ids=repr)
def test_paper_broker_logs_a_refused_order_and_changes_nothing(tmp_path: Path, qty: Any) -> None:
    log = tmp_path / "t.jsonl"
    broker = PaperBroker(BARS, cash=10_000.0, trade_log=log)
    with pytest.raises(InvalidOrder, match="qty for X"):
        broker.submit_order("X", "buy", qty)
    with pytest.raises(InvalidOrder, match="limit_price for X"):
        broker.submit_order("X", "buy", 1, "limit", limit_price=qty)
    while broker.has_next:
        broker.step()
    assert broker.get_cash() == 10_000.0
    assert broker.get_positions() == {}
    assert broker.get_orders() == []
    broker.trade_log.close()  # type: ignore[union-attr]
    rejected = [r for r in read_trade_log(log) if r["event"] == "rejected"]
    assert len(rejected) == 2
    assert all(r["reason"].startswith(("qty for X", "limit_price for X")) for r in rejected)


# ---------------------------------------------------------- order fuzz
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([10**309, 1e308, 1e15, 1e-300, 5e-324, 0, -0.0]),
    st.booleans(), st.none(), st.text(max_size=8),
    st.builds(np.float64, st.floats()), st.builds(np.float32, st.floats(width=32)),
    st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)), st.just(np.True_),
    st.decimals(allow_nan=True, allow_infinity=True), st.fractions(),
)
WORDS = st.one_of(st.sampled_from(["buy", "sell", "BUY", "market", "limit", "stop",
                                   "stop_limit", "day", "gtc", "X", ""]),
                  st.text(max_size=6), st.none(), st.integers(), st.booleans())


@FUZZ
@given(symbol=st.one_of(st.just("X"), WORDS), side=WORDS, qty=NUMBERS,
       order_type=WORDS, limit_price=NUMBERS, stop_price=NUMBERS, tif=WORDS,
       client_order_id=st.one_of(st.none(), st.text(max_size=4), st.integers()))
def test_submit_order_raises_only_simbroker_errors(tmp_path: Path, symbol: Any, side: Any,
                                                    qty: Any, order_type: Any,
                                                    limit_price: Any, stop_price: Any,
                                                    tif: Any, client_order_id: Any) -> None:
    broker = PaperBroker(BARS, cash=10_000.0)
    broker.step()
    before = (broker.get_cash(), broker.get_positions(), broker.get_orders())
    try:
        broker.submit_order(symbol, side, qty, order_type, limit_price=limit_price,
                            stop_price=stop_price, tif=tif, client_order_id=client_order_id)
    except SimbrokerError:
        assert (broker.get_cash(), broker.get_positions(), broker.get_orders()) == before
        while broker.has_next:
            broker.step()
        assert broker.get_cash() == 10_000.0
        assert broker.get_positions() == {}
        return
    while broker.has_next:
        broker.step()
    assert math.isfinite(broker.get_cash())
    assert all(math.isfinite(q) for q in broker.get_positions().values())


def test_a_refused_integer_of_any_size_is_logged(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    broker = PaperBroker(BARS, trade_log=log)
    try:
        with pytest.raises(InvalidOrder, match="qty for X must be at most"):
            broker.submit_order("X", "buy", 10**5000)
        with pytest.raises(InvalidOrder):
            broker.submit_order("X" * 1_000_000, "buy", 1)
    finally:
        broker.close()
    rejected = [r for r in read_trade_log(log) if r["event"] == "rejected"]
    assert rejected[0]["qty"] == "an integer of about 5,001 digits"
    assert len(rejected[1]["symbol"]) < 200
    assert log.stat().st_size < 10_000  # the megabyte symbol is not copied into the log


# --------------------------------------------------------------- bar files

HEADER_NAMES = st.sampled_from([
    "timestamp", "Timestamp", "date", "Date ", "datetime", "time", "symbol", "Ticker",
    "open", "Open", "high", "low", "close", "Close", " close", "volume", "notes", "",
    "close.1", "\u00e9t\u00e9",
])
EXTRA_NAMES = st.sampled_from(["notes", "", "close.1", "\u00e9t\u00e9", "adj close", "x"])
CANONICAL = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
CELLS = st.one_of(
    st.sampled_from([
        "", "nan", "NaN", "inf", "-inf", "1e400", "9" * 400, "-1", "0", "1.5", "100",
        "2024-01-02", "2024-01-03 09:30", "2024-01-02T09:30:00+05:00", "0001-01-01",
        "9999-12-31", "2262-04-12", "1677-09-20", "2024-13-45", "ABC", "A", '"q,uo""te"',
        "1,000", "True", "\u0000", "\u00ff", "12:00", "1700000000",
    ]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
    st.floats(allow_nan=True).map(repr), st.integers().map(str),
)


@st.composite
def good_rows(draw: st.DrawFn) -> list[str]:
    """A valid bar in canonical column order, as text."""
    day = draw(st.integers(1, 28))
    time = draw(st.sampled_from(["", " 09:30", "T16:00:00Z", " 10:00:00+01:00"]))
    low = draw(st.floats(0.01, 1e6))
    o, c = draw(st.floats(low, low * 2)), draw(st.floats(low, low * 2))
    high = max(o, c) * draw(st.floats(1, 1.5))
    return [f"2024-02-{day:02d}{time}", draw(st.sampled_from(["A", "B", " C "])),
            repr(o), repr(high), repr(low), repr(c), str(draw(st.integers(0, 10**12)))]


@st.composite
def bar_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    """(header, rows): mostly well-formed bars with a few cells or names spoiled."""
    if draw(st.booleans()):
        names = draw(st.lists(HEADER_NAMES, min_size=1, max_size=9))
        rows = draw(st.lists(st.lists(CELLS, min_size=len(names), max_size=len(names)),
                             max_size=6))
        return names, rows
    order = draw(st.permutations(range(7)))
    names = [draw(st.sampled_from([CANONICAL[i], CANONICAL[i].title(), CANONICAL[i].upper()]))
             for i in order]
    names += draw(st.lists(EXTRA_NAMES, max_size=2))
    rows = []
    for good in draw(st.lists(good_rows(), max_size=8)):
        row = [good[i] for i in order] + ["x"] * (len(names) - 7)
        if draw(st.integers(0, 4)) == 0:  # spoil one cell
            row[draw(st.integers(0, len(row) - 1))] = draw(CELLS)
        rows.append(row)
    return names, rows


@st.composite
def csv_texts(draw: st.DrawFn) -> bytes:
    names, rows = draw(bar_tables())
    sep = draw(st.sampled_from([",", ",", ",", ";"]))
    lines = [sep.join(names)] + [sep.join(r) for r in rows]
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def bar_files(draw: st.DrawFn, tmp: Path) -> Path:
    kind = draw(st.sampled_from(["csv", "csv", "csv.gz", "parquet", "bytes"]))
    if kind == "parquet":
        names, rows = draw(bar_tables())
        frame = pd.DataFrame(rows, columns=range(len(names)))
        frame.columns = pd.Index(names)
        for i, name in enumerate(names):  # numbers and times as typed columns, sometimes
            if name.lower() in ("open", "high", "low", "close", "volume") and draw(st.booleans()):
                frame.isetitem(i, pd.to_numeric(frame.iloc[:, i], errors="coerce"))
        path = tmp / "bars.parquet"
        try:
            frame.to_parquet(path)
        except (ValueError, TypeError):  # pandas refuses duplicate names: write bytes instead
            path.write_bytes(b"PAR1" + draw(st.binary(max_size=64)))
        return path
    if kind == "bytes":
        path = tmp / f"bars{draw(st.sampled_from(['.csv', '.csv.gz', '.parquet']))}"
        path.write_bytes(draw(st.binary(max_size=300)))
        return path
    content = draw(csv_texts())
    path = tmp / f"bars.{kind}"
    path.write_bytes(gzip.compress(content) if kind == "csv.gz" else content)
    return path


@FUZZ
@given(data=st.data())
@pytest.mark.filterwarnings("ignore::simbroker.errors.DataWarning")
def test_load_bars_on_any_file_raises_only_data_error(tmp_path: Path,
                                                       data: st.DataObject) -> None:
    path = data.draw(bar_files(tmp_path))
    try:
        bars = load_bars(path, **data.draw(LOAD_OPTIONS))
    except DataError as exc:
        event(f"DataError: {str(exc).replace(str(path), 'PATH')[:24]}")
        return
    event("loaded")
    assert isinstance(bars, Bars)
    assert bars.n_symbols >= 1  # a header alone is refused as "no rows"


COLUMN_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
    st.text(max_size=5), st.none(), st.booleans(),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.sampled_from([pd.NaT, pd.Timestamp("2024-01-02"), np.datetime64("2024-01-03"),
                     "2024-01-02", 1.5, 0.0, -1.0]),
)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    """Long-form frames: text tables, with some columns typed or replaced by odd values."""
    names, rows = draw(bar_tables())
    frame = pd.DataFrame(rows, columns=range(len(names)), dtype=object)
    for i in range(len(names)):
        how = draw(st.sampled_from(["text", "numeric", "datetime", "values"]))
        if how == "numeric":
            frame[i] = pd.to_numeric(frame[i], errors="coerce")
        elif how == "datetime":
            utc = draw(st.booleans())
            # pandas refuses some mixes even with errors="coerce": keep the text then
            with contextlib.suppress(ValueError, TypeError, OverflowError):
                frame[i] = pd.to_datetime(frame[i], errors="coerce", utc=utc, format="mixed")
        elif how == "values":
            frame[i] = pd.Series(draw(st.lists(COLUMN_VALUES, min_size=len(frame),
                                               max_size=len(frame))), dtype=object)
    frame.columns = pd.Index(names)
    return frame


@FUZZ
@given(frame=frames(), options=LOAD_OPTIONS)
@pytest.mark.filterwarnings("ignore::simbroker.errors.DataWarning")
def test_load_bars_on_any_frame_raises_only_data_error(frame: pd.DataFrame,
                                                       options: dict[str, Any]) -> None:
    try:
        bars = load_bars(frame, **options)
    except DataError as exc:
        event(f"DataError: {str(exc)[:30]}")
        return
    event("loaded")
    assert isinstance(bars, Bars)


# ------------------------------------------------------------- config files
KEYS = st.sampled_from([
    "cash", "slippage", "fees", "allow_short", "data", "trade_log", "speed", "risk", "host",
    "port", "client_id", "account", "trading_mode", "timeout", "bar_poll", "api_key",
    "secret_key", "paper", "data_feed", "url_override", "model", "bps", "max_order_qty",
    "max_position", "price_collar", "max_orders_per_minute", "allowed_symbols", "x",
])
REFERENCES = st.sampled_from(["${SECRET_TOKEN}", "${PLAIN}", "${UNSET}", "${UNSET:-7}",
                              "$${X}", "${HUGE}", "${NAN}", "${BOMB}", "pre-${SECRET_TOKEN}"])
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8), REFERENCES,
    st.dates(), st.binary(max_size=4),
)
TREES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(KEYS, st.integers(), st.booleans()),
                                            inner, max_size=4)),
    max_leaves=20,
)
CONFIGS = st.dictionaries(KEYS, TREES, max_size=6)
SECRET = "tok-" + "7" * 12 + "-xyz"  # made up, long enough to be hidden anywhere
ENVIRONMENT = {"SECRET_TOKEN": SECRET, "PLAIN": "plain", "HUGE": "9" * 400, "NAN": ".nan",
               "BOMB": "[" * 5000, "ALPACA_API_KEY": "k" * 20, "ALPACA_SECRET_KEY": SECRET}
YAML_SNIPPETS = st.sampled_from([
    "&a [*a]", "*undefined", "[[[[[[[[", "{a: 1, a: 2}", "!!python/object:os.system x",
    "!!binary AAA", "!!timestamp nope", "? [1]\n: 2", "%YAML 1.1\n---", "---\n---",
    "\t", "\x00", "\ufeff", "'unterminated", "key: [1, 2", ": x", "- - -", "<<: *m",
    "2024-13-45", "0x1F", "1_000", ".inf", "~", "9" * 5000, "|\n  block", ">-\n  folded",
])


@st.composite
def config_texts(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        text = yaml.safe_dump(draw(CONFIGS), allow_unicode=True)
    elif choice == 1:
        parts = draw(st.lists(st.one_of(YAML_SNIPPETS, st.text(max_size=10)), max_size=6))
        glue = draw(st.sampled_from(["\n", ": ", " ", "\n  "]))
        text = draw(KEYS) + ": " + glue.join(parts)
    else:
        return draw(st.binary(max_size=200))
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(content=config_texts(), broker=st.sampled_from(["paper", "ibkr", "alpaca"]))
def test_config_loader_raises_only_config_error_and_never_shows_a_secret(
        tmp_path: Path, content: bytes, broker: str) -> None:
    path = tmp_path / f"{broker}.yaml"
    path.write_bytes(content)
    try:
        cfg = load_broker_config(broker, path=path, env=ENVIRONMENT)
    except ConfigError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        event(f"ConfigError: {message.replace(str(path), 'PATH')[:20]}")
        assert SECRET not in message
        assert "7" * 12 not in message
        return
    event("loaded")
    assert SECRET not in repr(cfg)
    assert SECRET not in str(cfg.to_dict())


@FUZZ
@given(data=st.one_of(CONFIGS, TREES), cls=st.sampled_from([PaperConfig, IBKRConfig,
                                                            AlpacaConfig]))
def test_from_dict_raises_only_config_error(data: Any, cls: Any) -> None:
    with contextlib.suppress(ConfigError):
        cls.from_dict(data)
