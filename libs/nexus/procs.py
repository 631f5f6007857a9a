"""Child-process helpers shared by `nexus up`, the embedded nats-server and the tests."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import sys

_PR_SET_PDEATHSIG = 1


OWN_PROCESS_GROUP = 0
"""`process_group=` for a child of `nexus up` (and the embedded nats-server): a group of its own, so a
terminal's Ctrl-C (SIGINT to the foreground group) reaches only the parent, which stops the services
first and the server last. In the parent's group, the server would exit with everyone at once, under the
services' last acks and their stop."""


def die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM this child when its parent dies (no orphan after a kill -9)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for tests and `nexus up --http-port 0`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return True
