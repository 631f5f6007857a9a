"""Errors of the feed handler.

FeedError                     base of everything the feed handler raises on purpose
 ├── ConfigError              a feed or group definition is invalid (REST 422, TOML at start)
 ├── FeedNotFound             no feed or group of that name (REST 404)
 ├── FeedConflict             already exists / already running / not running / in a group (REST 409)
 ├── BadInput                 one venue message could not be used (counted, logged, skipped)
 │    └── CrossedBook         a book update left best bid >= best ask (the book is resynced)
 └── SessionEnded             a connection's session is over (connection lost, feed declared dead)
"""

from __future__ import annotations

from nexus.errors import NexusError, clip


class FeedError(NexusError):
    """Base of every error raised on purpose by the feed handler."""


class ConfigError(FeedError, ValueError):
    """A feed or group definition is invalid; `name` says which, `reason` what is wrong."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{clip(name)}: {reason}" if name else reason)


class FeedNotFound(FeedError, LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no feed or group named {name!r}")


class FeedConflict(FeedError):
    """The request conflicts with the feed's current state (exists, running, stopped, grouped)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


class BadInput(FeedError):
    """A venue message that cannot be used. `reason` is a short code counted per feed
    (invalid_json, unknown_type, missing_field, invalid_field, negative_size, crossed_book, ...)."""

    def __init__(self, reason: str, detail: str = "", symbol: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.symbol = symbol
        super().__init__(f"{reason}: {detail}" if detail else reason)


class CrossedBook(BadInput):
    def __init__(self, symbol: str, bid: object, ask: object) -> None:
        super().__init__("crossed_book", f"{symbol}: best bid {bid} >= best ask {ask}", symbol)


class SessionEnded(FeedError):
    """A session ended: the connection closed, or the idle watchdog declared the feed dead."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
