"""Trade de-duplication for failover groups: the trade ids already published, per symbol, bounded."""

from __future__ import annotations

from collections import deque


class RecentTradeIds:
    """Remembers the last `per_symbol` trade ids published for each symbol.

    Two sources of one venue carry the same venue trade ids, so across a failover a trade the old source
    already published is recognised and not published again. The memory is bounded: ids older than the
    last `per_symbol` trades of a symbol are forgotten (far longer than any switch-over takes).
    """

    def __init__(self, per_symbol: int = 8192) -> None:
        self.per_symbol = per_symbol
        self._sets: dict[str, set[str]] = {}
        self._order: dict[str, deque[str]] = {}

    def add(self, symbol: str, trade_id: str) -> bool:
        """Record `trade_id`; False if it was already recorded (a duplicate), True if new."""
        ids = self._sets.get(symbol)
        if ids is None:
            ids = self._sets[symbol] = set()
            self._order[symbol] = deque()
        if trade_id in ids:
            return False
        ids.add(trade_id)
        order = self._order[symbol]
        order.append(trade_id)
        if len(order) > self.per_symbol:
            ids.discard(order.popleft())
        return True

    def __contains__(self, key: tuple[str, str]) -> bool:
        symbol, trade_id = key
        ids = self._sets.get(symbol)
        return ids is not None and trade_id in ids
