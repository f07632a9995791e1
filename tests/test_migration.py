"""Tenant-to-tenant migration: export, identity mapping, and a scheduled migration job, run
against two simulated tenants at once (source and target) over real loopback HTTP."""

import asyncio
import csv
import textwrap

import pytest
from click.testing import CliRunner

import bulkphone
from bulkphone.cli import main
from bulkphone._export import EXPORT_COLUMNS
from bulkphone.sim import APP_TOKEN, Principal, SimTenant, serve

from conftest import make_connection

SOURCE_READER = {APP_TOKEN: Principal(frozenset({"UserAuthenticationMethod.Read.All", "User.Read.All"}))}
DELEGATED = "delegated-admin-token"


def source_tenant(count: int, **kwargs) -> SimTenant:
    """`count` users at fabrikam.com: every one a mobile, some an alternate and an office number,
    every 50th none at all."""
    tenant = SimTenant(tokens=dict(SOURCE_READER), **kwargs)
    for i in range(count):
        methods = {}
        if i % 50 != 7:
            methods["mobile"] = f"+1 425555{i:04d}"
            if i % 3 == 0:
                methods["alternateMobile"] = f"+44 74001{i:05d}"
            if i % 4 == 0:
                methods["office"] = f"+1 206555{i % 10000:04d}x{i % 90 + 10}"
        tenant.add_user(f"user{i}@fabrikam.com", methods)
    return tenant


def target_tenant(source: SimTenant, domain: str = "contoso.com") -> SimTenant:
    """The same people in the target tenant, under its domain, with no phone methods yet."""
    tenant = SimTenant()
    for user in source.users.values():
        tenant.add_user(user.upn.replace("@fabrikam.com", f"@{domain}"))
    return tenant


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run(*args, token=APP_TOKEN):
    return CliRunner().invoke(main, [str(a) for a in args], env={"BULKPHONE_ACCESS_TOKEN": token})


def exported_state(rows):
    return {row["user"]: {t: row[t] for t in ("mobile", "alternateMobile", "office") if row[t]} for row in rows}


def listings(tenant):
    return [path for method, path, status in tenant.requests if path.startswith("/v1.0/users?")]


def test_export_of_every_user_across_pages_equals_the_tenant(tmp_path):
    source = source_tenant(1234)
    with serve(source) as url:
        result = run("export", "--all", "--report", tmp_path / "export.csv", "--graph-url", url)
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "export.csv")
    assert list(rows[0]) == EXPORT_COLUMNS
    expected = {upn: methods for upn, methods in source.state().items() if methods}
    assert exported_state(rows) == expected and len(rows) == len(expected) == 1234 - 25
    assert len(listings(source)) == 2  # 999 + 235 users, following @odata.nextLink
    ids = {user.upn: user.id for user in source.users.values()}
    assert all(row["objectId"] == ids[row["user"]] for row in rows)
    assert {row["smsSignInState"] for row in rows} == {"notEnabled"}
    assert source.writes == []
    assert "1234 users, 1209 with numbers, 25 without phone methods left out" in result.output


def test_export_with_include_empty_and_small_pages_through_the_library(tmp_path, clock):
    source = source_tenant(260, clock=clock)
    connection = make_connection(source, clock)
    with bulkphone.Journal(tmp_path / "j.sqlite") as journal:
        result = bulkphone.export(connection, journal=journal, page_size=50)
    assert len(listings(source)) == 6
    rows = [row.csv_row() for row in result.exported(include_empty=True)]
    assert len(rows) == 260 and exported_state(rows) == source.state()
    assert result.counts() == {"listed": 260, "with numbers": 254, "without phone methods": 6, "not exported": 0}


def test_export_of_listed_users_names_the_missing_ones(tmp_path, write_file):
    source = source_tenant(10)
    users = write_file("users.csv", "user\nuser1@fabrikam.com\nUSER2@FABRIKAM.COM\nghost@fabrikam.com\n")
    with serve(source) as url:
        result = run("export", "--users", users, "--report", tmp_path / "export.csv", "--graph-url", url)
    assert result.exit_code == 1, result.output
    rows = {row["user"]: row for row in read_csv(tmp_path / "export.csv")}
    assert set(rows) == {"user1@fabrikam.com", "user2@fabrikam.com", "ghost@fabrikam.com"}
    assert rows["user2@fabrikam.com"]["mobile"] == "+1 4255550002"
    assert rows["ghost@fabrikam.com"]["note"].startswith("user not found in the tenant exported from")
    assert rows["ghost@fabrikam.com"]["notExported"] == "mobile alternateMobile office"


def test_an_app_that_may_read_methods_but_not_users_exports_a_users_file_without_object_ids(tmp_path, write_file):
    # Graph refuses the user lookup to such an app (403); the methods are read by the name given.
    source = source_tenant(10)
    source.tokens[APP_TOKEN] = Principal(frozenset({"UserAuthenticationMethod.Read.All"}))
    users = write_file("users.csv", "user\nuser1@fabrikam.com\nuser3@fabrikam.com\nghost@fabrikam.com\n")
    with serve(source) as url:
        result = run("export", "--users", users, "--report", tmp_path / "export.csv", "--graph-url", url)
    assert result.exit_code == 1, result.output
    rows = {row["user"]: row for row in read_csv(tmp_path / "export.csv")}
    assert (rows["user1@fabrikam.com"]["mobile"], rows["user1@fabrikam.com"]["objectId"]) == ("+1 4255550001", "")
    assert rows["user3@fabrikam.com"]["alternateMobile"] == "+44 7400100003"
    assert rows["ghost@fabrikam.com"]["notExported"] == "mobile alternateMobile office"
    assert "not found" in rows["ghost@fabrikam.com"]["note"]


def test_the_export_reimported_with_a_domain_map_reproduces_the_numbers_exactly(tmp_path):
    source = source_tenant(300)
    target = target_tenant(source)
    with serve(source) as source_url, serve(target) as target_url:
        exported = run("export", "--all", "--report", tmp_path / "export.csv", "--graph-url", source_url)
        assert exported.exit_code == 0, exported.output
        applied = run("apply", tmp_path / "export.csv", "--upn-domain", "fabrikam.com=contoso.com",
                      "--report", tmp_path / "results.csv", "--graph-url", target_url, "--max-writes-per-second", 1000)
    assert applied.exit_code == 0, applied.output
    expected = {upn.replace("@fabrikam.com", "@contoso.com"): methods for upn, methods in source.state().items()}
    assert target.state() == expected
    rows = read_csv(tmp_path / "results.csv")
    first = next(row for row in rows if row["sourceUser"] == "user0@fabrikam.com" and row["phoneType"] == "office")
    assert (first["user"], first["action"], first["status"], first["raw"]) == ("user0@contoso.com", "create", "ok", "+1 2065550000x10")


def test_unmapped_and_masked_users_are_reported_not_dropped(tmp_path, write_file):
    source = source_tenant(6)
    source.tokens[DELEGATED] = Principal(frozenset({"UserAuthenticationMethod.Read.All", "User.Read.All"}), delegated=True)
    target = target_tenant(source)
    users = write_file("users.csv", "user\nuser0@fabrikam.com\nuser1@fabrikam.com\nuser2@fabrikam.com\n")
    mapping = write_file("map.csv", "sourceUser,targetUser\nuser0@fabrikam.com,user0@contoso.com\nuser1@fabrikam.com,\n")
    with serve(source) as source_url, serve(target) as target_url:
        masked = run("export", "--users", users, "--report", tmp_path / "masked.csv", "--graph-url", source_url, token=DELEGATED)
        assert masked.exit_code == 1, masked.output
        rows = read_csv(tmp_path / "masked.csv")
        assert all(row["mobile"] == "" and "mobile" in row["notExported"] for row in rows)
        assert "masked by Graph (mobile +1 XXXXXXX" in rows[0]["note"] and "application permission" in rows[0]["note"]
        planned = run("plan", tmp_path / "masked.csv", "--map", mapping, "--mode", "sync",
                      "--report", tmp_path / "plan.csv", "--graph-url", target_url)
    assert planned.exit_code == 1, planned.output
    plan = {(row["sourceUser"], row["phoneType"]): row for row in read_csv(tmp_path / "plan.csv")}
    assert len(plan) == 15  # every cell of every exported row is in the report (3 numbers, 2 settings)
    masked_mobile = plan[("user0@fabrikam.com", "mobile")]
    assert (masked_mobile["user"], masked_mobile["action"]) == ("user0@contoso.com", "skip")
    assert masked_mobile["error"].startswith("not in the export: masked by Graph")
    assert plan[("user1@fabrikam.com", "mobile")]["error"].endswith("maps to no one in " + str(mapping) + ": left out on purpose")
    assert plan[("user2@fabrikam.com", "mobile")]["error"] == (
        f"no target user for user2@fabrikam.com: add it to {mapping} or a UPN-domain rule for fabrikam.com"
    )
    assert not any(row["action"] == "delete" for row in plan.values())  # unknown is never blank
    assert target.writes == []


def migration_job(tmp_path, source_url, target_url):
    job = tmp_path / "migration.toml"
    job.write_text(textwrap.dedent(f"""
        [job]
        name = "fabrikam-to-contoso"

        [source]
        graph_url = "{source_url}"
        auth = "token"
        token_env = "SOURCE_TOKEN"

        [mapping]
        upn_domains = ["fabrikam.com=contoso.com"]

        [connection]
        graph_url = "{target_url}"
        auth = "token"

        [limits]
        max_update_percent = 100
        max_writes_per_second = 1000

        [report]
        folder = "reports"
    """))
    return job


def test_a_scheduled_migration_job_converges_writing_only_what_changed_in_the_source(tmp_path):
    source = source_tenant(120)
    target = target_tenant(source)
    env = {"BULKPHONE_ACCESS_TOKEN": APP_TOKEN, "SOURCE_TOKEN": APP_TOKEN}
    with serve(source) as source_url, serve(target) as target_url:
        job = migration_job(tmp_path, source_url, target_url)
        dry = CliRunner().invoke(main, ["run", str(job)], env=env)
        assert dry.exit_code == 0, dry.output
        assert target.writes == [] and (tmp_path / "reports" / "plan.csv").exists()

        first = CliRunner().invoke(main, ["run", str(job), "--apply"], env=env)
        assert first.exit_code == 0, first.output
        expected = {upn.replace("@fabrikam.com", "@contoso.com"): methods for upn, methods in source.state().items()}
        assert target.state() == expected
        writes_after_first = len(target.writes)

        source.users[next(u.id.lower() for u in source.users.values() if u.upn == "user5@fabrikam.com")].methods["mobile"] = "+1 4255559999"
        source.add_user("newcomer@fabrikam.com", {"mobile": "+33 612345678"})
        target.add_user("newcomer@contoso.com")
        target_reads_before = sum(1 for method, path, status in target.requests if "phoneMethods" in path or path.endswith("$batch"))

        second = CliRunner().invoke(main, ["run", str(job), "--apply"], env=env)
    assert second.exit_code == 0, second.output
    new_writes = target.writes[writes_after_first:]
    assert sorted((w["kind"], w["user"], w["phoneNumber"]) for w in new_writes) == [
        ("create", "newcomer@contoso.com", "+33 612345678"),
        ("update", "user5@contoso.com", "+1 4255559999"),
    ]
    assert target.state()["user5@contoso.com"]["mobile"] == "+1 4255559999"
    rows = read_csv(tmp_path / "reports" / "results.csv")
    assert {row["status"] for row in rows} == {"ok"}
    target_reads = sum(1 for method, path, status in target.requests if "phoneMethods" in path or path.endswith("$batch"))
    assert target_reads - target_reads_before < 10  # unchanged rows aren't read again either


def test_a_killed_export_resumes_without_listing_or_reading_again(tmp_path, clock):
    source = source_tenant(1000, clock=clock)
    connection = make_connection(source, clock)
    stop = asyncio.Event()

    def stop_after_the_first_slice(done, total):
        if done:
            stop.set()

    with bulkphone.Journal(tmp_path / "j.sqlite") as journal:
        first = bulkphone.export(connection, journal=journal, page_size=400, progress=stop_after_the_first_slice, stop=stop)
        assert first.stopped and 0 < len(first.rows) < 1000
        second = bulkphone.export(connection, journal=journal, page_size=400)
    assert not second.stopped and second.resumed_users == len(first.rows)
    assert len(listings(source)) == 3  # the pages were listed once
    assert connection.counters.reads == 2 * (1000 - len(first.rows))  # methods and default of each user left; each run counts its own
    assert exported_state([row.csv_row() for row in second.exported(include_empty=True)]) == source.state()


def test_map_files_and_domain_rules_are_checked(tmp_path, write_file):
    from bulkphone import InputError, load_identity_map

    with pytest.raises(InputError, match="write it as old.example=new.example"):
        load_identity_map(None, ["fabrikam.com"])
    wrong = write_file("map.csv", "from,to\na,b\n")
    with pytest.raises(InputError, match="needs the columns sourceUser and targetUser"):
        load_identity_map(wrong)
    twice = write_file("twice.csv", "sourceUser,targetUser\na@x.com,b@y.com\nA@X.COM,c@y.com\n")
    with pytest.raises(InputError, match="row 3: A@X.COM is mapped twice"):
        load_identity_map(twice)
    both = load_identity_map(write_file("m.csv", "sourceUser,targetUser\nann@fabrikam.com,annie@contoso.com\n"),
                             ["fabrikam.com=contoso.com"])
    assert both.target("Ann@Fabrikam.com") == ("annie@contoso.com", "")
    assert both.target("bob@fabrikam.com") == ("bob@contoso.com", "")
    assert both.target("eve@other.com")[1].endswith("or a UPN-domain rule for other.com")
    assert load_identity_map(None, ["a.com=b.com"]).target("eve@other.com")[1] == (
        "no target user for eve@other.com: add a UPN-domain rule for other.com, or map it in a map file"
    )


def test_listing_every_user_without_directory_permission_says_which_permission(tmp_path):
    source = source_tenant(3)
    source.tokens[APP_TOKEN] = Principal(frozenset({"UserAuthenticationMethod.Read.All"}))
    with serve(source) as url:
        result = run("export", "--all", "--report", tmp_path / "export.csv", "--graph-url", url)
        by_list = run("export", "--users", tmp_path / "users.csv", "--report", tmp_path / "listed.csv", "--graph-url", url)
    assert result.exit_code == 2
    assert "listing the tenant's users was refused" in result.output and "User.Read.All" in result.output
    assert "export a list of users with --users" in result.output
    assert by_list.exit_code == 2 and "users.csv: file not found" in by_list.output


def test_export_rides_out_throttling_and_server_errors(tmp_path, clock):
    from bulkphone.sim import Faults

    source = source_tenant(400, clock=clock, faults=Faults(error_429=0.05, error_503=0.05, error_500=0.02, seed=3))
    connection = make_connection(source, clock)
    with bulkphone.Journal(tmp_path / "j.sqlite") as journal:
        result = bulkphone.export(connection, journal=journal, page_size=100)
    assert source.injected["429"] and source.injected["503"] and source.injected["500"]
    assert exported_state([row.csv_row() for row in result.exported(include_empty=True)]) == source.state()
    assert result.counts()["not exported"] == 0
