"""Bearer tokens for Graph: a static token, or msal's client-credentials flow."""

from __future__ import annotations

import os
import threading
from typing import Generator, Mapping, Protocol

import httpx

from .clouds import Cloud
from .errors import AuthError, InputError

__all__ = ["BearerAuth", "ClientSecretToken", "StaticToken", "TokenProvider", "token_provider_from_env"]

ACCESS_TOKEN_ENV = "BULKPHONE_ACCESS_TOKEN"
CLIENT_SECRET_ENV = "BULKPHONE_CLIENT_SECRET"


class TokenProvider(Protocol):
    def token(self, *, refresh: bool = False) -> str: ...


class StaticToken:
    def __init__(self, value: str) -> None:
        self._value = value

    def token(self, *, refresh: bool = False) -> str:
        return self._value

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"


class ClientSecretToken:
    """Client credentials through msal, which caches the token and renews it before expiry."""

    def __init__(self, *, tenant_id: str, client_id: str, secret: str, cloud: Cloud, http_client=None) -> None:
        import msal

        self._scopes = [cloud.scope]
        self._lock = threading.Lock()
        try:
            self._app = msal.ConfidentialClientApplication(
                client_id,
                authority=f"{cloud.authority}/{tenant_id}",
                client_credential=secret,
                http_client=http_client,
            )
        except ValueError as exc:
            raise AuthError(f"can't reach the sign-in authority for tenant {tenant_id}: {exc}") from None

    def token(self, *, refresh: bool = False) -> str:
        with self._lock:
            if refresh:
                for account_token in self._app.token_cache.search(self._app.token_cache.CredentialType.ACCESS_TOKEN):
                    self._app.token_cache.remove_at(account_token)
            result = self._app.acquire_token_for_client(scopes=self._scopes)
        if "access_token" not in result:
            raise AuthError(
                f"sign-in failed: {result.get('error')}: {result.get('error_description', '').splitlines()[0]}"
            )
        return result["access_token"]

    def __repr__(self) -> str:
        return "ClientSecretToken(<hidden>)"


class BearerAuth(httpx.Auth):
    """Adds the token; on a 401 fetches a fresh one once and sends the request again."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.provider.token()}"
        response = yield request
        if response.status_code == 401 and not isinstance(self.provider, StaticToken):
            request.headers["Authorization"] = f"Bearer {self.provider.token(refresh=True)}"
            yield request


def token_provider_from_env(
    *, tenant_id: str | None, client_id: str | None, cloud: Cloud, environ: Mapping[str, str] | None = None
) -> TokenProvider:
    environ = os.environ if environ is None else environ
    if environ.get(ACCESS_TOKEN_ENV):
        return StaticToken(environ[ACCESS_TOKEN_ENV])
    secret = environ.get(CLIENT_SECRET_ENV)
    if tenant_id and client_id and secret:
        return ClientSecretToken(tenant_id=tenant_id, client_id=client_id, secret=secret, cloud=cloud)
    missing = [
        name
        for name, value in (("--tenant-id", tenant_id), ("--client-id", client_id), (CLIENT_SECRET_ENV, secret))
        if not value
    ]
    raise InputError(
        f"no credentials: missing {', '.join(missing)}. Fix: set {ACCESS_TOKEN_ENV}, or give --tenant-id and "
        f"--client-id and put the app's secret in the environment variable {CLIENT_SECRET_ENV}."
    )
