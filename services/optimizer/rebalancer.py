"""Rebalance orders (NEXUS_REBALANCE_ACCOUNT set): each new target becomes orders for one account, sent
through risk with the order client like any client's.

    target ─► Rebalancer.on_target ─► account state (risk.state.<account>) + marks (quote mids)
           ─► plan_rebalance (rebalance.py, no I/O) ─► IOC limit orders (OrderClient) ─► ord.in.* ─► risk

One rebalance at a time, at most one every NEXUS_REBALANCE_INTERVAL seconds. A rebalance needs an account
state newer than the previous rebalance with no open order (so the fills of the previous orders are in the
positions); without one it waits up to NEXUS_REBALANCE_TIMEOUT and otherwise skips. Rejects and timeouts
are counted, never raised; each rebalance is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nexus import subjects
from nexus.bus import Bus
from nexus.client import OrderClient, SubmitTimeout
from nexus.errors import NexusError
from nexus.instruments import Instrument
from nexus.messages import (
    AccountRisk,
    ExecReport,
    ExecType,
    NewOrder,
    OrderType,
    PortfolioTarget,
    TimeInForce,
    TradingState,
    now_ns,
)
from optimizer.rebalance import RebalanceOrder, RebalancePlan, plan_rebalance

Spawn = Callable[[Coroutine[Any, Any, Any]], Any]

SKIPS = ("interval", "busy", "no_account_state", "halted")
"""Why a target is not traded: less than the interval since the last rebalance, one still running, no
fresh account state from risk (or open orders in it), the account halted."""


@dataclass(frozen=True)
class RebalanceConfig:
    account: str
    capital: float
    min_notional: float = 0.0
    aggression_bps: float = 5.0
    interval: float = 60.0
    timeout: float = 5.0


class Rebalancer:
    def __init__(
        self,
        bus: Bus,
        config: RebalanceConfig,
        instruments: Mapping[str, Instrument],
        marks: Mapping[str, float],
        spawn: Spawn,
        log: Any,
    ) -> None:
        self.config = config
        self.bus = bus
        self.instruments = instruments
        self.marks = marks
        """The service's latest quote mids (read at each rebalance, not copied)."""
        self._spawn = spawn
        self.log = log
        self.client = OrderClient(bus, config.account, timeout=config.timeout, on_report=self._on_report)
        self.state: AccountRisk | None = None
        self._state_at = 0.0
        self._state_event = asyncio.Event()
        self._done_at = 0.0
        """When the previous rebalance's orders were answered (monotonic)."""
        self._started_at: float | None = None
        self._busy = False
        self._live: set[str] = set()
        """Client order ids sent and not yet terminal."""
        self.counts: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.skips: Counter[str] = Counter()
        self.filled_notional = 0.0
        self.last: dict[str, Any] = {}

    async def start(self) -> None:
        await self.client.start()
        await self.bus.subscribe(subjects.risk_state(self.config.account), AccountRisk, self._on_state)

    async def close(self) -> None:
        await self.client.close()

    # -- inputs -------------------------------------------------------------------------------------

    async def _on_state(self, state: AccountRisk) -> None:
        if state.account != self.config.account:
            return
        self.state = state
        self._state_at = time.monotonic()
        self._state_event.set()

    async def _on_report(self, report: ExecReport) -> None:
        coid = report.client_order_id
        if coid not in self._live:
            return
        kind = report.exec_type
        if kind in (ExecType.PARTIALLY_FILLED, ExecType.FILLED) and report.last_qty and report.last_px:
            self.counts["fills"] += 1
            self.filled_notional += float(report.last_qty * report.last_px)
        if kind is ExecType.FILLED:
            self.counts["orders_filled"] += 1
        elif kind is ExecType.CANCELLED:  # an IOC's unfilled remainder
            self.counts["orders_partially_filled" if report.cum_qty else "orders_unfilled"] += 1
        if kind in (ExecType.FILLED, ExecType.CANCELLED, ExecType.REJECTED):
            self._live.discard(coid)

    # -- the trigger --------------------------------------------------------------------------------

    def on_target(self, target: PortfolioTarget) -> bool:
        """Start a rebalance to `target` unless one runs or the last started less than the interval ago."""
        now = time.monotonic()
        if self._busy:
            self.skips["busy"] += 1
            return False
        if self._started_at is not None and now - self._started_at < self.config.interval:
            self.skips["interval"] += 1
            return False
        self._busy = True
        self._started_at = now
        self._spawn(self._run(target))
        return True

    async def _run(self, target: PortfolioTarget) -> None:
        try:
            await self.rebalance(target)
        except Exception as exc:  # a bug must not stop the optimizer: count, log, go on
            self.counts["errors"] += 1
            self.log.exception("optimizer.rebalance_failed", account=self.config.account, error=repr(exc))
        finally:
            self._busy = False

    # -- one rebalance ------------------------------------------------------------------------------

    async def rebalance(self, target: PortfolioTarget) -> RebalancePlan | None:
        """Plan and send the orders that take the account to `target`; None when skipped."""
        cfg = self.config
        t0 = time.perf_counter()
        if self.state is None:
            # Risk publishes an account's state only when it changes: a cancel-all of the (optimizer's
            # own) account makes it publish one now, and clears anything left open.
            await self._probe()
        state = await self._fresh_state(cfg.timeout)
        if state is None:
            self._skip("no_account_state", target)
            return None
        if state.state is TradingState.HALTED:
            self._skip("halted", target)
            return None
        weights = dict(zip(target.symbols, target.weights, strict=True))
        positions = {p.symbol: Decimal(p.qty) for p in state.positions}
        plan = plan_rebalance(
            weights,
            positions,
            dict(self.marks),
            self.instruments,
            capital=cfg.capital,
            min_notional=cfg.min_notional,
            aggression_bps=cfg.aggression_bps,
        )
        before = Counter(self.rejects)
        before_counts = Counter(self.counts)
        answers = await asyncio.gather(*(self._send(order) for order in plan.orders))
        self._done_at = time.monotonic()
        self.counts["rebalances"] += 1
        rejects = self.rejects - before
        accepted = sum(a is ExecType.ACCEPTED for a in answers)
        self.last = {
            "portfolio": target.portfolio,
            "ts": target.ts,
            "orders": len(plan.orders),
            "accepted": accepted,
            "rejected": dict(rejects),
            "timeouts": self.counts["timeouts"] - before_counts["timeouts"],
            "skipped": dict(Counter(plan.skipped.values())),
            "notional": round(plan.notional, 2),
            "ms": round((time.perf_counter() - t0) * 1000, 3),
        }
        self.log.info("optimizer.rebalanced", account=cfg.account, **self.last)
        return plan

    def _skip(self, why: str, target: PortfolioTarget) -> None:
        self.skips[why] += 1
        self.last = {"portfolio": target.portfolio, "ts": target.ts, "skipped_because": why}
        self.log.warning("optimizer.rebalance_skipped", account=self.config.account, reason=why)

    async def _probe(self) -> None:
        try:
            await self.client.cancel_all()
        except (SubmitTimeout, NexusError) as exc:
            self.log.warning("optimizer.rebalance_probe_failed", account=self.config.account, error=repr(exc))

    async def _fresh_state(self, timeout: float) -> AccountRisk | None:
        """The account's state once it is newer than the previous rebalance and shows no open order."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state
            if state is not None and self._state_at > self._done_at and state.open_orders == 0:
                return state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._state_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._state_event.wait(), remaining)

    async def _send(self, order: RebalanceOrder) -> ExecType | None:
        cmd = NewOrder(
            account=self.config.account,
            client_order_id=self.client.new_id(),
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            price=order.price,
            order_type=OrderType.LIMIT,
            tif=TimeInForce.IOC,
            ts=now_ns(),
        )
        self._live.add(cmd.client_order_id)
        self.counts["sent"] += 1
        report: ExecReport | None = None
        for attempt in range(2):  # a timeout: the same command once more (the same order), then give up
            try:
                report = await self.client.submit(cmd)
                break
            except SubmitTimeout:
                self.counts["timeouts" if attempt else "resubmits"] += 1
            except NexusError as exc:  # the bus is away: count it, the next rebalance tries again
                self.counts["send_errors"] += 1
                self.log.warning(
                    "optimizer.rebalance_send_failed", order=cmd.client_order_id, error=repr(exc)
                )
                break
        if report is None:
            self._live.discard(cmd.client_order_id)
            return None
        if report.exec_type is ExecType.ACCEPTED:
            self.counts["accepted"] += 1
        else:
            self.counts["rejected"] += 1
            self.rejects[report.reason or "UNKNOWN"] += 1
            self._live.discard(cmd.client_order_id)
        return report.exec_type

    # -- what the service reports -------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        c = self.counts
        out = {
            "rebalances_total": c["rebalances"],
            "rebalances_skipped_total": sum(self.skips.values()),
            "rebalance_errors_total": c["errors"],
            "rebalance_orders_sent_total": c["sent"],
            "rebalance_orders_accepted_total": c["accepted"],
            "rebalance_orders_rejected_total": c["rejected"],
            "rebalance_orders_resubmitted_total": c["resubmits"],
            "rebalance_orders_timed_out_total": c["timeouts"],
            "rebalance_send_errors_total": c["send_errors"],
            "rebalance_orders_filled_total": c["orders_filled"],
            "rebalance_orders_partially_filled_total": c["orders_partially_filled"],
            "rebalance_orders_unfilled_total": c["orders_unfilled"],
            "rebalance_fills_total": c["fills"],
            "rebalance_filled_notional_total": self.filled_notional,
        }
        for reason, n in sorted(self.rejects.items()):
            out[f"rebalance_rejects_{reason.lower()}_total"] = n
        for why in SKIPS:
            out[f"rebalances_skipped_{why}_total"] = self.skips[why]
        return {k: float(v) for k, v in out.items()}

    def details(self) -> dict[str, Any]:
        state = self.state
        return {
            "account": self.config.account,
            "capital": self.config.capital,
            "positions": {p.symbol: str(p.qty) for p in state.positions} if state else None,
            "last": self.last,
        }
