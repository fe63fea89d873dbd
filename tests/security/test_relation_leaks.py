"""A client's filter that follows a relation sees only related records the client may view, with their guards:
on queries, counts, cursors, realtime and the read cache alike (issue 11, item 1). The app's own rules still read
relations as they are written."""
from __future__ import annotations

from tests.live.realtime.helpers import change_of, events_until
from tests.security.helpers import comment, ids, post


async def turned_private(user):
    """bob's comment on alice's post, which alice then made private: bob still sees his own comment (its rule says
    so), never the post."""
    alice, a = await user()
    bob, b = await user()
    shared = await post(alice, a, "a secret plan", public=True)
    mine = await comment(bob, b, shared["id"])
    await alice.call("records.update", {"collection": "posts", "id": shared["id"], "data": {"public": False}})
    return alice, bob, shared, mine


async def test_a_private_post_cannot_be_read_through_a_comment(user):
    alice, bob, shared, mine = await turned_private(user)
    assert await ids(bob, "comments", f'id = "{mine["id"]}"') == [mine["id"]]   # his own comment: visible
    # ... but nothing of the post behind it: not its text, not whether it is public
    for probe in ('post.text ~ "secret"', 'post.text ~ "a"', "post.public = false", f'post.author = "{shared["author"]}"'):
        assert await ids(bob, "comments", f'id = "{mine["id"]}" && {probe}') == [], probe
        page = await bob.call("records.list", {"collection": "comments", "filter": f'id = "{mine["id"]}" && {probe}',
                                               "count": True, "sort": "-created"})
        assert page["total"] == 0 and page["items"] == [], probe
    # a negation does not help either: an unreadable value is null, and null compares as unknown
    assert await ids(bob, "comments", f'id = "{mine["id"]}" && !(post.text ~ "zzz")') == []
    # the post's author, who may view it, filters through the same relation as before
    assert await ids(alice, "comments", f'id = "{mine["id"]}" && post.text ~ "secret"') == [mine["id"]]


async def test_anon_cannot_read_usernames_through_posts(user, anon):
    alice, a = await user()
    shown = await post(alice, a, "hello world", public=True)
    name = a["user"]["username"]
    assert await ids(anon, "posts", f'author = "{a["user"]["id"]}"') == [shown["id"]]
    assert await ids(anon, "posts", f'author.username = "{name}"') == []
    assert await ids(anon, "posts", f'author.username ~ "{name[:3]}"') == []
    # a signed-in reader may view users, and so filters by their names
    bob, _ = await user()
    assert await ids(bob, "posts", f'author.username = "{name}"') == [shown["id"]]


async def test_guards_apply_through_a_relation(user):
    alice, a = await user()
    bob, _ = await user()
    shown = await post(alice, a, "guarded", public=True)
    email = a["user"]["email"]
    assert await ids(alice, "posts", f'author.email = "{email}"') == [shown["id"]]   # her own email
    assert await ids(bob, "posts", f'author.email = "{email}"') == []                  # the guard hides it from him


async def test_realtime_filters_through_a_relation_hear_only_what_the_reader_may_view(user, anon):
    alice, a = await user()
    name = a["user"]["username"]
    through = (await anon.call("realtime.subscribe", {"collection": "posts",
                                                      "filter": f'author.username = "{name}"'}))["sub"]
    plain = (await anon.call("realtime.subscribe", {"collection": "posts",
                                                    "filter": f'author = "{a["user"]["id"]}"'}))["sub"]
    created = await post(alice, a, "heard by the plain filter only", public=True)
    seen = await events_until(anon, lambda e: change_of(created["id"])(e) and e.get("sub") == plain)
    assert [e["sub"] for e in seen if e.get("event") == "records.change"] == [plain]
    assert through != plain


async def test_realtime_through_a_post_that_turned_private(user):
    alice, bob, shared, mine = await turned_private(user)
    probe = (await bob.call("realtime.subscribe", {"collection": "comments",
                                                   "filter": 'post.text ~ "secret"'}))["sub"]
    marker = (await bob.call("realtime.subscribe", {"collection": "comments", "id": mine["id"]}))["sub"]
    await bob.call("records.update", {"collection": "comments", "id": mine["id"], "data": {"text": "edited"}})
    seen = await events_until(bob, lambda e: change_of(mine["id"])(e) and e.get("sub") == marker)
    assert [e["sub"] for e in seen if e.get("event") == "records.change"] == [marker]
    assert probe != marker


async def test_cursors_and_sorts_do_not_open_the_relation(user):
    alice, bob, shared, mine = await turned_private(user)
    first = await bob.call("records.list", {"collection": "comments", "filter": f'author = "{mine["author"]}"',
                                            "per_page": 1, "sort": "-created"})
    assert [c["id"] for c in first["items"]] == [mine["id"]]
    assert await ids(bob, "comments", f'author = "{mine["author"]}" && post.public = false', per_page=1,
                     sort="-created") == []
