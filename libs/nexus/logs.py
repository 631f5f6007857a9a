"""structlog set-up shared by every process: one log shape everywhere.

`merge_contextvars` first, ISO UTC timestamps, JSON lines when stderr is not a terminal, colourful console
lines when it is. stdlib logging (uvicorn, nats-py) is routed through the same processors. Event names
are dotted (`order.rejected`, `feed.failover`) with fields, not sentences.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import msgspec
import structlog

_json = msgspec.json.Encoder(enc_hook=repr)
"""A value JSON cannot hold (a type, an exception, a socket) is logged as its repr: a log line never fails."""


def _serialize(obj: Any, **_: Any) -> str:
    # JSONRenderer passes `default=`; msgspec's encoder has its own, so wrap it (see STYLE.md).
    return _json.encode(obj).decode()


def _drop_color_message(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # uvicorn adds an ANSI-coloured copy of its message as an extra; the event already says it.
    event.pop("color_message", None)
    return event


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    **context: Any,
) -> None:
    """Configure structlog and stdlib logging for this process; bind `context` (service, instance)."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer(serializer=_serialize)
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if not use_console else structlog.dev.set_exc_info,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *shared,
            structlog.stdlib.ExtraAdder(),
            _drop_color_message,
            # stdlib records with exc_info (uvicorn's "Exception in ASGI application") get a traceback
            *([] if use_console else [structlog.processors.format_exc_info]),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.captureWarnings(True)  # a library's warning (numpy's overflow) is a log line too
    root.setLevel(numeric)
    # uvicorn's access log is a per-request line on a hot path: keep it off unless debugging.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING if numeric > logging.DEBUG else numeric)
    structlog.contextvars.clear_contextvars()
    if context:
        structlog.contextvars.bind_contextvars(**context)


def get_logger(name: str | None = None, **initial: Any) -> Any:
    return structlog.get_logger(name, **initial)
