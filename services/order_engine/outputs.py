"""Publishing the engine's outputs into JetStream: in order, confirmed, never twice.

    publisher = OutputPublisher(bus, [exec_stream, trade_stream])
    await publisher.start()                                   # learns where each stream ends
    await publisher.publish([(stream, subject, msg_id, payload), ...])   # returns when all are stored

The partition is the only writer of its output streams. Every message carries its Nats-Msg-Id and
`Nats-Expected-Last-Sequence` = the stream sequence of the message before it, so the server stores a
message only right after its predecessor: a stream can never hold a gap. A batch is written out at once
and only its last message per stream asks for an acknowledgement (the "fence"): when the fence is stored,
so is everything before it. When a fence fails or times out (a server restart, a leader change), the
publisher asks the stream where it ends, finds that message in the batch and sends the rest again.

So an output stream always holds a prefix of the partition's outputs in the engine's order, and the last
stored message says exactly how far publishing got (what recovery needs after a crash).

Batches are pipelined: `publish` of the next batch may start before the previous one is stored. Its
messages are chained after where the previous batch will end (`Chain.sent_seq`), so the server stores
them right after it, or not at all. A batch counts as stored only once every batch before it is. When a
fence fails, no new batch is written until every batch in flight has been settled in order: each one,
after the one before it, asks where the stream ends and sends again what it lacks. Messages of a later
batch that were written on a wrong guess of the end are refused by the server (their expected last
sequence does not match); what was stored after all is found by its position, and its id checked there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from nexus.bus import MSG_ID, Bus
from nexus.fastpub import DirectPublish
from nexus.logs import get_logger
from nexus.resilience import Backoff

Item = tuple[str, str, str, bytes]
"""(stream, subject, Nats-Msg-Id, payload)"""

EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"


class _Ack(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, object] | None = None


_ack_decoder = msgspec.json.Decoder(_Ack)


@dataclass
class Chain:
    """Where one output stream ends: its last sequence and the id of the message stored there, and where
    it will end once every batch written so far is stored."""

    stream: str
    last_seq: int = 0
    last_id: str = ""
    sent_seq: int = 0


class PublishAbandoned(Exception):
    """An earlier batch was given up (its publish was cancelled), so this one cannot follow it."""


class ForeignMessage(Exception):
    """An output stream holds a message this partition did not put there, where one of its own should be:
    another writer. Nothing here can make that right, so publishing stops and says so."""


@dataclass
class _Sent:
    """One stream's share of a batch, as written: the fence's reply subject and the sequence it ends at."""

    chain: Chain
    todo: list[Item]
    fence: asyncio.Future[_Ack | None] | None
    reply: str = ""
    end: int = 0


class OutputPublisher:
    def __init__(self, bus: Bus, streams: list[str], *, ack_timeout: float = 2.0) -> None:
        self.bus = bus
        self.chains = {name: Chain(name) for name in streams}
        self.ack_timeout = ack_timeout
        self.log = get_logger("order_engine.outputs")
        self._prefix = ""
        self._sub: Subscription | None = None
        self._direct: DirectPublish | None = None
        self._fences: dict[str, asyncio.Future[_Ack | None]] = {}
        self._n = 0
        self._tail: asyncio.Future[bool] | None = None
        """Resolves when the last batch handed in is settled: True if stored, False if abandoned."""
        self._in_flight = 0
        """Batches handed in and not yet settled."""
        self._open = asyncio.Event()
        """Cleared while batches in flight are being repaired: no new batch is written meanwhile."""
        self._open.set()
        self.published_total = 0
        self.resends_total = 0
        self.fence_failures_total = 0

    async def start(self) -> None:
        await self.stop()
        self._direct = DirectPublish(self.bus.nc)
        self._prefix = self.bus.nc.new_inbox()
        self._sub = await self.bus.subscribe_raw(self._prefix + ".*", self._on_ack)
        self.reset()
        for chain in self.chains.values():
            await self.resync(chain)

    def reset(self) -> None:
        """Forget every batch in flight (after they were all cancelled); `resync` each chain next."""
        self._fences.clear()
        self._tail = None
        self._in_flight = 0
        self._open.set()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def resync(self, chain: Chain) -> None:
        """Ask the server where `chain`'s stream ends (after a failure, and at start)."""
        info = await self.bus.js.stream_info(chain.stream)
        chain.last_seq = chain.sent_seq = info.state.last_seq
        chain.last_id = ""
        if chain.last_seq and info.state.messages:
            msg = await self.bus.js.get_msg(chain.stream, seq=chain.last_seq)
            chain.last_id = (msg.headers or {}).get(MSG_ID, "")

    async def _on_ack(self, msg: Msg) -> None:
        fence = self._fences.pop(msg.subject, None)
        if fence is None or fence.done():
            return  # the answer to an earlier attempt
        try:
            ack: _Ack | None = _ack_decoder.decode(msg.data) if msg.data else None
        except msgspec.DecodeError:
            ack = None
        fence.set_result(ack)

    async def publish(self, items: list[Item]) -> None:
        """Store every item, in order, after every batch handed in before; returns only when all are
        stored (retrying as long as it takes). The next batch may be handed in before this one returns."""
        if not items:
            return
        await self._open.wait()
        prev, settled = self._tail, asyncio.get_running_loop().create_future()
        self._tail = settled
        self._in_flight += 1
        stored = False
        try:
            by_stream: dict[str, list[Item]] = {}
            for item in items:
                by_stream.setdefault(item[0], []).append(item)
            # Where each share goes is fixed before anything is written: writing can wait for the socket,
            # and meanwhile a repair may move `sent_seq` (a share written on an old guess is refused).
            shares = []
            for stream, todo in by_stream.items():
                chain = self.chains[stream]
                shares.append((chain, todo, chain.sent_seq))
                chain.sent_seq += len(todo)
            sent = [await self._write(chain, todo, seq) for chain, todo, seq in shares]
            # Every stream's share in one write, in this turn rather than on the flusher's: the caller
            # applies its next batch without yielding, and the server stores this one meanwhile.
            await self._fences_back(sent)
            # shielded: if this task is cancelled, the batch before it is not
            if prev is not None and not await asyncio.shield(prev):
                raise PublishAbandoned("an earlier batch of outputs was abandoned")
            failed = [share for share in sent if not self._stored(share)]
            if failed:
                self._open.clear()  # every batch in flight is settled before anything new is written
                await self._repair(failed)
            stored = True
            self.published_total += len(items)
        finally:
            if not settled.done():
                settled.set_result(stored)
            self._in_flight -= 1
            if self._in_flight == 0:  # nothing in flight any more (also when some were abandoned)
                self._tail = None
                for chain in self.chains.values():
                    chain.sent_seq = chain.last_seq
                self._open.set()

    async def _repair(self, failed: list[_Sent]) -> None:
        """Every batch before this one is stored: find out what of `failed` the streams lack, and send it
        again after where they end, until all of it is stored."""
        self.fence_failures_total += len(failed)
        backoff = Backoff(base=0.05, cap=2.0)
        pending = [(share.chain, share.todo) for share in failed]
        while pending:
            missing = [
                (chain, rest) for chain, todo in pending if (rest := await self._unsent(chain, todo, backoff))
            ]
            if not missing:
                return
            delay = backoff.next()
            resend = sum(len(todo) for _, todo in missing)
            self.log.warning("outputs.resend", messages=resend, retry_in=round(delay, 3))
            self.resends_total += resend
            await asyncio.sleep(delay)
            sent = [await self._write(chain, todo, chain.last_seq) for chain, todo in missing]
            await self._fences_back(sent)
            pending = [(share.chain, share.todo) for share in sent if not self._stored(share)]
            self.fence_failures_total += len(pending)

    async def _write(self, chain: Chain, todo: list[Item], seq: int) -> _Sent:
        try:
            return await self._send(chain, todo, seq)
        except nats.errors.Error as exc:  # e.g. the reconnect buffer is full: find out and resend
            self.log.warning("outputs.send_failed", error=repr(exc))
            return _Sent(chain, todo, None)

    async def _fences_back(self, sent: list[_Sent]) -> None:
        """Hand what was written to the socket now, and wait (a while) for the fences' answers."""
        if self._direct is not None:
            self._direct.push()
        fences = [share.fence for share in sent if share.fence is not None]
        if fences:
            await asyncio.wait(fences, timeout=self.ack_timeout)

    def _stored(self, share: _Sent) -> bool:
        """Did the share's fence come back stored where it was meant to be (so everything before it is)?
        An output's place in its stream is fixed, so even a duplicate (stored by an earlier try whose
        answer was lost) comes back at that sequence."""
        if share.fence is None:
            return False
        self._fences.pop(share.reply, None)
        ack = share.fence.result() if share.fence.done() else None
        if ack is None or ack.error is not None or ack.stream != share.chain.stream or ack.seq != share.end:
            return False
        share.chain.last_seq, share.chain.last_id = ack.seq, share.todo[-1][2]
        return True

    async def _unsent(self, chain: Chain, todo: list[Item], backoff: Backoff) -> list[Item]:
        """After a failed fence, with every batch before this one stored (up to `chain.last_seq`): which
        of `todo` the stream lacks. It holds a prefix of the outputs, so it holds as many of `todo` as it
        has messages beyond that, and no more than all of them (later batches may be stored too: their
        writes were already on the wire). The id at the place found must be the one expected."""
        start = chain.last_seq
        while True:
            try:
                await self.resync(chain)
                held = min(chain.last_seq - start, len(todo))
                found = ""
                if held > 0:
                    at = start + held
                    found = chain.last_id if at == chain.last_seq else await self._id_at(chain.stream, at)
                break
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                delay = backoff.next()
                self.log.warning(
                    "outputs.resync_failed", stream=chain.stream, error=repr(exc), retry_in=delay
                )
                await asyncio.sleep(delay)
        if held <= 0:
            return todo  # nothing of this share got in (the stream ends where it ended before)
        if found != todo[held - 1][2]:
            self.log.error("outputs.foreign_message", stream=chain.stream, seq=start + held, msg_id=found)
            raise ForeignMessage(
                f"{chain.stream} holds {found!r} at {start + held}, not {todo[held - 1][2]!r}"
            )
        chain.last_seq, chain.last_id = start + held, todo[held - 1][2]
        return todo[held:]

    async def _id_at(self, stream: str, seq: int) -> str:
        msg = await self.bus.js.get_msg(stream, seq=seq)
        return str((msg.headers or {}).get(MSG_ID, ""))

    async def _send(self, chain: Chain, todo: list[Item], seq: int) -> _Sent:
        """Write `todo` chained after sequence `seq`; the last one is the fence. While connected the
        HPUB commands go straight to nats-py's pending buffer (nats-py 2.16 `_send_command`): the
        per-call validation of publish() is a third of the cost, and our subjects are valid by
        construction. While reconnecting, the public publish() buffers and checks limits."""
        nc = self.bus.nc
        self._n += 1
        reply = f"{self._prefix}.{self._n}"
        fence: asyncio.Future[_Ack | None] = asyncio.get_running_loop().create_future()
        self._fences[reply] = fence
        last = len(todo) - 1
        try:
            if nc.is_connected:
                # the share in one append: nothing of another batch can come between its messages
                reply_b = reply.encode()
                commands = []
                for i, (_, subject, msg_id, data) in enumerate(todo):
                    hdr = b"NATS/1.0\r\nNats-Msg-Id: %s\r\nNats-Expected-Last-Sequence: %d\r\n\r\n" % (
                        msg_id.encode(),
                        seq + i,
                    )
                    commands.append(
                        b"HPUB %s %s %d %d\r\n%s%s\r\n"
                        % (
                            subject.encode(),
                            reply_b if i == last else b"",
                            len(hdr),
                            len(hdr) + len(data),
                            hdr,
                            data,
                        )
                    )
                await nc._send_command(b"".join(commands))
            else:
                for i, (_, subject, msg_id, data) in enumerate(todo):
                    headers = {MSG_ID: msg_id, EXPECTED_LAST_SEQ: str(seq + i)}
                    await nc.publish(subject, data, reply=reply if i == last else "", headers=headers)
        except BaseException:
            self._fences.pop(reply, None)
            raise
        return _Sent(chain, todo, fence, reply, seq + len(todo))

    def stats(self) -> dict[str, float]:
        return {
            "outputs_published_total": float(self.published_total),
            "outputs_resent_total": float(self.resends_total),
            "outputs_fence_failures_total": float(self.fence_failures_total),
        }
