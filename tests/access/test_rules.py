"""The access module's decisions without any server: the rule for an op and a principal, who may call at all, and
the key that tells principals apart exactly as far as the rules do (shared by the read cache and realtime groups)."""
from __future__ import annotations

import pytest

from hapta.access import check_caller, may_join, reads, rule_for, variable_key
from hapta.access.channels import compile_rules
from hapta.access.filters import bound_filter, query_key
from hapta.config import App, Collection
from hapta.live.realtime import Topic
from hapta.models import EVERYONE, build_models
from hapta.principal import ADMIN, ANON, GUEST, USER, Principal
from hapta.protocol.errors import HaptaError
from hapta.query.ast import And
from tests.live.cache.test_read_cache import _info

ALICE, BOB = Principal(USER, "alice"), Principal(USER, "bob")


@pytest.fixture(scope="module")
def models():
    app = App(collections=[
        Collection("posts", list="public = true || author = @user.id", view="public = true || author = @user.id",
                   create="author = @user.id", update="author = @user.id", delete=None),
        Collection("comments", list="post.public = true", view="post.public = true",
                   create="author = @user.id && post.public = true", update="author = @user.id"),
        Collection("notes", list='@user.role = "user"', view='@user.role = "user"'),
    ])
    infos = {"posts": _info("posts", {"author": "text", "public": "bool", "text": "text"}),
             "comments": _info("comments", {"post": "text", "author": "text", "text": "text"}, {"post": "posts"}),
             "notes": _info("notes", {"text": "text"})}
    return build_models(app, infos)


def test_admins_pass_every_rule_and_admin_only_ops_refuse_everyone_else(models):
    _, found = models
    posts = found["posts"]
    assert rule_for(posts, "delete", Principal(ADMIN)) is EVERYONE
    assert rule_for(posts, "list", ALICE) is posts.rules["list"]
    with pytest.raises(HaptaError) as refused:
        rule_for(posts, "delete", ALICE)
    assert refused.value.code == "FORBIDDEN"


def test_an_update_that_moves_a_record_must_also_pass_the_create_rule(models):
    _, found = models
    comments = found["comments"]
    assert rule_for(comments, "update", ALICE, changed=["text"]) is comments.rules["update"]
    moved = rule_for(comments, "update", ALICE, changed=["post"])
    assert isinstance(moved, And) and comments.rules["create"] in moved.items


@pytest.mark.parametrize("principal, guest_ok, code", [
    (Principal(GUEST), False, "UNAUTHENTICATED"),
    (Principal(USER, "alice", "s1", expires_at=1), False, "TOKEN_EXPIRED"),
    (Principal(USER, "alice", "s1", expires_at=1), True, None),
    (Principal(GUEST), True, None),
    (Principal(ANON), False, None),
])
def test_who_may_call_an_op_at_all(principal, guest_ok, code):
    if code is None:
        check_caller(principal, "records.list", guest_ok)
        return
    with pytest.raises(HaptaError) as refused:
        check_caller(principal, "records.list", guest_ok)
    assert refused.value.code == code


def test_principals_the_rules_cannot_tell_apart_share_one_key(models):
    _, found = models
    by_user, by_role = reads((found["posts"].rules["list"],)), reads((found["notes"].rules["list"],))
    assert variable_key(by_user[0], ALICE) != variable_key(by_user[0], BOB)
    assert variable_key(by_role[0], ALICE) == variable_key(by_role[0], BOB)   # the rule reads only the role
    assert variable_key(by_role[0], ALICE) != variable_key(by_role[0], Principal(ANON))
    assert variable_key(by_user[0], Principal(ADMIN)) != variable_key(by_user[0], Principal(ANON))


def test_the_read_cache_and_realtime_group_principals_alike(models):
    """One function keys both: principals that share a cached answer share a realtime group, and only they."""
    schema, found = models
    for model_name in ("posts", "notes", "comments"):
        model = found[model_name]
        topic = Topic.of(model, None, None, model.visible)
        for one, other in ((ALICE, BOB), (ALICE, Principal(ANON)), (ALICE, ALICE)):
            cache_one = query_key(model, "view", one, None, model.visible, ())[0]
            cache_other = query_key(model, "view", other, None, model.visible, ())[0]
            assert (cache_one == cache_other) == (topic.group_key(one) == topic.group_key(other)), model_name


def test_a_filter_through_a_relation_is_bound_through_the_related_view_rule(models):
    schema, found = models
    bound = bound_filter(found["comments"], schema, "post.text = \"x\"")
    assert "user.id" in reads((bound.node,))[0]   # posts' view rule reads who asks: part of the key


def test_channel_rules_first_match_decides_and_admins_join_anything():
    rules = compile_rules({"room:*": "@user.id != null", "user:*": "part1 = @user.id", "ops:*": None})
    assert may_join(rules, "room:lobby", ALICE) and not may_join(rules, "room:lobby", Principal(ANON))
    assert may_join(rules, "user:alice", ALICE) and not may_join(rules, "user:alice", BOB)
    assert not may_join(rules, "ops:deploy", ALICE) and may_join(rules, "ops:deploy", Principal(ADMIN))
    assert not may_join(rules, "elsewhere", ALICE) and may_join(rules, "elsewhere", Principal(ADMIN))


def test_a_record_read_by_id_is_shared_where_the_rule_alone_tells_readers_apart(models):
    from hapta.access import anyone_key, anyone_sees
    _, found = models
    posts, comments, notes = found["posts"], found["comments"], found["notes"]
    rest = ("get", "p1", ("id", "text"))
    assert anyone_key(posts, ALICE, ("text",), rest) == anyone_key(posts, BOB, ("text",), rest) is not None
    assert anyone_key(posts, Principal(ANON), ("text",), rest) == anyone_key(posts, ALICE, ("text",), rest)
    assert anyone_key(posts, Principal(ADMIN), ("text",), rest) is None      # admins have a key of their own
    assert anyone_key(comments, ALICE, ("text",), rest) is None              # the rule reads a relation
    public = {"id": "p1", "author": "alice", "public": True, "text": "hi"}
    assert anyone_sees(posts, public) is True
    assert anyone_sees(posts, {**public, "public": False}) is None            # its author's alone: per reader
    assert anyone_sees(posts, None) is False                                 # no such record: for no one
    assert anyone_sees(notes, {"id": "n1", "text": "x"}) is None             # decided by the role, per reader
