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

The account-wide limits (gross and net exposure, buying power, daily loss) are checked in full only when
an order may not fit in the account's *room*: the worst-case exposure, at the marks, it can still add with
all of them holding. A full check measures the room (rounded down); each approved order takes its quantity
x mark out of it, which bounds what it adds to gross and to net exposure, so an order that fits passes all
of them; a fill, a new mark, new limits, an order that grows or a reducing order (it can make the short
side larger) forgets the room. So the answer is always the full check's, and most orders skip the
revaluation it needs.
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
from risk.limits import ROUND_DOWN, UNLIMITED, AccountView, Limits, SymbolView
from risk.positions import ZERO, Account, Holding, Market, OpenOrder

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
        """Refusals by reason (the service counts what it approves)."""

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
        fresh.account.room = None  # measured under the old limits
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
        """Decide on a new order; when it passes, count it as open and take a rate token.

        The hot path: what a passing order costs is written out inline (no helper calls for checks
        that pass); a failing check calls the helper that says why."""
        t = self.traders.get(o.account)
        if t is None or t.limits_version != self.limits.version:
            t = self.trader(o.account, now)
            if t is None:
                return self._refuse(Reason.UNKNOWN_ACCOUNT, f"account {o.account!r} is not configured")
        acct, lim = t.account, t.limits
        state = acct.state
        g = self.global_state
        if g is not _ACTIVE or state is not _ACTIVE:
            state = self.state_of(acct)
            if state is _HALTED:
                return self._refuse(
                    Reason.TRADING_HALTED, "trading is halted: new orders are refused, cancels pass"
                )
        symbol = o.symbol
        sym = lim.symbols.get(symbol) or lim.symbol(symbol)
        if sym is None:
            return self._refuse(Reason.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
        if not sym.tradable:
            return self._refuse(Reason.INSTRUMENT_NOT_TRADABLE, f"{symbol} is not tradable")
        qty = o.qty
        if qty < sym.least_qty or qty > sym.max_order_qty or qty % sym.lot:
            return self._refused(_qty_problem(qty, sym))
        price = o.price
        market = o.order_type is _MARKET
        if not market:
            if price is None:
                return self._refuse(Reason.PRICE_REQUIRED, "a limit order needs a price")
            if price <= ZERO or price % sym.tick:
                return self._refused(_price_problem(price, sym))
        coid = o.client_order_id
        if coid in acct.seen or coid in acct.seen_before or coid in acct.orders:
            return self._refuse(Reason.DUPLICATE_ORDER_ID, f"client order id {coid!r} was already used")

        buy = o.side is _BUY
        h = acct.holdings.get(symbol)
        if h is None:
            reduces = False
        elif buy:
            pos = h.qty
            reduces = pos < ZERO and pos + h.open_buy + qty <= ZERO
        else:
            pos = h.qty
            reduces = pos > ZERO and pos - h.open_sell - qty >= ZERO
        if not reduces:
            if state is _REDUCING:
                return self._refuse(
                    Reason.TRADING_REDUCING,
                    "trading is reducing-only: this order would not reduce the position",
                )
            if o.reduce_only:
                pos = h.qty if h is not None else ZERO
                return self._refuse(
                    Reason.REDUCE_ONLY, f"reduce-only order would not reduce the {symbol} position ({pos})"
                )

        mkt = self.market
        ref = mkt.marks.get(symbol)
        if market:
            best = mkt.asks.get(symbol) if buy else mkt.bids.get(symbol)
            if best is None:
                return self._refuse(
                    Reason.NO_REFERENCE_PRICE, f"no {'ask' if buy else 'bid'} to price a market order"
                )
            price = best
        elif ref is None:
            if lim.require_reference:
                return self._refuse(Reason.NO_REFERENCE_PRICE, f"no reference price for {symbol} yet")
        else:
            if sym.collar_at is not ref:  # the band around this mark, worked out once per mark
                sym.set_collar(ref)
            if price > sym.collar_high or price < sym.collar_low:  # type: ignore[operator]
                return self._refused(_collar_problem(price, ref, sym))  # type: ignore[arg-type]
        assert price is not None
        if market or qty > sym.notional_qty:  # within the band up to notional_qty passes (0 before a mark)
            bad = _notional_problem(price, qty, lim)
            if bad is not None:
                return self._refused(bad)
        if len(acct.orders) >= lim.max_open_orders:
            return self._refuse(
                Reason.MAX_OPEN_ORDERS, f"{len(acct.orders)} open orders, the limit is {lim.max_open_orders}"
            )
        left = None  # the room after this order, when it passes
        fits = False
        if not reduces:
            cap = sym.max_position
            if cap is not None:  # |long| or |short| above the cap (short <= position <= long)
                if h is None:
                    over = qty > cap
                elif buy:
                    over = h.qty + h.open_buy + qty > cap or h.qty - h.open_sell < sym.min_position
                else:
                    over = h.qty + h.open_buy > cap or h.qty - h.open_sell - qty < sym.min_position
                if over:
                    return self._refused(_position_problem(cap, symbol, buy, qty, h))
            # Account-wide limits: an order whose worst-case exposure fits in the room left after the
            # last full check passes them all; otherwise check in full (which also measures the room).
            room = acct.room
            if room is not None and ref is not None and acct.room_version == mkt.version:
                added = qty * ref
                if added <= room:
                    fits = True
                    left = room - added
            if not fits:
                bad, left = self._account_limits(acct, lim, symbol, buy, qty, h, ref or price)
                if bad is not None:
                    return self._refused(bad)
        bucket = t.orders  # (TokenBucket.take written out: this is the hot path)
        tokens = bucket.tokens + (now - bucket.last) * bucket.rate
        bucket.last = now
        if tokens > bucket.burst:
            tokens = bucket.burst
        if tokens < 1.0:
            bucket.tokens = tokens
            return self._refuse(
                Reason.RATE_LIMIT, f"more than {lim.orders_per_sec:g} orders/s (burst {lim.order_burst})"
            )
        bucket.tokens = tokens - 1.0
        # Count the order open at once and remember its id (Account.add_order and remember_id, for an
        # order whose id is new, written out: this is the hot path). The account's aggregates are left
        # to its next refresh: the room above stands in for them.
        seen = acct.seen
        seen.add(coid)
        if len(seen) >= acct.seen_memory:
            acct.seen_before, acct.seen = seen, set()
        acct.orders[coid] = OpenOrder(symbol, o.side, qty, o.price, o.reduce_only)
        if h is None:
            h = acct.holding(symbol)
        if buy:
            h.open_buy += qty
        else:
            h.open_sell += qty
        acct.version = -1
        # (no room after a reducing order: it passed without the limits, and can still move net exposure)
        acct.room = left
        if not fits:
            acct.room_version = mkt.version
        return None

    def _refuse(self, reason: str, text: str) -> Verdict:
        """Count a refusal; the verdict that says why."""
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        return reason, text

    def _refused(self, verdict: Verdict) -> Verdict:
        """Count a refusal a helper has explained."""
        assert verdict is not None
        return self._refuse(*verdict)

    def _account_limits(
        self,
        acct: Account,
        lim: AccountView,
        symbol: str,
        buy: bool,
        qty: Decimal,
        h: Holding | None,
        mark: Decimal,
    ) -> tuple[Verdict, Decimal | None]:
        """Gross and net exposure, buying power and daily loss with `qty` more on one side (valued at
        `mark`). Returns (the verdict, the room left after this order when it passes): how much more
        worst-case exposure, valued at the marks, the account can take with every one of these limits
        holding, rounded down."""
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
        if acct.version != self.market.version:
            acct.refresh(self.market)
        old = acct.contrib.get(symbol)
        gross = acct.gross - (old[0] if old else ZERO) + worst * mark
        room = UNLIMITED
        if lim.max_gross_exposure is not None:
            if gross > lim.max_gross_exposure:
                return (
                    Reason.MAX_GROSS_EXPOSURE,
                    f"gross exposure could reach {gross:.2f}, limit {lim.max_gross_exposure}",
                ), None
            room = lim.max_gross_exposure - gross
        added = qty * mark
        net = (
            max(abs(acct.net_long + added), abs(acct.net_short))
            if buy
            else max(abs(acct.net_long), abs(acct.net_short - added))
        )
        if lim.max_net_exposure is not None:
            if net > lim.max_net_exposure:
                return (
                    Reason.MAX_NET_EXPOSURE,
                    f"net exposure could reach {net:.2f}, limit {lim.max_net_exposure}",
                ), None
            room = min(room, lim.max_net_exposure - net)
        pnl = acct.realised_today + acct.unrealised
        if lim.credit_limit is not None:
            needed = gross * lim.margin_rate
            available = lim.credit_limit + pnl
            if needed > available:
                return (
                    Reason.BUYING_POWER,
                    f"needs {needed:.2f} of buying power, {available:.2f} available",
                ), None
            if lim.margin_rate > 0:  # (a rate of 0 needs nothing, whatever the exposure)
                room = min(room, ROUND_DOWN.divide(available - needed, lim.margin_rate))
        if lim.daily_loss_limit is not None and pnl <= -lim.daily_loss_limit:
            return (
                Reason.DAILY_LOSS_LIMIT,
                f"today's P&L {pnl:.2f} is at the loss limit -{lim.daily_loss_limit}",
            ), None
        return None, room

    def check_replace(self, r: ReplaceOrder, now: float) -> Verdict:
        """Decide on a replace. One of an order risk does not know goes on (the engine answers it)."""
        verdict = self._check_replace(r, now)
        if verdict is not None:
            self.rejects[verdict[0]] = self.rejects.get(verdict[0], 0) + 1
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
            more = leaves - order.qty
            if sym.max_position is not None:
                bad = _position_problem(sym.max_position, r.symbol, buy, more, h)
                if bad is not None:
                    return bad
            bad = self._account_limits(acct, lim, r.symbol, buy, more, h, mark)[0]
            if bad is not None:
                return bad
            acct.room = None  # approved to grow: its reports will count it
        if not t.modifies.take(now):
            return _rate_limited_modify(lim)
        return None

    def check_cancel(self, c: CancelOrder | CancelAll) -> Verdict:
        """Cancels reduce risk: they pass in every trading state (the engine answers unknown orders)."""
        return None


def _notional_problem(price: Decimal, qty: Decimal, lim: AccountView) -> Verdict:
    notional = price * qty
    if lim.max_notional is not None and notional > lim.max_notional:
        return Reason.MAX_NOTIONAL, f"notional {notional} above {lim.max_notional}"
    return None


def _position_problem(cap: Decimal, symbol: str, buy: bool, qty: Decimal, h: Holding | None) -> Verdict:
    """|position + every open order on the growing side + this one| above `cap`."""
    if h is None:
        worst = qty
    elif buy:
        worst = max(abs(h.qty + h.open_buy + qty), abs(h.qty - h.open_sell))
    else:
        worst = max(abs(h.qty + h.open_buy), abs(h.qty - h.open_sell - qty))
    if worst > cap:
        return Reason.MAX_POSITION, f"{symbol} position could reach {worst}, the limit is {cap}"
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
    if sym.collar_at is not ref:
        sym.set_collar(ref)
    if sym.collar_low <= price <= sym.collar_high:
        return None
    band = sym.collar_high - ref
    return Reason.PRICE_COLLAR, f"price {price} is more than {band:.8g} from the reference {ref}"


def _rate_limited_modify(lim: AccountView) -> Verdict:
    return Reason.RATE_LIMIT, f"more than {lim.modifies_per_sec:g} modifies/s (burst {lim.modify_burst})"
