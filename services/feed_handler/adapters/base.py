"""The interface every adapter implements, and what it may call on its feed.

An adapter turns one source into normalised messages. The feed (feed_handler.feed.Feed) owns everything
around it: reconnection with backoff and a circuit breaker, the idle watchdog, health, counters, status,
routing to the outbound queues. So an adapter only has to do one thing:

    class MyAdapter(Adapter):
        async def run(self) -> None:
            # one session: connect, subscribe, then for each venue message:
            #     self.ctx.emit(normalised) / self.ctx.bad_input(...) / self.ctx.gap(...)
            # call self.ctx.live() once subscribed.
            # Return when the source is exhausted (a replay without loop): the feed stops.
            # Raise (or let the connection's error through) when the session is lost: the feed reconnects.
            # Raise AdapterFailed for a condition no retry can fix (the feed goes to `failed`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, Protocol, TypeVar

from feed_handler.book import Book
from feed_handler.config import FeedBase
from feed_handler.errors import FeedError
from feed_handler.protocols.base import Output

C = TypeVar("C", bound=FeedBase)


class AdapterFailed(FeedError):
    """A failure retrying cannot fix (a file that cannot be read, a venue refusing the subscription)."""


class FeedContext(Output, Protocol):
    """The feed as an adapter sees it (Output: emit, bad_input, gap, resync, touch)."""

    @property
    def name(self) -> str: ...

    @property
    def venue(self) -> str: ...

    @property
    def log(self) -> Any: ...

    def live(self, detail: str = "") -> None:
        """Connected and subscribed: the session is delivering."""

    @property
    def congested(self) -> bool:
        """Trades are backing up in the outbound queue: stop reading until `wait_room()` returns."""

    async def wait_room(self) -> None:
        """Wait until the outbound queues have room (sources that can wait call this when `behind`)."""

    @property
    def behind(self) -> bool:
        """The publisher is behind (a replay or synthetic source should wait rather than be conflated)."""


class Adapter(ABC, Generic[C]):
    """One source of market data for one feed."""

    def __init__(self, config: C, ctx: FeedContext) -> None:
        self.config = config
        self.ctx = ctx

    @abstractmethod
    async def run(self) -> None:
        """One session (see the module doc)."""

    def books(self) -> dict[str, Book]:
        """The L2 books this adapter keeps, synced ones only, by subject-safe symbol."""
        return {}

    def stats(self) -> dict[str, float]:
        """Adapter-specific counters for the feed's details."""
        return {}
