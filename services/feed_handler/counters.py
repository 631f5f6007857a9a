"""Per-feed counters: plain integers bumped on the hot path, read by stats, health and REST."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(slots=True)
class FeedCounters:
    msgs_total: int = 0
    """Normalised messages the adapter produced."""
    published_total: int = 0
    """Messages published on NATS (after conflation, or for a group member: while it is active)."""
    trades_total: int = 0
    errors_total: int = 0
    """Bad venue input (any reason), see `errors_by_reason`."""
    gaps_total: int = 0
    """Sequence gaps seen (depth update ids, trade ids)."""
    resyncs_total: int = 0
    """Book resyncs (after a gap or a crossed book)."""
    reconnects_total: int = 0
    """Sessions that were live and ended (connection lost, declared dead)."""
    connect_failures_total: int = 0
    conflated_total: int = 0
    """p1 updates merged into a pending one for the same subject (latest wins) under backpressure."""
    dropped_total: int = 0
    """p1 updates dropped because the outbound queue was at its limit (never a trade)."""
    duplicates_total: int = 0
    """Trades a failover group did not publish because their trade id was already published."""
    failovers_total: int = 0
    errors_by_reason: dict[str, int] = field(default_factory=dict)

    def error(self, reason: str) -> None:
        self.errors_total += 1
        self.errors_by_reason[reason] = self.errors_by_reason.get(reason, 0) + 1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
