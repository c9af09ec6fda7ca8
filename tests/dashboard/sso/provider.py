"""A small but real OpenID Connect provider for the tests, over HTTP on loopback: discovery,
JWKS, an authorize page (a login form), a token endpoint that checks the client, the code, the
redirect URI and the PKCE verifier (S256), refresh tokens, and userinfo. ID tokens are RS256,
signed with a key of its JWKS. `fault` makes it hand out a bad ID token on purpose (wrong
signature, audience, nonce or expiry), as an attacker or a broken IdP would.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "triggerdesk"
CLIENT_SECRET = "provider-test-client-secret"


@dataclass
class Person:
    sub: str
    email: str
    groups: list[str] = field(default_factory=list)
    email_verified: bool = True
    disabled: bool = False


@functools.cache
def _new_key(name: str) -> rsa.RSAPrivateKey:
    # Made once per test process: RSA key generation is the slow part of starting a provider.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


class Provider:
    """The provider's state: its people, codes and tokens, and the fault to inject."""

    def __init__(self) -> None:
        self.key = _new_key("signing")
        self.kid = "test-key-1"
        # A key the JWKS does not publish under its kid: signs the "bad_signature" tokens.
        self.wrong_key = _new_key("attacker")
        self.people: dict[str, Person] = {}
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, str] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.fault: str | None = None
        self.token_requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Provider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, login: str, **kwargs) -> Person:
        person = Person(sub=kwargs.pop("sub", f"sub-{login}"), **kwargs)
        self.people[login] = person
        return person

    # -- what the endpoints do ---------------------------------------------------------------

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }

    def issue_code(self, login: str, params: dict[str, str]) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "login": login,
            "client_id": params.get("client_id"),
            "redirect_uri": params.get("redirect_uri"),
            "nonce": params.get("nonce"),
            "code_challenge": params.get("code_challenge"),
            "code_challenge_method": params.get("code_challenge_method"),
        }
        return code

    def id_token(self, person: Person, nonce: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": person.sub,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": person.email,
            "email_verified": person.email_verified,
        }
        key = self.key
        if self.fault == "wrong_audience":
            claims["aud"] = "another-client"
        elif self.fault == "wrong_nonce":
            claims["nonce"] = "not-the-nonce-you-sent"
        elif self.fault == "expired":
            claims["iat"] = now - 3600
            claims["exp"] = now - 1800
        elif self.fault == "bad_signature":
            key = self.wrong_key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def userinfo(self, person: Person) -> dict:
        return {
            "sub": person.sub,
            "email": person.email,
            "email_verified": person.email_verified,
            "groups": list(person.groups),
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        self.token_requests.append(form)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant"}
            verifier = form.get("code_verifier", "")
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if grant["code_challenge_method"] != "S256" or challenge != grant["code_challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE"}
            login = grant["login"]
            person = self.people[login]
            refresh = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = login
            return 200, {
                "access_token": self._access_token(login),
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": refresh,
                "id_token": self.id_token(person, grant["nonce"]),
            }
        if form.get("grant_type") == "refresh_token":
            login = self.refresh_tokens.get(form.get("refresh_token", ""))
            if login is None or self.people[login].disabled:
                return 400, {"error": "invalid_grant"}
            return 200, {"access_token": self._access_token(login), "token_type": "Bearer"}
        return 400, {"error": "unsupported_grant_type"}

    def _access_token(self, login: str) -> str:
        token = secrets.token_urlsafe(24)
        self.access_tokens[token] = login
        return token


def _handler_for(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet tests
            pass

        def _send(self, status: int, body: bytes, content_type: str, headers=None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                return self._json(200, provider.discovery())
            if parts.path == "/jwks":
                return self._json(200, {"keys": [_public_jwk(provider.key, provider.kid)]})
            if parts.path == "/authorize":
                return self._authorize(query)
            if parts.path == "/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                login = provider.access_tokens.get(token)
                if login is None or provider.people[login].disabled:
                    return self._json(401, {"error": "invalid_token"})
                return self._json(200, provider.userinfo(provider.people[login]))
            return self._json(404, {"error": "not_found"})

        def _authorize(self, query: dict[str, str]) -> None:
            if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                return self._json(400, {"error": "invalid_request"})
            login = query.get("login")
            if login not in provider.people:
                # The provider's own sign-in page: a form that comes back here with the login.
                hidden = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                    for k, v in query.items()
                    if k != "login"
                )
                page = (
                    "<!doctype html><html lang='en'><title>Test IdP</title><main>"
                    "<h1>Test IdP sign-in</h1><form method='get' action='/authorize'>"
                    f"{hidden}<label>Login <input name='login'></label>"
                    "<button type='submit'>Sign in</button></form></main></html>"
                )
                return self._send(200, page.encode(), "text/html; charset=utf-8")
            code = provider.issue_code(login, query)
            target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
            return self._send(302, b"", "text/plain", {"Location": target})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {
                key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()
            }
            if urlsplit(self.path).path == "/token":
                status, payload = provider.token(form)
                return self._json(status, payload)
            return self._json(404, {"error": "not_found"})

    return Handler
