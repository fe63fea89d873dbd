"""The running gateway: the app, its upstreams, and the one place where a request becomes a reply."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from .. import ops  # noqa: F401  (registers every op)
from ..auth.tokens import TokenSigner
from ..config import App
from ..models import Model, build_models
from ..ops.base import GUEST, OPS, Call, Peer, Principal
from ..protocol.codec import Request, error_reply, ok_reply
from ..protocol.errors import (BAD_REQUEST, INTERNAL, TIMEOUT, TOKEN_EXPIRED, UNAUTHENTICATED, UNAVAILABLE,
                               UNKNOWN_OP, HaptaError)
from ..query.schema import Schema
from ..rules.hooks import Hooks
from ..settings import Settings
from ..store import migrations
from ..store.postgres import create_pool, introspect

log = logging.getLogger("hapta.gateway")

# An upstream that does not answer is the client's cue to retry, not a bug of ours.
UPSTREAM_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                 asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


@dataclass
class Gateway:
    app: App
    settings: Settings
    pool: asyncpg.Pool
    schema: Schema
    models: dict[str, Model]
    hooks: Hooks
    signer: TokenSigner

    @classmethod
    async def start(cls, app: App, settings: Settings, dsn: str, app_dir: Path) -> "Gateway":
        pool = await create_pool(dsn)
        try:
            async with pool.acquire() as conn:
                await migrations.migrate(conn, app_dir / "migrations")
                await _install_triggers(conn, [c.name for c in app.collections])
                infos = await introspect(conn, [c.name for c in app.collections])
            schema, models = build_models(app, infos)
            hooks = Hooks.load(app_dir / "rules", set(models))
        except BaseException:
            await pool.close()
            raise
        return cls(app, settings, pool, schema, models, hooks, TokenSigner(settings.jwt_secret, app.access_token_ttl))

    async def close(self) -> None:
        await self.pool.close()

    async def dispatch(self, peer: Peer, request: Request) -> dict[str, Any]:
        """Serve one request; always return exactly one reply and never let an exception escape."""
        try:
            return ok_reply(request.id, await self._run(peer, request))
        except HaptaError as error:
            return error_reply(request.id, error)
        except asyncio.TimeoutError:
            return error_reply(request.id, HaptaError(TIMEOUT, "the database did not answer in time"))
        except UPSTREAM_DOWN:
            log.warning("upstream unavailable during %s", request.op)
            return error_reply(request.id, HaptaError(UNAVAILABLE, "the database is unavailable", retry_after=1.0))
        except Exception:
            # The traceback is for the operator; the client learns only that it was our fault. Never log args.
            log.exception("op %s failed", request.op)
            return error_reply(request.id, HaptaError(INTERNAL, "internal error"))

    async def _run(self, peer: Peer, request: Request) -> Any:
        spec = OPS.get(request.op)
        if spec is None:
            raise HaptaError(UNKNOWN_OP, f"unknown op {request.op[:64]!r}")
        principal = peer.principal
        if principal.expired():
            peer.principal = Principal(GUEST)
            if not spec.guest:
                raise HaptaError(TOKEN_EXPIRED, "the access token has expired; refresh or resume")
        elif principal.role == GUEST and not spec.guest:
            raise HaptaError(UNAUTHENTICATED, f"{request.op} needs auth.login, auth.resume or auth.anon first")
        if spec.args is None:
            args = None
        else:
            try:
                args = msgspec.convert(request.args, spec.args)
            except msgspec.ValidationError as exc:
                raise HaptaError(BAD_REQUEST, f"invalid args: {exc}") from None
        return await spec.handler(Call(self, peer, request.op), args)


async def _install_triggers(conn: asyncpg.Connection, tables: list[str]) -> None:
    """Keep updated/version current on every exposed table, whoever writes. Names come from config.py and
    are checked against the catalog before they reach SQL."""
    existing = {r["relname"] for r in await conn.fetch(
        "SELECT relname FROM pg_class WHERE relname = ANY($1::text[]) AND relkind = 'r' "
        "AND relnamespace = current_schema()::regnamespace", tables)}
    for table in tables:
        if table in existing and table.isidentifier():
            await conn.execute(f'CREATE OR REPLACE TRIGGER hapta_touch BEFORE UPDATE ON "{table}" '
                               f'FOR EACH ROW EXECUTE FUNCTION hapta.touch()')
