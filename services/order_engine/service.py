"""The order-engine service: the matching engine between its input stream and its output streams.

    input   ORD_IN (direct) or ORD_OK (approved), partition k of n, in stream order   (intake.py)
    engine  MatchingEngine: deterministic, pure                                       (engine.py)
    output  ENGINE_EXEC_<k> / ENGINE_TRADES_<k>, deterministic ids, chained, confirmed (outputs.py)
            then L2 deltas and quotes of the changed books on md.p1 (core NATS)
    ack     the input batch, once its outputs are stored
    snapshot  every NEXUS_ENGINE_SNAPSHOT_EVERY commands or _INTERVAL seconds, and on stop (store.py)

Start-up: load the latest snapshot, read where each output stream ends (recovery.py), recreate the
consumer at the snapshot's sequence + 1 and replay: outputs up to a stream's end are already stored and
skipped, the rest published. Ready once the backlog found at start is processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import warnings
from collections import deque
from typing import Annotated, Any, Literal

import msgspec
import nats.errors
import nats.js.errors
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from nats.aio.msg import Msg

from nexus import messages, streams, subjects
from nexus.client import InvalidCommand, SubmitTimeout
from nexus.errors import BusError, RemoteError, SettingsError
from nexus.instruments import load_instruments
from nexus.messages import (
    BookRequest,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    ErrorReply,
    ExecReport,
    Message,
    NewOrder,
    OrderQuery,
    Reason,
    ReplaceOrder,
    RiskCancelAll,
    RiskReject,
    Trade,
    now_ns,
)
from nexus.resilience import Backoff
from nexus.runtime import MsgspecResponse, Service, body_openapi, read_body
from nexus.runtime.heap import keep_heap_frozen
from nexus.settings import PositiveFloat, Settings, var_name
from nexus.subjects import ALL_SYMBOLS, ANY
from order_engine import snapshot
from order_engine.engine import MatchingEngine, Output
from order_engine.gateway import Gateway
from order_engine.intake import Delivery, Intake
from order_engine.outputs import Item, OutputPublisher
from order_engine.recovery import Position, output_id, position
from order_engine.store import SnapshotStore

Count = Annotated[int, msgspec.Meta(ge=1)]


class OrderEngineSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the order-engine service (NEXUS_* variables)."""

    instruments_file: str = ""
    """Instruments TOML (tick, lot, limits); the packaged defaults when empty."""
    engine_venue: str = "nexus"
    """Venue name of the engine's own trades and book (md.p0.trade.<venue>.<symbol>)."""
    engine_input: Literal["direct", "approved"] = "direct"
    """direct: consume client order entry (ORD_IN); approved: consume what risk approved (ORD_OK)."""
    engine_partitions: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 1
    """How many engine instances share the symbols (every instance must say the same)."""
    engine_partition: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Which share this instance takes: 0 .. engine_partitions-1."""
    engine_batch: Count = 500
    """Most commands taken from the input per batch (outputs and the input ack go per batch)."""
    engine_pipeline: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    """Batches whose outputs may be on their way to the server at once (1: each waits for the last)."""
    engine_snapshot_every: Count = 50_000
    engine_snapshot_interval: PositiveFloat = 10.0
    engine_memory: Annotated[int, msgspec.Meta(ge=0)] = 20_000
    """Closed orders and command answers remembered (queries, duplicate ids)."""
    engine_book_depth: Annotated[int, msgspec.Meta(ge=0)] = 50
    """Levels a side in the book snapshots published at start (0 = all)."""
    engine_max_ack_pending: Count = 20_000
    engine_ack_timeout: PositiveFloat = 2.0
    """Seconds to wait for output acks before sending the missing ones again."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.engine_partition >= self.engine_partitions:
            raise SettingsError(
                var_name("engine_partition"),
                self.engine_partition,
                f"must be below NEXUS_ENGINE_PARTITIONS={self.engine_partitions}",
            )
        try:
            subjects.token(self.engine_venue)
        except ValueError as exc:
            raise SettingsError(var_name("engine_venue"), self.engine_venue, str(exc)) from None


class OrderEngine(Service[OrderEngineSettings]):
    """Price-time matching with durable order flow and exact recovery."""

    name = "order-engine"
    settings_cls = OrderEngineSettings

    def __init__(self, settings: OrderEngineSettings, bus: Any) -> None:
        super().__init__(settings, bus)
        s = settings
        self.partition, self.partitions = s.engine_partition, s.engine_partitions
        self.in_stream = streams.engine_input_stream(s.engine_input, self.partitions).name or ""
        self.instruments = load_instruments(s.instruments_file or None)
        self.engine = self._new_engine()
        self.store = SnapshotStore(s.data_dir, f"{self.in_stream}-{self.partition}of{self.partitions}")
        self.exec_stream = streams.engine_exec_stream_name(self.partition)
        self.trades_stream = streams.engine_trades_stream_name(self.partition)
        self.publisher = OutputPublisher(
            bus, [self.exec_stream, self.trades_stream], ack_timeout=s.engine_ack_timeout
        )
        self.intake = Intake(
            bus,
            s.engine_input,
            self.partition,
            self.partitions,
            max_ack_pending=s.engine_max_ack_pending,
            resume_from=lambda: self.in_seq + 1,
        )
        self.gateway = Gateway(bus)
        self.decoder = messages.decoder(
            messages.ApprovedCommandMsg if s.engine_input == "approved" else messages.OrderCommandMsg
        )
        """Risk's refusals (RiskReject) and kill-switch cancels (RiskCancelAll) come only on the approved
        input; on client entry they do not decode as commands."""
        self.in_seq = 0
        """The last input sequence applied to the engine."""
        self.acked_seq = 0
        """The last input sequence whose outputs are all stored (and which is acknowledged)."""
        self.snapshot_seq = 0
        self.stored: dict[str, Position] = {}
        """Output stream -> position of the last output it held at start: a replay skips up to there."""
        self.recovering = True
        self._stopping = False
        self._loop: asyncio.Task[Any] | None = None
        self._stores: deque[asyncio.Future[None]] = deque()
        """Stores of applied batches not yet settled, oldest first; each settles after the one before."""
        self._dead: list[Msg] = []
        self._since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self._subs: list[Any] = []
        self.counters = {
            "batches_total": 0,
            "decode_errors_total": 0,
            "engine_errors_total": 0,
            "loop_errors_total": 0,
            "outputs_suppressed_total": 0,
            "commands_skipped_total": 0,
            "snapshots_total": 0,
            "replayed_total": 0,
            "reloads_total": 0,
            "snapshot_failures_total": 0,
        }
        self.snapshot_ms = 0.0
        self._snapshot_child: int | None = None
        self.problem = ""
        """Why the engine is not running yet (empty once it runs)."""
        self.last_batch = 0

    def _new_engine(self) -> MatchingEngine:
        owned = [
            sym for sym in self.instruments if streams.partition_of(sym, self.partitions) == self.partition
        ]
        return MatchingEngine(
            self.instruments,
            venue=self.settings.engine_venue,
            symbols=owned,
            memory=self.settings.engine_memory,
            primary=streams.partition_of(ALL_SYMBOLS, self.partitions) == self.partition,
        )

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Boot in the background: a server that cannot hold the order streams yet (JetStream off, a
        stream overlapping ord.in.>, a cluster without quorum) leaves the engine up, not ready, saying
        why and trying again — instead of a crash loop."""
        self.spawn(self._boot(), name="engine-boot")

    async def _boot(self) -> None:
        backoff = Backoff(base=0.5, cap=10.0)
        while not self._stopping:
            try:
                await self._setup()
                self.problem = ""
                return
            except (nats.errors.Error, nats.js.errors.Error, BusError, OSError) as exc:
                self.problem = f"cannot set up the order streams: {exc}"
                delay = backoff.next()
                self.log.error("engine.setup_failed", error=str(exc), retry_in=round(delay, 2))
                await self.intake.stop()
                await asyncio.sleep(delay)

    async def _setup(self) -> None:
        for config in (
            streams.engine_input_stream(self.settings.engine_input, self.partitions),
            streams.engine_exec_stream(self.partition),
            streams.engine_trades_stream(self.partition),
        ):
            await self.bus.ensure_stream(config)
        self.engine = self._new_engine()
        self.in_seq = self.acked_seq = self.snapshot_seq = 0
        await self._recover_state()
        await self.publisher.start()
        self._high_water_marks()
        await self.intake.start(self.in_seq + 1)
        self.recovering = self.intake.initial_pending > 0
        if not self._subs:
            self._subs = [
                await self.bus.subscribe_raw(subjects.order_query(ANY), self._on_query),
                await self.bus.subscribe_raw(subjects.book_request(ANY), self._on_book),
            ]
        await self.gateway.start(self.name)
        for msg in self.engine.full_book(now_ns(), self.settings.engine_book_depth or None):
            await self.bus.publish(msg)
        self.log.info(
            "engine.started",
            input=self.in_stream,
            partition=f"{self.partition}of{self.partitions}",
            symbols=sorted(self.engine.syms),
            from_seq=self.in_seq + 1,
            backlog=self.intake.initial_pending,
            stored={k: f"{v[0]}:{v[1]}" for k, v in self.stored.items()},
        )
        self.spawn(keep_heap_frozen(), name="heap-freezer")
        self._loop = self.spawn(self._run(), name="engine-loop")

    async def _recover_state(self) -> None:
        snap, problems = await asyncio.to_thread(self.store.load)
        for problem in problems:
            self.log.error("snapshot.unreadable", problem=problem)
        if snap is None:
            snap = await self._carry_over()
        if snap is None:
            info = await self.bus.js.stream_info(self.in_stream)
            if info.state.first_seq > 1:
                self.log.warning("engine.no_snapshot", stream_first_seq=info.state.first_seq)
            return
        snapshot.restore(self.engine, snap.engine)
        self.in_seq = self.snapshot_seq = snap.in_seq if snap.in_stream == self.in_stream else 0
        self.log.info("snapshot.loaded", in_seq=snap.in_seq, input=snap.in_stream, path=str(self.store.path))

    async def _carry_over(self) -> snapshot.Snapshot | None:
        """No snapshot of this input: when switching input (direct <-> approved) the books carry over from
        the other input's last snapshot, and the new input is consumed from its first message."""
        other: streams.EngineInput = "approved" if self.settings.engine_input == "direct" else "direct"
        name = streams.engine_input_stream(other, self.partitions).name or ""
        other_store = SnapshotStore(self.settings.data_dir, f"{name}-{self.partition}of{self.partitions}")
        snap, _ = await asyncio.to_thread(other_store.load)
        if snap is not None:
            self.log.warning("snapshot.carried_over", from_input=name, in_seq=snap.in_seq)
        return snap

    def _high_water_marks(self) -> None:
        """Where each output stream ends, as a position of this input and partitioning (or nothing)."""
        self.stored = {}
        for chain in self.publisher.chains.values():
            pos = position(chain.last_id, self.in_stream, self.partition, self.partitions)
            if pos is not None and pos[0] > self.in_seq:
                self.stored[chain.stream] = pos

    async def stop_intake(self) -> None:
        self._stopping = True
        await self.intake.stop()
        self.intake.wake()
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []

    async def stop(self) -> None:
        if self._loop is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop), self.settings.drain_timeout)
            except TimeoutError:
                self.log.warning("engine.stop_timeout")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._settle(), self.settings.drain_timeout)
        deadline = time.monotonic() + self.settings.drain_timeout
        while self._snapshot_child is not None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._since_snapshot and not self.recovering and self.acked_seq == self.in_seq:
            await self._snapshot(fork=False)
        await self.gateway.stop()
        await self.cancel_tasks()
        await self._drop_inflight()  # stores the cancelled loop had started
        await self.publisher.stop()

    # -- the loop -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff(base=0.1, cap=5.0)
        while not self._stopping:
            try:
                batch = await self.intake.next_batch(self.settings.engine_batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS trouble before anything was applied: resume where we are
                self.counters["loop_errors_total"] += 1
                delay = backoff.next()
                self.log.exception("engine.intake_failed", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                with contextlib.suppress(Exception):
                    if not self._stopping:
                        await self.intake.start(self.in_seq + 1)
                continue
            try:
                if batch:
                    await self._process(batch)
                if self.recovering and not self.intake.queue and self.intake.pending == 0:
                    await self._settle()
                    self.recovering = False
                    self.log.info(
                        "engine.recovered", in_seq=self.in_seq, replayed=self.counters["replayed_total"]
                    )
                if self._since_snapshot and (
                    self._since_snapshot >= self.settings.engine_snapshot_every
                    or time.monotonic() - self._last_snapshot >= self.settings.engine_snapshot_interval
                ):
                    await self._snapshot()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Something failed after commands were applied: the books may be ahead of what is stored.
                # Start over from the last snapshot; replay publishes whatever is missing, nothing twice.
                self.counters["loop_errors_total"] += 1
                self.log.exception("engine.batch_failed", error=repr(exc))
                await asyncio.sleep(backoff.next())
                with contextlib.suppress(Exception):
                    await self._reload()

    async def _process(self, batch: list[tuple[Delivery, Msg]]) -> None:
        """Apply a batch, then hand its outputs to a store task. The next batch is applied while the server
        stores this one's outputs, and its outputs are written without waiting for this one's to be
        stored: up to NEXUS_ENGINE_PIPELINE batches are in flight. The publisher stores them in the order
        they were handed in (outputs.py), so the output streams keep the engine's order."""
        ts = now_ns()
        items: list[Item] = []
        k, n, in_stream = self.partition, self.partitions, self.in_stream
        stored = self.stored
        exec_stream, trades_stream = self.exec_stream, self.trades_stream
        apply, subject, encode = self._apply, self._subject, messages.encode
        for d, msg in batch:
            seq = d.stream_seq
            if seq <= self.in_seq:
                self.counters["commands_skipped_total"] += 1
                continue
            for i, out in enumerate(apply(msg, ts)):
                stream = trades_stream if type(out) is Trade else exec_stream
                if stored and (seq, i) <= stored.get(stream, (0, 0)):
                    self.counters["outputs_suppressed_total"] += 1
                    continue
                items.append((stream, subject(out), output_id(in_stream, k, n, seq, i), encode(out)))
            self.in_seq = seq
            self._since_snapshot += 1
            if self.recovering:
                self.counters["replayed_total"] += 1
        if stored and all(self.in_seq >= pos[0] for pos in stored.values()):
            self.stored = {}
        updates = self.engine.book_updates(ts)
        dead, self._dead = self._dead, []
        await self._settle(keep=self.settings.engine_pipeline - 1)
        stores = self._stores
        prev = stores[-1] if stores else None
        stores.append(
            asyncio.ensure_future(self._store(items, updates, dead, batch[-1][1], self.in_seq, prev))
        )
        # One turn of the loop for the store task to write the outputs to the socket. Without it the task
        # would first run when this loop next waits, after the next batch was applied: no overlap at all.
        await asyncio.sleep(0)
        self.counters["batches_total"] += 1
        self.last_batch = len(batch)

    async def _store(
        self,
        items: list[Item],
        updates: list[Any],
        dead: list[Msg],
        last: Msg,
        seq: int,
        prev: asyncio.Future[None] | None,
    ) -> None:
        """Store a batch's outputs (retrying until they are), then its book data, then ack its input. The
        publisher stores batches in the order they were handed in; `prev`, the store of the batch before,
        keeps the book data and the acks in that order too."""
        await self.publisher.publish(items)
        if prev is not None:
            await asyncio.shield(prev)
        self.acked_seq = seq
        try:
            for update in updates:
                await self.bus.publish(update)
            for msg in dead:
                await self._dead_letter(msg)
            await self.intake.ack(last)
        except Exception as exc:  # market data and acks are not the record: log, the next batch acks
            self.log.warning("engine.after_store_failed", error=repr(exc))

    async def _settle(self, keep: int = 0) -> None:
        """Wait until every output of the commands applied so far is stored, but for the last `keep`
        batches'. Shielded: a timeout or a cancellation here leaves the stores to _drop_inflight."""
        stores = self._stores
        while len(stores) > keep:
            await asyncio.shield(stores[0])
            stores.popleft()

    async def _drop_inflight(self) -> None:
        """Cancel the stores in flight, if any: what they had not stored is published again on replay."""
        stores, self._stores = list(self._stores), deque()
        for store in stores:
            store.cancel()
        await asyncio.gather(*stores, return_exceptions=True)

    async def _reload(self) -> None:
        """Throw the engine away and rebuild it from the last snapshot and the streams (as at start)."""
        await self._drop_inflight()
        self.publisher.reset()
        await self.intake.stop()
        self.engine = self._new_engine()
        self.in_seq = self.acked_seq = self.snapshot_seq = 0
        self._since_snapshot = 0
        await self._recover_state()
        for chain in self.publisher.chains.values():
            await self.publisher.resync(chain)
        self._high_water_marks()
        await self.intake.start(self.in_seq + 1)
        self.recovering = self.intake.initial_pending > 0
        self.counters["reloads_total"] += 1
        self.log.warning("engine.reloaded", from_seq=self.in_seq + 1)

    def _apply(self, msg: Msg, ts: int) -> list[Output]:
        """Decode one command and run it through the engine; whatever is wrong becomes a reject."""
        tokens = msg.subject.split(".")  # <prefix>.<partition>.<tier>.<account>.<symbol>
        account, symbol = tokens[-2], tokens[-1]
        engine = self.engine
        try:
            cmd = self.decoder.decode(msg.data)
        except messages.DECODE_ERRORS as exc:
            self.counters["decode_errors_total"] += 1
            self._dead.append(msg)
            return engine.reject_raw(
                account, symbol, _client_order_id(msg.data), Reason.DECODE_ERROR, str(exc), ts
            )
        decided_by_risk = type(cmd) is RiskReject or type(cmd) is RiskCancelAll
        order_cmd = cmd.command if decided_by_risk else cmd
        problem = _route_problem(order_cmd, account, symbol)
        if problem:
            coid = order_cmd.client_order_id
            return engine.reject_raw(account, symbol, coid, Reason.INVALID_FIELD, problem, ts)
        try:
            if type(cmd) is RiskReject:
                return engine.reject(cmd.command, cmd.reason, cmd.text, ts)
            if type(cmd) is RiskCancelAll:
                return engine.process(cmd.command, ts, cancel_reason=Reason.CANCELLED_BY_RISK)
            return engine.process(cmd, ts)
        except Exception as exc:  # a bug: say so loudly, answer the client, keep serving everyone else
            self.counters["engine_errors_total"] += 1
            self.log.exception("engine.error", command=repr(cmd), error=repr(exc))
            coid = order_cmd.client_order_id
            return engine.reject_raw(account, symbol, coid, Reason.ENGINE_ERROR, repr(exc), ts)

    def _subject(self, out: Output) -> str:
        if type(out) is Trade:
            return subjects.engine_trade(self.partition, out.venue, out.symbol)
        assert isinstance(out, ExecReport)
        return subjects.engine_exec(self.partition, out.account, subjects.safe_symbol(out.symbol))

    async def _dead_letter(self, msg: Msg) -> None:
        """Undecodable input goes to sys.dlq.order-engine as it came (its reject says why)."""
        if self.bus.connected:
            headers = {"Nexus-Error": "not an order command", "Nexus-Subject": msg.subject}
            await self.bus.nc.publish(subjects.dead_letter(self.name), msg.data, headers=headers)

    def _snapshot_bytes(self) -> bytes:
        snap = snapshot.Snapshot(
            in_stream=self.in_stream,
            in_seq=self.in_seq,
            partition=self.partition,
            partitions=self.partitions,
            engine=snapshot.export(self.engine),
            ts=now_ns(),
        )
        return snapshot.encode(snap)

    async def _snapshot(self, *, fork: bool = True) -> None:
        """Persist the state of everything applied so far (whose outputs are all stored).

        Exporting and encoding a large state takes 100-300 ms of CPU; done in the loop it would stall
        every order for that long. So the engine forks: the child, a copy-on-write image of this
        instant, writes the snapshot and exits; the engine goes on at once (the fork costs a few ms).
        Where fork is missing, and on stop, it is done in-process."""
        await self._settle()  # a snapshot includes only commands whose outputs are all stored
        if self.acked_seq != self.in_seq or self._snapshot_child is not None:
            return
        self._since_snapshot = 0
        self._last_snapshot = time.monotonic()
        t0 = time.perf_counter()
        if not fork or not hasattr(os, "fork"):
            data = self._snapshot_bytes()
            await asyncio.to_thread(self.store.save, data)
            self._snapshot_done(self.in_seq, t0)
            return
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in a process with threads (the idle executor threads
            # here); the child only encodes, writes a file and leaves with os._exit: no locks, no I/O
            # on inherited sockets, no logging.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                self.store.save(self._snapshot_bytes())
                code = 0
            finally:
                os._exit(code)
        self._snapshot_child = pid
        self.spawn(self._reap_snapshot(pid, self.in_seq, t0), name="snapshot-reaper")

    async def _reap_snapshot(self, pid: int, in_seq: int, t0: float) -> None:
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
                if done:
                    break
                await asyncio.sleep(0.01)
            if os.waitstatus_to_exitcode(status) == 0:
                self._snapshot_done(in_seq, t0)
            else:
                self.counters["snapshot_failures_total"] += 1
                self.log.error("snapshot.failed", pid=pid, status=status)
        finally:
            self._snapshot_child = None

    def _snapshot_done(self, in_seq: int, t0: float) -> None:
        self.snapshot_seq = in_seq
        self.counters["snapshots_total"] += 1
        self.snapshot_ms = (time.perf_counter() - t0) * 1000

    # -- requests -----------------------------------------------------------------------------------

    def owns(self, symbol: str) -> bool:
        return streams.partition_of(symbol, self.partitions) == self.partition

    async def _on_query(self, msg: Msg) -> None:
        if not msg.reply:
            return
        reply: Message | None
        try:
            q = messages.decode(OrderQuery, msg.data)
        except messages.DECODE_ERRORS as exc:
            reply = ErrorReply(code="DECODE_ERROR", reason=str(exc)) if self.partition == 0 else None
        else:
            reply = self.answer_query(q, msg.subject.rsplit(".", 1)[-1])
        if reply is not None:
            await msg.respond(messages.encode(reply))

    def answer_query(self, q: OrderQuery, account: str) -> Message | None:
        """The answer of this partition, or None when another partition should answer."""
        if q.account != account:
            return (
                ErrorReply(code="INVALID_FIELD", reason="account does not match")
                if self.partition == 0
                else None
            )
        if q.symbol and not self.owns(subjects.safe_symbol(q.symbol)):
            return None
        report = self.engine.query(q.account, q.client_order_id, latest=q.latest)
        if report is not None:
            return report
        if q.symbol or self.partitions == 1:
            return ErrorReply(
                code=Reason.UNKNOWN_ORDER, reason=f"no order {q.client_order_id!r} of {q.account}"
            )
        return None

    async def _on_book(self, msg: Msg) -> None:
        symbol = msg.subject.rsplit(".", 1)[-1]
        if not msg.reply or not self.owns(symbol):
            return
        reply: Message
        try:
            req = messages.decode(BookRequest, msg.data) if msg.data else BookRequest(symbol=symbol)
        except messages.DECODE_ERRORS as exc:
            reply = ErrorReply(code="DECODE_ERROR", reason=str(exc))
        else:
            reply = self.book(symbol, req.depth)
        await msg.respond(messages.encode(reply))

    def book(self, symbol: str, depth: int) -> BookSnapshot | ErrorReply:
        if not self.engine.serves(symbol):
            return ErrorReply(code=Reason.UNKNOWN_SYMBOL, reason=f"unknown symbol {symbol!r}")
        return self.engine.snapshot(symbol, depth or None, now_ns())

    # -- what the runner reports --------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.counters.items()}
        out.update(self.engine.stats())
        out.update(self.publisher.stats())
        out.update(self.gateway.stats())
        out.update(
            {
                "input_queue_depth": float(self.intake.depth),
                "input_queue_limit": float(self.settings.engine_max_ack_pending),
                "input_gaps_total": float(self.intake.gaps_total),
                "input_restarts_total": float(self.intake.restarts_total),
                "input_received_total": float(self.intake.received_total),
                "input_seq": float(self.in_seq),
                "input_acked_seq": float(self.acked_seq),
                "snapshot_seq": float(self.snapshot_seq),
                "snapshot_ms": self.snapshot_ms,
                "last_batch_commands": float(self.last_batch),
                "recovering": 1.0 if self.recovering else 0.0,
            }
        )
        return out

    def details(self) -> dict[str, Any]:
        return {
            "input": self.in_stream,
            "partition": self.partition,
            "partitions": self.partitions,
            "symbols": sorted(self.engine.syms),
            "venue": self.engine.venue,
        }

    def ready(self) -> tuple[bool, str]:
        if self._loop is None:
            return False, self.problem or "setting up the order streams"
        if self.recovering:
            return False, f"replaying the input stream (at sequence {self.in_seq})"
        return True, ""

    # -- REST ---------------------------------------------------------------------------------------

    def add_routes(self, app: FastAPI) -> None:
        router = APIRouter(tags=["orders"])

        async def submit(request: Request, kind: Any) -> MsgspecResponse:
            cmd = await read_body(request, kind)
            try:
                return MsgspecResponse(await self.gateway.submit(cmd))
            except SubmitTimeout as exc:
                raise HTTPException(status_code=504, detail=str(exc)) from None
            except InvalidCommand as exc:
                raise HTTPException(status_code=422, detail=f"invalid {kind.__name__}: {exc}") from None

        @router.post("/orders", response_class=MsgspecResponse, openapi_extra=body_openapi(app, NewOrder))
        async def new_order(request: Request) -> MsgspecResponse:
            """Submit a new order; the reply is its accepted or rejected report."""
            return await submit(request, NewOrder)

        @router.post(
            "/orders/cancel", response_class=MsgspecResponse, openapi_extra=body_openapi(app, CancelOrder)
        )
        async def cancel(request: Request) -> MsgspecResponse:
            """Cancel an order; the reply is the cancelled report or a reject."""
            return await submit(request, CancelOrder)

        @router.post(
            "/orders/replace", response_class=MsgspecResponse, openapi_extra=body_openapi(app, ReplaceOrder)
        )
        async def replace(request: Request) -> MsgspecResponse:
            """Change an order's price and/or quantity; the reply is the replaced report or a reject."""
            return await submit(request, ReplaceOrder)

        @router.post(
            "/orders/cancel-all", response_class=MsgspecResponse, openapi_extra=body_openapi(app, CancelAll)
        )
        async def cancel_all(request: Request) -> MsgspecResponse:
            """Cancel every open order of an account (or of one symbol); the reply is the acknowledgement."""
            return await submit(request, CancelAll)

        @router.get("/orders/{account}/{client_order_id}", response_class=MsgspecResponse)
        async def query(account: str, client_order_id: str, symbol: str = "", latest: bool = False) -> Any:
            """The first answer to a command (or, with latest=true, the order's latest report)."""
            subjects.token(account)  # 422 when it cannot be one (nexus.runtime's handler)
            if symbol:
                subjects.token(symbol)
            q = OrderQuery(account=account, client_order_id=client_order_id, symbol=symbol, latest=latest)
            local = self.answer_query(q, account)
            if local is None:
                try:
                    client = await self.gateway.client(account)
                    local = await client.query(client_order_id, symbol, latest=latest)
                except RemoteError as exc:
                    local = ErrorReply(code=exc.code, reason=exc.reason)
                except BusError as exc:
                    raise HTTPException(status_code=504, detail=str(exc)) from None
            if isinstance(local, ErrorReply):
                raise HTTPException(status_code=404, detail=local.reason)
            return MsgspecResponse(local)

        @router.get("/orders/{account}", response_class=MsgspecResponse)
        async def open_orders(account: str) -> MsgspecResponse:
            """The latest report of every open order of the account in this engine partition."""
            subjects.token(account)
            return MsgspecResponse([o.last for o in self.engine.open_orders(account)])

        @router.get("/book/{symbol}", response_class=MsgspecResponse, tags=["market data"])
        async def book(symbol: str, depth: Annotated[int, Query(ge=0)] = 10) -> MsgspecResponse:
            """L2 book of a symbol (depth levels a side, 0 = all); `seq` is the last output it includes."""
            subjects.token(symbol)
            if self.owns(symbol):
                snap = self.book(symbol, depth)
            else:
                try:
                    snap = await self.bus.request(
                        subjects.book_request(symbol), BookRequest(symbol=symbol, depth=depth), BookSnapshot
                    )
                except RemoteError as exc:
                    snap = ErrorReply(code=exc.code, reason=exc.reason)
                except BusError as exc:
                    raise HTTPException(status_code=504, detail=str(exc)) from None
            if isinstance(snap, ErrorReply):
                raise HTTPException(status_code=404, detail=snap.reason)
            return MsgspecResponse(snap)

        app.include_router(router)


def _route_problem(cmd: NewOrder | CancelOrder | ReplaceOrder | CancelAll, account: str, symbol: str) -> str:
    """Why a command does not belong on the subject it came on ("" when it does)."""
    if cmd.account != account:
        return f"account {cmd.account!r} does not match the subject's {account!r}"
    try:
        expected = subjects.command_symbol(cmd)
    except ValueError:
        return f"symbol {getattr(cmd, 'symbol', '')!r} cannot be a subject token"
    if expected != symbol:
        return f"symbol {expected!r} does not match the subject's {symbol!r}"
    return ""


class _Coid(msgspec.Struct):
    client_order_id: str = ""


def _client_order_id(data: bytes) -> str:
    """The client order id of an undecodable command, when the JSON holds one (for the reject; cut to
    the longest a valid one can be, so a 70 kB id is not echoed to the account)."""
    try:
        return msgspec.json.decode(data, type=_Coid).client_order_id[: messages.TOKEN_MAX]
    except messages.DECODE_ERRORS:
        return ""
