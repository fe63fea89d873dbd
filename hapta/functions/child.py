"""The functions' side of a worker process: importing functions/ (every module's functions the decorators of
hapta.functions marked) and running one call with its FunctionContext. hapta.workers.child imports this module by
name (FUNCTION_WORKERS.program) once the worker has given up the gateway's powers; the gateway runs none of it but
FunctionInfo, the form a declaration travels in.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import msgspec

from ..workers.api import SqlError
from ..workers.child import Runner
from ..workers.loading import LoadError, import_file, modules
from ..workers.messages import SQL_FAILED, Answer, Invoke, Publish, RunOp, Transaction
from .api import MARK, FunctionContext, OpError, RunLog

FunctionTable = dict[str, tuple[Callable[..., Any], Any]]   # name -> (the function, its Declared)


class FunctionInfo(msgspec.Struct, array_like=True):
    """What a function declares (hapta.functions.call, ...), as its worker reports it: who may call it, its
    deadline, the secrets it reads, its file, whether its ctx.records act as admin, and its triggers."""
    allow: str | None
    timeout: float
    secrets: list[str]
    file: str
    admin: bool = False
    triggers: list[tuple[str, str, str]] = []   # (kind, spec, option): hapta.functions.api.Declared.triggers


def program(folder: Path, collections: list[str]) -> "FunctionProgram":
    """What a function worker runs (hapta.workers.child calls it by name): the functions of functions/."""
    return FunctionProgram(load_functions(folder))


def load_functions(folder: Path) -> FunctionTable:
    """Import every functions/*.py (files starting with _ are helpers) and collect what @call marked."""
    found: FunctionTable = {}
    for path in modules(folder):
        module = import_file(path, "hapta_app_functions")
        for value in vars(module).values():
            declared = getattr(value, MARK, None)
            if declared is None or not callable(value):
                continue
            if declared.name in found and found[declared.name][0] is not value:
                raise LoadError(f"functions/{path.name}: a second function named {declared.name!r}")
            found[declared.name] = (value, declared)
    return found


def _file(function: Any) -> str:
    try:
        return Path(inspect.getfile(function)).name
    except (TypeError, OSError):
        return ""


class FunctionProgram:
    """The functions a worker imported (hapta.workers.child.Program), and one call of them."""

    def __init__(self, functions: FunctionTable):
        self.functions = functions

    def report(self) -> dict[str, FunctionInfo]:
        return {name: FunctionInfo(d.allow, d.timeout, list(d.secrets), _file(f), d.admin,
                                   [tuple(t) for t in d.triggers]) for name, (f, d) in self.functions.items()}

    def context(self, invoke: Invoke, link: Runner) -> FunctionContext:
        who, call = invoke.who, invoke.call

        async def ask(message: Any) -> Any:
            return _value(await link.ask(message))
        return FunctionContext(who.user_id, who.role, who.address, dict(invoke.secrets or {}),
                               log=RunLog(invoke.name), _sql=lambda query, *params: link.sql(call, query, params),
                               _op=lambda op, args: ask(RunOp(call, op, args)),
                               _publish=lambda channel, data: ask(Publish(call, channel, data)),
                               _transaction=lambda statements, publish: ask(Transaction(call, statements,
                                                                                        publish)))

    def logs(self, ctx: FunctionContext) -> list[str]:
        return ctx.log.lines   # type: ignore[attr-defined]   (a RunLog)

    def run(self, ctx: FunctionContext, invoke: Invoke, link: Runner) -> Any:
        return self.functions[invoke.name][0](ctx, *invoke.args)


def _value(reply: Answer) -> Any:
    """The gateway's answer to a function's request: its data, or the failure as the function sees it (SqlError for
    a transaction's statement, OpError with the gateway's code for the rest)."""
    if reply.code == SQL_FAILED:
        raise SqlError(reply.message or "the statement failed", reply.value)
    if reply.code is not None:
        raise OpError(reply.code, reply.message or "")
    return reply.value
