"""The client side of the OpenID Connect code flow (bot-first sign-in, bot/web/oidc.py): discovery,
the authorisation URL with PKCE, the code exchange, the ID token's checks, userinfo.

A module of its own so that Authlib, joserfc and httpx2 are loaded only when a provider is
configured (bot.web.oidc.provider_from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from bot.web.oidc import SignInError

HTTP_TIMEOUT = 10.0
ID_TOKEN_LEEWAY = 120  # seconds of clock skew tolerated between us and the provider


@dataclass
class OidcProvider:
    """An OpenID Connect provider found by discovery; the client side of the code flow."""

    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    oid_claim: str
    snils_claim: str
    _metadata: dict[str, Any] | None = field(default=None, repr=False)
    _jwks: dict[str, Any] | None = field(default=None, repr=False)

    def client(self, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope="openid",
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT,
            **kwargs,
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self.client() as client:
                response = await client.request("GET", url, withhold_token=True)
                response.raise_for_status()
                body = response.json()
        except (httpx2.HTTPError, ValueError) as error:
            raise SignInError(unavailable=True, reason=type(error).__name__) from error
        if not isinstance(body, dict):
            raise SignInError(unavailable=True, reason="not a JSON object")
        return body

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, fetched once."""
        if self._metadata is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            metadata = await self._get_json(url)
            if metadata.get("issuer", "").rstrip("/") != self.issuer.rstrip("/"):
                raise SignInError(unavailable=True, reason="issuer of the discovery document")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(metadata.get(name), str):
                    raise SignInError(unavailable=True, reason=f"no {name}")
            self._metadata = metadata
        return self._metadata

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            self._jwks = await self._get_json((await self.metadata())["jwks_uri"])
        try:
            return KeySet.import_key_set(self._jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise SignInError(unavailable=True, reason="JWKS") from error

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self.client() as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, nonce=nonce, code_verifier=code_verifier
            )
        return str(url)

    async def sign_in(self, *, code: str, code_verifier: str, nonce: str) -> dict[str, Any]:
        """Exchange the code; the claims of the checked ID token, completed from userinfo."""
        metadata = await self.metadata()
        async with self.client() as client:
            try:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
            except OAuth2Error as error:
                raise SignInError(unavailable=False, reason=str(error.error)) from error
            except (httpx2.HTTPError, ValueError) as error:
                raise SignInError(unavailable=True, reason=type(error).__name__) from error
            if "id_token" not in token:
                raise SignInError(unavailable=False, reason="no ID token")
            claims = await self.verify_id_token(token, nonce)
            userinfo_endpoint = metadata.get("userinfo_endpoint")
            wanted = (self.oid_claim, self.snils_claim)
            if isinstance(userinfo_endpoint, str) and not all(c in claims for c in wanted):
                claims = {**await self._userinfo(client, userinfo_endpoint, claims), **claims}
        return claims

    async def verify_id_token(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        """Signature by the provider's JWKS, issuer, audience, expiry, nonce, at_hash."""
        metadata = await self.metadata()
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in algorithms if a != "none"]
        try:
            id_token = token["id_token"]
            try:
                decoded = jwt.decode(id_token, await self.key_set(), algorithms)
            except InvalidKeyIdError:  # the provider rotated its keys
                decoded = jwt.decode(id_token, await self.key_set(refresh=True), algorithms)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {"iss": {"values": [metadata["issuer"]]}, "nonce": {"essential": True}},
                {
                    "nonce": nonce,
                    "client_id": self.client_id,
                    "access_token": token.get("access_token"),
                },
            )
            claims.validate(leeway=ID_TOKEN_LEEWAY)
        except (JoseError, ValueError, TypeError) as error:
            raise SignInError(unavailable=False, reason=type(error).__name__) from error
        return dict(claims)

    async def _userinfo(
        self, client: AsyncOAuth2Client, endpoint: str, claims: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            response = await client.get(endpoint)
            response.raise_for_status()
            info = response.json()
        except (httpx2.HTTPError, ValueError) as error:
            raise SignInError(unavailable=True, reason=type(error).__name__) from error
        if not isinstance(info, dict) or info.get("sub") != claims.get("sub"):
            raise SignInError(unavailable=False, reason="userinfo of another subject")
        return info
