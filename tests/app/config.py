"""The app the framework's tests serve: a copy of the demo app (the repository's own config.py, rules/ and
migrations/), kept here so that the tests do not change when a user replaces the demo with their own app.

Rules are filter expressions over the record and @user (docs/protocol.md):
    None -> admin only      "" -> everyone past the guest stage      "expr" -> only where expr holds
"""
from hapta.config import App, Channel, Collection, FileField, Limit

SIGNED_IN = "@user.id != null"
OWN = "author = @user.id"
POST_VISIBLE = "public = true || author = @user.id"
ON_VISIBLE_POST = "(post.public = true || post.author = @user.id)"   # for records that belong to a post

app = App(
    collections=[
        Collection(
            "users",
            list=SIGNED_IN, view=SIGNED_IN,
            create=None,                      # accounts come from auth.register
            update="id = @user.id", delete="id = @user.id",
            hidden=("password_hash",),
            guarded={"email": "id = @user.id"},  # a user's email reaches that user alone
            readonly=("email",),
        ),
        Collection(
            "posts",
            list=POST_VISIBLE, view=POST_VISIBLE,
            create=f"{SIGNED_IN} && {OWN}", update=OWN, delete=OWN,
            readonly=("likes",),              # kept by a rules hook
            # `text @@ "words"` in filters: full-text search in English (its GIN index: migrations/0002_search.sql)
            search={"text": "english"},
            # Up to 4 pictures or short videos per post, recognised by their content; files.* ops keep the list.
            # Thumbnails in the sizes a feed shows (files.url {thumb}): a square and a column's width.
            files={"media": FileField(max_size=25 * 1024 * 1024, max_count=4,
                                      types=("image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4"),
                                      thumbs=("100x100", "480x0"))},
        ),
        Collection(
            "comments",
            list=f"{ON_VISIBLE_POST} || {OWN}",
            view=f"{ON_VISIBLE_POST} || {OWN}",
            # An update that changes what the create rule reads (its post) must pass the create rule too
            # (Collection.update_checks_create, on by default): nobody moves a comment onto a post they could not
            # comment on.
            create=f"{SIGNED_IN} && {OWN} && {ON_VISIBLE_POST}",
            update=OWN, delete=OWN,
        ),
        Collection(
            "likes",
            # Who liked what is seen only where the post itself is.
            list=f"{SIGNED_IN} && {ON_VISIBLE_POST}", view=f"{SIGNED_IN} && {ON_VISIBLE_POST}",
            create=f"{SIGNED_IN} && user = @user.id && {ON_VISIBLE_POST}",
            update=None, delete="user = @user.id",
        ),
        Collection(
            "messages",
            list="sender = @user.id || recipient = @user.id",
            view="sender = @user.id || recipient = @user.id",
            # guests (auth.guest) may post and like, but write to no one until they register: no spam by the bucket
            create=f"{SIGNED_IN} && sender = @user.id && @user.anonymous = false",
            update=None, delete="sender = @user.id",
        ),
    ],
    limits={
        "auth.login": Limit(5, per=60),                  # per client address
        "auth.login:identity": Limit(10, per=600),       # per account, from any address: bounds guessing
        "auth.register": Limit(10, per=3600),            # per client address (and per email)
        "records.create": Limit(10, per=1, burst=20),    # per user
    },
    # Who may join which channel (channels.join): a rule over the channel's `name` and what each `*` matched
    # (`part1`, `part2`, ...). Typing indicators in rooms for anyone signed in; a private channel per user; who is
    # online, each member with their username (presence: fields of their users record, as the rules show them).
    channels={
        "room:*": SIGNED_IN,
        "user:*": "part1 = @user.id",
        "online": Channel(SIGNED_IN, presence=("username",)),
        # the tests of presence profiles: a guarded field (email, its owner's alone) among what members carry
        "profiles:*": Channel(SIGNED_IN, presence=("username", "email", "created")),
    },
)
