"""simbroker's pytest plugin: the testing kit as fixtures, loaded when simbroker is installed.

It lives outside the ``simbroker`` package on purpose: importing any ``simbroker.*``
module imports ``simbroker`` itself, and with it numpy and pandas, which would slow the
start-up of every pytest run in the environment. This module imports only pytest; each
fixture imports what it needs when a test first uses it.

Registered under the ``pytest11`` entry point, so with simbroker installed a test file
needs no import to use it::

    def test_my_fees(simbroker_checks):
        simbroker_checks.check_fee_model(MyCommission())

    def test_my_strategy(simbroker_checks, sample_bars):
        simbroker_checks.check_no_lookahead(MyStrategy(), sample_bars)

Fixtures
--------
simbroker_checks
    The :mod:`simbroker.testing.checks` module, its Hypothesis settings scaled by
    ``--simbroker-examples N`` (default: the checks' own).
sample_bars
    The bundled daily sample (5 US stocks, 2008-2013) as :class:`~simbroker.Bars`.
synthetic_bars
    ``synthetic_bars(n_symbols=2, n_bars=250, seed=0, ...)``: seeded synthetic bars.
paper_venue
    A factory of :class:`~simbroker.testing.checks.PaperVenue` for
    ``check_broker_conformance(paper_venue)``.

Disable it with ``-p no:simbroker``.

``simbroker_pytest`` is registered under the ``pytest11`` entry point ``simbroker``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from simbroker.bars import Bars


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--simbroker-examples``: how many Hypothesis examples each model check draws."""
    group = parser.getgroup("simbroker", "simbroker testing kit")
    group.addoption("--simbroker-examples", type=int, default=None, metavar="N",
                    help="Hypothesis examples per simbroker model/look-ahead check")


@pytest.fixture
def simbroker_checks(request: pytest.FixtureRequest) -> Any:
    """The checks of :mod:`simbroker.testing.checks` (settings from the command line)."""
    from hypothesis import HealthCheck, settings

    from simbroker.testing import checks

    n = request.config.getoption("--simbroker-examples")
    if n is None:
        return checks
    custom = settings(max_examples=n, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow])
    names = ("check_slippage_model", "check_fee_model", "check_no_lookahead")
    wrapped: dict[str, Any] = {
        name: functools.partial(getattr(checks, name), settings=custom) for name in names}
    return SimpleNamespace(**({k: getattr(checks, k) for k in checks.__all__} | wrapped))


@pytest.fixture(scope="session")
def sample_bars() -> Bars:
    """The bundled daily sample bars."""
    from simbroker.data import sample_bars as load

    return load()


@pytest.fixture
def synthetic_bars() -> Callable[..., Bars]:
    """A factory of seeded synthetic bars (see :func:`simbroker.synthetic_bars`)."""
    from simbroker.synthetic import synthetic_bars as make

    def factory(n_symbols: int = 2, n_bars: int = 250, *, seed: int = 0,
                **kwargs: Any) -> Bars:
        return make(n_symbols=n_symbols, n_bars=n_bars, seed=seed, **kwargs)

    return factory


@pytest.fixture
def paper_venue() -> Callable[..., Any]:
    """A factory of :class:`~simbroker.testing.checks.PaperVenue` (broker options as kwargs)."""
    from simbroker.testing.checks import PaperVenue

    return PaperVenue
