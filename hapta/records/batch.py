"""records.batch: the shape of a batch's ops, the references between them, and the error that names the op that
failed. Pure: Records.batch (service.py) runs the ops, each through its single op's own path.

A reference is a value `{"$ref": n}` (that one key, an integer): the id of the record op n of the same batch
wrote (created, updated or deleted), as its reply says it. It may stand for an update's or a delete's `id` and for
any top-level value of `data`; within a batch every top-level data value of that shape is a reference (a JSON
field cannot store that literal object through a batch: use a single op). Only earlier ops may be referred to.
"""
from __future__ import annotations

import uuid
from typing import Any

from ..protocol.errors import BAD_REQUEST, HaptaError

REF = "$ref"


def reference(value: Any) -> int | None:
    """The op index `value` refers to, None when it is no reference; BAD_REQUEST for a malformed one."""
    if not isinstance(value, dict) or REF not in value:
        return None
    target = value[REF]
    if len(value) != 1 or isinstance(target, bool) or not isinstance(target, int):
        raise HaptaError(BAD_REQUEST, 'a reference is {"$ref": n} alone, n the index of an earlier op')
    return target


def check(ops: list[Any], batch_max: int) -> None:
    """Refuse, before anything runs, a batch that is too long, an op missing what it needs or carrying what it
    may not, and a reference to an op that is not earlier than the one making it."""
    if len(ops) > batch_max:
        raise HaptaError(BAD_REQUEST, f"a batch holds at most {batch_max} ops, not {len(ops)}",
                         details={"max": batch_max})
    for index, step in enumerate(ops):
        try:
            _check_step(index, step)
        except HaptaError as error:
            raise failed_at(index, step, error) from None


def _check_step(index: int, step: Any) -> None:
    if step.op == "create":
        if step.data is None or step.id is not None or step.version is not None:
            raise HaptaError(BAD_REQUEST, "a create takes data, and no id or version")
    elif step.op == "update":
        if step.id is None or step.data is None:
            raise HaptaError(BAD_REQUEST, "an update takes an id and data")
    elif step.id is None or step.data is not None:
        raise HaptaError(BAD_REQUEST, "a delete takes an id, and no data")
    if isinstance(step.id, dict) and reference(step.id) is None:
        raise HaptaError(BAD_REQUEST, 'an id is a string or {"$ref": n}')
    for value in [step.id, *(step.data or {}).values()]:
        target = reference(value)
        if target is not None and not 0 <= target < index:
            raise HaptaError(BAD_REQUEST, f"op {index} refers to op {target}: only an earlier op's id can be used",
                             details={"ref": target})


def _written_id(results: list[dict[str, Any]], target: int) -> Any:
    value = results[target]["id"]
    return str(value) if isinstance(value, uuid.UUID) else value


def resolve_id(value: Any, results: list[dict[str, Any]]) -> str:
    """An op's id, references replaced by the ids earlier ops' replies carry (checked earlier than the op)."""
    target = reference(value)
    return value if target is None else str(_written_id(results, target))


def resolve_data(data: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    resolved = {}
    for name, value in data.items():
        target = reference(value)
        resolved[name] = value if target is None else _written_id(results, target)
    return resolved


def failed_at(index: int, step: Any, error: HaptaError) -> HaptaError:
    """The batch's answer when op `index` failed: that op's own code, message (prefixed with where it failed),
    details and retry_after, and `details.index`."""
    return HaptaError(error.code, f"op {index} ({step.op} in {step.collection}) failed: {error.message}",
                      details={**(error.details or {}), "index": index}, retry_after=error.retry_after)
