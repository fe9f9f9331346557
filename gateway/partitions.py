"""Monthly partitions of the big tables on PostgreSQL (migration 056; docs/partitions.md).

raw_events is partitioned by received_ms and polls by opened_ms, one partition a calendar month
(UTC), named <table>_YYYYMM, plus <table>_default for a row whose month has no partition yet.
The owners (gateway/store.py for raw_events, gateway/derive.py for polls) call `ensure` with
their table: the gateway's worker does it every hour for the months from last month through
AHEAD_MONTHS ahead, so rows always land in their month's partition (a row that reached the
default partition is moved into its month when that month is created). SQLite keeps plain
tables: everything here does nothing there.
"""

import datetime as _dt
import re

AHEAD_MONTHS = 2  # months created ahead of now


def month_start_ms(year: int, month: int) -> int:
    """Epoch ms of the first instant of a calendar month (UTC)."""
    while month > 12:
        year, month = year + 1, month - 12
    while month < 1:
        year, month = year - 1, month + 12
    return int(_dt.datetime(year, month, 1, tzinfo=_dt.UTC).timestamp() * 1000)


def month_of(t_ms: int) -> tuple[int, int]:
    d = _dt.datetime.fromtimestamp(t_ms / 1000, _dt.UTC)
    return d.year, d.month


def month_label(t_ms: int) -> str:
    """YYYY-MM (UTC) of an instant."""
    return "%04d-%02d" % month_of(t_ms)


def parse_month(text: str) -> int:
    """ "YYYY-MM" -> epoch ms of its first instant (UTC); ValueError when it is no month."""
    parts = text.strip().split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or len(parts[0]) != 4:
        raise ValueError(text)
    year, month = int(parts[0]), int(parts[1])
    if not 1 <= month <= 12:
        raise ValueError(text)
    return month_start_ms(year, month)


def ensure(db, table: str, column: str, now_ms: int, ahead: int = AHEAD_MONTHS) -> int:
    """Create the partitions of `table` from the month before now_ms through `ahead` months
    after it (PostgreSQL; a no-op on SQLite). Returns how many were created."""
    year, month = month_of(now_ms)
    return ensure_range(db, table, column, month_start_ms(year, month - 1), month_start_ms(year, month + ahead))


def ensure_range(db, table: str, column: str, from_ms: int, to_ms: int) -> int:
    """Create the partitions of `table` for the months of from_ms through to_ms (PostgreSQL;
    rows of those months in the default partition move into them). Returns how many."""
    if db.dialect != "postgresql":
        return 0
    return int(db.scalar("SELECT rating_month_partitions(?, ?, ?, ?)", (table, column, from_ms, to_ms)) or 0)


_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


def range_of(bound: str) -> tuple[int, int] | None:
    """(from_ms, to_ms) of a partition bound as PostgreSQL prints it (None: DEFAULT)."""
    m = _BOUND.search(bound or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def listing(db, table: str) -> list[dict]:
    """[{"name", "bound", "rows" (estimate)}] of the partitions of `table` ([] on SQLite or when
    it is not partitioned), in name order."""
    if db.dialect != "postgresql":
        return []
    return db.query(
        "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound,"
        " GREATEST(c.reltuples, 0)::bigint AS rows FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass(?) ORDER BY c.relname",
        (table,),
    )
