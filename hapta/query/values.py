"""Runtime values shared by both back ends, so SQL parameters and Python comparisons use the same data."""
from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping

from . import schema as s
from .ast import VAR_KINDS
from .errors import FilterError
from .kinds import in_utc


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 string as an aware datetime in UTC; naive times are taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError('invalid timestamp; use ISO-8601, e.g. "2024-05-01T12:00:00Z"') from None
    moment = in_utc(as_timestamp(value))
    if moment is None:
        raise FilterError("timestamp is out of range (years 1 to 9999, in UTC)")
    return moment


def as_timestamp(value: datetime | str) -> datetime:
    if isinstance(value, str):
        return parse_timestamp(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def var_value(variables: Mapping[str, Any], name: str) -> Any:
    """The value of `@name` as both back ends must see it. Missing variables are None (e.g. anonymous)."""
    value = variables.get(name)
    if value is None:
        return None
    if VAR_KINDS[name] == s.TIMESTAMP:
        return as_timestamp(value)
    if VAR_KINDS[name] == s.BOOL:
        return bool(value)
    return str(value)


def comparable(value: Any, kind: str) -> Any:
    """A record value in a form whose Python comparisons behave like PostgreSQL's for `kind`."""
    if value is None:
        return None
    if kind == s.TEXT:
        return str(value)  # also a uuid compared as text: str() gives PostgreSQL's uuid::text form
    if kind == s.UUID:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    if kind == s.TIMESTAMP:
        return as_timestamp(value)
    if kind == s.FLOAT:
        # PostgreSQL orders NaN above every number and equal to itself; Python's NaN compares false.
        number = float(value)
        return (True, 0.0) if math.isnan(number) else (False, number)
    return value
