"""The optimizer service: live prices -> bars -> estimates -> periodic solves published on
pf.target.<portfolio>; on-demand solves over NATS request/reply (pf.solve) and REST (POST /optimize).

Solves run on one worker thread (numpy and Clarabel do the work), so the event loop keeps reading prices and
sending heartbeats while a large problem is solved; one thread also serialises use of the solvers' caches.
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from fastapi import FastAPI, Request
from nats.aio.msg import Msg

from nexus import messages, subjects
from nexus.bus import Bus
from nexus.errors import SettingsError
from nexus.instruments import load_instruments
from nexus.messages import (
    CovEstimator,
    ErrorReply,
    MeanEstimator,
    Message,
    Objective,
    PortfolioTarget,
    Quote,
    Trade,
)
from nexus.runtime import MsgspecResponse, Service, body_openapi
from nexus.settings import PositiveFloat, Settings, var_name
from nexus.subjects import Tier
from optimizer.api import answer, to_target
from optimizer.bars import PriceBars
from optimizer.errors import ErrorCode, OptimizerError
from optimizer.estimators import estimate, log_returns, simple_returns
from optimizer.problem import Constraints, Problem
from optimizer.rebalancer import RebalanceConfig, Rebalancer
from optimizer.solver import PortfolioSolver, Solution, SolverOptions

SECONDS_PER_YEAR = 365 * 86400
"""Calendar time, 365 days: crypto venues and the synthetic feed trade around the clock (the feed handler's
synthetic market uses the same year for its annualised vols)."""

Bars = Annotated[int, msgspec.Meta(ge=3)]


class OptimizerSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the optimizer service (NEXUS_* variables); see docs/optimizer.md."""

    portfolio: str = "main"
    """Published on pf.target.<portfolio>."""
    venues: list[str] = msgspec.field(default_factory=lambda: ["sim"])
    symbols: list[str] = msgspec.field(default_factory=list)
    """Empty: every instrument of the instruments file."""
    instruments_file: str = ""
    price_source: Literal["mid", "trade"] = "mid"
    bar_seconds: PositiveFloat = 1.0
    window: Bars = 600
    """Returns in the estimation window."""
    min_bars: Bars = 30
    """Returns needed before the first solve."""
    solve_interval: PositiveFloat = 5.0
    objective: Objective = Objective.MAX_SHARPE
    fallback_objective: str = "min_variance"
    """Solved and published (status fallback:<code>) when the objective has no solution; empty = none."""
    cov_estimator: CovEstimator = CovEstimator.LEDOIT_WOLF
    mean_estimator: MeanEstimator = MeanEstimator.MEAN
    ewma_halflife: PositiveFloat = 120.0
    returns: Literal["log", "simple"] = "log"
    periods_per_year: float = 0.0
    """0 = calendar bars per year, SECONDS_PER_YEAR / bar_seconds."""
    risk_free: float = 0.0
    target_return: float | None = None
    target_volatility: float | None = None
    long_only: bool = True
    min_weight: float | None = None
    max_weight: float | None = None
    max_leverage: float | None = None
    max_turnover: float | None = None
    """Against the last published target (the first target is not turnover-capped)."""
    l2: float = 0.0
    max_assets: int = 2000
    """On-demand solves with more assets are refused (TOO_MANY_ASSETS)."""
    rebalance_account: str = ""
    """Rebalance this account to each new target (orders through risk); empty = no orders (default)."""
    rebalance_capital: float = 0.0
    """What the weights are fractions of, in the quote currency; required (> 0) with an account."""
    rebalance_min_notional: float = 0.0
    """Trades below this (|quantity| x mark) are not sent."""
    rebalance_aggression_bps: float = 5.0
    """Orders are IOC limits this many basis points through the mid (buys above, sells below)."""
    rebalance_interval: float = 60.0
    """Seconds at least between two rebalances (targets in between are not traded)."""
    rebalance_timeout: PositiveFloat = 5.0
    """Seconds to wait for an order's answer (then once more with the same order), and for the account's
    state."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("portfolio",):
            try:
                subjects.token(getattr(self, field))
            except ValueError as exc:
                raise SettingsError(var_name(field), getattr(self, field), str(exc)) from None
        for venue in self.venues:
            try:
                subjects.token(venue)
            except ValueError as exc:
                raise SettingsError(var_name("venues"), venue, str(exc)) from None
        if self.min_bars > self.window:
            raise SettingsError(var_name("min_bars"), self.min_bars, f"must be <= window ({self.window})")
        if self.fallback_objective and self.fallback_objective not in set(Objective):
            choices = ", ".join(o.value for o in Objective)
            raise SettingsError(
                var_name("fallback_objective"), self.fallback_objective, f"expected '' or one of: {choices}"
            )
        needs = {Objective.TARGET_RETURN: "target_return", Objective.TARGET_VOLATILITY: "target_volatility"}
        for objective in (self.objective, self.fallback_objective):
            required = needs.get(Objective(objective)) if objective else None
            if required and getattr(self, required) is None:
                raise SettingsError(var_name(required), None, f"required by objective {objective}")
        if self.periods_per_year < 0:
            raise SettingsError(var_name("periods_per_year"), self.periods_per_year, "must be >= 0")
        if self.rebalance_account:
            try:
                subjects.token(self.rebalance_account)
            except ValueError as exc:
                raise SettingsError(var_name("rebalance_account"), self.rebalance_account, str(exc)) from None
            if not (math.isfinite(self.rebalance_capital) and self.rebalance_capital > 0):
                raise SettingsError(
                    var_name("rebalance_capital"),
                    self.rebalance_capital,
                    "must be > 0 to rebalance an account",
                )
        if not (math.isfinite(self.rebalance_min_notional) and self.rebalance_min_notional >= 0):
            raise SettingsError(
                var_name("rebalance_min_notional"), self.rebalance_min_notional, "must be >= 0"
            )
        if not 0 <= self.rebalance_aggression_bps < 10_000:
            raise SettingsError(
                var_name("rebalance_aggression_bps"), self.rebalance_aggression_bps, "must be in [0, 10000)"
            )
        if not self.rebalance_interval >= 0:
            raise SettingsError(var_name("rebalance_interval"), self.rebalance_interval, "must be >= 0")

    @property
    def bars_per_year(self) -> float:
        return self.periods_per_year or SECONDS_PER_YEAR / self.bar_seconds


class Optimizer(Service[OptimizerSettings]):
    """Portfolio optimisation on live market data: target weights with expected return, volatility and
    Sharpe on pf.target.<portfolio>, and on-demand solves (POST /optimize, NATS pf.solve)."""

    name = "optimizer"
    settings_cls = OptimizerSettings

    def __init__(self, settings: OptimizerSettings, bus: Bus) -> None:
        super().__init__(settings, bus)
        instruments = load_instruments(settings.instruments_file or None)
        symbols = settings.symbols or list(instruments)
        self.bars = PriceBars(symbols, settings.window)
        self.solver = PortfolioSolver()
        """The live portfolio's solver (warm across periodic solves)."""
        self.adhoc = PortfolioSolver(SolverOptions(max_assets=settings.max_assets))
        """On-demand solves."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optimizer-solve")
        self.target: PortfolioTarget | None = None
        self.last_solution: Solution | None = None
        self.last_error: OptimizerError | None = None
        self.solves_total = 0
        self.solve_errors_total = 0
        self.fallbacks_total = 0
        self.published_total = 0
        self.requests_total = 0
        self.request_errors_total = 0
        self.last_solve_ms = 0.0
        self._outcome = "optimal"
        self.mids: dict[str, float] = {}
        """The latest quote mid of each symbol: the marks of rebalance orders."""
        self.rebalancer: Rebalancer | None = None
        if settings.rebalance_account:
            config = RebalanceConfig(
                account=settings.rebalance_account,
                capital=settings.rebalance_capital,
                min_notional=settings.rebalance_min_notional,
                aggression_bps=settings.rebalance_aggression_bps,
                interval=settings.rebalance_interval,
                timeout=settings.rebalance_timeout,
            )
            self.rebalancer = Rebalancer(bus, config, instruments, self.mids, self.spawn, self.log)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        for venue in self.settings.venues:
            if self.settings.price_source == "trade":
                await self.bus.subscribe(
                    subjects.trade(venue, subjects.ANY), Trade, self.on_trade, tier=Tier.P0
                )
            if self.settings.price_source == "mid" or self.rebalancer is not None:  # mids: rebalance marks
                await self.bus.subscribe(subjects.quote(venue, subjects.ANY), Quote, self.on_quote)
        if self.rebalancer is not None:
            await self.rebalancer.start()
        await self.bus.subscribe_raw(
            subjects.optimize_request(), self.on_request, queue=subjects.queue_group(self.name, Tier.P1)
        )
        self.spawn(self._bar_clock(), name="bar-clock")
        self.spawn(self._solve_loop(), name="solve-loop")
        self.log.info(
            "optimizer.started",
            portfolio=self.settings.portfolio,
            symbols=list(self.bars.symbols),
            venues=self.settings.venues,
            objective=self.settings.objective.value,
            rebalance_account=self.settings.rebalance_account or None,
        )

    async def stop(self) -> None:
        await self.cancel_tasks()
        if self.rebalancer is not None:
            await self.rebalancer.close()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    # -- market data --------------------------------------------------------------------------------

    async def on_trade(self, trade: Trade) -> None:
        self.bars.update(trade.symbol, float(trade.price))

    async def on_quote(self, quote: Quote) -> None:
        if quote.bid_px is None or quote.ask_px is None:
            return
        mid = float(quote.bid_px + quote.ask_px) / 2.0
        if self.rebalancer is not None and math.isfinite(mid) and mid > 0:
            self.mids[quote.symbol] = mid
        if self.settings.price_source == "mid":
            self.bars.update(quote.symbol, mid)

    async def _bar_clock(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.bar_seconds
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.bars.close()
            due += interval
            if due < loop.time():  # the loop was stalled: skip the missed bars rather than bunch them
                due = loop.time() + interval

    # -- the live portfolio -------------------------------------------------------------------------

    async def _solve_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.solve_interval)
            if self.bars.count - 1 < self.settings.min_bars:
                continue
            prices = self.bars.prices()
            current = self.target.weights if self.target is not None else None
            try:
                target = await loop.run_in_executor(self._pool, self.solve_live, prices, current)
            except OptimizerError as exc:
                self.solve_errors_total += 1
                self._note(exc.code.value, exc.reason)
                self.last_error = exc
                continue
            except Exception as exc:  # a bug must not stop the periodic solves: count, log, go on
                self.solve_errors_total += 1
                self.last_error = OptimizerError(ErrorCode.SOLVER_FAILED, repr(exc))
                self.log.exception("optimizer.solve_crashed", error=repr(exc))
                continue
            await self.bus.publish(target)
            self.published_total += 1
            self._note(target.status, "")
            if self.rebalancer is not None:
                self.rebalancer.on_target(target)

    def _note(self, outcome: str, reason: str) -> None:
        """One log line when the outcome of the periodic solve changes (not one per solve)."""
        if outcome == self._outcome:
            return
        if outcome == "optimal":
            self.log.info("optimizer.solving", portfolio=self.settings.portfolio, previous=self._outcome)
        else:
            self.log.warning(
                "optimizer.not_optimal",
                portfolio=self.settings.portfolio,
                outcome=outcome,
                reason=reason or (self.last_error.reason if self.last_error else ""),
            )
        self._outcome = outcome

    def solve_live(self, prices: np.ndarray, current: tuple[float, ...] | None) -> PortfolioTarget:
        """One periodic solve from a price window (runs on the worker thread)."""
        s = self.settings
        returns = log_returns(prices) if s.returns == "log" else simple_returns(prices)
        mu, cov = estimate(returns[-s.window :], s.cov_estimator, s.mean_estimator, s.ewma_halflife)
        problem = Problem(
            mu=mu,
            cov=cov,
            objective=s.objective,
            constraints=Constraints(
                long_only=s.long_only,
                lower=s.min_weight,
                upper=s.max_weight,
                max_leverage=s.max_leverage,
                max_turnover=s.max_turnover if current is not None else None,
                current=np.asarray(current) if current is not None else None,
                l2=s.l2,
            ),
            risk_free=s.risk_free,
            target_return=s.target_return,
            target_volatility=s.target_volatility,
            periods_per_year=s.bars_per_year,
            symbols=self.bars.symbols,
        )
        status = ""
        try:
            solution = self.solver.solve(problem)
        except OptimizerError as exc:
            if not s.fallback_objective or s.fallback_objective == s.objective:
                raise
            self.fallbacks_total += 1
            self.last_error = exc
            status = f"fallback:{exc.code.value}"
            solution = self.solver.solve(replace(problem, objective=Objective(s.fallback_objective)))
        self.solves_total += 1
        self.last_solution = solution
        self.last_solve_ms = solution.solve_us / 1000
        if not status:
            self.last_error = None
        self.target = to_target(solution, s.portfolio, status=status)
        return self.target

    # -- on-demand solves ---------------------------------------------------------------------------

    async def answer(self, data: bytes) -> Message:
        reply = await asyncio.get_running_loop().run_in_executor(self._pool, answer, data, self.adhoc)
        self.requests_total += 1
        if isinstance(reply, ErrorReply):
            self.request_errors_total += 1
        return reply

    async def on_request(self, msg: Msg) -> None:
        reply = await self.answer(msg.data)
        if msg.reply:
            await msg.respond(messages.encode(reply))

    def add_routes(self, app: FastAPI) -> None:
        @app.post(
            "/optimize",
            tags=["optimizer"],
            response_class=MsgspecResponse,
            openapi_extra=body_openapi(app, messages.OptimizeRequest),
            responses={
                200: {"description": "a portfolio_target"},
                400: {"description": "an error (DECODE_ERROR): the body is not JSON"},
                422: {
                    "description": "an error naming the reason (NAN_INPUT, NOT_PSD, BOUNDS_INFEASIBLE, ...)"
                },
            },
        )
        async def optimize(request: Request) -> MsgspecResponse:
            """Solve one problem now (body: an optimize_request); answers a portfolio_target."""
            reply = await self.answer(await request.body())
            if isinstance(reply, ErrorReply):
                code = 400 if reply.code == ErrorCode.DECODE_ERROR else 422
                return MsgspecResponse(reply, status_code=code)
            return MsgspecResponse(reply)

        @app.get("/target", tags=["optimizer"], response_class=MsgspecResponse)
        async def target() -> MsgspecResponse:
            """The live portfolio's latest target (404 until the first solve)."""
            if self.target is None:
                return MsgspecResponse(
                    ErrorReply(code="NO_TARGET_YET", reason=self._waiting_for()), status_code=404
                )
            return MsgspecResponse(self.target)

    # -- what the runner reports --------------------------------------------------------------------

    def _waiting_for(self) -> str:
        missing = self.bars.missing()
        if missing:
            return f"waiting for prices of {', '.join(missing)}"
        return f"warming up: {max(self.bars.count - 1, 0)} of {self.settings.min_bars} returns"

    def stats(self) -> dict[str, float]:
        sol = self.last_solution
        return {
            "prices_total": self.bars.updates_total,
            "prices_ignored_total": self.bars.ignored_total,
            "bars_total": self.bars.bars_total,
            "solves_total": self.solves_total,
            "solve_errors_total": self.solve_errors_total,
            "fallbacks_total": self.fallbacks_total,
            "targets_published_total": self.published_total,
            "requests_total": self.requests_total,
            "request_errors_total": self.request_errors_total,
            "bars": max(self.bars.count - 1, 0),
            "assets": len(self.bars.symbols),
            "last_solve_ms": self.last_solve_ms,
            "solver_iterations": sol.iterations if sol else 0,
            "working_set": sol.working_set if sol else 0,
            "expected_return": sol.exp_return if sol else 0.0,
            "expected_volatility": sol.volatility if sol else 0.0,
            "expected_sharpe": sol.sharpe if sol else 0.0,
            **(self.rebalancer.stats() if self.rebalancer is not None else {}),
        }

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "portfolio": self.settings.portfolio,
            "objective": self.settings.objective.value,
            "state": "active" if self.target is not None else self._waiting_for(),
            "bars_per_year": self.settings.bars_per_year,
        }
        if self.target is not None:
            t = self.target
            out.update(
                weights=dict(zip(t.symbols, t.weights, strict=True)),
                exp_return=t.exp_return,
                volatility=t.volatility,
                sharpe=t.sharpe if math.isfinite(t.sharpe) else 0.0,
                status=t.status,
            )
        if self.last_error is not None:
            out["last_error"] = {"code": self.last_error.code.value, "reason": self.last_error.reason}
        if self.rebalancer is not None:
            out["rebalance"] = self.rebalancer.details()
        return out
