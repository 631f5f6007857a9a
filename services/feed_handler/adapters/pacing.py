"""Pacing of sources that replay or generate data: real time, N times faster, or as fast as possible
(then in batches, waiting whenever the publisher is behind so nothing is conflated away)."""

from __future__ import annotations

import asyncio

from feed_handler.adapters.base import FeedContext

BATCH = 64
"""Messages between two yields to the event loop when not waiting for time."""


class Pacer:
    """`await pacer.until(t)` returns when source time `t` (seconds) is due at `speed`."""

    def __init__(self, ctx: FeedContext, speed: float) -> None:
        self.ctx = ctx
        self.speed = speed
        self._loop = asyncio.get_running_loop()
        self._wall0 = 0.0
        self._t0: float | None = None
        self._n = 0

    def restart(self) -> None:
        self._t0 = None

    async def until(self, t: float) -> None:
        self._n += 1
        if self.speed > 0:
            if self._t0 is None:
                self._t0, self._wall0 = t, self._loop.time()
            delay = self._wall0 + (t - self._t0) / self.speed - self._loop.time()
            if delay > 0.0005:
                await asyncio.sleep(delay)
                return
        if self._n % BATCH == 0:
            await self.breathe()

    async def breathe(self) -> None:
        """Yield to the loop, and wait while the publisher is behind."""
        if self.ctx.behind:
            await self.ctx.wait_room()
        else:
            await asyncio.sleep(0)
