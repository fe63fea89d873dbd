"""Every path the gateway's port answers over plain HTTP, in one table: the gateway's own routes, the @http functions'
routes, and the --static pages under them.

Three readers share it, so that what is served, what a webhook may declare and what is refused agree:
- gateway/server.py serves a GET that websockets read (the handshake's request) by it;
- gateway/http1.py asks it, for a request h11 read, what answers the request before any of its body is read
  (404 and 405 at once; a route's own body bound);
- functions/ refuses at start an @http path that is the gateway's own (`reserved`).

Pure: paths and methods in, a `Found` out. What answers a gateway route is the server's (a name here, a handler
there); what answers a function's route is functions/' (whatever `functions(path)` returns for it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Route:
    """One of the gateway's own paths: `path` exactly, or with `prefix` every path under it (and `path` without its
    last "/"). `serves` names what answers it (server.py maps the name to a handler); None keeps the path for the
    gateway without serving it (an @http function may not take it, and a GET there goes on to the pages)."""
    path: str
    serves: str | None
    prefix: bool = False
    methods: tuple[str, ...] = ("GET",)

    def matches(self, path: str) -> bool:
        if self.prefix:
            return path.startswith(self.path) or path == self.path.rstrip("/")
        return path == self.path


# In the order they are looked up. GET only (and HEAD where said): requests with a body are the functions' (webhooks).
OWN: tuple[Route, ...] = (
    Route("/ws", "websocket"),                   # the WebSocket handshake (websockets answers it)
    Route("/health", "health"),
    Route("/metrics", "metrics"),
    Route("/oauth2/callback", "oauth2"),
    Route("/oauth2/", None, prefix=True),        # kept for the gateway's own sign-in pages
    Route("/files/", "files", prefix=True, methods=("GET", "HEAD")),   # signed URLs of files.url (local backend)
    Route("/_/", "dashboard", prefix=True),      # the admin dashboard
)

STATIC = Route("/", "static", prefix=True)       # hapta serve --static DIR: the pages, under every other route


def reserved(path: str, own: tuple[Route, ...] = OWN) -> bool:
    """Whether `path` is the gateway's own (or under one of its prefixes): no @http function may declare it."""
    return any(route.matches(path) or path.startswith(route.path.rstrip("/") + "/") for route in own)


@dataclass(frozen=True)
class Found:
    """What answers `method path`: one of the gateway's routes (`route`), an @http function's route (`function`),
    or nothing; `allowed` lists the methods the path does answer when this method is not among them (405)."""
    route: Route | None = None
    function: Any = None
    allowed: tuple[str, ...] = ()

    @property
    def nothing(self) -> bool:
        return self.route is None and self.function is None


class Routes:
    """The table: the gateway's own routes first, then the functions' (read afresh each time: --reload changes
    them), then the pages of --static for a GET that nothing else answers."""

    def __init__(self, functions: Callable[[str], Mapping[str, Any]] = lambda path: {}, *, static: bool = False,
                 own: tuple[Route, ...] = OWN):
        self.own = own
        self.functions = functions   # path -> {method: what answers it}
        self.static = static

    def find(self, method: str, path: str) -> Found:
        for route in self.own:
            if route.serves is not None and route.matches(path):
                return Found(route=route) if method in route.methods else Found(allowed=route.methods)
        declared = self.functions(path)
        if declared:
            if method in declared:
                return Found(function=declared[method])
            return Found(allowed=tuple(sorted(declared)))
        if self.static and method in ("GET", "HEAD"):
            return Found(route=STATIC)
        return Found()
