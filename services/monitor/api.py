"""The monitor's REST routes, its live event stream and the dashboard's static files.

GET    /                                  the dashboard (static HTML + JS, no build step)
GET    /api/overview                      everything the dashboard shows, now
GET    /api/services                      every service instance: state, health, availability, stats
DELETE /api/services/{service}/{instance} forget an instance (clears its alerts)
GET    /api/feeds                         every feed: state, health, availability, active source
GET    /api/alerts?limit=200              active alerts and the history of transitions (newest first)
GET    /api/latency                       p50/p95/p99/max per stage and venue (window and since start)
GET    /api/accounts, /api/portfolios     risk P&L per account, optimizer targets per portfolio
GET    /api/series                        names of the time series kept (last hour)
GET    /api/series/{name}?seconds=300     one series, (wall-clock ms, value) points
GET    /api/stream                        server-sent events: `snapshot` every second, `alert` at once
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from nexus.runtime import MsgspecResponse

if TYPE_CHECKING:
    from monitor.service import Monitor

STATIC = Path(__file__).resolve().parent / "static"


def install(app: FastAPI, monitor: Monitor) -> None:
    model = monitor.model
    clock = monitor.clock

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/overview", tags=["monitor"], response_class=MsgspecResponse)
    async def overview() -> MsgspecResponse:
        """Everything the dashboard shows, now (the body of each `snapshot` event)."""
        return MsgspecResponse(model.overview(clock()))

    @app.get("/api/services", tags=["monitor"], response_class=MsgspecResponse)
    async def services() -> MsgspecResponse:
        """Every service instance seen: state, up/down/stopped, health, availability, rates, queues, stats."""
        return MsgspecResponse(model.service_views(clock()))

    @app.delete("/api/services/{service}/{instance}", tags=["monitor"], response_class=MsgspecResponse)
    async def forget(service: str, instance: str) -> MsgspecResponse:
        """Forget a service instance that is gone for good (clears its alerts)."""
        if not model.forget_service(f"{service}.{instance}"):
            raise HTTPException(status_code=404, detail=f"no instance {service}.{instance}")
        await monitor.publish_alerts()
        return MsgspecResponse({"forgotten": f"{service}.{instance}"})

    @app.get("/api/feeds", tags=["monitor"], response_class=MsgspecResponse)
    async def feeds() -> MsgspecResponse:
        """Every feed seen: state, health, availability, active source of a failover group, counters."""
        return MsgspecResponse(model.feed_views(clock()))

    @app.get("/api/alerts", tags=["monitor"], response_class=MsgspecResponse)
    async def alerts(limit: int = Query(200, ge=0, le=100_000)) -> MsgspecResponse:
        """Active alerts (critical first) and the last `limit` raised/cleared transitions, newest first."""
        return MsgspecResponse(model.alert_views(limit))

    @app.get("/api/latency", tags=["monitor"], response_class=MsgspecResponse)
    async def latency() -> MsgspecResponse:
        """Latency percentiles (ms) per stage and scope: rolling window and since start, with targets."""
        return MsgspecResponse(model.latency_views(clock()))

    @app.get("/api/accounts", tags=["monitor"], response_class=MsgspecResponse)
    async def accounts() -> MsgspecResponse:
        """Risk state, P&L and exposure per account (from risk.state.*)."""
        return MsgspecResponse(model.account_views(clock()))

    @app.get("/api/portfolios", tags=["monitor"], response_class=MsgspecResponse)
    async def portfolios() -> MsgspecResponse:
        """The latest optimizer target per portfolio (from pf.target.*)."""
        return MsgspecResponse(model.portfolio_views(clock()))

    @app.get("/api/series", tags=["monitor"], response_class=MsgspecResponse)
    async def series_index() -> MsgspecResponse:
        """Names of the time series kept in memory, with their window and step."""
        return MsgspecResponse(
            {
                "names": model.series.names(),
                "window_seconds": model.series.window,
                "step_seconds": model.series.step,
            }
        )

    @app.get("/api/series/{name}", tags=["monitor"], response_class=MsgspecResponse)
    async def series(name: str, seconds: float = Query(300.0, gt=0)) -> MsgspecResponse:
        """One time series over the last `seconds` (at most the window): (wall-clock ms, value) points."""
        if name not in model.series:
            raise HTTPException(status_code=404, detail=f"no series {name!r}")
        now = clock()
        return MsgspecResponse(model.series_view(name, now, since=now - seconds))

    @app.get("/api/stream", tags=["monitor"])
    async def stream() -> StreamingResponse:
        """Server-sent events: `snapshot` (an overview) every second and `alert` on every transition."""
        return StreamingResponse(
            monitor.stream.events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
