"""The simulated tenant enforces every rule of shared/graph-phone-methods.md."""

import httpx
import pytest

from bulkphone.sim import APP_TOKEN, DROP_AFTER, DROP_BEFORE, Faults, Principal, SimTenant, SimTransport

# Graph's documented ids (phoneAuthenticationMethod resource), written here, not taken from either side.
MOBILE_ID = "3179e48a-750b-4051-897c-87b9720928f7"
ALT_ID = "b6332ec1-7057-4abe-9331-3d72feddfe41"
BASE = "https://graph.test/v1.0/users/ann@contoso.com/authentication/phoneMethods"


@pytest.fixture
def ann(tenant):
    return tenant.add_user("ann@contoso.com")


@pytest.fixture
def http(tenant):
    return httpx.Client(transport=SimTransport(tenant), headers={"Authorization": f"Bearer {APP_TOKEN}"})


def post(http, phone_type, number, url=BASE):
    return http.post(url, json={"phoneType": phone_type, "phoneNumber": number})


def test_create_list_update_delete(http, tenant, ann):
    created = post(http, "mobile", "+1 4255550100")
    assert created.status_code == 201
    assert created.json()["id"] == MOBILE_ID
    assert http.get(BASE).json()["value"][0]["phoneNumber"] == "+1 4255550100"
    assert http.patch(f"{BASE}/{MOBILE_ID}", json={"phoneType": "mobile", "phoneNumber": "+1 4255550101"}).status_code == 204
    assert http.delete(f"{BASE}/{MOBILE_ID}").status_code == 204
    assert tenant.state() == {"ann@contoso.com": {}}
    assert [w["kind"] for w in tenant.writes] == ["create", "update", "delete"]


def test_user_can_be_addressed_by_object_id(http, tenant, ann):
    assert post(http, "office", "+1 4255550199", url=BASE.replace("ann@contoso.com", ann.id)).status_code == 201
    assert tenant.state()["ann@contoso.com"] == {"office": "+1 4255550199"}


@pytest.mark.parametrize("number", ["+14255550100", "425 555 0100", "+1 (425) 555-0100", "+1 4255550100 x12", "+1-4255550100"])
def test_numbers_not_in_graph_format_are_rejected(http, tenant, ann, number):
    assert post(http, "mobile", number).status_code == 400
    assert tenant.writes == []


def test_only_one_method_per_type(http, ann):
    assert post(http, "mobile", "+1 4255550100").status_code == 201
    response = post(http, "mobile", "+1 4255550101")
    assert response.status_code == 400
    assert "already exists" in response.json()["error"]["message"]


def test_alternate_mobile_needs_a_mobile_and_mobile_cannot_go_first(http, tenant, ann):
    assert post(http, "alternateMobile", "+1 4255550101").status_code == 400
    post(http, "mobile", "+1 4255550100")
    assert post(http, "alternateMobile", "+1 4255550101").status_code == 201
    assert http.delete(f"{BASE}/{MOBILE_ID}").status_code == 400
    assert http.delete(f"{BASE}/{ALT_ID}").status_code == 204
    assert http.delete(f"{BASE}/{MOBILE_ID}").status_code == 204


def test_patch_cannot_change_the_type(http, ann):
    post(http, "mobile", "+1 4255550100")
    assert http.patch(f"{BASE}/{MOBILE_ID}", json={"phoneType": "office", "phoneNumber": "+1 4255550100"}).status_code == 400


def test_beta_patch_returns_the_object(http, ann):
    post(http, "mobile", "+1 4255550100")
    response = http.patch(f"{BASE.replace('v1.0', 'beta')}/{MOBILE_ID}", json={"phoneType": "mobile", "phoneNumber": "+1 4255550101"})
    assert response.status_code == 200 and response.json()["phoneNumber"] == "+1 4255550101"


def test_default_method_cannot_be_deleted_while_the_user_has_other_methods(http, tenant):
    tenant.add_user("ann@contoso.com", {"mobile": "+1 4255550100", "office": "+1 4255550199"}, default_method="mobile")
    response = http.delete(f"{BASE}/{MOBILE_ID}")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Cannot delete default method with other methods configured."
    assert tenant.state()["ann@contoso.com"] == {"mobile": "+1 4255550100", "office": "+1 4255550199"}


@pytest.mark.parametrize("others", [{}, {"other_methods": ["microsoftAuthenticator"]}])
def test_the_default_method_can_be_deleted_as_the_last_method(http, tenant, others):
    tenant.add_user("ann@contoso.com", {"mobile": "+1 4255550100"}, default_method="mobile", **others)
    assert http.delete(f"{BASE}/{MOBILE_ID}").status_code == (400 if others else 204)


def test_a_mobile_another_user_has_is_saved_and_answered_409(http, tenant, ann):
    tenant.add_user("bob@contoso.com", {"mobile": "+1 (425) 555-0100"})
    response = post(http, "mobile", "+1 4255550100")
    assert response.status_code == 409 and response.json()["error"]["code"] == "phoneNumberNotUnique"
    assert tenant.state()["ann@contoso.com"] == {"mobile": "+1 4255550100"}
    assert http.get(BASE).json()["value"][0]["smsSignInState"] == "phoneNumberNotUnique"
    tenant.not_unique_saves = False
    assert http.patch(f"{BASE}/{MOBILE_ID}", json={"phoneType": "mobile", "phoneNumber": "+1 4255550100"}).status_code == 409


@pytest.mark.parametrize("phone_type, status", [("mobile", 400), ("alternateMobile", 400), ("office", 201)])
def test_extensions_only_on_office_phones(http, tenant, ann, phone_type, status):
    post(http, "mobile", "+1 4255550100")
    response = post(http, phone_type, "+1 4255550111x12") if phone_type != "mobile" else http.patch(
        f"{BASE}/{MOBILE_ID}", json={"phoneType": "mobile", "phoneNumber": "+1 4255550111x12"})
    assert response.status_code == status
    if status == 400:
        assert "only for office" in response.json()["error"]["message"]


def test_a_new_user_answers_404_for_some_seconds(http, tenant, clock):
    tenant.add_user("ann@contoso.com", replicating_for=30)
    statuses = []
    for _ in range(4):
        statuses.append(http.get(BASE).status_code)
        clock.advance(10)
    assert statuses == [404, 404, 404, 200]


def test_a_removed_user_answers_404(http, tenant, ann):
    assert http.get(BASE).status_code == 200
    tenant.remove_user("ann@contoso.com")
    assert http.get(BASE).status_code == 404


def test_unknown_user_is_404(http, tenant):
    assert http.get(BASE).status_code == 404


def test_delegated_callers_see_masked_numbers(tenant):
    tenant.add_user("ann@contoso.com", {"mobile": "+1 4255550100"})
    tenant.tokens["admin"] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All"}), delegated=True)
    http = httpx.Client(transport=SimTransport(tenant), headers={"Authorization": "Bearer admin"})
    assert http.get(BASE).json()["value"][0]["phoneNumber"] == "+1 XXXXXXXX00"


def test_401_without_a_valid_token_and_403_without_write_permission(tenant, ann):
    tenant.tokens["reader"] = Principal(frozenset({"UserAuthenticationMethod.Read.All"}))
    assert httpx.Client(transport=SimTransport(tenant)).get(BASE).status_code == 401
    assert httpx.Client(transport=SimTransport(tenant), headers={"Authorization": "Bearer nope"}).get(BASE).status_code == 401
    reader = httpx.Client(transport=SimTransport(tenant), headers={"Authorization": "Bearer reader"})
    assert reader.get(BASE).status_code == 200
    forbidden = post(reader, "mobile", "+1 4255550100")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "Authorization_RequestDenied"
    assert tenant.writes == []


def test_writes_over_the_rate_get_429_with_retry_after(clock):
    tenant = SimTenant(clock=clock, faults=Faults(writes_per_second=2))
    tenant.add_user("ann@contoso.com")
    http = httpx.Client(transport=SimTransport(tenant), headers={"Authorization": f"Bearer {APP_TOKEN}"})
    statuses = [post(http, t, "+1 4255550100").status_code for t in ("mobile", "office", "alternateMobile")]
    assert statuses == [201, 201, 429]
    throttled = post(http, "alternateMobile", "+1 4255550100")
    assert throttled.headers["Retry-After"] == "1"
    clock.advance(1)
    assert post(http, "alternateMobile", "+1 4255550101").status_code == 201


@pytest.mark.parametrize("fault, applied", [(DROP_AFTER, True), (DROP_BEFORE, False)])
def test_a_dropped_connection_applies_the_write_only_when_it_drops_after(clock, fault, applied):
    tenant = SimTenant(clock=clock)
    tenant.add_user("ann@contoso.com")
    tenant.fail_next(fault, "POST")
    http = httpx.Client(transport=SimTransport(tenant), headers={"Authorization": f"Bearer {APP_TOKEN}"})
    with pytest.raises(httpx.RemoteProtocolError):
        post(http, "mobile", "+1 4255550100")
    assert tenant.state()["ann@contoso.com"] == ({"mobile": "+1 4255550100"} if applied else {})


def test_batch_answers_each_sub_request(http, tenant, ann):
    tenant.add_user("bob@contoso.com", {"office": "+1 4255550199"})
    response = http.post(
        "https://graph.test/v1.0/$batch",
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/users/ann@contoso.com/authentication/phoneMethods"},
                {"id": "2", "method": "GET", "url": "/users/bob@contoso.com/authentication/phoneMethods"},
                {"id": "3", "method": "GET", "url": "/users/nobody@contoso.com/authentication/phoneMethods"},
            ]
        },
    )
    answers = {r["id"]: r for r in response.json()["responses"]}
    assert answers["1"]["status"] == 200 and answers["1"]["body"]["value"] == []
    assert answers["2"]["body"]["value"][0]["phoneNumber"] == "+1 4255550199"
    assert answers["3"]["status"] == 404


def test_injected_429s_carry_retry_after(clock):
    tenant = SimTenant(clock=clock, faults=Faults(error_429=1.0, retry_after=0.25))
    tenant.add_user("ann@contoso.com")
    http = httpx.Client(transport=SimTransport(tenant), headers={"Authorization": f"Bearer {APP_TOKEN}"})
    response = http.get(BASE)
    assert response.status_code == 429 and response.headers["Retry-After"] == "0.25"
    assert tenant.injected["429"] == 1 and tenant.rate_limited == 0


def test_near_the_write_limit_responses_say_how_much_is_used(clock):
    tenant = SimTenant(clock=clock, faults=Faults(writes_per_second=10))
    tenant.add_user("ann@contoso.com")
    http = httpx.Client(transport=SimTransport(tenant), headers={"Authorization": f"Bearer {APP_TOKEN}"})
    first = post(http, "mobile", "+1 4255550100")
    assert "x-ms-throttle-limit-percentage" not in first.headers
    for number in range(1, 8):
        last = http.patch(f"{BASE}/{MOBILE_ID}", json={"phoneType": "mobile", "phoneNumber": f"+1 425555010{number}"})
    assert float(last.headers["x-ms-throttle-limit-percentage"]) >= 0.8


def test_moving_the_default_off_a_method_lets_it_be_deleted():
    tenant = SimTenant()
    tenant.add_user("ann@contoso.com", {"mobile": "+1 4255550100", "office": "+1 2065550100"}, default_method="voiceOffice")
    office = "/v1.0/users/ann@contoso.com/authentication/phoneMethods/e37fc753-ff3b-4958-9484-eaa9425c82bc"
    with httpx.Client(transport=SimTransport(tenant), headers={"Authorization": f"Bearer {APP_TOKEN}"}) as http:
        blocked = http.delete("https://graph.test" + office)
        moved = http.patch("https://graph.test/beta/users/ann@contoso.com/authentication/signInPreferences",
                           json={"userPreferredMethodForSecondaryAuthentication": "sms"})
        deleted = http.delete("https://graph.test" + office)
        read = http.get("https://graph.test/beta/users/ann@contoso.com/authentication/signInPreferences").json()
    assert (blocked.status_code, moved.status_code, deleted.status_code) == (400, 204, 204)
    assert "Cannot delete default method with other methods configured" in blocked.text
    assert read["userPreferredMethodForSecondaryAuthentication"] == "sms"
    assert tenant.state() == {"ann@contoso.com": {"mobile": "+1 4255550100"}}
