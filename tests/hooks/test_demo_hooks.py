"""The demo app's own hooks (rules/posts.py, rules/likes.py) through the session's gateway."""
from __future__ import annotations

import pytest

from hapta.client import HaptaError
from tests.hooks.conftest import eventually


async def test_posts_are_trimmed_and_refused_past_280_characters(user):
    alice, a = await user()
    post = await alice.call("records.create", {"collection": "posts", "data": {
        "author": a["user"]["id"], "text": "  hello  ", "public": True}})
    assert post["text"] == "hello"
    with pytest.raises(HaptaError) as refused:
        await alice.call("records.update", {"collection": "posts", "id": post["id"], "data": {"text": "x" * 281}})
    assert refused.value.code == "RULE_DENIED" and str(refused.value) == "a post is at most 280 characters"


async def test_likes_keep_the_posts_counter(user):
    """after_create / after_delete of likes update posts.likes through ctx.sql, after the reply."""
    alice, a = await user()
    post = await alice.call("records.create", {"collection": "posts", "data": {
        "author": a["user"]["id"], "text": "like me", "public": True}})
    likers = [await user() for _ in range(3)]
    likes = [await client.call("records.create", {"collection": "likes", "data": {
        "post": post["id"], "user": session["user"]["id"]}}) for client, session in likers]

    def likes_are(n: int):
        async def check() -> bool:
            return (await alice.call("records.get", {"collection": "posts", "id": post["id"]}))["likes"] == n
        return check

    await eventually(likes_are(3), timeout=10)
    (client, _), like = likers[0], likes[0]
    await client.call("records.delete", {"collection": "likes", "id": like["id"]})
    await eventually(likes_are(2), timeout=10)
