"""Bearer tokens for Graph, through msal for every way admins run jobs.

| mode                | who it is for                               | what it needs                                   |
|---------------------|---------------------------------------------|-------------------------------------------------|
| `secret`            | an app registration with a client secret    | tenant, client id, env BULKPHONE_CLIENT_SECRET   |
| `certificate`       | an app registration with a certificate      | tenant, client id, PEM or PFX (+ password env)   |
| `managed-identity`  | App Service, Azure Automation, Functions, VM | nothing (system) or the identity's client id    |
| `workload-identity` | AKS workload identity, GitHub Actions OIDC  | tenant, client id, a federated token file        |
| `device-code`       | an admin signing in for a one-off run       | tenant, client id of a public client app         |
| `token`             | tests, or a token obtained elsewhere        | env BULKPHONE_ACCESS_TOKEN                       |

Secrets come from the environment or files only, never from the command line, and never
appear in a message, a log line or a report.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator, Mapping, Protocol, TypeVar

import httpx
import jwt

from ._clouds import Cloud
from ._errors import AuthError, InputError

__all__ = [
    "AUTH_MODES",
    "AuthSettings",
    "BearerAuth",
    "MsalToken",
    "StaticToken",
    "TokenProvider",
    "decode_claims",
    "token_provider",
]

ACCESS_TOKEN_ENV = "BULKPHONE_ACCESS_TOKEN"
CLIENT_SECRET_ENV = "BULKPHONE_CLIENT_SECRET"
CERTIFICATE_PASSWORD_ENV = "BULKPHONE_CERTIFICATE_PASSWORD"
FEDERATED_TOKEN_ENV = "AZURE_FEDERATED_TOKEN_FILE"
T = TypeVar("T")
AUTH_MODES = ("secret", "certificate", "managed-identity", "workload-identity", "device-code", "token")


class TokenProvider(Protocol):
    def token(self, *, refresh: bool = False) -> str: ...


@dataclass(frozen=True)
class AuthSettings:
    mode: str | None = None  # None: chosen from what is configured
    tenant_id: str | None = None
    client_id: str | None = None
    certificate: str | None = None  # path to a PEM (key + certificate) or a PFX
    send_x5c: bool = False  # send the certificate chain (subject name / issuer auth)
    managed_identity_client_id: str | None = None  # a user-assigned identity
    federated_token_file: str | None = None
    authority_url: str | None = None  # overrides the cloud's login authority (tests, private clouds)
    # The environment variables that hold the secrets (a job file may name its own).
    secret_env: str = CLIENT_SECRET_ENV
    certificate_password_env: str = CERTIFICATE_PASSWORD_ENV
    token_env: str = ACCESS_TOKEN_ENV


class StaticToken:
    def __init__(self, value: str) -> None:
        self._value = value

    def token(self, *, refresh: bool = False) -> str:
        return self._value

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"


class MsalToken:
    """A token from msal, which caches it and renews it before it expires; `refresh=True`
    (after Graph said 401) drops the cached token and asks again."""

    def __init__(self, acquire: Callable[[], dict], cache, description: str) -> None:
        self._acquire = acquire
        self._cache = cache
        self._lock = threading.Lock()
        self.description = description

    def token(self, *, refresh: bool = False) -> str:
        with self._lock:
            if refresh:
                for cached in list(self._cache.search(self._cache.CredentialType.ACCESS_TOKEN)):
                    self._cache.remove_at(cached)
            try:
                result = self._acquire()
            except AuthError:
                raise
            except Exception as exc:  # msal and requests raise many types for an unreachable authority
                raise AuthError(f"sign-in ({self.description}) failed: {type(exc).__name__}: {_first_line(exc)}") from None
        if "access_token" not in result:
            raise AuthError(
                f"sign-in ({self.description}) failed: {result.get('error')}: "
                f"{_first_line(result.get('error_description', ''))}"
            )
        return result["access_token"]

    def __repr__(self) -> str:
        return f"MsalToken({self.description})"


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


def decode_claims(token: str) -> dict:
    """The claims of a JWT access token, unverified (Graph verifies it; we only read roles/scp)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def token_provider(
    settings: AuthSettings,
    cloud: Cloud,
    *,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], None] | None = None,
) -> TokenProvider:
    """The token provider for the chosen (or detected) mode. `prompt` shows device-code instructions."""
    environ = os.environ if environ is None else environ
    mode = settings.mode or _detect_mode(settings, environ)
    if mode == "token":
        return StaticToken(_need(environ.get(settings.token_env), f"set {settings.token_env}"))
    if mode == "managed-identity":
        return _managed_identity(settings, cloud)
    tenant = _need(settings.tenant_id, "give the tenant id ({tenant_id})", "tenant_id")
    client_id = _need(settings.client_id, "give the app's client id ({client_id})", "client_id")
    if settings.authority_url and not settings.authority_url.lower().startswith("https://"):
        raise InputError(
            f"the sign-in authority {settings.authority_url} is not https: msal (and bulkphone) send credentials "
            "only over TLS. Fix: give its https:// address."
        )
    authority = f"{(settings.authority_url or cloud.authority).rstrip('/')}/{tenant}"
    if mode == "device-code":
        return _device_code(client_id, authority, settings, cloud, prompt)
    if mode == "secret":
        credential = _need(environ.get(settings.secret_env), f"put the app's secret in the environment variable {settings.secret_env}")
    elif mode == "certificate":
        credential = _certificate_credential(settings, environ)
    elif mode == "workload-identity":
        credential = {"client_assertion": _federated_assertion(settings, environ)}
    else:
        raise InputError(f"unknown sign-in mode ({{auth}}) {mode!r}: use one of {', '.join(AUTH_MODES)}", settings=("auth",))
    return _confidential(client_id, authority, credential, settings, cloud, mode)


def _detect_mode(settings: AuthSettings, environ: Mapping[str, str]) -> str:
    if environ.get(settings.token_env):
        return "token"
    if settings.certificate:
        return "certificate"
    if environ.get(settings.secret_env):
        return "secret"
    if settings.federated_token_file or environ.get(FEDERATED_TOKEN_ENV):
        return "workload-identity"
    if settings.managed_identity_client_id or environ.get("IDENTITY_ENDPOINT") or environ.get("MSI_ENDPOINT"):
        return "managed-identity"
    raise InputError(
        f"no credentials: set {settings.token_env}, or give {{tenant_id}} and {{client_id}} with the app's secret in "
        f"{settings.secret_env}, a certificate ({{certificate}}), a federated token file ({FEDERATED_TOKEN_ENV}), "
        "or choose {auth} managed-identity or device-code. See README: Authentication.",
        settings=("tenant_id", "client_id", "certificate", "auth"),
    )


def _need(value: str | None, fix: str, *settings: str) -> str:
    if not value:
        raise InputError(f"missing credentials: {fix}", settings=settings)
    return value


def _msal_options(settings: AuthSettings) -> dict:
    # A private authority (a test server, a private cloud) isn't in Microsoft's instance list.
    return {"instance_discovery": False} if settings.authority_url else {}


def _confidential(client_id, authority, credential, settings, cloud, mode) -> MsalToken:
    import msal

    cache = msal.TokenCache()
    app = _reach_authority(mode, authority, lambda: msal.ConfidentialClientApplication(
        client_id, authority=authority, client_credential=credential, token_cache=cache, **_msal_options(settings)
    ))
    return MsalToken(lambda: app.acquire_token_for_client(scopes=[cloud.scope]), cache, mode)


def _managed_identity(settings: AuthSettings, cloud: Cloud) -> MsalToken:
    import msal
    import requests

    identity = (
        msal.UserAssignedManagedIdentity(client_id=settings.managed_identity_client_id)
        if settings.managed_identity_client_id
        else msal.SystemAssignedManagedIdentity()
    )
    cache = msal.TokenCache()
    client = msal.ManagedIdentityClient(identity, http_client=requests.Session(), token_cache=cache)
    kind = "user-assigned" if settings.managed_identity_client_id else "system-assigned"
    return MsalToken(lambda: client.acquire_token_for_client(resource=cloud.graph_url), cache, f"managed identity, {kind}")


def _device_code(client_id, authority, settings, cloud, prompt) -> MsalToken:
    import msal

    cache = msal.TokenCache()
    app = _reach_authority("device code", authority, lambda: msal.PublicClientApplication(
        client_id, authority=authority, token_cache=cache, **_msal_options(settings)
    ))
    scopes = [f"{cloud.graph_url}/UserAuthenticationMethod.ReadWrite.All"]

    def acquire() -> dict:
        accounts = app.get_accounts()
        if accounts:
            result = app.acquire_token_silent(scopes, account=accounts[0])
            if result:
                return result
        flow = app.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            return flow
        (prompt or (lambda message: None))(flow["message"])
        return app.acquire_token_by_device_flow(flow)

    return MsalToken(acquire, cache, "device code")


def _reach_authority(mode: str, authority: str, make: Callable[[], T]) -> T:
    """msal reads the authority's metadata when the app is made: a wrong or unreachable authority fails here."""
    try:
        return make()
    except ValueError as exc:
        raise AuthError(f"sign-in ({mode}) can't use the authority {authority}: {_first_line(exc)}") from None
    except Exception as exc:  # requests and msal raise many types for an unreachable server
        raise AuthError(
            f"sign-in ({mode}) can't reach the authority {authority} ({type(exc).__name__}: {_first_line(exc)}). "
            "Fix: check the cloud or authority URL, the tenant id, and the network or proxy (HTTPS_PROXY)"
        ) from None


def _certificate_credential(settings: AuthSettings, environ: Mapping[str, str]) -> dict:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    path = Path(_need(settings.certificate, "give the certificate ({certificate}): a PEM with the private key, or a PFX", "certificate"))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: can't read the certificate ({exc.strerror}). Fix: check the path.") from None
    password = environ.get(settings.certificate_password_env)
    secret = password.encode() if password else None
    try:
        if path.suffix.lower() in (".pfx", ".p12"):
            key, certificate, _ = pkcs12.load_key_and_certificates(data, secret)
        else:
            key = serialization.load_pem_private_key(data, secret)
            certificate = x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError) as exc:
        hint = f"set {settings.certificate_password_env} to its password" if "password" in str(exc).lower() else (
            "give a PEM file holding both the private key and the certificate, or a .pfx"
        )
        raise InputError(f"{path}: can't load the certificate and its private key. Fix: {hint}.") from None
    if key is None or certificate is None:
        raise InputError(f"{path}: the file needs both the private key and the certificate.")
    credential = {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),
    }
    if settings.send_x5c:
        credential["public_certificate"] = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return credential


def _federated_assertion(settings: AuthSettings, environ: Mapping[str, str]) -> Callable[[], str]:
    path = Path(_need(settings.federated_token_file or environ.get(FEDERATED_TOKEN_ENV),
                      f"give the federated token file ({{federated_token_file}}) or set {FEDERATED_TOKEN_ENV}",
                      "federated_token_file"))

    def read() -> str:
        # The platform rotates the file; read it each time msal needs an assertion.
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AuthError(f"{path}: can't read the federated token ({exc.strerror})") from None

    return read


def _first_line(value) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""
