"""The one place that talks HTTP to Microsoft Graph. Only this module sees httpx errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, Mapping, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from ._clouds import check_graph_url, origin
from ._errors import (
    AmbiguousWriteError,
    AuthError,
    ConflictError,
    ForbiddenError,
    GraphError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from ._logs import event
from ._model import PhoneMethod, PhoneType, SignInPreferences
from ._retry import RetryPolicy
from ._throttle import RateLimiter

__all__ = ["AUDIT_FIELDS", "BATCH_SIZE", "Counters", "DirectoryGroup", "DirectoryUser", "GraphClient", "Methods",
           "PHONE_FIELDS", "Registration", "RoleHolder", "USER_FIELDS"]

# What a user read or listing selects: who; who and what can feed an input; who and whether a guest.
USER_FIELDS = "id,userPrincipalName"
PHONE_FIELDS = "id,userPrincipalName,mobilePhone,businessPhones,usageLocation"
AUDIT_FIELDS = "id,userPrincipalName,userType"
REGISTRATION_DETAILS = "/reports/authenticationMethods/userRegistrationDetails"
# Kinds of /authentication/methods that aren't a second factor: a password, an SSPR-only email, a
# temporary pass that expires.
_NOT_MFA = {"password", "email", "temporaryAccessPass"}
BATCH_SIZE = 20  # Graph's limit on requests in one $batch
_TRANSIENT_STATUS = {500, 502, 503, 504}

Methods = dict[PhoneType, PhoneMethod]
T = TypeVar("T")


@dataclass(frozen=True)
class RoleHolder:
    """Who holds a directory role: a principal's object id and kind ("user", "group", or
    another kind such as "servicePrincipal")."""

    id: str
    kind: str


@dataclass(frozen=True)
class DirectoryUser:
    """A user object: id and UPN, and what else was selected: the directory's own phone
    attributes (synced from HR or on-premises AD, not sign-in methods), the user type."""

    id: str
    upn: str
    mobile_phone: str = ""
    business_phones: tuple[str, ...] = ()
    usage_location: str = ""
    user_type: str = ""  # Member or Guest ("" when not selected)


@dataclass(frozen=True)
class Registration:
    """What a user has registered for sign-in: a row of the registration report (its names in
    `methods`, e.g. microsoftAuthenticatorPush, and what the row says of the user), or the kinds
    of the user's /authentication/methods (e.g. microsoftAuthenticator, with the phones'
    numbers) when the report isn't available. None or "": not said by the source."""

    methods: tuple[str, ...]
    mfa_registered: bool
    phones: Mapping[str, str] = field(default_factory=dict)  # phoneType -> number (methods only)
    user_id: str = ""
    upn: str = ""
    preferred: str = ""  # userPreferredMethodForSecondaryAuthentication
    system_preferred: bool | None = None
    admin: bool | None = None
    user_type: str = ""


@dataclass(frozen=True)
class DirectoryGroup:
    id: str
    display_name: str


@dataclass
class Counters:
    """What the client did, for summaries and benchmarks."""

    reads: int = 0  # GETs, each sub-request of a batch counted
    writes: int = 0  # write requests sent (a retried write counts again)
    batches: int = 0
    batched_reads: int = 0  # the reads sent inside batches
    throttled: int = 0  # 429 answers, batch sub-responses included
    retries: int = 0  # requests sent again: reads by this client's loops, writes by the executor's (through `retried`)


class GraphClient:
    """Phone-method operations over an injected httpx.AsyncClient (its transport and auth are the caller's).

    A read is retried here on 429 and transient failures (one loop per read). A write is sent
    once: its one retry loop is the caller's (_executor.py), because only the caller can
    decide from a read-back whether writing again is right. A failed write whose outcome is
    unknown raises AmbiguousWriteError; a 409 raises ConflictError (typically saved anyway).
    A 404 is never retried: a user that replicates slowly is waited for by the caller, apart
    from everyone else.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = "https://graph.microsoft.com",
        version: str = "v1.0",
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        counters: Counters | None = None,
        batch_concurrency: int = 32,
        allow_insecure_http: bool = False,
    ) -> None:
        check_graph_url(base_url, allow_insecure_http=allow_insecure_http)
        self.http = http
        self.root = f"{base_url.rstrip('/')}/{version}"
        # signInPreferences exists only in beta; its requests go there, the same way as the rest.
        self.beta_root = f"{base_url.rstrip('/')}/beta"
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or RateLimiter(clock=self.policy.clock)
        self.counters = counters or Counters()
        self.batch_concurrency = batch_concurrency

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    # ---- reads ----
    async def list_phone_methods(self, user: str, *, retry: bool = True) -> Methods:
        """The user's phone methods; with retry=False one request only (a read-back inside a write's retry loop)."""
        return _methods(await self._read(f"{_user(user)}/authentication/phoneMethods", retry=retry))

    async def get_phone_method(self, user: str, phone_type: PhoneType, *, retry: bool = True) -> PhoneMethod | None:
        return _method(await self._read(f"{_user(user)}/authentication/phoneMethods/{phone_type.method_id}", retry=retry))

    async def list_users_page(self, link: str | None = None, page_size: int = 999, *,
                              fields: str = USER_FIELDS) -> tuple[list[DirectoryUser], str | None]:
        """One page of the tenant's users (with `fields`) and the link to the next page, if any."""
        body = await self._read(link or f"/users?$select={fields}&$top={page_size}")
        return [_directory_user(entry) for entry in body.get("value", [])], body.get("@odata.nextLink") or None

    async def find_groups(self, display_name: str, *, starting: bool = False, top: int | None = None) -> list[DirectoryGroup]:
        """The groups whose display name is `display_name` (none, one, or several; the directory
        compares without case), or with `starting`, begins with it (at most `top`)."""
        escaped = display_name.replace("'", "''")  # OData doubles a quote inside a string
        condition = quote(f"startswith(displayName,'{escaped}')" if starting else f"displayName eq '{escaped}'", safe="")
        body = await self._read(f"/groups?$filter={condition}&$select=id,displayName" + (f"&$top={top}" if top else ""))
        return [DirectoryGroup(str(entry.get("id", "")), str(entry.get("displayName") or "")) for entry in body.get("value", [])]

    async def list_group_members_page(self, group_id: str, link: str | None = None, page_size: int = 999, *,
                                      fields: str = PHONE_FIELDS) -> tuple[list[DirectoryUser], str | None]:
        """One page of the group's transitive user members (nested groups included, other
        objects left out by the cast), with `fields`, and the next page's link."""
        first = (f"/groups/{quote(group_id, safe='')}/transitiveMembers/microsoft.graph.user"
                 f"?$select={fields}&$top={page_size}")
        body = await self._read(link or first)
        return [_directory_user(entry) for entry in body.get("value", [])], body.get("@odata.nextLink") or None

    async def list_role_holders_page(self, link: str | None = None, page_size: int = 999) -> tuple[list[RoleHolder], str | None]:
        """One page of the directory's role assignments, as who holds them (RoleManagement.Read.Directory,
        else a 403 raises), and the next page's link."""
        body = await self._read(link or f"/roleManagement/directory/roleAssignments?$expand=principal&$top={page_size}")
        holders = []
        for entry in body.get("value", []):
            kind = str((entry.get("principal") or {}).get("@odata.type") or "").rpartition(".")[2]
            holders.append(RoleHolder(str(entry.get("principalId") or ""), kind))
        return holders, body.get("@odata.nextLink") or None

    async def read_phone_methods(self, users: list[str]) -> dict[str, Methods | GraphError]:
        """Many users' methods through $batch (see _read_many)."""
        return await self._read_many(users, lambda user: f"{_user(user)}/authentication/phoneMethods", _methods)

    async def read_directory_users(self, users: list[str], *, fields: str = USER_FIELDS) -> dict[str, DirectoryUser | GraphError]:
        """Many users' object id and UPN (and the other `fields`) through $batch: a UPN or an id
        in, both out."""
        return await self._read_many(users, lambda user: f"{_user(user)}?$select={fields}", _directory_user)

    async def read_registrations(self, user_ids: list[str]) -> dict[str, Registration | GraphError]:
        """Many users' rows of the registration report, by object id, through $batch. Needs
        AuditLog.Read.All and a tenant with Entra ID P1 or P2: a 403 (either) raises."""
        return await self._read_many(user_ids, lambda user: f"{REGISTRATION_DETAILS}/{quote(user, safe='')}", _registration)

    async def list_registrations_page(self, link: str | None = None, page_size: int = 999) -> tuple[list[Registration], str | None]:
        """One page of the registration report over the whole tenant (AuditLog.Read.All and Entra
        ID P1/P2, else a 403 raises), and the next page's link."""
        body = await self._read(link or f"{REGISTRATION_DETAILS}?$top={page_size}")
        return [_registration(entry) for entry in body.get("value", [])], body.get("@odata.nextLink") or None

    async def read_method_kinds(self, users: list[str]) -> dict[str, Registration | GraphError]:
        """Many users' every authentication method (all kinds, not only phones) through $batch."""
        return await self._read_many(users, lambda user: f"{_user(user)}/authentication/methods", _method_kinds)

    async def read_sign_in_preferences(self, users: list[str]) -> dict[str, SignInPreferences | GraphError]:
        """Many users' default sign-in methods through beta $batch."""
        return await self._read_many(users, lambda user: f"{_user(user)}/authentication/signInPreferences", _preferences,
                                     batch=f"{self.beta_root}/$batch")

    async def get_sign_in_preferences(self, user: str, *, retry: bool = True) -> SignInPreferences:
        return _preferences(await self._read(f"{self.beta_root}{_user(user)}/authentication/signInPreferences", retry=retry))

    async def _read_many(self, users: list[str], url: Callable[[str], str], parse: Callable[[dict], T], *,
                         batch: str = "/$batch") -> dict[str, T | GraphError]:
        """GET url(user) for many users through $batch, 20 a request, retrying each sub-request on its own.

        The one retry loop of these reads: a 429 or 5xx inside a 200 batch response, or a
        failed batch request, is retried for the users it concerns, after its Retry-After.
        A batch most of whose reads come back 429 says the reads' budget is spent: every batch
        waits out its Retry-After (one budget: the others would only be told the same) and reads
        go on at the pace Graph granted (throttle.ReadPacer); a lone 429 (another app's burst)
        holds only its own users. A 429 is retried for as long as the
        policy's time allows, not counted as a failed attempt: a big read is slowed to Graph's
        pace, never given up for being big. 401/403 raise at once: every other read would fail
        the same way.
        """
        results: dict[str, T | GraphError] = {}
        attempts = dict.fromkeys(users, 0)
        gate = asyncio.Semaphore(self.batch_concurrency)
        clock = self.policy.clock
        started = clock.now()

        async def read_chunk(chunk: list[str]) -> None:
            # Each chunk retries its own failures as soon as their wait is over, while the
            # other chunks go on: one slow sub-request never holds up a whole pass.
            while chunk:
                async with gate:
                    await self.limiter.reads.acquire(len(chunk))
                    answers = await self._batch_get(chunk, url, parse, batch)
                self.limiter.reads.granted(sum(not isinstance(answer, ThrottledError) for answer in answers.values()))
                retry: list[tuple[str, GraphError]] = []
                for user in chunk:
                    answer = answers[user]
                    if isinstance(answer, ThrottledError):
                        again = clock.now() - started < self.policy.max_seconds
                    else:
                        attempts[user] += 1
                        again = self.policy.should_retry(answer, attempts[user])
                    if not isinstance(answer, GraphError):
                        results[user] = answer
                    elif isinstance(answer, (AuthError, ForbiddenError)):
                        raise answer
                    elif again:
                        retry.append((user, answer))
                    else:
                        results[user] = answer
                chunk = [user for user, _ in retry]
                if chunk:
                    self.counters.retries += len(chunk)
                    wait = max(self.policy.wait_for(exc, max(1, attempts[u])) for u, exc in retry)
                    if 2 * sum(isinstance(exc, ThrottledError) for _, exc in retry) >= len(answers):
                        self.limiter.reads.spent(wait)
                    await clock.sleep(wait)

        pending = list(attempts)
        chunks = [pending[i : i + BATCH_SIZE] for i in range(0, len(pending), BATCH_SIZE)]
        failures = await asyncio.gather(*(read_chunk(chunk) for chunk in chunks), return_exceptions=True)
        for failure in failures:
            if isinstance(failure, BaseException):
                raise failure
        return results

    async def _batch_get(self, users: list[str], url: Callable[[str], str], parse: Callable[[dict], T],
                         batch: str) -> dict[str, T | GraphError]:
        requests = [{"id": str(index), "method": "GET", "url": url(user)} for index, user in enumerate(users)]

        self.counters.batches += 1
        self.counters.reads += len(requests)
        self.counters.batched_reads += len(requests)
        try:
            body = _json(await self._send("POST", batch, {"requests": requests}, write=False))
        except (AuthError, ForbiddenError):
            raise
        except GraphError as exc:
            return dict.fromkeys(users, exc)
        answers: dict[str, T | GraphError] = dict.fromkeys(
            users, TransientError("the batch response left this request out")
        )
        for response in body.get("responses", []):
            user = users[int(response["id"])]
            status, headers = int(response.get("status", 0)), response.get("headers") or {}
            payload = response.get("body") or {}
            if 200 <= status < 300:
                answers[user] = parse(payload)
            else:
                answers[user] = self._error(status, headers, payload, write=False)
        return answers

    # ---- writes ----
    async def create_phone_method(self, user: str, phone_type: PhoneType, number: str) -> PhoneMethod | None:
        payload = {"phoneNumber": number, "phoneType": phone_type.value}
        response = await self._write("POST", f"{_user(user)}/authentication/phoneMethods", payload)
        return _method(response.json()) if response.content else None

    async def update_phone_method(self, user: str, phone_type: PhoneType, number: str) -> None:
        payload = {"phoneNumber": number, "phoneType": phone_type.value}
        await self._write("PATCH", f"{_user(user)}/authentication/phoneMethods/{phone_type.method_id}", payload)

    async def delete_phone_method(self, user: str, phone_type: PhoneType) -> None:
        await self._write("DELETE", f"{_user(user)}/authentication/phoneMethods/{phone_type.method_id}")

    async def set_sign_in_preferences(self, user: str, *, preferred: str | None = None, system_preferred: bool | None = None) -> None:
        """Set the user's default method (`preferred`) and/or whether Entra chooses it (beta)."""
        payload: dict[str, object] = {}
        if preferred is not None:
            payload["userPreferredMethodForSecondaryAuthentication"] = preferred
        if system_preferred is not None:
            payload["isSystemPreferredAuthenticationMethodEnabled"] = system_preferred
        await self._write("PATCH", f"{self.beta_root}{_user(user)}/authentication/signInPreferences", payload)

    async def set_sms_sign_in(self, user: str, enabled: bool) -> None:
        """Turn SMS sign-in on or off for the user's mobile."""
        action = "enableSmsSignIn" if enabled else "disableSmsSignIn"
        await self._write("POST", f"{_user(user)}/authentication/phoneMethods/{PhoneType.MOBILE.method_id}/{action}")

    # ---- plumbing ----
    def retried(self, exc: BaseException, attempt: int, wait: float) -> None:
        """The retry hook of this client's loops (and of the executor's write loop)."""
        self.counters.retries += 1

    async def _read(self, path: str, *, retry: bool = True) -> dict:
        async def once() -> dict:
            self.counters.reads += 1
            return _json(await self._send("GET", path, None, write=False))

        return await self.policy.run(once, on_retry=self.retried) if retry else await once()

    async def _write(self, method: str, path: str, payload: dict | None = None) -> httpx.Response:
        await self.limiter.acquire()
        self.counters.writes += 1
        try:
            response = await self._send(method, path, payload, write=True)
        except (TransientError, AmbiguousWriteError):
            self.limiter.refund()
            raise
        self.limiter.succeeded()
        return response

    async def _send(self, method: str, path: str, payload: dict | None, *, write: bool) -> httpx.Response:
        url = self.root + path
        if "://" in path:  # a next-page link or a beta request: only ever to where the token already goes, the same way
            if origin(path) != origin(self.root):
                scheme, host, port = origin(path)
                raise PermanentError(
                    f"Graph's next-page link leads elsewhere ({scheme}://{host}:{port}, not {urlsplit(self.root).netloc} "
                    f"over {urlsplit(self.root).scheme}); not followed, so the token stays where it was sent"
                )
            url = path
        try:
            response = await self.http.request(method, url, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"can't connect to Graph: {exc}") from exc
        except httpx.TransportError as exc:
            kind = AmbiguousWriteError if write else TransientError
            raise kind(f"connection lost during {method} ({type(exc).__name__}: {exc})") from exc
        if "x-ms-throttle-limit-percentage" in response.headers:
            self.limiter.near_limit()
        if response.is_success:
            return response
        try:
            body = response.json()
        except ValueError:  # not Graph (a proxy's or another server's page): no code, and no page in messages
            body = {"error": {"message": f"an answer that isn't JSON ({_content_type(response)})"}}
        raise self._error(response.status_code, response.headers, body, write=write)

    def _error(self, status: int, headers: Mapping[str, str], body: dict, *, write: bool) -> GraphError:
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code, message = str(error.get("code", "")), str(error.get("message", ""))
        headers = {k.lower(): v for k, v in headers.items()}
        fields = {"status": status, "code": code, "request_id": headers.get("request-id", "")}
        if status == 429:
            self.counters.throttled += 1
            retry_after = _number(headers.get("retry-after"))
            self.limiter.throttled_for(retry_after if retry_after is not None else 1.0, write=write)
            event("throttled", retry_after=retry_after, write=write, rate=round(self.limiter.rate, 2),
                  scope=headers.get("x-ms-throttle-scope", ""), request_id=fields["request_id"])
            return ThrottledError(f"throttled by Graph: {message}", retry_after=retry_after, **fields)
        if status == 401:
            return AuthError(f"Graph rejected the token (401 {code}): {message}", **fields)
        if status == 403:
            return ForbiddenError(f"permission denied (403 {code}): {message}", **fields)
        if status == 404:
            return NotFoundError(f"not found (404 {code}): {message}", **fields)
        if status == 409:
            return ConflictError(f"Graph reported a conflict (409 {code}): {message}", **fields)
        if status in _TRANSIENT_STATUS:
            kind = AmbiguousWriteError if write else TransientError
            return kind(f"Graph is unavailable ({status} {code}): {message}", **fields)
        return PermanentError(f"Graph refused the request ({status} {code}): {message}", **fields)


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PermanentError(
            f"the answer from {response.request.url.host} isn't Graph's JSON (HTTP {response.status_code}, "
            f"{_content_type(response)})",
            status=response.status_code,
        )
    return body


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type") or "no content type"


def _user(user: str) -> str:
    return f"/users/{quote(user, safe='@')}"


def _number(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _directory_user(entry: dict) -> DirectoryUser:
    return DirectoryUser(str(entry.get("id", "")), str(entry.get("userPrincipalName") or ""),
                         str(entry.get("mobilePhone") or ""), tuple(str(n) for n in entry.get("businessPhones") or () if n),
                         str(entry.get("usageLocation") or ""), str(entry.get("userType") or ""))


def _registration(body: dict) -> Registration:
    system = body.get("isSystemPreferredAuthenticationMethodEnabled")
    admin = body.get("isAdmin")
    return Registration(
        tuple(str(kind) for kind in body.get("methodsRegistered") or ()), bool(body.get("isMfaRegistered")),
        user_id=str(body.get("id") or ""), upn=str(body.get("userPrincipalName") or ""),
        preferred=str(body.get("userPreferredMethodForSecondaryAuthentication") or ""),
        system_preferred=system if isinstance(system, bool) else None, admin=admin if isinstance(admin, bool) else None,
        user_type=str(body.get("userType") or ""))


def _method_kinds(body: dict) -> Registration:
    """`#microsoft.graph.fido2AuthenticationMethod` -> fido2; a user with any second factor is
    registered; a phone's number by its type."""
    entries = body.get("value", [])
    kinds = [str(entry.get("@odata.type", "")).rpartition(".")[2].removesuffix("AuthenticationMethod") for entry in entries]
    phones = {str(entry.get("phoneType")): str(entry.get("phoneNumber") or "") for entry, kind in zip(entries, kinds)
              if kind == "phone" and entry.get("phoneType")}
    kinds = tuple(kind for kind in kinds if kind and kind != "password")  # everyone has one; it says nothing
    return Registration(kinds, any(kind not in _NOT_MFA for kind in kinds), phones=phones)


def _methods(body: dict) -> Methods:
    return {method.phone_type: method for method in map(_method, body.get("value", [])) if method}


def _method(data: dict) -> PhoneMethod | None:
    try:
        phone_type = PhoneType(data.get("phoneType"))
    except ValueError:
        return None
    return PhoneMethod(
        phone_type=phone_type,
        phone_number=data.get("phoneNumber") or "",
        sms_sign_in_state=data.get("smsSignInState") or "",
    )


def _preferences(body: dict) -> SignInPreferences:
    return SignInPreferences(str(body.get("userPreferredMethodForSecondaryAuthentication") or ""),
                             bool(body.get("isSystemPreferredAuthenticationMethodEnabled")))
