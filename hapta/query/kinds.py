"""The value kinds a column can hold, each in one row: everything the code knows about a kind, in one place. Pure.

A new kind is one more row here (and its tests): the database's data types that read as it, its SQL type for
casts, its TypeScript type, what the filter language may do with it (order, `~`, group, aggregate), how a client's
value is checked, and how a value that came through JSON (a trigger's payload, an id in a URL) is turned back into
what asyncpg gives for the column.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import msgspec

from ..protocol.codec import MAX_NESTING, nesting

TEXT, INT, FLOAT, BOOL, TIMESTAMP, JSON, UUID = "text", "int", "float", "bool", "timestamp", "json", "uuid"
INT64 = (-(2**63), 2**63 - 1)


def in_utc(moment: datetime) -> datetime | None:
    """The same instant in UTC, or None when that falls outside the years 1-9999 (`0001-01-01T00:00+14:00` is the
    year 0 in UTC): the range both Python and the database driver can carry."""
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        return None


class Refused(ValueError):
    """A client's value does not fit the kind; the message completes "<field> ..." ("must be a string")."""


@dataclass(frozen=True)
class Kind:
    name: str
    pg: str                              # the SQL type a parameter is cast to
    catalog: tuple[str, ...]             # information_schema data types that read as this kind
    typescript: str                      # what `hapta types` writes for it
    ordered: bool                        # < <= > >= in filters, keyset cursors
    textual: bool                        # `~` and string literals compare with it
    groupable: bool                      # records.aggregate may group by it
    aggregates: frozenset[str]           # the aggregate functions it takes (count takes anything)
    accept: Callable[[Any], Any]         # a client's value -> what asyncpg takes; Refused when it does not fit
    from_json: Callable[[Any], Any]      # a value that came through JSON -> what asyncpg gives for the column


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Refused("must be a string")
    if "\x00" in value:
        raise Refused("may not contain NUL characters")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused("must be an integer")
    if not INT64[0] <= value <= INT64[1]:
        raise Refused("is out of range")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Refused("must be a finite number")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Refused("must be true or false")
    return value


def _timestamp(value: Any) -> datetime:
    try:   # a datetime: a MessagePack timestamp, or a value a rule hook passed back
        moment = value if isinstance(value, datetime) else \
            msgspec.convert(value, datetime) if isinstance(value, str) else None
    except msgspec.ValidationError:
        moment = None
    if moment is None:
        raise Refused("must be an ISO 8601 timestamp")
    moment = in_utc(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
    if moment is None:
        raise Refused("is out of range (years 1 to 9999, in UTC)")
    return moment


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(value) if isinstance(value, str) else uuid.UUID(int=-1)
    except ValueError:
        raise Refused("must be a UUID") from None


def _json(value: Any) -> Any:
    if nesting(value) > MAX_NESTING:
        raise Refused(f"is nested more than {MAX_NESTING} levels deep")
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError):
        raise Refused("must be JSON data") from None
    return value


def _as_is(value: Any) -> Any:
    return value


def _text_from_json(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _timestamp_from_json(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _uuid_from_json(value: Any) -> Any:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _float_from_json(value: Any) -> Any:
    return float(value) if isinstance(value, (int, str)) else value


def _int_from_json(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


NUMERIC = frozenset({"sum", "avg", "min", "max"})
EXTREMES = frozenset({"min", "max"})

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind(TEXT, "text", ("text", "character varying", "character"), "string", ordered=True, textual=True,
         groupable=True, aggregates=EXTREMES, accept=_text, from_json=_text_from_json),
    Kind(INT, "int8", ("smallint", "integer", "bigint"), "number", ordered=True, textual=False, groupable=True,
         aggregates=NUMERIC, accept=_int, from_json=_int_from_json),
    Kind(FLOAT, "float8", ("real", "double precision", "numeric"), "number", ordered=True, textual=False,
         groupable=True, aggregates=NUMERIC, accept=_float, from_json=_float_from_json),
    Kind(BOOL, "bool", ("boolean",), "boolean", ordered=False, textual=False, groupable=True,
         aggregates=frozenset(), accept=_bool, from_json=_as_is),
    Kind(TIMESTAMP, "timestamptz", ("timestamp with time zone",), "string", ordered=True, textual=False,
         groupable=True, aggregates=EXTREMES, accept=_timestamp, from_json=_timestamp_from_json),
    Kind(UUID, "uuid", ("uuid",), "string", ordered=True, textual=True, groupable=True, aggregates=frozenset(),
         accept=_uuid, from_json=_uuid_from_json),
    Kind(JSON, "jsonb", ("jsonb", "json"), "unknown", ordered=False, textual=False, groupable=False,
         aggregates=frozenset(), accept=_json, from_json=_as_is),
)}

# The database's data types, as the catalog names them, and the kind each reads as (others are not exposed).
FROM_CATALOG = {data_type: kind.name for kind in KINDS.values() for data_type in kind.catalog}
PG_TYPES = {name: kind.pg for name, kind in KINDS.items()}
