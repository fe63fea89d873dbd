"""records.* on the demo app: what each principal may read and write, and how the data comes back."""
from __future__ import annotations

import pytest

from hapta.client import HaptaError


async def refused(coro) -> HaptaError:
    with pytest.raises(HaptaError) as info:
        await coro
    return info.value


async def post(client, session, text="hello", public=True) -> dict:
    return await client.call("records.create", {"collection": "posts", "data": {
        "author": session["user"]["id"], "text": text, "public": public}})


async def test_create_and_read_back(user):
    alice, a = await user()
    created = await post(alice, a, "  first post  ")
    assert created["text"] == "first post"        # trimmed by rules/posts.py
    assert created["author"] == a["user"]["id"] and created["public"] is True
    assert created["version"] == 1 and created["likes"] == 0 and {"id", "created", "updated"} <= set(created)
    got = await alice.call("records.get", {"collection": "posts", "id": created["id"]})
    assert got == created


async def test_private_posts_reach_their_author_alone(user, anon):
    alice, a = await user()
    bob, _ = await user()
    secret = await post(alice, a, "for my eyes", public=False)
    shown = await post(alice, a, "for everyone", public=True)
    for reader in (bob, anon):
        assert (await refused(reader.call("records.get", {"collection": "posts", "id": secret["id"]}))).code == "NOT_FOUND"
        listed = await reader.call("records.list", {"collection": "posts", "filter": f'author = "{a["user"]["id"]}"'})
        assert [p["id"] for p in listed["items"]] == [shown["id"]]
    mine = await alice.call("records.list", {"collection": "posts", "filter": f'author = "{a["user"]["id"]}"'})
    assert {p["id"] for p in mine["items"]} == {secret["id"], shown["id"]}


async def test_writes_are_checked_against_the_rules(user, anon):
    alice, a = await user()
    bob, b = await user()
    own = await post(alice, a)
    # creating as someone else, or as anon
    assert (await refused(bob.call("records.create", {"collection": "posts", "data": {
        "author": a["user"]["id"], "text": "impostor"}}))).code == "FORBIDDEN"
    # anon may not view users: to it, alice does not exist (the answer a missing record gets)
    as_anon = await refused(anon.call("records.create", {"collection": "posts", "data": {
        "author": a["user"]["id"], "text": "anon"}}))
    assert as_anon.code == "VALIDATION_FAILED" and as_anon.details == {"field": "author"}
    # someone else's public post: visible, so FORBIDDEN rather than NOT_FOUND
    assert (await refused(bob.call("records.update", {"collection": "posts", "id": own["id"],
                                                      "data": {"text": "mine now"}}))).code == "FORBIDDEN"
    assert (await refused(bob.call("records.delete", {"collection": "posts", "id": own["id"]}))).code == "FORBIDDEN"
    # giving one's own post away would leave a record its writer could not have created
    assert (await refused(alice.call("records.update", {"collection": "posts", "id": own["id"],
                                                        "data": {"author": b["user"]["id"]}}))).code == "FORBIDDEN"
    # anon may not write at all, nor see any collection but posts and comments
    assert (await refused(anon.call("records.delete", {"collection": "posts", "id": own["id"]}))).code == "FORBIDDEN"
    for collection in ("users", "likes", "messages"):
        assert (await anon.call("records.list", {"collection": collection}))["items"] == []
    untouched = await alice.call("records.get", {"collection": "posts", "id": own["id"]})
    assert untouched["author"] == a["user"]["id"] and untouched["text"] == own["text"] and untouched["version"] == 1


async def test_update_delete_and_versions(user):
    alice, a = await user()
    p = await post(alice, a, "v1")
    updated = await alice.call("records.update", {"collection": "posts", "id": p["id"], "data": {"text": "v2"},
                                                  "version": 1})
    assert updated["text"] == "v2" and updated["version"] == 2 and updated["updated"] >= p["updated"]
    stale = await refused(alice.call("records.update", {"collection": "posts", "id": p["id"],
                                                        "data": {"text": "v3"}, "version": 1}))
    assert stale.code == "CONFLICT" and stale.details == {"version": 2}
    assert await alice.call("records.delete", {"collection": "posts", "id": p["id"]}) == {"id": p["id"]}
    assert (await refused(alice.call("records.get", {"collection": "posts", "id": p["id"]}))).code == "NOT_FOUND"
    assert (await refused(alice.call("records.delete", {"collection": "posts", "id": p["id"]}))).code == "NOT_FOUND"


async def test_rule_hook_refuses_long_posts(user):
    alice, a = await user()
    denied = await refused(post(alice, a, "x" * 281))
    assert denied.code == "RULE_DENIED" and "280" in denied.message
    assert (await refused(post(alice, a, "   "))).code == "RULE_DENIED"
    ok = await post(alice, a, "x" * 280)
    denied = await refused(alice.call("records.update", {"collection": "posts", "id": ok["id"],
                                                         "data": {"text": "y" * 300}}))
    assert denied.code == "RULE_DENIED"


async def test_validation_names_the_field(user):
    alice, a = await user()
    cases = [
        ({"author": a["user"]["id"], "text": 5}, "text"),
        ({"author": a["user"]["id"], "text": "hi", "public": "yes"}, "public"),
        ({"author": a["user"]["id"], "text": "hi", "nonsense": 1}, "nonsense"),
        ({"author": a["user"]["id"], "text": "hi", "likes": 1000}, "likes"),       # readonly
        ({"author": a["user"]["id"], "text": "hi", "version": 9}, "version"),      # system
        ({"author": a["user"]["id"]}, "text"),                                     # required
        ({"author": a["user"]["id"], "text": None}, "text"),
        ({"author": a["user"]["id"], "text": "nul\x00byte"}, "text"),
    ]
    for data, field in cases:
        error = await refused(alice.call("records.create", {"collection": "posts", "data": data}))
        assert error.code == "VALIDATION_FAILED" and error.details["field"] == field, (data, error.message)


async def test_unique_violation_is_a_conflict(user):
    alice, a = await user()
    p = await post(alice, a)
    like = {"collection": "likes", "data": {"post": p["id"], "user": a["user"]["id"]}}
    await alice.call("records.create", like)
    duplicate = await refused(alice.call("records.create", like))
    assert duplicate.code == "CONFLICT" and duplicate.details == {"fields": ["post", "user"]}


async def test_email_reaches_its_owner_alone(user):
    alice, a = await user()
    bob, b = await user()
    seen_by_bob = await bob.call("records.get", {"collection": "users", "id": a["user"]["id"]})
    assert seen_by_bob["email"] is None and seen_by_bob["username"] == a["user"]["username"]
    assert "password_hash" not in seen_by_bob
    seen_by_alice = await alice.call("records.get", {"collection": "users", "id": a["user"]["id"]})
    assert seen_by_alice["email"] == a["user"]["email"]
    # filtering on someone else's email finds nothing, so it cannot be used to probe addresses
    probe = await bob.call("records.list", {"collection": "users", "filter": f'email = "{a["user"]["email"]}"'})
    assert probe["items"] == []
    hidden = await refused(bob.call("records.list", {"collection": "users", "filter": 'password_hash != null'}))
    assert hidden.code == "BAD_REQUEST"


async def test_comments_follow_their_post(user, anon):
    alice, a = await user()
    bob, b = await user()
    public, private = await post(alice, a, "open"), await post(alice, a, "closed", public=False)
    c1 = await bob.call("records.create", {"collection": "comments", "data": {
        "post": public["id"], "author": b["user"]["id"], "text": "nice"}})
    # bob cannot see the private post, so he cannot comment on it: to him it does not exist, and he is told so
    # exactly as for a post that does not exist at all (no oracle for what the rules hide)
    peek = await refused(bob.call("records.create", {"collection": "comments", "data": {
        "post": private["id"], "author": b["user"]["id"], "text": "peek"}}))
    missing = await refused(bob.call("records.create", {"collection": "comments", "data": {
        "post": "nosuchpost00000", "author": b["user"]["id"], "text": "peek"}}))
    assert (peek.code, peek.message, peek.details) == (missing.code, missing.message, missing.details) == (
        "VALIDATION_FAILED", "post refers to a record that does not exist", {"field": "post"})
    c2 = await alice.call("records.create", {"collection": "comments", "data": {
        "post": private["id"], "author": a["user"]["id"], "text": "note to self"}})
    on_posts = f'post = "{public["id"]}" || post = "{private["id"]}"'
    assert [c["id"] for c in (await anon.call("records.list", {"collection": "comments", "filter": on_posts}))["items"]] == [c1["id"]]
    assert [c["id"] for c in (await bob.call("records.list", {"collection": "comments", "filter": on_posts}))["items"]] == [c1["id"]]
    mine = await alice.call("records.list", {"collection": "comments", "filter": on_posts, "sort": "created"})
    assert [c["id"] for c in mine["items"]] == [c1["id"], c2["id"]]
    # the relation filter works in user filters too
    via_relation = await anon.call("records.list", {"collection": "comments",
                                                    "filter": f'post.author = "{a["user"]["id"]}"'})
    assert [c["id"] for c in via_relation["items"]] == [c1["id"]]


async def test_messages_between_two_users(user):
    alice, a = await user()
    bob, b = await user()
    carol, _ = await user()
    sent = await alice.call("records.create", {"collection": "messages", "data": {
        "sender": a["user"]["id"], "recipient": b["user"]["id"], "text": "hi bob"}})
    assert (await refused(carol.call("records.create", {"collection": "messages", "data": {
        "sender": a["user"]["id"], "recipient": b["user"]["id"], "text": "spoof"}}))).code == "FORBIDDEN"
    assert (await bob.call("records.get", {"collection": "messages", "id": sent["id"]}))["text"] == "hi bob"
    assert (await refused(carol.call("records.get", {"collection": "messages", "id": sent["id"]}))).code == "NOT_FOUND"
    assert (await carol.call("records.list", {"collection": "messages"}))["items"] == []


async def test_pages_cursors_fields_and_count(user):
    alice, a = await user()
    ids = [(await post(alice, a, f"post {i}"))["id"] for i in range(7)]
    mine = f'author = "{a["user"]["id"]}"'
    first = await alice.call("records.list", {"collection": "posts", "filter": mine, "sort": "-created",
                                              "per_page": 3, "count": True, "fields": ["id", "text"]})
    assert first["total"] == 7 and first["page"] == 1 and first["per_page"] == 3
    assert [set(item) for item in first["items"]] == [{"id", "text"}] * 3
    seen, cursor = [i["id"] for i in first["items"]], first["next"]
    while cursor:
        page = await alice.call("records.list", {"collection": "posts", "filter": mine, "sort": "-created",
                                                 "per_page": 3, "after": cursor})
        seen += [i["id"] for i in page["items"]]
        cursor = page.get("next")
    assert seen == list(reversed(ids))
    third = await alice.call("records.list", {"collection": "posts", "filter": mine, "sort": "-created",
                                              "per_page": 3, "page": 3})
    assert [i["id"] for i in third["items"]] == [ids[0]] and "next" not in third
    by_text = await alice.call("records.list", {"collection": "posts", "filter": f'{mine} && text ~ "POST 3"'})
    assert [i["id"] for i in by_text["items"]] == [ids[3]]


async def test_admin_sees_everything_and_hidden_fields_stay_hidden(user, admin):
    alice, a = await user()
    secret = await post(alice, a, "private", public=False)
    assert (await admin.call("records.get", {"collection": "posts", "id": secret["id"]}))["id"] == secret["id"]
    someone = await admin.call("records.get", {"collection": "users", "id": a["user"]["id"]})
    assert someone["email"] == a["user"]["email"] and "password_hash" not in someone
    # Guards do not hide a column from admins, in filters either.
    found = await admin.call("records.list", {"collection": "users", "filter": f'email = "{a["user"]["email"]}"'})
    assert [item["id"] for item in found["items"]] == [a["user"]["id"]]


async def test_unreachable_collections(admin):
    for name in ("sessions", "hapta.sessions", "refresh_tokens", "pg_user", "migrations"):
        assert (await refused(admin.call("records.list", {"collection": name}))).code == "NOT_FOUND"


async def test_deleted_user_token_stops_working(user, connect):
    alice, a = await user()
    await alice.call("records.delete", {"collection": "users", "id": a["user"]["id"]})
    other = await connect()
    assert (await refused(other.call("auth.resume", {"token": a["token"]}))).code == "TOKEN_INVALID"
