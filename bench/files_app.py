"""The app bench/files.py serves: the files tests' app, with attachments of up to 2 GiB."""
import runpy
from dataclasses import replace
from pathlib import Path

from hapta.config import FileBounds, FileField

base = runpy.run_path(str(Path(__file__).resolve().parent.parent / "tests" / "files" / "app" / "config.py"))["app"]


def _posts(collection):
    if collection.name != "posts":
        return collection
    return replace(collection, files={**collection.files,
                                      "attachments": FileField(max_size=2 * 1024 ** 3, types=None, max_count=3)})


app = replace(base, collections=[_posts(c) for c in base.collections], files=FileBounds(sweep_interval=30.0))
