"""Where the simulator's data comes from: the synthetic market on a wall-clock schedule, or a recording."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from feed_handler.market import Event, SyntheticMarket
from feed_handler.protocols import recording
from feed_handler.protocols.recording import Record

Emit = Callable[[Event | Record], None]
MAX_BATCH = 1000


class SyntheticSource:
    """Event i is due at `anchor + i / rate` (wall clock). Started late, the market is fast-forwarded to
    the current index first, so two instances with the same seed and anchor send the same events."""

    def __init__(self, market: SyntheticMarket, rate: float, anchor: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("the simulator's synthetic source needs rate > 0")
        self.market = market
        self.rate = rate
        self.anchor = time.time() if anchor is None else anchor
        self.index = 0

    def fast_forward(self) -> int:
        due = max(0, int((time.time() - self.anchor) * self.rate))
        for _ in range(due - self.index):
            self.market.next()
        self.index = max(self.index, due)
        return self.index

    async def run(self, emit: Emit) -> None:
        self.fast_forward()
        while True:
            due = int((time.time() - self.anchor) * self.rate) - self.index
            if due <= 0:
                next_at = self.anchor + (self.index + 1) / self.rate
                await asyncio.sleep(max(0.0005, next_at - time.time()))
                continue
            for _ in range(min(due, MAX_BATCH)):
                emit(self.market.next())
                self.index += 1
            await asyncio.sleep(0)


class ReplaySource:
    """The records of a recorded session, paced by their times at `speed` (0 = as fast as possible)."""

    def __init__(self, path: str | Path, speed: float = 1.0, loop: bool = False) -> None:
        self.path = Path(path)
        self.speed = speed
        self.loop = loop
        self.records = list(recording.records(self.path))
        self.passes = 0

    async def run(self, emit: Emit) -> None:
        while True:
            t0: float | None = None
            start = time.monotonic()
            for n, rec in enumerate(self.records):
                if rec.kind not in ("recv", "rest"):
                    continue
                if self.speed > 0:
                    if t0 is None:
                        t0 = rec.ts
                    delay = start + (rec.ts - t0) / self.speed - time.monotonic()
                    if delay > 0.0005:
                        await asyncio.sleep(delay)
                elif n % 256 == 0:
                    await asyncio.sleep(0)
                emit(rec)
            self.passes += 1
            if not self.loop:
                return
