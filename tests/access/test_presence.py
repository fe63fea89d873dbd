"""Presence profiles without any server: which fields of a member's users record each reader is shown
(access/presence.py), and the configurations refused at start."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hapta.access.channels import compile_rules, presence_of
from hapta.access.presence import Profiles
from hapta.config import App, Channel, Collection, ConfigError, check_app
from hapta.models import build_models
from hapta.principal import ADMIN, ANON, USER, Principal
from tests.live.cache.test_read_cache import _info

ALICE, BOB = Principal(USER, "alice"), Principal(USER, "bob")
ALICE_RECORD = {"id": "alice", "username": "alice", "email": "alice@example.com",
                "created": datetime(2024, 1, 2, tzinfo=timezone.utc), "org": None}


def _users(**changes):
    fields = {"list": "@user.id != null", "view": "@user.id != null", "hidden": ("password_hash",),
              "guarded": {"email": "id = @user.id"}, **changes}
    app = App(collections=[Collection("users", **fields), Collection("orgs", list="", view="public = true")])
    infos = {"users": _info("users", {"username": "text", "email": "text", "password_hash": "text", "org": "text"},
                            {"org": "orgs"}),
             "orgs": _info("orgs", {"public": "bool"})}
    return build_models(app, infos)[1]


def test_each_reader_sees_what_the_users_rules_show_them():
    profiles = Profiles(_users()["users"], ("username", "email"), "App.channels['x']")
    assert profiles.shown(ALICE_RECORD, ALICE) == {"username": "alice", "email": "alice@example.com"}   # her own
    assert profiles.shown(ALICE_RECORD, BOB) == {"username": "alice", "email": None}   # the guard: hers alone
    assert profiles.shown(ALICE_RECORD, Principal(ADMIN))["email"] == "alice@example.com"
    assert profiles.shown(ALICE_RECORD, Principal(ANON)) is None   # the view rule: signed-in readers only
    assert profiles.shown(None, BOB) is None                        # an anon or admin member: no users record
    assert profiles.columns == ("id", "username", "email")         # what is loaded: shown, and judged by
    assert profiles.key(BOB) != profiles.key(ALICE)                 # the guard reads who asks


def test_readers_the_rules_cannot_tell_apart_share_one_shape():
    profiles = Profiles(_users(view='@user.role = "user"')["users"], ("username",), "App.channels['x']")
    assert profiles.key(BOB) == profiles.key(Principal(USER, "carol")) != profiles.key(Principal(ANON))


def test_a_view_rule_for_admins_only_shows_no_one_else_a_profile():
    profiles = Profiles(_users(view=None)["users"], ("username",), "App.channels['x']")
    assert profiles.shown(ALICE_RECORD, BOB) is None
    assert profiles.shown(ALICE_RECORD, Principal(ADMIN)) == {"username": "alice"}


@pytest.mark.parametrize("fields, changes, message", [
    (("password_hash",), {}, "'password_hash', which is not a visible field of users"),
    (("avatar",), {}, "'avatar', which is not a visible field of users"),
    (("username",), {"view": "org.public = true"}, "reads through a relation"),
    (("email",), {"guarded": {"email": "org.public = true"}}, "reads through a relation"),
])
def test_what_presence_cannot_show_stops_the_start(fields, changes, message):
    with pytest.raises(ConfigError) as refused:
        Profiles(_users(**changes)["users"], fields, "App.channels['room:*']")
    assert message in str(refused.value) and "App.channels['room:*'].presence" in str(refused.value)


def test_presence_needs_the_users_collection():
    with pytest.raises(ConfigError) as refused:
        Profiles(None, ("username",), "App.channels['room:*']")
    assert "does not declare" in str(refused.value)


def test_a_channel_pattern_says_its_presence_and_the_first_match_decides():
    rules = compile_rules({"room:vip": "@user.id != null", "room:*": Channel("@user.id != null", ("username",)),
                           "ops:*": Channel(None)})
    assert presence_of(rules, "room:lobby") == ("username",)
    assert presence_of(rules, "room:vip") == ()
    assert presence_of(rules, "ops:deploy") == () and presence_of(rules, "nowhere") == ()


@pytest.mark.parametrize("channel, message", [
    (Channel("", presence="username"), "expected a list of strings, got the string 'username'"),
    (Channel("", presence=("username", "username")), "names 'username' twice"),
    (("", ("username",)), "expected a dict of strings to strings or None or Channels"),
])
def test_app_channels_are_checked_before_anything_runs(channel, message):
    with pytest.raises(ConfigError) as refused:
        check_app(App(collections=[], channels={"room:*": channel}))
    assert message in str(refused.value)
