"""limits.status: where the caller stands against the limit of one op, without spending any of it."""
from __future__ import annotations

from typing import Annotated, Any, Mapping

import msgspec

from ..limits import Limiter, principal_key
from ..protocol.errors import BAD_REQUEST, HaptaError
from .base import Args, Call, op


class StatusArgs(Args):
    op: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]   # "records.create" or "records.create:posts"


class LimitOps:
    def __init__(self, limiter: Limiter, guest_ops: Mapping[str, bool]):
        self.limiter = limiter
        self.guest_ops = guest_ops   # every op: may a guest call it (then it counts per address)?

    @op("limits.status", StatusArgs)
    async def status(self, call: Call, args: StatusArgs) -> dict[str, Any]:
        """{limit, remaining, reset}: the burst, the requests that would pass right now, and the seconds until the
        full burst is back. An op nothing limits (or an admin, whom limits do not apply to) gets limit null."""
        limiter = self.limiter
        name, _, collection = args.op.partition(":")
        guest = self.guest_ops.get(name)
        if guest is None and name not in limiter.rates and args.op not in limiter.rates:
            raise HaptaError(BAD_REQUEST, f"no op or limit named {args.op[:64]!r}")
        decision = None
        if not call.principal.is_admin:
            who = principal_key(call.peer, by_address=bool(guest))
            decision = await limiter.status(name, who, collection=collection or None)
        if decision is None:
            return {"limit": None, "remaining": None, "reset": 0}
        return {"limit": decision.limit, "remaining": decision.remaining, "reset": decision.reset}
