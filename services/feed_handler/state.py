"""Feed states as published in FeedStatus.state (plain strings on the wire)."""

from __future__ import annotations

from enum import StrEnum


class FeedState(StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    LIVE = "live"
    STALE = "stale"
    DISCONNECTED = "disconnected"
    BACKOFF = "backoff"
    CIRCUIT_OPEN = "circuit_open"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def flowing(self) -> bool:
        """Connected and delivering (possibly late)."""
        return self in (FeedState.LIVE, FeedState.STALE)
