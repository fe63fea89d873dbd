"""records.aggregate through the in-process gateway (tests/harness.py) on the test app: it counts and sums exactly
what records.list would list for the asker (rows the list rule hides count nothing), guarded fields are the admin's
alone, every mistake is a precise BAD_REQUEST, and its cached answers are never another reader's."""
from __future__ import annotations

import secrets
import string

import pytest


def _word() -> str:
    return "zq" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


async def _post(device, text: str, public: bool = True) -> dict:
    return await device.call("records.create", {"collection": "posts", "data": {
        "author": device.user["id"], "text": text, "public": public}})


async def _aggregate(device, **args) -> dict:
    return await device.call("records.aggregate", {"collection": "posts", **args})


def _counts(answer: dict, field: str) -> dict:
    return {group["key"][field]: group["count"] for group in answer["groups"]}


async def test_rows_the_reader_may_not_list_count_nothing(harness):
    alice, bob, admin = await harness.user(), await harness.user(), await harness.admin()
    word = _word()
    await _post(alice, f"{word} mine", public=False)
    for public in (True, False, False):
        await _post(bob, f"{word} his", public=public)
    mark = f'text ~ "{word}"'
    a, b = alice.user["id"], bob.user["id"]
    assert _counts(await _aggregate(alice, filter=mark, group_by=["author"]), "author") == {a: 1, b: 1}
    assert _counts(await _aggregate(bob, filter=mark, group_by=["author"]), "author") == {b: 3}
    assert _counts(await _aggregate(admin, filter=mark, group_by=["author"]), "author") == {a: 1, b: 3}
    assert await _aggregate(alice, filter=mark) == {"groups": [{"key": {}, "count": 2}], "more": False}
    assert _counts(await _aggregate(bob, filter=mark, group_by=["author", "public"]), "public") == {True: 1, False: 2}
    anon = await harness.anon()   # users are listed by the signed-in only: an anonymous reader counts none
    assert (await anon.call("records.aggregate", {"collection": "users"}))["groups"] == [{"key": {}, "count": 0}]


async def test_sums_averages_minima_and_maxima(harness):
    alice = await harness.user()
    word = _word()
    first = await _post(alice, f"{word} one")
    second = await _post(alice, f"{word} two")
    for version in (1, 2):   # two updates: version 3
        await alice.call("records.update", {"collection": "posts", "id": second["id"], "version": version,
                                            "data": {"text": f"{word} two v{version}"}})
    answer = await _aggregate(alice, filter=f'text ~ "{word}"', count=False, sum=["version", "likes"],
                              avg=["version"], min=["text", "created", "version"], max=["text", "version"])
    [group] = answer["groups"]
    assert group == {"key": {}, "sum": {"version": 4, "likes": 0}, "avg": {"version": 2.0},
                     "min": {"text": f"{word} one", "created": first["created"], "version": 1},
                     "max": {"text": f"{word} two v2", "version": 3}}
    empty = await _aggregate(alice, filter=f'text ~ "{word}-none"', sum=["likes"], max=["created"])
    assert empty["groups"] == [{"key": {}, "count": 0, "sum": {"likes": None}, "max": {"created": None}}]


async def test_groups_are_bounded_by_limit_and_say_when_there_are_more(harness):
    alice = await harness.user()
    word = _word()
    posts = [await _post(alice, f"{word} {n}") for n in range(3)]
    answer = await _aggregate(alice, filter=f'text ~ "{word}"', group_by=["id"], limit=2)
    assert [g["key"]["id"] for g in answer["groups"]] == sorted(p["id"] for p in posts)[:2] and answer["more"]
    full = await _aggregate(alice, filter=f'text ~ "{word}"', group_by=["id"], limit=3)
    assert len(full["groups"]) == 3 and not full["more"]


async def test_a_search_filter_counts_as_it_lists(harness):
    alice = await harness.user()
    word = _word()
    await _post(alice, f"{word} cats and dogs")
    await _post(alice, f"{word} only dogs")
    answer = await _aggregate(alice, filter=f'text @@ "{word} cats"')
    assert answer["groups"] == [{"key": {}, "count": 1}]


async def test_guarded_fields_are_the_admins_alone(harness):
    alice, admin = await harness.user(), await harness.admin()
    mine = f'id = "{alice.user["id"]}"'
    for args in ({"group_by": ["email"]}, {"min": ["email"]}, {"max": ["email"]}, {"group_by": ["id", "email"]}):
        reply = await alice.request("records.aggregate", {"collection": "users", "filter": mine, **args})
        assert reply["error"] == {"code": "FORBIDDEN", "message": "'email' is guarded: only admins may aggregate it"}
    answer = await admin.call("records.aggregate", {"collection": "users", "filter": mine, "group_by": ["email"],
                                                    "max": ["email"]})
    email = alice.user["email"]
    assert answer["groups"] == [{"key": {"email": email}, "count": 1, "max": {"email": email}}]


@pytest.mark.parametrize(("args", "code", "message"), [
    ({"group_by": ["nope"]}, "BAD_REQUEST", "unknown field 'nope' in group_by"),
    ({"sum": ["nope"]}, "BAD_REQUEST", "unknown field 'nope' in sum"),
    ({"collection": "users", "max": ["password_hash"]}, "BAD_REQUEST", "unknown field 'password_hash' in max"),
    ({"sum": ["text"]}, "BAD_REQUEST", "sum cannot take 'text', a text field (it takes int, float)"),
    ({"avg": ["created"]}, "BAD_REQUEST", "avg cannot take 'created', a timestamp field (it takes int, float)"),
    ({"min": ["public"]}, "BAD_REQUEST", "min cannot take 'public', a bool field (it takes text, int, float, "
                                         "timestamp)"),
    ({"group_by": ["media"]}, "BAD_REQUEST", "group_by cannot take 'media', a json field (it takes text, int, "
                                             "float, bool, timestamp, uuid)"),
    ({"count": False}, "BAD_REQUEST", "ask for count, group_by or one of sum, avg, min, max"),
    ({"filter": "likes >"}, "BAD_REQUEST", "filter: unexpected end of filter at 7, expected a field or value"),
    ({"filter": "text ~ \"'; DROP TABLE posts; --\" || id = \"x\""}, None, None),
    ({"collection": "nope"}, "NOT_FOUND", "no collection nope"),
    ({"filter": " || ".join(f'text ~ "{n}"' for n in range(30))}, "TOO_LARGE", None),
])
async def test_mistakes_are_precise_refusals(harness, args, code, message):
    alice = await harness.user()
    reply = await alice.request("records.aggregate", {"collection": "posts", **args})
    if code is None:
        assert reply["ok"], reply
        return
    assert reply["error"]["code"] == code, reply
    if message is not None:
        assert reply["error"]["message"] == message


@pytest.mark.parametrize("args", [{"group_by": ["a", "b", "c", "d"]}, {"limit": 1001}, {"limit": 0},
                                  {"sum": "likes"}, {"colour": "red"}])
async def test_arguments_out_of_bounds_are_bad_requests(harness, args):
    alice = await harness.user()
    reply = await alice.request("records.aggregate", {"collection": "posts", **args})
    assert reply["error"]["code"] == "BAD_REQUEST", reply


async def test_cached_answers_are_never_another_readers_and_follow_writes(harness):
    alice, bob = await harness.user(), await harness.user()
    word = _word()
    await _post(alice, f"{word} private", public=False)
    mark = f'text ~ "{word}"'
    for _ in range(2):   # the second read of each may come from the cache
        assert (await _aggregate(alice, filter=mark))["groups"] == [{"key": {}, "count": 1}]
        assert (await _aggregate(bob, filter=mark))["groups"] == [{"key": {}, "count": 0}]
    await _post(alice, f"{word} public")
    assert (await _aggregate(alice, filter=mark))["groups"] == [{"key": {}, "count": 2}]
    assert (await _aggregate(bob, filter=mark))["groups"] == [{"key": {}, "count": 1}]
