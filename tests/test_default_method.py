"""The default sign-in method and SMS sign-in, planned and applied with the numbers (issue 16)."""

import csv

import pytest

import bulkphone
from bulkphone._model import Action, Status
from bulkphone.sim import DROP_AFTER

ANN = "ann@contoso.com"


def user(tenant, upn):
    return next(u for u in tenant.users.values() if u.upn == upn)


def apply(connection, source, **options):
    return bulkphone.apply(source, connection=connection, **options)


def outcomes(result):
    return {item.phone_type: (item.action.value, result.outcome(item).status.value, result.outcome(item).error)
            for item in result.plan.items}


def test_a_user_moves_from_an_office_default_to_a_new_mobile_in_one_sync_run(tenant, connection, write_file):
    tenant.add_user(ANN, {"office": "+44 2079460001"}, default_method="voiceOffice")
    source = write_file("in.csv", f"user,mobile,office,defaultMethod\n{ANN},+44 7911 123456,,sms\n")
    result = apply(connection, source, mode="sync")
    assert outcomes(result) == {"mobile": ("create", "ok", ""), "office": ("delete", "ok", ""),
                                "defaultMethod": ("update", "ok", "")}
    # In Graph's order: the number the default moves to, the default, then the delete it allows.
    assert [(w["kind"], w["phoneType"]) for w in tenant.writes] == [
        ("create", "mobile"), ("signInPreferences", ""), ("delete", "office")]
    assert tenant.state() == {ANN: {"mobile": "+44 7911123456"}} and user(tenant, ANN).default_method == "sms"
    again = apply(connection, source, mode="sync")
    assert {action for action, _, _ in outcomes(again).values()} == {"noop"} and len(tenant.writes) == 3


def test_refused_settings_are_rows_to_fix_with_their_reason(tenant, connection, write_file):
    for name in ("ann", "bob", "cy", "dee"):
        tenant.add_user(f"{name}@contoso.com", {"mobile": "+44 7911000001"} if name == "dee" else {})
    user(tenant, "dee@contoso.com").sms_policy = False
    source = write_file("in.csv", "user,mobile,office,defaultMethod,smsSignIn\n"
                                  "ann@contoso.com,,,voiceOffice,\n"
                                  "bob@contoso.com,,,,enabled\n"
                                  "cy@contoso.com,,,phone,maybe\n"
                                  "dee@contoso.com,,,,enabled\n")
    result = apply(connection, source)
    rows = {(item.user.split("@")[0], item.phone_type): (item.action, result.outcome(item)) for item in result.plan.items}
    action, outcome = rows[("ann", "defaultMethod")]
    assert action is Action.SKIP and outcome.error.startswith("defaultMethod voiceOffice needs an office number")
    action, outcome = rows[("bob", "smsSignIn")]
    assert action is Action.SKIP and outcome.error.startswith("smsSignIn enabled needs a mobile number")
    assert rows[("cy", "defaultMethod")][1].error == (
        "defaultMethod 'phone' isn't a value it takes: use one of sms, voiceMobile, voiceAlternateMobile, voiceOffice, "
        "push, oath, system (or leave it empty)")
    assert "use one of enabled, disabled" in rows[("cy", "smsSignIn")][1].error
    action, outcome = rows[("dee", "smsSignIn")]
    assert (action, outcome.status) == (Action.UPDATE, Status.FAILED)
    assert "include the user in the SMS sign-in policy" in outcome.error and outcome.http_status == 400
    assert tenant.writes == []


def test_sms_sign_in_and_a_system_default_are_set_and_then_left_alone(tenant, connection, write_file):
    tenant.add_user(ANN, {"mobile": "+44 7911000001"})
    source = write_file("in.csv", f"user,mobile,defaultMethod,smsSignIn\n{ANN},+44 7911 000001,system,enabled\n")
    first = apply(connection, source)
    assert outcomes(first) == {"mobile": ("noop", "ok", ""), "defaultMethod": ("update", "ok", ""),
                               "smsSignIn": ("update", "ok", "")}
    assert user(tenant, ANN).system_preferred and user(tenant, ANN).sms_states["mobile"] == "ready"
    assert {action for action, _, _ in outcomes(apply(connection, source)).values()} == {"noop"}
    assert len(tenant.writes) == 2


def test_blank_settings_leave_everything_alone_even_in_sync_mode(tenant, connection, write_file):
    tenant.add_user(ANN, {"mobile": "+44 7911000001"}, default_method="sms")
    user(tenant, ANN).sms_states["mobile"] = "ready"
    source = write_file("in.csv", f"user,mobile,defaultMethod,smsSignIn\n{ANN},+44 7911 000001,,\n")
    result = apply(connection, source, mode="sync")
    assert {action for action, _, _ in outcomes(result).values()} == {"noop"} and tenant.writes == []


def test_a_lost_answer_to_a_default_change_is_read_back_not_sent_again(tenant, connection, write_file):
    tenant.add_user(ANN, {"mobile": "+44 7911000001", "office": "+44 2079460001"}, default_method="voiceOffice")
    tenant.fail_next(DROP_AFTER, "PATCH")
    result = apply(connection, write_file("in.csv", f"user,defaultMethod\n{ANN},voiceMobile\n"))
    outcome = result.outcomes[(2, "defaultMethod")]
    assert (outcome.status, outcome.reconciled) == (Status.OK, True)
    assert [w["kind"] for w in tenant.writes] == ["signInPreferences"]  # once: the read-back found it done
    assert user(tenant, ANN).default_method == "voiceMobile"


def test_the_report_shows_the_wanted_and_the_current_default(tenant, connection, write_file, tmp_path):
    tenant.add_user(ANN, {"mobile": "+44 7911000001", "office": "+44 2079460001"}, default_method="voiceOffice")
    plan = bulkphone.plan(write_file("in.csv", f"user,defaultMethod\n{ANN},SMS\n"), connection=connection)
    bulkphone.write_plan(plan, tmp_path / "plan.csv")
    with open(tmp_path / "plan.csv", newline="", encoding="utf-8") as handle:
        row = next(r for r in csv.DictReader(handle) if r["phoneType"] == "defaultMethod")
    assert (row["action"], row["phoneNumber"], row["currentNumber"], row["raw"]) == ("update", "sms", "voiceOffice", "SMS")
    assert bulkphone.read_plan(tmp_path / "plan.csv") == plan  # a reviewed plan carries it exactly


def test_export_map_and_apply_carry_defaults_and_sms_sign_in_to_another_tenant(clock, tmp_path):
    import asyncio

    from conftest import make_connection

    from bulkphone.sim import APP_TOKEN, Principal, SimTenant

    source = SimTenant(tokens={APP_TOKEN: Principal(frozenset({"UserAuthenticationMethod.Read.All", "User.Read.All"}))})
    source.add_user("ann@fabrikam.com", {"mobile": "+44 7911000001", "office": "+44 2079460001"}, default_method="voiceOffice")
    source.add_user("bob@fabrikam.com", {"mobile": "+44 7911000002"}, default_method="sms")
    source.add_user("cy@fabrikam.com", {"mobile": "+44 7911000003"}, system_preferred=True)
    source.add_user("dee@fabrikam.com", {"mobile": "+44 7911000004"}, default_method="push", other_methods=["microsoftAuthenticator"])
    user(source, "bob@fabrikam.com").sms_states["mobile"] = "ready"
    target = SimTenant()
    for upn in ("ann", "bob", "cy", "dee"):
        target.add_user(f"{upn}@contoso.com")
    exported = asyncio.run(bulkphone.export_to_report(tmp_path / "source.csv", connection=make_connection(source, clock)))
    with open(tmp_path / "source.csv", newline="", encoding="utf-8") as handle:
        carried = {row["user"]: (row["defaultMethod"], row["smsSignIn"]) for row in csv.DictReader(handle)}
    assert carried == {"ann@fabrikam.com": ("voiceOffice", "disabled"), "bob@fabrikam.com": ("sms", "enabled"),
                       "cy@fabrikam.com": ("system", "disabled"), "dee@fabrikam.com": ("", "disabled")}
    assert exported.counts["with numbers"] == 4
    identity = bulkphone.load_identity_map(None, ["fabrikam.com=contoso.com"])
    result = bulkphone.apply(tmp_path / "source.csv", connection=make_connection(target, clock), identity=identity)
    assert {result.outcome(item).status for item in result.plan.items} == {Status.OK}
    assert [(user(target, f"{u}@contoso.com").default_method, user(target, f"{u}@contoso.com").system_preferred)
            for u in ("ann", "bob", "cy", "dee")] == [("voiceOffice", False), ("sms", False), ("", True), ("", False)]
    assert user(target, "bob@contoso.com").sms_states["mobile"] == "ready"
    assert target.state() == {upn.replace("fabrikam", "contoso"): methods for upn, methods in source.state().items()}


@pytest.mark.parametrize("at", ["after-started", "before-finished"])
@pytest.mark.parametrize("after", [2, 9, 17])
def test_a_crash_mid_run_resumes_to_exact_defaults_and_sms_sign_in(tenant, clock, write_file, tmp_path, monkeypatch, at, after):
    from conftest import make_connection
    from test_journal import Crash, crashing_recorder

    from bulkphone._journal import Journal

    users = [f"user{i:02d}@contoso.com" for i in range(8)]
    for user_name in users:
        tenant.add_user(user_name, {"office": "+44 2079460001"}, default_method="voiceOffice")
    source = write_file("in.csv", "user,mobile,office,defaultMethod,smsSignIn\n" + "".join(
        f"{u},+44 7911 0000{i:02d},,sms,enabled\n" for i, u in enumerate(users)))
    connection = make_connection(tenant, clock, max_concurrency=3)
    journal_path = tmp_path / "run.journal.sqlite"
    monkeypatch.setattr(Journal, "recorder", lambda self, run_id, plan: crashing_recorder(at, after)(self, run_id, plan.items))
    with pytest.raises(Crash), Journal(journal_path) as journal:
        bulkphone.apply(source, connection=connection, journal=journal, mode="sync", limits=None)
    monkeypatch.undo()
    with Journal(journal_path) as journal:
        result = bulkphone.apply(source, connection=connection, journal=journal, mode="sync")
    assert {result.outcome(item).status for item in result.plan.items} == {Status.OK}
    assert tenant.state() == {u: {"mobile": f"+44 79110000{i:02d}"} for i, u in enumerate(users)}
    assert all(user(tenant, u).default_method == "sms" and user(tenant, u).sms_states["mobile"] == "ready" for u in users)
    kinds = [w["kind"] for w in tenant.writes]
    assert len(kinds) == 32  # 8 × (create mobile, default, SMS sign-in, delete office): each exactly once
    for u in users:  # and in Graph's order for each user
        assert [w["kind"] for w in tenant.writes if w["user"] == u] == ["create", "signInPreferences", "enableSmsSignIn", "delete"]


def test_changed_only_skips_settings_verified_by_the_last_run(tenant, connection, write_file, tmp_path):
    from bulkphone._journal import Journal

    tenant.add_user(ANN, {"mobile": "+44 7911000001"})
    source = write_file("in.csv", f"user,mobile,defaultMethod,smsSignIn\n{ANN},+44 7911 000001,sms,enabled\n")
    with Journal(tmp_path / "j.sqlite") as journal:
        first = bulkphone.apply(source, connection=connection, journal=journal, changed_only=True)
        reads = len(tenant.requests)
        second = bulkphone.apply(source, connection=connection, journal=journal, changed_only=True)
    assert [w["kind"] for w in tenant.writes] == ["signInPreferences", "enableSmsSignIn"]
    assert {result.outcome(item).status for result in (first, second) for item in result.plan.items} == {Status.OK}
    assert all(item.note.startswith("unchanged since the last verified run") for item in second.plan.items)
    assert len(tenant.requests) == reads  # nothing read or written the second time
