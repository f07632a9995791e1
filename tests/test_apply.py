"""plan and apply end to end against the simulated tenant: outcomes, not just that code ran."""

import asyncio

import pytest
from conftest import make_connection

import bulkphone
from bulkphone._clock import SystemClock
from bulkphone._model import Action, Status
from bulkphone._report import result_rows
from bulkphone._retry import RetryPolicy
from bulkphone.sim import APP_TOKEN, DROP_AFTER, DROP_BEFORE, Faults, Principal, SimTenant, serve

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


def users_with_a_new_mobile(tenant, write_file, count):
    users = [f"user{i}@contoso.com" for i in range(count)]
    for user in users:
        tenant.add_user(user)
    return write_file("in.csv", "user,mobile\n" + "".join(f"{u},+1 425 555 {i:04d}\n" for i, u in enumerate(users)))


def test_plan_reads_but_never_writes(tenant, connection, phones, regions):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    tenant.add_user(BOB)
    plan = bulkphone.plan(phones, connection=connection, users=regions)
    assert tenant.writes == []
    assert {(method, path.endswith("$batch")) for method, path, _ in tenant.requests} == {("POST", True)}
    assert [(i.user, i.phone_type, i.action) for i in plan.items if i.action.writes] == [
        (ANN, "mobile", Action.UPDATE),
        (ANN, "alternateMobile", Action.CREATE),
        (ANN, "office", Action.CREATE),
        (BOB, "mobile", Action.CREATE),
    ]


def test_apply_reaches_the_desired_state_and_a_second_apply_writes_nothing(tenant, connection, phones, regions):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    tenant.add_user(BOB)
    result = bulkphone.apply(phones, connection=connection, users=regions)
    assert tenant.state() == {
        ANN: {"mobile": "+1 4255550100", "alternateMobile": "+1 4255550101", "office": "+1 4255550199x12"},
        BOB: {"mobile": "+44 2079460958"},
    }
    assert len(tenant.writes) == 4
    assert all(o.status is Status.OK for o in result.outcomes.values())

    again = bulkphone.apply(phones, connection=connection, users=regions)
    assert len(tenant.writes) == 4
    assert {item.action for item in again.plan.items} == {Action.NOOP}


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_a_response_lost_after_the_write_causes_no_second_write(tenant, connection, write_file, method):
    tenant.add_user(ANN, {"office": "+1 4255550000"})
    number = {"POST": "+1 425 555 0100", "PATCH": "", "DELETE": ""}[method]
    office = {"POST": "+1 4255550000", "PATCH": "+1 425 555 0199", "DELETE": ""}[method]
    path = write_file("in.csv", f"user,mobile,office\n{ANN},{number},{office}\n")
    tenant.fail_next(DROP_AFTER, method)
    result = bulkphone.apply(path, connection=connection, mode="sync", default_region="US")
    assert len(tenant.writes) == 1
    changed = [item for item in result.plan.items if item.action.writes]
    assert len(changed) == 1
    outcome = result.outcome(changed[0])
    assert outcome.status is Status.OK and outcome.reconciled
    assert result.stats["reconciled"] == 1
    expected = {"POST": {"mobile": "+1 4255550100", "office": "+1 4255550000"}, "PATCH": {"office": "+1 4255550199"}, "DELETE": {}}
    assert tenant.state()[ANN] == expected[method]


@pytest.mark.parametrize("fault", [DROP_BEFORE, "503", "500"])
def test_a_write_that_did_not_happen_is_written_once_after_reading_back(tenant, connection, write_file, fault):
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    tenant.fail_next(fault, "POST")
    result = bulkphone.apply(path, connection=connection)
    assert tenant.writes == [{"kind": "create", "user": ANN, "phoneType": "mobile", "phoneNumber": "+1 4255550100"}]
    outcome = result.outcomes[(2, "mobile")]
    assert outcome.status is Status.OK and outcome.attempts == 2 and not outcome.reconciled
    read_backs = [r for r in tenant.requests if r[0] == "GET"]
    assert len(read_backs) == 1  # the plan read in a batch; one read-back before writing again


def test_throttled_writes_wait_as_told_and_all_land(clock, write_file):
    tenant = SimTenant(clock=clock, faults=Faults(writes_per_second=2))
    path = users_with_a_new_mobile(tenant, write_file, 12)
    connection = make_connection(tenant, clock)
    result = bulkphone.apply(path, connection=connection)
    assert all(o.status is Status.OK for o in result.outcomes.values())
    assert len(tenant.writes) == 12
    assert result.stats["throttled"] > 0
    assert connection.limiter.paused_seconds > 0


def test_default_method_delete_is_reported_not_looped(tenant, connection, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550100", "office": "+1 4255550199"}, default_method="mobile")
    path = write_file("in.csv", f"user,mobile\n{ANN},\n")
    result = bulkphone.apply(path, connection=connection, mode="sync")
    outcome = result.outcomes[(2, "mobile")]
    assert outcome.status is Status.FAILED
    assert "default sign-in method" in outcome.error and "give the user another default in the defaultMethod column" in outcome.error
    assert outcome.http_status == 400 and outcome.request_id
    assert sum(1 for r in tenant.requests if r[0] == "DELETE") == 1
    assert tenant.state()[ANN] == {"mobile": "+1 4255550100", "office": "+1 4255550199"}


def test_the_default_method_is_deleted_when_it_is_the_last_one(tenant, connection, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550100"}, default_method="mobile")
    path = write_file("in.csv", f"user,mobile\n{ANN},\n")
    result = bulkphone.apply(path, connection=connection, mode="sync")
    assert result.outcomes[(2, "mobile")].status is Status.OK
    assert tenant.state()[ANN] == {}


def test_after_a_failed_change_the_users_later_changes_are_not_attempted(tenant, connection, write_file):
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile,alternateMobile\n{ANN},+1 425 555 0100,+1 425 555 0101\n")
    plan = bulkphone.plan(path, connection=connection)
    tenant.users[next(iter(tenant.users))].methods["mobile"] = "+1 4255559999"  # someone else got there first
    result = bulkphone.apply(plan, connection=connection)
    assert result.outcomes[(2, "mobile")].status is Status.FAILED
    assert "mobile now holds +1 4255559999" in result.outcomes[(2, "mobile")].error
    alternate = result.outcomes[(2, "alternateMobile")]
    assert alternate.status is Status.SKIPPED and "mobile (row 2) failed first" in alternate.error
    assert tenant.writes == []


def test_missing_write_permission_stops_the_run_after_a_few_users(tenant, clock, write_file):
    tenant.tokens["reader"] = Principal(frozenset({"UserAuthenticationMethod.Read.All"}))
    path = users_with_a_new_mobile(tenant, write_file, 6)
    result = bulkphone.apply(path, connection=make_connection(tenant, clock, token="reader", max_concurrency=1))
    assert "no write has succeeded" in result.stopped and "UserAuthenticationMethod.ReadWrite.All" in result.stopped
    statuses = [result.outcomes[(row, "mobile")].status for row in range(2, 8)]
    assert statuses == [Status.FAILED] * 3 + [Status.SKIPPED] * 3
    assert sum(1 for r in tenant.requests if r[0] == "POST" and not r[1].endswith("$batch")) == 3
    assert tenant.writes == []


def test_with_many_workers_a_missing_permission_still_stops_early(tenant, clock, write_file):
    tenant.tokens["reader"] = Principal(frozenset({"UserAuthenticationMethod.Read.All"}))
    path = users_with_a_new_mobile(tenant, write_file, 100)
    result = bulkphone.apply(path, connection=make_connection(tenant, clock, token="reader", max_concurrency=8))
    assert result.stopped
    attempted = sum(1 for r in tenant.requests if r[0] == "POST" and not r[1].endswith("$batch"))
    assert attempted <= 8 + 3
    assert sum(o.status is Status.SKIPPED for o in result.outcomes.values()) >= 100 - attempted


def test_missing_read_permission_fails_the_plan_before_any_row(tenant, clock, write_file):
    tenant.tokens["nothing"] = Principal(frozenset())
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    with pytest.raises(bulkphone.ForbiddenError, match="UserAuthenticationMethod.Read.All"):
        bulkphone.plan(path, connection=make_connection(tenant, clock, token="nothing"))


def test_duplicate_mobile_is_ok_with_a_warning(tenant, connection, write_file):
    tenant.add_user(ANN)
    tenant.add_user(BOB, {"mobile": "+1 4255550100"})
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    row = result_rows(bulkphone.apply(path, connection=connection))[0]
    assert row["status"] == "ok" and row["smsSignInState"] == "phoneNumberNotUnique"
    assert row["warning"].startswith("phoneNumberNotUnique")


def test_duplicate_mobile_warning_survives_a_lost_response(tenant, connection, write_file):
    tenant.add_user(ANN)
    tenant.add_user(BOB, {"mobile": "+1 4255550100"})
    tenant.fail_next(DROP_AFTER, "POST")
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    row = result_rows(bulkphone.apply(path, connection=connection))[0]
    assert row["reconciled"] == "yes" and row["smsSignInState"] == "phoneNumberNotUnique" and row["warning"]


def test_updating_a_mobile_reads_back_its_sms_state(tenant, connection, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    tenant.add_user(BOB, {"mobile": "+1 4255550100"})
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    row = result_rows(bulkphone.apply(path, connection=connection))[0]
    assert row["action"] == "update" and row["smsSignInState"] == "phoneNumberNotUnique" and row["warning"]


def test_sync_moves_a_number_between_types_without_losing_it(tenant, connection, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550100", "alternateMobile": "+1 4255550101"})
    path = write_file("in.csv", f"user,mobile,alternateMobile,office\n{ANN},+1 425 555 0101,,+1 425 555 0100\n")
    bulkphone.apply(path, connection=connection, mode="sync")
    assert tenant.state()[ANN] == {"mobile": "+1 4255550101", "office": "+1 4255550100"}
    assert [w["kind"] + ":" + w["phoneType"] for w in tenant.writes] == ["update:mobile", "create:office", "delete:alternateMobile"]


def test_create_only_leaves_existing_numbers(tenant, connection, write_file):
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    path = write_file("in.csv", f"user,mobile,office\n{ANN},+1 425 555 0100,+1 425 555 0199\n")
    bulkphone.apply(path, connection=connection, mode="create-only")
    assert tenant.state()[ANN] == {"mobile": "+1 4255550000", "office": "+1 4255550199"}


def test_fresh_user_is_waited_for_and_unknown_user_is_reported(tenant, connection, write_file):
    tenant.add_user(ANN, replicating_for=40)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\nghost@contoso.com,+1 425 555 0101\n")
    rows = result_rows(bulkphone.apply(path, connection=connection))
    assert [(r["user"], r["action"], r["status"]) for r in rows] == [
        (ANN, "create", "ok"),
        ("ghost@contoso.com", "create", "skipped"),
    ]
    assert rows[1]["error"].startswith("user not found: Graph still answered 404 after waiting 120 s")
    assert tenant.state() == {ANN: {"mobile": "+1 4255550100"}}


def test_masked_numbers_are_never_overwritten(tenant, clock, write_file):
    tenant.tokens["admin"] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All"}), delegated=True)
    tenant.add_user(ANN, {"mobile": "+1 4255550000"})
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    rows = result_rows(bulkphone.apply(path, connection=make_connection(tenant, clock, token="admin")))
    assert rows[0]["action"] == "skip" and "masked" in rows[0]["error"]
    assert tenant.writes == []


def test_every_input_row_is_in_the_report_exactly_once(tenant, connection, write_file):
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
    rows = result_rows(bulkphone.apply(path, connection=connection))
    keys = [(r["row"], r["phoneType"]) for r in rows]
    assert sorted(keys) == sorted((row, t) for row in range(2, 7) for t in ("mobile", "office"))
    assert all(r["status"] in ("ok", "failed", "skipped") for r in rows)
    assert all(r["error"] for r in rows if r["phoneType"] == "mobile")  # each mobile row has a problem to fix
    assert tenant.writes == []


def test_over_a_real_loopback_socket_with_faults(tmp_path):
    tenant = SimTenant(faults=Faults(error_429=0.03, error_503=0.1, drop_before=0.05, drop_after=0.1, retry_after=0.01, seed=11))
    users = [f"user{i}@contoso.com" for i in range(60)]
    for user in users:
        tenant.add_user(user)
    expected = {u: {"mobile": f"+1 42555501{i:02d}", "office": f"+1 42555502{i:02d}"} for i, u in enumerate(users)}
    path = tmp_path / "in.csv"
    path.write_text("user,mobile,office\n" + "".join(f"{u},{n['mobile']},{n['office']}\n" for u, n in expected.items()))
    policy = RetryPolicy(initial_wait=0.01, max_wait=0.05, attempts=8, clock=SystemClock())
    with serve(tenant) as url:
        connection = bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url=url, policy=policy, max_writes_per_second=1000)
        result = bulkphone.apply(path, connection=connection)
        again = bulkphone.apply(path, connection=connection)
    assert tenant.state() == expected
    assert len(tenant.writes) == 120  # no duplicate or unneeded write despite the faults
    assert tenant.injected[DROP_AFTER] > 0 and result.stats["reconciled"] > 0
    assert all(o.status is Status.OK for o in result.outcomes.values())
    assert again.plan.write_count == 0


def test_a_403_for_one_protected_user_fails_only_that_row(tenant, clock, write_file):
    tenant.tokens["admin"] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All"}), delegated=True, upn=BOB)
    for user in (ANN, BOB, "cy@contoso.com"):
        tenant.add_user(user)
    path = write_file("in.csv", f"user,mobile\n{BOB},+1 425 555 0101\n{ANN},+1 425 555 0100\ncy@contoso.com,+1 425 555 0102\n")
    result = bulkphone.apply(path, connection=make_connection(tenant, clock, token="admin"))
    assert result.stopped == ""
    assert [result.outcomes[(row, "mobile")].status for row in (2, 3, 4)] == [Status.FAILED, Status.OK, Status.OK]
    assert "this user is protected" in result.outcomes[(2, "mobile")].error
    assert tenant.state()[BOB] == {}


def test_stop_request_ends_the_run_cleanly_and_accounts_for_every_row(tenant, connection, write_file):
    path = users_with_a_new_mobile(tenant, write_file, 10)
    connection.max_concurrency = 2

    async def go():
        stop = asyncio.Event()

        def progress(snapshot):
            if snapshot.done >= 3:
                stop.set()  # what Ctrl-C and SIGTERM do in the CLI

        return await bulkphone.apply_async(path, connection=connection, stop=stop, progress=progress)

    result = asyncio.run(go())
    assert result.stopped == "interrupted"
    statuses = [result.outcomes[(row, "mobile")].status for row in range(2, 12)]
    assert statuses.count(Status.OK) == len(tenant.writes) >= 3
    assert statuses.count(Status.OK) + statuses.count(Status.SKIPPED) == 10
    assert all("resume" in o.error for o in result.outcomes.values() if o.status is Status.SKIPPED)
