"""The order-entry client: what a Python program uses to trade on the Nexus order engine.

    client = await OrderClient.connect("nats://127.0.0.1:4222", account="alice")
    report = await client.new_order("BTC-USD", Side.BUY, "0.5", price="64000.00")   # accepted / rejected
    await client.replace("BTC-USD", report.client_order_id, price="63990.00")       # replaced / rejected
    await client.cancel("BTC-USD", report.client_order_id)                          # cancelled / rejected
    await client.cancel_all()                                                       # every symbol
    book = await client.book("BTC-USD", depth=5)
    await client.close()

Every command goes into JetStream (stream ORD_IN) with Nats-Msg-Id = `<account>:<client order id>`, and the
call returns the first answer to it: the report whose `client_order_id` is the command's id. If a call
raises SubmitTimeout, call it again with the same command (the same client order id): within the dedupe
window the stream keeps one copy, so it is the same order, and the retry returns the original answer
(from this client's own subscription, or by asking the engine on ord.query.<account>).

Every report of the account (fills included) also goes to `on_report` when one is given.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from types import TracebackType

import nats.errors
import nats.js.errors
from nats.js.api import PubAck

from nexus import subjects
from nexus.bus import Bus
from nexus.errors import BusError, NexusError, RemoteError
from nexus.messages import (
    TOKEN_MAX,
    BookRequest,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    ExecReport,
    ExecType,
    NewOrder,
    OrderCommandMsg,
    OrderQuery,
    OrderType,
    ReplaceOrder,
    Side,
    StpMode,
    TimeInForce,
    now_ns,
)
from nexus.resilience import Backoff
from nexus.streams import command_id

ReportHandler = Callable[[ExecReport], Awaitable[None] | None]

ANSWERS: dict[type[OrderCommandMsg], frozenset[ExecType]] = {
    NewOrder: frozenset({ExecType.ACCEPTED, ExecType.REJECTED}),
    CancelOrder: frozenset({ExecType.CANCELLED, ExecType.REJECTED}),
    ReplaceOrder: frozenset({ExecType.REPLACED, ExecType.REJECTED}),
    CancelAll: frozenset({ExecType.ACCEPTED, ExecType.REJECTED}),
}
"""Which report answers each kind of command."""
_ANSWER_TYPES = frozenset().union(*ANSWERS.values())


class OrderClientError(NexusError):
    """Base of the order client's errors."""


class InvalidCommand(OrderClientError, ValueError):
    """A command that cannot be sent as it is (e.g. a client order id that cannot be a header value)."""


class SubmitTimeout(OrderClientError):
    """No answer within the timeout. Submitting the same command again is safe: it is the same order.
    `stored` says whether JetStream confirmed it has the command (then the engine will answer)."""

    def __init__(self, client_order_id: str, stored: bool, timeout: float) -> None:
        self.client_order_id = client_order_id
        self.stored = stored
        self.timeout = timeout
        what = "stored but not answered" if stored else "not confirmed stored"
        super().__init__(f"command {client_order_id!r} {what} within {timeout}s; resubmit it unchanged")


def _decimal(value: Decimal | str | int | None) -> Decimal | None:
    return None if value is None else Decimal(value)


class OrderClient:
    """Order entry for one account over an existing Bus (or its own, with `connect`)."""

    def __init__(
        self,
        bus: Bus,
        account: str,
        *,
        timeout: float = 5.0,
        on_report: ReportHandler | None = None,
        memory: int = 10_000,
    ) -> None:
        self.bus = bus
        self.account = subjects.token(account)
        self.timeout = timeout
        self.on_report = on_report
        self.memory = memory
        self._own_bus = False
        self._ids = itertools.count(1)
        self._id_prefix = uuid.uuid4().hex[:10]
        self._waiters: dict[str, tuple[frozenset[ExecType], asyncio.Future[ExecReport]]] = {}
        self._answers: OrderedDict[str, ExecReport] = OrderedDict()
        self._started = False

    @classmethod
    async def connect(
        cls,
        servers: str | Sequence[str],
        account: str,
        *,
        connect_timeout: float = 10.0,
        timeout: float = 5.0,
        on_report: ReportHandler | None = None,
    ) -> OrderClient:
        """Connect to NATS (comma-separated URLs or a list) and start a client of `account`."""
        urls = servers.split(",") if isinstance(servers, str) else list(servers)
        bus = Bus(urls, name=f"client.{account}.{uuid.uuid4().hex[:6]}", service="client")
        await bus.connect(give_up_after=connect_timeout)
        client = cls(bus, account, timeout=timeout, on_report=on_report)
        client._own_bus = True
        await client.start()
        return client

    async def start(self) -> None:
        """Subscribe to the account's execution reports (before the first command is sent)."""
        if self._started:
            return
        await self.bus.subscribe(
            subjects.exec_report(self.account, subjects.ALL), ExecReport, self._on_report
        )
        await self.bus.flush()
        self._started = True

    async def close(self) -> None:
        for _, fut in self._waiters.values():
            fut.cancel()
        self._waiters.clear()
        if self._own_bus:
            await self.bus.drain()

    async def __aenter__(self) -> OrderClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def new_id(self) -> str:
        """A client order id unique to this client instance."""
        return f"{self._id_prefix}-{next(self._ids)}"

    # -- commands -----------------------------------------------------------------------------------

    async def new_order(
        self,
        symbol: str,
        side: Side,
        qty: Decimal | str | int,
        price: Decimal | str | int | None = None,
        *,
        order_type: OrderType = OrderType.LIMIT,
        tif: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        stp: StpMode = StpMode.CANCEL_NEWEST,
        client_order_id: str | None = None,
        timeout: float | None = None,
    ) -> ExecReport:
        """Send a new order; returns its accepted or rejected report."""
        cmd = NewOrder(
            account=self.account,
            client_order_id=client_order_id or self.new_id(),
            symbol=symbol,
            side=side,
            qty=Decimal(qty),
            price=_decimal(price),
            order_type=order_type,
            tif=tif,
            post_only=post_only,
            stp=stp,
            ts=now_ns(),
        )
        return await self.submit(cmd, timeout=timeout)

    async def cancel(
        self, symbol: str, orig_client_order_id: str, *, client_order_id: str | None = None
    ) -> ExecReport:
        """Cancel an order; returns the cancelled report (or a reject: unknown, closed, not yours)."""
        cmd = CancelOrder(
            account=self.account,
            client_order_id=client_order_id or self.new_id(),
            symbol=symbol,
            orig_client_order_id=orig_client_order_id,
            ts=now_ns(),
        )
        return await self.submit(cmd)

    async def replace(
        self,
        symbol: str,
        orig_client_order_id: str,
        *,
        price: Decimal | str | int | None = None,
        qty: Decimal | str | int | None = None,
        client_order_id: str | None = None,
    ) -> ExecReport:
        """Change an order's price and/or total quantity; returns the replaced report or a reject."""
        cmd = ReplaceOrder(
            account=self.account,
            client_order_id=client_order_id or self.new_id(),
            symbol=symbol,
            orig_client_order_id=orig_client_order_id,
            price=_decimal(price),
            qty=_decimal(qty),
            ts=now_ns(),
        )
        return await self.submit(cmd)

    async def cancel_all(
        self, symbol: str | None = None, *, client_order_id: str | None = None
    ) -> ExecReport:
        """Cancel every open order of the account (in `symbol` only, if given); returns the accepted
        acknowledgement — the cancelled reports of the orders follow."""
        cmd = CancelAll(
            account=self.account, client_order_id=client_order_id or self.new_id(), symbol=symbol, ts=now_ns()
        )
        return await self.submit(cmd)

    async def submit(self, cmd: OrderCommandMsg, *, timeout: float | None = None) -> ExecReport:
        """Send a command durably and return its first answer. Raises SubmitTimeout when there is none
        in time; submitting the same command again is then safe and returns the original answer."""
        if cmd.account != self.account:
            raise OrderClientError(f"command for account {cmd.account!r} sent through {self.account!r}")
        coid = cmd.client_order_id
        if not (len(coid) <= TOKEN_MAX and coid.isascii() and coid.isprintable() and " " not in coid):
            raise InvalidCommand(
                f"client_order_id {coid[:80]!r}: up to {TOKEN_MAX} visible ASCII characters, no spaces"
            )
        if not self._started:
            await self.start()
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        kinds = ANSWERS[type(cmd)]
        known = self._answers.get(coid)
        if known is not None and known.exec_type in kinds:
            return known
        fut = self._waiter(coid, kinds)
        try:
            ack = await self._publish(cmd, deadline, timeout)
            if not ack.duplicate:
                return await self._wait(fut, deadline, coid, timeout)
            # The same command was stored before: its answer was published already, or will be.
            return await self._original_answer(cmd, fut, deadline, timeout)
        finally:
            if fut.done() or time.monotonic() >= deadline:
                self._waiters.pop(coid, None)

    async def query(
        self, client_order_id: str, symbol: str = "", *, latest: bool = False, timeout: float = 2.0
    ) -> ExecReport:
        """Ask the engine for the first answer to a command (or, with `latest`, the order's latest
        report). Raises RemoteError(UNKNOWN_ORDER) when the engine does not know the id."""
        request = OrderQuery(
            account=self.account, client_order_id=client_order_id, symbol=symbol, latest=latest
        )
        report: ExecReport = await self.bus.request(
            subjects.order_query(self.account), request, ExecReport, timeout=timeout
        )
        return report

    async def book(self, symbol: str, depth: int = 10, *, timeout: float = 2.0) -> BookSnapshot:
        """The engine's L2 book of `symbol` (`depth` levels a side, 0 = all)."""
        snap: BookSnapshot = await self.bus.request(
            subjects.book_request(subjects.safe_symbol(symbol)),
            BookRequest(symbol=symbol, depth=depth),
            BookSnapshot,
            timeout=timeout,
        )
        return snap

    # -- internals ----------------------------------------------------------------------------------

    def _waiter(self, coid: str, kinds: frozenset[ExecType]) -> asyncio.Future[ExecReport]:
        entry = self._waiters.get(coid)
        if entry is None or entry[1].done():
            entry = (kinds, asyncio.get_running_loop().create_future())
            self._waiters[coid] = entry
        return entry[1]

    async def _publish(self, cmd: OrderCommandMsg, deadline: float, timeout: float) -> PubAck:
        """Publish into the order-entry stream; retries (with jitter) while no stream answers yet."""
        backoff = Backoff(base=0.05, cap=0.5)
        msg_id = command_id(self.account, cmd.client_order_id)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SubmitTimeout(cmd.client_order_id, False, timeout)
            try:
                return await self.bus.publish_durable(cmd, msg_id, timeout=remaining)
            except (nats.errors.TimeoutError, TimeoutError):
                raise SubmitTimeout(cmd.client_order_id, False, timeout) from None
            except (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError):
                await asyncio.sleep(min(backoff.next(), max(0.0, deadline - time.monotonic())))

    async def _wait(
        self, fut: asyncio.Future[ExecReport], deadline: float, coid: str, timeout: float
    ) -> ExecReport:
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await asyncio.shield(fut)
        except TimeoutError:
            raise SubmitTimeout(coid, True, timeout) from None

    async def _original_answer(
        self, cmd: OrderCommandMsg, fut: asyncio.Future[ExecReport], deadline: float, timeout: float
    ) -> ExecReport:
        """A duplicate: wait for the answer on our subscription, and ask the engine in the meantime."""
        kinds = ANSWERS[type(cmd)]
        symbol = subjects.command_symbol(cmd)
        pause = 0.05
        while True:
            done, _ = await asyncio.wait({fut}, timeout=min(pause, max(0.0, deadline - time.monotonic())))
            if done:
                return fut.result()
            try:
                report = await self.query(
                    cmd.client_order_id, symbol, timeout=max(0.05, min(1.0, deadline - time.monotonic()))
                )
            except (RemoteError, BusError):
                report = None
            if report is not None and report.exec_type in kinds:
                return report
            if time.monotonic() >= deadline:
                raise SubmitTimeout(cmd.client_order_id, True, timeout)
            pause = min(pause * 2, 0.5)

    async def _on_report(self, report: ExecReport) -> None:
        coid = report.client_order_id
        entry = self._waiters.get(coid)
        if entry is not None and report.exec_type in entry[0] and not entry[1].done():
            entry[1].set_result(report)
        if report.exec_type in _ANSWER_TYPES and coid not in self._answers:
            self._answers[coid] = report
            if len(self._answers) > self.memory:
                self._answers.popitem(last=False)
        if self.on_report is not None:
            result = self.on_report(report)
            if inspect.isawaitable(result):
                await result
