"""The demo's posts hooks, plus a before_upload that refuses names starting with "refused" (to test the hook)."""
import importlib.util
from pathlib import Path

from hapta.rules import Deny

TEST_APP = Path(__file__).resolve().parents[3] / "app"   # resolved: this file is linked into the app folder
_spec = importlib.util.spec_from_file_location("demo_posts_rules", TEST_APP / "rules" / "posts.py")
_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_demo)
globals().update({name: getattr(_demo, name) for name in dir(_demo) if name.startswith(("before_", "after_"))})


def before_upload(ctx, info):
    if info["name"].startswith("refused"):
        raise Deny(f"{info['name']} is not welcome here")
