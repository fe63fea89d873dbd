"""The one route table (hapta/routes.py) that serving, webhooks and functions' reserved paths all read: pure."""
from __future__ import annotations

from hapta.routes import OWN, STATIC, Routes, reserved


def test_the_gateway_routes_answer_get_and_refuse_other_methods_with_allow():
    routes = Routes()
    for path, serves in (("/ws", "websocket"), ("/health", "health"), ("/metrics", "metrics"),
                         ("/oauth2/callback", "oauth2"), ("/files/abc", "files"), ("/_/", "dashboard"),
                         ("/_", "dashboard"), ("/_/assets/x.js", "dashboard")):
        assert routes.find("GET", path).route.serves == serves, path
        refused = routes.find("POST", path)
        assert refused.nothing and refused.allowed == (("GET", "HEAD") if serves == "files" else ("GET",))
    assert routes.find("HEAD", "/files/abc").route.serves == "files"   # signed file links answer HEAD too
    assert routes.find("GET", "/oauth2/other").nothing   # kept for the gateway, served by nothing (404)
    assert routes.find("GET", "/healthz").nothing and routes.find("POST", "/nowhere").allowed == ()


def test_functions_routes_come_after_the_gateways_and_static_pages_last():
    declared = {"/hooks/pay": {"POST": "pay"}, "/hooks/status": {"GET": "status", "PUT": "put"}}
    routes = Routes(lambda path: declared.get(path, {}), static=True)
    assert routes.find("POST", "/hooks/pay").function == "pay"
    assert routes.find("GET", "/hooks/status").function == "status"
    wrong = routes.find("GET", "/hooks/pay")   # declared for another method: 405, not the pages
    assert wrong.nothing and wrong.allowed == ("POST",)
    assert routes.find("PATCH", "/hooks/status").allowed == ("GET", "PUT")
    assert routes.find("GET", "/index.html").route is STATIC
    assert routes.find("HEAD", "/index.html").route is STATIC
    assert routes.find("POST", "/index.html").nothing   # the pages answer GET and HEAD only
    assert Routes(lambda path: declared.get(path, {})).find("GET", "/index.html").nothing   # no --static


def test_every_gateway_path_is_reserved_and_nothing_else():
    for route in OWN:
        assert reserved(route.path) and reserved(route.path.rstrip("/") + "/under")
    assert reserved("/_") and reserved("/oauth2/anything") and reserved("/files")
    for path in ("/hooks/pay", "/wsx", "/healthy", "/_x", "/filesystem", "/"):
        assert not reserved(path), path
