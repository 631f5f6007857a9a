"""Errors raised by the shared library.

    NexusError                    base of everything raised on purpose by `nexus`
     ├── SettingsError            a NEXUS_* variable or config file value is bad (names the variable)
     ├── SubjectError             a token is not subject-safe
     ├── NatsServerError          the embedded nats-server would not start or stop
     └── BusError                 NATS is not connected / a request failed
          └── RemoteError         the other side answered with an ErrorReply (code + reason)

Services derive their own errors from NexusError and carry data as attributes.
"""

from __future__ import annotations


class NexusError(Exception):
    """Base of every error raised on purpose by Nexus code."""


class SettingsError(NexusError):
    """A setting failed validation; `variable` names where it came from (e.g. NEXUS_HTTP_PORT)."""

    def __init__(self, variable: str, value: object, reason: str) -> None:
        self.variable = variable
        self.value = value
        self.reason = reason
        super().__init__(f"{variable}={value!r}: {reason}")


def clip(value: str, limit: int = 80) -> str:
    """`value` for an error message: a name sent 100 kB long is shown by its start and its length."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


class SubjectError(NexusError, ValueError):
    """A value cannot be used as a NATS subject token."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"{clip(value)!r} is not a valid subject token: {reason}")


class NatsServerError(NexusError):
    """The embedded nats-server failed to start, or did not become ready in time."""


class BusError(NexusError):
    """A bus operation failed (not connected, timed out, no responders)."""


class RemoteError(BusError):
    """A request was answered with an ErrorReply."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")
