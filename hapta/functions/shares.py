"""How the function workers are shared between callers (App.functions.per_principal, ...): the functions kind's
`callers` (hapta.workers.kind.Caller), which the pool keeps (hapta.workers.pool: shares and turns)."""
from __future__ import annotations

from dataclasses import dataclass

from ..limits import address_key
from ..protocol.errors import UNAVAILABLE
from ..workers.kind import Caller
from ..workers.messages import Who


@dataclass(frozen=True, slots=True)
class Shares:
    """How many of a functions/ pool's workers one caller may hold at once (App.functions.per_principal, ...).

    A principal (a user; anon and guests: their address) and an address (every client behind it) each hold at most
    their share; webhooks together at most `http`, and each sending address `http_per_address` of that. The
    gateway's own work (@every ticks, @on changes) and admins have no cap: they take turns like everyone else."""
    per_principal: int
    per_address: int
    http: int
    http_per_address: int

    @classmethod
    def of(cls, size: int, per_principal: int | None = None, per_address: int | None = None,
           http: int | None = None, http_per_address: int | None = None) -> "Shares":
        """The shares of a pool of `size` workers; None: a principal half of them, an address three quarters,
        webhooks half and one webhook address a quarter (each at least one worker)."""
        principal = max(1, size // 2) if per_principal is None else per_principal
        webhooks = max(1, size // 2) if http is None else http
        shares = cls(principal, max(principal, size * 3 // 4) if per_address is None else per_address, webhooks,
                     max(1, min(webhooks, size // 4)) if http_per_address is None else http_per_address)
        if min(shares.per_principal, shares.per_address, shares.http, shares.http_per_address) < 1:
            raise ValueError("App.functions: the workers' shares (per_principal, per_address, http_workers, "
                             "http_per_address) must be >= 1")
        return shares

    def caller(self, who: Who) -> Caller:
        """Whom a call counts against, from who makes it: a webhook (`who.op` functions.http) by the address that
        sent it, whatever its function acts as; an admin, or the gateway's own schedules and change triggers, not
        at all; anyone else by their principal and their address."""
        address = address_key(who.address)
        if who.op == "functions.http":
            return Caller("w|" + address, (("http", self.http), ("w|" + address, self.http_per_address)), UNAVAILABLE)
        if who.role == "admin":
            return Caller("admin" if who.op == "functions.call" else "background")
        principal = f"p|user:{who.user_id}" if who.user_id else f"p|addr:{address}"
        return Caller(principal, ((principal, self.per_principal), ("a|" + address, self.per_address)))
