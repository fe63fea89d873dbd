"""How records leave the gateway for one reader, the same for every way they leave (records.get/list, realtime
events, snapshots, expansions): the collection's before_send hook for that reader, then the relations its request
names embedded as their own collections' rules show them (expand.py).

Built before the records service and the realtime delivery, and handed to both, so that neither reaches into the
other for it.
"""
from __future__ import annotations

from typing import Any

from ..access import Schemas
from ..hooks.service import Hooks
from ..models import Model
from ..principal import Principal
from ..store.postgres import Database
from .expand import Expander, Plan, ReadThrough


class RecordView:
    def __init__(self, db: Database, models: dict[str, Model], schemas: Schemas, hooks: Hooks, read: ReadThrough):
        self.hooks = hooks
        self.expander = Expander(db, models, schemas, read, self.sent)

    def sends(self, collection: str) -> bool:
        """Has the collection a before_send hook?"""
        return self.hooks.sends(collection)

    async def sent(self, principal: Principal, model: Model, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records as the collection's before_send hook lets `principal` see them; those it leaves out, gone."""
        if not self.hooks.sends(model.name) or principal.is_admin:
            return records
        return [r for r in await self.hooks.before_send(model.name, principal, None, records) if r is not None]

    async def each(self, principal: Principal, model: Model, records: list[dict[str, Any]]) -> list[dict | None]:
        """Each record as the before_send hook lets `principal` see it, in place; None for one it leaves out."""
        if not self.hooks.sends(model.name) or principal.is_admin:
            return records
        return list(await self.hooks.before_send(model.name, principal, None, records))

    async def page(self, principal: Principal, model: Model, result: dict[str, Any]) -> dict[str, Any]:
        """A page as the before_send hook lets `principal` see it (a new dict: the cached one is shared)."""
        if not self.hooks.sends(model.name):
            return result
        return {**result, "items": await self.sent(principal, model, result["items"])}

    async def expand(self, principal: Principal, model: Model, plan: Plan | None,
                     records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self.expander.expand(principal, model, plan, records)
