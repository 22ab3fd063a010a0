"""Drive a paper broker through a stream of orders (no Hypothesis needed)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from simbroker.errors import OrderRejected
from simbroker.paper import PaperBroker

if TYPE_CHECKING:
    from simbroker.testing.strategies import OrderSpec

__all__ = ["run_order_stream"]


def run_order_stream(broker: PaperBroker, orders: Iterable[OrderSpec], *,
                     skip_rejected: bool = True) -> PaperBroker:
    """Submit each order once its bar has closed and replay every remaining bar.

    Orders with ``bar == -1`` go in before the first bar. Rejected orders (for example
    shorting on a broker that forbids it) are skipped when ``skip_rejected`` is True,
    else the rejection propagates. Returns ``broker`` for chaining.
    """
    by_bar: dict[int, list[OrderSpec]] = {}
    for o in orders:
        by_bar.setdefault(o.bar, []).append(o)

    def submit(batch: list[OrderSpec]) -> None:
        for o in batch:
            try:
                broker.submit_order(o.symbol, o.side, o.qty, **o.kwargs())
            except OrderRejected:
                if not skip_rejected:
                    raise

    if broker.bar_index < 0:
        submit(by_bar.get(-1, []))
    while broker.has_next:
        t = broker.step()
        submit(by_bar.get(t, []))
    return broker
