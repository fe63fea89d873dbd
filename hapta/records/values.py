"""What clients write, checked against the catalog and turned into what asyncpg takes; what the database refuses,
turned into the client's error. Pure but for asyncpg's exception types."""
from __future__ import annotations

import math
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

import asyncpg
import msgspec

from ..access import missing_related
from ..auth.identity import InvalidIdentity, normalize_username
from ..models import AUTH_COLLECTION, Model
from ..protocol.codec import MAX_NESTING, nesting
from ..protocol.errors import BAD_REQUEST, CONFLICT, VALIDATION_FAILED, HaptaError
from ..query import schema as kinds
from ..query.values import in_utc

INT64 = (-(2**63), 2**63 - 1)


def invalid(field: str, message: str) -> HaptaError:
    return HaptaError(VALIDATION_FAILED, message, details={"field": field})


def coerce(model: Model, name: str, value: Any) -> Any:
    """Check a client's value against the column and convert it to what asyncpg expects."""
    column = model.info.columns[name]
    if value is None:
        if not column.nullable:
            raise invalid(name, f"{name} may not be null")
        return None
    kind = column.kind
    if kind == kinds.TEXT:
        if not isinstance(value, str):
            raise invalid(name, f"{name} must be a string")
        if "\x00" in value:
            raise invalid(name, f"{name} may not contain NUL characters")
        return value
    if kind == kinds.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, f"{name} must be an integer")
        if not INT64[0] <= value <= INT64[1]:
            raise invalid(name, f"{name} is out of range")
        return value
    if kind == kinds.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise invalid(name, f"{name} must be a finite number")
        return float(value)
    if kind == kinds.BOOL:
        if not isinstance(value, bool):
            raise invalid(name, f"{name} must be true or false")
        return value
    if kind == kinds.TIMESTAMP:
        try:   # a datetime: a MessagePack timestamp, or a value a rule hook passed back
            moment = value if isinstance(value, datetime) else \
                msgspec.convert(value, datetime) if isinstance(value, str) else None
        except msgspec.ValidationError:
            moment = None
        if moment is None:
            raise invalid(name, f"{name} must be an ISO 8601 timestamp")
        moment = in_utc(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
        if moment is None:
            raise invalid(name, f"{name} is out of range (years 1 to 9999, in UTC)")
        return moment
    if kind == kinds.UUID:
        try:
            return uuid.UUID(value) if isinstance(value, str) else uuid.UUID(int=-1)
        except ValueError:
            raise invalid(name, f"{name} must be a UUID") from None
    if kind == kinds.JSON:
        if nesting(value) > MAX_NESTING:
            raise invalid(name, f"{name} is nested more than {MAX_NESTING} levels deep")
        try:
            msgspec.json.encode(value)
        except (TypeError, ValueError):
            raise invalid(name, f"{name} must be JSON data") from None
        return value
    raise invalid(name, f"{name} cannot be written")


def record_key(model: Model, record_id: str) -> Any:
    """An id from the args (not from data): a malformed one is a bad request, not bad data."""
    try:
        return coerce(model, "id", record_id)
    except HaptaError:
        raise HaptaError(BAD_REQUEST, f"{record_id[:64]!r} is not a valid id for {model.name}") from None


def writable_data(model: Model, data: dict[str, Any]) -> dict[str, Any]:
    clean = {}
    for name, value in data.items():
        if name not in model.writable:
            reason = "is unknown" if name not in model.table.fields else "cannot be written"
            raise invalid(str(name)[:63], f"{str(name)[:63]} {reason} in {model.name}")
        clean[name] = coerce(model, name, value)
    if model.name == AUTH_COLLECTION and clean.get("username") is not None:
        try:   # held to the same rule as at auth.register
            clean["username"] = normalize_username(clean["username"])
        except InvalidIdentity as exc:
            raise invalid("username", str(exc)) from None
    return clean


@contextmanager
def database_refusals(model: Model, deleting: bool = False) -> Iterator[None]:
    """Constraint violations are the client's data not fitting: say which field, never the SQL."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        fields = list(model.info.uniques.get(exc.constraint_name or "", ()))
        what = ", ".join(fields) or "a unique field"
        raise HaptaError(CONFLICT, f"a record with this {what} already exists in {model.name}",
                         details={"fields": fields}) from None
    except asyncpg.ForeignKeyViolationError as exc:
        if deleting:
            raise HaptaError(CONFLICT, "other records still refer to this one") from None
        raise missing_related(model.info.foreign_keys.get(exc.constraint_name or "", "")) from None
    except asyncpg.NotNullViolationError as exc:
        raise invalid(exc.column_name or "", f"{exc.column_name} may not be null") from None
    except asyncpg.CheckViolationError as exc:
        fields = model.info.checks.get(exc.constraint_name or "", ())
        field = fields[0] if fields else ""
        raise invalid(field, f"{field or 'the record'} does not satisfy the collection's checks") from None
    except asyncpg.DataError as exc:
        field = getattr(exc, "column_name", None) or ""
        raise invalid(field, "a value does not fit its column") from None
