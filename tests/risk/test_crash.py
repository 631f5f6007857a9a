"""A kill -9 of the risk process under load loses no order: each command sent gets exactly one answer.

Risk runs as a real process (python -m risk) in front of the real engine, over a real nats-server. A
client streams commands from two accounts that trade with each other; the risk process is killed with
SIGKILL twice mid-stream and started again. Every command must be answered once — by its own report in
the engine's exec stream, exactly one answer per client order id — and the restarted risk service must
see the same positions as the engine's reports say.
"""

from __future__ import annotations

import asyncio
import collections
from decimal import Decimal
from pathlib import Path

import pytest

from nexus import messages as m
from nexus import streams
from nexus.bus import Bus
from nexus.client import ANSWERS, OrderClient
from nexus.messages import ExecType, NewOrder, Side, now_ns
from nexus.natsserver import NatsServer
from nexus.testing import ServiceProcess, wait_for
from tests.order_engine.conftest import RunningEngine
from tests.order_engine.streamtools import read_stream
from tests.risk.conftest import LIMITS, publish_quote

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMMANDS = 3_000
KILL_AT = (800, 1_900)


def _risk(url: str, tmp_path: Path, n: int) -> ServiceProcess:
    return ServiceProcess(
        "risk",
        nats_url=url,
        instance=f"r{n}",
        env={"NEXUS_CONFIG_FILE": str(LIMITS), "NEXUS_DATA_DIR": str(tmp_path / "risk")},
        log_path=tmp_path / f"risk-{n}.log",
    )


async def test_kill_9_of_risk_under_load_each_command_gets_exactly_one_answer(
    fresh_nats: NatsServer, engine: RunningEngine, client_bus: Bus, tmp_path: Path
) -> None:
    async def feed() -> None:  # a live market: a restarted risk process has marks within 50 ms
        while True:
            await publish_quote(client_bus, "SPY", "499.99", "500.01")
            await asyncio.sleep(0.05)

    procs = [_risk(fresh_nats.url, tmp_path, 0).start()]
    quotes = asyncio.create_task(feed())
    try:
        await asyncio.to_thread(procs[0].wait_ready, 30)
        await asyncio.sleep(0.2)  # a quote reaches risk's market-data subscription
        clients = {a: OrderClient(client_bus, a, timeout=60) for a in ("mm", "flood")}
        for c in clients.values():
            await c.start()
        sent: list[NewOrder] = []
        tasks = []
        for i in range(COMMANDS):
            account = "mm" if i % 2 else "flood"
            cmd = NewOrder(
                account=account,
                client_order_id=f"x{i}",
                symbol="SPY",
                side=Side.SELL if account == "mm" else Side.BUY,
                qty=Decimal(1 + i % 3),
                price=Decimal("500.00") if i % 5 else Decimal("499.00"),  # some rest, most trade
                ts=now_ns(),
            )
            sent.append(cmd)
            tasks.append(asyncio.ensure_future(clients[account].submit(cmd)))
            if i in KILL_AT:
                await wait_for(lambda: sum(t.done() for t in tasks) > 100, timeout=30)
                procs[-1].kill()  # SIGKILL: batches decided, forwarded or not, acks not sent
                procs.append(_risk(fresh_nats.url, tmp_path, len(procs)).start())
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        answers = await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        assert [a.client_order_id for a in answers] == [c.client_order_id for c in sent]
        assert {a.exec_type for a in answers} <= {ExecType.ACCEPTED, ExecType.REJECTED}

        # exactly one answer per command in what the engine stored (and so published)
        execs = [m.decode(m.ExecReport, d) for _, _, d in await read_stream(client_bus.js, "ENGINE_EXEC_0")]
        answer_types = ANSWERS[NewOrder]
        per_command = collections.Counter(
            r.client_order_id for r in execs if r.exec_type in answer_types and not r.orig_client_order_id
        )
        assert per_command == collections.Counter(c.client_order_id for c in sent)
        # one decision per command in the approved stream, whatever risk decided twice
        approved = await read_stream(client_bus.js, streams.ORDER_APPROVED)
        assert sorted(msg_id for _, msg_id, _ in approved) == sorted(
            streams.command_id(c.account, c.client_order_id) for c in sent
        )
        rejected = [a for a in answers if a.exec_type is ExecType.REJECTED]
        assert rejected, "position limits were reached (so decisions mattered)"
        assert {a.reason for a in rejected} <= {"MAX_POSITION", "MAX_OPEN_ORDERS", "BUYING_POWER"}

        # the last risk process rebuilt positions from the engine's reports
        position: dict[str, Decimal] = collections.defaultdict(Decimal)
        for r in execs:
            if r.last_qty:
                position[r.account] += r.last_qty if r.side is Side.BUY else -r.last_qty

        async def risk_agrees() -> bool:
            status, body = await asyncio.to_thread(procs[-1].get, "/accounts/flood")
            return status == 200 and Decimal(body["positions"][0]["qty"]) == position["flood"]

        await wait_for(risk_agrees, timeout=10)
        _, stats = await asyncio.to_thread(procs[-1].get, "/stats")
        forwarded = stats["stats"]["intake_p1_forwarded_total"]
        assert 0 < forwarded < COMMANDS  # the last process took over mid-stream
        assert position["flood"] > 0
        for c in clients.values():
            await c.close()
    finally:
        quotes.cancel()
        for proc in procs:
            proc.kill()
