"""Idempotent writes: the first answer to a write sent with an `idempotency_key`, kept in PostgreSQL
(hapta.idempotency, migration 0012) for 24 hours and given again to a retry of the same request, which writes
nothing.

The key is claimed inside the write's own transaction before anything is written, and the answer is stored in it
just before COMMIT: a crash can never leave a write without its answer nor an answer without its write, and a
failed write (rolled back) leaves nothing, so that its retry runs again. Two requests with the same key at once,
on any process or node: the second waits on the key's primary key until the first ends, then answers what the
first stored.

Keys are per principal: a user's are theirs (owner "user:<id>", guests signed in with auth.guest included), an
admin's are shared by every admin (owner "admin"). Anon principals share one identity between every anonymous
client, so no key of theirs could be told apart from another client's: they are refused (BAD_REQUEST).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from ..principal import ADMIN, USER, Principal
from ..protocol.errors import BAD_REQUEST, CONFLICT, HaptaError

TTL_HOURS = 24
# Arguments added to an op after keys were first stored: left out of the hash when not given, so that a request
# sent before they existed still matches its stored answer.
LATER_ARGS = ("publish",)
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


@dataclass(frozen=True, slots=True)
class Once:
    """One write sent with an idempotency key: whose key, the key, the op, and the hash of what it asks."""
    owner: str
    key: str
    op: str
    digest: bytes


def owner_of(principal: Principal) -> str:
    if principal.role == ADMIN:
        return "admin"
    if principal.role == USER and principal.user_id is not None:
        return f"user:{principal.user_id}"
    raise HaptaError(BAD_REQUEST, "idempotency_key needs a signed-in user or an admin: anon principals share one "
                     "identity, so their keys could collide; sign in (auth.guest) or send the write without it",
                     details={"field": "idempotency_key"})


def once(principal: Principal, op: str, args: Any) -> Once | None:
    """The Once for a write's args (an ops Struct with an `idempotency_key` field), None when it has no key. The
    hash covers the op and every argument but the key, with object keys sorted (the same data in another order
    is the same request)."""
    key = getattr(args, "idempotency_key", None)
    if key is None:
        return None
    asked = msgspec.to_builtins(args)
    asked.pop("idempotency_key", None)
    for name in LATER_ARGS:
        if asked.get(name) is None:
            asked.pop(name, None)
    digest = hashlib.sha256(_encode_sorted([op, asked])).digest()
    return Once(owner_of(principal), key, op, digest)


class Idempotency:
    """Claims, keeps and prunes the stored answers; every call runs on the write's own transaction."""

    @staticmethod
    async def claim(conn: asyncpg.Connection, once: Once) -> tuple[Any] | None:
        """Take the key for this transaction; None when it is ours now (new, or its old answer expired), else
        (the stored answer,). Waits while another transaction holds the key. A key stored for another request:
        CONFLICT, never that request's answer."""
        claimed = await conn.fetchval(f"""
            INSERT INTO hapta.idempotency (owner, key, op, request_hash) VALUES ($1, $2, $3, $4)
            ON CONFLICT (owner, key) DO UPDATE SET op = EXCLUDED.op, request_hash = EXCLUDED.request_hash,
                                                   reply = NULL, created = now()
              WHERE hapta.idempotency.created < now() - interval '{TTL_HOURS} hours'
            RETURNING true""", once.owner, once.key, once.op, once.digest)
        if claimed:
            return None
        # A statement of its own: its snapshot sees the row the claim waited for, committed since it started.
        row = await conn.fetchrow("SELECT op, request_hash, reply FROM hapta.idempotency "
                                  "WHERE owner = $1 AND key = $2", once.owner, once.key)
        if row is None or row["request_hash"] != once.digest or row["reply"] is None:
            raise HaptaError(CONFLICT, "idempotency key reused with a different request (keys are kept for "
                             f"{TTL_HOURS} h): use a new key for a new request",
                             details={"field": "idempotency_key"})
        return (msgspec.msgpack.decode(row["reply"]),)

    @staticmethod
    async def keep(conn: asyncpg.Connection, once: Once, reply: Any) -> None:
        """Store the answer of the claimed key, in MessagePack: it decodes to what encodes as the same reply on
        either subprotocol (timestamps stay timestamps)."""
        await conn.execute("UPDATE hapta.idempotency SET reply = $3 WHERE owner = $1 AND key = $2",
                           once.owner, once.key, msgspec.msgpack.encode(reply))

    @staticmethod
    async def prune(db: Any) -> int:
        """Forget answers past their 24 hours (the session sweep calls this)."""
        status = await db.execute(
            f"DELETE FROM hapta.idempotency WHERE created < now() - interval '{TTL_HOURS} hours'")
        return int(status.split()[-1])
