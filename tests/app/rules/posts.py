"""Hooks for the posts collection: run before a write reaches the database."""
from hapta.rules import Deny

MAX_TEXT = 280


def before_create(ctx, data):
    return _clean(data)


def before_update(ctx, record, changes):
    return _clean(changes)


def _clean(data):
    if isinstance(data.get("text"), str):
        data["text"] = data["text"].strip()
        if len(data["text"]) > MAX_TEXT:
            raise Deny(f"a post is at most {MAX_TEXT} characters")
        if not data["text"]:
            raise Deny("a post needs some text")
    return data
