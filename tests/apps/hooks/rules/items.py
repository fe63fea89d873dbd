"""Hooks for the hooks tests: the record's `action` picks what before_create does (tests/hooks/test_hooks.py)."""
import asyncio
import os
import random
import time
from datetime import timedelta

from hapta.rules import Deny


async def before_create(ctx, data):
    action, text = data.get("action"), data.get("text", "")
    if action == "edit":
        return {**data, "text": text.strip().upper(), "tag": "edited"}
    if action == "deny":
        raise Deny("items may not say that")
    if action == "hang":
        time.sleep(60)   # blocks the whole worker, as a stuck call into C would
    if action == "exit":
        os._exit(3)
    if action == "raise":
        raise ValueError("a bug in the hook")
    if action == "hold":
        # Slow for exactly as long as the test wants: until it creates a `plain` record with this text.
        while not await ctx.sql("SELECT 1 FROM plain WHERE text = $1", text):
            await asyncio.sleep(0.005)
        return {**data, "tag": "released"}
    if action == "echo":
        await asyncio.sleep(random.random() / 500)   # let calls finish out of order
        return {**data, "text": text[::-1], "tag": str(os.getpid())}
    if action == "whoami":
        return {**data, "text": f"{ctx.role} {ctx.op} {ctx.collection} {ctx.user_id} {ctx.address}"}
    if action == "environ":
        # What the process was started with, not just os.environ: /proc shows the environment the exec passed.
        with open("/proc/self/environ", "rb") as file:
            return {**data, "text": file.read().replace(b"\0", b"\n").decode(errors="replace")}
    if action == "later":
        return {**data, "due": data["due"] + timedelta(days=1)}   # a datetime in, a datetime out
    if action == "odd":
        return {"a", "set"}   # cannot travel back to the gateway
    return None


async def before_update(ctx, record, changes):
    # The row is locked by the write's own transaction: only SQL inside that transaction can touch it at once.
    await ctx.sql("UPDATE items SET tag = $2 WHERE id = $1", record["id"], "touched in the transaction")
    if changes.get("action") == "slow-sql":
        await ctx.sql("SELECT pg_sleep(30)")
    return changes


def before_delete(ctx, record):   # a plain function: hooks may be either
    if record["action"] == "keep":
        raise Deny("this item is kept")
