"""What the engine did, read from its exec-report streams: positions, open orders and P&L come from here.

    reports = Reports(js, on_report=checker_apply)
    await reports.start()           # every ENGINE_EXEC_<k> stream from its first message
    reports.caught_up               # True once each stream found at start has been read to its end

Each engine partition's stream is read with an ordered consumer from the beginning (so a restarted risk
service rebuilds every account exactly as the engine left it), then live. New partitions' streams are
found by looking again every `discover_every` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from nexus import messages, streams, subjects
from nexus.logs import get_logger
from nexus.messages import ExecReport
from nexus.subjects import ANY


class Reports:
    def __init__(
        self,
        js: JetStreamContext,
        on_report: Callable[[ExecReport], None],
        *,
        discover_every: float = 1.0,
    ) -> None:
        self.js = js
        self.on_report = on_report
        self.discover_every = discover_every
        self.log = get_logger("risk.reports")
        self.subs: dict[str, Subscription] = {}
        self.behind: dict[str, int] = {}
        """Stream -> the last sequence it had when found; removed once read that far."""
        self._decoder = messages.decoder(ExecReport)
        self._task: asyncio.Task[None] | None = None
        self._found = asyncio.Event()
        self._caught_up = asyncio.Event()
        self.reports_total = 0
        self.decode_errors_total = 0
        self.apply_errors_total = 0

    @property
    def caught_up(self) -> bool:
        """Every stream found at start has been read to the end it had then."""
        return self._caught_up.is_set()

    async def start(self) -> None:
        await self.discover()
        self._found.set()
        if not self.behind:
            self._caught_up.set()
        self._task = asyncio.create_task(self._discover_loop(), name="risk-reports-discover")

    async def wait_caught_up(self, timeout: float) -> None:
        """Wait until every stream found at start is read to the end (TimeoutError after `timeout`)."""
        async with asyncio.timeout(timeout):
            await self._caught_up.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in self.subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self.subs.clear()

    async def discover(self) -> None:
        """Subscribe to every engine exec stream not read yet."""
        prefix = streams.ENGINE_EXEC + "_"
        async for name, last_seq in self._streams(prefix):
            if name in self.subs:
                continue
            partition = name[len(prefix) :]
            if last_seq > 0:
                self.behind[name] = last_seq
            self.subs[name] = await self.js.subscribe(
                subjects.engine_exec(partition, ANY, ANY).rsplit(".", 2)[0] + ".>",
                stream=name,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
                cb=self._handler(name),
                pending_msgs_limit=1_000_000,
            )
            self.log.info("reports.reading", stream=name, messages=last_seq)

    async def _streams(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        for info in await self.js.streams_info():
            name = info.config.name or ""
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                yield name, info.state.last_seq

    async def _discover_loop(self) -> None:
        while True:
            await asyncio.sleep(self.discover_every)
            try:
                await self.discover()
            except Exception as exc:  # NATS away for a moment: try again next time
                self.log.warning("reports.discover_failed", error=repr(exc))

    def _handler(self, stream: str) -> Callable[[Msg], Awaitable[None]]:
        behind = self.behind

        async def on_msg(msg: Msg) -> None:
            self.reports_total += 1
            try:
                report = self._decoder.decode(msg.data)
            except messages.DECODE_ERRORS as exc:
                self.decode_errors_total += 1
                self.log.warning(
                    "reports.decode_failed", stream=stream, error=str(exc), sample=msg.data[:200]
                )
            else:
                try:
                    self.on_report(report)
                except Exception as exc:  # a bug: count it, keep every other account right
                    self.apply_errors_total += 1
                    self.log.exception("reports.apply_failed", report=repr(report), error=repr(exc))
            target = behind.get(stream)
            if target is not None and msg.metadata.sequence.stream >= target:
                del behind[stream]
                self.log.info("reports.caught_up", stream=stream)
                if not behind and self._found.is_set():
                    self._caught_up.set()

        return on_msg
