"""Live sockets follow their session: who is signed in on which connection, expiry notices, and revocation that
reaches every connection of a session in every process and on every node.

    bind(peer, principal)   the only way a connection's principal changes (auth ops call it)
    revoke(ids, reason)     marks sessions revoked in PostgreSQL, then NOTIFYs `hapta_sessions`
    on NOTIFY               each process closes its own connections of those sessions: event `auth.revoked`,
                            then close 1008 (the connection that asked, e.g. by auth.logout, is already a guest)

Expiry needs no message: each bound connection holds one timer that sends `auth.expiring` shortly before its
access token expires; after that the dispatcher answers TOKEN_EXPIRED until auth.refresh or auth.resume.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
from typing import Any, Awaitable, Callable

import msgspec
from websockets.frames import CloseCode

from ..principal import GUEST, Peer, Principal
from ..protocol.errors import MFA_REQUIRED
from ..store.listener import Listener
from ..store.failures import UPSTREAM_ERRORS
from . import mfa, oauth2
from .sessions import USER_COLUMNS, Sessions
from .tokens import TokenSigner

log = logging.getLogger("hapta.sessions")

CHANNEL = "hapta_sessions"
# Seconds before expiry that `auth.expiring` is sent (less for very short tokens: a third of their life).
EXPIRING_NOTICE = 60.0
SWEEP_EVERY = 600.0


class Revoked(msgspec.Struct):
    sessions: list[str]
    reason: str


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Revoked).decode


class SessionHub:
    def __init__(self, sessions: Sessions, signer: TokenSigner, listener: Listener):
        self.sessions = sessions
        self.signer = signer
        self.listener = listener
        # This process's address on the bus: an OAuth2 callback landing elsewhere finds its socket by it.
        self.address = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._by_session: dict[str, set[Peer]] = {}
        self._timers: dict[Peer, tuple[asyncio.TimerHandle, ...]] = {}
        self._watchers: list[Callable[[Peer], None]] = []
        self._oauth2_waiting: dict[int, Peer] = {}
        self._sweeper: asyncio.Task | None = None
        self._sweeps: list[Callable[[], Awaitable[Any]]] = []   # other upkeep on the same clock (also_sweep)
        self._tasks: set[asyncio.Task] = set()
        listener.add(CHANNEL, self._on_revoked)
        listener.add(oauth2.CHANNEL, self._on_oauth2)

    def also_sweep(self, sweep: Callable[[], Awaitable[Any]]) -> None:
        """Run `sweep` on the session sweep's clock (every SWEEP_EVERY s): one maintenance loop for the
        gateway's expiring rows, each sweep's failure its own."""
        self._sweeps.append(sweep)

    def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for timers in self._timers.values():
            for timer in timers:
                timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the connections of each session ---------------------------------------------------------------

    def watch(self, callback: Callable[[Peer], None]) -> None:
        """Call `callback(peer)` whenever a connection's principal changes or its access token expires: what was
        granted to the principal it had (channel memberships) is re-checked there."""
        self._watchers.append(callback)

    def bind(self, peer: Peer, principal: Principal) -> None:
        self.leave(peer)
        peer.principal = principal
        if principal.session_id is not None:
            self._by_session.setdefault(principal.session_id, set()).add(peer)
        if principal.expires_at is not None:
            self._schedule_notice(peer, principal.expires_at)
        self._changed(peer)

    def _changed(self, peer: Peer) -> None:
        for callback in self._watchers:
            try:
                callback(peer)
            except Exception:
                log.exception("a principal watcher failed")

    async def sign_in(self, peer: Peer, user: Any) -> dict[str, Any]:
        """Start a session for `user` on this connection and return the Session the client keeps."""
        user = {column: user[column] for column in USER_COLUMNS}
        session_id, refresh = await self.sessions.start(user["id"])
        return self.rolled(peer, user, session_id, refresh)

    def rolled(self, peer: Peer, user: dict[str, Any], session_id: str, refresh: str) -> dict[str, Any]:
        """A fresh access token for the session, bound to this connection; the Session the client keeps."""
        token, expires_at = self.signer.issue(user["id"], session_id)
        self.bind(peer, Principal.of_user(user, session_id, expires_at))
        return {"user": user, "token": token, "expires_at": expires_at, "refresh_token": refresh}

    def closed(self, peer: Peer) -> None:
        """The connection is gone: forget it everywhere. A sign-in it started can no longer finish: its state is
        dropped, so that a callback arriving later creates no account for a socket that is not there."""
        self.leave(peer)
        for number, waiting in list(self._oauth2_waiting.items()):
            if waiting is peer:
                del self._oauth2_waiting[number]
                task = asyncio.ensure_future(self._drop_oauth2_states(oauth2.Waiting(self.address, number)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _drop_oauth2_states(self, waiter: oauth2.Waiting) -> None:
        try:
            await self.sessions.db.execute("DELETE FROM hapta.oauth_states WHERE waiter = $1", str(waiter))
        except UPSTREAM_ERRORS as exc:   # the state expires by itself within minutes
            log.warning("could not drop the sign-in state of a closed socket (%s)", type(exc).__name__)

    def leave(self, peer: Peer) -> None:
        """The connection changed identity (or closed)."""
        for timer in self._timers.pop(peer, ()):
            timer.cancel()
        session_id = peer.principal.session_id
        if session_id is not None:
            peers = self._by_session.get(session_id)
            if peers is not None:
                peers.discard(peer)
                if not peers:
                    del self._by_session[session_id]

    def connections(self, session_id: str) -> int:
        return len(self._by_session.get(session_id, ()))

    def _schedule_notice(self, peer: Peer, expires_at: int) -> None:
        """Two timers: `auth.expiring` shortly before the token expires, and the expiry itself (watchers)."""
        loop = asyncio.get_running_loop()
        lead = min(EXPIRING_NOTICE, self.signer.ttl / 3)
        left = expires_at - self.signer.clock()   # expiry is the signer's clock's time
        self._timers[peer] = (loop.call_later(max(0.0, left - lead), self._notify_expiring, peer, expires_at),
                              loop.call_later(max(0.0, left) + 0.05, self._expired, peer, expires_at))

    def _notify_expiring(self, peer: Peer, expires_at: int) -> None:
        if peer.principal.expires_at == expires_at:
            peer.push("auth.expiring", {"expires_at": expires_at})

    def _expired(self, peer: Peer, expires_at: int) -> None:
        if peer.principal.expires_at == expires_at:
            self._changed(peer)

    # -- revocation across processes -------------------------------------------------------------------

    async def revoke(self, session_ids: list[str], reason: str) -> None:
        """Revoke in the database (the source of truth), then tell every process to close those connections."""
        revoked = await self.sessions.revoke(session_ids, reason)
        await self.announce(revoked, reason)

    async def announce(self, session_ids: list[str], reason: str) -> None:
        """Tell every process to close the connections of sessions already revoked in the database. Always after
        that write: a database gone meanwhile costs the notice, never the reply (the tokens of those sessions no
        longer resume or refresh, whatever the sockets heard)."""
        try:
            for batch in _batches(session_ids, reason):
                await self.listener.notify(self.sessions.db, CHANNEL, batch)
        except UPSTREAM_ERRORS as exc:
            log.warning("could not tell the sockets of %d ended sessions (%s)", len(session_ids), type(exc).__name__)

    def _on_revoked(self, payload: str) -> None:
        try:
            message = _decode(payload)
        except msgspec.DecodeError:
            log.warning("ignored a malformed session notification")
            return
        for session_id in message.sessions:
            for peer in list(self._by_session.get(session_id, ())):
                self.bind(peer, Principal(GUEST))
                peer.push("auth.revoked", {"reason": message.reason})
                peer.close(CloseCode.POLICY_VIOLATION, "session revoked")

    # -- OAuth2 sign-ins that finish in another process --------------------------------------------------

    def await_oauth2(self, peer: Peer) -> oauth2.Waiting:
        """Remember the socket that started a sign-in; the callback may land on any process."""
        number = id(peer)
        self._oauth2_waiting[number] = peer
        return oauth2.Waiting(self.address, number)

    def _on_oauth2(self, payload: str) -> None:
        try:
            outcome = msgspec.json.decode(payload, type=oauth2.Outcome)
            waiting = oauth2.Waiting.parse(outcome.waiter)
        except (msgspec.DecodeError, ValueError):
            log.warning("ignored a malformed oauth2 notification")
            return
        if waiting.process != self.address:
            return
        peer = self._oauth2_waiting.pop(waiting.connection, None)
        if peer is None:
            return   # the socket closed meanwhile; no session is started for nobody
        task = asyncio.ensure_future(self._finish_oauth2(peer, outcome))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _finish_oauth2(self, peer: Peer, outcome: oauth2.Outcome) -> None:
        if outcome.user_id is None:
            peer.push("auth.oauth2", {"error": {"code": outcome.error_code, "message": outcome.error_message}})
            return
        try:
            user = await self.sessions.db.fetchrow(
                f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE id = $1", outcome.user_id)
            if user is None:
                raise LookupError("user vanished")
            challenge = await mfa.challenge(self.sessions.db, user["id"])
            if challenge is not None:   # the provider is the first factor; the user's own second one still holds
                peer.push("auth.oauth2", {"error": {
                    "code": MFA_REQUIRED, "details": {"challenge": challenge},
                    "message": "a second factor is required: send auth.mfa.verify with this challenge"}})
                return
            peer.push("auth.oauth2", await self.sign_in(peer, user))
        except Exception as exc:
            log.warning("could not start the oauth2 session: %r", exc)
            peer.push("auth.oauth2", {"error": {"code": "UNAVAILABLE", "message": "could not start the session"}})

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            for sweep in [self.sessions.sweep, *self._sweeps]:
                try:
                    await sweep()
                except Exception as exc:   # a dead database must not end the sweeper; it tries again later
                    log.warning("sweep %s failed: %r", getattr(sweep, "__qualname__", "?"), exc)


def _batches(session_ids: list[str], reason: str) -> list[str]:
    """Notification payloads under PostgreSQL's size limit, however many sessions a user had."""
    payloads: list[str] = []
    step = 200   # 200 ids of 15 characters stay far below the 8000-byte limit
    for start in range(0, len(session_ids), step):
        payloads.append(_encode(Revoked(session_ids[start:start + step], reason[:200])).decode())
    return payloads
