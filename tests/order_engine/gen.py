"""A seeded random stream of order commands that exercises every rule (and every way to get it wrong)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal

from nexus.instruments import Instrument
from nexus.messages import (
    CancelAll,
    CancelOrder,
    NewOrder,
    OrderType,
    ReplaceOrder,
    Side,
    StpMode,
    TimeInForce,
)

D = Decimal

INSTRUMENTS = {
    "AAA": Instrument(
        symbol="AAA", tick=D("0.01"), lot=D("1"), min_qty=D("1"), max_qty=D("500"), ref_price=D("100")
    ),
    "BBB": Instrument(
        symbol="BBB", tick=D("0.5"), lot=D("0.1"), min_qty=D("0.2"), max_qty=D("40"), ref_price=D("2000")
    ),
    "HALT": Instrument(
        symbol="HALT", tick=D("1"), lot=D("1"), max_qty=D("10"), ref_price=D("50"), tradable=False
    ),
}
ACCOUNTS = ["acc1", "acc2", "acc3", "acc4", "acc5"]
STP_WEIGHTS = [
    (StpMode.CANCEL_NEWEST, 4),
    (StpMode.CANCEL_OLDEST, 2),
    (StpMode.CANCEL_BOTH, 1),
    (StpMode.DECREMENT, 2),
]


def commands(seed: int, n: int) -> Iterator[NewOrder | CancelOrder | ReplaceOrder | CancelAll]:
    """`n` commands; prices wander around a per-symbol mid so the books fill, cross and empty again."""
    rng = random.Random(seed)
    mids = {"AAA": 10_000, "BBB": 4_000}  # in ticks
    sent: list[tuple[str, str, str]] = []  # (account, coid, symbol) of new orders
    modes, weights = zip(*STP_WEIGHTS, strict=True)
    for i in range(n):
        account = rng.choice(ACCOUNTS)
        coid = f"c{i}"
        symbol = rng.choice(("AAA", "AAA", "BBB"))
        inst = INSTRUMENTS[symbol]
        if rng.random() < 0.02:
            mids[symbol] += rng.randint(-3, 3)
        side = rng.choice((Side.BUY, Side.SELL))
        # buyers lean below the mid and sellers above, so most orders rest and some cross
        lean = -2 if side is Side.BUY else 2
        price = (mids[symbol] + lean + rng.randint(-6, 6)) * inst.tick
        qty = rng.randint(1, 12) * inst.lot * (2 if symbol == "BBB" else 1)
        stp = rng.choices(modes, weights)[0]
        r = rng.random()
        if r < 0.36:
            yield NewOrder(
                account=account,
                client_order_id=coid,
                symbol=symbol,
                side=side,
                qty=qty,
                price=price,
                stp=stp,
                ts=i,
            )
        elif r < 0.42:
            yield NewOrder(
                account=account, client_order_id=coid, symbol=symbol, side=side, qty=qty, price=price,
                tif=TimeInForce.IOC, stp=stp, ts=i,
            )  # fmt: skip
        elif r < 0.46:
            yield NewOrder(
                account=account, client_order_id=coid, symbol=symbol, side=side, qty=qty * 2, price=price,
                tif=TimeInForce.FOK, stp=stp, ts=i,
            )  # fmt: skip
        elif r < 0.50:
            yield NewOrder(
                account=account, client_order_id=coid, symbol=symbol, side=side, qty=qty,
                order_type=OrderType.MARKET, tif=rng.choice(list(TimeInForce)), stp=stp, ts=i,
            )  # fmt: skip
        elif r < 0.56:
            yield NewOrder(
                account=account, client_order_id=coid, symbol=symbol, side=side, qty=qty, price=price,
                post_only=True, stp=stp, ts=i,
            )  # fmt: skip
        elif r < 0.76 and sent:
            acc, orig, sym = _pick(rng, sent, account)
            yield CancelOrder(account=acc, client_order_id=coid, symbol=sym, orig_client_order_id=orig, ts=i)
            continue
        elif r < 0.88 and sent:
            acc, orig, sym = _pick(rng, sent, account)
            tick, lot = INSTRUMENTS[sym].tick, INSTRUMENTS[sym].lot
            what = rng.random()
            new_price = None if what < 0.3 else (mids[sym] + rng.randint(-8, 8)) * tick
            new_qty = None if 0.3 <= what < 0.5 else rng.randint(1, 14) * lot * (2 if sym == "BBB" else 1)
            yield ReplaceOrder(
                account=acc, client_order_id=coid, symbol=sym, orig_client_order_id=orig, price=new_price,
                qty=new_qty, ts=i,
            )  # fmt: skip
            continue
        elif r < 0.89:
            yield CancelAll(
                account=account, client_order_id=coid, symbol=rng.choice((None, "_all", symbol)), ts=i
            )
            continue
        elif r < 0.94:
            yield _bad(rng, account, coid, symbol, side, qty, price, sent, i)
            continue
        else:
            yield NewOrder(
                account=account,
                client_order_id=coid,
                symbol=symbol,
                side=side,
                qty=qty,
                price=price,
                stp=stp,
                ts=i,
            )
        sent.append((account, coid, symbol))
        if len(sent) > 400:
            del sent[: len(sent) - 400]


def _pick(rng: random.Random, sent: list[tuple[str, str, str]], account: str) -> tuple[str, str, str]:
    acc, orig, sym = rng.choice(sent[-150:])
    r = rng.random()
    if r < 0.05:
        return acc, f"nope{rng.randint(0, 99)}", sym  # unknown order
    if r < 0.10:
        return account, orig, sym  # maybe another account's order
    if r < 0.12:
        return acc, orig, "BBB" if sym == "AAA" else "AAA"  # right order, wrong symbol
    return acc, orig, sym


def _bad(
    rng: random.Random,
    account: str,
    coid: str,
    symbol: str,
    side: Side,
    qty: Decimal,
    price: Decimal,
    sent: list[tuple[str, str, str]],
    i: int,
) -> NewOrder | CancelOrder:
    inst = INSTRUMENTS[symbol]
    kind = rng.randrange(12)
    base = {"account": account, "client_order_id": coid, "symbol": symbol, "side": side, "ts": i}
    if kind == 0:
        return NewOrder(**base, qty=qty, price=price + inst.tick / 2)  # off tick
    if kind == 1:
        return NewOrder(**base, qty=qty + inst.lot / 2, price=price)  # not a lot multiple
    if kind == 2:
        return NewOrder(**base, qty=D(0), price=price)
    if kind == 3:
        return NewOrder(**base, qty=-qty, price=price)
    if kind == 4:
        return NewOrder(**{**base, "symbol": "ZZZ"}, qty=qty, price=price)  # unknown symbol
    if kind == 5 and sent:
        acc, orig, sym = rng.choice(sent)
        return NewOrder(
            **{**base, "account": acc, "client_order_id": orig, "symbol": sym}, qty=qty, price=price
        )
    if kind == 6:
        return NewOrder(**base, qty=qty)  # limit without a price
    if kind == 7:
        return NewOrder(**base, qty=qty, price=price, order_type=OrderType.MARKET)  # market with a price
    if kind == 8:
        return NewOrder(**base, qty=inst.max_qty + inst.lot, price=price)
    if kind == 9:
        return NewOrder(**{**base, "symbol": "HALT"}, qty=D(1), price=D(50))
    if kind == 10:
        return NewOrder(**base, qty=qty, price=D("NaN"))
    return CancelOrder(account=account, client_order_id=coid, symbol=symbol, orig_client_order_id="", ts=i)
