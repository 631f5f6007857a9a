"""Server-sent events for the dashboard: one bounded queue per connected browser.

stream.send("snapshot", payload)      # every connected client gets it (a slow one loses its oldest)
async for chunk in stream.events():   # one client's SSE byte stream, starting with the latest snapshot
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

CLIENT_QUEUE = 64
"""Events buffered per client; beyond this the oldest is dropped (a browser tab in the background)."""
_CLOSED = ("", b"")


def format_event(event: str, data: bytes, event_id: int) -> bytes:
    return b"event: %s\nid: %d\ndata: %s\n\n" % (event.encode(), event_id, data)


class EventStream:
    def __init__(self) -> None:
        self._clients: set[asyncio.Queue[tuple[str, bytes]]] = set()
        self._latest: bytes = b""
        self._id = 0
        self._closed = False
        self.sent_total = 0
        self.dropped_total = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    def send(self, event: str, data: bytes) -> None:
        if event == "snapshot":
            self._latest = data
        for queue in self._clients:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                    self.dropped_total += 1
            queue.put_nowait((event, data))
            self.sent_total += 1

    def close(self) -> None:
        """End every client's stream (the service is stopping)."""
        self._closed = True
        for queue in self._clients:
            with contextlib.suppress(asyncio.QueueEmpty):
                while queue.full():
                    queue.get_nowait()
            queue.put_nowait(_CLOSED)

    async def events(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(CLIENT_QUEUE)
        self._clients.add(queue)
        try:
            yield b"retry: 2000\n\n"
            if self._latest:
                self._id += 1
                yield format_event("snapshot", self._latest, self._id)
            while not self._closed:
                event, data = await queue.get()
                if (event, data) == _CLOSED:
                    break
                self._id += 1
                yield format_event(event, data, self._id)
        finally:
            self._clients.discard(queue)
