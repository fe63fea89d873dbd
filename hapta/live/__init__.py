"""Everything the change feed drives: realtime subscriptions, channels with presence, and the read cache.

    Listener (one LISTENing connection per process)
        hapta_changes   -> ChangeFeed.rung -> ReadCache.changed (at once); number what committed
        hapta_positions -> ChangeFeed.positioned -> read the log on -> Realtime.deliver (batched), and the channel
                           messages that waited for their commit -> Channels.notified, each after the changes before it
        hapta_channels  -> Channels.notified (the PostgreSQL bus; Redis pub/sub with REDIS_URL)
        reconnected     -> cache flushed, the feed reads the log on from where it was, memberships restored; the
                           PostgreSQL bus tells channel members with `realtime.reset` (their notices are not kept)

Each worker process listens for itself (docs/realtime.md says why, with numbers).
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, TypeVar

from ..clock import Clock, wall
from ..config import RealtimeBounds
from ..models import AUTH_COLLECTION, Model
from ..principal import Peer
from ..protocol.errors import UNAVAILABLE, HaptaError
from ..settings import Settings
from ..store.listener import Listener
from ..store.postgres import Database
from .bus import Bus, PostgresBus, RedisBus
from .cache import ReadCache, SharedStore
from .channels import Channels
from .feed import (CHANNEL as CHANGES_CHANNEL, LEADER_KEY, POSITIONS, ChangeFeed, causes_after, changes_after,
                   horizon, install_triggers)
from .realtime import Realtime, Subscription, View, dependencies_of, reset_event
from .window import TextKey, collation_key

# Changes a resume replays at most; a subscription that missed more is told to refetch (cheaper than replaying).
MAX_REPLAY = 10_000
# Changes waiting to be numbered that a snapshot may have to leave out of its live events.
MAX_PENDING_IN_SNAPSHOT = 10_000

log = logging.getLogger("hapta.live")

__all__ = ["Live", "install_triggers", "read_cache"]

T = TypeVar("T")


def read_cache(settings: Settings, listener: Listener) -> ReadCache:
    """The read cache records.* read through (and expansions, and realtime's): in this process, and in Redis with
    REDIS_URL; its barrier is the listener's."""
    shared = SharedStore(settings.redis_url, settings.redis_prefix) if settings.redis_url else None
    return ReadCache(listener.sync, shared)


class Live:
    def __init__(self, bounds: RealtimeBounds, channel_rules: dict[str, Any], settings: Settings, db: Database,
                 models: dict[str, Model], listener: Listener, cache: ReadCache, view: View, clock: Clock = wall):
        self.listener = listener
        self.cache = cache
        self.db = db
        self.realtime = Realtime(models, db, view, clock=clock, per_principal=bounds.per_principal,
                                 per_address=bounds.per_address,
                                 filter_bytes_per_address=bounds.filter_bytes_per_address)
        bus: Bus = RedisBus(settings.redis_url, settings.redis_prefix) if settings.redis_url else \
            PostgresBus(db, listener)
        self.channels = Channels(channel_rules, db, bus, on_missed=self._channels_missed, out=self.realtime.out,
                                 users=models.get(AUTH_COLLECTION), users_hooked=view.sends(AUTH_COLLECTION))
        self.feed = ChangeFeed(models, db, deliver=self.realtime.deliver, listening=lambda: bool(self.realtime.topics),
                               changed=cache.changed, reset=self._feed_reset,
                               try_lead=lambda: listener.try_lock(LEADER_KEY),
                               retention=bounds.log_retention, max_kept=bounds.log_max,
                               tell=self.channels.notified, messaging=lambda: bool(self.channels.local))
        self.listener.add(CHANGES_CHANNEL, self.feed.rung)
        self.listener.add(POSITIONS, self.feed.positioned)
        self.listener.on_reset(self._reconnected)
        self.collation = "C"
        self.text_key: TextKey | None = str   # how live queries compare text: as the database does (window.py)

    async def start(self) -> None:
        """After the listener started."""
        row = await self.db.fetchrow("SELECT datcollate, to_jsonb(d) ->> 'datlocprovider' AS provider "
                                     "FROM pg_database d WHERE datname = current_database()")   # (15+)
        self.collation = row["datcollate"]
        self.text_key = collation_key(row["datcollate"], row["provider"] or "c")
        await self.feed.start()
        await self.channels.start()

    async def close(self) -> None:
        await self.feed.close()
        await self.channels.close()
        if self.cache.shared is not None:
            await self.cache.shared.close()

    async def _reconnected(self) -> None:
        """The listener was away. Changes wait in the log: the feed reads on from where it was, and subscribers
        miss nothing. What the cache missed hearing it cannot know: it starts over. Channel memberships are put
        back where they were reaped (the notices the bus lost meanwhile it reports itself: Bus.start)."""
        self.cache.flush()
        self.feed.reconnected()
        try:
            await self.channels.restore()
        except Exception as exc:   # the heartbeat will try again
            log.warning("restoring channel members failed: %r", exc)

    def _feed_reset(self) -> None:
        """The log no longer reaches back to what this process handed on: every subscriber may have missed some,
        and every channel member messages that waited for a commit."""
        self.cache.flush()
        for peer in {*self.realtime.by_peer, *self.channels.by_peer}:
            subs, channels = self.realtime.by_peer.get(peer), self.channels.by_peer.get(peer)
            if subs or channels:
                peer.deliver(reset_event(list(subs or ()), list(channels or ())))

    def _channels_missed(self) -> None:
        """Channel notices were lost (the listener or Redis came back): members should ask again who is there."""
        for peer, channels in self.channels.by_peer.items():
            if channels:
                peer.deliver(reset_event([], list(channels)))

    # ---- starting a subscription (realtime.subscribe) ----

    async def begin(self, sub: Subscription) -> tuple[int, Callable[[], None]]:
        """The position after every change committed before now, for the held `sub`, and what starts it there:
        a client that reads after this answer misses nothing between its read and its events."""
        position = await self.feed.numbered()
        return position, lambda: self.realtime.release(sub, position)

    async def resume(self, sub: Subscription, since: int) -> tuple[int, Callable[[], None]]:
        """Replay what the held `sub` missed after position `since`, as a live delivery would send it now; returns
        where it starts (`since`) and what starts it (the replayed events, then the live ones held meanwhile), to
        be called once the reply is on its way. A `since` the log no longer reaches back to, or never reached,
        starts it at the newest position with `realtime.reset` (refetch) instead: never a silent gap."""
        topic = sub.topic
        async with self.db.acquire() as conn:
            kept = await horizon(conn)
            changes = None
            if kept.pruned <= since <= kept.head:
                changes = await changes_after(conn, topic.model.name, since, kept.head, MAX_REPLAY + 1,
                                              record_id=topic.record_id)
                # Changes of what its rules read through relations (a post turned private hides its comments),
                # from `since` itself: the events a change derived share its position, and may have reached the
                # client in part before it dropped.
                for target, reading in dependencies_of([topic]).items():
                    columns = sorted(set().union(*reading.values()))
                    changes += await causes_after(conn, target, columns, since, kept.head, MAX_REPLAY + 1)
        if changes is None or len(changes) > MAX_REPLAY:
            return kept.head, lambda: self.realtime.release(sub, kept.head, reset=True)
        changes = sorted({change.position: change for change in changes}.values(), key=lambda c: c.position)
        replayed = await self.realtime.replay(sub, changes, since)
        if replayed is None:   # a change moved more records than are read for it
            return kept.head, lambda: self.realtime.release(sub, kept.head, reset=True)
        return since, lambda: self.realtime.release(sub, kept.head, replayed)

    async def snapshot(self, sub: Subscription, read: Callable[[Any], Awaitable[T]]) -> tuple[T, int, Callable[[], None]]:
        """`read(conn)` (the first page) and the position it was read at, in one database snapshot, for the held
        `sub`; and what starts it at that position. Changes committed but not yet numbered when the page was read
        are in the page and will be numbered after it: they are left out of its events (by inbox place)."""
        async with self.db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            answer = await read(conn)
            kept = await horizon(conn)
            pending = await conn.fetchval("SELECT array(SELECT seq FROM hapta.change_inbox ORDER BY seq LIMIT $1)",
                                          MAX_PENDING_IN_SNAPSHOT + 1)
        if len(pending) > MAX_PENDING_IN_SNAPSHOT:
            raise HaptaError(UNAVAILABLE, "changes are waiting to be numbered; subscribe again shortly",
                             retry_after=1.0)
        skip = frozenset(pending)
        return answer, kept.head, lambda: self.realtime.release(sub, kept.head, skip=skip)

    def disconnect(self, peer: Peer) -> None:
        self.realtime.leave(peer)
        self.channels.disconnect(peer)

    # ---- for records.* ----

    async def read(self, key: tuple | None, tables: tuple[str, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        return await self.cache.read(key, tables, load)
