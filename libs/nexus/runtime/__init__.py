"""One runtime for every service: `Service` to subclass, `main` to run it, `Runner` for tests."""

from nexus.runtime.http import MsgspecResponse, body_openapi, read_body
from nexus.runtime.runner import Runner, main
from nexus.runtime.service import Service

__all__ = ["MsgspecResponse", "Runner", "Service", "body_openapi", "main", "read_body"]
