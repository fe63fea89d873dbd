"""Full-text search (`field @@ "words"`) and the sort by `@rank`: parsing and binding without a server, the SQL on a
real PostgreSQL (the query tables, and the test app's own indexes), and through the in-process gateway (records.list,
realtime, the app's config) with hostile words that must never become an error of ours or a leaked record."""
from __future__ import annotations

import json
import secrets
import string

import pytest

from hapta.access import Sql
from hapta.config import App, Collection, ConfigError
from hapta.models import build_models
from hapta.principal import ADMIN, Principal
from hapta.query import FilterError, compile_rule, cost, evaluate, parse
from hapta.query.ast import SEARCH, Compare, Field, Literal
from hapta.query.evaluate import Unevaluable
from tests.live.cache.test_read_cache import _info

from query_testdata import POSTS, SCHEMA
from test_filter_agreement import select_ids


# ---- the language, without a server ----

def test_search_parses_to_a_comparison_of_a_field_with_words():
    assert parse('text @@ "cats dogs"') == Compare(Field(("text",)), SEARCH, Literal("cats dogs"))
    assert parse('text@@"x" && public = true').items[0].op == SEARCH   # `@@` is not the variable `@`


@pytest.mark.parametrize(("text", "message"), [
    ('"cats" @@ "dogs"', "'@@' at 7 needs a field on its left (field @@ \"words\")"),
    ('@user.id @@ "dogs"', "'@@' at 9 needs a field on its left (field @@ \"words\")"),
    ("text @@ author", "unexpected 'author' at 8, expected a string of words to search for after '@@'"),
    ("text @@ @user.id", "unexpected '@user.id' at 8, expected a string of words to search for after '@@'"),
    ("text @@ 3", "unexpected value at 8, expected a string of words to search for after '@@'"),
    ("text @@ null", "unexpected value at 8, expected a string of words to search for after '@@'"),
    ("text @@", "unexpected end of filter at 7, expected a string of words to search for after '@@'"),
    ("text @@@ \"x\"", "expected a name at 8"),
])
def test_search_syntax_errors_say_what_and_where(text, message):
    with pytest.raises(FilterError) as error:
        parse(text)
    assert error.value.message == message


@pytest.mark.parametrize(("text", "message"), [
    ('secret @@ "x"', "field 'secret' is not searchable with '@@' (searchable here: text)"),
    ('score @@ "x"', "field 'score' is not searchable with '@@' (searchable here: text)"),
    ('nope @@ "x"', "unknown field 'nope'"),
    ('author.name @@ "x"', "'@@' searches a field of the record itself, not 'author.name' through a relation"),
])
def test_only_declared_fields_of_the_record_are_searched(text, message):
    with pytest.raises(FilterError) as error:
        compile_rule(text, POSTS, SCHEMA)
    assert error.value.message == message


def test_a_collection_without_searchable_fields_says_so():
    with pytest.raises(FilterError) as error:
        compile_rule('text @@ "x"', SCHEMA.tables["comments"], SCHEMA)
    assert error.value.message == "field 'text' is not searchable with '@@' (comments has no searchable fields)"


def test_a_search_costs_more_than_a_comparison_and_python_refuses_to_guess_it():
    node = compile_rule('text @@ "x"', POSTS, SCHEMA)
    assert cost(node) == 3
    with pytest.raises(Unevaluable):
        evaluate(node, {"text": "x"}, {})


def _models(**posts):
    app = App(collections=[Collection("posts", **{"list": "", "view": "", **posts})])
    return build_models(app, {"posts": _info("posts", {"text": "text", "likes": "int", "secret": "text"})})


@pytest.mark.parametrize(("options", "message"), [
    ({"search": {"nope": "english"}}, "posts.search names 'nope', which is not a visible column"),
    ({"search": {"secret": "english"}, "hidden": ("secret",)}, "posts.search names 'secret', which is not a visible "
                                                                 "column"),
    ({"search": {"likes": "english"}}, "posts.search names 'likes', a int column; only text is searched"),
    ({"search": {"text": "english'); DROP TABLE posts; --"}}, "posts.search['text'] must name a text-search "
                                                               "configuration such as 'english' or 'simple' "
                                                               "(lowercase letters, digits, _)"),
    ({"search": {"text": "English"}}, "posts.search['text'] must name a text-search configuration such as 'english' "
                                      "or 'simple' (lowercase letters, digits, _)"),
    ({"search": {"text": "english"}, "list": 'text @@ "x"'}, "posts.list rule: '@@' (full-text search) is for "
                                                             "clients' filters; a rule cannot use it"),
    ({"search": {"text": "english"}, "guarded": {"secret": 'text @@ "x"'}},
     "posts.guarded[secret]: '@@' (full-text search) is for clients' filters; a rule cannot use it"),
])
def test_the_config_is_checked_at_start(options, message):
    with pytest.raises(ConfigError) as error:
        _models(**options)
    assert str(error.value) == message


# ---- the SQL, on the query tables ----

@pytest.mark.parametrize(("text", "expected"), [
    ('text @@ "hello"', {"p1", "p2"}),
    ('text @@ "HELLO world"', {"p1"}),
    ('text @@ "hello -world"', {"p2"}),
    ('text @@ "zebras"', {"p11"}),                 # English stemming: the plural finds the singular
    ('text @@ "world or zebra"', {"p1", "p11"}),
    ('text @@ "\\"world hello\\""', set()),             # a phrase: in this order only
    ('text @@ "\\"hello world\\""', {"p1"}),
    ('text @@ "the"', set()),                       # a stop word alone matches nothing (and is no error)
    ('text @@ ""', set()),
    ('!(text @@ "hello")', {"p3", "p4", "p5", "p7", "p8", "p9", "p10", "p11", "p13"}),   # NULL text: unknown
    ('text @@ "hello" && public = true', {"p1"}),
])
async def test_search_answers(db, text, expected):
    assert await select_ids(db, "posts", text, {"user.id": None}) == expected


# ---- through the gateway ----

def _word() -> str:
    """A word no other test's post holds (letters only, so English stemming leaves it whole enough to match)."""
    return "zq" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


async def _post(device, text: str, public: bool = True) -> dict:
    return await device.call("records.create", {"collection": "posts", "data": {
        "author": device.user["id"], "text": text, "public": public}})


async def _search(device, words: str, **args) -> dict:
    return await device.call("records.list", {"collection": "posts", "filter": f"text @@ {json.dumps(words)}",
                                              **args})


async def test_a_search_finds_what_the_reader_may_see_and_nothing_else(harness):
    alice, bob = await harness.user(), await harness.user()
    word = _word()
    mine = await _post(alice, f"{word} my cats", public=False)
    public = await _post(bob, f"{word} public cats")
    await _post(bob, f"{word} private cats", public=False)
    await _post(bob, f"{word} about dogs")
    page = await _search(alice, f"{word} cats", count=True)
    assert {item["id"] for item in page["items"]} == {mine["id"], public["id"]} and page["total"] == 2


async def test_rank_orders_the_best_match_first(harness):
    alice = await harness.user()
    word = _word()
    weak = await _post(alice, f"{word} a long note that mentions cats once among many other words of no interest")
    strong = await _post(alice, f"{word} cats cats cats, all about cats")
    middle = await _post(alice, f"{word} cats and more cats, then other things")
    best_first = await _search(alice, f"{word} cats", sort="-@rank")
    assert [item["id"] for item in best_first["items"]] == [strong["id"], middle["id"], weak["id"]]
    worst_first = await _search(alice, f"{word} cats", sort="@rank")
    assert [item["id"] for item in worst_first["items"]] == [weak["id"], middle["id"], strong["id"]]
    # paged by page (no cursor: a rank is no stable key)
    first = await _search(alice, f"{word} cats", sort="-@rank,created", per_page=2)
    second = await _search(alice, f"{word} cats", sort="-@rank,created", per_page=2, page=2)
    assert "next" not in first
    assert [item["id"] for item in first["items"] + second["items"]] == [strong["id"], middle["id"], weak["id"]]


@pytest.mark.parametrize(("args", "message"), [
    ({"sort": "-@rank"}, "sort by @rank needs exactly one '@@' in the filter, which has none"),
    ({"sort": "-@rank", "filter": "public = true"}, "sort by @rank needs exactly one '@@' in the filter, which has "
                                                    "none"),
    ({"sort": "-@rank", "filter": 'text @@ "a" || text @@ "b"'}, "sort by @rank needs exactly one '@@' in the "
                                                                 "filter, which has 2"),
    ({"sort": "-@rank", "filter": 'text @@ "a"', "after": "WyJ4Il0"}, "after cannot continue a sort by @rank; page "
                                                                      "through it with page"),
    ({"sort": "-@score"}, "cannot sort by '@score'"),
    ({"filter": 'likes @@ "a"'}, "filter: field 'likes' is not searchable with '@@' (searchable here: text)"),
    ({"filter": 'post @@ "a"', "collection": "comments"}, "filter: field 'post' is not searchable with '@@' "
                                                          "(comments has no searchable fields)"),
    ({"filter": 'nope @@ "a"'}, "filter: unknown field 'nope'"),
])
async def test_search_and_rank_mistakes_are_bad_requests(harness, args, message):
    alice = await harness.user()
    reply = await alice.request("records.list", {"collection": "posts", **args})
    assert reply["error"]["code"] == "BAD_REQUEST" and reply["error"]["message"] == message, reply


HOSTILE = [
    "'", "''", "\\", "\\'", '"', '"unbalanced', "a:*", "cat:* & dog", "&|!()", "!!!", "(((", "a <-> b", "<2>",
    "'); DROP TABLE posts; --", "' OR '1'='1", "$1", "::regconfig", "english'::regconfig", "-", "or", "- or -",
    "cats -", "\u202e cats", "猫 chats ü", "\U0001f431 cats", "\t\n", " ", "", "a" * 3000, "cats " * 800,
    "to_tsvector('simple', text)",
]


@pytest.mark.parametrize("words", HOSTILE, ids=[repr(w[:20]) for w in HOSTILE])
async def test_hostile_words_give_an_answer_or_a_bad_request_never_a_leak(harness, words):
    alice, bob = await harness.user(), await harness.user()
    word = _word()
    hidden = await _post(bob, f"{word} cats {words[:100]}", public=False)
    reply = await alice.request("records.list", {"collection": "posts", "per_page": 500,
                                                 "filter": f"text @@ {json.dumps(words)} && author = "
                                                           f"\"{bob.user['id']}\""})
    if reply["ok"]:
        assert hidden["id"] not in {item["id"] for item in reply["data"]["items"]}
        assert all(item["public"] for item in reply["data"]["items"])
    else:
        assert reply["error"]["code"] in ("BAD_REQUEST", "TOO_LARGE"), reply
    own = await bob.request("records.list", {"collection": "posts", "filter": f"text @@ {json.dumps(words)}",
                                             "sort": "-@rank"})
    assert own["ok"] or own["error"]["code"] in ("BAD_REQUEST", "TOO_LARGE"), own


async def test_a_filter_over_the_length_limit_is_refused_before_any_sql(harness):
    alice = await harness.user()
    reply = await alice.request("records.list", {"collection": "posts", "filter": f"text @@ {json.dumps('a' * 4100)}"})
    assert reply["error"]["code"] == "BAD_REQUEST"


async def test_realtime_refuses_a_search_rather_than_guess_it(harness):
    alice = await harness.user()
    for subscribe in ({"filter": 'text @@ "cats"'}, {"filter": 'public = true && !(text @@ "cats")', "snapshot": True}):
        reply = await alice.request("realtime.subscribe", {"collection": "posts", **subscribe})
        assert reply["error"] == {"code": "BAD_REQUEST", "message": "filter: '@@' (full-text search) cannot be used in "
                                  "a realtime subscription; search with records.list, or subscribe with a filter "
                                  "without '@@'"}, reply
    fine = await alice.request("realtime.subscribe", {"collection": "posts", "filter": 'text ~ "cats"'})
    assert fine["ok"], fine


async def test_the_search_and_the_contains_filter_use_the_apps_indexes(harness):
    """The SQL's expressions are the indexes' (migrations/0002_search.sql): with sequential scans off, the plan
    reads them (both for a reader, whose SQL has the rule too, and for an admin). The trigram index is there where
    the server has pg_trgm (the local one does; the embedded one lacks it, and the migration leaves it out)."""
    gateway = harness.gateway
    records = gateway.records
    model = records.models["posts"]
    alice = await harness.user()
    reader = alice.peer.principal
    cases = [('text @@ "cats dogs"', "posts_text_search_idx")]
    if await records.db.fetch("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"):
        cases.append(('text ~ "cat_s%"', "posts_text_trgm_idx"))
    for principal in (reader, Principal(ADMIN)):
        for filter_text, index in cases:
            found = records.filter(principal, model, filter_text)
            sql = Sql(model, principal, records.schemas)
            where = f'{sql.filter(found.node)} AND {sql.rule(model.rules["list"]) if principal is reader else "true"}'
            async with records.db.acquire() as conn:
                async with conn.transaction():
                    await conn.execute("SET LOCAL enable_seqscan = off")
                    plan = "\n".join(row[0] for row in await conn.fetch(
                        f'EXPLAIN SELECT "id" FROM "posts" WHERE {where}', *sql.params))
            assert index in plan, plan


def test_a_refused_search_names_no_words():
    """FilterError messages never echo what the client searched for."""
    with pytest.raises(FilterError) as error:
        compile_rule('secret @@ "s3cr3t words"', POSTS, SCHEMA)
    assert "s3cr3t" not in error.value.message
