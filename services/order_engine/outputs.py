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
    """Where one output stream ends: its last sequence and the id of the message stored there."""

    stream: str
    last_seq: int = 0
    last_id: str = ""


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
        self.published_total = 0
        self.resends_total = 0
        self.fence_failures_total = 0

    async def start(self) -> None:
        await self.stop()
        self._direct = DirectPublish(self.bus.nc)
        self._prefix = self.bus.nc.new_inbox()
        self._sub = await self.bus.subscribe_raw(self._prefix + ".*", self._on_ack)
        for chain in self.chains.values():
            await self.resync(chain)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def resync(self, chain: Chain) -> None:
        """Ask the server where `chain`'s stream ends (after a failure, and at start)."""
        info = await self.bus.js.stream_info(chain.stream)
        chain.last_seq = info.state.last_seq
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
        """Store every item, in order; returns only when all are stored (retrying as long as it takes)."""
        if not items:
            return
        by_stream: dict[str, list[Item]] = {}
        for item in items:
            by_stream.setdefault(item[0], []).append(item)
        pending = list(by_stream.items())
        backoff = Backoff(base=0.05, cap=2.0)
        while pending:
            sent: list[tuple[Chain, list[Item], asyncio.Future[_Ack | None] | None]] = []
            for stream, todo in pending:
                chain = self.chains[stream]
                try:
                    sent.append((chain, todo, await self._send(chain, todo)))
                except nats.errors.Error as exc:  # e.g. the reconnect buffer is full: find out and resend
                    self.log.warning("outputs.send_failed", error=repr(exc))
                    sent.append((chain, todo, None))
            # Every stream's share in one write, in this turn rather than on the flusher's: the caller
            # applies its next batch without yielding, and the server stores this one meanwhile.
            if self._direct is not None:
                self._direct.push()
            fences = [f for _, _, f in sent if f is not None]
            if fences:
                await asyncio.wait(fences, timeout=self.ack_timeout)
            pending = []
            for chain, todo, fence in sent:
                ack = fence.result() if fence is not None and fence.done() else None
                if ack is not None and ack.error is None and ack.stream == chain.stream:
                    chain.last_seq, chain.last_id = ack.seq, todo[-1][2]
                    continue
                self.fence_failures_total += 1
                rest = await self._unsent(chain, todo, backoff)
                if rest:
                    pending.append((chain.stream, rest))
            if pending:
                delay = backoff.next()
                resend = sum(len(t) for _, t in pending)
                self.log.warning("outputs.resend", messages=resend, retry_in=round(delay, 3))
                self.resends_total += resend
                await asyncio.sleep(delay)
        self._fences.clear()
        self.published_total += len(items)

    async def _unsent(self, chain: Chain, todo: list[Item], backoff: Backoff) -> list[Item]:
        """After a failed fence: which of `todo` the stream does not have yet."""
        while True:
            try:
                await self.resync(chain)
                break
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                delay = backoff.next()
                self.log.warning(
                    "outputs.resync_failed", stream=chain.stream, error=repr(exc), retry_in=delay
                )
                await asyncio.sleep(delay)
        ids = [item[2] for item in todo]
        if chain.last_id in ids:
            return todo[ids.index(chain.last_id) + 1 :]
        return todo  # nothing of this batch got in (the stream ends where it ended before)

    async def _send(self, chain: Chain, todo: list[Item]) -> asyncio.Future[_Ack | None]:
        """Write `todo` chained after the stream's end; the last one is the fence. While connected the
        HPUB commands go straight to nats-py's pending buffer (nats-py 2.16 `_send_command`): the
        per-call validation of publish() is a third of the cost, and our subjects are valid by
        construction. While reconnecting, the public publish() buffers and checks limits."""
        nc = self.bus.nc
        self._n += 1
        reply = f"{self._prefix}.{self._n}"
        fence: asyncio.Future[_Ack | None] = asyncio.get_running_loop().create_future()
        self._fences[reply] = fence
        seq = chain.last_seq
        last = len(todo) - 1
        if nc.is_connected:
            send = nc._send_command
            reply_b = reply.encode()
            for i, (_, subject, msg_id, data) in enumerate(todo):
                hdr = b"NATS/1.0\r\nNats-Msg-Id: %s\r\nNats-Expected-Last-Sequence: %d\r\n\r\n" % (
                    msg_id.encode(),
                    seq + i,
                )
                await send(
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
        else:
            for i, (_, subject, msg_id, data) in enumerate(todo):
                headers = {MSG_ID: msg_id, EXPECTED_LAST_SEQ: str(seq + i)}
                await nc.publish(subject, data, reply=reply if i == last else "", headers=headers)
        return fence

    def stats(self) -> dict[str, float]:
        return {
            "outputs_published_total": float(self.published_total),
            "outputs_resent_total": float(self.resends_total),
            "outputs_fence_failures_total": float(self.fence_failures_total),
        }
