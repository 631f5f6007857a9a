"""Risk in front of the real engine over a real nats-server: what a trading client sees."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nexus.bus import Bus
from nexus.messages import ExecType, Reason, Side
from tests.risk.conftest import RunningRisk, client

pytestmark = pytest.mark.integration


async def test_an_accepted_order_rests_and_is_filled_against_another_account(
    risk: RunningRisk, client_bus: Bus
) -> None:
    alice, bob = await client(client_bus, "alice"), await client(client_bus, "bob")
    sell = await alice.new_order("SPY", Side.SELL, "10", price="500.00")
    assert sell.exec_type is ExecType.ACCEPTED
    buy = await bob.new_order("SPY", Side.BUY, "4", price="500.00")
    assert buy.exec_type is ExecType.ACCEPTED
    await alice.close()
    await bob.close()
