"""Server functions: the API an app's functions/ modules use (docs/functions.md has the whole story).

    from hapta.functions import Deny, call

    @call(allow="@user.id != null", timeout=5, secrets=("STRIPE_KEY",))
    async def checkout(ctx, args):
        rows = await ctx.sql("SELECT count(*) AS n FROM posts WHERE author = $1", ctx.user_id)
        return {"posts": rows[0]["n"], "key_set": "STRIPE_KEY" in ctx.secrets}

A client calls it with `functions.call {name: "checkout", args: {...}}` and gets the return value (anything
msgspec can encode). `allow` is a rule over `@user` (None: admins only, "": anyone past the guest stage);
`timeout` is enforced by killing the worker; `secrets` are the only environment variables the function can read,
through `ctx.secrets` (the gateway's own are never among them). Functions run in worker processes of their own,
never in the gateway; `raise Deny("why")` refuses the call (RULE_DENIED).

This module is what app code imports (the pieces live in hapta.functions.api); the gateway's side is
hapta.functions.service, and each trigger's a module of its own (calls, schedule, changes, webhooks).
"""
from __future__ import annotations

from .api import (DEFAULT_TIMEOUT, Declared, Deny, FunctionContext, OpError, SqlError, call, every, hmac_valid, http,
                  on)

__all__ = ["DEFAULT_TIMEOUT", "Declared", "Deny", "FunctionContext", "OpError", "SqlError", "call", "every",
           "hmac_valid", "http", "on"]
