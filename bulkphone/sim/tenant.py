"""An in-process fake of Graph's phone authentication methods API.

It enforces the rules in shared/graph-phone-methods.md (strict number format, one method
per type, alternateMobile needs mobile, no type change on PATCH, default method can't be
deleted, fresh users answer 404 for a while, masked numbers for delegated callers,
401/403, 429 with Retry-After) and can inject latency and faults, including a connection
dropped after a write was applied. It records every applied write so tests can assert
exactly what reached the tenant.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import parse_qs, unquote

from ..auth import decode_claims
from ..clock import Clock, SystemClock
from ..model import METHOD_IDS, PhoneType

__all__ = ["DROP_AFTER", "DROP_BEFORE", "Faults", "Principal", "SimResponse", "SimTenant", "SimUser"]

GRAPH_NUMBER = re.compile(r"^\+[1-9]\d{0,2} \d{4,15}(x\d{1,10})?$")
READ_PERMISSIONS = {
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "UserAuthMethod-Phone.ReadWrite.All",
}
DIRECTORY_READ_PERMISSIONS = {"User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
WRITE_PERMISSIONS = {"UserAuthenticationMethod.ReadWrite.All", "UserAuthMethod-Phone.ReadWrite.All"}
APP_TOKEN = "sim-app-token"
GRAPH_AUDIENCES = ("https://graph.microsoft", "https://dod-graph.microsoft", "https://microsoftgraph.chinacloudapi", "00000003-0000-0000-c000-000000000000")

DROP_BEFORE = "drop-before"  # the connection dies before the request is applied
DROP_AFTER = "drop-after"  # the request is applied, then the connection dies


@dataclass(frozen=True)
class Principal:
    permissions: frozenset[str]
    delegated: bool = False
    upn: str = ""  # the signed-in user, for delegated tokens


@dataclass
class SimUser:
    id: str
    upn: str
    methods: dict[str, str] = field(default_factory=dict)  # phoneType -> stored phoneNumber
    sms_states: dict[str, str] = field(default_factory=dict)
    default_method: str = ""  # phoneType that is the user's default sign-in method
    fresh_requests: int = 0  # answer 404 to this many requests first (directory replication)


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
    window_seconds: float = 1.0  # the budget is counted over this window: rate x window may come in a burst
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
        now = self.clock.now()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    @property
    def used(self) -> float:
        return 1 - self.tokens / self.capacity


class SimTenant:
    def __init__(
        self,
        users: Iterable[SimUser] = (),
        *,
        clock: Clock | None = None,
        faults: Faults | None = None,
        tokens: dict[str, Principal] | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.faults = faults or Faults()
        self.tokens = tokens if tokens is not None else {
            APP_TOKEN: Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All"}))
        }
        self.users: dict[str, SimUser] = {}
        self.writes: list[dict] = []  # every write that changed the tenant, in order
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status or drop)
        self.injected: dict[str, int] = {"429": 0, "503": 0, "500": 0, DROP_BEFORE: 0, DROP_AFTER: 0, "404-fresh": 0}
        self.rate_limited = 0  # 429s because the caller went over the configured rate
        self.jwt_requests = 0  # requests signed with a JWT the tenant accepted
        self._random = random.Random(self.faults.seed)
        self._forced: list[tuple[str, str | None]] = []
        self._lock = threading.RLock()
        self._mobiles: Counter[str] | None = None  # digits of every mobile, while one request is answered
        window = self.faults.window_seconds
        self._write_bucket = _Bucket(self.faults.writes_per_second, window, self.clock) if self.faults.writes_per_second else None
        self._read_bucket = _Bucket(self.faults.reads_per_second, window, self.clock) if self.faults.reads_per_second else None
        for user in users:
            self.add(user)

    # ---- setting up and inspecting -------------------------------------------------
    def add(self, user: SimUser) -> SimUser:
        with self._lock:
            self.users[user.id.lower()] = user
            return user

    def add_user(self, upn: str, methods: dict[str, str] | None = None, **kwargs) -> SimUser:
        return self.add(SimUser(id=kwargs.pop("id", str(uuid.uuid4())), upn=upn, methods=dict(methods or {}), **kwargs))

    def state(self) -> dict[str, dict[str, str]]:
        """upn -> {phoneType: stored number}, for asserting outcomes."""
        with self._lock:
            return {user.upn: dict(user.methods) for user in self.users.values()}

    def write_count(self) -> int:
        return len(self.writes)

    @classmethod
    def from_json(cls, path: str | Path, **kwargs) -> SimTenant:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        users = [SimUser(**entry) for entry in data["users"]]
        return cls(users, **kwargs)

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
        user = self.users.get(parts[1].lower()) or next(
            (u for u in self.users.values() if u.upn.lower() == parts[1].lower()), None
        )
        if user is None:
            return _error(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist.")
        if user.fresh_requests > 0:
            user.fresh_requests -= 1
            self.injected["404-fresh"] += 1
            return _error(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist.")
        if is_write and principal.delegated and principal.upn.lower() == user.upn.lower():
            return _error(403, "Authorization_RequestDenied", "Users can't change their own methods through this API.")
        response = self._route(method, version, parts[2:], user, principal, body)
        if fault is not None:  # DROP_AFTER: the write happened, the client never hears of it
            return SimResponse(0, drop=DROP_AFTER)
        bucket = self._write_bucket if is_write else self._read_bucket
        if bucket is not None and bucket.used >= 0.8:
            response.headers["x-ms-throttle-limit-percentage"] = f"{bucket.used:.2f}"
        return response

    def _principal(self, headers: dict[str, str]) -> Principal | SimResponse:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "InvalidAuthenticationToken", "Access token is empty.")
        token = auth[len("Bearer "):]
        principal = self.tokens.get(token)
        if principal is not None:
            return principal
        claims = decode_claims(token)
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

    def _route(self, method: str, version: str, rest: list[str], user: SimUser, principal: Principal, body: bytes) -> SimResponse:
        if not rest:
            if method == "GET":
                return SimResponse(200, {"id": user.id, "userPrincipalName": user.upn})
            return _error(405, "Request_BadRequest", "Method not allowed.")
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
        user.methods[phone_type] = payload["phoneNumber"]
        self._mobiles = None
        user.sms_states[phone_type] = self._sms_state(user, phone_type)
        self._record("create", user, phone_type, payload["phoneNumber"])
        return SimResponse(201, self._method_json(user, phone_type, None))

    def _update(self, user: SimUser, phone_type: str, body: bytes, version: str) -> SimResponse:
        payload, problem = _payload(body)
        if problem:
            return problem
        if payload["phoneType"] != phone_type:
            return _error(400, "badRequest", "phoneType can't be changed; create the new type and delete the old one.")
        user.methods[phone_type] = payload["phoneNumber"]
        self._mobiles = None
        user.sms_states[phone_type] = self._sms_state(user, phone_type)
        self._record("update", user, phone_type, payload["phoneNumber"])
        if version == "beta":
            return SimResponse(200, self._method_json(user, phone_type, None))
        return SimResponse(204)

    def _delete(self, user: SimUser, phone_type: str) -> SimResponse:
        if phone_type == user.default_method:
            return _error(400, "badRequest", "The method is the user's default sign-in method and can't be deleted.")
        if phone_type == "mobile" and "alternateMobile" in user.methods:
            return _error(400, "badRequest", "The mobile phone can't be deleted while an alternateMobile phone exists.")
        number = user.methods.pop(phone_type)
        self._mobiles = None
        user.sms_states.pop(phone_type, None)
        self._record("delete", user, phone_type, number)
        return SimResponse(204)

    def _sms_sign_in(self, user: SimUser, phone_type: str, *, enable: bool) -> SimResponse:
        if phone_type != "mobile":
            return _error(400, "badRequest", "Only a mobile phone can be used for SMS sign-in.")
        if "mobile" not in user.methods:
            return _error(404, "itemNotFound", "The user has no mobile method.")
        if enable and self._sms_state(user, "mobile") == "phoneNumberNotUnique":
            return _error(400, "badRequest", "phoneNumberNotUnique")
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
            "id": METHOD_IDS[PhoneType(phone_type)],
            "phoneNumber": number,
            "phoneType": phone_type,
            "smsSignInState": user.sms_states.get(phone_type) or self._sms_state(user, phone_type),
        }

    def _record(self, kind: str, user: SimUser, phone_type: str, number: str) -> None:
        self.writes.append({"kind": kind, "user": user.upn, "phoneType": phone_type, "phoneNumber": number})

    def _list_users(self, version: str, principal: Principal, query: dict[str, list[str]], origin: str) -> SimResponse:
        """GET /users: a page of $top users (at most 999), and a next-page link while more remain."""
        if not principal.permissions & DIRECTORY_READ_PERMISSIONS:
            return _forbidden()
        fault = self._roll_fault("GET", False)
        if fault is not None:
            return fault
        throttled = self._throttle(False)
        if throttled is not None:
            return throttled
        try:
            top = min(int(query.get("$top", ["100"])[0]), 999)
            skip = int(query.get("$skiptoken", ["0"])[0])
        except ValueError:
            return _error(400, "BadRequest", "Invalid $top or $skiptoken.")
        everyone = list(self.users.values())
        page = everyone[skip : skip + top]
        body: dict = {"value": [{"id": user.id, "userPrincipalName": user.upn} for user in page]}
        if skip + top < len(everyone):
            body["@odata.nextLink"] = f"{origin}/{version}/users?$select=id,userPrincipalName&$top={top}&$skiptoken={skip + top}"
        return SimResponse(200, body)

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
    return payload, None


def _type_for_id(method_id: str) -> str | None:
    for phone_type, known in METHOD_IDS.items():
        if known == method_id.lower():
            return phone_type.value
    return None


def _ordered(methods: dict[str, str]) -> list[str]:
    return [t.value for t in PhoneType if t.value in methods]


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _mask(number: str) -> str:
    country, _, rest = number.partition(" ")
    digits = re.sub(r"\D", "", rest.split("x")[0])
    return f"{country} {'X' * max(0, len(digits) - 2)}{digits[-2:]}"


def _forbidden() -> SimResponse:
    return _error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _error(status: int, code: str, message: str) -> SimResponse:
    request_id = str(uuid.uuid4())
    return SimResponse(
        status,
        {"error": {"code": code, "message": message, "innerError": {"request-id": request_id}}},
        {"request-id": request_id},
    )
