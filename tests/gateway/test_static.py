"""`hapta serve --static DIR` (hapta/gateway/static.py): what a path may reach. Pure, on a folder of the test's."""
from __future__ import annotations

from hapta.gateway.static import POLICY, find, serve_static


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


def fetch(url: str) -> tuple[bytes, dict[str, str]]:
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), dict(response.headers)


def test_serve_says_the_policy_and_the_app_may_set_its_own(tmp_path, database):
    """A newcomer's inline <style> was dropped without a word: `serve --static` prints the policy its pages get, and
    HAPTA_STATIC_CSP replaces it (the strict one stays the default)."""
    from tests.conftest import gateway_env
    from tests.services import GatewayProcess
    (tmp_path / "index.html").write_text("<style>body { color: red }</style>")
    strict = GatewayProcess(gateway_env(database), options=("--static", str(tmp_path))).start()
    try:
        body, headers = fetch(f"{strict.http}/")
        assert body.startswith(b"<style>") and headers["Content-Security-Policy"] == POLICY
    finally:
        strict.stop()
    said = [line for line in strict.output if "Content-Security-Policy" in line]
    assert said == [f"their Content-Security-Policy (HAPTA_STATIC_CSP sets another): {POLICY}\n"], strict.log_text()

    own = POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
    relaxed = GatewayProcess(gateway_env(database, HAPTA_STATIC_CSP=own), options=("--static", str(tmp_path))).start()
    try:
        assert fetch(f"{relaxed.http}/")[1]["Content-Security-Policy"] == own
        # the gateway's own pages keep theirs: the setting is for the app's pages only
        assert "unsafe-inline" not in fetch(f"{relaxed.http}/_/")[1]["Content-Security-Policy"]
    finally:
        relaxed.stop()
    assert f"their Content-Security-Policy: {own}\n" in relaxed.output


def test_a_policy_of_more_than_one_line_is_refused(tmp_path):
    import pytest
    from hapta.settings import Settings, SettingsError
    base = {"HAPTA_JWT_SECRET": "j" * 40, "HAPTA_ANON_KEY": "anon", "HAPTA_ADMIN_KEY": "admin"}
    assert Settings.load(tmp_path, {**base, "HAPTA_STATIC_CSP": "default-src 'self'"}).static_csp == \
        "default-src 'self'"
    with pytest.raises(SettingsError, match="HAPTA_STATIC_CSP"):
        Settings.load(tmp_path, {**base, "HAPTA_STATIC_CSP": "default-src 'self'\r\nSet-Cookie: a=b"})
