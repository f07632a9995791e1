"""An in-process fake of Graph's phone authentication methods API.

It enforces the rules in shared/graph-phone-methods.md (strict number format, extensions
only on office phones, one method per type, alternateMobile needs mobile, no type change on
PATCH, the default method deletable only as the last method, 409 phoneNumberNotUnique with
the method saved, new users answering 404 for some seconds, users deleted mid-run, masked
numbers for delegated callers, 401/403, 429 with Retry-After over a write window) and can
inject latency and faults, including a connection dropped after a write was applied. It
records every applied write so tests can assert exactly what reached the tenant.

It is written from Microsoft's documentation, not from bulkphone: it imports nothing from
the product (method ids, claims, clock are its own), so an assumption the client gets wrong
can't be shared by the tenant the tests run against.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol
from urllib.parse import parse_qs, unquote

__all__ = ["DROP_AFTER", "DROP_BEFORE", "Faults", "Principal", "SimResponse", "SimTenant", "SimUser"]

GRAPH_NUMBER = re.compile(r"^\+[1-9]\d{0,2} \d{4,15}(x\d{1,10})?$")
# phoneAuthenticationMethod ids, fixed per type in every tenant (Graph reference, "phoneAuthenticationMethod").
PHONE_METHOD_IDS = {
    "mobile": "3179e48a-750b-4051-897c-87b9720928f7",
    "alternateMobile": "b6332ec1-7057-4abe-9331-3d72feddfe41",
    "office": "e37fc753-ff3b-4958-9484-eaa9425c82bc",
}
PHONE_TYPES = tuple(PHONE_METHOD_IDS)
READ_PERMISSIONS = {
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "UserAuthMethod-Phone.ReadWrite.All",
}
GROUP_READ_PERMISSIONS = {"GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All",
                          "Directory.ReadWrite.All"}
# A user's phone attributes and usage location are beyond the basic profile: they need a full-profile
# read. Without one Graph doesn't refuse them: it answers them empty (null, and [] for businessPhones).
BASIC_PROFILE = {"id", "userPrincipalName", "displayName"}
FULL_PROFILE_PERMISSIONS = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
DIRECTORY_READ_PERMISSIONS = {"User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
WRITE_PERMISSIONS = {"UserAuthenticationMethod.ReadWrite.All", "UserAuthMethod-Phone.ReadWrite.All"}
# Every kind of method (not only phones): the phone-only permission doesn't reach /authentication/methods.
ALL_METHODS_READ_PERMISSIONS = {"UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All"}
REPORTS_READ_PERMISSIONS = {"AuditLog.Read.All"}
ROLE_READ_PERMISSIONS = {"RoleManagement.Read.Directory", "RoleManagement.Read.All", "Directory.Read.All",
                         "RoleManagement.ReadWrite.Directory", "Directory.ReadWrite.All"}
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"  # the role definition's well-known id
# A user's methods as the registration report's methodsRegistered names them.
REGISTERED_NAMES = {
    "mobile": "mobilePhone", "alternateMobile": "alternateMobilePhone", "office": "officePhone",
    "microsoftAuthenticator": "microsoftAuthenticatorPush", "softwareOath": "softwareOneTimePasscode",
    "fido2": "passKeyDeviceBound", "windowsHelloForBusiness": "windowsHelloForBusiness", "email": "email",
    "temporaryAccessPass": "temporaryAccessPass",
}
NOT_A_SECOND_FACTOR = {"email", "temporaryAccessPass"}
# The registration report's defaultMfaMethod for a signInPreferences value.
DEFAULT_MFA_METHODS = {"sms": "mobilePhone", "voiceMobile": "mobilePhone", "voiceAlternateMobile": "alternateMobilePhone",
                       "voiceOffice": "officePhone", "push": "microsoftAuthenticatorPush", "oath": "softwareOneTimePasscode"}
# signInPreferences is about every kind of method: the phone-only permission doesn't reach it.
PREFERENCES_WRITE_PERMISSIONS = {"UserAuthenticationMethod.ReadWrite.All"}
# userPreferredMethodForSecondaryAuthentication -> the method the user must have for it.
PREFERRED_METHODS = {
    "sms": "mobile", "voiceMobile": "mobile", "voiceAlternateMobile": "alternateMobile", "voiceOffice": "office",
    "push": "microsoftAuthenticator", "oath": "softwareOath",
}
APP_TOKEN = "sim-app-token"
GRAPH_AUDIENCES = ("https://graph.microsoft", "https://dod-graph.microsoft", "https://microsoftgraph.chinacloudapi", "00000003-0000-0000-c000-000000000000")

DROP_BEFORE = "drop-before"  # the connection dies before the request is applied
DROP_AFTER = "drop-after"  # the request is applied, then the connection dies


@dataclass(frozen=True)
class Principal:
    permissions: frozenset[str]
    delegated: bool = False
    upn: str = ""  # the signed-in user, for delegated tokens


class Clock(Protocol):
    def now(self) -> float: ...


class _MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


@dataclass
class SimUser:
    id: str
    upn: str
    methods: dict[str, str] = field(default_factory=dict)  # phoneType -> stored phoneNumber
    sms_states: dict[str, str] = field(default_factory=dict)
    # The user's default sign-in method: a signInPreferences value (sms, voiceMobile, voiceOffice,
    # push, ...) or, for short, the phoneType it is on (mobile is sms).
    default_method: str = ""
    other_methods: list[str] = field(default_factory=list)  # methods that aren't phones (e.g. "microsoftAuthenticator")
    system_preferred: bool = False  # isSystemPreferredAuthenticationMethodEnabled
    sms_policy: bool = True  # the authentication methods policy enables the user for SMS sign-in
    # The user's own directory attributes (synced from HR or on-premises AD), not sign-in methods.
    mobile_phone: str = ""
    business_phones: list[str] = field(default_factory=list)
    usage_location: str = ""
    user_type: str = "Member"  # or Guest
    admin: bool = False  # holds an admin role itself (directly assigned)
    visible_from: float = 0.0  # tenant clock time before which Graph answers 404 (directory replication)


@dataclass
class SimGroup:
    id: str
    display_name: str
    members: list[str] = field(default_factory=list)  # object ids: users, groups, or other objects (devices)
    admin: bool = False  # a role-assignable group that holds an admin role: its members are admins


@dataclass
class Faults:
    """Probabilities per phone-method request, and shared limits."""

    error_429: float = 0.0  # a 429 that isn't about the rate (another app, a burst elsewhere)
    error_503: float = 0.0
    error_500: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    latency: float = 0.0  # seconds per request
    latency_max: float | None = None  # if set, each request takes uniformly between latency and this

    def delay(self) -> float:
        if self.latency_max is None:
            return self.latency
        return random.uniform(self.latency, self.latency_max)
    writes_per_second: float | None = None
    reads_per_second: float | None = None
    # A budget refills at rate/s and holds rate x window_seconds, so that much may come in a burst.
    window_seconds: float = 1.0
    # With sliding_window, writes are counted as Graph documents them: at most rate x window_seconds
    # in any window_seconds (3,000 per 150 s), so a burst fills the window and the 429 after it
    # carries a long Retry-After: until the oldest write leaves the window.
    sliding_window: bool = False
    read_window_seconds: float | None = None  # the read budget's own window (Graph: 10 s), if not window_seconds
    retry_after: float | None = None  # fixed Retry-After for every 429 (fast tests); None: whole seconds, as Graph
    seed: int = 0


@dataclass
class SimResponse:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: str = ""  # DROP_BEFORE / DROP_AFTER: no response reaches the client

    def content(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body).encode()


class _Bucket:
    def __init__(self, rate: float, window: float, clock: Clock) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * window)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock.now()

    def take(self) -> float:
        """0 if allowed, else seconds until a token is free."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def spend(self, count: int) -> None:
        self._refill()
        self.tokens -= count

    def _refill(self) -> None:
        now = self.clock.now()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    @property
    def used(self) -> float:
        return 1 - self.tokens / self.capacity


class _Window:
    """At most `limit` requests in any `seconds`: a sliding window, as Graph counts its budgets."""

    def __init__(self, rate: float, seconds: float, clock: Clock) -> None:
        self.limit = max(1, round(rate * seconds))
        self.seconds = seconds
        self.clock = clock
        self.times: deque[float] = deque()

    def take(self) -> float:
        """0 if allowed (and counted), else seconds until the window has room."""
        now = self._forget_old()
        if len(self.times) < self.limit:
            self.times.append(now)
            return 0.0
        return self.times[0] + self.seconds - now

    def spend(self, count: int) -> None:
        now = self._forget_old()
        self.times.extend([now] * count)

    def _forget_old(self) -> float:
        now = self.clock.now()
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        return now

    @property
    def used(self) -> float:
        self._forget_old()
        return len(self.times) / self.limit


class SimTenant:
    def __init__(
        self,
        users: Iterable[SimUser] = (),
        *,
        clock: Clock | None = None,
        faults: Faults | None = None,
        tokens: dict[str, Principal] | None = None,
    ) -> None:
        self.clock = clock or _MonotonicClock()
        self.faults = faults or Faults()
        self.tokens = tokens if tokens is not None else {
            APP_TOKEN: Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All"}))
        }
        self.users: dict[str, SimUser] = {}  # by lower-case object id
        self.groups: dict[str, SimGroup] = {}  # by lower-case object id
        self._by_upn: dict[str, SimUser] = {}  # Graph finds a user by UPN as fast as by id
        self.writes: list[dict] = []  # every write that changed the tenant, in order
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status or drop)
        self.injected: dict[str, int] = {"429": 0, "503": 0, "500": 0, DROP_BEFORE: 0, DROP_AFTER: 0, "404-replicating": 0}
        # Graph typically saves a mobile whose number another user holds, then answers 409.
        self.not_unique_saves = True
        # The registration report needs Entra ID P1 or P2; without it Graph answers 403.
        self.premium = True
        # The report is refreshed now and then, not live: these users' rows (by id) predate
        # what they registered since.
        self.report_lags_for: set[str] = set()
        self.rate_limited = 0  # 429s because the caller went over the configured rate
        self.jwt_requests = 0  # requests signed with a JWT the tenant accepted
        self._random = random.Random(self.faults.seed)
        self._forced: list[tuple[str, str | None]] = []
        self._lock = threading.RLock()
        self._mobiles: Counter[str] | None = None  # digits of every mobile, while one request is answered
        f = self.faults
        write_budget = _Window if f.sliding_window else _Bucket
        self._write_bucket = write_budget(f.writes_per_second, f.window_seconds, self.clock) if f.writes_per_second else None
        read_window = f.read_window_seconds or f.window_seconds
        self._read_bucket = _Bucket(f.reads_per_second, read_window, self.clock) if f.reads_per_second else None
        for user in users:
            self.add(user)

    # ---- setting up and inspecting -------------------------------------------------
    def add(self, user: SimUser) -> SimUser:
        with self._lock:
            self.users[user.id.lower()] = user
            self._by_upn[user.upn.lower()] = user
            return user

    def add_user(self, upn: str, methods: dict[str, str] | None = None, *, replicating_for: float = 0.0, **kwargs) -> SimUser:
        """A user; with `replicating_for`, one created just now that Graph answers 404 for that many seconds."""
        visible_from = self.clock.now() + replicating_for if replicating_for else 0.0
        return self.add(SimUser(id=kwargs.pop("id", str(uuid.uuid4())), upn=upn, methods=dict(methods or {}),
                                visible_from=visible_from, **kwargs))

    def add_group(self, display_name: str, members: list[SimUser | SimGroup | str] = (), **kwargs) -> SimGroup:
        """A group; members are users, groups (nested) or bare ids of other objects (devices)."""
        ids = [member if isinstance(member, str) else member.id for member in members]
        group = SimGroup(id=kwargs.pop("id", str(uuid.uuid4())), display_name=display_name, members=ids, **kwargs)
        with self._lock:
            self.groups[group.id.lower()] = group
        return group

    def remove_user(self, user: str) -> None:
        """Delete a user (by UPN or id), as an admin might between a plan and its apply."""
        with self._lock:
            found = self._find(user)
            if found is not None:
                del self.users[found.id.lower()]
                self._by_upn.pop(found.upn.lower(), None)

    def other_app_wrote(self, count: int) -> None:
        """Spend `count` of the write budget now, as another job of the same app would."""
        with self._lock:
            if self._write_bucket is not None:
                self._write_bucket.spend(count)

    def state(self) -> dict[str, dict[str, str]]:
        """upn -> {phoneType: stored number}, for asserting outcomes."""
        with self._lock:
            return {user.upn: dict(user.methods) for user in self.users.values()}

    def write_count(self) -> int:
        return len(self.writes)

    @classmethod
    def from_json(cls, path: str | Path, **kwargs) -> SimTenant:
        """A tenant from {"users": [{"id", "upn", "methods", ..., "replicating_for": seconds}],
        "groups": [{"id", "displayName", "members": [UPNs, display names of groups listed before
        or after, or ids of other objects]}]}."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        tenant = cls(**kwargs)
        for entry in data["users"]:
            tenant.add_user(**entry)
        groups = {entry["displayName"]: tenant.add_group(entry["displayName"], id=entry["id"]) for entry in data.get("groups", [])}
        for entry in data.get("groups", []):
            groups[entry["displayName"]].members = [
                (groups[name].id if name in groups else user.id if (user := tenant._find(name)) else name)
                for name in entry["members"]]
        return tenant

    # ---- the API ------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes = b"", origin: str = "") -> SimResponse:
        """Answer one HTTP request; `path` is the URL path and query, e.g.
        /v1.0/users/x/authentication/phoneMethods; `origin` (scheme://host) starts next-page links.

        Latency (`faults.latency`) is the transport's to add, so no lock is held while waiting.
        """
        with self._lock:
            self._mobiles = None  # tests may change users between requests
            response = self._handle(method.upper(), path, headers, body, origin)
            self.requests.append((method.upper(), path, response.drop or response.status))
            return response

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes, origin: str = "") -> SimResponse:
        path, _, query = path.partition("?")
        version, _, rest = path.lstrip("/").partition("/")
        if version not in ("v1.0", "beta"):
            return _error(404, "Request_UnsupportedQuery", f"unsupported API version {version!r}")
        principal = self._principal(headers)
        if isinstance(principal, SimResponse):
            return principal
        if rest == "$batch" and method == "POST":
            return self._batch(version, headers, body, origin)
        if rest == "users" and method == "GET":
            return self._list_users(version, principal, parse_qs(query), origin)
        if rest == "roleManagement/directory/roleAssignments" and method == "GET":
            return self._role_assignments(version, principal, parse_qs(query), origin)
        if rest.startswith("groups") and method == "GET":
            return self._groups(version, rest, principal, parse_qs(query), origin)
        if rest.startswith("reports/authenticationMethods/userRegistrationDetails") and method == "GET":
            return self._registration_details(version, rest, principal, parse_qs(query), origin)
        parts = [unquote(p) for p in rest.split("/")]
        if len(parts) < 2 or parts[0] != "users":
            return _error(400, "BadRequest", f"Resource not found for the segment {parts[0]!r}.")
        is_write = method in ("POST", "PATCH", "DELETE")
        if is_write and not (principal.permissions & WRITE_PERMISSIONS):
            return _forbidden()
        if not is_write and not (principal.permissions & (READ_PERMISSIONS | {"User.Read.All"})):
            return _forbidden()
        fault = self._roll_fault(method, is_write)
        if fault is not None and fault.drop != DROP_AFTER:
            return fault
        throttled = self._throttle(is_write)
        if throttled is not None:
            return throttled
        user = self._find(parts[1])
        if user is None:
            return _error(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist or one of its queried reference-property objects are not present.")
        if self.clock.now() < user.visible_from:
            self.injected["404-replicating"] += 1
            return _error(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist or one of its queried reference-property objects are not present.")
        if is_write and principal.delegated and principal.upn.lower() == user.upn.lower():
            return _error(403, "Authorization_RequestDenied", "Users can't change their own methods through this API.")
        response = self._route(method, version, parts[2:], user, principal, body, parse_qs(query))
        if fault is not None:  # DROP_AFTER: the write happened, the client never hears of it
            return SimResponse(0, drop=DROP_AFTER)
        bucket = self._write_bucket if is_write else self._read_bucket
        if bucket is not None and bucket.used >= 0.8:
            response.headers["x-ms-throttle-limit-percentage"] = f"{bucket.used:.2f}"
        return response

    def _find(self, user: str) -> SimUser | None:
        key = user.lower()
        return self.users.get(key) or self._by_upn.get(key)

    def _principal(self, headers: dict[str, str]) -> Principal | SimResponse:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "InvalidAuthenticationToken", "Access token is empty.")
        token = auth[len("Bearer "):]
        principal = self.tokens.get(token)
        if principal is not None:
            return principal
        claims = _jwt_claims(token)
        if not claims:
            return _error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        # Like Graph: the audience must be Graph, the token unexpired; roles (app) or scp (delegated) grant.
        if not str(claims.get("aud", "")).startswith(GRAPH_AUDIENCES):
            return _error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        if float(claims.get("exp", 0)) <= time.time():
            return _error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        self.jwt_requests += 1
        if "scp" in claims:
            return Principal(frozenset(str(claims["scp"]).split()), delegated=True, upn=str(claims.get("upn", "")))
        return Principal(frozenset(claims.get("roles") or []))

    def fail_next(self, fault: str, method: str | None = None, times: int = 1) -> None:
        """Force `fault` ("503", "500", DROP_BEFORE, DROP_AFTER) on the next matching request(s)."""
        with self._lock:
            self._forced.extend([(fault, method.upper() if method else None)] * times)

    def _forced_fault(self, method: str) -> SimResponse | None:
        for index, (fault, wanted) in enumerate(self._forced):
            if wanted in (None, method):
                del self._forced[index]
                self.injected[fault] += 1
                return self._fault(fault)
        return None

    def _roll_fault(self, method: str, is_write: bool) -> SimResponse | None:
        forced = self._forced_fault(method)
        if forced is not None:
            return forced
        f = self.faults
        roll = self._random.random()
        for name, chance in (("429", f.error_429), ("503", f.error_503), ("500", f.error_500), (DROP_BEFORE, f.drop_before)):
            if roll < chance:
                self.injected[name] += 1
                return self._fault(name)
            roll -= chance
        if is_write and roll < f.drop_after:
            self.injected[DROP_AFTER] += 1
            return SimResponse(0, drop=DROP_AFTER)
        return None

    def _fault(self, name: str) -> SimResponse:
        if name in (DROP_BEFORE, DROP_AFTER):
            return SimResponse(0, drop=name)
        if name == "429":
            return self._too_many(1)
        return _error(int(name), "serviceNotAvailable" if name == "503" else "generalException", "Injected fault.")

    def _too_many(self, wait: float) -> SimResponse:
        response = _error(429, "TooManyRequests", "Too many requests.")
        retry_after = self.faults.retry_after
        response.headers["Retry-After"] = str(retry_after if retry_after is not None else max(1, math.ceil(wait)))
        return response

    def _throttle(self, is_write: bool) -> SimResponse | None:
        bucket = self._write_bucket if is_write else self._read_bucket
        if bucket is None:
            return None
        wait = bucket.take()
        if not wait:
            return None
        self.rate_limited += 1
        return self._too_many(wait)

    def _route(self, method: str, version: str, rest: list[str], user: SimUser, principal: Principal, body: bytes,
               query: dict[str, list[str]]) -> SimResponse:
        if not rest:
            if method == "GET":
                if not principal.permissions & DIRECTORY_READ_PERMISSIONS:
                    return _forbidden()
                selected = query.get("$select", ["id,userPrincipalName"])[0].split(",")
                return SimResponse(200, _user_json(user, selected, principal))
            return _error(405, "Request_BadRequest", "Method not allowed.")
        if rest == ["authentication", "methods"] and method == "GET":
            if not principal.permissions & ALL_METHODS_READ_PERMISSIONS:
                return _forbidden()
            return SimResponse(200, {"value": self._all_methods(user, principal)})
        if rest == ["authentication", "signInPreferences"]:
            return self._sign_in_preferences(method, version, user, principal, body)
        if rest[:2] != ["authentication", "phoneMethods"]:
            return _error(400, "BadRequest", f"Resource not found for the segment {rest[0]!r}.")
        rest = rest[2:]
        if not rest:
            if method == "GET":
                return SimResponse(200, {"value": [self._method_json(user, t, principal) for t in _ordered(user.methods)]})
            if method == "POST":
                return self._create(user, body)
            return _error(405, "Request_BadRequest", "Method not allowed.")
        phone_type = _type_for_id(rest[0])
        if phone_type is None:
            return _error(404, "itemNotFound", f"Phone method {rest[0]!r} does not exist.")
        if len(rest) == 2 and method == "POST" and rest[1] in ("enableSmsSignIn", "disableSmsSignIn"):
            return self._sms_sign_in(user, phone_type, enable=rest[1] == "enableSmsSignIn")
        if len(rest) != 1:
            return _error(400, "BadRequest", "Unsupported segment.")
        if phone_type not in user.methods:
            return _error(404, "itemNotFound", f"The user has no {phone_type} method.")
        if method == "GET":
            return SimResponse(200, self._method_json(user, phone_type, principal))
        if method == "PATCH":
            return self._update(user, phone_type, body, version)
        if method == "DELETE":
            return self._delete(user, phone_type)
        return _error(405, "Request_BadRequest", "Method not allowed.")

    def _create(self, user: SimUser, body: bytes) -> SimResponse:
        payload, problem = _payload(body)
        if problem:
            return problem
        phone_type = payload["phoneType"]
        if phone_type in user.methods:
            return _error(400, "badRequest", f"A phone method of type {phone_type} already exists for this user.")
        if phone_type == "alternateMobile" and "mobile" not in user.methods:
            return _error(400, "badRequest", "An alternateMobile phone can only be added when the user has a mobile phone.")
        if not self.not_unique_saves and self._shared_mobile(user, phone_type, payload["phoneNumber"]):
            return _not_unique()
        self._store(user, phone_type, payload["phoneNumber"], "create")
        if user.sms_states[phone_type] == "phoneNumberNotUnique":
            return _not_unique()
        return SimResponse(201, self._method_json(user, phone_type, None))

    def _update(self, user: SimUser, phone_type: str, body: bytes, version: str) -> SimResponse:
        payload, problem = _payload(body)
        if problem:
            return problem
        if payload["phoneType"] != phone_type:
            return _error(400, "badRequest", "phoneType can't be changed; create the new type and delete the old one.")
        if not self.not_unique_saves and self._shared_mobile(user, phone_type, payload["phoneNumber"]):
            return _not_unique()
        self._store(user, phone_type, payload["phoneNumber"], "update")
        if user.sms_states[phone_type] == "phoneNumberNotUnique":
            return _not_unique()
        if version == "beta":
            return SimResponse(200, self._method_json(user, phone_type, None))
        return SimResponse(204)

    def _store(self, user: SimUser, phone_type: str, number: str, kind: str) -> None:
        user.methods[phone_type] = number
        self._mobiles = None
        user.sms_states[phone_type] = self._sms_state(user, phone_type)
        self._record(kind, user, phone_type, number)

    def _shared_mobile(self, user: SimUser, phone_type: str, number: str) -> bool:
        return phone_type == "mobile" and any(
            other is not user and _digits(other.methods.get("mobile", "")) == _digits(number) for other in self.users.values()
        )

    def _sign_in_preferences(self, method: str, version: str, user: SimUser, principal: Principal, body: bytes) -> SimResponse:
        """beta GET/PATCH /users/{u}/authentication/signInPreferences (v1.0 doesn't have it)."""
        if version != "beta":
            return _error(400, "BadRequest", "Resource not found for the segment 'signInPreferences'.")
        if method == "GET":
            return SimResponse(200, {
                "@odata.type": "#microsoft.graph.signInPreferences",
                "userPreferredMethodForSecondaryAuthentication": _preferred(user.default_method) or None,
                "isSystemPreferredAuthenticationMethodEnabled": user.system_preferred,
            })
        if method != "PATCH":
            return _error(405, "Request_BadRequest", "Method not allowed.")
        if not principal.permissions & PREFERENCES_WRITE_PERMISSIONS:
            return _forbidden()
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "BadRequest", "Unable to read JSON request payload.")
        known = {"userPreferredMethodForSecondaryAuthentication", "isSystemPreferredAuthenticationMethodEnabled"}
        if not isinstance(payload, dict) or not payload or set(payload) - known:
            return _error(400, "BadRequest", f"Invalid request body: only {', '.join(sorted(known))} can be set.")
        system = payload.get("isSystemPreferredAuthenticationMethodEnabled", user.system_preferred)
        if not isinstance(system, bool):
            return _error(400, "BadRequest", "isSystemPreferredAuthenticationMethodEnabled must be true or false.")
        preferred = payload.get("userPreferredMethodForSecondaryAuthentication", _preferred(user.default_method))
        if "userPreferredMethodForSecondaryAuthentication" in payload:
            if preferred not in PREFERRED_METHODS:
                return _error(400, "BadRequest", f"Invalid value {preferred!r} for userPreferredMethodForSecondaryAuthentication.")
            needed = PREFERRED_METHODS[preferred]
            if needed not in user.methods and needed not in user.other_methods:
                return _error(400, "BadRequest", f"The user has no {needed} method registered, so {preferred} can't be the default.")
        user.default_method, user.system_preferred = preferred or "", system
        self.writes.append({"kind": "signInPreferences", "user": user.upn, "phoneType": "",
                            "phoneNumber": "", "preferred": preferred or "", "system": system})
        return SimResponse(204)

    def _delete(self, user: SimUser, phone_type: str) -> SimResponse:
        others = [t for t in user.methods if t != phone_type] + user.other_methods
        if phone_type == _default_type(user.default_method) and others:
            return _error(400, "badRequest", "Cannot delete default method with other methods configured.")
        if phone_type == "mobile" and "alternateMobile" in user.methods:
            return _error(400, "badRequest", "The mobile phone can't be deleted while an alternateMobile phone exists.")
        number = user.methods.pop(phone_type)
        self._mobiles = None
        user.sms_states.pop(phone_type, None)
        if phone_type == _default_type(user.default_method):
            user.default_method = ""
        self._record("delete", user, phone_type, number)
        return SimResponse(204)

    def _sms_sign_in(self, user: SimUser, phone_type: str, *, enable: bool) -> SimResponse:
        if phone_type != "mobile":
            return _error(400, "badRequest", "Only a mobile phone can be used for SMS sign-in.")
        if "mobile" not in user.methods:
            return _error(400, "badRequest", "Cannot enable SMS sign-in: the user has no mobile phone method.")
        if enable and self._sms_state(user, "mobile") == "phoneNumberNotUnique":
            return _error(400, "badRequest", "phoneNumberNotUnique")
        if enable and not user.sms_policy:
            return _error(400, "badRequest", "Cannot enable SMS sign-in as the credential policy is not enabled on user.")
        user.sms_states["mobile"] = "ready" if enable else "notEnabled"
        self._record("enableSmsSignIn" if enable else "disableSmsSignIn", user, "mobile", user.methods["mobile"])
        return SimResponse(204)

    def _sms_state(self, user: SimUser, phone_type: str) -> str:
        if phone_type != "mobile":
            return "notSupported"
        if self._mobiles is None:  # counted once per request: a big tenant's batch stays cheap
            self._mobiles = Counter(_digits(other.methods.get("mobile", "")) for other in self.users.values())
        return "phoneNumberNotUnique" if self._mobiles[_digits(user.methods.get("mobile", ""))] > 1 else "notEnabled"

    def _method_json(self, user: SimUser, phone_type: str, principal: Principal | None) -> dict:
        number = user.methods[phone_type]
        if principal is not None and principal.delegated:
            number = _mask(number)
        return {
            "id": PHONE_METHOD_IDS[phone_type],
            "phoneNumber": number,
            "phoneType": phone_type,
            # Graph keeps the state it found when the number was registered; work it out once.
            "smsSignInState": user.sms_states.get(phone_type) or user.sms_states.setdefault(phone_type, self._sms_state(user, phone_type)),
        }

    def _all_methods(self, user: SimUser, principal: Principal) -> list[dict]:
        """GET /users/{u}/authentication/methods: every kind, each with its @odata.type; a password always."""
        methods = [{"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "28c10230-6103-485e-b985-444c60001490"}]
        for phone_type in _ordered(user.methods):
            methods.append({"@odata.type": "#microsoft.graph.phoneAuthenticationMethod", **self._method_json(user, phone_type, principal)})
        for kind in user.other_methods:
            methods.append({"@odata.type": f"#microsoft.graph.{kind}AuthenticationMethod", "id": str(uuid.uuid5(uuid.NAMESPACE_URL, user.id + kind))})
        return methods

    def _registration_details(self, version: str, rest: str, principal: Principal, query: dict[str, list[str]],
                              origin: str) -> SimResponse:
        """GET /reports/authenticationMethods/userRegistrationDetails (paged) and .../{user id}."""
        if not principal.permissions & REPORTS_READ_PERMISSIONS:
            return _forbidden()
        if not self.premium:
            return _error(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                          "Neither tenant is B2C or tenant doesn't have premium license")
        fault = self._roll_fault("GET", False) or self._throttle(False)
        if fault is not None:
            return fault
        parts = [unquote(part) for part in rest.split("/")]
        if len(parts) == 4:
            user = self.users.get(parts[3].lower())  # by object id only
            if user is None or self.clock.now() < user.visible_from:
                return _error(404, "Request_ResourceNotFound", f"Resource '{parts[3]}' does not exist.")
            return SimResponse(200, self._registration_json(user))
        window = _page_window(query, 1000, 1000)
        if isinstance(window, SimResponse):
            return window
        top, skip = window
        everyone = [user for user in self.users.values() if self.clock.now() >= user.visible_from]
        body: dict = {"value": [self._registration_json(user) for user in everyone[skip: skip + top]]}
        if skip + top < len(everyone):
            body["@odata.nextLink"] = f"{origin}/{version}/{rest}?$top={top}&$skiptoken={skip + top}"
        return SimResponse(200, body)

    def _registration_json(self, user: SimUser) -> dict:
        kinds = [] if user.id in self.report_lags_for else [*_ordered(user.methods), *user.other_methods]
        registered = [REGISTERED_NAMES[kind] for kind in kinds if kind in REGISTERED_NAMES]
        return {
            "id": user.id,
            "userPrincipalName": user.upn,
            "methodsRegistered": registered,
            "isMfaRegistered": any(kind not in NOT_A_SECOND_FACTOR for kind in kinds),
            "defaultMfaMethod": DEFAULT_MFA_METHODS.get(_preferred(user.default_method), "none"),
            "userPreferredMethodForSecondaryAuthentication": _preferred(user.default_method) if user.default_method else "none",
            "isSystemPreferredAuthenticationMethodEnabled": user.system_preferred,
            "isAdmin": self._is_admin(user),
            "userType": user.user_type.lower(),
        }

    def _record(self, kind: str, user: SimUser, phone_type: str, number: str) -> None:
        self.writes.append({"kind": kind, "user": user.upn, "phoneType": phone_type, "phoneNumber": number})

    def _list_users(self, version: str, principal: Principal, query: dict[str, list[str]], origin: str) -> SimResponse:
        """GET /users: a page of $top users (at most 999), and a next-page link while more remain."""
        window = self._open_listing(principal, DIRECTORY_READ_PERMISSIONS, query)
        if isinstance(window, SimResponse):
            return window
        top, skip = window
        everyone = list(self.users.values())
        selected = query.get("$select", ["id,userPrincipalName"])[0]
        body: dict = {"value": [_user_json(user, selected.split(","), principal) for user in everyone[skip: skip + top]]}
        if skip + top < len(everyone):
            body["@odata.nextLink"] = f"{origin}/{version}/users?$select={selected}&$top={top}&$skiptoken={skip + top}"
        return SimResponse(200, body)

    def _groups(self, version: str, rest: str, principal: Principal, query: dict[str, list[str]], origin: str) -> SimResponse:
        """GET /groups?$filter=displayName eq '...' (or startswith(displayName,'...')), compared without
        case as the directory does, and GET /groups/{id}/transitiveMembers/microsoft.graph.user
        (members of nested groups included, each once; only users, through the cast; paged; a user's
        phone attributes only for a caller that may read full profiles)."""
        if not principal.permissions & GROUP_READ_PERMISSIONS:
            return _forbidden()
        fault = self._roll_fault("GET", False) or self._throttle(False)
        if fault is not None:
            return fault
        parts = [unquote(part) for part in rest.split("/")]
        if parts == ["groups"]:
            condition = query.get("$filter", [""])[0]
            equal = re.fullmatch(r"displayName eq '((?:[^']|'')*)'", condition)
            starts = re.fullmatch(r"startswith\(displayName, ?'((?:[^']|'')*)'\)", condition)
            if equal is None and starts is None:
                return _error(400, "BadRequest", "Only $filter=displayName eq '...' or startswith(displayName,'...') is supported here.")
            name = (equal or starts).group(1).replace("''", "'").lower()
            found = [g for g in self.groups.values()
                     if (g.display_name.lower() == name if equal else g.display_name.lower().startswith(name))]
            top = int(query.get("$top", ["100"])[0])
            return SimResponse(200, {"value": [{"id": g.id, "displayName": g.display_name} for g in found[:top]]})
        if len(parts) != 4 or parts[2:] != ["transitiveMembers", "microsoft.graph.user"]:
            return _error(400, "BadRequest", f"Resource not found for the segment {parts[-1]!r}.")
        group = self.groups.get(parts[1].lower())
        if group is None:
            return _error(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist or one of its queried reference-property objects are not present.")
        window = _page_window(query, 100, 999)
        if isinstance(window, SimResponse):
            return window
        top, skip = window
        members = self._transitive_users(group)
        selected = query.get("$select", ["id,userPrincipalName"])[0].split(",")
        body: dict = {"value": [_user_json(user, selected, principal) for user in members[skip: skip + top]]}
        if skip + top < len(members):
            body["@odata.nextLink"] = (f"{origin}/{version}/groups/{group.id}/transitiveMembers/microsoft.graph.user"
                                       f"?$select={','.join(selected)}&$top={top}&$skiptoken={skip + top}")
        return SimResponse(200, body)

    def _is_admin(self, user: SimUser) -> bool:
        """Whether the user holds an admin role, itself or through a role-assignable group."""
        return user.admin or any(group.admin and user in self._transitive_users(group) for group in self.groups.values())

    def _open_listing(self, principal: Principal, allowed: set[str], query: dict[str, list[str]]) -> tuple[int, int] | SimResponse:
        """What a paged directory listing checks before answering: the permission, a fault or the
        read limit, then its page window."""
        if not principal.permissions & allowed:
            return _forbidden()
        refused = self._roll_fault("GET", False) or self._throttle(False)
        if refused is not None:
            return refused
        return _page_window(query, 100, 999)

    def _role_assignments(self, version: str, principal: Principal, query: dict[str, list[str]], origin: str) -> SimResponse:
        """GET /roleManagement/directory/roleAssignments: a page of the directory's role assignments;
        the principal (a user or a group) with $expand=principal."""
        window = self._open_listing(principal, ROLE_READ_PERMISSIONS, query)
        if isinstance(window, SimResponse):
            return window
        top, skip = window
        holders = [("#microsoft.graph.user", user.id) for user in self.users.values() if user.admin]
        holders += [("#microsoft.graph.group", group.id) for group in self.groups.values() if group.admin]
        expand = query.get("$expand", [""])[0] == "principal"
        body: dict = {"value": [
            {"id": f"{GLOBAL_ADMINISTRATOR}-{object_id}", "principalId": object_id, "roleDefinitionId": GLOBAL_ADMINISTRATOR,
             "directoryScopeId": "/", **({"principal": {"@odata.type": kind, "id": object_id}} if expand else {})}
            for kind, object_id in holders[skip: skip + top]]}
        if skip + top < len(holders):
            body["@odata.nextLink"] = (f"{origin}/{version}/roleManagement/directory/roleAssignments"
                                       f"?{'$expand=principal&' if expand else ''}$top={top}&$skiptoken={skip + top}")
        return SimResponse(200, body)

    def _transitive_users(self, group: SimGroup) -> list[SimUser]:
        users: dict[str, SimUser] = {}
        seen, todo = set(), [group]
        while todo:
            current = todo.pop()
            if current.id in seen:
                continue
            seen.add(current.id)
            for member in current.members:
                if member.lower() in self.users:
                    users.setdefault(member.lower(), self.users[member.lower()])
                elif member.lower() in self.groups:
                    todo.append(self.groups[member.lower()])
        return list(users.values())

    def _batch(self, version: str, headers: dict[str, str], body: bytes, origin: str = "") -> SimResponse:
        try:
            requests = json.loads(body or b"{}")["requests"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "BadRequest", "Invalid batch payload.")
        if len(requests) > 20:
            return _error(400, "BadRequest", "A batch can hold at most 20 requests.")
        responses = []
        for sub in requests:
            sub_headers = {**headers, **(sub.get("headers") or {})}
            sub_body = json.dumps(sub["body"]).encode() if sub.get("body") is not None else b""
            answer = self._handle(sub["method"].upper(), f"/{version}{sub['url']}", sub_headers, sub_body, origin)
            if answer.drop:  # inside a batch a lost sub-request comes back as a 503
                answer = _error(503, "serviceNotAvailable", "Injected fault.")
            responses.append({"id": sub["id"], "status": answer.status, "headers": answer.headers, "body": answer.body})
        return SimResponse(200, {"responses": responses})


def _payload(body: bytes) -> tuple[dict, SimResponse | None]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return {}, _error(400, "BadRequest", "Request body is not valid JSON.")
    phone_type = payload.get("phoneType")
    number = payload.get("phoneNumber")
    if phone_type not in ("mobile", "alternateMobile", "office"):
        return payload, _error(400, "badRequest", f"Invalid phoneType {phone_type!r}.")
    if not isinstance(number, str) or not GRAPH_NUMBER.match(number):
        return payload, _error(400, "badRequest", f"Invalid phone number format {number!r}: use '+<cc> <number>x<ext>'.")
    if "x" in number and phone_type != "office":
        return payload, _error(400, "badRequest", "Extensions are supported only for office phones.")
    return payload, None


def _type_for_id(method_id: str) -> str | None:
    return next((phone_type for phone_type, known in PHONE_METHOD_IDS.items() if known == method_id.lower()), None)


def _ordered(methods: dict[str, str]) -> list[str]:
    return [t for t in PHONE_TYPES if t in methods]


def _jwt_claims(token: str) -> dict:
    """The payload of a JWT, unverified: this tenant trusts whatever the test signs."""
    try:
        _, payload, _ = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def _not_unique() -> SimResponse:
    return _error(409, "phoneNumberNotUnique", "The phone number is already registered to another user and can't be used for SMS sign-in.")


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _mask(number: str) -> str:
    country, _, rest = number.partition(" ")
    digits = re.sub(r"\D", "", rest.split("x")[0])
    return f"{country} {'X' * max(0, len(digits) - 2)}{digits[-2:]}"


def _page_window(query: dict[str, list[str]], default: int, most: int) -> tuple[int, int] | SimResponse:
    """A paged listing's $top (at most `most`) and where the $skiptoken says to start, or a 400."""
    try:
        return min(int(query.get("$top", [str(default)])[0]), most), int(query.get("$skiptoken", ["0"])[0])
    except ValueError:
        return _error(400, "BadRequest", "Invalid $top or $skiptoken.")


def _forbidden() -> SimResponse:
    return _error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _error(status: int, code: str, message: str) -> SimResponse:
    request_id = str(uuid.uuid4())
    return SimResponse(
        status,
        {"error": {"code": code, "message": message, "innerError": {"request-id": request_id}}},
        {"request-id": request_id},
    )


def _preferred(default_method: str) -> str:
    """The signInPreferences value of a user's default (a phoneType given for short is its usual one)."""
    return {"mobile": "sms", "alternateMobile": "voiceAlternateMobile", "office": "voiceOffice"}.get(default_method, default_method)


def _default_type(default_method: str) -> str:
    """The method a default is on: sms and voiceMobile are on the mobile, and so on."""
    return PREFERRED_METHODS.get(default_method, default_method)


def _user_json(user: SimUser, selected: list[str], principal: Principal) -> dict:
    """A user object with the properties $select asks for (Graph always adds the id); beyond the
    basic profile, empty unless the principal may read the full profile."""
    everything = {"id": user.id, "userPrincipalName": user.upn, "mobilePhone": user.mobile_phone or None,
                  "businessPhones": list(user.business_phones), "usageLocation": user.usage_location or None,
                  "userType": user.user_type}
    if not principal.permissions & FULL_PROFILE_PERMISSIONS:
        everything = {name: value if name in BASIC_PROFILE else [] if isinstance(value, list) else None
                      for name, value in everything.items()}
    return {name: everything[name] for name in ["id", *selected] if name in everything}
