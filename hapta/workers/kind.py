"""What sets one kind of worker pool apart from another: hooks (hapta.hooks.service.HOOK_WORKERS) and functions
(hapta.functions.service.FUNCTION_WORKERS) run on the same pool, child loop and messages, each with its own Kind."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..isolation import keep_environ
from ..protocol.errors import RATE_LIMITED
from .messages import Who


@dataclass(frozen=True, slots=True)
class Caller:
    """Whom a call counts against in the pool. `turn`: the queue it waits in, taking turns with the others for a
    free worker; `shares`: (key, workers) pairs, the most calls the holders of each key run at once (and
    pool.WAITING_PER_SHARE times as many may wait); `refusal`: what a call past its share is answered (a socket's
    client RATE_LIMITED, a webhook UNAVAILABLE, i.e. HTTP 503 with Retry-After, which senders retry)."""
    turn: str
    shares: tuple[tuple[str, int], ...] = ()
    refusal: str = RATE_LIMITED


ANYONE = Caller("")   # a kind without shares (hooks): one queue, first come first served


def _as_is(report: Any) -> Any:
    return report


@dataclass(frozen=True)
class Kind:
    """One kind of worker.

    `name` names its processes (hapta-<name>) and its series in /metrics (`hapta_workers{pool=...}`); `noun` its
    log lines, written to `logger`, and errors ("hook worker 812 died", "the function workers are busy"); `program`
    is the module its workers import by name, after they have given up the gateway's powers and before they import
    the app's folder (its `program(folder, collections)` returns what workers.child.Runner runs); `read` turns what
    the workers reported when they started (Ready.report) into the pool's `table`; `label` names one call in
    errors and logs ("posts.before_create hook", "function x"). `environ` is which variables a worker starts with
    (an allowlist), `memory_limit` the bytes of address space each may map (None: no limit), and `callers` who a
    call counts against (None: nobody is capped, one queue)."""
    name: str
    noun: str
    program: str
    logger: str
    upstream: str                      # the `upstream` label of hapta_upstream_errors_total
    label: Callable[[str, str], str]   # (collection, name) -> "posts.before_create hook", "function x"
    read: Callable[[Any], Any] = _as_is
    environ: Callable[[str], bool] = field(default_factory=keep_environ)
    memory_limit: int | None = None
    callers: Callable[[Who], Caller] | None = None
