"""What the live-adapter tests share: skipping without a client library, the guard on the
IB client's swallowed decoder errors, the loopback fakes and brokers connected to them.

Imported by ``tests/test_ibkr*.py`` and ``tests/test_alpaca*.py`` (``from _live import
...``, as ``adapter_scenarios``). It imports neither client library itself, so it loads
in every environment the suite runs in: ib_async, ib_insync alone (the ib_insync venv of
``.ci/run``, where alpaca-py is absent) or alpaca-py alone.

A module's fixtures are made by the factories here and bound to a module-level name,
which is how pytest finds them::

    no_decoder_errors = ib_error_guard(starts=("Error 201",))
    tws = tws_fixture(prices={"AAA": 100.0}, versions=(157, 178))
    broker = ib_broker_fixture(timeout=3.0)
"""

from __future__ import annotations

import importlib.util
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from adapter_scenarios import wait_until

if TYPE_CHECKING:
    from simbroker.brokers.alpaca import AlpacaBroker
    from simbroker.brokers.ibkr import IBKRBroker
    from simbroker.testing.fake_alpaca import FakeAlpaca
    from simbroker.testing.fake_tws import FakeTWS

__all__ = ["ALPACA_KEY", "ALPACA_SECRET", "HAS_ALPACA", "HAS_IB", "IB_VERSIONS",
           "alpaca_broker_fixture", "alpaca_fixture", "connect_alpaca", "connect_ib",
           "ib_broker_fixture", "ib_error_guard", "tws_fixture"]

HAS_IB = importlib.util.find_spec("ib_async") is not None or \
    importlib.util.find_spec("ib_insync") is not None
HAS_ALPACA = importlib.util.find_spec("alpaca") is not None
IB_VERSIONS = (157, 178)
"""The lowest server version both IB clients accept, and the production one."""

# Made up per run: nothing that looks like a credential is kept in the repository.
ALPACA_KEY = f"PK{secrets.token_hex(8).upper()}"
ALPACA_SECRET = secrets.token_urlsafe(24)


def ib_error_guard(*, starts: Sequence[str] = (), contains: Sequence[str] = ()
                   ) -> Callable[..., Iterator[None]]:
    """An autouse fixture failing the test on any ERROR the IB client logged, except
    messages that start with one of ``starts`` or contain one of ``contains``.

    The client's decoder swallows a malformed message and only logs it: without this
    guard a wrong field count in a fake shows up as "nothing happened".
    """
    starts, contains = tuple(starts), tuple(contains)

    @pytest.fixture(autouse=True)
    def no_decoder_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
        from simbroker.brokers.ibkr.translate import LIB

        caplog.set_level(logging.ERROR, logger=LIB)
        yield
        bad = [r.getMessage() for r in caplog.records
               if r.levelno >= logging.ERROR and r.name.startswith(LIB)
               and not (starts and r.getMessage().startswith(starts))
               and not any(c in r.getMessage() for c in contains)]
        assert not bad, bad

    return no_decoder_errors


def tws_fixture(*, prices: Mapping[str, float], versions: Sequence[int] | None = IB_VERSIONS,
                **fake_kw: Any) -> Callable[..., Iterator[FakeTWS]]:
    """A ``tws`` fixture: a started FakeTWS at each of ``versions`` (``None``: 178 only,
    unparametrized) with ``prices`` set and ``fake_kw`` passed to it."""
    from simbroker.testing.fake_tws import FakeTWS

    def make(version: int) -> Iterator[FakeTWS]:
        with FakeTWS(server_version=version, **fake_kw) as fake:
            for sym, px in prices.items():
                fake.set_price(sym, px)
            yield fake

    if versions is None:
        @pytest.fixture
        def tws() -> Iterator[FakeTWS]:
            yield from make(178)
        return tws

    @pytest.fixture(params=list(versions), ids=lambda v: f"v{v}")
    def tws_versions(request: pytest.FixtureRequest) -> Iterator[FakeTWS]:
        yield from make(request.param)
    return tws_versions


def connect_ib(tws: FakeTWS, client_id: int = 1, **kw: Any) -> IBKRBroker:
    """An IBKRBroker on ``tws`` (short timeouts and backoff unless ``kw`` says)."""
    from simbroker.brokers.ibkr import IBKRBroker

    opts: dict[str, Any] = {"timeout": 2.0, "reconnect_backoff": (0.05, 0.2),
                            "ready_wait": 8.0, **kw}
    return IBKRBroker("127.0.0.1", tws.port, client_id, **opts)


def ib_broker_fixture(**kw: Any) -> Callable[..., Iterator[IBKRBroker]]:
    """A ``broker`` fixture: :func:`connect_ib` on the module's ``tws`` with ``kw``,
    closed after the test."""
    @pytest.fixture
    def broker(tws: FakeTWS) -> Iterator[IBKRBroker]:
        b = connect_ib(tws, **kw)
        yield b
        b.close()
    return broker


def alpaca_fixture(*, prices: Mapping[str, float], cash: float = 100_000.0,
                   **fake_kw: Any) -> Callable[..., Iterator[FakeAlpaca]]:
    """A ``fake`` fixture: a started FakeAlpaca (this run's made-up keys) with
    ``prices`` set."""
    @pytest.fixture
    def fake() -> Iterator[FakeAlpaca]:
        from simbroker.testing.fake_alpaca import FakeAlpaca

        with FakeAlpaca(ALPACA_KEY, ALPACA_SECRET, cash=cash, **fake_kw) as f:
            for sym, px in prices.items():
                f.set_price(sym, px)
            yield f
    return fake


def connect_alpaca(fake: FakeAlpaca, *, ready: str = "ready", **kw: Any) -> AlpacaBroker:
    """An AlpacaBroker on ``fake``. With a stream, wait until it is ``ready`` (the
    adapter's stream state) or, with ``ready="listening"``, until the fake counts one
    more listener."""
    from simbroker.brokers.alpaca import AlpacaBroker

    before = fake.listeners
    b = AlpacaBroker.for_fake(fake, **kw)
    if kw.get("stream", True):
        if ready == "listening":
            wait_until(lambda: fake.listeners > before)
        else:
            wait_until(lambda: b.stream_state == ready)
    return b


def alpaca_broker_fixture(**kw: Any) -> Callable[..., Iterator[AlpacaBroker]]:
    """A ``broker`` fixture: :func:`connect_alpaca` on the module's ``fake``, closed
    after the test."""
    @pytest.fixture
    def broker(fake: FakeAlpaca) -> Iterator[AlpacaBroker]:
        b = connect_alpaca(fake, **kw)
        yield b
        b.close()
    return broker
