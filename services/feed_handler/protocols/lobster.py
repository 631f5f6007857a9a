"""LOBSTER level-1 files (lobsterdata.com): a message CSV and an orderbook CSV, row for row.

message:    time (seconds after midnight, New York), event type, order id, size, price x 10000, direction
orderbook:  ask price, ask size, bid price, bid size after the message (dummy prices +-9999999999 = empty)

Events 4 (execution of a visible order), 5 (of a hidden order) and 6 (cross) are trades; the direction is
the resting order's side, so a buy trade executes a sell order: aggressor = the opposite side. A Quote is
produced whenever the top of book changes. Event 7 (halt) moves nothing.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feed_handler.errors import BadInput
from feed_handler.normalised import Quote, Trade
from feed_handler.protocols.base import Output
from nexus.messages import Side
from nexus.subjects import safe_symbol

_NAME = re.compile(r"(?P<symbol>[A-Za-z.]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_message_(?P<level>\d+)\.csv$")
_DUMMY = 9_999_999_999


def orderbook_path(message_path: str | Path) -> Path:
    p = Path(message_path)
    return p.with_name(p.name.replace("_message_", "_orderbook_"))


def is_lobster(path: str | Path) -> bool:
    return _NAME.search(Path(path).name) is not None and orderbook_path(path).is_file()


def _midnight_ns(date: str) -> int:
    try:
        tz = ZoneInfo("America/New_York")
    except ZoneInfoNotFoundError:  # no tz database: Nasdaq summer time is UTC-4
        from datetime import timezone

        tz = timezone(timedelta(hours=-4))  # type: ignore[assignment]
    midnight = datetime.fromisoformat(date).replace(tzinfo=tz)
    return int(midnight.timestamp()) * 1_000_000_000


def _price(raw: str) -> Decimal | None:
    value = int(raw)
    if abs(value) >= _DUMMY:
        return None
    return Decimal(value).scaleb(-4)


def read(path: str | Path, venue: str, out: Output, symbol: str = "") -> Iterator[tuple[int, Trade | Quote]]:
    """(event time ns, message) for every trade and every change of the top of book. Bad rows are
    reported to `out` and skipped. `ts_recv` of the messages is 0: the replay sets it."""
    p = Path(path)
    m = _NAME.search(p.name)
    if m is None:
        raise ValueError(f"{p.name}: not a LOBSTER message file name (SYMBOL_DATE_START_END_message_N.csv)")
    vs = symbol or m.group("symbol")
    sym = safe_symbol(vs)
    base = _midnight_ns(m.group("date"))
    top: tuple[object, ...] = ()
    with open(p, newline="") as fm, open(orderbook_path(p), newline="") as fb:
        for row, (msg, book) in enumerate(zip(csv.reader(fm), csv.reader(fb), strict=False), 1):
            raw = ",".join(msg) + " | " + ",".join(book)
            try:
                if len(msg) < 6 or len(book) < 4:
                    raise BadInput(
                        "missing_field", f"row {row}: {len(msg)} message / {len(book)} book columns"
                    )
                t_ns = base + int(Decimal(msg[0]) * 1_000_000_000)
                event = int(msg[1])
                if event in (4, 5, 6):
                    size = Decimal(msg[3])
                    price = _price(msg[4])
                    if size <= 0 or price is None or price <= 0:
                        raise BadInput("invalid_field", f"row {row}: trade size {size} price {msg[4]}")
                    direction = int(msg[5])
                    aggressor = None if event == 6 else (Side.BUY if direction == -1 else Side.SELL)
                    yield (
                        t_ns,
                        Trade(
                            venue=venue,
                            symbol=sym,
                            venue_symbol=vs,
                            seq=row,
                            ts_event=t_ns,
                            trade_id=str(row),
                            price=str(price),
                            size=str(size),
                            aggressor=aggressor,
                        ),
                    )
                ask, ask_sz, bid, bid_sz = (
                    _price(book[0]),
                    Decimal(book[1]),
                    _price(book[2]),
                    Decimal(book[3]),
                )
                if ask_sz < 0 or bid_sz < 0:
                    raise BadInput("negative_size", f"row {row}: book sizes {bid_sz}/{ask_sz}")
                if bid is not None and ask is not None and bid >= ask:
                    raise BadInput("crossed_quote", f"row {row}: bid {bid} >= ask {ask}")
                now_top = (bid, bid_sz, ask, ask_sz)
                if now_top != top:
                    top = now_top
                    yield (
                        t_ns,
                        Quote(
                            venue=venue,
                            symbol=sym,
                            venue_symbol=vs,
                            seq=row,
                            ts_event=t_ns,
                            bid_px=None if bid is None else str(bid),
                            bid_sz=str(bid_sz) if bid is not None else "0",
                            ask_px=None if ask is None else str(ask),
                            ask_sz=str(ask_sz) if ask is not None else "0",
                        ),
                    )
            except BadInput as exc:
                out.bad_input(exc, raw)
            except (ValueError, ArithmeticError) as exc:
                out.bad_input(BadInput("invalid_field", f"row {row}: {exc}"), raw)
