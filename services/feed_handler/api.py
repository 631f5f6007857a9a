"""REST control plane of the feed handler (FastAPI; documented at /docs).

    GET    /feeds                     every feed and group: state, health, counters, config
    GET    /feeds/{name}              one of them
    POST   /feeds                     add a feed (JSON body: a feed definition, `kind` selects the adapter)
    POST   /groups                    add a failover group over existing (stopped) feeds
    POST   /feeds/{name}/start        start a feed or group          409 if already running
    POST   /feeds/{name}/stop         stop it                        409 if not running
    POST   /groups/{name}/switch?to=  make a member active now (manual failover)
    DELETE /feeds/{name}              stop and remove a feed or group (409 for a group member)
Errors: 404 unknown name, 409 conflicting state, 422 invalid definition (with the reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import APIRouter, FastAPI, HTTPException, Request

from feed_handler.config import FeedConfig, GroupConfig
from feed_handler.errors import ConfigError, FeedConflict, FeedError, FeedNotFound
from nexus.messages import DECODE_ERRORS
from nexus.runtime import MsgspecResponse, body_openapi, read_body

if TYPE_CHECKING:
    from feed_handler.manager import FeedManager


def _http_error(exc: FeedError) -> HTTPException:
    if isinstance(exc, FeedNotFound):
        return HTTPException(status_code=404, detail=str(exc))
    if isinstance(exc, FeedConflict):
        return HTTPException(status_code=409, detail=str(exc))
    if isinstance(exc, ConfigError):
        return HTTPException(status_code=422, detail=f"invalid definition: {exc}")
    return HTTPException(status_code=400, detail=str(exc))


async def _read_feed(request: Request) -> Any:
    """The body as a FeedConfig (a union, which nexus.runtime.read_body cannot name): 400 for malformed
    JSON, 422 with msgspec's reason for a definition of the wrong shape."""
    data = await request.body()
    if not data:
        raise HTTPException(status_code=422, detail="a JSON body (a feed definition) is required")
    try:
        return msgspec.json.decode(data, type=FeedConfig)
    except msgspec.ValidationError as exc:
        raise HTTPException(status_code=422, detail=f"invalid feed definition: {exc}") from None
    except DECODE_ERRORS as exc:  # not JSON, or nested deeper than msgspec follows
        raise HTTPException(status_code=400, detail=f"malformed JSON: {exc}") from None


def routes(app: FastAPI, manager: FeedManager) -> None:
    router = APIRouter(tags=["feeds"])

    @router.get("/feeds", response_class=MsgspecResponse)
    async def list_feeds() -> MsgspecResponse:
        """Every feed and failover group with its state, health, counters and definition."""
        names = [*manager.feeds, *manager.groups]
        return MsgspecResponse({"feeds": [manager.view(n) for n in names]})

    @router.get("/feeds/{name}", response_class=MsgspecResponse)
    async def get_feed(name: str) -> MsgspecResponse:
        """One feed or group."""
        try:
            return MsgspecResponse(manager.view(name))
        except FeedError as exc:
            raise _http_error(exc) from None

    @router.post(
        "/feeds",
        status_code=201,
        response_class=MsgspecResponse,
        openapi_extra=body_openapi(app, FeedConfig),
    )
    async def add_feed(request: Request, start: bool | None = None) -> MsgspecResponse:
        """Add a feed; `kind` is synthetic, replay, binance or coinbase. It starts when `start` (query) or
        its `autostart` says so."""
        config = await _read_feed(request)
        try:
            manager.add_feed(config, start)
        except FeedError as exc:
            raise _http_error(exc) from None
        return MsgspecResponse(manager.view(config.name), status_code=201)

    @router.post(
        "/groups",
        status_code=201,
        response_class=MsgspecResponse,
        openapi_extra=body_openapi(app, GroupConfig),
    )
    async def add_group(request: Request, start: bool | None = None) -> MsgspecResponse:
        """Add a failover group over existing feeds that are not running (primary first)."""
        config = await read_body(request, GroupConfig)
        try:
            manager.add_group(config, start)
        except FeedError as exc:
            raise _http_error(exc) from None
        return MsgspecResponse(manager.view(config.name), status_code=201)

    @router.post("/feeds/{name}/start", response_class=MsgspecResponse)
    async def start_feed(name: str) -> MsgspecResponse:
        """Start a stopped feed or group."""
        try:
            manager.start(name)
            return MsgspecResponse(manager.view(name))
        except FeedError as exc:
            raise _http_error(exc) from None

    @router.post("/feeds/{name}/stop", response_class=MsgspecResponse)
    async def stop_feed(name: str) -> MsgspecResponse:
        """Stop a running feed or group (it can be started again)."""
        try:
            await manager.stop(name)
            return MsgspecResponse(manager.view(name))
        except FeedError as exc:
            raise _http_error(exc) from None

    @router.post("/groups/{name}/switch", response_class=MsgspecResponse)
    async def switch(name: str, to: str) -> MsgspecResponse:
        """Make member `to` the active member of group `name` now."""
        try:
            await manager.switch(name, to)
            return MsgspecResponse(manager.view(name))
        except FeedError as exc:
            raise _http_error(exc) from None

    @router.delete("/feeds/{name}", response_class=MsgspecResponse)
    async def remove_feed(name: str) -> MsgspecResponse:
        """Stop and remove a feed or group (a group's members stay, as stopped feeds)."""
        try:
            await manager.remove(name)
        except FeedError as exc:
            raise _http_error(exc) from None
        return MsgspecResponse({"removed": name})

    app.include_router(router)
