"""Bounded retries on top of nexus.resilience.Backoff."""

from __future__ import annotations

from collections.abc import Iterator

from nexus.resilience import Backoff


def retry_delays(attempts: int, base: float = 0.2, cap: float = 2.0) -> Iterator[float | None]:
    """One item per attempt: the jittered delay to wait after it fails, None after the last one."""
    backoff = Backoff(base=base, cap=cap)
    for n in range(attempts):
        yield backoff.next() if n < attempts - 1 else None
