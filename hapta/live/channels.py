"""Channels with presence: typing indicators, online status, rooms, things that are not records.

Who may join a channel is decided by a rule in config.py (access/channels.py).

Every process keeps its own members (connections) and shares the rest: membership in PostgreSQL's UNLOGGED table
hapta.presence (so a joiner learns who is there, on any process or node), and joins, leaves and messages as
notices on a bus (bus.py: NOTIFY `hapta_channels`, or Redis pub/sub with REDIS_URL), so that every process tells
its own members. A process heartbeats in
hapta.live_processes; one that stops (killed, cut off) is reaped by the others after PROCESS_TIMEOUT, with leave
events for its members.

A message may also wait for a transaction (records.batch's `publish`, a function's ctx.transaction): checked now as
channels.publish or ctx.publish checks it (`hold`, `hold_from_server`), then written into the change inbox by that
transaction (`Held.write`), so that it goes out only if the transaction commits, after its changes, through the
change feed rather than the bus (feed.py; docs/realtime.md says why).

Where a channel's pattern names presence fields (`Channel(rule, presence=("username",))`), a member carries them:
read from its users record when it joins, they travel with its join notice as the record holds them, and every
process shows each of its members the profile that reader may see (access/presence.py), in join answers and join
events alike. Leaves and messages carry none: a member is known by its id.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Callable

import asyncpg
import msgspec

from .. import metrics
from ..principal import GUEST, Peer, Principal
from ..protocol.codec import MAX_NESTING, nesting
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, TOO_LARGE, HaptaError
from ..store.failures import UPSTREAM_ERRORS
from ..store.postgres import Database
from ..access.channels import NAME, compile_rules, presence_of
from ..access.presence import Profiles
from ..config import ConfigError
from ..models import AUTH_COLLECTION, Model
from ..query.sql import quote
from .bus import BusDown, PostgresBus, RedisBus
from .events import event
from .feed import typed

log = logging.getLogger("hapta.channels")

HEARTBEAT = 5.0            # seconds between a process's "still here"
PROCESS_TIMEOUT = 20.0     # seconds of silence after which a process's members are gone
GONE_KEPT = 600.0          # seconds a leave is kept for rejoins that ask what changed since their version
ALIVE = "process IN (SELECT id FROM hapta.live_processes WHERE seen > now() - make_interval(secs => $2))"

class Notice(msgspec.Struct, frozen=True, omit_defaults=True):
    k: str                      # "join" | "leave" | "msg"
    c: str                      # channel
    m: str                      # member id
    u: str | None = None        # user id
    r: str | None = None        # role
    d: Any = None               # message data
    p: dict[str, Any] | None = None   # a join's: the columns of its users record that presence shows and judges by


SERVER = "server"   # the member id and role of what the server itself publishes (no member has it: ids are random)
HELD_MAX = 16       # messages one transaction may publish when it commits (records.batch's `publish`, ctx.transaction)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Notice).decode


def _member(member: str, user: str | None, role: str | None) -> dict[str, Any]:
    return {"id": member, "user": user, "role": role}


def _usable(known: str | None, head: Any) -> int | None:
    """The version number in `known` ("<epoch>.<n>", from an earlier answer) if the difference since it can be
    told: the same epoch, not in the future, not older than the leaves still kept."""
    if known is None or head is None:
        return None
    epoch, _, number = known.partition(".")
    if epoch != head["epoch"] or not number.isdigit():
        return None
    since = int(number)
    return since if head["pruned"] <= since <= head["version"] else None


# Leaves older than $1 seconds are forgotten; their channel remembers how far (a rejoin from before gets everyone).
PRUNE_GONE = """
WITH gone AS (DELETE FROM hapta.presence_gone WHERE at < now() - make_interval(secs => $1) RETURNING channel, version)
UPDATE hapta.channel_versions v SET pruned = greatest(v.pruned, g.version)
  FROM (SELECT channel, max(version) AS version FROM gone GROUP BY channel) g
 WHERE v.channel = g.channel
"""


def channel_name(channel: str) -> str:
    if not NAME.fullmatch(channel):
        raise HaptaError(BAD_REQUEST, "a channel name is 1-128 of A-Z a-z 0-9 _ . @ : -")
    return channel


@dataclass(frozen=True)
class Held:
    """Channel messages, checked, that go out only if the transaction that writes them commits: their notices as
    the bus would carry them."""
    notices: tuple[str, ...] = ()

    async def write(self, conn: asyncpg.Connection) -> None:
        """Into the change inbox, in `conn`'s transaction, after whatever it wrote so far (hapta.publish_messages,
        0016_channel_messages.sql): numbered after those changes when it commits, gone with it when it does not."""
        if self.notices:
            await conn.execute("SELECT hapta.publish_messages($1::text[])", list(self.notices))


def publish_failed(index: int, channel: str, error: HaptaError) -> HaptaError:
    """A transaction's answer when its publish entry `index` was refused: that refusal's code, message (prefixed
    with which entry) and details, with `details.publish` = index (as a batch's failed op has `details.index`)."""
    return HaptaError(error.code, f"publish {index} (to {channel[:128]}) failed: {error.message}",
                      details={**(error.details or {}), "publish": index}, retry_after=error.retry_after)


class Channels:
    def __init__(self, rules: dict[str, Any], db: Database, bus: PostgresBus | RedisBus,
                 on_missed: Callable[[], None] = lambda: None,
                 out: Callable[[Peer, Any], None] = lambda peer, frame: peer.deliver(frame),
                 users: Model | None = None, users_hooked: bool = False):
        """`users`: the users collection's model, which presence fields are read from; `users_hooked`: it has a
        before_send hook, which presence (judged in the gateway, for every reader of every join) cannot run."""
        self.rules = compile_rules(rules)
        # the profiles of each distinct presence, checked at start
        self.profiles: dict[tuple[str, ...], Profiles] = {}
        for pattern, entry in zip(rules, self.rules):
            if entry.presence and entry.presence not in self.profiles:
                where = f"App.channels[{pattern!r}]"
                if users_hooked:
                    raise ConfigError(f"{where}.presence: {AUTH_COLLECTION} has a before_send hook, which presence "
                                      f"cannot run; shape what members carry with guards instead")
                self.profiles[entry.presence] = Profiles(users, entry.presence, where)
        self.carried: dict[tuple[Peer, str], dict[str, Any] | None] = {}   # (connection, channel) -> its Notice.p
        self.db = db
        self.bus = bus
        self.on_missed = on_missed
        self.out = out   # how an event reaches a member's connection (Realtime.out: with its transaction's others)
        self.process = secrets.token_hex(6)
        self.local: dict[str, dict[str, Peer]] = {}        # channel -> member -> connection
        self.by_peer: dict[Peer, dict[str, str]] = {}      # connection -> channel -> its member id
        self.identities: dict[Peer, tuple[str | None, str]] = {}   # connection -> (user, role) it joined as
        self.numbers: dict[Peer, int] = {}
        self.counter = 0
        self.heartbeat: asyncio.Task | None = None
        self.tasks: set[asyncio.Task] = set()

    # ---- lifecycle ----

    async def start(self) -> None:
        await self.bus.start(self.notified, self.on_missed)
        await self._beat()
        self.heartbeat = asyncio.ensure_future(self._heartbeat())

    async def close(self) -> None:
        if self.heartbeat:
            self.heartbeat.cancel()
            await asyncio.gather(self.heartbeat, return_exceptions=True)
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        try:   # tell the others now rather than after PROCESS_TIMEOUT
            async with self.db.acquire(timeout=2) as conn:
                gone = await conn.fetch("SELECT * FROM hapta.presence_leave(NULL, NULL, $1)", [self.process])
                await conn.execute("DELETE FROM hapta.live_processes WHERE id = $1", self.process)
            await self._send_leaves(gone)
        except (*UPSTREAM_ERRORS, BusDown) as exc:
            log.warning("could not withdraw this process's channel members: %r", exc)
        await self.bus.close()

    async def _beat(self) -> None:
        await self.db.execute("INSERT INTO hapta.live_processes (id) VALUES ($1) "
                                "ON CONFLICT (id) DO UPDATE SET seen = now()", self.process)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._beat()
                await self._reap()
                await self.db.execute(PRUNE_GONE, GONE_KEPT)
            except (*UPSTREAM_ERRORS, BusDown) as exc:
                log.warning("channel heartbeat failed: %r", exc)

    async def _reap(self) -> None:
        """Remove the members of processes that stopped heartbeating, with leave events."""
        gone: list = []
        async with self.db.acquire() as conn, conn.transaction():
            dead = await conn.fetch("DELETE FROM hapta.live_processes WHERE seen < now() - make_interval(secs => $1) "
                                    "RETURNING id", PROCESS_TIMEOUT)
            if dead:
                gone = await conn.fetch("SELECT * FROM hapta.presence_leave(NULL, NULL, $1)",
                                        [r["id"] for r in dead])
        await self._send_leaves(gone)

    async def _send_leaves(self, rows: list) -> None:
        await self._send([Notice("leave", r["channel"], r["member"], r["user_id"], r["role"]) for r in rows])

    async def _send(self, notices: list[Notice]) -> None:
        """After the membership change committed: tell every process (this one too)."""
        await self.bus.send([_encode(notice).decode() for notice in notices])

    async def restore(self) -> None:
        """After the database came back: put our members back where they may have been reaped."""
        await self._beat()
        for peer, channels in list(self.by_peer.items()):
            for channel, member in channels.items():
                principal = peer.principal
                added = await self.db.fetchval("SELECT hapta.presence_join($1, $2, $3, $4, $5)",
                                               channel, member, self.process, principal.user_id, principal.role)
                if added:
                    await self._send([self._joined(channel, member, principal.user_id, principal.role,
                                                   self.carried.get((peer, channel)))])

    async def everyone(self, per_channel: int) -> list[dict[str, Any]]:
        """Every channel with members, across processes and nodes (presence is in PostgreSQL), at most
        `per_channel` members each, the longest present first: [{name, members: [{member, user, role, joined}]}]."""
        rows = await self.db.fetch("""
            SELECT channel, member, user_id, role, joined,
                   row_number() OVER (PARTITION BY channel ORDER BY joined) AS n
            FROM hapta.presence ORDER BY channel, joined""")
        found: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            members = found.setdefault(row["channel"], [])
            if row["n"] <= per_channel:
                members.append({"member": row["member"], "user": row["user_id"], "role": row["role"],
                                "joined": row["joined"]})
        return [{"name": name, "members": members} for name, members in found.items()]

    # ---- ops ----

    def joined(self, peer: Peer) -> int:
        return len(self.by_peer.get(peer, ()))

    def member_of(self, peer: Peer, channel: str) -> str | None:
        return self.by_peer.get(peer, {}).get(channel)

    async def join(self, peer: Peer, channel: str, known: str | None = None) -> dict[str, Any]:
        """Join (again: harmless) and say who is there: everyone, or, given the `version` of an earlier answer
        that can still be answered, only who joined and who left since."""
        member = self.member_of(peer, channel)
        principal = peer.principal
        if member is None:
            number = self.numbers.get(peer)
            if number is None:
                self.counter += 1
                number = self.numbers[peer] = self.counter
            member = f"{self.process}:{number}"
            self.by_peer.setdefault(peer, {})[channel] = member
            self.identities[peer] = (principal.user_id, principal.role)
            self.local.setdefault(channel, {})[member] = peer
            metrics.CHANNEL_MEMBERS.inc()
            try:
                profiles = self._profiles(channel)
                carried = None
                if profiles is not None and principal.user_id is not None:
                    carried = (await self._users(self.db, profiles, [principal.user_id])).get(principal.user_id)
                self.carried[(peer, channel)] = carried
                await self.db.execute("SELECT hapta.presence_join($1, $2, $3, $4, $5)",
                                      channel, member, self.process, principal.user_id, principal.role)
            except BaseException:
                self._forget(peer, channel)
                raise
            try:
                await self._send([self._joined(channel, member, principal.user_id, principal.role, carried)])
            except BusDown as exc:   # joined all the same: the others see it in the member list
                log.warning("could not announce a join: %s", exc)
        return {"channel": channel, "member": member, **await self._presence(channel, known, principal)}

    def _profiles(self, channel: str) -> Profiles | None:
        presence = presence_of(self.rules, channel)
        return self.profiles[presence] if presence else None

    def _joined(self, channel: str, member: str, user: str | None, role: str | None,
                carried: dict[str, Any] | None) -> Notice:
        """A join's notice, with what its profile is shown from, where that fits on the bus (a profile too large to
        travel reaches the other members as none; their next join answer has it)."""
        notice = Notice("join", channel, member, user, role, p=carried)
        if carried is not None and len(_encode(notice)) > self.bus.limit:
            log.warning("a presence profile of %s is too large for the bus; the join is announced without it", user)
            notice = Notice("join", channel, member, user, role)
        return notice

    @staticmethod
    async def _users(conn: Any, profiles: Profiles, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The users records of `ids` (those that exist), the columns their profiles are shown and judged by."""
        if not ids:
            return {}
        columns = ", ".join(quote(name) for name in profiles.columns)
        rows = await conn.fetch(f"SELECT {columns} FROM {quote(AUTH_COLLECTION)} WHERE id = ANY($1)", ids)
        return {row["id"]: dict(row) for row in rows}

    async def _presence(self, channel: str, known: str | None, reader: Principal) -> dict[str, Any]:
        """{version, members} or, from a usable `known` version, {version, since, joined, left}: read in one
        snapshot, so that the version names exactly the joins and leaves the answer reflects. Where the channel
        has presence fields, the members there carry the profiles `reader` may see, read in that snapshot too."""
        profiles = self._profiles(channel)
        async with self.db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            head = await conn.fetchrow("SELECT epoch, version, pruned FROM hapta.channel_versions "
                                       "WHERE channel = $1", channel)
            version = f"{head['epoch']}.{head['version']}" if head else "0"
            since = _usable(known, head)
            if since is None:
                rows = await conn.fetch(f"SELECT member, user_id, role FROM hapta.presence WHERE channel = $1 "
                                        f"AND {ALIVE} ORDER BY since", channel, PROCESS_TIMEOUT)
                return {"version": version, "members": await self._there(conn, profiles, rows, reader)}
            joined = await conn.fetch(f"SELECT member, user_id, role FROM hapta.presence WHERE channel = $1 "
                                      f"AND {ALIVE} AND since > $3 ORDER BY since", channel, PROCESS_TIMEOUT, since)
            # Every leave since, also of members who joined after it: the client may have heard of those joins.
            left = await conn.fetch("SELECT member, user_id, role FROM hapta.presence_gone WHERE channel = $1 "
                                    "AND version > $2 ORDER BY version", channel, since)
            return {"version": version, "since": known,
                    "joined": await self._there(conn, profiles, joined, reader),
                    "left": [_member(r["member"], r["user_id"], r["role"]) for r in left]}

    async def _there(self, conn: Any, profiles: Profiles | None, rows: list, reader: Principal) -> list[dict[str, Any]]:
        """Members present, as `reader` is shown them."""
        if profiles is None:
            return [_member(r["member"], r["user_id"], r["role"]) for r in rows]
        users = await self._users(conn, profiles, sorted({r["user_id"] for r in rows if r["user_id"] is not None}))
        return [{**_member(r["member"], r["user_id"], r["role"]),
                 "profile": profiles.shown(users.get(r["user_id"]), reader)} for r in rows]

    async def leave(self, peer: Peer, channel: str) -> bool:
        member = self._forget(peer, channel)
        if member is None:
            return False
        await self._withdraw(channel, member)
        return True

    async def _withdraw(self, channel: str, member: str) -> None:
        """The member is gone from this process already: take it out of the shared member list, tell the others."""
        rows = await self.db.fetch("SELECT * FROM hapta.presence_leave($1, $2, '{}')", channel, member)
        if rows:
            try:
                await self._send_leaves(rows)
            except BusDown as exc:   # left all the same: the others see it in the member list
                log.warning("could not announce a leave: %s", exc)

    def recheck(self, peer: Peer) -> None:
        """The connection's principal changed or lapsed (SessionHub calls this): a membership lives only as long as
        the identity it was joined as (a token refresh keeps it; a sign-out, an expiry or another user ends it).
        What ends, ends at once: no more messages in, the others see it leave, the connection hears
        `channels.left {channel, reason}` and may join again as who it is now."""
        channels = self.by_peer.get(peer)
        if not channels:
            return
        principal = peer.principal
        if self.identities.get(peer) == (principal.user_id, principal.role) and not principal.expired():
            return
        reason = "signed out" if principal.role == GUEST else "token expired" if principal.expired() \
            else "signed in as someone else"
        for channel in list(channels):
            member = self._forget(peer, channel)
            peer.push("channels.left", {"channel": channel, "reason": reason})
            task = asyncio.ensure_future(self._withdraw_quietly(channel, member))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _withdraw_quietly(self, channel: str, member: str) -> None:
        try:
            await self._withdraw(channel, member)
        except (*UPSTREAM_ERRORS, BusDown) as exc:
            log.warning("withdrawing a channel member failed (reaped later): %r", exc)

    def message(self, peer: Peer, channel: str, data: Any) -> str:
        """`data` from `peer` to `channel`, checked as channels.publish checks it, as the notice that carries it:
        a channel name (BAD_REQUEST), a member of it on this connection (FORBIDDEN), nested at most MAX_NESTING
        levels (BAD_REQUEST), and no larger encoded than the bus carries (TOO_LARGE)."""
        name = channel_name(channel)
        member = self.member_of(peer, name)
        if member is None:
            raise HaptaError(FORBIDDEN, f"join {name} before publishing to it")
        if nesting(data) > MAX_NESTING:
            raise HaptaError(BAD_REQUEST, f"data is nested more than {MAX_NESTING} levels deep")
        principal = peer.principal
        return self._fits(Notice("msg", name, member, principal.user_id, principal.role, data))

    def _fits(self, notice: Notice) -> str:
        payload = _encode(notice)
        if len(payload) > self.bus.limit:
            raise HaptaError(TOO_LARGE, f"a channel message is at most {self.bus.limit} bytes encoded")
        return payload.decode()

    async def publish(self, peer: Peer, channel: str, data: Any) -> None:
        """channels.publish: `data` to the channel's other members, now (refusals: `message`; BusDown when the bus
        is down)."""
        await self.bus.send([self.message(peer, channel, data)])

    def hold(self, peer: Peer, entries: list[tuple[str, Any]]) -> Held:
        """Messages from `peer` that wait for a transaction's commit (records.batch's `publish`), each checked as
        channels.publish checks it, all before anything is written; a refusal names its entry (publish_failed)."""
        self._bounded(entries)
        notices = []
        for index, (channel, data) in enumerate(entries):
            try:
                notices.append(self.message(peer, channel, data))
            except HaptaError as error:
                raise publish_failed(index, channel, error) from None
        return Held(tuple(notices))

    def hold_from_server(self, entries: list[tuple[str, Any]]) -> Held:
        """Messages from the server that wait for a transaction's commit (a function's ctx.transaction), each
        checked as ctx.publish checks it (a channel name, the bus's size), all before anything is written."""
        self._bounded(entries)
        notices = []
        for index, (channel, data) in enumerate(entries):
            try:
                notices.append(self._fits(Notice("msg", channel_name(channel), SERVER, None, SERVER, data)))
            except HaptaError as error:
                raise publish_failed(index, channel, error) from None
        return Held(tuple(notices))

    @staticmethod
    def _bounded(entries: list[tuple[str, Any]]) -> None:
        if len(entries) > HELD_MAX:
            raise HaptaError(BAD_REQUEST, f"a transaction publishes at most {HELD_MAX} messages, not {len(entries)}",
                             details={"field": "publish", "max": HELD_MAX})

    async def announce(self, channel: str, data: Any) -> bool:
        """Send `data` to every member of the channel from the server (a function's ctx.publish): `from` is
        {id: "server", user: null, role: "server"}. False when too big to travel (BusDown when the bus is down)."""
        payload = _encode(Notice("msg", channel, SERVER, None, SERVER, data))
        if len(payload) > self.bus.limit:
            return False
        await self.bus.send([payload.decode()])
        return True

    def disconnect(self, peer: Peer) -> None:
        """The connection closed: leave its channels (in the background; the socket is gone already)."""
        self.numbers.pop(peer, None)
        for channel in list(self.by_peer.get(peer, {})):
            member = self._forget(peer, channel)
            task = asyncio.ensure_future(self._withdraw_quietly(channel, member))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _forget(self, peer: Peer, channel: str) -> str | None:
        channels = self.by_peer.get(peer, {})
        member = channels.pop(channel, None)
        self.carried.pop((peer, channel), None)
        if not channels:
            self.by_peer.pop(peer, None)
            self.identities.pop(peer, None)
        members = self.local.get(channel)
        if member is not None:
            metrics.CHANNEL_MEMBERS.dec()
        if members is not None and member is not None:
            members.pop(member, None)
            if not members:
                del self.local[channel]
        return member

    # ---- from the bus ----

    def notified(self, payload: str) -> None:
        try:
            notice = _decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("ignored a malformed channel notification")
            return
        members = self.local.get(notice.c)
        if not members:
            return
        profiles = self._profiles(notice.c) if notice.k == "join" else None
        if notice.k == "msg":
            message = event("channels.message", {"channel": notice.c, "from": _member(notice.m, notice.u, notice.r),
                                                 "data": notice.d})
        elif profiles is None:
            message = event("channels.presence", {"channel": notice.c, "action": notice.k,
                                                  "member": _member(notice.m, notice.u, notice.r)})
        else:
            self._tell_join(notice, profiles, members)
            return
        out = self.out
        for member, peer in list(members.items()):
            if member != notice.m:   # nobody hears their own join, leave or message
                out(peer, message)

    def _tell_join(self, notice: Notice, profiles: Profiles, members: dict[str, Peer]) -> None:
        """A join in a channel with presence fields: each member is shown the profile it may see, shaped once per
        group of readers the rules cannot tell apart."""
        record = typed(profiles.model, notice.p) if notice.p is not None else None
        shaped: dict[tuple, Any] = {}
        out = self.out
        for member, peer in list(members.items()):
            if member == notice.m:
                continue
            principal = peer.principal
            key = profiles.key(principal)
            message = shaped.get(key) if key is not None else None
            if message is None:
                message = event("channels.presence", {"channel": notice.c, "action": "join", "member": {
                    **_member(notice.m, notice.u, notice.r), "profile": profiles.shown(record, principal)}})
                if key is not None:
                    shaped[key] = message
            out(peer, message)

