"""A thin typed layer over nats-py: connect, publish, subscribe, request/reply, JetStream helpers.

    bus = Bus(settings.nats_url, name="risk.1")
    await bus.connect()                                   # retries with jittered backoff until connected
    await bus.publish(trade)                              # subject from subjects.subject_for
    await bus.subscribe(subjects.trade("*", "*"), Trade, on_trade, queue=queue_group("risk", Tier.P0))
    report = await bus.request(subject, command, ExecReport)
    await bus.drain()

A message that does not decode is counted in `stats.decode_errors`, logged with a sample (at most once
a second per subscription), published raw to the service's dead-letter subject, and the subscriber keeps
going. A handler that raises is counted in `stats.handler_errors` and logged; the subscription survives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client, Server
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig

from nexus import messages, subjects
from nexus.errors import BusError, RemoteError
from nexus.logs import get_logger
from nexus.messages import ErrorReply, Message
from nexus.resilience import Backoff
from nexus.subjects import Tier

T = TypeVar("T")
Handler = Callable[[Any], Awaitable[None]]
RawHandler = Callable[[Msg], Awaitable[None]]
RequestHandler = Callable[[Any], Awaitable[Message]]

MSG_ID = "Nats-Msg-Id"
"""JetStream de-duplication header: a command's client order id, so a retried submit is one message."""

P0_PENDING_MSGS = 1_000_000
"""p0 subscriptions buffer deep: trades and cancels are never dropped by the client library."""
P1_PENDING_MSGS = 65_536
"""p1 subscriptions buffer less; beyond this nats-py drops and reports a slow consumer (counted)."""


@dataclass
class BusStats:
    """Counters of one bus; they go into the heartbeat's stats as bus_*."""

    published_total: int = 0
    received_total: int = 0
    decode_errors_total: int = 0
    handler_errors_total: int = 0
    disconnects_total: int = 0
    reconnects_total: int = 0
    slow_consumer_total: int = 0
    errors_total: int = 0
    lost_total: int = 0
    decode_samples: list[str] = field(default_factory=list)

    def as_stats(self) -> dict[str, float]:
        return {f"bus_{k}": float(v) for k, v in vars(self).items() if isinstance(v, int)}


class _Throttle:
    """Lets one log line through per `interval` seconds and counts what it held back."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.last = -interval
        self.suppressed = 0

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n


class Bus:
    """One service's NATS connection (plus an optional dedicated connection for p0 traffic)."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        name: str,
        service: str = "",
        dedicated_p0: bool = False,
        reconnect_backoff: Backoff | None = None,
        connect_timeout: float = 2.0,
        drain_timeout: float = 5.0,
        stream_replicas: int = 1,
        checked_subjects: bool = False,
    ) -> None:
        if not servers:
            raise BusError("no NATS server URL given")
        self.servers = list(servers)
        self.name = name
        self.service = service or name.split(".")[0]
        self.dedicated_p0 = dedicated_p0
        self.connect_timeout = connect_timeout
        self.drain_timeout = drain_timeout
        self.stream_replicas = stream_replicas
        """Replicas of every stream this bus declares (`ensure_stream`); 3 on a 3-node cluster."""
        self.checked_subjects = checked_subjects
        """Every subject given to this bus comes from nexus.subjects, whose builders check each token:
        nats-py then skips its own check (a regex on every publish)."""
        self.stats = BusStats()
        self.log = get_logger("nexus.bus").bind(conn=name)
        self._backoff = reconnect_backoff or Backoff(base=0.1, cap=2.0)
        self._nc: Client | None = None
        self._nc_p0: Client | None = None
        self._js: JetStreamContext | None = None
        self._subs: list[Subscription] = []
        self._dlq_subject = subjects.dead_letter(self.service)
        self._closing = False
        self._error_log = _Throttle()
        self.on_lost: Callable[[str], None] | None = None
        """Called when a connection closes without close() or drain(): nats-py gives up on some server
        errors (e.g. a protocol line over the server's limit) and does not reconnect, so the process
        cannot carry on. The service runner stops the service then (the supervisor restarts it)."""

    # -- connection ---------------------------------------------------------------------------------

    async def connect(self, give_up_after: float | None = None) -> None:
        """Connect (and the p0 connection if configured). Retries with jittered backoff; with
        `give_up_after` seconds, raises BusError when still not connected by then."""
        self._nc = await self._open(self.name, give_up_after)
        if self.dedicated_p0:
            self._nc_p0 = await self._open(f"{self.name}.p0", give_up_after)
        self.log.info("bus.connected", servers=self.servers, url=self._url(self._nc))

    async def _open(self, name: str, give_up_after: float | None) -> Client:
        backoff = Backoff(base=0.1, cap=2.0)
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        while True:
            try:
                # nats-py's first connect loops forever with max_reconnect_attempts=-1 (and ignores the
                # reconnect handler), so make the first connect one short pass over the servers, retry
                # it here with jittered backoff, and only then allow reconnecting forever.
                nc = await nats.connect(
                    self.servers,
                    name=name,
                    allow_reconnect=True,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    connect_timeout=max(1, int(self.connect_timeout)),
                    drain_timeout=max(1, int(self.drain_timeout)),
                    reconnect_to_server_handler=self._next_server,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    closed_cb=self._on_closed,
                    pending_size=8 * 1024 * 1024,
                    flusher_queue_size=4096,
                    skip_subject_validation=self.checked_subjects,
                )
                nc.options["max_reconnect_attempts"] = -1
                return nc
            except (TimeoutError, OSError, nats.errors.Error) as exc:
                delay = backoff.next()
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise BusError(f"could not connect to {self.servers}: {exc!r}") from exc
                self.log.warning("bus.connect_retry", error=repr(exc), attempt=backoff.attempt, delay=delay)
                await asyncio.sleep(delay)

    def _next_server(self, pool: list[Server], info: dict[str, Any]) -> tuple[Server | None, float]:
        # nats-py asks us which server to try next and how long to wait first: the least-tried server,
        # after a fully jittered exponential delay (so a fleet does not reconnect in lock-step).
        server = min(pool, key=lambda s: s.reconnects)
        return server, self._backoff.next()

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            self.stats.slow_consumer_total += 1
            return
        self.stats.errors_total += 1
        if self._error_log.ready():
            self.log.warning("bus.error", error=repr(exc), suppressed=self._error_log.take_suppressed())

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        self.stats.disconnects_total += 1
        self.log.warning("bus.disconnected")

    async def _on_reconnected(self) -> None:
        self.stats.reconnects_total += 1
        self._backoff.reset()
        self.log.info("bus.reconnected", url=self._url(self._nc))

    async def _on_closed(self) -> None:
        if self._closing:
            self.log.info("bus.closed")
            return
        self.stats.lost_total += 1
        errors = [repr(nc.last_error) for nc in (self._nc, self._nc_p0) if nc is not None and nc.last_error]
        reason = "; ".join(errors) or "closed by the server"
        self.log.error("bus.lost", error=reason)
        if self.on_lost is not None:
            self.on_lost(reason)

    @staticmethod
    def _url(nc: Client | None) -> str:
        u = nc.connected_url if nc is not None else None
        return u.geturl() if u is not None else ""

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise BusError("bus is not connected: call connect() first")
        return self._nc

    def conn(self, tier: Tier = Tier.P1) -> Client:
        """The connection for a tier: the dedicated p0 connection when configured, else the main one."""
        if tier is Tier.P0 and self._nc_p0 is not None:
            return self._nc_p0
        return self.nc

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def drain(self) -> None:
        """Stop intake, deliver what is buffered, flush publishes, close. Safe to call twice."""
        self._closing = True
        for nc in (self._nc_p0, self._nc):
            if nc is not None and not nc.is_closed:
                try:
                    await nc.drain()
                except Exception as exc:  # a transport closed under us must not fail a graceful stop
                    self.log.warning("bus.drain_failed", error=repr(exc))
                    await self._close_quietly(nc)

    async def close(self) -> None:
        self._closing = True
        for nc in (self._nc_p0, self._nc):
            if nc is not None and not nc.is_closed:
                await self._close_quietly(nc)

    async def _close_quietly(self, nc: Client) -> None:
        try:
            await nc.close()
        except Exception as exc:
            self.log.debug("bus.close_failed", error=repr(exc))

    async def flush(self, timeout: float = 2.0) -> None:
        for nc in (self._nc_p0, self._nc):
            if nc is not None and nc.is_connected:
                await nc.flush(timeout=max(1, int(timeout)))

    # -- core publish / subscribe -------------------------------------------------------------------

    async def publish(
        self,
        msg: Message,
        subject: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        tier: Tier = Tier.P1,
    ) -> None:
        """Publish a message on its own subject (or `subject`)."""
        await self.conn(tier).publish(
            subject or subjects.subject_for(msg), messages.encode(msg), headers=headers
        )
        self.stats.published_total += 1

    async def publish_raw(self, subject: str, data: bytes, *, tier: Tier = Tier.P1) -> None:
        await self.conn(tier).publish(subject, data)
        self.stats.published_total += 1

    async def subscribe(
        self,
        subject: str,
        kind: Any,
        handler: Handler,
        *,
        queue: str = "",
        tier: Tier = Tier.P1,
        pending_msgs_limit: int | None = None,
    ) -> Subscription:
        """Subscribe `handler(decoded)` to `subject`; `kind` is a message type or union."""
        dec = messages.decoder(kind)
        throttle = _Throttle()
        errors = _Throttle()

        async def on_msg(msg: Msg) -> None:
            self.stats.received_total += 1
            try:
                obj = dec.decode(msg.data)
            except messages.DECODE_ERRORS as exc:
                await self._decode_failed(msg, exc, throttle)
                return
            try:
                await handler(obj)
            except Exception as exc:
                self.stats.handler_errors_total += 1
                if errors.ready():
                    self.log.exception(
                        "bus.handler_failed",
                        subject=msg.subject,
                        error=repr(exc),
                        suppressed=errors.take_suppressed(),
                    )

        return await self.subscribe_raw(
            subject, on_msg, queue=queue, tier=tier, pending_msgs_limit=pending_msgs_limit
        )

    async def subscribe_raw(
        self,
        subject: str,
        handler: RawHandler,
        *,
        queue: str = "",
        tier: Tier = Tier.P1,
        pending_msgs_limit: int | None = None,
    ) -> Subscription:
        """Subscribe with access to the raw nats Msg (headers, reply subject)."""
        limit = pending_msgs_limit or (P0_PENDING_MSGS if tier is Tier.P0 else P1_PENDING_MSGS)
        sub = await self.conn(tier).subscribe(
            subject, queue=queue, cb=handler, pending_msgs_limit=limit, pending_bytes_limit=limit * 1024
        )
        self._subs.append(sub)
        return sub

    async def _decode_failed(self, msg: Msg, exc: Exception, throttle: _Throttle) -> None:
        self.stats.decode_errors_total += 1
        sample = bytes(msg.data[:256]).decode("utf-8", "replace")
        if len(self.stats.decode_samples) >= 5:
            self.stats.decode_samples.pop(0)
        self.stats.decode_samples.append(f"{msg.subject}: {exc}: {sample}")
        if throttle.ready():
            self.log.warning(
                "bus.decode_failed",
                subject=msg.subject,
                error=str(exc),
                sample=sample,
                suppressed=throttle.take_suppressed(),
                total=self.stats.decode_errors_total,
            )
        if self._nc is not None and self._nc.is_connected:
            headers = {"Nexus-Error": str(exc)[:200], "Nexus-Subject": msg.subject}
            await self._nc.publish(self._dlq_subject, bytes(msg.data), headers=headers)

    async def unsubscribe_all(self) -> None:
        """Stop intake on every subscription made through this bus."""
        subs, self._subs = self._subs, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except nats.errors.Error as exc:
                self.log.debug("bus.unsubscribe_failed", error=repr(exc))

    # -- request / reply ----------------------------------------------------------------------------

    async def request(
        self, subject: str, msg: Message, reply_kind: type[T] | Any, *, timeout: float = 2.0
    ) -> T:
        """Send a request and decode its reply; an ErrorReply raises RemoteError(code, reason)."""
        try:
            reply = await self.nc.request(subject, messages.encode(msg), timeout=timeout)
        except nats.errors.NoRespondersError:
            raise BusError(f"no service answers on {subject}") from None
        except nats.errors.TimeoutError:
            raise BusError(f"no reply on {subject} within {timeout}s") from None
        self.stats.published_total += 1
        obj = messages.decode(reply_kind | ErrorReply, reply.data)
        if isinstance(obj, ErrorReply):
            raise RemoteError(obj.code, obj.reason)
        return obj  # type: ignore[no-any-return]

    async def serve(
        self,
        subject: str,
        kind: Any,
        handler: RequestHandler,
        *,
        queue: str = "",
        tier: Tier = Tier.P1,
    ) -> Subscription:
        """Answer requests on `subject`: `handler(decoded)` returns the reply message. Undecodable
        requests get ErrorReply(DECODE_ERROR); a handler that raises gets ErrorReply(INTERNAL)."""
        dec = messages.decoder(kind)
        throttle = _Throttle()

        async def on_request(msg: Msg) -> None:
            self.stats.received_total += 1
            reply: Message
            try:
                request = dec.decode(msg.data)
            except messages.DECODE_ERRORS as exc:
                await self._decode_failed(msg, exc, throttle)
                reply = ErrorReply(code="DECODE_ERROR", reason=str(exc))
            else:
                try:
                    reply = await handler(request)
                except Exception as exc:
                    self.stats.handler_errors_total += 1
                    self.log.exception("bus.request_failed", subject=msg.subject, error=repr(exc))
                    reply = ErrorReply(code="INTERNAL", reason=repr(exc))
            if msg.reply:
                await msg.respond(messages.encode(reply))
                self.stats.published_total += 1

        return await self.subscribe_raw(subject, on_request, queue=queue, tier=tier)

    # -- JetStream ----------------------------------------------------------------------------------

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            self._js = self.nc.jetstream()
        return self._js

    async def ensure_stream(self, config: StreamConfig) -> None:
        """Create a stream, or update it to `config` if it exists, with this bus's `stream_replicas`."""
        if (config.num_replicas or 1) != self.stream_replicas:
            config = dataclasses.replace(config, num_replicas=self.stream_replicas)
        try:
            await self.js.stream_info(config.name or "")
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(config)
            self.log.info("bus.stream_created", stream=config.name, subjects=config.subjects)
        else:
            await self.js.update_stream(config)

    async def publish_durable(
        self, msg: Message, msg_id: str, subject: str | None = None, *, timeout: float = 2.0
    ) -> PubAck:
        """Publish into JetStream with Nats-Msg-Id = `msg_id` and wait for the store's ack.
        `ack.duplicate` is true when the same id was already stored within the dedupe window."""
        ack = await self.js.publish(
            subject or subjects.subject_for(msg),
            messages.encode(msg),
            headers={MSG_ID: msg_id},
            timeout=timeout,
        )
        self.stats.published_total += 1
        return ack
