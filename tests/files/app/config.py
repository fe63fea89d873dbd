"""The app the files tests serve: the demo app, plus an `attachments` field on posts that takes any content (the
demo's `media` takes pictures and video only, and serves THUMBS here), and a quick sweeper. Its folder is assembled
by tests/files/conftest.py with the demo's migrations and rules beside this folder's own; its config.py runs this
file."""
from dataclasses import replace
from pathlib import Path

from hapta.config import FileBounds, FileField, load_app

TEST_APP = Path(__file__).resolve().parents[2] / "app"   # tests/app: the demo app
demo = load_app(TEST_APP / "config.py")
MIB = 1024 * 1024
THUMBS = ("100x100", "480x0", "0x300", "120x80t", "120x80b", "200x50f")   # posts.media serves these


def _posts(collection):
    if collection.name != "posts":
        return collection
    media = replace(collection.files["media"], thumbs=THUMBS)
    return replace(collection, files={**collection.files, "media": media,
                                      "attachments": FileField(max_size=48 * MIB, types=None, max_count=3)})


# A quick sweeper, and uploads kept for a resume bounded at 30 MiB per principal (tests/files/test_resume.py).
app = replace(demo, collections=[_posts(c) for c in demo.collections],
              files=FileBounds(sweep_interval=0.5, resume_bytes=30 * MIB))
