"""Live prices sampled into bars: the last price of every symbol at each bar close, in a rolling window.

    bars = PriceBars(["BTC-USD", "ETH-USD"], window=600)
    bars.update("BTC-USD", 64000.5)       # every trade price or quote mid
    bars.close()                          # at each bar boundary (the service's clock)
    prices = bars.prices()                # (bars x n), oldest first: window + 1 bars give window returns

A bar is recorded only once every symbol has a price; a symbol that does not update keeps its last price
(a zero return for that bar). No I/O here: the service feeds it and calls close() on a timer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class PriceBars:
    def __init__(self, symbols: Sequence[str], window: int) -> None:
        if window < 2:
            raise ValueError("window must be at least 2 bars")
        self.symbols = tuple(symbols)
        self.window = window
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self._last = np.full(len(self.symbols), np.nan)
        self._rows = np.empty((window + 1, len(self.symbols)))
        self._next = 0
        self.count = 0
        """Bars held (at most window + 1)."""
        self.updates_total = 0
        self.ignored_total = 0
        self.bars_total = 0

    def update(self, symbol: str, price: float) -> bool:
        """Record the latest price of `symbol`; False (and counted) for unknown symbols or bad prices."""
        i = self._index.get(symbol)
        if i is None or not (math.isfinite(price) and price > 0.0):
            self.ignored_total += 1
            return False
        self._last[i] = price
        self.updates_total += 1
        return True

    def missing(self) -> list[str]:
        """Symbols without a price yet."""
        return [s for s, p in zip(self.symbols, self._last, strict=True) if math.isnan(p)]

    def close(self) -> bool:
        """Close a bar with the last prices; False while some symbol has no price yet."""
        if np.isnan(self._last).any():
            return False
        self._rows[self._next] = self._last
        self._next = (self._next + 1) % self._rows.shape[0]
        self.count = min(self.count + 1, self._rows.shape[0])
        self.bars_total += 1
        return True

    def prices(self) -> Array:
        """The bars held, oldest first (a copy)."""
        if self.count < self._rows.shape[0]:
            return self._rows[: self.count].copy()
        return np.concatenate((self._rows[self._next :], self._rows[: self._next]))
