"""Visibility through relations (issue 29), through real sockets on the demo app: a post turned private hides its
comments from every reader but their authors and the post's author, and turned public shows them again. Every
subscriber of comments that could see one and no longer can gets a `delete` of its id; one that now can gets a
`create` of the record as records.get shows it; one that could see it before and after, or neither, nothing.
The events carry the post's change's position, whether the post changed through the gateway or straight in SQL,
and a resume with `since` across the change gets the same."""
from __future__ import annotations

import secrets

import asyncpg

from hapta.client import Client
from tests.conftest import PASSWORD
from tests.live.realtime.helpers import change_of, events_until, post

CHANGE = "records.change"


async def _comment(client: Client, post_id: str, author: str, text: str = "a comment") -> dict:
    return await client.call("records.create", {"collection": "comments",
                                                "data": {"post": post_id, "author": author, "text": text}})


def _heard(events: list[dict]) -> list[tuple[str, str, dict]]:
    """(action, record id, record) of each change event, in order."""
    return [(e["data"]["action"], e["data"]["record"]["id"], e["data"]["record"]) for e in events
            if e.get("event") == CHANGE]


class Cast:
    """alice writes a post; carol and alice comment on it; bob only reads. Each is signed in and subscribed to
    comments; a marker comment (on a public post of its own) proves what did not arrive before it."""

    @classmethod
    async def make(cls, user) -> "Cast":
        self = cls()
        (self.alice, alice), (self.carol, carol), (self.bob, bob) = await user(), await user(), await user()
        self.ids = {"alice": alice["user"]["id"], "carol": carol["user"]["id"], "bob": bob["user"]["id"]}
        self.emails = {"bob": bob["user"]["email"]}
        self.post = await post(self.alice, self.ids["alice"], "comments follow me")
        self.elsewhere = await post(self.alice, self.ids["alice"], "markers go here")
        self.carols = await _comment(self.carol, self.post["id"], self.ids["carol"], "carol's")
        self.alices = await _comment(self.alice, self.post["id"], self.ids["alice"], "alice's")
        self.subs = {}
        for name in ("alice", "carol", "bob"):
            self.subs[name] = (await getattr(self, name).call("realtime.subscribe", {"collection": "comments"}))
        return self

    marker: dict | None = None

    def round(self) -> None:
        """A new round: the next marker is made anew."""
        self.marker = None

    async def raw(self, name: str) -> list[dict]:
        """Every event `name` heard before this round's marker (made on the round's first call)."""
        if self.marker is None:
            self.marker = await _comment(self.alice, self.elsewhere["id"], self.ids["alice"], "marker")
        events = await events_until(getattr(self, name), change_of(self.marker["id"]))
        return events[:-1]

    async def until_marker(self, name: str) -> list[tuple[str, str, dict]]:
        return _heard(await self.raw(name))


async def test_a_post_turned_private_and_public_again_moves_its_comments(user):
    cast = await Cast.make(user)
    both = {cast.carols["id"], cast.alices["id"]}
    await cast.bob.call("realtime.subscribe", {"collection": "posts", "id": cast.post["id"]})

    cast.round()
    await cast.alice.call("records.update", {"collection": "posts", "id": cast.post["id"], "data": {"public": False}})
    changes = await cast.raw("bob")
    # the post's own event first, then its comments', all at the post's change's position, each with its id alone
    assert changes[0]["data"] == {"action": "delete", "collection": "posts", "record": {"id": cast.post["id"]},
                                  "pos": changes[0]["data"]["pos"]}
    position = changes[0]["data"]["pos"]
    assert position > cast.subs["bob"]["pos"] and len(changes) == 3
    assert sorted((e["sub"], e["data"]["action"], e["data"]["collection"], e["data"]["pos"], e["data"]["record"]["id"])
                  for e in changes[1:]) == sorted((cast.subs["bob"]["sub"], "delete", "comments", position, rid)
                                                  for rid in both)
    assert all(e["data"]["record"] == {"id": e["data"]["record"]["id"]} for e in changes)
    # carol still sees her own comment (the rule lets authors see theirs): only alice's leaves her view
    assert [(action, rid) for action, rid, _ in await cast.until_marker("carol")] == \
        [("delete", cast.alices["id"])]
    assert await cast.until_marker("alice") == []   # the post's author sees every comment on it

    cast.round()
    await cast.alice.call("records.update", {"collection": "posts", "id": cast.post["id"], "data": {"public": True}})
    heard = await cast.until_marker("bob")
    assert heard[0][:2] == ("update", cast.post["id"])   # the post itself, as for any record entering a view
    assert {(action, rid) for action, rid, _ in heard[1:]} == {("create", rid) for rid in both} and len(heard) == 3
    for _, rid, record in heard[1:]:   # the record exactly as records.get shows it to bob
        assert record == await cast.bob.call("records.get", {"collection": "comments", "id": rid})
    assert [(action, rid) for action, rid, _ in await cast.until_marker("carol")] == [("create", cast.alices["id"])]
    assert await cast.until_marker("alice") == []


async def test_straight_sql_changes_of_the_post_move_its_comments_too(user, database):
    """An admin's UPDATE outside the gateway: the same events. Moving a private post to another author shows its
    comments to the new author, and to a reader who could see them neither before nor after, nothing."""
    cast = await Cast.make(user)
    dave, _ = await user()
    filtered, _ = await user()
    await dave.call("realtime.subscribe", {"collection": "comments"})
    # a filter that matches neither comment: nothing moves for it
    await filtered.call("realtime.subscribe", {"collection": "comments", "filter": 'text = "marker"'})
    sql = await asyncpg.connect(database)
    try:
        cast.round()
        await sql.execute("UPDATE posts SET public = false WHERE id = $1", cast.post["id"])
        assert {(action, rid) for action, rid, _ in await cast.until_marker("bob")} == \
            {("delete", cast.carols["id"]), ("delete", cast.alices["id"])}
        assert [(a, rid) for a, rid, _ in await cast.until_marker("carol")] == [("delete", cast.alices["id"])]
        assert await cast.until_marker("alice") == []   # the post's author
        heard = _heard(await events_until(dave, change_of(cast.marker["id"])))   # dave saw them as bob did
        assert {(a, rid) for a, rid, _ in heard[:-1]} == \
            {("delete", cast.carols["id"]), ("delete", cast.alices["id"])}
        assert _heard(await events_until(filtered, change_of(cast.marker["id"])))[:-1] == []

        cast.round()   # the private post changes hands: bob now writes it
        await sql.execute("UPDATE posts SET author = $2 WHERE id = $1", cast.post["id"], cast.ids["bob"])
        heard = await cast.until_marker("bob")
        assert {(action, rid) for action, rid, _ in heard} == \
            {("create", cast.carols["id"]), ("create", cast.alices["id"])}
        for _, rid, record in heard:
            assert record == await cast.bob.call("records.get", {"collection": "comments", "id": rid})
        # dave could see them neither before nor after; alice's own comment stays hers, carol's is not alice's
        assert _heard(await events_until(dave, change_of(cast.marker["id"])))[:-1] == []
        assert _heard(await events_until(filtered, change_of(cast.marker["id"])))[:-1] == []
        assert await cast.until_marker("carol") == []
        assert [(a, rid) for a, rid, _ in await cast.until_marker("alice")] == [("delete", cast.carols["id"])]
    finally:
        await sql.close()


async def test_comments_deleted_with_their_post_leave_who_saw_them_through_it(user, database):
    """The post is deleted and its comments with it (ON DELETE CASCADE, in the same transaction): their deletes
    are judged with the post as it was, so whoever saw them through it sees them go."""
    cast = await Cast.make(user)
    private = await post(cast.alice, cast.ids["alice"], "never public", public=False)
    unseen = await _comment(cast.alice, private["id"], cast.ids["alice"], "on a private post")
    cast.round()
    await cast.alice.call("records.delete", {"collection": "posts", "id": cast.post["id"]})
    sql = await asyncpg.connect(database)
    try:
        await sql.execute("DELETE FROM posts WHERE id = $1", private["id"])
    finally:
        await sql.close()
    for name in ("bob", "carol", "alice"):
        heard = await cast.until_marker(name)
        if name == "alice":   # she made the comment on her private post, and sees it go
            assert heard[0][:2] == ("create", unseen["id"]) and heard.pop(0)
        assert sorted((action, rid) for action, rid, _ in heard) == sorted(
            [("delete", cast.carols["id"]), ("delete", cast.alices["id"])] + (
                [("delete", unseen["id"])] if name == "alice" else [])), name
        assert all(record["text"] for _, _, record in heard)   # a delete carries the record as it was


async def test_a_comment_that_changed_with_its_post_is_heard_once(user, database):
    """One transaction edits a comment and hides its post: one event for the comment, whatever came first."""
    cast = await Cast.make(user)
    sql = await asyncpg.connect(database)
    try:
        cast.round()
        async with sql.transaction():
            await sql.execute("UPDATE comments SET text = 'edited' WHERE id = $1", cast.carols["id"])
            await sql.execute("UPDATE posts SET public = false WHERE id = $1", cast.post["id"])
        assert sorted((a, rid) for a, rid, _ in await cast.until_marker("bob")) == \
            sorted([("delete", cast.carols["id"]), ("delete", cast.alices["id"])])
        cast.round()
        async with sql.transaction():
            await sql.execute("UPDATE posts SET public = true WHERE id = $1", cast.post["id"])
            await sql.execute("UPDATE comments SET text = 'again' WHERE id = $1", cast.carols["id"])
        events = await cast.until_marker("bob")
        heard = {rid: (action, record) for action, rid, record in events}
        assert set(heard) == {cast.carols["id"], cast.alices["id"]} and len(events) == 2
        assert heard[cast.alices["id"]][0] == "create"
        assert heard[cast.carols["id"]][0] == "update" and heard[cast.carols["id"]][1]["text"] == "again"
    finally:
        await sql.close()


async def test_a_resume_across_the_change_gets_what_a_live_subscriber_got(user, connect):
    cast = await Cast.make(user)

    async def bob_again() -> Client:
        client = await connect()
        await client.call("auth.login", {"identity": cast.emails["bob"], "password": PASSWORD})
        return client

    for public in (False, True):
        dropped = await bob_again()
        since = (await dropped.call("realtime.subscribe", {"collection": "comments"}))["pos"]
        await dropped.close()
        cast.round()
        await cast.alice.call("records.update", {"collection": "posts", "id": cast.post["id"],
                                                 "data": {"public": public}})
        live = await events_until(cast.bob, change_of(await _marker(cast)))
        back = await bob_again()
        resumed = await back.call("realtime.subscribe", {"collection": "comments", "since": since})
        replayed = await events_until(back, change_of(cast.marker["id"]))
        assert resumed["pos"] == since
        assert _sorted(replayed) == _sorted(live) and len(live) == 3

        # A client that got part of one change's events (they share its position) resumes from that position:
        # they are sent again, and nothing else before what came after.
        at = next(e["data"]["pos"] for e in live if e["data"]["record"]["id"] != cast.marker["id"])
        partial = await bob_again()
        await partial.call("realtime.subscribe", {"collection": "comments", "since": at})
        again = await events_until(partial, change_of(cast.marker["id"]))
        assert _sorted(again) == _sorted(live)


async def test_a_resume_from_a_change_that_was_undone_since_gets_the_records_back(user, connect):
    """The post turned private (p), then public again (q): a client that got the deletes at p, all or some,
    resumes from p and gets the creates of q, as a live subscriber did."""
    cast = await Cast.make(user)
    await cast.alice.call("records.update", {"collection": "posts", "id": cast.post["id"], "data": {"public": False}})
    *hidden, first_marker = await events_until(cast.bob, change_of(await _marker(cast)))
    await cast.alice.call("records.update", {"collection": "posts", "id": cast.post["id"], "data": {"public": True}})
    live = await events_until(cast.bob, change_of(await _marker(cast)))
    assert {e["data"]["action"] for e in live[:-1]} == {"create"} and len(live) == 3
    back = await connect()
    await back.call("auth.login", {"identity": cast.emails["bob"], "password": PASSWORD})
    await back.call("realtime.subscribe", {"collection": "comments", "since": hidden[0]["data"]["pos"]})
    replayed = await events_until(back, change_of(cast.marker["id"]))
    assert _sorted(replayed) == _sorted([first_marker, *live])


async def _marker(cast: Cast) -> str:
    cast.marker = await _comment(cast.alice, cast.elsewhere["id"], cast.ids["alice"], "marker")
    return cast.marker["id"]


def _sorted(events: list[dict]) -> list[tuple]:
    return sorted((e["data"]["pos"], e["data"]["action"], e["data"]["record"]["id"], repr(e["data"]["record"]))
                  for e in events if e.get("event") == CHANGE)


async def test_past_the_bound_on_dependents_subscribers_are_told_to_refetch(user, connect, database):
    """A post with more comments than are read for one change (MAX_DEPENDENTS): its subscribers of comments get
    `realtime.reset` for their subscription (refetch), live and on resume, rather than an unbounded read."""
    from hapta.live.realtime import MAX_DEPENDENTS
    writer, alice = await user()
    reader, bob = await user()
    busy = await post(writer, alice["user"]["id"], "popular " + secrets.token_hex(3))
    sql = await asyncpg.connect(database)
    try:
        await sql.execute("INSERT INTO comments (post, author, text) SELECT $1, $2, 'c' || g "
                          "FROM generate_series(1, $3::int) g", busy["id"], alice["user"]["id"], MAX_DEPENDENTS + 1)
        started = await reader.call("realtime.subscribe", {"collection": "comments"})
        await sql.execute("UPDATE posts SET public = false WHERE id = $1", busy["id"])
    finally:
        await sql.close()
    event = await reader.next_event(timeout=10)
    assert event == {"event": "realtime.reset", "sub": started["sub"],
                     "data": {"subs": [started["sub"]], "channels": []}}
    back = await connect()
    await back.call("auth.login", {"identity": bob["user"]["email"], "password": PASSWORD})
    resumed = await back.call("realtime.subscribe", {"collection": "comments", "since": started["pos"]})
    event = await back.next_event(timeout=10)
    assert event["event"] == "realtime.reset" and event["data"]["subs"] == [resumed["sub"]]
    assert resumed["pos"] > started["pos"]
