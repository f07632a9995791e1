"""Graph's documented request/response pairs (tests/contract/phone_methods.json), checked against
both sides: the simulated tenant must answer each request as documented, and GraphClient must
send exactly that request and read that answer as documented."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from bulkphone import _errors as errors
from bulkphone._clock import FakeClock
from bulkphone._graph import GraphClient
from bulkphone._model import PhoneType, SignInPreferences
from bulkphone._retry import RetryPolicy
from bulkphone.sim import APP_TOKEN, Principal, SimTenant, SimTransport

CASES = json.loads((Path(__file__).parent / "contract" / "phone_methods.json").read_text(encoding="utf-8"))["cases"]
GRAPH = "https://graph.test"


def contains(actual, expected) -> bool:
    """`expected` is found in `actual`: every key of a dict, every item of a list, in order."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(contains, actual, expected))
    return actual == expected


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_simulated_tenant_answers_as_documented(case):
    tenant = SimTenant()
    tenant.premium = case.get("premium", True)
    for upn, methods in case["given"].items():
        extra = {"id": case["ids"][upn]} if upn in case.get("ids", {}) else {}
        tenant.add_user(upn, methods, default_method=case.get("default", {}).get(upn, ""),
                        sms_policy=upn not in case.get("sms_policy_off", []), other_methods=case.get("other_methods", {}).get(upn, []),
                        **case.get("attributes", {}).get(upn, {}), **extra)
    by_upn = {user.upn: user for user in tenant.users.values()}
    for group in case.get("groups", []):
        tenant.add_group(group["displayName"], [by_upn.get(member, member) for member in group["members"]], id=group["id"])
    request = case["request"]
    permissions = case.get("permissions", ["UserAuthenticationMethod.ReadWrite.All", "GroupMember.Read.All", "User.Read.All"])
    tenant.tokens[APP_TOKEN] = Principal(frozenset(permissions))
    with httpx.Client(transport=SimTransport(tenant), headers={"Authorization": f"Bearer {APP_TOKEN}"}) as http:
        response = http.request(request["method"], GRAPH + request["url"], json=request.get("body"))
    expected = case["response"]
    assert response.status_code == expected["status"], response.text
    if "body" in expected:
        assert contains(response.json(), expected["body"]), response.text
    else:
        assert response.content == b""
    for upn, methods in case.get("then", {}).items():
        assert tenant.state()[upn] == methods
    for upn, preferred in case.get("then_default", {}).items():
        assert tenant.users[next(key for key, user in tenant.users.items() if user.upn == upn)].default_method == preferred


CLIENT_CASES = [case for case in CASES if "client" in case]  # what the client never sends (v1.0 signInPreferences) has none


@pytest.mark.parametrize("case", CLIENT_CASES, ids=[case["name"] for case in CLIENT_CASES])
def test_graph_client_sends_the_documented_request_and_reads_the_answer(case):
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = case["response"]
        return httpx.Response(answer["status"], json=answer.get("body")) if "body" in answer else httpx.Response(answer["status"])

    client = GraphClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), base_url=GRAPH,
                         policy=RetryPolicy(clock=FakeClock()))
    call = case["client"]
    args = [PhoneType(arg) if arg in {t.value for t in PhoneType} else arg for arg in call["args"]]

    async def go():
        async with client:
            return await getattr(client, call["call"])(*args, **call.get("kwargs", {}))

    if "raises" in call:
        with pytest.raises(getattr(errors, call["raises"])):
            asyncio.run(go())
    else:
        result = asyncio.run(go())
        if "returns_groups" in call:
            assert [[group.id, group.display_name] for group in result] == call["returns_groups"]
        elif "returns_registrations" in call:
            rows, _ = result
            assert [[row.upn, list(row.methods), row.mfa_registered] for row in rows] == call["returns_registrations"]
        elif "returns_holders" in call:
            holders, _ = result
            assert [[holder.id, holder.kind] for holder in holders] == call["returns_holders"]
        elif "returns_members" in call:
            members, _ = result
            assert [[m.upn, m.mobile_phone, m.usage_location] for m in members] == call["returns_members"]
        elif call["returns"] is None:
            assert result is None
        elif isinstance(result, SignInPreferences):
            assert {"preferred": result.preferred, "system_preferred": result.system_preferred} == call["returns"]
        else:
            methods = result if isinstance(result, dict) else {result.phone_type: result}
            assert {t.value: m.phone_number for t, m in methods.items()} == call["returns"]
    request = case["request"]
    assert len(sent) == 1  # one request, as documented; retries are someone else's decision
    assert (sent[0].method, sent[0].url.raw_path.decode()) == (request["method"], request["url"])
    assert (json.loads(sent[0].content) if sent[0].content else None) == request.get("body")
