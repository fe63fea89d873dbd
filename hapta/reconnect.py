"""A Python client that survives a dropped socket: it reconnects by itself and the app notices only what it must.

    hapta = await Hapta.connect("ws://127.0.0.1:8080/ws")
    await hapta.login("ada@example.com", "correct horse battery")
    posts = await hapta.subscribe("posts", filter='text ~ "cats"')
    async for change in posts:          # {"action", "collection", "record", "pos"}
        ...                             # raises Reset (then goes on) when the app must refetch
    feed = await hapta.records("posts").query(sort="-created", limit=20, on_change=lambda items, ops: ...)
    feed.items                          # what records.list would answer now, kept current

When the socket drops it reconnects with exponential backoff and jitter, signs in again the way it was signed in
(the session's access token while it is valid, else its refresh token; an anon or admin key again), resumes every
subscription from the last position it delivered (the gateway replays what was missed, rule-checked, in commit
order: docs/realtime.md), asks for every live query again with the ids and versions of the items it holds (the
answer says what changed meanwhile) and joins its channels again (told only who joined and left meanwhile:
`members(channel)` stays right). Calls made while it is away wait for the socket, up to `call_timeout`. It stops
retrying only when the gateway said not to: the session was revoked (1008) or the credentials no longer work.
`write()` sends a write with an idempotency key, so that it can be sent again after a drop without writing twice
(docs/writes.md).

`Client` (hapta/client.py) is one socket and nothing more; this wraps one Client at a time.
"""
from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from typing import Any, AsyncIterator, Callable

from websockets.exceptions import WebSocketException

from .client import JSON, Client
from .protocol.errors import HaptaError
from .protocol.ops import apply

log = logging.getLogger("hapta.reconnect")

__all__ = ["Hapta", "LiveQuery", "Reset", "Subscription"]

# Close codes after which reconnecting would be refused again: a policy violation (a revoked session, garbage).
FINAL_CLOSE_CODES = frozenset({1008})
# The ops whose reply is a Session: the one kept to resume with after a reconnect.
SESSION_OPS = frozenset({"auth.login", "auth.register", "auth.refresh", "auth.guest", "auth.otp", "auth.mfa.verify"})
# What a connection attempt that did not work raises: refused, reset, or cut during the handshake (a balancer that
# accepted the connection and then found its node dead answers no HTTP at all). Each is worth another try.
TRANSIENT = (OSError, EOFError, asyncio.TimeoutError, WebSocketException)
# Sign-in refusals that no retry can change.
FINAL_ERRORS = frozenset({"TOKEN_INVALID", "TOKEN_REUSED", "INVALID_CREDENTIALS", "FORBIDDEN", "TOKEN_EXPIRED"})


class Reset(Exception):
    """The gateway could not replay what this subscription missed (it kept too little, or too much came): what
    the app shows from it must be fetched again. The subscription itself goes on."""


class Subscription:
    """One realtime subscription, across reconnects. Iterate it for its changes."""

    def __init__(self, owner: "Hapta", args: dict[str, Any]):
        self.owner = owner
        self.args = args
        self.sub: str | None = None          # the gateway's id on the current socket
        self.pos: int = 0                     # the last position delivered (or where it started)
        # the records delivered at `pos`: the events one change caused in other records (a post turned private:
        # its comments) share its position, and a resume from it sends them all again (docs/realtime.md)
        self.at_pos: set[Any] = set()
        self.snapshot: dict[str, Any] | None = None   # with snapshot=True: the first page, read at `pos`
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._changes()

    async def _changes(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.next()

    async def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The next change; Reset when the app must refetch; ConnectionError once closed."""
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def _deliver(self, data: dict[str, Any]) -> None:
        position = data.get("pos")
        if isinstance(position, int):
            record_id = (data.get("record") or {}).get("id")
            if position < self.pos or (position == self.pos and record_id in self.at_pos):
                return   # already delivered (a resume from a position sends what shares it again)
            if position > self.pos:
                self.pos, self.at_pos = position, set()
            self.at_pos.add(record_id)
        self.queue.put_nowait(data)

    def _start(self, position: int) -> None:
        """Where the gateway says it starts: its own position when resumed, the head when reset."""
        if position != self.pos:
            self.at_pos = set()
        self.pos = position

    async def close(self) -> None:
        self.closed = True
        self.owner.subscriptions.discard(self)
        client, sub = self.owner.client, self.sub
        self.sub = None
        if client is not None and sub is not None:
            try:
                await client.call("realtime.unsubscribe", {"sub": sub})
            except (HaptaError, ConnectionError):
                pass   # gone with its socket anyway
        self.queue.put_nowait(ConnectionError("subscription closed"))


class LiveQuery:
    """A live query (realtime.query) across reconnects: `items` is always the first `limit` records that records.list
    would answer (its rules, filter, sort, fields, expand), one list changed in place. `on_change(items, ops)` runs
    once at the start and after each change, `ops` turning the items it held before into `items` (docs/protocol.md,
    "Live queries"). After a reconnect, or a `realtime.reset` for it, it is asked for again with `have`: the
    gateway answers what changed meanwhile, however long it was away."""

    def __init__(self, owner: "Hapta", args: dict[str, Any],
                 on_change: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None] | None):
        self.owner = owner
        self.args = args
        self.sub: str | None = None           # the gateway's id on the current socket; None while it is asked for
        self.pos: int = 0                     # the position the items are as of
        self.items: list[dict[str, Any]] = []
        self.on_change = on_change
        self.ask = 0                          # which ask of it counts: an older one's answer is let go
        self.started = False
        self.closed = False
        self._changed = asyncio.Event()

    def have(self) -> list[list[Any]]:
        """What it holds, as a resume names it: [id, version] in order (-1 for a record without a version: a
        version no record has, so the gateway sends it again)."""
        return [[item["id"], item.get("version") if isinstance(item.get("version"), int) else -1]
                for item in self.items[:self.args["limit"]]]

    async def wait_for(self, condition: Callable[[list[dict[str, Any]]], bool],
                       timeout: float | None = None) -> list[dict[str, Any]]:
        """The items, once `condition(items)` holds (checked now and after each change); ConnectionError once
        closed."""
        async def waiting() -> list[dict[str, Any]]:
            while not condition(self.items):
                if self.closed or self.owner.failure is not None:
                    raise ConnectionError("live query closed")
                await self._changed.wait()
            return self.items
        return await asyncio.wait_for(waiting(), timeout)

    async def close(self) -> None:
        self.closed = True
        self.owner.queries.discard(self)
        client, sub = self.owner.client, self.sub
        self.sub = None
        self._wake()
        if sub is not None:
            self.owner.by_query.pop(sub, None)
            if client is not None:
                try:
                    await client.call("realtime.unsubscribe", {"sub": sub})
                except (HaptaError, ConnectionError):
                    pass   # gone with its socket anyway

    def _answered(self, data: dict[str, Any]) -> bool:
        """Its answer (as the reply is read, before any diff after it): the items, or ops from those held. False:
        the ops do not fit what it holds."""
        self.sub, self.pos = data["sub"], data["pos"]
        if "ops" in data:
            try:
                self._show(apply(self.items, data["ops"]), data["ops"])
            except ValueError:
                return False
        else:
            ops = [{"op": "delete", "id": item["id"]} for item in self.items]
            self._show(data["items"], ops + [{"op": "insert", "index": n, "record": record}
                                             for n, record in enumerate(data["items"])])
        return True

    def _diffed(self, data: dict[str, Any]) -> bool:
        """realtime.diff; False: its ops do not fit what it holds."""
        if data["pos"] <= self.pos:
            return True   # (never after a gap-free start; cheap to be sure)
        try:
            items = apply(self.items, data["ops"])
        except ValueError:
            return False
        self.pos = data["pos"]
        self._show(items, data["ops"])
        return True

    def _show(self, items: list[dict[str, Any]], ops: list[dict[str, Any]]) -> None:
        self.items[:] = items
        if not ops and self.started:
            return
        self.started = True
        self._wake()
        if self.on_change is not None:
            try:
                self.on_change(self.items, ops)
            except Exception:   # the app's own fault: it must not stop the socket's reading
                log.exception("a live query's on_change failed")

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class Records:
    """One collection's records ops through a reconnecting client; its writes survive a dropped socket without
    writing twice (Hapta.write: an idempotency key, sent again with the same key)."""

    def __init__(self, hapta: "Hapta", collection: str):
        self.hapta = hapta
        self.collection = collection

    async def list(self, **args: Any) -> dict[str, Any]:
        """`filter`, `sort` (`"-@rank"` after a `@@` search), `page`/`after`, `per_page`, `fields`, `count`,
        `expand` as records.list takes them."""
        return await self.hapta.call("records.list", {"collection": self.collection, **args})

    async def get(self, record_id: str, **args: Any) -> dict[str, Any]:
        return await self.hapta.call("records.get", {"collection": self.collection, "id": record_id, **args})

    async def aggregate(self, **args: Any) -> dict[str, Any]:
        """`filter`, `group_by`, `count`, `sum`, `avg`, `min`, `max`, `limit` as records.aggregate takes them."""
        return await self.hapta.call("records.aggregate", {"collection": self.collection, **args})

    async def create(self, data: dict[str, Any], **args: Any) -> dict[str, Any]:
        return await self.hapta._write("records.create", {"collection": self.collection, "data": data, **args})

    async def update(self, record_id: str, data: dict[str, Any], **args: Any) -> dict[str, Any]:
        return await self.hapta._write("records.update", {"collection": self.collection, "id": record_id,
                                                          "data": data, **args})

    async def delete(self, record_id: str, **args: Any) -> dict[str, Any]:
        return await self.hapta._write("records.delete", {"collection": self.collection, "id": record_id, **args})

    async def query(self, *, sort: str, limit: int,
                    on_change: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None] | None = None,
                    **args: Any) -> LiveQuery:
        """A live query of this collection (Hapta.query)."""
        return await self.hapta.query(self.collection, sort=sort, limit=limit, on_change=on_change, **args)


class Hapta:
    def __init__(self, url: str, *, subprotocol: str = JSON, backoff: tuple[float, float] = (0.2, 10.0),
                 call_timeout: float = 30.0, **options: Any):
        self.url = url
        self.subprotocol = subprotocol
        self.backoff = backoff
        self.call_timeout = call_timeout
        self.options = options
        self.client: Client | None = None
        self.connected = asyncio.Event()
        self.sign_in: tuple[str, dict[str, Any]] | None = None   # how to sign in again (op, args)
        self.session: dict[str, Any] | None = None
        self.subscriptions: set[Subscription] = set()
        self.by_sub: dict[str, Subscription] = {}
        self.queries: set[LiveQuery] = set()
        self.by_query: dict[str, LiveQuery] = {}
        self.channels: dict[str, dict[str, Any]] = {}   # channel -> {"version", "members": {id: member}}
        self.on_event: list[Callable[[dict[str, Any]], None]] = []   # every other event (channels.*, auth.*)
        self.on_state: list[Callable[[str], None]] = []              # "open", "reconnecting", "closed"
        self.reconnects = 0
        self.failure: BaseException | None = None
        self._closing = False
        self._task: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()

    @classmethod
    async def connect(cls, url: str, **options: Any) -> "Hapta":
        hapta = cls(url, **options)
        hapta.client = await hapta._open()
        hapta._state("open")
        hapta._task = asyncio.ensure_future(hapta._run(hapta.client))
        return hapta

    async def __aenter__(self) -> "Hapta":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.client is not None:
            await self.client.close()
        self._end(ConnectionError("closed"))

    # ---- calls ----

    async def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """One request on the current socket, waiting for one if it is reconnecting. A request whose socket dropped
        before its reply raises ConnectionError: whether a write happened is then unknown, and is for the app to
        check (read it back) before it tries again."""
        client = await self._socket()
        data = await client.call(op, args)
        if op in SESSION_OPS and "token" in data:   # (auth.register by mail answers {check_mail: true})
            self._signed_in(data)
        elif op in ("auth.anon", "auth.admin"):
            self.sign_in, self.session = (op, dict(args or {})), None
        elif op == "auth.logout":
            self.sign_in = self.session = None
        return data

    async def write(self, op: str, args: dict[str, Any], *, attempts: int = 3) -> Any:
        """A records.create/update/delete/batch sent with an idempotency_key (the args' own, else a new one) and
        sent again with it, up to `attempts` times, when its socket dropped before the reply or the gateway said
        the outcome is unknown: the gateway answers every attempt with the first one's answer (docs/writes.md).
        Needs a signed-in user or an admin (anon principals may not send keys)."""
        args = {**args, "idempotency_key": args.get("idempotency_key") or secrets.token_hex(16)}
        for attempt in range(1, attempts + 1):
            try:
                return await self.call(op, args)
            except ConnectionError:
                if attempt == attempts:
                    raise
            except HaptaError as error:
                if attempt == attempts or (error.details or {}).get("outcome") != "unknown":
                    raise
                await asyncio.sleep(error.retry_after or 0)
        raise AssertionError("unreachable")

    def records(self, collection: str) -> "Records":
        """The records ops on one collection (`hapta.records("posts").list(filter=..., expand=["author"])`)."""
        return Records(self, collection)

    async def batch(self, ops: list[dict[str, Any]], **args: Any) -> dict[str, Any]:
        """records.batch: writes over any collections in one transaction (`{"$ref": n}`: the id op n wrote)."""
        return await self._write("records.batch", {"ops": ops, **args})

    async def _write(self, op: str, args: dict[str, Any]) -> Any:
        """A write as a signed-in user or an admin carries an idempotency key (write()); an anon principal may
        not send one, so its writes go once."""
        keyed = self.session is not None or (self.sign_in is not None and self.sign_in[0] == "auth.admin")
        return await (self.write(op, args) if keyed else self.call(op, args))

    async def login(self, identity: str, password: str) -> dict[str, Any]:
        return await self.call("auth.login", {"identity": identity, "password": password})

    async def register(self, **fields: Any) -> dict[str, Any]:
        return await self.call("auth.register", fields)

    async def guest(self) -> dict[str, Any]:
        """A guest account (no email or password) that register() later makes an account, keeping its records."""
        return await self.call("auth.guest")

    async def anon(self, apikey: str) -> dict[str, Any]:
        return await self.call("auth.anon", {"apikey": apikey})

    async def subscribe(self, collection: str, **args: Any) -> Subscription:
        """A subscription that follows this client across reconnects (`id`, `filter`, `fields`, `snapshot`,
        `sort`, `per_page` as realtime.subscribe takes them)."""
        subscription = Subscription(self, {"collection": collection, **args})
        client = await self._socket()
        answer = await client.call("realtime.subscribe", subscription.args,
                                   on_reply=lambda data: self._started(subscription, data))
        if args.get("snapshot"):
            subscription.snapshot = {k: v for k, v in answer.items() if k not in ("sub", "pos")}
            subscription.args = {k: v for k, v in subscription.args.items()
                                 if k not in ("snapshot", "sort", "per_page")}   # a resume wants no page
        self.subscriptions.add(subscription)
        return subscription

    async def query(self, collection: str, *, sort: str, limit: int,
                    on_change: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None] | None = None,
                    **args: Any) -> LiveQuery:
        """A live query that follows this client across reconnects: the first `limit` records (1-500) of what
        records.list answers with `sort` (required), `filter`, `fields` (with `id` and `version`) and `expand`,
        kept current in `items`. Returns once they are there (on_change has heard them)."""
        live = LiveQuery(self, {"collection": collection, "sort": sort, "limit": limit, **args}, on_change)
        client = await self._socket()
        await client.call("realtime.query", live.args, on_reply=self._answer(live, client))
        return live

    def _answer(self, live: LiveQuery, client: Client) -> Callable[[dict[str, Any]], None]:
        """What takes the answer of one ask of `live` on `client`; a later ask (a resume) makes this one's answer
        void."""
        live.ask += 1
        ask = live.ask

        def answered(data: dict[str, Any]) -> None:
            if live.closed or ask != live.ask:   # closed meanwhile, or overtaken: the gateway may end this one
                self._unsubscribe(client, data["sub"])
                return
            self.by_query[data["sub"]] = live
            self.queries.add(live)
            if not live._answered(data):
                self._ask_again(client, live, keep=False)
        return answered

    def _ask_again(self, client: Client, live: LiveQuery, *, keep: bool) -> None:
        """Ask for `live` again on `client`, with what it holds (`keep`), or for the whole items (what it holds
        went wrong); if that socket drops first, the resume asks anyway. Its old sub there is ended."""
        old, live.sub = live.sub, None
        if old is not None:
            self.by_query.pop(old, None)
            self._unsubscribe(client, old)
        if live.closed:
            return
        args = {**live.args, "have": live.have()} if keep else live.args

        async def ask() -> None:
            try:
                await client.call("realtime.query", args, on_reply=self._answer(live, client))
            except (HaptaError, ConnectionError) as exc:
                log.info("asking for live query %s again failed: %s", live.args["collection"], exc)
        self._spawn(ask())

    def _unsubscribe(self, client: Client, sub: str) -> None:
        async def end() -> None:
            try:
                await client.call("realtime.unsubscribe", {"sub": sub})
            except (HaptaError, ConnectionError):
                pass
        self._spawn(end())

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def join(self, channel: str) -> dict[str, Any]:
        """Join a channel and keep it across reconnects; `members(channel)` follows who is there."""
        answer = await self.call("channels.join", {"channel": channel})
        self._presence(channel, answer)
        return answer

    async def leave(self, channel: str) -> None:
        self.channels.pop(channel, None)
        await self.call("channels.leave", {"channel": channel})

    def members(self, channel: str) -> list[dict[str, Any]]:
        """Who is in `channel` now, as the gateway showed them: `{id, user, role}`, and `profile` (the presence
        fields of the member's users record as this reader may see them) where the channel's pattern names any."""
        return list(self.channels.get(channel, {}).get("members", {}).values())

    def _presence(self, channel: str, answer: dict[str, Any]) -> None:
        """A join's answer: everyone, or (a rejoin with a version) who joined and left since."""
        known = self.channels.setdefault(channel, {"version": None, "members": {}})
        if "members" in answer:
            known["members"] = {m["id"]: m for m in answer["members"]}
        else:
            for member in answer["left"]:
                known["members"].pop(member["id"], None)
            known["members"].update((m["id"], m) for m in answer["joined"])
        known["version"] = answer.get("version")

    # ---- the socket ----

    async def _socket(self) -> Client:
        if self.failure is not None:
            raise ConnectionError("the client stopped reconnecting") from self.failure
        try:
            await asyncio.wait_for(self.connected.wait(), self.call_timeout)
        except asyncio.TimeoutError:
            raise ConnectionError(f"not connected within {self.call_timeout:g} s") from None
        assert self.client is not None
        return self.client

    async def _open(self) -> Client:
        return await Client.connect(self.url, subprotocol=self.subprotocol, **self.options)

    def _state(self, state: str) -> None:
        if state == "open":
            self.connected.set()
        else:
            self.connected.clear()
        for callback in self.on_state:
            callback(state)

    def _signed_in(self, session: dict[str, Any]) -> None:
        self.session = {"token": session["token"], "refresh_token": session.get("refresh_token"),
                        "expires_at": session.get("expires_at")}
        self.sign_in = None

    def _started(self, subscription: Subscription, answer: dict[str, Any]) -> None:
        subscription.sub = answer["sub"]
        subscription._start(answer["pos"])
        self.by_sub[subscription.sub] = subscription

    async def _run(self, client: Client) -> None:
        """Route the socket's events; when it drops, reconnect and restore; until closed or told not to."""
        while True:
            await self._pump(client)
            if self._closing:
                return
            code = client.close_code
            if code in FINAL_CLOSE_CODES:
                self._end(ConnectionError(f"the gateway closed the connection ({code}) and it must not be retried"))
                return
            self._state("reconnecting")
            try:
                client = await self._reconnect()
            except HaptaError as error:
                self._end(error)
                return

    async def _pump(self, client: Client) -> None:
        async for event in client.events():
            name = event.get("event")
            if name == "records.change":
                subscription = self.by_sub.get(event.get("sub"))
                if subscription is not None:
                    subscription._deliver(event.get("data") or {})
            elif name == "realtime.diff":
                live = self.by_query.get(event.get("sub"))
                if live is not None and not live._diffed(event.get("data") or {}):
                    self._ask_again(client, live, keep=False)
            elif name == "realtime.reset":
                for sub in (event.get("data") or {}).get("subs", []):
                    subscription = self.by_sub.get(sub)
                    if subscription is not None:
                        subscription.queue.put_nowait(Reset(f"subscription {sub} must refetch"))
                    live = self.by_query.get(sub)
                    if live is not None:
                        self._ask_again(client, live, keep=True)   # a fresh read: what it holds, up to date
                self._tell(event)
            elif name == "channels.presence":
                data = event.get("data") or {}
                members = self.channels.get(data.get("channel"), {}).get("members")
                if members is not None:
                    if data.get("action") == "join":
                        members[data["member"]["id"]] = data["member"]
                    else:
                        members.pop(data["member"]["id"], None)
                self._tell(event)
            elif name == "auth.expiring" and self.session and self.session.get("refresh_token"):
                self._spawn(self._refresh(client))   # in-band, before the token lapses
            else:
                self._tell(event)

    def _tell(self, event: dict[str, Any]) -> None:
        for callback in self.on_event:
            callback(event)

    async def _refresh(self, client: Client) -> None:
        try:
            self._signed_in(await client.call("auth.refresh", {"refresh_token": self.session["refresh_token"]}))
        except (HaptaError, ConnectionError) as exc:
            log.info("refreshing the session failed: %s", exc)

    async def _reconnect(self) -> Client:
        attempt = 0
        base, ceiling = self.backoff
        while True:
            delay = min(ceiling, base * 2 ** attempt) * random.uniform(0.5, 1.0)   # jitter: no thundering herd
            attempt += 1
            await asyncio.sleep(delay)
            try:
                client = await self._open()
            except TRANSIENT:
                continue
            try:
                await self._restore(client)
            except HaptaError as error:
                await client.close()
                if error.code in FINAL_ERRORS:
                    raise
                await asyncio.sleep(error.retry_after or 0)
                continue
            except TRANSIENT:   # ConnectionError is an OSError
                await client.close()
                continue
            self.client = client
            self.reconnects += 1
            self._state("open")
            return client

    async def _restore(self, client: Client) -> None:
        """Sign in again, resume every subscription from its position and every live query from what it holds,
        join every channel again."""
        if self.session is not None:
            expires_at = self.session.get("expires_at")
            if expires_at is not None and expires_at > time.time() + 5:
                await client.call("auth.resume", {"token": self.session["token"]})
            else:
                self._signed_in(await client.call("auth.refresh",
                                                  {"refresh_token": self.session["refresh_token"]}))
        elif self.sign_in is not None:
            await client.call(*self.sign_in)
        self.by_sub.clear()   # ids of the old socket; each subscription gets one on this one
        for subscription in list(self.subscriptions):
            await client.call("realtime.subscribe", {**subscription.args, "since": subscription.pos},
                              on_reply=lambda data, s=subscription: self._started(s, data))
        self.by_query.clear()
        for live in list(self.queries):
            live.sub = None
            await client.call("realtime.query", {**live.args, "have": live.have()},
                              on_reply=self._answer(live, client))
        for channel, known in sorted(self.channels.items()):   # only what changed since, where it can be told
            answer = await client.call("channels.join", {"channel": channel, "version": known["version"]})
            self._presence(channel, answer)
            self._tell({"event": "channels.rejoined", "data": answer})

    def _end(self, failure: BaseException) -> None:
        self.failure = self.failure or failure
        self._state("closed")
        for subscription in list(self.subscriptions):
            subscription.queue.put_nowait(ConnectionError("the client is closed"))
        for live in list(self.queries):
            live._wake()
