"""Everything the change feed drives: realtime subscriptions, channels with presence, and the read cache.

    Listener (one LISTENing connection per process)
        hapta_changes  -> ChangeFeed -> ReadCache.changed (at once)  -> Realtime.deliver (batched)
        hapta_channels -> Channels.notified
        reconnected    -> cache flushed, `realtime.reset` to every subscriber and channel member

Each worker process listens for itself (docs/realtime.md says why, with numbers).
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from ..config import App
from ..models import Model
from ..principal import Peer
from ..settings import Settings
from ..store.listener import Listener
from ..store.postgres import Database
from .bus import CHANNEL as CHANNELS_CHANNEL, PostgresBus, RedisBus
from .cache import ReadCache, SharedStore
from .channels import Channels
from .events import event
from .feed import CHANNEL as CHANGES_CHANNEL, ChangeFeed, install_triggers
from .realtime import RESET_EVENT, Realtime

log = logging.getLogger("hapta.live")

__all__ = ["Live", "install_triggers"]


class Live:
    def __init__(self, app: App, settings: Settings, db: Database, models: dict[str, Model], listener: Listener):
        self.listener = listener
        shared = SharedStore(settings.redis_url, settings.redis_prefix) if settings.redis_url else None
        self.cache = ReadCache(self.listener.sync, shared)
        self.feed = ChangeFeed(models)
        self.realtime = Realtime(models, db, per_principal=app.max_subscriptions_per_principal,
                                 per_address=app.max_subscriptions_per_address,
                                 filter_bytes_per_address=app.max_filter_bytes_per_address)
        bus = RedisBus(settings.redis_url, settings.redis_prefix) if settings.redis_url else PostgresBus(db)
        self.channels = Channels(app.channels, db, bus, on_missed=self._channels_missed)
        self.feed.on_change.append(lambda change: self.cache.changed(change.t, change.x))
        self.feed.consumer = self.realtime.deliver
        self.feed.on_reset.append(self._reset)
        self.listener.add(CHANGES_CHANNEL, self.feed.notified)
        if isinstance(bus, PostgresBus):
            self.listener.add(CHANNELS_CHANNEL, self.channels.notified)
        self.listener.on_reset(self.feed.reset)

    async def start(self) -> None:
        """After the listener started."""
        self.feed.start()
        await self.channels.start()

    async def close(self) -> None:
        await self.feed.close()
        await self.channels.close()
        if self.cache.shared is not None:
            await self.cache.shared.close()

    async def _reset(self) -> None:
        self.cache.flush()
        peers: dict[Peer, dict[str, list[str]]] = {}
        for peer, subs in self.realtime.by_peer.items():
            if subs:
                peers.setdefault(peer, {})["subs"] = sorted(subs)
        for peer, channels in self.channels.by_peer.items():
            if channels:
                peers.setdefault(peer, {})["channels"] = sorted(channels)
        for peer, data in peers.items():
            peer.deliver(event(RESET_EVENT, {"subs": [], "channels": [], **data}))
        try:
            await self.channels.restore()
        except Exception as exc:   # the heartbeat will try again
            log.warning("restoring channel members failed: %r", exc)

    def _channels_missed(self) -> None:
        """Channel notices were lost (Redis came back): members should ask again who is there."""
        for peer, channels in self.channels.by_peer.items():
            if channels:
                peer.deliver(event(RESET_EVENT, {"subs": [], "channels": sorted(channels)}))

    def disconnect(self, peer: Peer) -> None:
        self.realtime.leave(peer)
        self.channels.disconnect(peer)

    # ---- for records.* ----

    async def read(self, key: tuple | None, tables: tuple[str, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        return await self.cache.read(key, tables, load)
