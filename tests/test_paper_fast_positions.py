"""``PaperBroker.get_positions`` kept live by booking gives what a rebuild gives.

Booking updates the held dict in place (a changed position keeps its key, a flat one
leaves, a new one past every keyed column is appended) and drops it otherwise; the
general path drops it after every fill and rebuilds it from ``_pos`` when asked. Over
random panels and order streams (starting positions, sells through zero, strategies that
iterate the positions to place their orders) both give the same dict in the same key
order after every bar, and the same fills, orders, cash and ledger.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker.paper
from simbroker import Bars, PaperBroker
from simbroker.testing.strategies import bar_panels

PROPS = settings(max_examples=120, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class _Rebuilding(PaperBroker):
    """The general path: every booked position change drops the held dict."""

    def _position_moved(self, col: int, symbol: str, qty: float) -> None:
        self._positions = None


def _panel_order(broker: PaperBroker) -> list[tuple[str, float]]:
    """The positions rebuilt from ``_pos``: panel order, flat columns left out."""
    return [(s, q) for s, q in zip(broker.bars.symbols, broker._pos.tolist(), strict=True)
            if q]


def _drive(broker: PaperBroker, plan: list[list[tuple[int, str, float]]],
           flip: list[bool]) -> list[Any]:
    """Replay ``plan`` (per bar: column, side, qty); on ``flip`` bars also close every
    held position in the order ``get_positions`` lists them. Returns what it saw."""
    seen: list[Any] = []
    syms = broker.bars.symbols
    for t in range(len(broker.bars)):
        broker.step()
        held = broker.get_positions()
        seen.append(list(held.items()))
        assert list(held.items()) == _panel_order(broker)
        held["not a symbol"] = 1.0  # a copy: changing it changes nothing
        for col, side, qty in plan[t % len(plan)]:
            broker.submit_order(syms[col % len(syms)], side, qty)
        if flip[t % len(flip)]:
            for sym, q in broker.get_positions().items():
                broker.submit_order(sym, "sell" if q > 0 else "buy", abs(q))
    return seen


def _state(broker: PaperBroker) -> tuple[Any, ...]:
    return (broker.get_fills(), broker.get_cash(), broker.get_orders(),
            list(broker.get_positions().items()), list(broker._ledger_cash),
            list(broker._ledger_pos), list(broker._ledger_sym))


_ORDERS = st.lists(st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["buy", "sell"]),
                                      st.sampled_from([1.0, 2.5, 10.0, 100.0])),
                            max_size=4), min_size=1, max_size=12)


@PROPS
@given(bars=bar_panels(n_symbols=st.integers(1, 24), n_bars=st.integers(2, 30)),
       plan=_ORDERS, flip=st.lists(st.booleans(), min_size=1, max_size=5),
       start=st.dictionaries(st.integers(0, 40), st.sampled_from([-5.0, 3.0, 50.0]),
                             max_size=4))
def test_live_positions_match_rebuilt(bars: Bars, plan: list[list[tuple[int, str, float]]],
                                      flip: list[bool], start: dict[int, float]) -> None:
    positions = {bars.symbols[c % bars.n_symbols]: q for c, q in start.items()}
    live = PaperBroker(bars, positions=positions)
    general = _Rebuilding(bars, positions=positions)
    assert _drive(live, plan, flip) == _drive(general, plan, flip)
    assert _state(live) == _state(general)


def test_an_earlier_column_opening_rebuilds_in_panel_order() -> None:
    """A symbol earlier in the panel than every held one cannot be appended."""
    from simbroker.synthetic import synthetic_bars

    bars = synthetic_bars(n_symbols=3, n_bars=6, seed=1)
    broker = PaperBroker(bars)
    a, b, c = bars.symbols
    broker.step()
    broker.submit_order(c, "buy", 1)
    broker.step()
    assert list(broker.get_positions()) == [c]
    broker.submit_order(a, "buy", 1)
    broker.submit_order(b, "buy", 1)
    broker.step()
    assert list(broker.get_positions()) == [a, b, c]
    broker.submit_order(b, "sell", 1)
    broker.step()
    assert list(broker.get_positions()) == [a, c]


@settings(max_examples=60, deadline=None)
@given(qty=st.lists(st.sampled_from([0.0, -0.0, 1.5, -2.0, float("nan"), 1e-300]),
                    min_size=1, max_size=40),
       numpy=st.booleans())
def test_both_rebuilds_list_the_nonzero_columns_in_panel_order(qty: list[float],
                                                                numpy: bool) -> None:
    """Small panels rebuild with C loops over every column, large ones with numpy."""
    bars = simbroker.synthetic_bars(n_symbols=len(qty), n_bars=2, seed=1)
    broker = PaperBroker(bars)
    broker._pos[:] = qty
    broker._positions = None
    with pytest.MonkeyPatch.context() as mp:
        if numpy:
            mp.setattr(simbroker.paper, "_FEW_SYMBOLS", 0)
        held = broker.get_positions()
    want = [(s, q) for s, q in zip(bars.symbols, qty, strict=True) if q]
    assert [(s, q if q == q else "nan") for s, q in held.items()] == \
        [(s, q if q == q else "nan") for s, q in want]
    nonzero = [c for c, q in enumerate(qty) if q]
    assert broker._held_top == (nonzero[-1] if nonzero else -1)
