"""The app the hooks tests serve (tests/hooks/): hooks that edit, deny, hang, crash, raise and hold on request.

Every collection is open to anyone past the guest stage (the tests sign in with the anon key), except `tallies`,
which only hooks write and only admins read.
"""
from hapta.config import App, Collection

OPEN = dict(list="", view="", create="", update="", delete="")

app = App(
    collections=[
        Collection("items", **OPEN),      # rules/items.py: before_create/update/delete, driven by `action`
        Collection("counted", **OPEN),    # rules/counted.py: after_create only
        Collection("plain", **OPEN),      # no hooks at all
        Collection("tallies"),            # written by counted's after_create through ctx.sql
    ],
    rule_workers=2,       # few workers, so that calls queue and replies could cross if anything mixed them up
    hook_timeout=2.0,     # room for a slow test machine in the tests that hold a hook on purpose
    rule_queue=256,       # room for the 200 calls at once of test_replies_never_cross
)
