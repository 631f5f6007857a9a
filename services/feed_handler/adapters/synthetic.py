"""The synthetic venue (`sim`, the default feed of `make run`): a SyntheticMarket over the shared
instruments, published as Trade, Quote and BookDelta (a BookSnapshot per symbol at every start).

`rate` market events per second over all symbols; each event gives a Quote and a BookDelta, a trade event
also a Trade (trade ids 1, 2, ... per symbol; seq = the symbol's book update id). rate = 0 runs as fast as
the publisher takes it (for benchmarks).
"""

from __future__ import annotations

import asyncio

from feed_handler.adapters.base import Adapter, AdapterFailed, FeedContext
from feed_handler.adapters.pacing import BATCH, Pacer
from feed_handler.config import SyntheticFeed
from feed_handler.market import Event, SyntheticMarket
from feed_handler.normalised import BookDelta, BookSnapshot, Quote, Trade
from nexus.errors import SettingsError
from nexus.instruments import Instrument, load_instruments
from nexus.messages import now_ns

CACHE_MAX = 4096


class _Decimals:
    """Ticks and lots of one instrument as decimal strings, memoised: the ladder keeps revisiting the
    same prices and the sizes come from a fixed table, so most conversions are a dict lookup."""

    __slots__ = ("inst", "lots", "ticks")

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.ticks: dict[int, str] = {}
        self.lots: dict[int, str] = {}

    def price(self, ticks: int) -> str:
        d = self.ticks.get(ticks)
        if d is None:
            if len(self.ticks) >= CACHE_MAX:
                self.ticks.clear()
            d = self.ticks[ticks] = str(self.inst.price(ticks))
        return d

    def qty(self, lots: int) -> str:
        d = self.lots.get(lots)
        if d is None:
            if len(self.lots) >= CACHE_MAX:
                self.lots.clear()
            d = self.lots[lots] = str(self.inst.qty(lots))
        return d


class SyntheticAdapter(Adapter[SyntheticFeed]):
    def __init__(self, config: SyntheticFeed, ctx: FeedContext) -> None:
        super().__init__(config, ctx)
        self.market: SyntheticMarket | None = None
        self.events_total = 0
        self._decimals: dict[str, _Decimals] = {}

    def _make_market(self) -> SyntheticMarket:
        cfg = self.config
        try:
            instruments = load_instruments(cfg.instruments_file or None)
        except SettingsError as exc:
            raise AdapterFailed(f"instruments: {exc}") from None
        chosen: list[Instrument] = list(instruments.values())
        if cfg.symbols:
            unknown = [s for s in cfg.symbols if s not in instruments]
            if unknown:
                raise AdapterFailed(f"unknown instruments {unknown}; known: {sorted(instruments)}")
            chosen = [instruments[s] for s in cfg.symbols]
        return SyntheticMarket(
            chosen,
            rate=cfg.rate,
            seed=cfg.seed,
            trade_ratio=cfg.trade_ratio,
            book_levels=cfg.book_levels,
            spread_ticks=cfg.spread_ticks,
            vol_scale=cfg.vol_scale,
        )

    async def run(self) -> None:
        if self.market is None:
            self.market = self._make_market()  # prices carry on across restarts
            self._decimals = {sym: _Decimals(self.market.instrument(sym)) for sym in self.market.by_name}
        market = self.market
        ctx = self.ctx
        ctx.live("synthetic")
        now = now_ns()
        for sym in market.by_name:
            inst = self._decimals[sym]
            bids, asks, uid = market.ladder(sym)
            if self.config.book_levels:
                ctx.emit(
                    BookSnapshot(
                        venue=ctx.venue,
                        symbol=sym,
                        venue_symbol=sym,
                        seq=uid,
                        ts_event=now,
                        ts_recv=now,
                        bids=tuple((inst.price(p), inst.qty(q)) for p, q in bids),
                        asks=tuple((inst.price(p), inst.qty(q)) for p, q in asks),
                    )
                )
            self._quote(sym, uid, now)
        rate = self.config.rate
        pacer = Pacer(ctx, 1.0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        done = 0
        while True:
            if rate > 0:
                due = int((loop.time() - t0) * rate) - done
                if due <= 0:
                    await asyncio.sleep(max(0.001, (done + 1) / rate - (loop.time() - t0)))
                    continue
                due = min(due, BATCH)
            else:
                due = BATCH
            for _ in range(due):
                self._event(market.next())
            done += due
            self.events_total += due
            if rate <= 0 or due == BATCH or ctx.congested:
                await pacer.breathe()  # yield (and wait for room when the publisher is behind)

    def _event(self, ev: Event) -> None:
        ctx = self.ctx
        inst = self._decimals[ev.symbol]
        now = now_ns()
        if ev.trade_id:
            ctx.emit(
                Trade(
                    venue=ctx.venue,
                    symbol=ev.symbol,
                    venue_symbol=ev.symbol,
                    seq=ev.update_id,
                    ts_event=now,
                    ts_recv=now,
                    trade_id=str(ev.trade_id),
                    price=inst.price(ev.trade_ticks),
                    size=inst.qty(ev.trade_lots),
                    aggressor=ev.aggressor,
                )
            )
        if self.config.book_levels and (ev.bids or ev.asks):
            ctx.emit(
                BookDelta(
                    venue=ctx.venue,
                    symbol=ev.symbol,
                    venue_symbol=ev.symbol,
                    seq=ev.update_id,
                    first_seq=ev.update_id,
                    ts_event=now,
                    ts_recv=now,
                    bids=tuple((inst.price(p), inst.qty(q)) for p, q in ev.bids),
                    asks=tuple((inst.price(p), inst.qty(q)) for p, q in ev.asks),
                )
            )
        self._quote(ev.symbol, ev.update_id, now)

    def _quote(self, sym: str, uid: int, now: int) -> None:
        assert self.market is not None
        inst = self._decimals[sym]
        bid, ask = self.market.top(sym)
        self.ctx.emit(
            Quote(
                venue=self.ctx.venue,
                symbol=sym,
                venue_symbol=sym,
                seq=uid,
                ts_event=now,
                ts_recv=now,
                bid_px=inst.price(bid[0]) if bid else None,
                bid_sz=inst.qty(bid[1]) if bid else "0",
                ask_px=inst.price(ask[0]) if ask else None,
                ask_sz=inst.qty(ask[1]) if ask else "0",
            )
        )

    def stats(self) -> dict[str, float]:
        return {"events_total": float(self.events_total)}
