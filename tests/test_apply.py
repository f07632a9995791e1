"""plan and apply end to end against the simulated tenant: outcomes, not just that code ran."""

import pytest

import bulkphone
from bulkphone.clock import SystemClock
from bulkphone.model import Action, Status
from bulkphone.report import result_rows
from bulkphone.retry import RetryPolicy
from bulkphone.sim import APP_TOKEN, DROP_AFTER, DROP_BEFORE, Faults, Principal, SimTenant, serve
from conftest import make_client

ANN, BOB = "ann@contoso.com", "bob@contoso.com"


@pytest.fixture
def regions(write_file):
    return write_file("users.csv", "user,region\nann@contoso.com,US\nbob@contoso.com,GB\n")


@pytest.fixture
def phones(write_file):
    return write_file(
        "phones.csv",
        """
        user,mobile,alternateMobile,office
        ann@contoso.com,(425) 555-0100,425 555 0101,+1 425 555 0199 x12
        bob@contoso.com,020 7946 0958,,
        """,
    )


def outcomes(result):
    return {(item.user, item.phone_type): (item.action, result.outcome(item).status) for item in result.plan.items}


def test_plan_reads_but_never_writes(tenant, client, phones, regions):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    tenant.add_user(BOB)
    plan = bulkphone.plan(phones, client=client, users=regions)
    assert tenant.writes == []
    assert {method for method, _, _ in tenant.requests} == {"GET"}
    assert [(i.user, i.phone_type, i.action) for i in plan.items if i.action.writes] == [
        (ANN, "mobile", Action.UPDATE),
        (ANN, "alternateMobile", Action.CREATE),
        (ANN, "office", Action.CREATE),
        (BOB, "mobile", Action.CREATE),
    ]


def test_apply_reaches_the_desired_state_and_a_second_apply_writes_nothing(tenant, client, phones, regions):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    tenant.add_user(BOB)
    result = bulkphone.apply(phones, client=client, users=regions)
    assert tenant.state() == {
        ANN: {"mobile": "+1 4255550100", "alternateMobile": "+1 4255550101", "office": "+1 4255550199x12"},
        BOB: {"mobile": "+44 2079460958"},
    }
    assert len(tenant.writes) == 4
    assert all(o.status is Status.OK for o in result.outcomes.values())

    again = bulkphone.apply(phones, client=client, users=regions)
    assert len(tenant.writes) == 4
    assert {item.action for item in again.plan.items} == {Action.NOOP}


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_a_response_lost_after_the_write_causes_no_second_write(tenant, client, write_file, method):
    tenant.add_user(ANN, {"office": "+1 4255550000"})
    number = {"POST": "+1 425 555 0100", "PATCH": "", "DELETE": ""}[method]
    office = {"POST": "+1 4255550000", "PATCH": "+1 425 555 0199", "DELETE": ""}[method]
    path = write_file("in.csv", f"user,mobile,office\n{ANN},{number},{office}\n")
    tenant.fail_next(DROP_AFTER, method)
    result = bulkphone.apply(path, client=client, mode="sync", default_region="US")
    assert len(tenant.writes) == 1
    changed = [item for item in result.plan.items if item.action.writes]
    assert len(changed) == 1
    outcome = result.outcome(changed[0])
    assert outcome.status is Status.OK and outcome.reconciled
    assert result.stats["reconciled"] == 1
    expected = {"POST": {"mobile": "+1 4255550100", "office": "+1 4255550000"}, "PATCH": {"office": "+1 4255550199"}, "DELETE": {}}
    assert tenant.state()[ANN] == expected[method]


@pytest.mark.parametrize("fault", [DROP_BEFORE, "503", "500"])
def test_a_write_that_did_not_happen_is_written_once_after_reading_back(tenant, client, write_file, fault):
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    tenant.fail_next(fault, "POST")
    result = bulkphone.apply(path, client=client)
    assert tenant.writes == [{"kind": "create", "user": ANN, "phoneType": "mobile", "phoneNumber": "+1 4255550100"}]
    outcome = result.outcomes[(2, "mobile")]
    assert outcome.status is Status.OK and outcome.attempts == 2 and not outcome.reconciled
    reads_after_write = [r for r in tenant.requests if r[0] == "GET"]
    assert len(reads_after_write) == 2  # the plan's read and the read-back


def test_throttled_writes_wait_as_told_and_all_land(clock, write_file):
    tenant = SimTenant(clock=clock, faults=Faults(writes_per_second=2))
    users = [f"user{i}@contoso.com" for i in range(12)]
    for user in users:
        tenant.add_user(user)
    path = write_file("in.csv", "user,mobile\n" + "".join(f"{u},+1 425 555 01{i:02d}\n" for i, u in enumerate(users)))
    client = make_client(tenant, clock)
    result = bulkphone.apply(path, client=client)
    assert all(o.status is Status.OK for o in result.outcomes.values())
    assert len(tenant.writes) == 12
    assert result.stats["throttled"] > 0
    assert client.limiter.paused_seconds > 0


def test_default_method_delete_is_reported_not_looped(tenant, client, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550100"}, default_method="mobile")
    path = write_file("in.csv", f"user,mobile\n{ANN},\n")
    result = bulkphone.apply(path, client=client, mode="sync")
    outcome = result.outcomes[(2, "mobile")]
    assert outcome.status is Status.FAILED
    assert "default sign-in method" in outcome.error and "change the user's default method first" in outcome.error
    assert outcome.http_status == 400 and outcome.request_id
    assert sum(1 for r in tenant.requests if r[0] == "DELETE") == 1
    assert tenant.state()[ANN] == {"mobile": "+1 4255550100"}


def test_after_a_failed_change_the_users_later_changes_are_not_attempted(tenant, client, write_file):
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile,alternateMobile\n{ANN},+1 425 555 0100,+1 425 555 0101\n")
    plan = bulkphone.plan(path, client=client)
    tenant.users[next(iter(tenant.users))].methods["mobile"] = "+1 4255559999"  # someone else got there first
    result = bulkphone.apply(plan, client=client)
    assert result.outcomes[(2, "mobile")].status is Status.FAILED
    assert "since the plan" in result.outcomes[(2, "mobile")].error
    alternate = result.outcomes[(2, "alternateMobile")]
    assert alternate.status is Status.SKIPPED and "mobile (row 2) failed first" in alternate.error
    assert tenant.writes == []


def test_missing_write_permission_stops_the_run_with_one_message(tenant, clock, write_file):
    tenant.tokens["reader"] = Principal(frozenset({"UserAuthenticationMethod.Read.All"}))
    for user in (ANN, BOB):
        tenant.add_user(user)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n{BOB},+1 425 555 0101\n")
    result = bulkphone.apply(path, client=make_client(tenant, clock, token="reader"))
    assert "UserAuthenticationMethod.ReadWrite.All" in result.stopped
    statuses = [result.outcomes[(row, "mobile")].status for row in (2, 3)]
    assert statuses == [Status.FAILED, Status.SKIPPED]
    assert sum(1 for r in tenant.requests if r[0] == "POST") == 1
    assert tenant.writes == []


def test_missing_read_permission_fails_the_plan_before_any_row(tenant, clock, write_file):
    tenant.tokens["nothing"] = Principal(frozenset())
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    with pytest.raises(bulkphone.ForbiddenError, match="UserAuthenticationMethod.Read.All"):
        bulkphone.plan(path, client=make_client(tenant, clock, token="nothing"))


def test_duplicate_mobile_is_ok_with_a_warning(tenant, client, write_file):
    tenant.add_user(ANN)
    tenant.add_user(BOB, {"mobile": "+1 4255550100"})
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    row = result_rows(bulkphone.apply(path, client=client))[0]
    assert row["status"] == "ok" and row["smsSignInState"] == "phoneNumberNotUnique"
    assert row["warning"].startswith("phoneNumberNotUnique")


def test_duplicate_mobile_warning_survives_a_lost_response(tenant, client, write_file):
    tenant.add_user(ANN)
    tenant.add_user(BOB, {"mobile": "+1 4255550100"})
    tenant.fail_next(DROP_AFTER, "POST")
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    row = result_rows(bulkphone.apply(path, client=client))[0]
    assert row["reconciled"] == "yes" and row["smsSignInState"] == "phoneNumberNotUnique" and row["warning"]


def test_updating_a_mobile_reads_back_its_sms_state(tenant, client, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    tenant.add_user(BOB, {"mobile": "+1 4255550100"})
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    row = result_rows(bulkphone.apply(path, client=client))[0]
    assert row["action"] == "update" and row["smsSignInState"] == "phoneNumberNotUnique" and row["warning"]


def test_sync_moves_a_number_between_types_without_losing_it(tenant, client, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550100", "alternateMobile": "+1 4255550101"})
    path = write_file("in.csv", f"user,mobile,alternateMobile,office\n{ANN},+1 425 555 0101,,+1 425 555 0100\n")
    bulkphone.apply(path, client=client, mode="sync")
    assert tenant.state()[ANN] == {"mobile": "+1 4255550101", "office": "+1 4255550100"}
    assert [w["kind"] + ":" + w["phoneType"] for w in tenant.writes] == ["update:mobile", "create:office", "delete:alternateMobile"]


def test_create_only_leaves_existing_numbers(tenant, client, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    path = write_file("in.csv", f"user,mobile,office\n{ANN},+1 425 555 0100,+1 425 555 0199\n")
    bulkphone.apply(path, client=client, mode="create-only")
    assert tenant.state()[ANN] == {"mobile": "+1 4255550000", "office": "+1 4255550199"}


def test_fresh_user_is_retried_and_unknown_user_is_reported(tenant, client, write_file):
    tenant.add_user(ANN, fresh_requests=2)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\nghost@contoso.com,+1 425 555 0101\n")
    rows = result_rows(bulkphone.apply(path, client=client))
    assert [(r["user"], r["action"], r["status"]) for r in rows] == [
        (ANN, "create", "ok"),
        ("ghost@contoso.com", "skip", "skipped"),
    ]
    assert rows[1]["error"].startswith("user not found")
    assert tenant.state() == {ANN: {"mobile": "+1 4255550100"}}


def test_masked_numbers_are_never_overwritten(tenant, clock, write_file):
    tenant.tokens["admin"] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All"}), delegated=True)
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    rows = result_rows(bulkphone.apply(path, client=make_client(tenant, clock, token="admin")))
    assert rows[0]["action"] == "skip" and "masked" in rows[0]["error"]
    assert tenant.writes == []


def test_every_input_row_is_in_the_report_exactly_once(tenant, client, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    path = write_file(
        "in.csv",
        f"""
        user,mobile,office,region
        {ANN},+1 425 555 0100,,US
        {ANN},+1 425 555 0101,,US
        bad@contoso.com,12,,GB
        ,+1 425 555 0102,,
        ghost@contoso.com,+1 425 555 0103,,
        """,
    )
    rows = result_rows(bulkphone.apply(path, client=client))
    keys = [(r["row"], r["phoneType"]) for r in rows]
    assert sorted(keys) == sorted((row, t) for row in range(2, 7) for t in ("mobile", "office"))
    assert all(r["status"] in ("ok", "failed", "skipped") for r in rows)
    assert all(r["error"] for r in rows if r["phoneType"] == "mobile")  # each mobile row has a problem to fix
    assert tenant.writes == []


def test_over_a_real_loopback_socket_with_faults(tmp_path):
    tenant = SimTenant(faults=Faults(error_503=0.1, drop_before=0.05, drop_after=0.1, seed=11))
    users = [f"user{i}@contoso.com" for i in range(30)]
    for user in users:
        tenant.add_user(user)
    expected = {u: {"mobile": f"+1 42555501{i:02d}", "office": f"+1 42555502{i:02d}"} for i, u in enumerate(users)}
    path = tmp_path / "in.csv"
    path.write_text("user,mobile,office\n" + "".join(f"{u},{n['mobile']},{n['office']}\n" for u, n in expected.items()))
    policy = RetryPolicy(initial_wait=0.01, max_wait=0.05, attempts=8, clock=SystemClock())
    with serve(tenant) as url:
        with bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url=url, policy=policy, max_writes_per_second=1000) as client:
            result = bulkphone.apply(path, client=client)
            again = bulkphone.apply(path, client=client)
    assert tenant.state() == expected
    assert len(tenant.writes) == 60  # no duplicate or unneeded write despite the faults
    assert tenant.injected[DROP_AFTER] > 0 and result.stats["reconciled"] > 0
    assert all(o.status is Status.OK for o in result.outcomes.values())
    assert again.plan.write_count == 0


def test_a_403_for_one_user_after_others_succeeded_fails_only_that_row(tenant, clock, write_file):
    tenant.tokens["admin"] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All"}), delegated=True, upn=BOB)
    for user in (ANN, BOB, "cy@contoso.com"):
        tenant.add_user(user)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n{BOB},+1 425 555 0101\ncy@contoso.com,+1 425 555 0102\n")
    result = bulkphone.apply(path, client=make_client(tenant, clock, token="admin"))
    assert result.stopped == ""
    assert [result.outcomes[(row, "mobile")].status for row in (2, 3, 4)] == [Status.OK, Status.FAILED, Status.OK]
    assert "own account" in result.outcomes[(3, "mobile")].error
    assert set(tenant.state()) == {ANN, BOB, "cy@contoso.com"} and tenant.state()[BOB] == {}


def test_ctrl_c_stops_cleanly_and_accounts_for_every_row(tenant, client, write_file, monkeypatch):
    for user in (ANN, BOB):
        tenant.add_user(user)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n{BOB},+1 425 555 0101\n")
    plan = bulkphone.plan(path, client=client)
    real_create = client.create_phone_method

    def create_then_interrupt(user, *args):
        if user == BOB:
            raise KeyboardInterrupt
        return real_create(user, *args)

    monkeypatch.setattr(client, "create_phone_method", create_then_interrupt)
    result = bulkphone.apply(plan, client=client)
    assert result.stopped.startswith("interrupted")
    assert [result.outcomes[(row, "mobile")].status for row in (2, 3)] == [Status.OK, Status.FAILED]
    assert tenant.state() == {ANN: {"mobile": "+1 4255550100"}, BOB: {}}
