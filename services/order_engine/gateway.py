"""Order entry for clients that want the answer as a reply: NATS request/reply and REST.

Both put the command into the order-entry stream exactly like the Python client (they use it), so the
command takes the same road as every other — through risk when risk sits in front of the engine — and the
reply is the command's first answer. Any engine instance can serve any account: requests are shared by a
queue group, and each instance keeps one client per account it served recently.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from nexus import messages, subjects
from nexus.bus import Bus
from nexus.client import InvalidCommand, OrderClient, SubmitTimeout
from nexus.errors import SubjectError
from nexus.logs import get_logger
from nexus.messages import ErrorReply, ExecReport, Message, OrderCommandMsg
from nexus.subjects import ANY, Tier


class Gateway:
    def __init__(
        self, bus: Bus, *, accounts: int = 1_000, timeout: float = 5.0, in_flight: int = 2_000
    ) -> None:
        self.bus = bus
        self.accounts = accounts
        self.timeout = timeout
        self.log = get_logger("order_engine.gateway")
        self._clients: OrderedDict[str, OrderClient] = OrderedDict()
        self._slots = asyncio.Semaphore(in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None
        self.requests_total = 0
        self.timeouts_total = 0
        self.bad_requests_total = 0

    async def start(self, service: str) -> None:
        if self._sub is None:
            self._sub = await self.bus.subscribe_raw(
                subjects.order_request(ANY), self._on_request, queue=subjects.queue_group(service, Tier.P1)
            )

    async def client(self, account: str) -> OrderClient:
        client = self._clients.get(account)
        if client is None:
            client = OrderClient(self.bus, account, timeout=self.timeout)
            await client.start()
            self._clients[account] = client
            if len(self._clients) > self.accounts:
                _, old = self._clients.popitem(last=False)
                await old.close()
        else:
            self._clients.move_to_end(account)
        return client

    async def submit(self, cmd: OrderCommandMsg) -> ExecReport:
        """The first answer to `cmd` (raises SubmitTimeout; resubmitting the same command is safe)."""
        self.requests_total += 1
        try:
            return await (await self.client(cmd.account)).submit(cmd)
        except SubmitTimeout:
            self.timeouts_total += 1
            raise

    async def _on_request(self, msg: Msg) -> None:
        if not msg.reply:
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _answer(self, msg: Msg) -> None:
        reply: Message
        try:
            cmd = messages.decode(messages.OrderCommandMsg, msg.data)
        except messages.DECODE_ERRORS as exc:
            self.bad_requests_total += 1
            reply = ErrorReply(code="DECODE_ERROR", reason=str(exc))
        else:
            account = msg.subject.rsplit(".", 1)[-1]
            if cmd.account != account:
                self.bad_requests_total += 1
                reply = ErrorReply(
                    code="INVALID_FIELD", reason=f"account {cmd.account!r} sent on {msg.subject}"
                )
            else:
                try:
                    reply = await self.submit(cmd)
                except SubmitTimeout as exc:
                    reply = ErrorReply(code="TIMEOUT", reason=str(exc))
                except (SubjectError, InvalidCommand) as exc:  # no subject or header can hold it
                    self.bad_requests_total += 1
                    reply = ErrorReply(code="INVALID_FIELD", reason=str(exc))
                except Exception as exc:  # an answer is owed to the requester whatever happened
                    self.log.exception("gateway.failed", error=repr(exc))
                    reply = ErrorReply(code="INTERNAL", reason=repr(exc))
        try:
            await msg.respond(messages.encode(reply))
        except Exception as exc:
            self.log.warning("gateway.reply_failed", error=repr(exc))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def stats(self) -> dict[str, float]:
        return {
            "gateway_requests_total": float(self.requests_total),
            "gateway_timeouts_total": float(self.timeouts_total),
            "gateway_bad_requests_total": float(self.bad_requests_total),
            "gateway_accounts": float(len(self._clients)),
        }
