"""The risk service: every order command passes here on its way from the clients to the engine.

    clients ─ord.in.<tier>.*─► ORD_IN ─► risk (consumers risk-p0, risk-p1) ─ord.ok.<tier>.*─► ORD_OK ─► engine
                                               │ decision per command, stored under the command's own id:
                                               │ the command itself (approved) or a RiskReject in its place
    engine exec streams ─► risk: positions, open orders, P&L        market data ─► risk: marks, best bid/ask
    risk.p0.kill (request) / POST /kill: trading states + cancel-all of open orders (RiskCancelAll)
    risk.state.<account>: AccountRisk every NEXUS_RISK_STATE_INTERVAL      risk.audit: every runtime change

Cancels and cancel-alls (p0) have their own consumer, connection and task, so a burst of new orders never
delays them; they pass in every trading state. Trading states and runtime limit changes are kept in the
JetStream key-value bucket RISK_CONTROL, so a restarted risk service is as strict as the one that stopped.
Start-up: read every engine exec stream to its end (positions), then start taking commands.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import nats.js.errors
from fastapi import FastAPI
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, PubAck, RetentionPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue

from nexus import messages, streams, subjects
from nexus.errors import SettingsError, SubjectError
from nexus.instruments import load_instruments
from nexus.messages import (
    AccountRisk,
    CancelAll,
    ErrorReply,
    ExecReport,
    KillSwitch,
    Message,
    NewOrder,
    Quote,
    Reason,
    ReplaceOrder,
    RiskAudit,
    RiskCancelAll,
    RiskReject,
    TradingState,
    now_ns,
)
from nexus.runtime import Service
from nexus.runtime.heap import keep_heap_frozen
from nexus.settings import PositiveFloat, Settings, var_name
from nexus.subjects import ALL_SYMBOLS, ANY, Tier
from risk.checks import Checker
from risk.intake import Forward, Intake
from risk.limits import AccountLimits, load_limits
from risk.reports import Reports

CONTROL_BUCKET = "RISK_CONTROL"
AUDIT_STREAM = "RISK_AUDIT"
_STATES_KEY = "states"
_LIMITS_KEY = "limits"
_MARKS_KEY = "marks"
GLOBAL = "_global"
"""The key of the global trading state among the per-account ones."""


class RiskSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the risk service (NEXUS_* variables). NEXUS_CONFIG_FILE is the limits TOML."""

    instruments_file: str = ""
    engine_partitions: int = 1
    """The engine's partition count (risk declares ORD_IN/ORD_OK the way the engine reads them)."""
    risk_batch: int = 500
    """Most commands decided and stored per round trip to JetStream."""
    risk_state_interval: PositiveFloat = 1.0
    """Seconds between two AccountRisk publications of an account that changed."""
    risk_mark_venues: list[str] = msgspec.field(default_factory=list)
    """Venues whose quotes and trades give marks and best prices (empty: every venue but the ignored)."""
    risk_ignore_venues: list[str] = msgspec.field(default_factory=lambda: ["nexus"])
    """Venues never used for marks: by default the engine's own (the book risk guards must not set the
    reference a fat-finger order is checked against)."""
    risk_catch_up_timeout: PositiveFloat = 120.0
    """Longest wait at start for the engine's exec streams to be read to their end."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.engine_partitions <= 1024:
            raise SettingsError(var_name("engine_partitions"), self.engine_partitions, "must be 1..1024")
        if not 1 <= self.risk_batch <= 10_000:
            raise SettingsError(var_name("risk_batch"), self.risk_batch, "must be 1..10000")


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class Risk(Service[RiskSettings]):
    """Pre-trade risk checks in front of the order engine; positions, P&L, trading states, kill switch."""

    name = "risk"
    settings_cls = RiskSettings
    dedicated_p0 = True

    def __init__(self, settings: RiskSettings, bus: Any) -> None:
        super().__init__(settings, bus)
        s = settings
        self.instruments = load_instruments(s.instruments_file or None)
        self.limits = load_limits(s.config_file or None, self.instruments)
        self.checker = Checker(self.limits)
        self.overrides: dict[str, dict[str, Any]] = {}
        """Runtime limit changes per scope, replayed over the file at start."""
        self.decoder = messages.decoder(messages.OrderCommandMsg)
        self.mark_venues = frozenset(s.risk_mark_venues)
        self.ignore_venues = frozenset(s.risk_ignore_venues) - self.mark_venues
        self.intakes: list[Intake] = []
        self.reports: Reports | None = None
        self.kv: KeyValue | None = None
        self.started = False
        self._dirty: set[str] = set()
        self._kills = 0
        self.counters = dict.fromkeys(
            (
                "commands_total",
                "approved_total",
                "rejected_total",
                "cancels_total",
                "decode_errors_total",
                "route_errors_total",
                "check_errors_total",
                "invalid_numbers_total",
                "kills_total",
                "limit_changes_total",
                "marks_total",
                "reconciled_total",
            ),
            0,
        )
        self.check_ns_total = 0

    # -- start and stop -----------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        js = self.bus.js
        await self.bus.ensure_stream(streams.order_entry_stream(s.engine_partitions))
        await self.bus.ensure_stream(streams.order_approved_stream(s.engine_partitions))
        await self.bus.ensure_stream(
            StreamConfig(
                name=AUDIT_STREAM,
                description="risk: every runtime change of a limit or trading state",
                subjects=[subjects.risk_audit()],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=90 * 24 * 3600.0,
            )
        )
        self.kv = await self._control_bucket()
        await self._load_control()
        for venue_filter in self._market_subjects():
            await self.bus.subscribe_raw(venue_filter, self._on_market_data)
        self.reports = Reports(js, self._on_report)
        await self.reports.start()
        await self.reports.wait_caught_up(s.risk_catch_up_timeout)
        p0_js = self.bus.conn(Tier.P0).jetstream()
        first_seq = await self._after_direct_engine()
        for tier, js_ctx in ((Tier.P0, p0_js), (Tier.P1, js)):
            intake = Intake(
                js_ctx,
                stream=streams.ORDER_ENTRY,
                filter_subject=subjects.order_entry_stored(ANY, tier, ANY, ANY).rsplit(".", 2)[0] + ".>",
                tier=tier,
                decide=self.decide,
                on_duplicate=self._reconcile_duplicate,
                batch=s.risk_batch,
                first_seq=first_seq,
            )
            await intake.start()
            self.intakes.append(intake)
        await self.bus.serve(
            subjects.kill_switch(),
            KillSwitch,
            self._on_kill_request,
            queue=subjects.queue_group(self.name, Tier.P0),
            tier=Tier.P0,
        )
        self.spawn(self._publish_states(), name="risk-states")
        self.spawn(self._save_marks(), name="risk-marks")
        self.spawn(keep_heap_frozen(), name="heap-freezer")
        self.started = True
        self.log.info(
            "risk.started",
            accounts=len(self.checker.accounts),
            reports=self.reports.reports_total,
            global_state=self.checker.global_state.value,
        )

    async def _after_direct_engine(self) -> int:
        """Where risk's consumers start when they do not exist yet: after every command an engine that
        read ORD_IN directly has already taken (switching an engine to `approved` must not run those
        commands twice), else from the first command."""
        prefix = streams.engine_consumer_name("direct", 0, 1).split("-0of")[0]
        taken = 0
        for info in await self.bus.js.consumers_info(streams.ORDER_ENTRY):
            if (info.name or "").startswith(prefix) and info.delivered is not None:
                taken = max(taken, info.delivered.stream_seq or 0)
        if taken:
            self.log.info("risk.after_direct_engine", first_seq=taken + 1)
        return taken + 1

    async def stop_intake(self) -> None:
        for intake in self.intakes:
            await intake.stop()
        await super().stop_intake()

    async def stop(self) -> None:
        if self.reports is not None:
            await self.reports.stop()
        await super().stop()

    def ready(self) -> tuple[bool, str]:
        if not self.started:
            if self.reports is not None and not self.reports.caught_up:
                return False, f"reading the engine's exec streams ({len(self.reports.behind)} behind)"
            return False, "starting"
        return True, ""

    # -- deciding ------------------------------------------------------------------------------------

    def decide(self, msg: Msg, tier: Tier) -> Forward:
        """What goes to the approved stream for one command: the command's own bytes when it passes
        (or when risk cannot judge it: the engine answers bad input), else a RiskReject."""
        self.counters["commands_total"] += 1
        tokens = msg.subject.split(".")  # ord.inp.<k>.<tier>.<account>.<symbol>
        account, symbol = tokens[-2], tokens[-1]
        out_subject = subjects.order_approved(tier, account, symbol)
        # The decision is stored under the command's own id. A command published without one (straight
        # into the stream) is known by its place in the stream: an id made from its account and client
        # order id would be the one of an earlier command reusing them, and this one's answer (a
        # DUPLICATE_ORDER_ID reject) would be dropped as that one's duplicate. (Only then is the place
        # read: parsing the ack subject costs ~3 µs.)
        msg_id = (msg.headers or {}).get("Nats-Msg-Id") or (
            f"{streams.ORDER_ENTRY}:{msg.metadata.sequence.stream}"
        )
        try:
            cmd = self.decoder.decode(msg.data)
        except messages.DECODE_ERRORS as exc:
            self.counters["decode_errors_total"] += 1
            self.log.warning("risk.decode_failed", subject=msg.subject, error=str(exc), sample=msg.data[:200])
            return out_subject, msg_id, msg.data  # the engine answers it with DECODE_ERROR
        try:
            misrouted = cmd.account != account or subjects.command_symbol(cmd) != symbol
        except ValueError:  # a symbol that cannot be a subject token (empty)
            misrouted = True
        if misrouted:
            self.counters["route_errors_total"] += 1
            return out_subject, msg_id, msg.data  # the engine answers it with INVALID_FIELD
        t0 = time.perf_counter_ns()
        try:
            kind = type(cmd)
            if kind is NewOrder:
                verdict = self.checker.check_new(cmd, time.monotonic())
            elif kind is ReplaceOrder:
                verdict = self.checker.check_replace(cmd, time.monotonic())
            else:
                self.counters["cancels_total"] += 1
                verdict = self.checker.check_cancel(cmd)
        except InvalidOperation:  # NaN, Infinity, or a number Decimal arithmetic cannot take (1e999999)
            self.counters["invalid_numbers_total"] += 1
            verdict = Reason.INVALID_FIELD, "a price or quantity is not a finite number in range"
        except Exception as exc:  # a bug in a check must not let the order through, nor stop risk
            self.counters["check_errors_total"] += 1
            self.log.exception("risk.check_failed", command=repr(cmd), error=repr(exc))
            verdict = Reason.ENGINE_ERROR, f"risk check failed: {exc!r}"
        self.check_ns_total += time.perf_counter_ns() - t0
        if verdict is None:
            self.counters["approved_total"] += 1
            self._dirty.add(account)
            return out_subject, msg_id, msg.data
        self.counters["rejected_total"] += 1
        reason, text = verdict
        return out_subject, msg_id, messages.encode(RiskReject(command=cmd, reason=reason, text=text))

    _REJECT_TAG = b'{"type":"risk_reject"'

    async def _reconcile_duplicate(self, forward: Forward, ack: PubAck) -> None:
        """A decision made again after a restart that the approved stream already held: the stored one
        stands. If risk approved (and booked) a new order this time but the stored decision refused it,
        the engine will never report that order: take it off the books."""
        _, _, payload = forward
        if payload.startswith(self._REJECT_TAG):
            return  # refused now: nothing was booked; if it was approved before, its reports will come
        stored = await self.bus.js.get_msg(streams.ORDER_APPROVED, ack.seq)
        if not (stored.data or b"").startswith(self._REJECT_TAG):
            return
        refused = messages.decode(RiskReject, stored.data or b"")
        cmd = refused.command
        if type(cmd) is not NewOrder:
            return
        acct = self.checker.accounts.get(cmd.account)
        order = acct.orders.get(cmd.client_order_id) if acct is not None else None
        if acct is not None and order is not None and not order.acked:
            acct.set_leaves(cmd.client_order_id, Decimal(0))
            self.counters["reconciled_total"] += 1
            self._dirty.add(cmd.account)

    # -- what the engine and the market say ------------------------------------------------------------

    def _on_report(self, report: ExecReport) -> None:
        self.checker.account(report.account).on_report(report)
        self._dirty.add(report.account)

    def _market_subjects(self) -> list[str]:
        """Quotes of the mark venues (every venue when none is named). Trades are not read: a quote's
        mid is the mark, and the trade subjects carry the engine's own prints at order rate."""
        venues = sorted(self.mark_venues) or [ANY]
        return [subjects.quote(v, ANY) for v in venues]

    _md_decoder = messages.decoder(Quote)

    async def _on_market_data(self, msg: Msg) -> None:
        if self.ignore_venues and msg.subject.split(".", 4)[3] in self.ignore_venues:
            return  # md.<tier>.<kind>.<venue>.<symbol>
        try:
            md = self._md_decoder.decode(msg.data)
        except messages.DECODE_ERRORS:
            return  # the feed handler's business; risk only skips it
        self.counters["marks_total"] += 1
        self.checker.market.quote(md.symbol, md.bid_px, md.ask_px)

    # -- trading states and the kill switch ------------------------------------------------------------

    async def _on_kill_request(self, cmd: KillSwitch) -> Message:
        try:
            return await self.kill(cmd)
        except ValueError as exc:
            return ErrorReply(code="INVALID_FIELD", reason=str(exc))

    async def kill(self, cmd: KillSwitch) -> KillSwitch:
        """Set a trading state (one account, or everyone when `account` is empty) and, with cancel_open,
        cancel the open orders of every account it covers. In force for every command risk decides
        from now on; the cancels are stored before this returns."""
        if cmd.account:
            subjects.token(cmd.account)
        checker = self.checker
        old = checker.global_state if not cmd.account else checker.account(cmd.account).state
        if cmd.account:
            checker.account(cmd.account).state = cmd.state
        else:
            checker.global_state = cmd.state
        self.counters["kills_total"] += 1
        self._dirty.update([cmd.account] if cmd.account else checker.accounts)
        scope = f"account:{cmd.account}" if cmd.account else "global"
        self.log.warning(
            "risk.trading_state",
            scope=scope,
            old=old.value,
            new=cmd.state.value,
            reason=cmd.reason,
            operator=cmd.operator,
            cancel_open=cmd.cancel_open,
        )
        await self._save_states()
        await self._audit(scope, "trading_state", old.value, cmd.state.value, cmd.operator)
        if cmd.cancel_open:
            # Orders approved before the new state may not be stored yet (batches in flight, or sent
            # again after a failed store): the cancel-all goes behind them, or they would rest after it.
            for intake in self.intakes:
                if not await intake.flush(timeout=10.0):
                    self.log.error("risk.kill_flush_timeout", tier=intake.tier.value)
            targets = [cmd.account] if cmd.account else sorted(checker.accounts)
            await asyncio.gather(*(self._cancel_all(a, cmd.reason or "kill switch") for a in targets))
        return msgspec.structs.replace(cmd, ts=cmd.ts or now_ns())

    async def _cancel_all(self, account: str, why: str) -> None:
        self._kills += 1
        coid = f"risk-kill-{now_ns()}-{self._kills}"
        inner = CancelAll(account=account, client_order_id=coid, ts=now_ns())
        await self.bus.js.publish(
            subjects.order_approved(Tier.P0, account, ALL_SYMBOLS),
            messages.encode(RiskCancelAll(command=inner, text=why)),
            headers={"Nats-Msg-Id": streams.command_id(account, coid)},
            timeout=5.0,
        )

    async def change_limits(
        self, scope: str, change: AccountLimits, operator: str = ""
    ) -> list[tuple[str, str, str]]:
        """Apply a runtime change of limits to `scope` ("defaults" or an account), persist and audit it."""
        for symbol in change.symbol:
            if symbol not in self.instruments:
                raise ValueError(f"unknown symbol {symbol!r}")
        changes = self.limits.update(scope, change)
        patch = self.overrides.setdefault(scope, {})
        incoming = msgspec.to_builtins(change)
        for sym, fields in incoming.pop("symbol", {}).items():
            patch.setdefault("symbol", {}).setdefault(sym, {}).update(fields)
        patch.update(incoming)
        self.counters["limit_changes_total"] += 1
        await self._save(_LIMITS_KEY, self.overrides)
        for field, old, new in changes:
            self.log.warning(
                "risk.limit_changed", scope=scope, field=field, old=old, new=new, operator=operator
            )
            await self._audit(scope, field, old, new, operator)
        return changes

    async def _audit(self, scope: str, field: str, old: str, new: str, operator: str) -> None:
        event = RiskAudit(scope=scope, field=field, old=old, new=new, operator=operator, ts=now_ns())
        await self.bus.publish(event, subject=subjects.risk_audit(), tier=Tier.P0)

    # -- persistence of states and runtime limits -----------------------------------------------------

    async def _control_bucket(self) -> KeyValue:
        try:
            return await self.bus.js.key_value(CONTROL_BUCKET)
        except nats.js.errors.BucketNotFoundError:
            return await self.bus.js.create_key_value(
                KeyValueConfig(
                    bucket=CONTROL_BUCKET,
                    history=5,
                    storage=StorageType.FILE,
                    replicas=self.bus.stream_replicas,
                )
            )

    async def _load_control(self) -> None:
        states = await self._load(_STATES_KEY) or {}
        for name, value in states.items():
            state = TradingState(value)
            if name == GLOBAL:
                self.checker.global_state = state
                continue
            try:
                subjects.token(name)
            except SubjectError:  # saved before accounts were checked as tokens: no subject can name it
                self.log.warning("risk.state_dropped", account=name[:80], state=value)
                continue
            self.checker.account(name).state = state
        marks = await self._load(_MARKS_KEY) or {}
        market = self.checker.market
        for symbol, (mark, bid, ask) in marks.items():  # until live market data says otherwise
            if symbol not in market.marks and mark is not None:
                market.mark(symbol, Decimal(mark))
                if bid is not None:
                    market.bids[symbol] = Decimal(bid)
                if ask is not None:
                    market.asks[symbol] = Decimal(ask)
        self.overrides = await self._load(_LIMITS_KEY) or {}
        for scope, patch in self.overrides.items():
            self.limits.update(scope, msgspec.convert(patch, AccountLimits, strict=False))
        if states or self.overrides:
            self.log.info("risk.control_loaded", states=states, overridden=sorted(self.overrides))

    async def _save_states(self) -> None:
        states = {GLOBAL: self.checker.global_state.value}
        states.update(
            {
                a.name: a.state.value
                for a in self.checker.accounts.values()
                if a.state is not TradingState.ACTIVE
            }
        )
        await self._save(_STATES_KEY, states)

    async def _load(self, key: str) -> Any:
        assert self.kv is not None
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value) if entry.value else None

    async def _save(self, key: str, value: Any) -> None:
        assert self.kv is not None
        await self.kv.put(key, msgspec.json.encode(value))

    # -- account state out -----------------------------------------------------------------------------

    async def _publish_states(self) -> None:
        """AccountRisk of each account that changed, every NEXUS_RISK_STATE_INTERVAL."""
        while True:
            await asyncio.sleep(self.settings.risk_state_interval)
            dirty, self._dirty = self._dirty, set()
            for name in sorted(dirty):
                snap = self.account_risk(name)
                await self.bus.publish(snap, subject=subjects.risk_state(name))

    async def _save_marks(self, every: float = 0.25) -> None:
        """Keep the marks in the control bucket, so a restarted risk service prices orders at once
        (with marks at most this old) instead of refusing them until live market data arrives."""
        saved_version = -1
        while True:
            await asyncio.sleep(every)
            market = self.checker.market
            if market.version == saved_version:
                continue
            saved_version = market.version
            marks = {
                s: (str(m), _str(market.bids.get(s)), _str(market.asks.get(s)))
                for s, m in market.marks.items()
            }
            try:
                await self._save(_MARKS_KEY, marks)
            except Exception as exc:  # NATS away for a moment: next time
                self.log.warning("risk.marks_not_saved", error=repr(exc))

    def account_risk(self, name: str) -> AccountRisk:
        acct = self.checker.account(name)
        snap = acct.snapshot(self.checker.market, ts=now_ns())
        return msgspec.structs.replace(snap, state=self.checker.state_of(acct))

    # -- what the runner reports ----------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {k: float(v) for k, v in self.counters.items()}
        checked = self.counters["commands_total"] - self.counters["decode_errors_total"]
        out["check_us_mean"] = self.check_ns_total / 1000 / checked if checked else 0.0
        for reason, n in sorted(self.checker.rejects.items()):
            out[f"rejects_{reason.lower()}_total"] = float(n)
        accounts = self.checker.accounts.values()
        market = self.checker.market
        for acct in accounts:
            acct.refresh(market)
        out["accounts"] = float(len(self.checker.accounts))
        out["open_orders"] = float(sum(len(a.orders) for a in accounts))
        out["gross_exposure"] = float(sum(a.gross for a in accounts))
        out["realised_pnl"] = float(sum(a.realised_today for a in accounts))
        out["unrealised_pnl"] = float(sum(a.unrealised for a in accounts))
        out["halted_accounts"] = float(sum(a.state is TradingState.HALTED for a in accounts))
        out["global_halted"] = float(self.checker.global_state is TradingState.HALTED)
        for intake in self.intakes:
            tier = intake.tier.value
            out[f"intake_{tier}_queue"] = float(len(intake.queue))
            out[f"intake_{tier}_forwarded_total"] = float(intake.forwarded_total)
            out[f"intake_{tier}_duplicates_total"] = float(intake.duplicates_total)
            out[f"intake_{tier}_ack_failures_total"] = float(intake.ack_failures_total)
            out[f"intake_{tier}_republished_total"] = float(intake.republished_total)
            out[f"intake_{tier}_batches_total"] = float(intake.batches_total)
            out[f"intake_{tier}_store_ms_total"] = intake.store_us_total / 1000
        if self.reports is not None:
            out["reports_total"] = float(self.reports.reports_total)
            out["report_decode_errors_total"] = float(self.reports.decode_errors_total)
        return out

    def details(self) -> dict[str, Any]:
        return {
            "global_state": self.checker.global_state.value,
            "accounts": {
                a.name: {"state": self.checker.state_of(a).value, "open_orders": len(a.orders)}
                for a in list(self.checker.accounts.values())[:50]
            },
        }

    def add_routes(self, app: FastAPI) -> None:
        from risk.api import routes

        routes(app, self)
