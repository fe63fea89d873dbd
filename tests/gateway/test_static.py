"""`hapta serve --static DIR` (hapta/gateway/static.py): what a path may reach. Pure, on a folder of the test's."""
from __future__ import annotations

from hapta.gateway.static import find, serve_static


def test_paths_reach_only_what_is_in_the_folder(tmp_path):
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("home")
    (root / "docs" / "index.html").write_text("docs")
    (root / "app.js").write_text("js")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("not for the web")
    (root / "linked.js").symlink_to(root / "app.js")   # as the example links the client's build

    assert find(root, "/") == root / "index.html"
    assert find(root, "/docs/") == root / "docs" / "index.html"
    assert find(root, "/app.js?v=2") == root / "app.js"
    assert find(root, "/linked.js") == root / "linked.js"
    for refused in ("/../outside.txt", "/%2e%2e/outside.txt", "/docs/../../outside.txt", "/.env", "/%2eenv",
                    "/app.js%00.png", "/docs%2f..%2f..%2foutside.txt", "/missing.html"):
        assert find(root, refused) is None, refused


def test_answers_carry_a_type_and_a_policy(tmp_path):
    (tmp_path / "app.js").write_text("export {}")
    answer = serve_static(tmp_path, "/app.js")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert serve_static(tmp_path, "/../etc/passwd").status_code == 404
