"""What clients write, checked against the catalog and turned into what asyncpg takes; what the database refuses,
turned into the client's error. Pure but for asyncpg's exception types."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import asyncpg

from ..access import missing_related
from ..auth.identity import InvalidIdentity, normalize_username
from ..models import AUTH_COLLECTION, Model
from ..protocol.errors import BAD_REQUEST, CONFLICT, VALIDATION_FAILED, HaptaError
from ..query.kinds import INT64, KINDS, Refused  # noqa: F401  (INT64: the ops' bounds on integers)


def invalid(field: str, message: str) -> HaptaError:
    return HaptaError(VALIDATION_FAILED, message, details={"field": field})


def coerce(model: Model, name: str, value: Any) -> Any:
    """Check a client's value against the column and convert it to what asyncpg expects."""
    column = model.info.columns[name]
    if value is None:
        if not column.nullable:
            raise invalid(name, f"{name} may not be null")
        return None
    kind = KINDS.get(column.kind)
    if kind is None:
        raise invalid(name, f"{name} cannot be written")
    try:
        return kind.accept(value)
    except Refused as refused:
        raise invalid(name, f"{name} {refused}") from None


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
