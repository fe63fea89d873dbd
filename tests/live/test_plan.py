"""The delivery plan (hapta/live/plan.py) and a subscription's states (hapta/live/topics.py), without a server:
who hears what of one change, decided from the rows, the rules and the subscribers alone."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hapta.access.filters import bound_filter
from hapta.access.live import Outcome
from hapta.config import App, Collection
from hapta.live.feed import Change, rule_columns
from hapta.live.plan import plan
from hapta.live.realtime import _fold, _moves, dependencies_of
from hapta.live.topics import MAX_HELD, TRANSITIONS, BadTransition, State, Subscription, Topic
from hapta.models import build_models
from hapta.principal import ADMIN, GUEST, USER, Principal, SocketPeer
from tests.live.cache.test_read_cache import _info

MOMENT = datetime(2026, 12, 1, tzinfo=timezone.utc)
WALL = 2_000_000_000.0


@pytest.fixture(scope="module")
def models():
    app = App(collections=[
        Collection("posts", list="public = true || author = @user.id", view="public = true || author = @user.id"),
        Collection("comments", list="post.public = true || author = @user.id",
                   view="post.public = true || author = @user.id"),
        Collection("people", list="", view="", guarded={"email": "id = @user.id"}),
    ])
    infos = {"posts": _info("posts", {"author": "text", "public": "bool", "text": "text"}),
             "comments": _info("comments", {"post": "text", "author": "text", "text": "text"}, {"post": "posts"}),
             "people": _info("people", {"email": "text"})}
    schema, found = build_models(app, infos)
    found["schema"] = schema
    return found


def subscribe(topic: Topic, principal: Principal, number: int = 1, *, live: bool = True) -> Subscription:
    sub = Subscription(f"s{number}", SocketPeer(principal), topic, principal)
    topic.add(sub)
    if live:
        sub.release(0)
    return sub


def post(public: bool, author: str = "alice", text: str = "hello") -> dict:
    return {"id": "p1", "author": author, "public": public, "text": text, "created": MOMENT, "updated": MOMENT,
            "version": 2}


def change(action: str = "update", position: int = 5, place: int = 50, table: str = "posts") -> Change:
    return Change(table, action, "p1", 2, position=position, place=place)


def heard(models, topic_or_topics, outcome: Outcome, **options) -> dict[str, tuple[str, dict]]:
    """sub id -> (action, record) of what each subscription hears."""
    topics = topic_or_topics if isinstance(topic_or_topics, list) else [topic_or_topics]
    deliveries = list(plan(options.pop("change", change(outcome.action)), outcome, topics, options.pop("related", {}),
                           MOMENT, WALL, **options))
    return {d.sub.id: (d.action, d.payload.value["record"]) for d in deliveries}


ALICE, BOB = Principal(USER, "alice", "sa"), Principal(USER, "bob", "sb")


def test_a_public_post_reaches_everyone_with_one_payload(models):
    posts = models["posts"]
    topic = Topic.of(posts, None, None, posts.visible)
    alice, bob = subscribe(topic, ALICE, 1), subscribe(topic, BOB, 2)
    deliveries = list(plan(change("create"), Outcome("create", post(True), None), [topic], {}, MOMENT, WALL))
    assert {d.sub for d in deliveries} == {alice, bob}
    assert len({id(d.payload) for d in deliveries}) == 1   # decided once, encoded once
    assert deliveries[0].payload.value == {"action": "create", "collection": "posts", "record": post(True), "pos": 5}


def test_a_post_turned_private_leaves_the_others_as_a_delete_of_its_id(models):
    posts = models["posts"]
    topic = Topic.of(posts, None, None, posts.visible)
    subscribe(topic, ALICE, 1), subscribe(topic, BOB, 2)
    outcome = Outcome("update", post(False), post(True))
    assert heard(models, topic, outcome) == {"s1": ("update", post(False)), "s2": ("delete", {"id": "p1"})}
    # and back: it reaches bob as its change again
    assert heard(models, topic, Outcome("update", post(True), post(False))) == \
        {"s1": ("update", post(True)), "s2": ("update", post(True))}


def test_a_deleted_record_is_heard_by_who_could_see_it(models):
    posts = models["posts"]
    topic = Topic.of(posts, None, None, posts.visible)
    subscribe(topic, ALICE, 1), subscribe(topic, BOB, 2)
    assert set(heard(models, topic, Outcome("delete", None, post(False)))) == {"s1"}
    assert set(heard(models, topic, Outcome("delete", None, post(True)))) == {"s1", "s2"}


def test_signed_out_expired_and_changed_principals_hear_nothing(models):
    posts = models["posts"]
    topic = Topic.of(posts, None, None, posts.visible)
    expired = Principal(USER, "carol", "sc", expires_at=int(WALL) - 1)
    subscribe(topic, expired, 1)
    guest = subscribe(topic, BOB, 2)
    guest.peer.principal = Principal(GUEST)                 # logged out after it subscribed
    moved = subscribe(topic, ALICE, 3)
    moved.peer.principal = Principal(USER, "dave", "sd")   # another user on the same socket: regrouped later
    admin = subscribe(topic, Principal(ADMIN), 4)
    assert set(heard(models, topic, Outcome("update", post(True), None))) == {"s4"}
    topic.regroup()
    assert set(heard(models, topic, Outcome("update", post(True), None))) == {"s3", "s4"}
    assert admin.group is not moved.group


def test_a_live_subscription_hears_what_came_after_its_start_and_not_its_snapshot(models):
    posts = models["posts"]
    topic = Topic.of(posts, None, None, posts.visible)
    sub = subscribe(topic, ALICE, live=False)
    sub.release(10, skip=frozenset({77}))
    outcome = Outcome("update", post(True), None)
    assert heard(models, topic, outcome, change=change(position=10, place=60)) == {}   # before it started
    assert heard(models, topic, outcome, change=change(position=11, place=77)) == {}   # in its snapshot
    assert set(heard(models, topic, outcome, change=change(position=11, place=78))) == {"s1"}
    # a replay is given exactly what it missed, whatever the floor
    assert set(heard(models, topic, outcome, change=change(position=3, place=1), only=sub)) == {"s1"}


def test_a_filter_and_a_guard_decide_per_group(models):
    people = models["people"]
    topic = Topic.of(people, None, None, people.visible)
    subscribe(topic, Principal(USER, "u1", "s"), 1), subscribe(topic, BOB, 2)
    row = {"id": "u1", "email": "u1@example.com", "created": MOMENT, "updated": MOMENT, "version": 1}
    got = heard(models, topic, Outcome("update", row, None), change=change(table="people"))
    assert got["s1"][1]["email"] == "u1@example.com" and got["s2"][1]["email"] is None

    posts = models["posts"]
    filtered = Topic.of(posts, None, bound_filter(posts, models["schema"], 'text ~ "cats"').node, posts.visible)
    subscribe(filtered, BOB, 3)
    assert heard(models, filtered, Outcome("update", post(True, text="dogs"), None)) == {}
    assert set(heard(models, filtered, Outcome("update", post(True, text="two cats"), None))) == {"s3"}


def test_a_rule_through_a_relation_reads_the_related_row(models):
    comments = models["comments"]
    topic = Topic.of(comments, None, None, comments.visible)
    subscribe(topic, BOB, 1)
    comment = {"id": "c1", "post": "p1", "author": "alice", "text": "hi", "created": MOMENT, "updated": MOMENT,
               "version": 1}
    outcome = Outcome("create", comment, None)
    created = Change("comments", "create", "c1", 1, position=5, place=5)
    assert heard(models, topic, outcome, change=created, related={("posts", "p1"): post(False)}) == {}
    assert set(heard(models, topic, outcome, change=created, related={("posts", "p1"): post(True)})) == {"s1"}


# ---- visibility through a relation: derived outcomes ----------------------------------------------------------

CAROL = Principal(USER, "carol", "sc")


def comment(author: str = "carol", text: str = "hi") -> dict:
    return {"id": "c1", "post": "p1", "author": author, "text": text, "created": MOMENT, "updated": MOMENT,
            "version": 1}


def moved(before: dict, now: dict, record: dict | None = None) -> tuple[Outcome, dict]:
    """A comment that did not change while its post went from `before` to `now`: the derived outcome, and the
    rows delivery read as they stand (the post now)."""
    record = record or comment()
    return Outcome("update", record, record, {("posts", "p1"): before}, frozenset({"post"})), {("posts", "p1"): now}


CAUSED = Change("comments", "update", "c1", 1, position=7, place=70)   # at the post's change's position


def test_a_post_turned_private_removes_its_comments_from_who_saw_them_through_it(models):
    comments = models["comments"]
    topic = Topic.of(comments, None, None, comments.visible)
    subscribe(topic, BOB, 1), subscribe(topic, ALICE, 2), subscribe(topic, CAROL, 3)
    outcome, related = moved(post(True), post(False))
    # bob and alice saw it through the public post; carol wrote it, and her rule still shows it to her: nothing
    assert heard(models, topic, outcome, change=CAUSED, related=related) == \
        {"s1": ("delete", {"id": "c1"}), "s2": ("delete", {"id": "c1"})}
    deliveries = list(plan(CAUSED, outcome, [topic], related, MOMENT, WALL))
    assert {d.payload.value["pos"] for d in deliveries} == {7} and len({id(d.payload) for d in deliveries}) == 1

    # turned public again: a create of the whole record, to those who could not see it
    outcome, related = moved(post(False), post(True))
    assert heard(models, topic, outcome, change=CAUSED, related=related) == \
        {"s1": ("create", comment()), "s2": ("create", comment())}


def test_who_could_see_it_before_and_after_or_neither_hears_nothing(models):
    comments = models["comments"]
    topic = Topic.of(comments, None, None, comments.visible)
    subscribe(topic, BOB, 1), subscribe(topic, CAROL, 2), subscribe(topic, Principal(ADMIN), 3)
    # still private, moved to another author: bob could not see it before nor now; carol (its author) both
    outcome, related = moved(post(False), post(False, author="dave"))
    assert heard(models, topic, outcome, change=CAUSED, related=related) == {}
    # public before and after (decided once for anyone), and admins see it either way
    outcome, related = moved(post(True), post(True, text="edited"))
    assert heard(models, topic, outcome, change=CAUSED, related=related) == {}
    outcome, related = moved(post(True), post(False))
    assert set(heard(models, topic, outcome, change=CAUSED, related=related)) == {"s1"}


def test_a_derived_create_is_projected_and_a_gone_post_reads_as_missing(models):
    comments = models["comments"]
    narrow = Topic.of(comments, None, None, ("id", "text"))
    subscribe(narrow, BOB, 1)
    outcome, related = moved(post(False), post(True))
    assert heard(models, narrow, outcome, change=CAUSED, related=related) == \
        {"s1": ("create", {"id": "c1", "text": "hi"})}
    # the post was deleted (its comments stay, pointing at nothing): those who saw them through it see them leave
    outcome, _ = moved(post(True), None)
    assert heard(models, narrow, outcome, change=CAUSED, related={}) == {"s1": ("delete", {"id": "c1"})}


def test_only_the_before_side_reads_the_old_related_row(models):
    """A direct change judged with a related record that changed in the same batch (its own update carries the
    related record's old row for its before side): entering and leaving as for any update."""
    comments = models["comments"]
    topic = Topic.of(comments, None, None, comments.visible)
    subscribe(topic, BOB, 1)
    edited = comment(text="edited")
    outcome = Outcome("update", edited, edited, {("posts", "p1"): post(True)})
    assert heard(models, topic, outcome, change=CAUSED, related={("posts", "p1"): post(False)}) == \
        {"s1": ("delete", {"id": "c1"})}
    outcome = Outcome("update", edited, edited, {("posts", "p1"): post(False)})
    assert heard(models, topic, outcome, change=CAUSED, related={("posts", "p1"): post(True)}) == \
        {"s1": ("update", edited)}


def test_what_a_change_of_a_related_record_costs_is_decided_from_the_topics(models):
    comments, posts = models["comments"], models["posts"]
    follows = dependencies_of([Topic.of(comments, None, None, comments.visible), Topic.of(posts, None, None,
                                                                                          posts.visible)])
    assert follows == {"posts": {("comments", "post"): frozenset({"public"})}}
    wanted = follows["posts"]
    assert _moves(Change("posts", "update", "p1", old={"public": True}), wanted)
    assert _moves(Change("posts", "delete", "p1", old={"id": "p1"}), wanted)
    assert not _moves(Change("posts", "update", "p1"), wanted)                 # no rule column changed
    assert not _moves(Change("posts", "update", "p1", old={"text": "x"}), wanted)
    assert not _moves(Change("posts", "create", "p1"), wanted)


def test_a_record_that_changed_itself_keeps_its_own_outcome(models):
    created = Change("comments", "create", "c1", 1, position=3, place=30)
    derived = {("comments", "c1"): (CAUSED, moved(post(True), post(False))[0])}
    other = Change("comments", "update", "c2", 1, position=7, place=70)
    other_outcome = moved(post(True), post(False), {**comment(), "id": "c2"})[0]
    mine = Outcome("create", comment(), None)
    folded = _fold([(created, mine)], {**derived, ("comments", "c2"): (other, other_outcome)})
    assert folded == [(created, mine), (other, other_outcome)]   # a create stands as it now is

    edited = Change("comments", "update", "c1", 2, position=5, place=50)   # edited, then its post turned private
    [(change, outcome)] = _fold([(edited, Outcome("update", comment(), None))], derived)
    assert (change.position, change.place) == (7, 70)   # the later of the two
    assert outcome.before == comment() and outcome.before_related == {("posts", "p1"): post(True)}
    assert not outcome.derived


def test_the_trigger_records_old_values_of_what_other_collections_read_through_a_relation():
    app = App(collections=[
        Collection("posts", list="public = true", view="public = true"),
        Collection("quotes", list='post.text ~ "quote"', view='post.text ~ "quote"'),
    ])
    infos = {"posts": _info("posts", {"public": "bool", "text": "text", "likes": "int"}),
             "quotes": _info("quotes", {"post": "text"}, {"post": "posts"})}
    _, found = build_models(app, infos)
    assert rule_columns(found["posts"]) == ["public"]
    assert rule_columns(found["posts"], found) == ["public", "text"]
    assert rule_columns(found["quotes"], found) == ["post"]


# ---- a subscription's states -------------------------------------------------------------------------------


def test_a_starting_subscription_queues_then_goes_live_with_what_came_after_its_floor(models):
    posts = models["posts"]
    sub = subscribe(Topic.of(posts, None, None, posts.visible), ALICE, live=False)
    assert sub.state is State.STARTING and sub.starting
    for position, place in ((4, 40), (6, 60), (7, 70)):
        sub.hold(position, place, f"event at {position}")
    overflowed, queued = sub.release(5, skip=frozenset({70}))
    assert (overflowed, queued) == (False, ["event at 6"])
    assert sub.state is State.LIVE and not sub.starting
    with pytest.raises(BadTransition):
        sub.hold(8, 80, "late")   # a live subscription's events go to its connection, never to a queue
    with pytest.raises(BadTransition):
        sub.release(9)
    sub.move("end")
    assert sub.state is State.ENDED
    with pytest.raises(BadTransition):
        sub.move("end")


def test_a_subscription_that_queued_too_much_is_told_to_refetch(models):
    posts = models["posts"]
    sub = subscribe(Topic.of(posts, None, None, posts.visible), ALICE, live=False)
    for position in range(MAX_HELD + 1):
        sub.hold(position + 1, position + 1, position)
    assert sub.state is State.OVERFLOWED and sub.queue == []
    assert sub.release(0) == (True, [])


def test_the_state_table_is_closed():
    """Every state but ENDED can end; only starting ones queue or release; nothing leaves ENDED."""
    assert {state for (state, what) in TRANSITIONS if what == "end"} == {State.STARTING, State.OVERFLOWED,
                                                                        State.LIVE}
    assert {state for (state, what) in TRANSITIONS if what in ("queue", "release")} == {State.STARTING,
                                                                                       State.OVERFLOWED}
    assert not any(state is State.ENDED for state, _ in TRANSITIONS)
