"""Publishing many small messages on one nats-py connection with less Python per message.

`Client.publish` is a coroutine that validates the subject, checks the connection's state, formats the
PUB command, appends it to the connection's outgoing buffer and, when the flusher is idle, wakes it with
a new future: four coroutine frames and an allocation per message, ~2 µs of a feed handler's ~10. A
`DirectPublish` does the same appends as a plain call:

    publish = DirectPublish(nc)
    for subject, payload in batch:
        pending = publish(subject, payload)
        if pending is not None:        # not connected, too large, or the buffer is full:
            await pending              # nats-py's own publish (or flush) handles it and waits

Subjects must be valid (nexus.subjects builds them from checked tokens); the PUB line of each subject is
built once.

It uses nats-py's outgoing buffer, its flusher queue and its status (pinned nats-py version,
pyproject.toml); tests/foundation/test_fastpub.py checks the behaviour against a real server, including
a server restart in the middle of a stream and a stalled server.

`coalesce` (bytes; 0: off) makes a busy publisher write fewer, larger chunks; each write to the socket
wakes the server, which then competes for the CPU. The first append schedules a check for the loop's
next turn instead of waking the flusher. While the buffer keeps growing from one turn to the next and
is under `coalesce` bytes, the check waits one more turn (at most `COALESCE_TURNS`); then it writes the
buffer itself. A publisher that is not busy adds nothing between two turns: a lone message is written
on the next turn, as the flusher would have written it, and a burst within one turn one turn later.
When the socket has a backlog, the check wakes the flusher instead, which waits for the socket, so
nats-py's limit on its buffer still holds. To wait until the server has processed what was published,
use `DirectPublish.flush`, not `nc.flush()` (see there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from nats.aio.client import Client

SUBJECTS_MAX = 65_536
"""PUB lines kept (a publisher of ever new subjects starts again from empty)."""
COALESCE_TURNS = 4
"""The most turns of the loop a coalescing publisher waits before its buffer is written."""


class DirectPublish:
    """`publish(subject, payload)`, or `publish.many([(subject, payload), ...])` in one append, onto `nc`;
    each returns None when done, or an awaitable to await."""

    __slots__ = ("_done", "_heads", "_seen", "_turns", "coalesce", "nc")

    def __init__(self, nc: Client, coalesce: int = 0) -> None:
        self.nc = nc
        self.coalesce = coalesce
        """Bytes a busy publisher gathers before its buffer is written (0: the flusher is woken at once)."""
        self._heads: dict[str, bytes] = {}
        self._done: asyncio.Future[None] | None = None
        """One finished future, put on the flusher's queue to wake it (it only sets unfinished ones)."""
        self._seen = -1
        """The buffer's size at the last check of a coalescing wake (-1: none is scheduled)."""
        self._turns = 0

    def __call__(self, subject: str, payload: bytes) -> Awaitable[None] | None:
        return self.many([(subject, payload)])

    def many(self, items: list[tuple[str, bytes]]) -> Awaitable[None] | None:
        """Publish every (subject, payload) in order: one append to the buffer, or nats-py's publish of
        each when the connection is not up or a payload is too large."""
        nc = self.nc
        if nc._status != Client.CONNECTED:
            return self._each(items)
        heads = self._heads
        limit = nc._max_payload
        cmds = []
        size = 0
        for subject, payload in items:
            n = len(payload)
            if n > limit:
                return self._each(items)
            cmds.append(b"%b%d\r\n%b\r\n" % (heads.get(subject) or self._head(subject), n, payload))
            size += n
        blob = b"".join(cmds)
        nc._pending.append(blob)
        nc._pending_data_size += len(blob)
        stats = nc.stats
        stats["out_msgs"] += len(items)
        stats["out_bytes"] += size
        return self._appended(nc)

    def now(self, subject: str, payload: bytes) -> bool:
        """Append one message only if nothing would have to be awaited (connected, the payload and the
        buffer within their limits, a flusher to wake): True when done, False when nothing was done."""
        nc = self.nc
        size = len(payload)
        if nc._status != Client.CONNECTED or size > nc._max_payload:
            return False
        queue, flusher = nc._flush_queue, nc._flusher_task
        if queue is None or flusher is None or flusher.done():
            return False
        cmd = b"%b%d\r\n%b\r\n" % (self._heads.get(subject) or self._head(subject), size, payload)
        if 0 < nc._max_pending_size < nc._pending_data_size + len(cmd):
            return False  # the buffer would be over its limit: nats-py's publish would wait
        nc._pending.append(cmd)
        nc._pending_data_size += len(cmd)
        stats = nc.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += size
        self._wake(queue)
        return True

    @property
    def max_payload(self) -> int:
        """The largest payload the server takes (from its INFO; nats-py's default before connecting)."""
        return self.nc.max_payload

    async def _each(self, items: list[tuple[str, bytes]]) -> None:
        for subject, payload in items:
            await self.nc.publish(subject, payload)

    def _head(self, subject: str) -> bytes:
        if len(self._heads) >= SUBJECTS_MAX:
            self._heads.clear()
        head = self._heads[subject] = b"PUB " + subject.encode() + b"  "
        return head

    def _appended(self, nc: Client) -> Awaitable[None] | None:
        """After an append: wait when the buffer is over its limit, else make sure the flusher runs."""
        if nc._max_pending_size > 0 and nc._pending_data_size > nc._max_pending_size:
            return nc._flush_pending(force_flush=True)  # the buffer is full: wait for the socket
        queue = nc._flush_queue
        if queue is not None and queue.empty():
            flusher = nc._flusher_task
            if flusher is None or flusher.done():
                return nc._flush_pending()  # no flusher to wake: nats-py writes the buffer itself
            self._wake(queue)
        return None

    def _wake(self, queue: asyncio.Queue[asyncio.Future[None]]) -> None:
        """Wake nats-py's flusher if it is idle (it only sets unfinished futures: give it a finished one),
        at once or, when coalescing, once the buffer stops growing or is large enough."""
        if self.coalesce:
            if self._seen < 0 and queue.empty():
                self._seen = self.nc._pending_data_size
                self._turns = 0
                asyncio.get_running_loop().call_soon(self._check)
            return
        self._wake_now(queue)

    def _check(self) -> None:
        nc = self.nc
        size = nc._pending_data_size
        self._turns += 1
        if self._seen < size < self.coalesce and self._turns < COALESCE_TURNS:
            self._seen = size  # still growing: one more turn
            asyncio.get_running_loop().call_soon(self._check)
            return
        self._seen = -1
        self.push()

    def _write_now(self) -> bool:
        """Write the buffer to the socket at once if the socket has taken everything so far (rather than
        on the flusher's turn, even if it was woken: it then finds the buffer empty): True when written."""
        nc = self.nc
        transport = nc._transport
        writer = getattr(transport, "_io_writer", None)  # a TCP connection's (not a websocket's)
        if (
            transport is None
            or writer is None
            or nc._status != Client.CONNECTED
            or writer.transport.get_write_buffer_size()
        ):
            return False
        transport.writelines(nc._pending)
        nc._pending = []
        nc._pending_data_size = 0
        return True

    def push(self) -> None:
        """Hand what the connection's buffer holds to the socket now: written at once when the socket
        has taken everything so far, else the flusher is woken (it waits for the socket). For a caller
        about to keep the loop busy, whose bytes would otherwise wait for the flusher's turn."""
        nc = self.nc
        queue = nc._flush_queue
        if nc._pending_data_size and nc.is_connected and queue is not None and not self._write_now():
            self._wake_now(queue)

    async def flush(self, timeout: int = 10) -> None:
        """Wait until the server has processed everything published so far (a PING and its PONG). Use
        this, not `nc.flush()`: nats-py writes its PING ahead of its buffer, so `nc.flush()` can return
        before the server has seen messages still in the buffer (for up to COALESCE_TURNS turns when
        coalescing)."""
        nc = self.nc
        if nc._pending_data_size and not self._write_now() and nc.is_connected:
            await nc._flush_pending(force_flush=True)  # the flusher has written the buffer
        await nc.flush(timeout)

    def _wake_now(self, queue: asyncio.Queue[asyncio.Future[None]]) -> None:
        if queue.empty():
            done = self._done
            if done is None:
                done = self._done = asyncio.get_running_loop().create_future()
                done.set_result(None)
            queue.put_nowait(done)
