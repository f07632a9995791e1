"""GraphClient through a real httpx client over MockTransport: one retry policy, one error tree."""

import httpx
import pytest

from bulkphone.auth import BearerAuth, StaticToken
from bulkphone.clock import FakeClock
from bulkphone.errors import AmbiguousWriteError, AuthError, ForbiddenError, NotFoundError, PermanentError, ThrottledError
from bulkphone.graph import GraphClient
from bulkphone.model import PhoneType
from bulkphone.retry import RetryPolicy
from bulkphone.throttle import RateLimiter

OK_LIST = {"value": [{"id": "3179e48a-750b-4051-897c-87b9720928f7", "phoneNumber": "+1 4255550100", "phoneType": "mobile"}]}


def scripted(*answers):
    """A client whose transport plays `answers` in order (a status, (status, headers), or an exception)."""
    seen = []

    def handler(request):
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer("boom", request=request)
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        body = OK_LIST if status == 200 else {"error": {"code": "x", "message": f"status {status}"}}
        return httpx.Response(status, json=body if status != 204 else None, headers=headers)

    clock = FakeClock()
    client = GraphClient(
        httpx.Client(transport=httpx.MockTransport(handler), auth=BearerAuth(StaticToken("t"))),
        base_url="https://graph.test",
        policy=RetryPolicy(clock=clock),
        limiter=RateLimiter(100, clock=clock),
    )
    return client, seen, clock


def test_reads_retry_transient_errors():
    client, seen, _ = scripted(503, 504, httpx.ReadError, 200)
    assert client.list_phone_methods("ann@contoso.com")[PhoneType.MOBILE].phone_number == "+1 4255550100"
    assert len(seen) == 4
    assert seen[0].headers["Authorization"] == "Bearer t"
    assert str(seen[0].url) == "https://graph.test/v1.0/users/ann@contoso.com/authentication/phoneMethods"


@pytest.mark.parametrize("status, error", [(400, PermanentError), (401, AuthError), (403, ForbiddenError)])
def test_client_errors_are_never_retried(status, error):
    client, seen, _ = scripted(status, 200)
    with pytest.raises(error):
        client.list_phone_methods("ann@contoso.com")
    assert len(seen) == 1


def test_404_is_retried_for_the_replication_window_then_reported():
    client, seen, clock = scripted(404)
    with pytest.raises(NotFoundError):
        client.list_phone_methods("new@contoso.com")
    assert len(seen) == client.policy.not_found_attempts
    assert len(clock.sleeps) == client.policy.not_found_attempts - 1


def test_retry_after_is_honoured_and_pauses_the_limiter():
    client, seen, clock = scripted((429, {"Retry-After": "7"}), 200)
    client.list_phone_methods("ann@contoso.com")
    assert clock.sleeps[0] == 7.0
    assert client.throttled == 1 and client.limiter.paused_seconds == 7.0


def test_throttling_gives_up_after_the_capped_attempts():
    client, seen, _ = scripted((429, {"Retry-After": "1"}))
    with pytest.raises(ThrottledError):
        client.list_phone_methods("ann@contoso.com")
    assert len(seen) == client.policy.attempts


@pytest.mark.parametrize("failure", [503, 500, httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout])
def test_a_write_with_unknown_outcome_is_not_blindly_repeated(failure):
    client, seen, _ = scripted(failure, 201)
    with pytest.raises(AmbiguousWriteError):
        client.create_phone_method("ann@contoso.com", PhoneType.MOBILE, "+1 4255550100")
    assert len(seen) == 1


@pytest.mark.parametrize("failure", [(429, {"Retry-After": "2"}), httpx.ConnectError])
def test_a_write_that_surely_did_not_happen_is_retried(failure):
    client, seen, _ = scripted(failure, 204)
    client.delete_phone_method("ann@contoso.com", PhoneType.OFFICE)
    assert len(seen) == 2
    assert seen[1].method == "DELETE"
    assert seen[1].url.path.endswith("/phoneMethods/e37fc753-ff3b-4958-9484-eaa9425c82bc")


def test_the_limiter_spaces_writes():
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    start = clock.now()
    for _ in range(5):
        limiter.acquire()
    assert clock.now() - start == pytest.approx(2.0)


def test_a_paused_limiter_holds_everyone_until_resume():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    limiter.pause(5)
    start = clock.now()
    limiter.acquire()
    assert clock.now() - start == pytest.approx(5.0)


def test_bearer_auth_fetches_a_fresh_token_once_on_401():
    class Rotating:
        def __init__(self):
            self.issued = 0

        def token(self, *, refresh=False):
            self.issued += 1
            return f"token-{self.issued}"

    provider = Rotating()
    seen = []

    def handler(request):
        seen.append(request.headers["Authorization"])
        return httpx.Response(401 if len(seen) == 1 else 200, json=OK_LIST)

    http = httpx.Client(transport=httpx.MockTransport(handler), auth=BearerAuth(provider))
    assert http.get("https://graph.test/v1.0/me").status_code == 200
    assert seen == ["Bearer token-1", "Bearer token-2"]
