"""Live prices into bars: a bar needs every symbol, the window rolls, bad updates are counted."""

from __future__ import annotations

import numpy as np

from optimizer.bars import PriceBars


def test_a_bar_closes_only_once_every_symbol_has_a_price() -> None:
    bars = PriceBars(["A", "B"], window=3)
    bars.update("A", 10.0)
    assert not bars.close()
    assert bars.missing() == ["B"]
    bars.update("B", 20.0)
    assert bars.close()
    assert bars.count == 1
    np.testing.assert_array_equal(bars.prices(), [[10.0, 20.0]])


def test_the_window_keeps_the_last_window_plus_one_bars_oldest_first() -> None:
    bars = PriceBars(["A", "B"], window=3)
    for i in range(1, 8):
        bars.update("A", float(i))
        if i % 2:
            bars.update("B", 100.0 + i)  # B does not trade every bar: its last price carries
        assert bars.close()
    assert bars.count == 4
    assert bars.bars_total == 7
    np.testing.assert_array_equal(bars.prices(), [[4, 103], [5, 105], [6, 105], [7, 107]])


def test_unknown_symbols_and_bad_prices_are_ignored_and_counted() -> None:
    bars = PriceBars(["A"], window=2)
    assert not bars.update("ZZZ", 1.0)
    assert not bars.update("A", float("nan"))
    assert not bars.update("A", -1.0)
    assert bars.update("A", 2.0)
    assert bars.ignored_total == 3
    assert bars.updates_total == 1
