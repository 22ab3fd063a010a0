"""A 10/50 simple-moving-average crossover over every symbol of the sample data.

Buys 100 shares when the 10-bar SMA crosses above the 50-bar SMA and sells the whole
position when it crosses back below. Orders go in at a bar's close and fill at the next
bar's open, 5 bps slippage against us and 1 bp fees: the defaults.

Run it:  python examples/sma_crossover.py [BARS.csv|BARS.parquet]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import simbroker
from simbroker import Bars, Broker, History
from simbroker.data import SAMPLE_DATA_PATH


class SmaCrossover:
    """Long-only SMA crossover, ``qty`` shares per entry, on every symbol."""

    def __init__(self, fast: int = 10, slow: int = 50, qty: float = 100):
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
        self.fast, self.slow, self.qty = fast, slow, qty

    def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
        """Trailing SMAs and their crossings, computed once over the whole panel.

        Every value at bar t uses closes up to t only, so nothing leaks from the future.
        """
        close = pd.DataFrame(bars.close)
        fast = close.rolling(self.fast, min_periods=self.fast).mean().to_numpy()
        slow = close.rolling(self.slow, min_periods=self.slow).mean().to_numpy()
        valid = ~np.isnan(fast) & ~np.isnan(slow)
        above = np.where(valid, fast > slow, False)
        cross = np.zeros(above.shape, np.int8)
        both = valid[1:] & valid[:-1]
        cross[1:] = np.where(both, above[1:].astype(np.int8) - above[:-1].astype(np.int8), 0)
        return {"sma_fast": fast, "sma_slow": slow, "cross": cross}

    def on_bar(self, broker: Broker, history: History) -> None:
        """Act on today's crossings only; most bars have none and return at once."""
        cross = history.last("cross")
        if not cross.any():
            return
        held = broker.get_positions()
        for i in np.flatnonzero(cross):
            symbol = history.symbols[i]
            position = held.get(symbol, 0.0)
            if cross[i] > 0 and position <= 0:
                broker.submit_order(symbol, "buy", self.qty)
            elif cross[i] < 0 and position > 0:
                broker.submit_order(symbol, "sell", position)


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else SAMPLE_DATA_PATH
    bars = simbroker.load_bars(source)
    print(f"Data: {source}")
    print(bars)
    result = simbroker.backtest(SmaCrossover(10, 50, qty=100), bars, cash=100_000)
    result.summary()
    print("\nFinal positions:", result.final_positions or "flat")
    print("\nLast fills:")
    print(result.fills.tail(5)[["timestamp", "symbol", "side", "qty", "price", "fee"]]
          .to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
