"""The public surface: a curated, sorted ``__all__``, typed, importable as documented."""

from __future__ import annotations

import re
from pathlib import Path

import simbroker

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_unique_and_importable() -> None:
    names = simbroker.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(simbroker, name) is not None, name


def test_every_public_name_has_a_docstring() -> None:
    for name in simbroker.__all__:
        obj = getattr(simbroker, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_package_is_typed() -> None:
    assert (Path(simbroker.__file__).parent / "py.typed").exists()


def test_error_tree() -> None:
    from simbroker import errors as e

    assert issubclass(e.InvalidOrder, e.OrderRejected)
    assert issubclass(e.RiskRejected, e.OrderRejected)
    assert issubclass(e.ShortingNotAllowed, e.OrderRejected)
    for cls in (e.ConfigError, e.DataError, e.ClockError, e.UnknownOrder, e.OrderRejected,
                e.BrokerError):
        assert issubclass(cls, e.SimbrokerError)
    assert issubclass(e.BrokerConnectionError, e.BrokerError)
    assert issubclass(e.BrokerAPIError, e.BrokerError)


def test_readme_gives_the_two_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    for marker in ("main-command", "test-command"):
        m = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", readme, re.S)
        assert m, marker
        assert m.group(1).strip().startswith("pip install")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test-command" in ci
    assert "main-command" in ci


def test_gitignore_keeps_example_configs_only() -> None:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert "CONFIG/brokers/*.yaml" in lines
    assert "!CONFIG/brokers/*.example.yaml" in lines
