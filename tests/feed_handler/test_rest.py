"""The REST control plane: list, add (JSON body), start, stop, remove feeds and groups, a manual
switch, OpenAPI docs, and a 4xx with the reason for every bad request; nothing crashes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.testing import wait_for
from tests.feed_handler.helpers import Collector, feed_handler, service

pytestmark = pytest.mark.integration


def synthetic(name: str, venue: str, **extra: object) -> dict[str, object]:
    return {"name": name, "kind": "synthetic", "venue": venue, "rate": 100, "symbols": ["BTC-USD"], **extra}


async def test_add_start_stop_remove_feeds_and_groups_with_4xx_reasons(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    quotes = Collector()
    await bus.subscribe(subjects.quote(uid, "*"), m.Quote, quotes)
    await bus.flush()
    async with (
        feed_handler(nats_url, uid, tmp_path, "") as runner,
        httpx.AsyncClient(base_url=runner.http_url) as http,
    ):
        assert (await http.get("/feeds")).json() == {"feeds": []}

        r = await http.post("/feeds", json=synthetic("s1", uid, autostart=False))
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "stopped"
        assert r.json()["config"]["kind"] == "synthetic"
        r = await http.post("/feeds", json=synthetic("s1", uid))
        assert r.status_code == 409
        assert "exists" in r.json()["detail"]

        r = await http.post("/feeds/s1/start")
        assert r.status_code == 200
        assert r.json()["running"] is True
        await wait_for(lambda: len(quotes) > 5, timeout=5)
        r = await http.post("/feeds/s1/start")
        assert r.status_code == 409
        assert "already running" in r.json()["detail"]
        r = await http.get("/feeds/s1")
        assert r.json()["state"] == "live"
        assert r.json()["health"] == 1.0

        r = await http.post("/feeds/s1/stop")
        assert r.status_code == 200
        assert r.json()["state"] == "stopped"
        assert (await http.post("/feeds/s1/stop")).status_code == 409

        # bad requests: every one a 4xx with the reason
        for body, status, needle in [
            ({"name": "x", "kind": "telepathy"}, 422, "telepathy"),
            ({"name": "x", "kind": "synthetic", "rate": "fast"}, 422, "rate"),
            ({"name": "x", "kind": "synthetic", "speed": 2}, 422, "unknown field"),
            ({"name": "bad name", "kind": "synthetic"}, 422, "bad name"),
            ({"name": "r", "kind": "replay", "path": "/no/such/file"}, 422, "is not a file"),
            ({"name": "b", "kind": "binance", "url": "http://127.0.0.1:1", "symbols": ["A"]}, 422, "url"),
        ]:
            r = await http.post("/feeds", json=body)
            assert r.status_code == status, (body, r.text)
            assert needle in r.json()["detail"]
        r = await http.post("/feeds", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert "malformed JSON" in r.json()["detail"]
        for method, path in [
            ("GET", "/feeds/nope"),
            ("POST", "/feeds/nope/start"),
            ("POST", "/feeds/nope/stop"),
            ("DELETE", "/feeds/nope"),
        ]:
            r = await http.request(method, path)
            assert r.status_code == 404
            assert "nope" in r.json()["detail"]

        # a failover group over two stopped feeds
        assert (
            await http.post("/feeds", json=synthetic("s2", uid, autostart=False, seed=1))
        ).status_code == 201
        r = await http.post("/groups", json={"name": "g", "members": ["s1", "s2"], "venue": uid})
        assert r.status_code == 201, r.text
        assert r.json()["active"] == "s1"
        assert r.json()["kind"] == "group"
        r = await http.post("/groups", json={"name": "g2", "members": ["s2", "s1"]})
        assert r.status_code == 422
        assert "already in group 'g'" in r.json()["detail"]
        r = await http.post("/groups", json={"name": "g4", "members": ["nope", "zz"]})
        assert r.status_code == 422
        assert "member 'nope' is not a feed" in r.json()["detail"]
        r = await http.post("/groups", json={"name": "g3", "members": ["s3"]})
        assert r.status_code == 422
        assert "at least two members" in r.json()["detail"]
        # a name that would make subjects longer than nats-server takes (it closes the connection)
        r = await http.post("/feeds", json=synthetic("F" * 5000, uid, autostart=False))
        assert r.status_code == 422
        assert "at most 64 characters" in r.json()["detail"]
        assert len(r.json()["detail"]) < 400
        r = await http.post("/feeds", content=b'{"a":' * 3000)  # nested deeper than msgspec follows
        assert r.status_code == 400
        r = await http.post("/feeds/s1/start")
        assert r.status_code == 409
        assert "member of group" in r.json()["detail"]
        manager = service(runner).manager
        await wait_for(lambda: manager.feeds["s1"].flowing and manager.feeds["s2"].flowing, timeout=5)
        r = await http.post("/groups/g/switch", params={"to": "s2"})
        assert r.status_code == 200
        assert r.json()["active"] == "s2"
        assert r.json()["failovers_total"] == 1
        assert (await http.post("/groups/g/switch", params={"to": "s2"})).status_code == 409
        assert (await http.post("/groups/g/switch", params={"to": "zz"})).status_code == 404
        assert (await http.delete("/feeds/s1")).status_code == 409  # remove the group first
        listed = {f["name"]: f for f in (await http.get("/feeds")).json()["feeds"]}
        assert set(listed) == {"s1", "s2", "g"}
        assert listed["g"]["members"] == ["s1", "s2"]
        assert (await http.delete("/feeds/g")).json() == {"removed": "g"}
        assert manager.feeds["s1"].group == ""
        assert (await http.delete("/feeds/s1")).status_code == 200
        assert (await http.get("/feeds/s1")).status_code == 404

        spec = (await http.get("/openapi.json")).json()
        assert "/feeds/{name}/start" in spec["paths"]
        assert "SyntheticFeed" in spec["components"]["schemas"]
        assert (await http.get("/docs")).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
