"""Demo traffic as a service on the shared runtime (so it heartbeats like everything else).

One market maker (account `demo-mm`) keeps a ladder of quotes around the synthetic feed's mid
(md.p1.quote.<feed venue>.<symbol>; the instrument's reference price until the feed quotes), moving them
with replaces as the mid moves and re-placing what was filled. Three takers (`demo-taker-1..3`) send
random orders — mostly marketable IOC limits, some market orders, some passive limits they cancel a few
seconds later — at NEXUS_DEMO_RATE orders a second in total. All of it through the public order client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from typing import Annotated

import msgspec

from nexus import subjects
from nexus.bus import Bus
from nexus.client import OrderClient, SubmitTimeout
from nexus.errors import NexusError
from nexus.instruments import Instrument, load_instruments
from nexus.messages import ExecReport, ExecType, Quote, Side, TimeInForce
from nexus.runtime import Service
from nexus.settings import PositiveFloat, Settings
from order_engine.demo.strategy import TakerOrder, ladder, mid_ticks, taker_order


class DemoSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the demo traffic (NEXUS_* variables)."""

    instruments_file: str = ""
    demo_rate: PositiveFloat = 20.0
    """Taker orders per second, all symbols together."""
    demo_levels: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    """Maker quote levels a side."""
    demo_refresh: PositiveFloat = 2.0
    """Seconds between two re-quotes of the same symbol."""
    demo_feed_venue: str = "sim"
    """Venue whose quotes give the mid (the synthetic feed)."""
    demo_symbols: list[str] = msgspec.field(default_factory=list)
    """Symbols to trade (comma-separated); every tradable instrument when empty."""
    demo_passive_ttl: PositiveFloat = 5.0
    """Seconds a taker's passive order rests before the taker cancels it."""
    demo_seed: int = 0
    """Random seed (0 = a different run each time)."""


MAKER = "demo-mm"
TAKERS = ("demo-taker-1", "demo-taker-2", "demo-taker-3")


class DemoTraffic(Service[DemoSettings]):
    """Demo market maker and takers for `make run`."""

    name = "demo-traffic"
    settings_cls = DemoSettings

    def __init__(self, settings: DemoSettings, bus: Bus) -> None:
        super().__init__(settings, bus)
        s = settings
        instruments = load_instruments(s.instruments_file or None)
        wanted = s.demo_symbols or [sym for sym, inst in instruments.items() if inst.tradable]
        self.instruments: dict[str, Instrument] = {
            sym: instruments[sym] for sym in wanted if sym in instruments
        }
        self.mids = {sym: mid_ticks(inst, None, None) for sym, inst in self.instruments.items()}
        self.rng = random.Random(s.demo_seed or None)
        self.quotes: dict[tuple[str, Side, int], tuple[str, int]] = {}
        """(symbol, side, level) -> (client order id, price in ticks) of the maker's live quotes."""
        self.quote_keys: dict[str, tuple[str, Side, int]] = {}
        self.passive: list[tuple[float, str, str, str]] = []
        """(cancel at, taker account, symbol, client order id) of resting taker orders."""
        self.counts = dict.fromkeys(
            ("orders", "rejects", "fills", "timeouts", "errors", "feed_quotes", "requotes"), 0
        )
        self._last_error = 0.0

    async def start(self) -> None:
        self.maker = OrderClient(self.bus, MAKER, on_report=self._on_maker_report, timeout=3.0)
        self.takers = [
            OrderClient(self.bus, name, on_report=self._on_taker_report, timeout=3.0) for name in TAKERS
        ]
        for client in (self.maker, *self.takers):
            await client.start()
        await self.bus.subscribe(
            subjects.quote(self.settings.demo_feed_venue, subjects.ANY), Quote, self._on_quote
        )
        self.spawn(self._maker_loop(), name="demo-maker")
        self.spawn(self._taker_loop(), name="demo-takers")
        self.log.info("demo.started", symbols=sorted(self.instruments), rate=self.settings.demo_rate)

    async def _on_quote(self, q: Quote) -> None:
        inst = self.instruments.get(q.symbol)
        if inst is not None:
            self.counts["feed_quotes"] += 1
            self.mids[q.symbol] = mid_ticks(inst, q.bid_px, q.ask_px)

    # -- the maker ----------------------------------------------------------------------------------

    async def _maker_loop(self) -> None:
        symbols = sorted(self.instruments)
        pause = self.settings.demo_refresh / max(1, len(symbols))
        while True:
            for symbol in symbols:
                await self._guard(self._requote(symbol))
                await asyncio.sleep(pause)

    async def _requote(self, symbol: str) -> None:
        inst = self.instruments[symbol]
        for q in ladder(inst, self.mids[symbol], self.settings.demo_levels):
            key = (symbol, q.side, q.level)
            current = self.quotes.get(key)
            size = inst.min_qty * 10 if inst.min_qty > 0 else inst.lot * 10
            if current is None:
                report = await self.maker.new_order(symbol, q.side, size, inst.price(q.price))
                self._count(report)
                if report.exec_type is ExecType.ACCEPTED and report.leaves_qty:
                    self.quotes[key] = (report.client_order_id, q.price)
                    self.quote_keys[report.client_order_id] = key
            elif current[1] != q.price:
                report = await self.maker.replace(symbol, current[0], price=inst.price(q.price))
                self._count(report)
                self.counts["requotes"] += 1
                if report.exec_type is ExecType.REPLACED:
                    self.quotes[key] = (current[0], q.price)
                else:
                    self._forget(current[0])

    def _forget(self, coid: str) -> None:
        key = self.quote_keys.pop(coid, None)
        if key is not None and self.quotes.get(key, ("",))[0] == coid:
            del self.quotes[key]

    async def _on_maker_report(self, report: ExecReport) -> None:
        if report.exec_type is ExecType.FILLED or report.exec_type is ExecType.PARTIALLY_FILLED:
            self.counts["fills"] += 1
        if report.exec_type is ExecType.FILLED or (
            report.exec_type is ExecType.CANCELLED and not report.orig_client_order_id
        ):
            self._forget(report.client_order_id)

    # -- the takers ---------------------------------------------------------------------------------

    async def _taker_loop(self) -> None:
        symbols = sorted(self.instruments)
        while True:
            await asyncio.sleep(self.rng.expovariate(self.settings.demo_rate))
            await self._guard(self._cancel_expired())
            symbol = self.rng.choice(symbols)
            inst = self.instruments[symbol]
            client = self.rng.choice(self.takers)
            await self._guard(self._take(client, symbol, taker_order(self.rng, inst, self.mids[symbol])))

    async def _take(self, client: OrderClient, symbol: str, order: TakerOrder) -> None:
        report = await client.new_order(
            symbol, order.side, order.qty, order.price, order_type=order.order_type, tif=order.tif
        )
        self._count(report)
        if order.tif is TimeInForce.GTC and report.exec_type is ExecType.ACCEPTED:
            ttl = self.settings.demo_passive_ttl
            self.passive.append((time.monotonic() + ttl, client.account, symbol, report.client_order_id))

    async def _cancel_expired(self) -> None:
        now = time.monotonic()
        due = [p for p in self.passive if p[0] <= now]
        self.passive = [p for p in self.passive if p[0] > now]
        clients = {c.account: c for c in self.takers}
        for _, account, symbol, coid in due:
            self._count(await clients[account].cancel(symbol, coid))

    async def _on_taker_report(self, report: ExecReport) -> None:
        if report.exec_type is ExecType.FILLED or report.exec_type is ExecType.PARTIALLY_FILLED:
            self.counts["fills"] += 1

    # -- bookkeeping --------------------------------------------------------------------------------

    def _count(self, report: ExecReport) -> None:
        self.counts["orders"] += 1
        if report.exec_type is ExecType.REJECTED:
            self.counts["rejects"] += 1

    async def _guard(self, step: Awaitable[None]) -> None:
        """Run one step; a timeout or an error is counted and logged (at most every 10 s), never fatal."""
        try:
            await step
        except SubmitTimeout:
            self.counts["timeouts"] += 1
        except (NexusError, OSError) as exc:
            self.counts["errors"] += 1
            if time.monotonic() - self._last_error > 10:
                self._last_error = time.monotonic()
                self.log.warning("demo.step_failed", error=repr(exc))
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Python 3.11's wait_for (used inside nats-py) can swallow a cancellation that races a
            # result; a stop must still stop the loop.
            raise asyncio.CancelledError

    def stats(self) -> dict[str, float]:
        out = {f"demo_{name}_total": float(n) for name, n in self.counts.items()}
        out["demo_live_quotes"] = float(len(self.quotes))
        out["demo_resting_taker_orders"] = float(len(self.passive))
        return out
