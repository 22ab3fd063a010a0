"""Sessions' lookups by runs (every bar regular and in a day) equal the general branch.

``sessions._FAST_ALL_REGULAR`` off, the same calendars give the same arrays, bit for bit,
over random panels mixing such calendars with ones that have non-regular bars and bars in
no trading day.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import sessions
from simbroker.sessions import Sessions, date_sessions


@st.composite
def calendars(draw: st.DrawFn) -> Sessions:
    n_t = draw(st.integers(0, 40))
    g = draw(st.integers(1, 3))
    regular = np.zeros((n_t, g), np.bool_)
    day = np.full((n_t, g), np.datetime64("NaT"), "datetime64[D]")
    for j in range(g):
        steps = draw(st.lists(st.integers(0, 2), min_size=n_t, max_size=n_t))
        codes = np.cumsum(np.asarray(steps, np.int64)) + 19_000
        plain = draw(st.booleans())  # all regular and in a day: the fast branch
        inday = np.ones(n_t, np.bool_) if plain else np.asarray(
            draw(st.lists(st.booleans(), min_size=n_t, max_size=n_t)), np.bool_)
        reg = inday.copy() if plain else inday & np.asarray(
            draw(st.lists(st.booleans(), min_size=n_t, max_size=n_t)), np.bool_)
        day[inday, j] = codes[inday].astype("datetime64[D]")
        regular[:, j] = reg
    columns = np.asarray(draw(st.lists(st.integers(0, g - 1), min_size=1, max_size=4)))
    return Sessions(calendars=tuple(f"c{j}" for j in range(g)), columns=columns,
                    regular=regular, day=day)


def _lookups(s: Sessions, fast: bool) -> dict[str, np.ndarray]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sessions, "_FAST_ALL_REGULAR", fast)
        s._derived.clear()
        return {k: v.copy() for k, v in s._arrays().items()}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), k


@given(s=calendars())
@settings(max_examples=80, deadline=None)
def test_run_lookups_match_the_general_branch(s: Sessions) -> None:
    _same(_lookups(s, True), _lookups(s, False))


@pytest.mark.parametrize(("freq", "tz"), [("1min", "UTC"), ("1h", "America/New_York"),
                                          ("1D", "UTC")])
def test_date_sessions_take_the_run_branch(freq: str, tz: str) -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=3000, seed=5, freq=freq)
    s = date_sessions(bars, tz)
    assert bool(s.regular.all())
    assert not bool(np.isnat(s.day).any())
    _same(_lookups(s, True), _lookups(s, False))
