"""The pre-trade checks: one function per command kind, pure (no I/O; time is an argument).

    checker = Checker(limits, market)
    verdict = checker.check_new(order, now)          # None: approved (and counted); else (reason, text)
    checker.check_replace(replace, now)
    checker.check_cancel(cancel)                     # cancels pass in every trading state

A new order passes these checks in this order; the first that fails is the answer:

    UNKNOWN_ACCOUNT          the account is not configured and unknown accounts are refused
    TRADING_HALTED           the account, or everyone, is halted
    UNKNOWN_SYMBOL / INSTRUMENT_NOT_TRADABLE
    QTY_NOT_POSITIVE / QTY_NOT_LOT_MULTIPLE / QTY_BELOW_MIN / MAX_ORDER_QTY
    PRICE_REQUIRED / PRICE_NOT_POSITIVE / PRICE_OFF_TICK          (limit orders)
    DUPLICATE_ORDER_ID       the client order id was used before by this account
    TRADING_REDUCING         the account (or everyone) is REDUCING and the order does not reduce
    REDUCE_ONLY              a reduce-only order that would not reduce the position
    NO_REFERENCE_PRICE       no mark for the collar (limit) or no opposite best price (market)
    PRICE_COLLAR             limit price further than collar_pct (or collar_ticks) from the reference
    MAX_NOTIONAL             price x quantity above the per-order notional
    MAX_OPEN_ORDERS
    MAX_POSITION             |position + every open order on the growing side + this one| too large
    MAX_GROSS_EXPOSURE / MAX_NET_EXPOSURE   (worst case, open orders counted as filled)
    BUYING_POWER             worst-case gross x margin_rate above credit_limit + today's P&L
    DAILY_LOSS_LIMIT         today's realised + unrealised P&L at or below -limit (reducing orders pass)
    RATE_LIMIT               the account's token bucket is empty (denied, not queued); an approved order
                             takes a token, a refused one does not

An order "reduces" when it is on the side opposite the position and, with every open order on its side
filled, the position would not go through zero. An approved order counts as open at once (before the
engine acknowledges it), so a burst cannot slip several orders through one limit.
"""

from __future__ import annotations

from decimal import Decimal

from nexus.messages import (
    CancelAll,
    CancelOrder,
    NewOrder,
    OrderType,
    Reason,
    ReplaceOrder,
    Side,
    TradingState,
)
from risk.limits import AccountView, Limits, SymbolView
from risk.positions import ZERO, Account, Holding, Market

Verdict = tuple[str, str] | None
"""None when approved; else (reason code, text for people)."""

_BUY = Side.BUY
_MARKET = OrderType.MARKET
_ACTIVE, _REDUCING, _HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take(now)` spends one if there is one."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self.tokens = self.burst
        self.last = now

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.last) * self.rate
        self.last = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class Trader:
    """What the checks keep per account besides its positions: resolved limits and rate buckets."""

    __slots__ = ("account", "limits", "limits_version", "modifies", "orders")

    def __init__(self, account: Account, limits: AccountView, version: int, now: float) -> None:
        self.account = account
        self.limits = limits
        self.limits_version = version
        self.orders = TokenBucket(limits.orders_per_sec, limits.order_burst, now)
        self.modifies = TokenBucket(limits.modifies_per_sec, limits.modify_burst, now)


class Checker:
    """Accounts, marks, limits and trading states; decides on each command."""

    def __init__(self, limits: Limits, market: Market | None = None) -> None:
        self.limits = limits
        self.market = market or Market()
        self.accounts: dict[str, Account] = {}
        self.traders: dict[str, Trader] = {}
        self.global_state = TradingState.ACTIVE
        self.rejects: dict[str, int] = {}
        self.approved_total = 0

    # -- accounts -------------------------------------------------------------------------------------

    def account(self, name: str) -> Account:
        acct = self.accounts.get(name)
        if acct is None:
            acct = self.accounts[name] = Account(name)
        return acct

    def trader(self, name: str, now: float) -> Trader | None:
        """The account's checks state, rebuilt when the limits changed; None for a refused account."""
        t = self.traders.get(name)
        version = self.limits.version
        if t is not None and t.limits_version == version:
            return t
        view = self.limits.account(name)
        if view is None:
            return None
        fresh = Trader(self.account(name), view, version, now)
        if t is not None:  # keep the buckets' levels across a limits change
            fresh.orders.tokens = min(t.orders.tokens, fresh.orders.burst)
            fresh.modifies.tokens = min(t.modifies.tokens, fresh.modifies.burst)
        self.traders[name] = fresh
        return fresh

    def state_of(self, acct: Account) -> TradingState:
        """The stricter of the account's and the global trading state."""
        g, a = self.global_state, acct.state
        if g is _HALTED or a is _HALTED:
            return _HALTED
        if g is _REDUCING or a is _REDUCING:
            return _REDUCING
        return _ACTIVE

    # -- the checks -----------------------------------------------------------------------------------

    def check_new(self, o: NewOrder, now: float) -> Verdict:
        """Decide on a new order; when it passes, count it as open and take a rate token."""
        verdict = self._check_new(o, now)
        if verdict is None:
            self.approved_total += 1
        else:
            self.rejects[verdict[0]] = self.rejects.get(verdict[0], 0) + 1
        return verdict

    def _check_new(self, o: NewOrder, now: float) -> Verdict:
        # The hot path: what a passing order costs is written out inline (no helper calls for checks
        # that pass); a failing check calls the helper that says why.
        t = self.traders.get(o.account)
        if t is None or t.limits_version != self.limits.version:
            t = self.trader(o.account, now)
            if t is None:
                return Reason.UNKNOWN_ACCOUNT, f"account {o.account!r} is not configured"
        acct, lim = t.account, t.limits
        state = acct.state
        g = self.global_state
        if g is not _ACTIVE or state is not _ACTIVE:
            state = self.state_of(acct)
            if state is _HALTED:
                return Reason.TRADING_HALTED, "trading is halted: new orders are refused, cancels pass"
        symbol = o.symbol
        sym = lim.symbols.get(symbol) or lim.symbol(symbol)
        if sym is None:
            return Reason.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}"
        if not sym.tradable:
            return Reason.INSTRUMENT_NOT_TRADABLE, f"{symbol} is not tradable"
        qty = o.qty
        if qty <= 0 or qty % sym.lot or qty < sym.min_qty or qty > sym.max_order_qty:
            return _qty_problem(qty, sym)
        price = o.price
        market = o.order_type is _MARKET
        if not market:
            if price is None:
                return Reason.PRICE_REQUIRED, "a limit order needs a price"
            if price <= 0 or price % sym.tick:
                return _price_problem(price, sym)
        coid = o.client_order_id
        if coid in acct.seen or coid in acct.orders:
            return Reason.DUPLICATE_ORDER_ID, f"client order id {coid!r} was already used"

        buy = o.side is _BUY
        h = acct.holdings.get(symbol)
        if h is None:
            reduces = False
        elif buy:
            pos = h.qty
            reduces = pos < 0 and pos + h.open_buy + qty <= 0
        else:
            pos = h.qty
            reduces = pos > 0 and pos - h.open_sell - qty >= 0
        if not reduces:
            if state is _REDUCING:
                return (
                    Reason.TRADING_REDUCING,
                    "trading is reducing-only: this order would not reduce the position",
                )
            if o.reduce_only:
                pos = h.qty if h is not None else ZERO
                return Reason.REDUCE_ONLY, f"reduce-only order would not reduce the {symbol} position ({pos})"

        mkt = self.market
        ref = mkt.marks.get(symbol)
        if market:
            best = mkt.asks.get(symbol) if buy else mkt.bids.get(symbol)
            if best is None:
                return Reason.NO_REFERENCE_PRICE, f"no {'ask' if buy else 'bid'} to price a market order"
            price = best
        elif ref is None:
            if lim.require_reference:
                return Reason.NO_REFERENCE_PRICE, f"no reference price for {symbol} yet"
        else:
            band = ref * sym.collar_pct
            if sym.collar_band > band:
                band = sym.collar_band
            if price > ref + band or price < ref - band:  # type: ignore[operator]
                return _collar_problem(price, ref, sym)  # type: ignore[arg-type]
        assert price is not None
        notional = price * qty
        cap = lim.max_notional
        if cap is not None and notional > cap:
            return Reason.MAX_NOTIONAL, f"notional {notional} above {cap}"
        if len(acct.orders) >= lim.max_open_orders:
            return (
                Reason.MAX_OPEN_ORDERS,
                f"{len(acct.orders)} open orders, the limit is {lim.max_open_orders}",
            )
        bad = self._exposure_problem(acct, lim, sym, symbol, buy, qty, h, ref or price, reduces)
        if bad is not None:
            return bad
        if not t.orders.take(now):
            return Reason.RATE_LIMIT, f"more than {lim.orders_per_sec:g} orders/s (burst {lim.order_burst})"
        acct.remember_id(coid)
        acct.add_order(coid, symbol, o.side, qty, o.price, o.reduce_only)
        return None

    def _exposure_problem(
        self,
        acct: Account,
        lim: AccountView,
        sym: SymbolView,
        symbol: str,
        buy: bool,
        qty: Decimal,
        h: Holding | None,
        mark: Decimal,
        reduces: bool,
    ) -> Verdict:
        """Position, gross/net exposure, buying power and daily loss with `qty` more on one side."""
        if h is None:
            long_q = short_q = ZERO
        else:
            long_q = h.qty + h.open_buy
            short_q = h.qty - h.open_sell
        if buy:
            long_q += qty
        else:
            short_q -= qty
        worst = max(abs(long_q), abs(short_q))
        if sym.max_position is not None and worst > sym.max_position and not reduces:
            return (
                Reason.MAX_POSITION,
                f"{symbol} position could reach {worst}, the limit is {sym.max_position}",
            )
        if acct.version != self.market.version:
            acct.refresh(self.market)
        old = acct.contrib.get(symbol)
        gross = acct.gross - (old[0] if old else ZERO) + worst * mark
        if lim.max_gross_exposure is not None and gross > lim.max_gross_exposure and not reduces:
            return (
                Reason.MAX_GROSS_EXPOSURE,
                f"gross exposure could reach {gross:.2f}, limit {lim.max_gross_exposure}",
            )
        added = qty * mark
        net = (
            max(abs(acct.net_long + added), abs(acct.net_short))
            if buy
            else max(abs(acct.net_long), abs(acct.net_short - added))
        )
        if lim.max_net_exposure is not None and net > lim.max_net_exposure and not reduces:
            return (
                Reason.MAX_NET_EXPOSURE,
                f"net exposure could reach {net:.2f}, limit {lim.max_net_exposure}",
            )
        pnl = acct.realised_today + acct.unrealised
        if lim.credit_limit is not None and not reduces:
            needed = gross * lim.margin_rate
            available = lim.credit_limit + pnl
            if needed > available:
                return Reason.BUYING_POWER, f"needs {needed:.2f} of buying power, {available:.2f} available"
        if lim.daily_loss_limit is not None and pnl <= -lim.daily_loss_limit and not reduces:
            return (
                Reason.DAILY_LOSS_LIMIT,
                f"today's P&L {pnl:.2f} is at the loss limit -{lim.daily_loss_limit}",
            )
        return None

    def check_replace(self, r: ReplaceOrder, now: float) -> Verdict:
        """Decide on a replace. One of an order risk does not know goes on (the engine answers it)."""
        verdict = self._check_replace(r, now)
        if verdict is not None:
            self.rejects[verdict[0]] = self.rejects.get(verdict[0], 0) + 1
        else:
            self.approved_total += 1
        return verdict

    def _check_replace(self, r: ReplaceOrder, now: float) -> Verdict:
        t = self.trader(r.account, now)
        if t is None:
            return Reason.UNKNOWN_ACCOUNT, f"account {r.account!r} is not configured"
        acct, lim = t.account, t.limits
        state = self.state_of(acct)
        if state is _HALTED:
            return Reason.TRADING_HALTED, "trading is halted: replaces are refused, cancels pass"
        order = acct.orders.get(r.orig_client_order_id)
        sym = lim.symbol(r.symbol)
        if order is None or sym is None:
            return None if t.modifies.take(now) else _rate_limited_modify(lim)
        if r.qty is not None:
            bad = _qty_problem(r.qty, sym)
            if bad is not None:
                return bad
        if r.price is not None:
            bad = _price_problem(r.price, sym)
            if bad is not None:
                return bad
            ref = self.market.marks.get(r.symbol)
            if ref is not None:
                bad = _collar_problem(r.price, ref, sym)
                if bad is not None:
                    return bad
        # A replace's quantity is the whole order (the engine leaves `qty - filled` open); order.qty is
        # what is open now.
        leaves = order.qty if r.qty is None else r.qty - order.cum
        grows = leaves > order.qty
        if state is _REDUCING and grows:
            return (
                Reason.TRADING_REDUCING,
                "trading is reducing-only: a replace may not increase the quantity",
            )
        price = r.price if r.price is not None else order.price
        qty = r.qty if r.qty is not None else order.cum + order.qty
        if price is not None:
            notional = price * qty
            if lim.max_notional is not None and notional > lim.max_notional:
                return Reason.MAX_NOTIONAL, f"notional {notional} above {lim.max_notional}"
        if grows:
            h = acct.holdings.get(r.symbol)
            mark = self.market.marks.get(r.symbol) or price or ZERO
            buy = order.side is _BUY
            bad = self._exposure_problem(acct, lim, sym, r.symbol, buy, leaves - order.qty, h, mark, False)
            if bad is not None:
                return bad
        if not t.modifies.take(now):
            return _rate_limited_modify(lim)
        return None

    def check_cancel(self, c: CancelOrder | CancelAll) -> Verdict:
        """Cancels reduce risk: they pass in every trading state (the engine answers unknown orders)."""
        return None


def _qty_problem(qty: Decimal, sym: SymbolView) -> Verdict:
    if qty <= 0:
        return Reason.QTY_NOT_POSITIVE, f"quantity {qty} must be > 0"
    if qty % sym.lot:
        return Reason.QTY_NOT_LOT_MULTIPLE, f"quantity {qty} is not a multiple of the lot {sym.lot}"
    if qty < sym.min_qty:
        return Reason.QTY_BELOW_MIN, f"quantity {qty} below the minimum {sym.min_qty}"
    if qty > sym.max_order_qty:
        return Reason.MAX_ORDER_QTY, f"quantity {qty} above the maximum {sym.max_order_qty}"
    return None


def _price_problem(price: Decimal, sym: SymbolView) -> Verdict:
    if price <= 0:
        return Reason.PRICE_NOT_POSITIVE, f"price {price} must be > 0"
    if price % sym.tick:
        return Reason.PRICE_OFF_TICK, f"price {price} is not on the tick {sym.tick}"
    return None


def _collar_problem(price: Decimal, ref: Decimal, sym: SymbolView) -> Verdict:
    band = ref * sym.collar_pct
    if sym.collar_band > band:
        band = sym.collar_band
    if abs(price - ref) > band:
        return Reason.PRICE_COLLAR, f"price {price} is more than {band:.8g} from the reference {ref}"
    return None


def _rate_limited_modify(lim: AccountView) -> Verdict:
    return Reason.RATE_LIMIT, f"more than {lim.modifies_per_sec:g} modifies/s (burst {lim.modify_burst})"
