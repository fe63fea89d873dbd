"""A small OAuth2 provider on loopback for the tests: authorization code flow with PKCE S256, checked for real.

It plays the provider's three endpoints. /authorize answers at once with the redirect a browser would follow after
the user signed in (or refused); /token checks the code, the client secret, the redirect URI and the PKCE verifier;
/userinfo answers for the access token it issued. `mode` lets a test make it misbehave.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret"


class Provider:
    def __init__(self):
        self.user = {"sub": "user-1", "email": "oauth-user@example.com", "email_verified": True}
        self.mode = "ok"             # "ok" | "deny" (the user refuses) | "token_error" (the token endpoint fails)
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.token_requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "Provider":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):   # quiet
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/authorize":
                    return self._authorize(query)
                if url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    user = provider.tokens.get(token)
                    return self._json(200, user) if user else self._json(401, {"error": "invalid_token"})
                self._json(404, {})

            def _authorize(self, query: dict) -> None:
                assert query.get("code_challenge_method") == "S256" and query.get("client_id") == CLIENT_ID
                if provider.mode == "deny":
                    target = {"error": "access_denied", "state": query["state"]}
                else:
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {"challenge": query["code_challenge"], "redirect": query["redirect_uri"],
                                            "user": dict(provider.user)}
                    target = {"code": code, "state": query["state"]}
                self.send_response(302)
                self.send_header("Location", query["redirect_uri"] + "?" + urllib.parse.urlencode(target))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                provider.token_requests += 1
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if provider.mode == "token_error":
                    return self._json(500, {"error": "server_error"})
                grant = provider.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                if (grant is None or form.get("client_secret") != CLIENT_SECRET or form.get("client_id") != CLIENT_ID
                        or form.get("redirect_uri") != grant["redirect"] or challenge.decode() != grant["challenge"]):
                    return self._json(400, {"error": "invalid_grant"})
                token = secrets.token_urlsafe(16)
                provider.tokens[token] = grant["user"]
                self._json(200, {"access_token": token, "token_type": "bearer"})

        return Handler
