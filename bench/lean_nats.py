"""A minimal NATS client connection for load generators: publish (with headers), subscribe, no more.

    conn = await LeanConnection.open("nats://127.0.0.1:4222", on_msg)   # on_msg(sid, payload): plain call
    conn.subscribe(subjects.exec_report("*", "AAPL"), 1)
    conn.hpub(subject, b"Nats-Msg-Id: mk:o1", payload, reply="_INBOX.x.1")
    await conn.flush()                                                  # PING, wait for its PONG
    conn.close()

A benchmark's client shares the two cores with the server and the process under test. nats-py spends
tens of µs of Python per message received (a Msg object, a queue, a task per subscription); this speaks
the text protocol directly over an asyncio Protocol and hands each payload to one plain callback, so the
load generator takes less of the CPU that the system under test needs. It does what any client in any
language does on the wire (docs/protocol: CONNECT, PING/PONG, SUB, HPUB, MSG, HMSG) and nothing else: no
reconnect, no TLS, no auth. Headers of received messages are skipped, not parsed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import cast
from urllib.parse import urlparse

OnMsg = Callable[[int, bytes], None]
"""(subscription id, payload)"""

_CRLF = b"\r\n"


class LeanConnection(asyncio.Protocol):
    def __init__(self, on_msg: OnMsg) -> None:
        self.on_msg = on_msg
        self.transport: asyncio.Transport | None = None
        self.errors: list[str] = []
        self.received = 0
        self._buf = bytearray()
        self._pongs: list[asyncio.Future[None]] = []
        self._info: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, url: str, on_msg: OnMsg, timeout: float = 5.0) -> LeanConnection:
        u = urlparse(url)
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: cls(on_msg), u.hostname or "127.0.0.1", u.port or 4222)
        await asyncio.wait_for(asyncio.shield(conn._info), timeout)
        options = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1}
        conn._write(b"CONNECT " + json.dumps(options).encode() + _CRLF)
        await asyncio.wait_for(conn.flush(), timeout)  # the server answers PING only once CONNECT is taken
        return conn

    # -- sending ----------------------------------------------------------------------------------------

    def subscribe(self, subject: str, sid: int) -> None:
        self._write(b"SUB %b %d\r\n" % (subject.encode(), sid))

    def hpub(self, subject: str, header_lines: bytes, payload: bytes, reply: str = "") -> None:
        """Publish with headers: `header_lines` is "Name: value" lines joined by CRLF, without the end."""
        headers = b"NATS/1.0\r\n" + header_lines + b"\r\n\r\n"
        self._write(
            b"HPUB %b %b %d %d\r\n%b%b\r\n"
            % (subject.encode(), reply.encode(), len(headers), len(headers) + len(payload), headers, payload)
        )

    async def flush(self) -> None:
        """Send PING and wait for the PONG: everything written before it has been processed."""
        pong = asyncio.get_running_loop().create_future()
        self._pongs.append(pong)
        self._write(b"PING\r\n")
        await asyncio.wait({pong, self._lost}, return_when=asyncio.FIRST_COMPLETED)
        if not pong.done():
            raise ConnectionError(f"connection lost: {self.errors}")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError(f"not connected: {self.errors}")
        self.transport.write(data)

    # -- receiving --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.errors.append(repr(exc))
        if not self._lost.done():
            self._lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        while pos < end:
            eol = buf.find(_CRLF, pos)
            if eol < 0:
                break
            op = buf[pos : pos + 4]
            if op == b"MSG " or op == b"HMSG":
                args = bytes(buf[pos:eol]).split()
                size = int(args[-1])
                start = eol + 2
                if start + size + 2 > end:
                    break  # the payload has not all arrived
                skip = int(args[-2]) if op == b"HMSG" else 0
                self.received += 1
                self.on_msg(int(args[2]), bytes(buf[start + skip : start + size]))
                pos = start + size + 2
                continue
            line = bytes(buf[pos:eol])
            pos = eol + 2
            if line == b"PING":
                self._write(b"PONG\r\n")
            elif line == b"PONG":
                if self._pongs:
                    pong = self._pongs.pop(0)
                    if not pong.done():
                        pong.set_result(None)
            elif line.startswith(b"INFO"):
                if not self._info.done():
                    self._info.set_result(None)
            elif line.startswith(b"-ERR"):
                self.errors.append(line.decode(errors="replace"))
            # +OK (verbose is off) and anything else: nothing to do
        del buf[:pos]
