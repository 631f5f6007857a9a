"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): it loads, shows
the running system, and its values change live over server-sent events. The screenshot is saved as
tests/artifacts/monitor-dashboard.png.

`make test` installs Chromium first (deploy/ensure-chromium.sh); without it this test fails, it does not skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from nexus import messages as m
from nexus.bus import Bus
from nexus.natsserver import NatsServer
from nexus.testing import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    # Playwright adds --headless and a fresh --user-data-dir (the temporary profile below).
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


async def _traffic(bus: Bus, venue: str) -> None:
    """Market data with real timestamps and a few orders, until cancelled."""
    for i in itertools.count():
        now = m.now_ns()
        await bus.publish(
            m.Trade(
                venue=venue,
                symbol="BTC-USDT",
                venue_symbol="BTCUSDT",
                trade_id=str(i),
                price=Decimal("43000.5"),
                size=Decimal("0.01"),
                ts_event=now - 900_000,
                ts_recv=now - 600_000,
                ts_pub=now - 100_000,
            )
        )
        if i % 10 == 0:
            t = m.now_ns()
            common = {"account": "desk-1", "client_order_id": f"o{i}", "symbol": "BTC-USDT", "venue": "nexus"}
            await bus.publish(
                m.ExecReport(exec_type=m.ExecType.ACCEPTED, ts_cmd=t - 800_000, ts_event=t, **common)
            )
        await asyncio.sleep(0.02)


async def _text(page: Page, selector: str) -> str:
    return (await page.text_content(selector, timeout=15_000) or "").strip()


async def test_dashboard_loads_in_headless_chromium_and_its_values_change_live(
    fresh_nats: NatsServer, tmp_path: Path
) -> None:
    found = await asyncio.to_thread(CHROMIUM.exists)
    assert found, f"{CHROMIUM} is missing: `make test` installs it (deploy/ensure-chromium.sh)"
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    url = fresh_nats.url
    bus = Bus([url], name="dashboard-test")
    await bus.connect(give_up_after=5)
    monitor = ServiceProcess("monitor", nats_url=url, instance="1", log_path=tmp_path / "monitor.log")
    optimizer = ServiceProcess(
        "optimizer",
        nats_url=url,
        instance="1",
        env={"NEXUS_DATA_DIR": str(tmp_path)},
        log_path=tmp_path / "o.log",
    )
    traffic: asyncio.Task[None] | None = None
    with monitor, optimizer:
        await asyncio.gather(asyncio.to_thread(monitor.wait_ready), asyncio.to_thread(optimizer.wait_ready))
        await bus.publish(
            m.FeedStatus(feed="sim", venue="sim", state="live", health=1.0, active="sim", ts=m.now_ns())
        )
        await bus.publish(
            m.AccountRisk(
                account="desk-1", state=m.TradingState.ACTIVE, realised_pnl=100.0, unrealised_pnl=20.0
            )
        )
        await bus.publish(
            m.PortfolioTarget(
                portfolio="core",
                objective="max_sharpe",
                symbols=("BTC-USDT", "ETH-USDT", "SOL-USDT"),
                weights=(0.5, 0.3, 0.2),
                exp_return=0.12,
                volatility=0.3,
                sharpe=0.4,
            )
        )
        traffic = asyncio.create_task(_traffic(bus, "sim"))
        profile = tmp_path / "chromium-profile"
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch_persistent_context(
                    str(profile),
                    executable_path=str(CHROMIUM),
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport={"width": 1440, "height": 1500},
                )
                try:
                    page = await browser.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    await page.goto(monitor.url + "/")

                    # It shows the running system: both real processes, the feed, latency, P&L, weights.
                    await page.wait_for_selector('tr[data-key="optimizer.1"]', timeout=15_000)
                    await page.wait_for_selector('tr[data-key="monitor.1"]', timeout=15_000)
                    assert await _text(page, "#conn") == "live"
                    assert await _text(page, 'tr[data-feed="sim"] .state') == "live"
                    assert await _text(page, 'tr[data-account="desk-1"] .total-pnl') == "120.00"
                    assert (
                        await _text(page, '[data-portfolio="core"] [data-symbol="ETH-USDT"] .weight')
                        == "30.0%"
                    )
                    await page.wait_for_selector(
                        'tr[data-stage="md.recv_to_consume"][data-scope="all"]', timeout=15_000
                    )
                    await page.wait_for_selector('tr[data-stage="order.submit_to_ack"][data-scope="all"]')
                    await page.wait_for_function(
                        "document.querySelectorAll('#chart-throughput path').length >= 2"
                    )

                    # Values change live, without a reload.
                    seq = await _text(page, "#snapshot-seq")
                    count = await _text(page, 'tr[data-stage="md.recv_to_consume"][data-scope="all"] .count')
                    await page.wait_for_function(
                        f"document.querySelector('#snapshot-seq').textContent !== {seq!r}", timeout=10_000
                    )
                    count_cell = 'tr[data-stage="md.recv_to_consume"][data-scope="all"] .count'
                    await page.wait_for_function(
                        f"document.querySelector({count_cell!r}).textContent !== {count!r}", timeout=10_000
                    )
                    await bus.publish(
                        m.AccountRisk(
                            account="desk-1",
                            state=m.TradingState.ACTIVE,
                            realised_pnl=1200.0,
                            unrealised_pnl=34.5,
                        )
                    )
                    pnl_cell = 'tr[data-account="desk-1"] .total-pnl'
                    await page.wait_for_function(
                        f"document.querySelector({pnl_cell!r}).textContent === '1,234.50'", timeout=10_000
                    )
                    # A service going down shows up as a critical alert and in the history, live.
                    assert await asyncio.to_thread(optimizer.terminate) == 0
                    await page.wait_for_selector(
                        '#alerts-active li[data-name="SERVICE_DOWN"][data-source="service:optimizer.1"]',
                        timeout=10_000,
                    )
                    await page.wait_for_selector(
                        '#alerts-history li[data-name="SERVICE_DOWN"]', timeout=10_000
                    )
                    await page.wait_for_selector('tr[data-key="optimizer.1"].status-stopped', timeout=10_000)
                    await asyncio.sleep(1.0)  # one more snapshot so the charts carry the latest points
                    await page.screenshot(path=str(ARTIFACTS / "monitor-dashboard.png"), full_page=True)
                    assert errors == []
                    # A graceful stop ends the open event stream instead of hanging on it.
                    assert await asyncio.to_thread(monitor.terminate) == 0
                    await page.wait_for_function(
                        "document.querySelector('#conn').textContent === 'reconnecting'"
                    )
                finally:
                    await browser.close()
        finally:
            traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await traffic
            await bus.close()
            shutil.rmtree(profile, ignore_errors=True)
    shot = await asyncio.to_thread((ARTIFACTS / "monitor-dashboard.png").stat)
    assert shot.st_size > 10_000
