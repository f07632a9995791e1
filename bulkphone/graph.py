"""The one place that talks HTTP to Microsoft Graph. Only this module sees httpx errors."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from .errors import (
    AmbiguousWriteError,
    AuthError,
    ForbiddenError,
    GraphError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from .model import PhoneMethod, PhoneType
from .retry import RetryPolicy
from .throttle import RateLimiter

__all__ = ["GraphClient"]

_TRANSIENT_STATUS = {500, 502, 503, 504}


class GraphClient:
    """Phone-method operations over an injected httpx client (its transport and auth are the caller's).

    Reads are retried on every transient failure. Writes are retried only when Graph
    guarantees nothing happened (429, or no connection was made); any other failure of a
    write raises AmbiguousWriteError so the caller re-reads before writing again.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str = "https://graph.microsoft.com",
        version: str = "v1.0",
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.http = http
        self.root = f"{base_url.rstrip('/')}/{version}"
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or RateLimiter(clock=self.policy.clock)
        self.reads = 0
        self.writes = 0
        self.throttled = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- reads ----
    def list_phone_methods(self, user: str) -> dict[PhoneType, PhoneMethod]:
        body = self._read(f"{self._user(user)}/authentication/phoneMethods")
        return {method.phone_type: method for method in map(_method, body.get("value", [])) if method}

    def get_phone_method(self, user: str, phone_type: PhoneType) -> PhoneMethod | None:
        return _method(self._read(f"{self._user(user)}/authentication/phoneMethods/{phone_type.method_id}"))

    # ---- writes ----
    def create_phone_method(self, user: str, phone_type: PhoneType, number: str) -> PhoneMethod | None:
        payload = {"phoneNumber": number, "phoneType": phone_type.value}
        response = self._write("POST", f"{self._user(user)}/authentication/phoneMethods", payload)
        return _method(response.json()) if response.content else None

    def update_phone_method(self, user: str, phone_type: PhoneType, number: str) -> None:
        payload = {"phoneNumber": number, "phoneType": phone_type.value}
        self._write("PATCH", f"{self._user(user)}/authentication/phoneMethods/{phone_type.method_id}", payload)

    def delete_phone_method(self, user: str, phone_type: PhoneType) -> None:
        self._write("DELETE", f"{self._user(user)}/authentication/phoneMethods/{phone_type.method_id}")

    # ---- plumbing ----
    def _user(self, user: str) -> str:
        return f"/users/{quote(user, safe='@')}"

    def _read(self, path: str) -> dict:
        def once() -> dict:
            self.reads += 1
            return self._send("GET", path, None, write=False).json()

        return self.policy.run(once, retry_not_found=True)

    def _write(self, method: str, path: str, payload: dict | None = None) -> httpx.Response:
        def once() -> httpx.Response:
            self.limiter.acquire()
            self.writes += 1
            return self._send(method, path, payload, write=True)

        return self.policy.run(once)

    def _send(self, method: str, path: str, payload: dict | None, *, write: bool) -> httpx.Response:
        try:
            response = self.http.request(method, self.root + path, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"can't connect to Graph: {exc}") from exc
        except httpx.TransportError as exc:
            kind = AmbiguousWriteError if write else TransientError
            raise kind(f"connection lost during {method} ({type(exc).__name__}: {exc})") from exc
        if response.is_success:
            return response
        raise self._error(response, write)

    def _error(self, response: httpx.Response, write: bool) -> GraphError:
        code, message = _error_body(response)
        fields = {
            "status": response.status_code,
            "code": code,
            "request_id": response.headers.get("request-id", ""),
        }
        status = response.status_code
        if status == 429:
            self.throttled += 1
            retry_after = _seconds(response.headers.get("Retry-After"))
            self.limiter.pause(retry_after if retry_after is not None else 1.0)
            return ThrottledError(f"throttled by Graph: {message}", retry_after=retry_after, **fields)
        if status == 401:
            return AuthError(f"Graph rejected the token (401 {code}): {message}", **fields)
        if status == 403:
            return ForbiddenError(f"permission denied (403 {code}): {message}", **fields)
        if status == 404:
            return NotFoundError(f"not found (404 {code}): {message}", **fields)
        if status in _TRANSIENT_STATUS:
            kind = AmbiguousWriteError if write else TransientError
            return kind(f"Graph is unavailable ({status} {code}): {message}", **fields)
        return PermanentError(f"Graph refused the request ({status} {code}): {message}", **fields)


def _error_body(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        return "", response.text[:200]


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


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
