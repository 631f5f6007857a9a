"""The simulator's server: websocket clients with their subscriptions, the data pump, pings, and the
plain-HTTP routes (REST snapshots, stats, fault injection) on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import http
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from feed_handler.market import Event
from feed_handler.protocols.recording import Record
from nexus.logs import get_logger

Frame = tuple[str | None, str]
CLIENT_QUEUE_LIMIT = 200_000
"""Frames queued for one client beyond which it is disconnected (a venue drops slow consumers)."""


class Venue(Protocol):
    name: str
    faults_total: int

    def accepts(self, path: str) -> bool: ...
    def initial_subscriptions(self, path: str) -> set[str]: ...
    def on_message(self, text: str | bytes, subs: set[str]) -> list[str]: ...
    def on_subscribed(self, new: set[str]) -> list[Frame]: ...
    def encode_event(self, ev: Event) -> list[Frame]: ...
    def encode_record(self, rec: Record) -> list[Frame]: ...
    def snapshot(self, symbol: str, limit: int) -> bytes | None: ...
    def fault(self, kind: str, symbol: str = "") -> list[Frame]: ...


class Source(Protocol):
    async def run(self, emit: Any) -> None: ...


@dataclass
class Stats:
    connections_total: int = 0
    subscribe_requests_total: int = 0
    frames_total: int = 0
    frames_sent_total: int = 0
    snapshots_served_total: int = 0
    pings_total: int = 0
    pongs_total: int = 0
    slow_clients_closed_total: int = 0
    silenced_frames_total: int = 0
    faults: dict[str, int] = field(default_factory=dict)


class Client:
    def __init__(self, ws: ServerConnection, subs: set[str]) -> None:
        self.ws = ws
        self.subs = subs
        self.queue: asyncio.Queue[str] = asyncio.Queue()


class Simulator:
    def __init__(
        self,
        venue: Venue,
        source: Source,
        *,
        ping_interval: float = 5.0,
        wait_for_client: bool = False,
        heartbeat: bool = False,
    ) -> None:
        self.venue = venue
        self.source = source
        self.ping_interval = ping_interval
        self.wait_for_client = wait_for_client
        self.heartbeat = heartbeat
        self.clients: set[Client] = set()
        self.stats = Stats()
        self.log = get_logger("feed_handler.simulator").bind(venue=venue.name)
        self._subscribed = asyncio.Event()
        self._silent_until = 0.0
        self._server: Server | None = None
        self.source_done = asyncio.Event()
        self._background: set[asyncio.Future[Any]] = set()

    # -- serving --------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await serve(
            self._handler,
            host,
            port,
            process_request=self._http,
            ping_interval=None,
            max_queue=64,
            write_limit=1 << 20,
        )
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    async def run(self) -> None:
        """Pump the source to the clients until the source ends (then keep serving the books)."""
        tasks = [asyncio.create_task(self._pump(), name="pump")]
        if self.heartbeat:
            tasks.append(asyncio.create_task(self._heartbeats(), name="heartbeats"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _pump(self) -> None:
        if self.wait_for_client:
            await self._subscribed.wait()
        venue = self.venue

        def emit(item: Event | Record) -> None:
            frames = venue.encode_event(item) if isinstance(item, Event) else venue.encode_record(item)
            self._send(frames)

        await self.source.run(emit)
        self.source_done.set()
        self.log.info("simulator.source_done", frames=self.stats.frames_total)

    async def _heartbeats(self) -> None:
        heartbeat = getattr(self.venue, "heartbeat", None)
        while heartbeat is not None:
            await asyncio.sleep(1.0)
            self._send(heartbeat())

    def _send(self, frames: list[Frame]) -> None:
        loop = asyncio.get_running_loop()
        silent = loop.time() < self._silent_until
        for key, text in frames:
            self.stats.frames_total += 1
            if silent:
                self.stats.silenced_frames_total += 1
                continue
            for client in self.clients:
                if key is None or key in client.subs:
                    client.queue.put_nowait(text)
                    if client.queue.qsize() > CLIENT_QUEUE_LIMIT:
                        self.stats.slow_clients_closed_total += 1
                        self._spawn(client.ws.close(1008, "slow consumer"))

    async def _handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        client = Client(ws, self.venue.initial_subscriptions(path))
        self.clients.add(client)
        self.stats.connections_total += 1
        if client.subs:
            self._subscribed.set()
        tasks = [asyncio.create_task(self._writer(client)), asyncio.create_task(self._pinger(client))]
        try:
            async for text in ws:
                self.stats.subscribe_requests_total += 1
                before = set(client.subs)
                for answer in self.venue.on_message(text, client.subs):
                    client.queue.put_nowait(answer)
                for _, frame in self.venue.on_subscribed(client.subs - before):
                    client.queue.put_nowait(frame)
                if client.subs:
                    self._subscribed.set()
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _writer(self, client: Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                text = await client.queue.get()
                await client.ws.send(text)
                self.stats.frames_sent_total += 1

    async def _pinger(self, client: Client) -> None:
        """Ping every `ping_interval` seconds and count the pongs (the client must answer)."""
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while self.ping_interval > 0:
                await asyncio.sleep(self.ping_interval)
                waiter = await client.ws.ping()
                self.stats.pings_total += 1
                await asyncio.wait_for(waiter, timeout=self.ping_interval)
                self.stats.pongs_total += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- plain HTTP -----------------------------------------------------------------------------------

    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/api/v3/depth":
            body = self.venue.snapshot(query.get("symbol", ""), int(query.get("limit", "1000") or 1000))
            if body is None:
                return _json(conn, http.HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."})
            self.stats.snapshots_served_total += 1
            return _json(conn, http.HTTPStatus.OK, body)
        if url.path == "/_sim/stats":
            out = msgspec.to_builtins(self.stats)
            out["clients"] = len(self.clients)
            out["source_done"] = self.source_done.is_set()
            out["subscriptions"] = sorted({s for c in self.clients for s in c.subs})
            return _json(conn, http.HTTPStatus.OK, out)
        if url.path == "/_sim/fault":
            return self._fault(conn, query)
        if "upgrade" not in request.headers.get("Connection", "").lower() or not self.venue.accepts(url.path):
            return _json(conn, http.HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})
        return None  # a websocket handshake

    def _fault(self, conn: ServerConnection, query: dict[str, str]) -> Response:
        kind = query.get("kind", "")
        self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
        if kind == "close":
            for client in list(self.clients):
                self._spawn(client.ws.close(1011, "simulated failure"))
            return _json(conn, http.HTTPStatus.OK, {"closed": len(self.clients)})
        if kind == "silence":
            seconds = float(query.get("seconds", "5"))
            self._silent_until = asyncio.get_running_loop().time() + seconds
            return _json(conn, http.HTTPStatus.OK, {"silent_for": seconds})
        try:
            frames = self.venue.fault(kind, query.get("symbol", ""))
        except (ValueError, KeyError) as exc:
            return _json(conn, http.HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        self._send(frames)
        return _json(conn, http.HTTPStatus.OK, {"injected": kind, "frames": len(frames)})


def _json(conn: ServerConnection, status: http.HTTPStatus, body: Any) -> Response:
    text = body.decode() if isinstance(body, bytes) else msgspec.json.encode(body).decode()
    response = conn.respond(status, text)
    response.headers["Content-Type"] = "application/json"
    return response
