"""The log set-up: every record, stdlib ones with a traceback included, is one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import logging
    from nexus.logs import configure_logging, get_logger

    configure_logging(fmt="json", service="t")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    get_logger("x").warning("odd.value", kind=type, error=ValueError("v"))
    import warnings
    warnings.warn("overflow encountered", RuntimeWarning)
    """
)


def test_a_stdlib_error_with_its_traceback_and_odd_values_are_json_lines() -> None:
    """uvicorn logs a failed request through stdlib logging with exc_info; the record (and a value JSON
    cannot hold, and a warning numpy raises) must become a JSON line, not a "--- Logging error ---" or
    raw text on stderr."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Logging error" not in done.stderr
    first, second, third = (json.loads(line) for line in done.stderr.splitlines())
    assert first["event"] == "Exception in ASGI application"
    assert first["level"] == "error"
    assert "ValueError: boom" in first["exception"]
    assert (second["event"], second["kind"], second["error"]) == (
        "odd.value",
        "<class 'type'>",
        "ValueError('v')",
    )
    assert "RuntimeWarning: overflow encountered" in third["event"]
    assert third["level"] == "warning"
