"""The directory as the source (issue 17): target groups (nested), numbers from users' own
attributes, and only the users who haven't registered for MFA. Against the simulated tenant."""

import asyncio
import csv
import time

import pytest
from click.testing import CliRunner

import bulkphone
from bulkphone.cli import main
from bulkphone.sim import APP_TOKEN, Principal, SimTenant, serve

from authority import make_jwt
from conftest import make_connection

DIRECTORY_APP = frozenset({"UserAuthenticationMethod.ReadWrite.All", "GroupMember.Read.All", "User.Read.All",
                           "AuditLog.Read.All"})


@pytest.fixture
def org(tenant):
    """New hires: ann (GB, national mobile), a nested group with bob (US, office with extension),
    cy (no phone attributes) and a device; dee is in no group. eve already has the Authenticator app."""
    tenant.tokens[APP_TOKEN] = Principal(DIRECTORY_APP)
    people = {
        "ann": tenant.add_user("ann@contoso.com", mobile_phone="07911 123456", usage_location="GB"),
        "bob": tenant.add_user("bob@contoso.com", business_phones=["(425) 555-0100 x123"], usage_location="US"),
        "cy": tenant.add_user("cy@contoso.com", usage_location="FR"),
        "dee": tenant.add_user("dee@contoso.com", mobile_phone="+33 6 12 34 56 78"),
        "eve": tenant.add_user("eve@contoso.com", mobile_phone="0412 345 678", usage_location="AU",
                               other_methods=["microsoftAuthenticator"]),
    }
    paris = tenant.add_group("New hires (Paris)", [people["bob"], people["cy"], "a-device-object-id"])
    tenant.add_group("New hires", [people["ann"], paris, people["eve"]])
    return people


def rows_of(plan):
    return {(item.user.split("@")[0], item.phone_type): (item.action.value, item.number, item.error or item.note) for item in plan.items}


def test_a_groups_nested_user_members_are_planned_from_their_own_attributes(org, connection):
    plan = bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["New hires"])
    rows = rows_of(plan)
    # A GB user's national number, normalised with her usageLocation; an office extension kept.
    assert rows[("ann", "mobile")][:2] == ("create", "+44 7911123456")
    assert rows[("bob", "office")][:2] == ("create", "+1 4255550100x123")
    assert rows[("eve", "mobile")][:2] == ("create", "+61 412345678")
    # A member with nothing to provision is a row left out, with why; no user outside the group; no device.
    assert rows[("cy", "mobile")][0] == "skip" and "holds no mobilePhone or businessPhones" in rows[("cy", "mobile")][2]
    assert {user for user, _ in rows} == {"ann", "bob", "cy", "eve"}
    # A blank attribute is never a delete, and nothing is written by a plan.
    assert not any(action == "delete" for action, _, _ in rows.values())


def test_an_app_that_reads_only_basic_profiles_is_told_why_nobody_has_a_number(org, tenant, connection):
    # Graph answers mobilePhone and businessPhones empty, not refused, to such an app; an opaque
    # token gives preflight no roles to check, so the rows must say it.
    tenant.tokens[APP_TOKEN] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All", "GroupMember.Read.All",
                                                    "User.ReadBasic.All"}))
    result = bulkphone.apply(bulkphone.FromDirectory(), connection=connection, groups=["New hires"])
    assert tenant.writes == []
    reasons = {item.note for item in result.plan.items}
    assert len(reasons) == 1 and [item.action.value for item in result.plan.items] == ["skip"] * 4
    assert "no user of this run has one" in reasons.pop()
    # With the permission, the one user without numbers gets the plain reason.
    tenant.tokens[APP_TOKEN] = Principal(DIRECTORY_APP)
    plain = rows_of(bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["New hires"]))
    assert plain[("cy", "mobile")][2] == "the directory holds no mobilePhone or businessPhones for this user: nothing to provision"


def test_a_group_filters_an_input_file_like_a_users_file(org, connection, write_file):
    source = write_file("in.csv", "user,mobile\nann@contoso.com,+44 7911 000001\ndee@contoso.com,+33 6 00 00 00 01\n"
                                  "bob@contoso.com,425 555 0101\n")
    plan = bulkphone.plan(source, connection=connection, groups=["new HIRES"])  # the directory compares without case
    rows = rows_of(plan)
    assert rows[("ann", "mobile")][0] == "create"
    assert rows[("dee", "mobile")][0] == "skip" and "not a member of 'new HIRES'" in rows[("dee", "mobile")][2]
    # bob's row gives no region: his usageLocation (US) reads the national number.
    assert rows[("bob", "mobile")][:2] == ("create", "+1 4255550101")


def test_groups_are_a_union_and_a_group_is_named_by_object_id(org, tenant, connection, write_file):
    solo = tenant.add_group("Pilot", [org["dee"]])
    source = write_file("in.csv", "user,mobile\nann@contoso.com,+44 7911 000001\ndee@contoso.com,+33 6 00 00 00 01\n"
                                  "cy@contoso.com,+33 6 00 00 00 02\n")
    rows = rows_of(bulkphone.plan(source, connection=connection, groups=["New hires (Paris)", solo.id]))
    assert {user: action for (user, _), (action, _, _) in rows.items()} == {"ann": "skip", "dee": "create", "cy": "create"}


def test_a_name_that_finds_several_groups_or_none_is_refused_with_the_candidates(org, tenant, connection):
    twin = tenant.add_group("New hires", [])
    with pytest.raises(bulkphone.InputError) as several:
        bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["New hires"])
    assert "2 groups are named 'New hires'" in str(several.value) and twin.id in str(several.value)
    with pytest.raises(bulkphone.InputError) as none:
        bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["New"])
    assert "no group is named 'New'" in str(none.value) and "'New hires (Paris)'" in str(none.value)
    with pytest.raises(bulkphone.InputError, match="no group has the object id"):
        bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["0d1c7e6a-0000-4000-8000-00000000dead"])
    assert tenant.writes == []


def test_only_unregistered_users_are_provisioned_and_the_others_are_reported(org, tenant, clock):
    tenant.tokens["no-audit"] = Principal(DIRECTORY_APP - {"AuditLog.Read.All"})
    with_report = make_connection(tenant, clock)
    without_report = make_connection(tenant, clock, token="no-audit")
    verdicts = []
    for connection, premium in ((with_report, True), (without_report, True), (with_report, False)):
        tenant.premium = premium
        plan = bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["New hires"], only_unregistered=True)
        rows = rows_of(plan)
        verdicts.append({user: action for (user, _), (action, _, _) in rows.items()})
        assert rows[("eve", "mobile")][0] == "skip"
        assert "already registered for MFA (microsoftAuthenticator" in rows[("eve", "mobile")][2]
        source = "the registration report" if connection is with_report and premium else "the user's methods"
        assert source in rows[("eve", "mobile")][2]
    # The report and the fallback agree.
    assert verdicts[0] == verdicts[1] == verdicts[2] == {"ann": "create", "bob": "create", "cy": "skip", "eve": "skip"}


def test_a_nightly_job_over_a_group_writes_only_what_changed_on_its_second_run(org, tmp_path):
    tenant = SimTenant()
    tenant.tokens[APP_TOKEN] = Principal(DIRECTORY_APP)
    for person in org.values():
        tenant.add(person)
    hires = tenant.add_group("New hires", [org["ann"], org["bob"], org["eve"]])
    with serve(tenant) as url:
        job = tmp_path / "nightly.toml"
        job.write_text(f"""
[job]
name = "new hires, nightly"
[input]
from_directory = true
group = ["New hires"]
only_unregistered = true
[connection]
auth = "token"
graph_url = "{url}"
[report]
folder = "reports"
""", encoding="utf-8")
        env = {"BULKPHONE_ACCESS_TOKEN": APP_TOKEN}
        first = CliRunner().invoke(main, ["run", str(job), "--apply"], env=env)
        assert first.exit_code == 0, first.output
        assert sorted((w["user"], w["phoneType"]) for w in tenant.writes) == [
            ("ann@contoso.com", "mobile"), ("bob@contoso.com", "office")]
        # A new hire joins overnight; ann's HR number changes (she is registered now: left alone).
        fay = tenant.add_user("fay@contoso.com", mobile_phone="06 12 34 56 78", usage_location="FR")
        hires.members.append(fay.id)
        org["ann"].mobile_phone = "07911 654321"
        second = CliRunner().invoke(main, ["run", str(job), "--apply"], env=env)
        assert second.exit_code == 0, second.output + (tmp_path / "reports" / "results.csv").read_text()
        assert [(w["user"], w["phoneType"], w["phoneNumber"]) for w in tenant.writes[2:]] == [
            ("fay@contoso.com", "mobile", "+33 612345678")]
        with open(tmp_path / "reports" / "results.csv", newline="", encoding="utf-8") as handle:
            report = {row["user"]: row for row in csv.DictReader(handle)}
        assert report["ann@contoso.com"]["action"] == "skip" and "already registered" in report["ann@contoso.com"]["note"]


def test_export_takes_a_groups_members(org, tenant, connection, tmp_path):
    org["bob"].methods["office"] = "+1 4255550100"
    org["dee"].methods["mobile"] = "+33 612345678"
    run = asyncio.run(bulkphone.export_to_report(tmp_path / "export.csv", connection=connection, groups=["New hires (Paris)"],
                                     include_empty=True))
    with open(run.report, newline="", encoding="utf-8") as handle:
        exported = {row["user"]: row["office"] for row in csv.DictReader(handle)}
    assert exported == {"bob@contoso.com": "+1 4255550100", "cy@contoso.com": ""}


def test_sync_is_refused_for_an_input_from_the_directory(org, tenant, connection):
    with pytest.raises(bulkphone.InputError, match="isn't a request to delete"):
        bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["New hires"], mode="sync")


def test_an_input_from_the_directory_needs_to_know_whom(org, connection):
    with pytest.raises(bulkphone.InputError, match="needs whom to take"):
        bulkphone.plan(bulkphone.FromDirectory(), connection=connection)


def test_fields_can_be_mapped_differently(org, connection):
    fields = bulkphone.directory_fields("mobilePhone=mobile")
    rows = rows_of(bulkphone.plan(bulkphone.FromDirectory(fields), connection=connection, groups=["New hires"]))
    assert ("bob", "office") not in rows and rows[("bob", "mobile")][0] == "skip"
    with pytest.raises(bulkphone.InputError, match="ATTRIBUTE=TYPE"):
        bulkphone.directory_fields("faxNumber=office")


def test_missing_permissions_are_named_with_the_fix_before_anything_is_read(org, tenant, tmp_path):
    token = make_jwt({"aud": "https://graph.microsoft.com", "exp": time.time() + 3600,
                      "roles": ["UserAuthenticationMethod.ReadWrite.All"]})
    with serve(tenant) as url:
        result = CliRunner().invoke(main, ["plan", "--from-directory", "--group", "New hires", "--report",
                                           str(tmp_path / "plan.csv"), "--graph-url", url],
                                    env={"BULKPHONE_ACCESS_TOKEN": token})
    assert result.exit_code == 2
    assert "GroupMember.Read.All" in result.output and "User.Read.All" in result.output and "Fix:" in result.output
    assert not any(path.startswith("/v1.0/groups") for _, path, _ in tenant.requests)


def cli(url, *args):
    return CliRunner().invoke(main, [str(a) for a in args] + ["--graph-url", url], env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})


def test_the_cli_refuses_an_ambiguous_group_with_exit_2_and_plans_a_clear_one(org, tenant, tmp_path):
    twin = tenant.add_group("New hires (Paris)", [])
    with serve(tenant) as url:
        ambiguous = cli(url, "plan", "--from-directory", "--group", "new hires (paris)", "--report", tmp_path / "a.csv")
        assert ambiguous.exit_code == 2
        assert "2 groups are named 'new hires (paris)'" in ambiguous.output and twin.id in ambiguous.output
        assert "--group" in ambiguous.output and not (tmp_path / "a.csv").exists()
        planned = cli(url, "plan", "--from-directory", "--group", "New hires", "--only-unregistered",
                      "--report", tmp_path / "plan.csv")
    assert planned.exit_code == 0, planned.output
    with open(tmp_path / "plan.csv", newline="", encoding="utf-8") as handle:
        rows = {(row["user"], row["phoneType"]): row for row in csv.DictReader(handle)}
    assert rows[("ann@contoso.com", "mobile")]["phoneNumber"] == "+44 7911123456"
    assert rows[("ann@contoso.com", "mobile")]["raw"] == "07911 123456" and rows[("ann@contoso.com", "mobile")]["region"] == "GB"
    assert rows[("eve@contoso.com", "mobile")]["action"] == "skip"
    assert tenant.writes == []


@pytest.mark.parametrize("args, message", [
    (["plan", "in.csv", "--from-directory", "--group", "g"], "give no INPUT"),
    (["plan", "--group", "g"], "give INPUT (a CSV or .xlsx) to plan, or --from-directory"),
    (["plan", "in.csv", "--all"], "--directory-fields and --all go with --from-directory"),
    (["apply", "--from-directory", "--plan", "plan.csv"], "give no INPUT (or --plan)"),
    (["plan", "--from-directory", "--directory-fields", "mobilePhone=pager", "--group", "g"], "--directory-fields: 'mobilePhone=pager'"),
    (["export", "--all", "--group", "g"], "or --all for every user"),
])
def test_directory_options_that_make_no_sense_are_usage_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, args + ["--report", str(tmp_path / "r.csv")], env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})
    assert result.exit_code == 2 and message in result.output, result.output


def test_apply_from_the_directory_twice_writes_nothing_the_second_time(org, tenant, connection):
    first = bulkphone.apply(bulkphone.FromDirectory(), connection=connection, groups=["New hires"])
    assert sorted((w["user"], w["phoneType"], w["phoneNumber"]) for w in tenant.writes) == [
        ("ann@contoso.com", "mobile", "+44 7911123456"), ("bob@contoso.com", "office", "+1 4255550100x123"),
        ("eve@contoso.com", "mobile", "+61 412345678")]
    assert {first.outcome(item).status.value for item in first.plan.items} == {"ok", "skipped"}
    again = bulkphone.apply(bulkphone.FromDirectory(), connection=connection, groups=["New hires"])
    assert len(tenant.writes) == 3 and {item.action.value for item in again.plan.items} == {"noop", "skip"}


def test_from_directory_takes_a_users_file_or_every_user(org, tenant, connection, write_file):
    users = write_file("users.csv", "user,region\nann@contoso.com,\ndee@contoso.com,FR\nnobody@contoso.com,\n")
    rows = rows_of(bulkphone.plan(bulkphone.FromDirectory(), connection=connection, users=users))
    assert rows[("ann", "mobile")][:2] == ("create", "+44 7911123456")
    assert rows[("dee", "mobile")][:2] == ("create", "+33 612345678")
    assert rows[("nobody", "mobile")][0] == "skip" and "not found in the directory" in rows[("nobody", "mobile")][2]
    everyone = rows_of(bulkphone.plan(bulkphone.FromDirectory(everyone=True), connection=connection))
    assert {user for user, _ in everyone} == {"ann", "bob", "cy", "dee", "eve"}


def test_a_user_who_registered_a_phone_since_the_report_was_refreshed_is_left_out_too(org, tenant, connection):
    org["ann"].methods["mobile"] = "+44 7911000999"  # she registered her own phone this morning
    tenant.report_lags_for.add(org["ann"].id)
    rows = rows_of(bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["New hires"],
                                  only_unregistered=True))
    assert rows[("ann", "mobile")][0] == "skip"
    assert "already registered for MFA (mobile; from their phone methods read now)" in rows[("ann", "mobile")][2]
    assert rows[("bob", "office")][0] == "create"


def test_in_sync_mode_a_group_leaves_non_members_and_ambiguous_cells_alone(org, tenant, connection, write_file):
    org["dee"].methods["mobile"] = "+33 612345678"  # not in the group: her blank cell must not delete
    org["ann"].methods.update({"mobile": "+44 7911000001", "office": "+44 2079460001"})
    source = write_file("in.csv", "user,mobile,office\n"
                                  "dee@contoso.com,,\n"
                                  "ann@contoso.com,N/A,\n"
                                  "bob@contoso.com,=A1,\n"
                                  "cy@contoso.com\n")
    result = bulkphone.apply(source, connection=connection, groups=["New hires"], mode="sync")
    outcome = {(item.user.split("@")[0], item.phone_type): item.action.value for item in result.plan.items}
    assert outcome[("dee", "mobile")] == "skip"
    assert [(w["kind"], w["user"], w["phoneType"]) for w in tenant.writes] == [("delete", "ann@contoso.com", "office")]
    assert tenant.state()["dee@contoso.com"] == {"mobile": "+33 612345678"}
    assert tenant.state()["ann@contoso.com"] == {"mobile": "+44 7911000001"}  # a placeholder is never a delete


def test_check_says_what_a_directory_run_will_meet_before_it_runs(org, tenant):
    run = ("check", "--read-only", "--group", "New hires", "--from-directory", "--only-unregistered")
    with serve(tenant) as url:
        ready = cli(url, *run)
        assert ready.exit_code == 0, ready.output
        assert "group 'New hires': 4 users (nested groups included), 3 with a mobilePhone or businessPhones" in ready.output
        assert "the registration report can be read" in ready.output
        tenant.premium = False
        tenant.tokens[APP_TOKEN] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All", "GroupMember.Read.All",
                                                        "User.ReadBasic.All", "AuditLog.Read.All"}))
        basic = cli(url, *run)
        assert basic.exit_code == 0, basic.output
        assert "4 users (nested groups included), 0 with a mobilePhone or businessPhones: if they do have numbers" in basic.output
        assert "User.Read.All" in basic.output
        assert "the registration report can't be read (the tenant has no Entra ID P1/P2 licence" in basic.output
        unknown = cli(url, "check", "--read-only", "--group", "New")
    assert unknown.exit_code == 2
    assert "no group is named 'New'" in unknown.output and "'New hires'" in unknown.output
    assert not any(method != "GET" for method, _, _ in tenant.requests)
