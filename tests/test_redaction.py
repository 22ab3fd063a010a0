"""Secrets never reach a log line, from any library, through any handler."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simbroker.redact import MIN_RUN, Redactor, install_secret_filter

LOGGERS = ("", "websockets", "websockets.client", "websockets.server", "urllib3",
           "urllib3.connectionpool", "requests", "alpaca", "ib_async", "ib_insync",
           "asyncio", "simbroker")


def grams(secret: str) -> set[str]:
    """Every run of MIN_RUN characters of ``secret``."""
    return {secret[i:i + MIN_RUN] for i in range(len(secret) - MIN_RUN + 1)}


def leaks(text: str, *values: str) -> list[str]:
    return sorted(g for v in values for g in grams(v) if g in text)


@pytest.fixture
def debug_everywhere() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """DEBUG on for every logger of interest; a root handler and one handler of
    websockets' own (not propagating) capture everything. Restored afterwards."""
    root_out, own_out = io.StringIO(), io.StringIO()
    fmt = logging.Formatter("%(name)s %(levelname)s %(message)s")
    root_handler = logging.StreamHandler(root_out)
    root_handler.setFormatter(fmt)
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    root = logging.getLogger()
    root.addHandler(root_handler)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    ws = logging.getLogger("websockets.client")
    own = logging.StreamHandler(own_out)
    own.setFormatter(fmt)
    ws.addHandler(own)
    try:
        yield root_out, own_out
    finally:
        ws.removeHandler(own)
        root.removeHandler(root_handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@given(secret=st.text(st.characters(codec="ascii", exclude_characters="*"),
                      min_size=1, max_size=60),
       before=st.text(max_size=30), after=st.text(max_size=30),
       cut=st.tuples(st.integers(0, 60), st.integers(0, 60)))
def test_no_run_of_a_secret_survives_redaction(secret: str, before: str, after: str,
                                               cut: tuple[int, int]) -> None:
    lo, hi = sorted(cut)
    text = before + secret[lo:hi] + after + secret
    out = Redactor([secret]).redact(text)
    assert secret not in out
    assert not leaks(out, secret)
    if not any(g in text for g in grams(secret)) and secret not in text:
        assert out == text


def test_text_without_a_run_of_a_secret_is_unchanged() -> None:
    r = Redactor(["correct-horse-battery-staple"])
    assert r.redact("a battery, a horse, correct") == "a battery, a horse, correct"
    assert r.redact("x=correct-horse-battery-staple;y=battery-staple") == "x=***;y=***"
    assert r.redact("tail: ttery-staple") == "tail: ***"


def test_every_path_to_an_output_is_scrubbed(capsys: pytest.CaptureFixture[str],
                                             debug_everywhere: tuple[io.StringIO,
                                                                     io.StringIO]) -> None:
    secret = secrets.token_urlsafe(30)
    install_secret_filter([secret])
    install_secret_filter([secret])  # idempotent
    root_out, _ = debug_everywhere
    log = logging.getLogger("some.library")
    log.debug("header APCA-API-SECRET-KEY: %s", secret)
    log.debug("frame tail ...%s", secret[-22:])
    log.debug({"secret_key": secret})  # not a string message
    log.debug("bad format %d", secret)  # a format error must not print the raw args
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        log.exception("with a traceback")
    late = io.StringIO()  # a handler added after the filter was installed
    isolated = logging.getLogger("isolated.library")
    isolated.propagate = False
    isolated.addHandler(logging.StreamHandler(late))
    isolated.warning("late handler %s", secret)
    lonely = logging.getLogger("lonely.library")  # no handler anywhere: lastResort
    lonely.propagate = False
    lonely.warning("last resort %s", secret)
    isolated.propagate = lonely.propagate = True
    err = capsys.readouterr().err
    text = root_out.getvalue() + late.getvalue() + err
    assert "header APCA-API-SECRET-KEY: ***" in text
    assert "last resort ***" in err
    assert "with a traceback" in text
    assert "RuntimeError: failed with ***" in text
    assert not leaks(text, secret)


def test_the_adapter_leaks_no_key_with_every_library_at_debug(
        capsys: pytest.CaptureFixture[str],
        debug_everywhere: tuple[io.StringIO, io.StringIO]) -> None:
    pytest.importorskip("alpaca")
    from adapter_scenarios import wait_until

    from simbroker.brokers.alpaca import AlpacaBroker
    from simbroker.testing.fake_alpaca import FakeAlpaca

    key = f"PK{secrets.token_hex(9).upper()}"   # 20 characters, like Alpaca's
    secret = secrets.token_urlsafe(30)          # 40 characters
    root_out, own_out = debug_everywhere
    with FakeAlpaca(key, secret, cash=100_000) as fake:
        fake.set_price("AAA", 10.0)
        broker = AlpacaBroker.for_fake(fake, heartbeat=0.4)
        try:
            wait_until(lambda: broker.stream_state == "ready")
            broker.submit_order("AAA", "buy", 1, client_order_id="redact-1")
            fake.lose_next_response()
            broker.submit_order("AAA", "buy", 2, client_order_id="redact-2")
            made: list[dict[str, Any]] = fake.step()
            assert len(made) == 2
            fake.drop_stream()  # reconnect: the auth frame is sent again
            wait_until(lambda: broker.stream_connects == 2 and
                       broker.stream_state == "ready")
            fake.silence_stream()  # a heartbeat timeout, and once more
            wait_until(lambda: broker.stream_connects == 3 and
                       broker.stream_state == "ready")
            assert len(broker.get_fills()) == 2
        finally:
            broker.close()
    out = capsys.readouterr()
    text = root_out.getvalue() + own_out.getvalue() + out.out + out.err
    # The capture saw the libraries' debug output, auth frames included ...
    assert "urllib3.connectionpool DEBUG" in text
    assert text.count('"action": "authenticate"') >= 3
    assert "keepalive" in text
    # ... and not one run of 8 characters of either key.
    assert not leaks(text, key, secret)
