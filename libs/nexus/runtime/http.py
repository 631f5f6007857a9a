"""The REST control plane every service has: /healthz, /readyz, /metrics, /stats, plus its own routes.

msgspec Structs are the request and response bodies: `read_body(request, Kind)` decodes with a 422 that
says what is wrong, `MsgspecResponse` encodes, `body_openapi(app, Kind)` documents the body in /docs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import nexus
from nexus.errors import SubjectError
from nexus.messages import DECODE_ERRORS

if TYPE_CHECKING:
    from nexus.runtime.runner import Runner

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


class MsgspecResponse(Response):
    """A JSON response rendered by msgspec (Structs, Decimals, enums)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


async def read_body(request: Request, kind: type[T]) -> T:
    """Decode the request body as `kind`, or answer 422 with msgspec's reason (field path included)."""
    data = await request.body()
    if not data:
        raise HTTPException(status_code=422, detail=f"a JSON body ({kind.__name__}) is required")
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise HTTPException(status_code=422, detail=f"invalid {kind.__name__}: {exc}") from None
    except DECODE_ERRORS as exc:  # not JSON, or nested deeper than msgspec follows
        raise HTTPException(status_code=400, detail=f"malformed JSON: {exc}") from None


def body_openapi(app: FastAPI, kind: Any) -> dict[str, Any]:
    """`openapi_extra` for a route whose body is `kind`; registers its schema components on `app`."""
    name = getattr(kind, "__name__", "Body")
    (schema,), components = msgspec.json.schema_components([kind], ref_template="#/components/schemas/{name}")
    extra_components: dict[str, Any] = app.state.__dict__.setdefault("msgspec_components", {})
    extra_components.update(components)
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
            "description": name,
        }
    }


def _install_openapi_components(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = original()
            extra = app.state.__dict__.get("msgspec_components", {})
            spec.setdefault("components", {}).setdefault("schemas", {}).update(extra)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_app(runner: Runner) -> FastAPI:
    """The FastAPI app of one service: common routes first, then the service's own."""
    service = runner.service
    app = FastAPI(
        title=f"Nexus {service.name}",
        version=nexus.__version__,
        description=(service.__doc__ or "").strip(),
    )
    _install_openapi_components(app)

    @app.exception_handler(SubjectError)
    async def bad_token(request: Request, exc: SubjectError) -> JSONResponse:
        """A name from the request (an account, a symbol) that cannot be a subject token: the client's
        mistake, so a 422 with the reason, wherever a route meets it."""
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process runs and its event loop answers."""
        return {
            "status": "ok",
            "service": service.name,
            "instance": runner.settings.instance,
            "state": runner.state,
        }

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Readiness: NATS connected and the service's own conditions hold (503 with the reason if not)."""
        ok, reason = runner.readiness()
        return JSONResponse({"ready": ok, "reason": reason}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus text exposition of the service's stats and metrics."""
        return Response(generate_latest(runner.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/stats", tags=["health"], response_class=MsgspecResponse)
    async def stats() -> MsgspecResponse:
        """The heartbeat this service would send now (stats and details)."""
        return MsgspecResponse(runner.heartbeat())

    service.add_routes(app)
    return app
