"""The demo app's own rules (issue 11, item 5): who liked what is seen only where the post is, and an update
cannot move a record where its writer could not have created it (Collection.update_checks_create)."""
from __future__ import annotations

from hapta.config import App, Collection
from hapta.models import build_models
from hapta.query.ast import And
from tests.live.cache.test_read_cache import _info
from tests.security.helpers import comment, ids, post, refused


async def test_the_likes_of_a_private_post_are_seen_only_where_the_post_is(user):
    alice, a = await user()
    bob, _ = await user()
    private = await post(alice, a, "only mine", public=False)
    like = await alice.call("records.create", {"collection": "likes", "data": {"post": private["id"],
                                                                                "user": a["user"]["id"]}})
    assert await ids(alice, "likes", f'post = "{private["id"]}"') == [like["id"]]
    for probe in (f'post = "{private["id"]}"', f'user = "{a["user"]["id"]}"', f'id = "{like["id"]}"'):
        assert await ids(bob, "likes", probe) == [], probe
    assert (await refused(bob.call("records.get", {"collection": "likes", "id": like["id"]}))).code == "NOT_FOUND"
    # a public post's likes stay readable by every signed-in user
    shown = await post(alice, a, "for all", public=True)
    liked = await alice.call("records.create", {"collection": "likes", "data": {"post": shown["id"],
                                                                               "user": a["user"]["id"]}})
    assert await ids(bob, "likes", f'post = "{shown["id"]}"') == [liked["id"]]


async def test_a_comment_cannot_be_moved_onto_a_post_its_author_may_not_comment_on(user):
    alice, a = await user()
    bob, b = await user()
    open_post = await post(alice, a, "open", public=True)
    closed = await post(alice, a, "closed", public=False)
    mine = await comment(bob, b, open_post["id"])
    moved = await refused(bob.call("records.update", {"collection": "comments", "id": mine["id"],
                                                      "data": {"post": closed["id"]}}))
    assert moved.code == "VALIDATION_FAILED" and moved.details == {"field": "post"}
    back = await bob.call("records.get", {"collection": "comments", "id": mine["id"]})
    assert back["post"] == open_post["id"] and back["version"] == mine["version"]
    # editing its text is no move: allowed, even once the post has turned private
    await alice.call("records.update", {"collection": "posts", "id": open_post["id"], "data": {"public": False}})
    edited = await bob.call("records.update", {"collection": "comments", "id": mine["id"], "data": {"text": "hm"}})
    assert edited["text"] == "hm"


def _drafts(update_checks_create: bool):
    """Posts that start as drafts (create: public = false); their update rule alone would let one publish."""
    app = App(collections=[Collection("posts", list="", view="", create="public = false && author = @user.id",
                                      update="author = @user.id", update_checks_create=update_checks_create)])
    _, models = build_models(app, {"posts": _info("posts", {"author": "text", "public": "bool", "text": "text"})})
    return models["posts"]


def test_an_update_that_changes_what_the_create_rule_reads_must_pass_it():
    model = _drafts(update_checks_create=True)
    assert model.create_reads == {"public", "author"}
    joined = model.update_rule(["public"])
    assert isinstance(joined, And) and joined.items == (model.rules["update"], model.rules["create"])
    assert model.update_rule(["author", "text"]) == joined
    assert model.update_rule(["text"]) is model.rules["update"]   # not a move


def test_update_checks_create_can_be_turned_off():
    model = _drafts(update_checks_create=False)
    assert model.update_rule(["public"]) is model.rules["update"]
