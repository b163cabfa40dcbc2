"""A small OpenID Connect provider double on 127.0.0.1 for tests of the bot-first sign-in that do
not need a browser: discovery, authorisation (decided by the test, no login form), the token
endpoint with client authentication and PKCE (S256), RS256-signed ID tokens, JWKS, userinfo.

The test says who signs in next (`sign_in_as`) or that the person refuses (`refuse_next`), and
may spoil the next ID token (`spoil_next`: "nonce", "signature", "audience"). The end-to-end test
uses the real npm package oidc-provider instead (tests/fakes/oidc/provider.js).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.fakes.server import LoopbackServer

_KEYS: dict[str, RSAKey] = {}


def _key(name: str) -> RSAKey:
    """RSA keys are slow to make: one per name for the whole test session."""
    if name not in _KEYS:
        _KEYS[name] = RSAKey.generate_key(2048, parameters={"kid": name, "use": "sig"})
    return _KEYS[name]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    claims: dict[str, Any]


@dataclass
class FakeOidcProvider(LoopbackServer):
    client_id: str = "dpo-bot"
    client_secret: str = "test-client-secret"
    # Claims of the person who signs in next; None: nobody chosen yet (the test must choose).
    next_claims: dict[str, Any] | None = None
    refuse: bool = False
    spoil: str | None = None
    # Extra claims go to userinfo only, as oidc-provider does when an access token is issued.
    claims_in_userinfo_only: bool = True
    issued_codes: list[str] = field(default_factory=list)
    token_requests: int = 0
    authorization_requests: int = 0
    # Called with the path of every request the provider gets, when it gets it.
    observers: list[Callable[[str], None]] = field(default_factory=list)
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _access: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _application(self) -> web.Application:
        @web.middleware
        async def observed(request: web.Request, handler: Handler) -> web.StreamResponse:
            for observer in self.observers:
                observer(request.path)
            return await handler(request)

        app = web.Application(middlewares=[observed])
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/userinfo", self.userinfo)
        return app

    # -- what the test controls ----------------------------------------------------------------

    def sign_in_as(self, sub: str, **claims: Any) -> None:
        self.next_claims = {"sub": sub, **claims}
        self.refuse = False

    def refuse_next(self) -> None:
        self.refuse = True

    def spoil_next(self, what: str) -> None:
        self.spoil = what

    # -- endpoints -----------------------------------------------------------------------------

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([_key("provider")]).as_dict(private=False))

    async def authorize(self, request: web.Request) -> web.Response:
        self.authorization_requests += 1
        query = request.query
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return web.Response(status=400, text="bad authorization request")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return web.Response(status=400, text="PKCE required")
        if "openid" not in query.get("scope", "").split():
            return web.Response(status=400, text="openid scope required")
        redirect_uri = query["redirect_uri"]
        answer: dict[str, str] = {"state": query.get("state", ""), "iss": self.url}
        if self.refuse or self.next_claims is None:
            self.refuse = False
            answer["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(24)
            self.issued_codes.append(code)
            self._grants[code] = _Grant(
                client_id=self.client_id,
                redirect_uri=redirect_uri,
                nonce=query.get("nonce"),
                challenge=query["code_challenge"],
                claims=dict(self.next_claims),
            )
            answer["code"] = code
        raise web.HTTPFound(f"{redirect_uri}?{urlencode(answer)}")

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        grant = self._grants.pop(str(form.get("code", "")), None)
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or form.get("redirect_uri") != grant.redirect_uri
            or s256(str(form.get("code_verifier", ""))) != grant.challenge
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        access_token = secrets.token_urlsafe(24)
        self._access[access_token] = grant.claims
        now = int(time.time())
        id_claims: dict[str, Any] = {
            "iss": self.url,
            "sub": grant.claims["sub"],
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
        }
        if not self.claims_in_userinfo_only:
            id_claims.update(grant.claims)
        key = _key("provider")
        spoil, self.spoil = self.spoil, None
        if spoil == "nonce":
            id_claims["nonce"] = "another-nonce"
        elif spoil == "audience":
            id_claims["aud"] = "another-client"
        elif spoil == "signature":
            key = _key("intruder")
        id_token = jwt.encode({"alg": "RS256", "kid": "provider"}, id_claims, key)
        return web.json_response(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )

    async def userinfo(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        claims = self._access.get(token)
        if claims is None:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response(claims)
