"""Snapshot files under the data dir: written atomically, the previous one kept as a fallback.

    <data_dir>/order-engine/<input stream>-<k>of<n>.snap        the latest snapshot
    <data_dir>/order-engine/<input stream>-<k>of<n>.snap.prev   the one before it

A snapshot is written to a temporary file, fsynced, and renamed over the latest (the latest first becomes
`.prev`), so a crash at any point leaves at least one complete snapshot. A file that does not decode is
skipped in favour of the previous one.
"""

from __future__ import annotations

import os
from pathlib import Path

from nexus.messages import DECODE_ERRORS
from order_engine import snapshot
from order_engine.snapshot import Snapshot


class SnapshotStore:
    def __init__(self, data_dir: str | Path, name: str) -> None:
        self.dir = Path(data_dir) / "order-engine"
        self.path = self.dir / f"{name}.snap"
        self.prev = self.dir / f"{name}.snap.prev"

    def save(self, data: bytes) -> None:
        """Write an encoded snapshot durably (blocking: call it from a thread)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if self.path.exists():
            os.replace(self.path, self.prev)
        os.replace(tmp, self.path)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def load(self) -> tuple[Snapshot | None, list[str]]:
        """The newest snapshot that decodes (or None), and what was wrong with the ones skipped."""
        problems: list[str] = []
        for path in (self.path, self.prev):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                return snapshot.decode(data), problems
            except DECODE_ERRORS as exc:
                problems.append(f"{path}: {exc}")
        return None, problems
