"""GraphClient through a real httpx.AsyncClient over MockTransport: one retry policy, one error tree."""

import asyncio
import json

import httpx
import pytest

from bulkphone._auth import BearerAuth, StaticToken
from bulkphone._clock import FakeClock
from bulkphone._errors import (
    AmbiguousWriteError,
    AuthError,
    ForbiddenError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from bulkphone._graph import GraphClient
from bulkphone._model import PhoneType
from bulkphone._retry import RetryPolicy
from bulkphone._throttle import RateLimiter
from bulkphone.sim import Principal

MOBILE = {"id": "3179e48a-750b-4051-897c-87b9720928f7", "phoneNumber": "+1 4255550100", "phoneType": "mobile"}
OK_LIST = {"value": [MOBILE]}


def make_client(handler, clock=None):
    clock = clock or FakeClock()
    return GraphClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=BearerAuth(StaticToken("t"))),
        base_url="https://graph.test",
        policy=RetryPolicy(clock=clock),
        limiter=RateLimiter(100, clock=clock),
    )


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

    client = make_client(handler)
    return client, seen, client.policy.clock


def run(coroutine):
    return asyncio.run(coroutine)


def test_reads_retry_transient_errors():
    client, seen, _ = scripted(503, 504, httpx.ReadError, 200)
    assert run(client.list_phone_methods("ann@contoso.com"))[PhoneType.MOBILE].phone_number == "+1 4255550100"
    assert len(seen) == 4
    assert seen[0].headers["Authorization"] == "Bearer t"
    assert str(seen[0].url) == "https://graph.test/v1.0/users/ann@contoso.com/authentication/phoneMethods"


@pytest.mark.parametrize("status, error", [(400, PermanentError), (401, AuthError), (403, ForbiddenError)])
def test_client_errors_are_never_retried(status, error):
    client, seen, _ = scripted(status, 200)
    with pytest.raises(error):
        run(client.list_phone_methods("ann@contoso.com"))
    assert len(seen) == 1


def test_404_is_not_retried_by_the_client():
    # A user that replicates slowly is waited for by the executor's side lane, not here.
    client, seen, clock = scripted(404)
    with pytest.raises(NotFoundError):
        run(client.list_phone_methods("new@contoso.com"))
    assert len(seen) == 1 and clock.sleeps == []


def test_retry_after_is_honoured_and_pauses_the_limiter():
    client, seen, clock = scripted((429, {"Retry-After": "7"}), 200)
    run(client.list_phone_methods("ann@contoso.com"))
    assert clock.sleeps[0] == 7.0
    assert client.counters.throttled == 1 and client.limiter.paused_seconds == 7.0


def test_throttling_gives_up_after_the_capped_attempts():
    client, seen, _ = scripted((429, {"Retry-After": "1"}))
    with pytest.raises(ThrottledError):
        run(client.list_phone_methods("ann@contoso.com"))
    assert len(seen) == client.policy.attempts


@pytest.mark.parametrize("failure", [503, 500, httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout])
def test_a_write_with_unknown_outcome_is_not_blindly_repeated(failure):
    client, seen, _ = scripted(failure, 201)
    with pytest.raises(AmbiguousWriteError):
        run(client.create_phone_method("ann@contoso.com", PhoneType.MOBILE, "+1 4255550100"))
    assert len(seen) == 1


@pytest.mark.parametrize("failure, error", [((429, {"Retry-After": "2"}), ThrottledError), (httpx.ConnectError, TransientError)])
def test_a_write_is_sent_once_and_says_whether_it_surely_did_not_happen(failure, error):
    # The write's one retry loop is the executor's (test_real_graph), never one inside another.
    client, seen, _ = scripted(failure, 204)
    with pytest.raises(error):
        run(client.delete_phone_method("ann@contoso.com", PhoneType.OFFICE))
    assert len(seen) == 1 and seen[0].method == "DELETE"
    assert seen[0].url.path.endswith("/phoneMethods/e37fc753-ff3b-4958-9484-eaa9425c82bc")


def batch_server(script):
    """A $batch endpoint: script(user, attempt) -> (status, headers, body) for each sub-request."""
    attempts, batches = {}, []

    def handler(request):
        payload = json.loads(request.content)
        batches.append([r["url"].split("/")[2] for r in payload["requests"]])
        responses = []
        for sub in payload["requests"]:
            user = sub["url"].split("/")[2]
            attempts[user] = attempts.get(user, 0) + 1
            status, headers, body = script(user, attempts[user])
            responses.append({"id": sub["id"], "status": status, "headers": headers, "body": body})
        return httpx.Response(200, json={"responses": list(reversed(responses))})

    return handler, attempts, batches


def test_batch_reads_send_at_most_20_users_a_request_and_match_answers_by_id():
    handler, attempts, batches = batch_server(lambda user, n: (200, {}, {"value": [dict(MOBILE, phoneNumber=f"+1 42555501{user[1:]}")]}))
    users = [f"u{i:02d}" for i in range(45)]
    results = run(make_client(handler).read_phone_methods(users))
    assert sorted(len(b) for b in batches) == [5, 20, 20]
    assert all(results[u][PhoneType.MOBILE].phone_number == f"+1 42555501{u[1:]}" for u in users)


def test_batch_sub_requests_are_retried_on_their_own():
    def script(user, attempt):
        if user == "busy" and attempt == 1:
            return 429, {"Retry-After": "3"}, {"error": {"code": "TooManyRequests", "message": "slow down"}}
        if user == "flaky" and attempt < 3:
            return 503, {}, {"error": {"code": "serviceNotAvailable", "message": "try later"}}
        if user == "fresh" and attempt < 2:
            return 404, {}, {"error": {"code": "Request_ResourceNotFound", "message": "no such user"}}
        if user == "ghost":
            return 404, {}, {"error": {"code": "Request_ResourceNotFound", "message": "no such user"}}
        if user == "bad":
            return 400, {}, {"error": {"code": "BadRequest", "message": "nope"}}
        return 200, {}, OK_LIST

    handler, attempts, batches = batch_server(script)
    client = make_client(handler)
    results = run(client.read_phone_methods(["ok", "busy", "flaky", "fresh", "ghost", "bad"]))
    assert {u: type(r).__name__ for u, r in results.items()} == {
        "ok": "dict", "busy": "dict", "flaky": "dict", "fresh": "NotFoundError", "ghost": "NotFoundError",
        "bad": "PermanentError",
    }
    assert attempts == {"ok": 1, "busy": 2, "flaky": 3, "fresh": 1, "ghost": 1, "bad": 1}  # a 404 is an answer
    assert batches[1] == ["busy", "flaky"]  # only the ones that needed it
    assert client.counters.retries == 3
    assert client.policy.clock.sleeps[0] == 3.0  # the sub-request's Retry-After
    assert client.counters.throttled == 1


def test_a_403_inside_a_batch_stops_the_read():
    handler, _, _ = batch_server(lambda user, n: (403, {}, {"error": {"code": "Authorization_RequestDenied", "message": "no"}}))
    with pytest.raises(ForbiddenError):
        run(make_client(handler).read_phone_methods([f"user{i}" for i in range(50)]))  # three batches, all refused


def test_bearer_auth_fetches_a_fresh_token_once_on_401():
    class Rotating:
        def __init__(self):
            self.issued = 0

        def token(self, *, refresh=False):
            self.issued += 1
            return f"token-{self.issued}"

    seen = []

    def handler(request):
        seen.append(request.headers["Authorization"])
        return httpx.Response(401 if len(seen) == 1 else 200, json=OK_LIST)

    async def get():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=BearerAuth(Rotating())) as http:
            return await http.get("https://graph.test/v1.0/me")

    assert run(get()).status_code == 200
    assert seen == ["Bearer token-1", "Bearer token-2"]


def test_sign_in_preferences_are_read_in_beta_batches_and_set_in_beta(tenant, clock):
    from conftest import make_connection

    defaults = ["sms", "voiceOffice", "", "voiceMobile"]
    users = [f"user{i}@contoso.com" for i in range(25)]
    for i, user in enumerate(users):
        tenant.add_user(user, {"mobile": f"+1 42555501{i:02d}", "office": f"+1 20655501{i:02d}"},
                        default_method=defaults[i % 4], system_preferred=i == 2)

    async def go():
        async with make_connection(tenant, clock).open() as client:
            read = await client.read_sign_in_preferences(users)
            await client.set_sign_in_preferences(users[1], preferred="sms")
            return read, await client.get_sign_in_preferences(users[1])

    read, after = asyncio.run(go())
    assert [(read[u].preferred, read[u].system_preferred) for u in users[:4]] == [
        ("sms", False), ("voiceOffice", False), ("", True), ("voiceMobile", False)]
    assert after.preferred == "sms"
    assert [path for method, path, status in tenant.requests if method == "POST"] == ["/beta/$batch", "/beta/$batch"]
    assert tenant.writes[-1]["kind"] == "signInPreferences"


def test_the_phone_only_permission_cant_set_the_default(tenant, clock):
    from conftest import make_connection

    tenant.tokens["phones-only"] = Principal(frozenset({"UserAuthMethod-Phone.ReadWrite.All"}))
    tenant.add_user("ann@contoso.com", {"mobile": "+1 4255550100"})

    async def go():
        async with make_connection(tenant, clock, token="phones-only").open() as client:
            await client.set_sign_in_preferences("ann@contoso.com", preferred="sms")

    with pytest.raises(ForbiddenError):
        asyncio.run(go())
    assert tenant.writes == []


def test_a_group_is_found_by_its_exact_name_and_its_nested_user_members_listed_in_pages(tenant, clock):
    from conftest import make_connection

    tenant.tokens["directory"] = Principal(frozenset({"UserAuthenticationMethod.Read.All", "User.Read.All",
                                                      "GroupMember.Read.All"}))
    people = [tenant.add_user(f"user{i}@contoso.com", mobile_phone=f"07911 1234{i:02d}", usage_location="GB")
              for i in range(5)]
    ring = tenant.add_group("Pilot ring 2", [people[3], people[4], "a-device-id"])
    tenant.add_group("New hires", [people[0], people[1], ring, people[1]])
    tenant.add_group("It's ambiguous", [people[2]])
    tenant.add_group("It's ambiguous", [])
    people[0].business_phones = ["+44 20 7946 0001"]

    async def go():
        async with make_connection(tenant, clock, token="directory").open() as client:
            found = await client.find_groups("New hires")
            twins = await client.find_groups("It's ambiguous")
            members, link = await client.list_group_members_page(found[0].id, page_size=3)
            rest, end = await client.list_group_members_page(found[0].id, link)
            return found, twins, members + rest, link, end

    found, twins, members, link, end = asyncio.run(go())
    assert [group.display_name for group in found] == ["New hires"] and len(twins) == 2
    assert sorted(member.upn for member in members) == [f"user{i}@contoso.com" for i in (0, 1, 3, 4)]  # each once; no device
    assert link and end is None
    first = next(member for member in members if member.upn == "user0@contoso.com")
    assert (first.mobile_phone, first.business_phones, first.usage_location) == ("07911 123400", ("+44 20 7946 0001",), "GB")


def test_listing_a_group_without_group_permission_is_refused(tenant, clock):
    from conftest import make_connection

    group = tenant.add_group("New hires", [tenant.add_user("ann@contoso.com")])

    async def go():
        async with make_connection(tenant, clock).open() as client:
            await client.list_group_members_page(group.id)

    with pytest.raises(ForbiddenError):
        asyncio.run(go())


def test_a_big_read_at_graphs_read_limit_is_slowed_to_its_pace_never_given_up(clock):
    from conftest import make_connection

    from bulkphone.sim import Faults, SimTenant

    # 10 reads a second: 2,000 users' reads meet hundreds of 429s. Every batch waits out the pause
    # a 429 starts, and a throttled user is retried until it is read (an attempt cap would drop
    # users just for being many).
    tenant = SimTenant(clock=clock, faults=Faults(reads_per_second=10, window_seconds=1))
    users = [tenant.add_user(f"user{i}@contoso.com", {"mobile": f"+1 4255550{i:03d}"}).upn for i in range(2000)]

    async def go():
        async with make_connection(tenant, clock).open() as client:
            return await client.read_phone_methods(users), client.counters

    results, counters = asyncio.run(go())
    assert all(results[u][PhoneType.MOBILE].phone_number == f"+1 4255550{i:03d}" for i, u in enumerate(users))
    assert tenant.rate_limited > 0 and counters.throttled == tenant.rate_limited


@pytest.mark.parametrize("throttled, held", [(1, False), (12, True)])
def test_a_batch_mostly_throttled_holds_every_reader_and_a_lone_429_only_its_own(throttled, held):
    def script(user, attempt):
        if int(user[1:]) < throttled and attempt == 1:
            return 429, {"Retry-After": "4"}, {"error": {"code": "TooManyRequests", "message": "slow down"}}
        return 200, {}, OK_LIST

    handler, attempts, _ = batch_server(script)
    client = make_client(handler)
    holds = []
    client.limiter.reads.spent = holds.append  # every reader then waits, and is paced (test_throttle)
    results = run(client.read_phone_methods([f"u{i:02d}" for i in range(20)]))
    assert all(isinstance(answer, dict) for answer in results.values())
    assert holds == ([4.0] if held else [])
