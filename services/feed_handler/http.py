"""A small HTTP/1.1 GET over asyncio streams, for REST snapshots (Binance depth): cancellable, bounded
by a timeout, no thread and no extra dependency. Handles Content-Length, chunked and read-to-close bodies."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

from feed_handler.errors import FeedError

MAX_BODY = 64 * 1024 * 1024


class HttpError(FeedError):
    def __init__(self, url: str, reason: str, status: int = 0) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        super().__init__(f"GET {url}: {reason}")


async def http_get(url: str, timeout: float = 5.0) -> bytes:
    """The body of a 200 answer to GET `url`; HttpError otherwise (status, timeout, refused, malformed)."""
    try:
        async with asyncio.timeout(timeout):
            return await _get(url)
    except TimeoutError:
        raise HttpError(url, f"no answer within {timeout}s") from None
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        raise HttpError(url, repr(exc)) from None


async def _get(url: str) -> bytes:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(url, "not an http(s) URL")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    reader, writer = await asyncio.open_connection(
        parts.hostname, port, ssl=ssl.create_default_context() if secure else None
    )
    try:
        host = parts.netloc.rpartition("@")[2]
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
            f"User-Agent: nexus-feed-handler\r\nConnection: close\r\n\r\n".encode("ascii")
        )
        await writer.drain()
        status_line = await reader.readline()
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
            raise HttpError(url, f"malformed status line {status_line[:80]!r}")
        status = int(fields[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunked(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_BODY:
                raise HttpError(url, f"body of {length} bytes is too large")
            body = await reader.readexactly(length)
        else:
            body = await reader.read(MAX_BODY)
        if status != 200:
            raise HttpError(url, f"status {status}: {body[:200]!r}", status)
        return body
    finally:
        writer.close()


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readline()
        if len(out) > MAX_BODY:
            raise ValueError("chunked body too large")
