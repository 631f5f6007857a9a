"""REST control plane of the risk service (FastAPI; documented at /docs).

    GET  /accounts                    every account risk knows: state, positions, P&L, exposure
    GET  /accounts/{account}          one account (404 if risk has never seen it)
    GET  /state                       the global trading state and every account's that is not active
    POST /kill                        body KillSwitch: set a trading state (account, or everyone when
                                      `account` is empty) and cancel open orders; answers once in force
    GET  /limits                      the limits in force (file + runtime changes)
    GET  /limits/{account}            one account's resolved limits (every symbol)
    PUT  /limits/defaults             body AccountLimits: change [defaults] (only the fields given)
    PUT  /limits/accounts/{account}   body AccountLimits: change one account
Errors: 404 unknown account, 400 malformed JSON, 422 invalid body (with the reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request

from nexus import subjects
from nexus.messages import KillSwitch
from nexus.runtime import MsgspecResponse, body_openapi, read_body
from risk.limits import AccountLimits

if TYPE_CHECKING:
    from risk.service import Risk


def _account_name(account: str) -> str:
    try:
        return subjects.token(account)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


def routes(app: FastAPI, risk: Risk) -> None:
    router = APIRouter(tags=["risk"])

    @router.get("/accounts", response_class=MsgspecResponse)
    async def accounts() -> MsgspecResponse:
        """Every account risk knows, with positions, P&L, exposure and trading state."""
        return MsgspecResponse({"accounts": [risk.account_risk(a) for a in sorted(risk.checker.accounts)]})

    @router.get("/accounts/{account}", response_class=MsgspecResponse)
    async def account(account: str) -> MsgspecResponse:
        """One account's positions, P&L, exposure and trading state."""
        name = _account_name(account)
        if name not in risk.checker.accounts:
            raise HTTPException(status_code=404, detail=f"risk has never seen account {name!r}")
        return MsgspecResponse(risk.account_risk(name))

    @router.get("/state", response_class=MsgspecResponse)
    async def state() -> MsgspecResponse:
        """The global trading state and the accounts whose own state is not active."""
        checker = risk.checker
        return MsgspecResponse(
            {
                "global": checker.global_state,
                "accounts": {a.name: a.state for a in checker.accounts.values() if a.state.value != "active"},
            }
        )

    @router.post("/kill", response_class=MsgspecResponse, openapi_extra=body_openapi(app, KillSwitch))
    async def kill(request: Request) -> MsgspecResponse:
        """Set a trading state and (cancel_open, the default) cancel the open orders it covers. When this
        answers, every command risk takes from then on sees the new state and the cancels are stored."""
        cmd = await read_body(request, KillSwitch)
        try:
            return MsgspecResponse(await risk.kill(cmd))
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None

    @router.get("/limits", response_class=MsgspecResponse)
    async def limits() -> MsgspecResponse:
        """The limits in force: the file's, with the runtime changes applied."""
        return MsgspecResponse({"limits": risk.limits.as_data(), "runtime_changes": risk.overrides})

    @router.get("/limits/{account}", response_class=MsgspecResponse)
    async def account_limits(account: str) -> MsgspecResponse:
        """One account's limits as the checks see them, per symbol."""
        view = risk.limits.account(_account_name(account))
        if view is None:
            raise HTTPException(status_code=404, detail=f"account {account!r} is not configured")
        out: dict[str, Any] = {f: getattr(view, f) for f in AccountLimits.__struct_fields__ if f != "symbol"}
        out["symbol"] = {}
        for symbol in sorted(risk.instruments):
            sv = view.symbol(symbol)
            if sv is not None:
                out["symbol"][symbol] = {
                    "tradable": sv.tradable,
                    "max_order_qty": sv.max_order_qty,
                    "max_position": sv.max_position,
                    "collar_pct": float(sv.collar_pct * 100),
                    "collar_ticks": sv.collar_ticks,
                }
        return MsgspecResponse(out)

    async def _change(scope: str, request: Request) -> MsgspecResponse:
        change = await read_body(request, AccountLimits)
        operator = request.headers.get("x-operator", "")
        try:
            changes = await risk.change_limits(scope, change, operator)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return MsgspecResponse({"scope": scope, "changes": [list(c) for c in changes]})

    @router.put(
        "/limits/defaults", response_class=MsgspecResponse, openapi_extra=body_openapi(app, AccountLimits)
    )
    async def change_defaults(request: Request) -> MsgspecResponse:
        """Change [defaults]: only the fields given; audited on risk.audit (header X-Operator names who)."""
        return await _change("defaults", request)

    @router.put(
        "/limits/accounts/{account}",
        response_class=MsgspecResponse,
        openapi_extra=body_openapi(app, AccountLimits),
    )
    async def change_account(account: str, request: Request) -> MsgspecResponse:
        """Change one account's limits: only the fields given; audited on risk.audit."""
        return await _change(_account_name(account), request)

    app.include_router(router)
