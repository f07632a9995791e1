"""The CLI contract: commands, options, report columns, messages and exit codes."""

import csv

import pytest
from click.testing import CliRunner

from bulkphone.cli import main
from bulkphone._report import NORMALIZE_COLUMNS, REPORT_COLUMNS
from bulkphone.sim import APP_TOKEN, Principal, SimTenant, serve

ANN = "ann@contoso.com"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def server():
    tenant = SimTenant()
    tenant.add_user(ANN, {"office": "+1 4255550199"})
    tenant.add_user("bob@contoso.com")
    with serve(tenant) as url:
        yield tenant, url


def read_report(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run(runner, *args, token=APP_TOKEN):
    env = {"BULKPHONE_ACCESS_TOKEN": token} if token else {}
    return runner.invoke(main, [str(a) for a in args], env=env)


def test_plan_then_apply_then_apply_again_over_graph_url(runner, server, write_file, tmp_path):
    tenant, url = server
    source = write_file("in.csv", f"user,mobile,office\n{ANN},425 555 0100,\nbob@contoso.com,+44 7400 123456,\n")

    planned = run(runner, "plan", source, "--report", tmp_path / "plan.csv", "--graph-url", url, "--default-region", "US")
    assert planned.exit_code == 0, planned.output
    assert "create 2" in planned.output and "0 writes" in planned.output
    assert tenant.writes == []
    rows = read_report(tmp_path / "plan.csv")
    assert list(rows[0]) == REPORT_COLUMNS + ["planChecksum", "planSignature"]
    assert [(r["user"], r["phoneType"], r["action"], r["status"]) for r in rows] == [
        (ANN, "mobile", "create", "planned"),
        (ANN, "office", "noop", "planned"),
        ("bob@contoso.com", "mobile", "create", "planned"),
        ("bob@contoso.com", "office", "noop", "planned"),
    ]

    applied = run(runner, "apply", source, "--report", tmp_path / "results.csv", "--graph-url", url, "--default-region", "US")
    assert applied.exit_code == 0, applied.output
    assert tenant.state() == {
        ANN: {"office": "+1 4255550199", "mobile": "+1 4255550100"},
        "bob@contoso.com": {"mobile": "+44 7400123456"},
    }
    assert {r["status"] for r in read_report(tmp_path / "results.csv")} == {"ok"}

    again = run(runner, "apply", source, "--report", tmp_path / "again.csv", "--graph-url", url, "--default-region", "US")
    assert again.exit_code == 0 and "0 writes" in again.output
    assert len(tenant.writes) == 2


def test_rows_with_problems_exit_1_and_say_why(runner, server, write_file, tmp_path):
    _, url = server
    source = write_file("in.csv", f"user,mobile\n{ANN},020 7946\nghost@contoso.com,+1 425 555 0100\n")
    result = run(runner, "apply", source, "--report", tmp_path / "r.csv", "--graph-url", url, "--default-region", "GB",
                 "--wait-for-new-users", "0")
    assert result.exit_code == 1
    errors = {r["user"]: r["error"] for r in read_report(tmp_path / "r.csv")}
    assert errors[ANN].startswith("too short for GB")
    assert errors["ghost@contoso.com"].startswith("user not found")


def test_normalize_is_offline_and_reports_each_value(runner, write_file, tmp_path):
    source = write_file("in.csv", f"user,mobile,office\n{ANN},06 1234 5678,\nbob@contoso.com,12,\n")
    result = run(runner, "normalize", source, "--report", tmp_path / "n.csv", "--default-region", "IT", token=None)
    assert result.exit_code == 1
    rows = read_report(tmp_path / "n.csv")
    assert list(rows[0]) == NORMALIZE_COLUMNS
    assert [(r["phoneType"], r["phoneNumber"], r["status"]) for r in rows] == [
        ("mobile", "+39 0612345678", "ok"),
        ("office", "", "blank"),
        ("mobile", "", "invalid"),
        ("office", "", "blank"),
    ]


def test_normalize_reports_where_each_number_belongs_and_its_type(runner, write_file, tmp_path):
    source = write_file(
        "in.csv",
        "user,mobile,office,region\n"
        f"{ANN},(506) 234-5678,+44 1481 256789,US\n"  # a Canadian mobile read as US; a Guernsey landline
        "bob@contoso.com,020 7946 0123,+44 7400 123456,GB\n",  # a London landline in the mobile column
    )
    result = run(runner, "normalize", source, "--report", tmp_path / "n.csv", token=None)
    assert result.exit_code == 0, result.output
    rows = {(r["user"], r["phoneType"]): r for r in read_report(tmp_path / "n.csv")}
    canadian, guernsey = rows[(ANN, "mobile")], rows[(ANN, "office")]
    assert (canadian["region"], canadian["numberRegion"], canadian["numberType"]) == ("US", "CA", "fixed_line_or_mobile")
    assert (guernsey["phoneNumber"], guernsey["numberRegion"], guernsey["numberType"]) == ("+44 1481256789", "GG", "fixed_line")
    landline = rows[("bob@contoso.com", "mobile")]
    assert (landline["status"], landline["numberType"]) == ("ok", "fixed_line")
    assert landline["warning"] == "fixed line number in mobile: it can't receive SMS codes"


def test_bad_file_is_one_clear_line_and_exit_2(runner, tmp_path, write_file):
    missing = run(runner, "plan", tmp_path / "nope.csv", "--report", tmp_path / "r.csv")
    assert missing.exit_code == 2
    assert "nope.csv: file not found" in missing.output and "Traceback" not in missing.output
    nouser = write_file("bad.csv", "name,mobile\nann,1\n")
    result = run(runner, "normalize", nouser, "--report", tmp_path / "r.csv")
    assert result.exit_code == 2 and "no user column" in result.output and "Fix:" in result.output


def test_no_credentials_is_exit_2_with_the_fix(runner, write_file, tmp_path):
    source = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    result = run(runner, "plan", source, "--report", tmp_path / "r.csv", token=None)
    assert result.exit_code == 2
    assert "BULKPHONE_ACCESS_TOKEN" in result.output and "BULKPHONE_CLIENT_SECRET" in result.output


def test_bad_token_is_exit_2_and_nothing_written(runner, server, write_file, tmp_path):
    tenant, url = server
    source = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    result = run(runner, "apply", source, "--report", tmp_path / "r.csv", "--graph-url", url, token="expired")
    assert result.exit_code == 2 and "401" in result.output
    assert tenant.writes == []


def test_read_only_permission_stops_apply_with_exit_2_and_a_report(runner, server, write_file, tmp_path):
    tenant, url = server
    tenant.tokens["reader"] = Principal(frozenset({"UserAuthenticationMethod.Read.All"}))
    users = [f"user{i}@contoso.com" for i in range(8)]
    for user in users:
        tenant.add_user(user)
    source = write_file("in.csv", "user,mobile\n" + "".join(f"{u},+1 425 555 01{i:02d}\n" for i, u in enumerate(users)))
    result = run(runner, "apply", source, "--report", tmp_path / "r.csv", "--graph-url", url, "--max-concurrency", "1", token="reader")
    assert result.exit_code == 2
    assert "run stopped" in result.output and "UserAuthenticationMethod.ReadWrite.All" in result.output
    assert [r["status"] for r in read_report(tmp_path / "r.csv")] == ["failed"] * 3 + ["skipped"] * 5
    assert tenant.writes == []


def test_bad_default_region_and_mode_are_usage_errors(runner, write_file, tmp_path):
    source = write_file("in.csv", f"user,mobile\n{ANN},425 555 0100\n")
    region = run(runner, "normalize", source, "--report", tmp_path / "r.csv", "--default-region", "Narnia")
    assert region.exit_code == 2 and "unknown region 'Narnia'" in region.output
    mode = run(runner, "plan", source, "--report", tmp_path / "r.csv", "--mode", "merge")
    assert mode.exit_code == 2


def test_demo_runs_on_the_embedded_tenant(runner, tmp_path):
    result = runner.invoke(main, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "writes to the tenant: 0" in result.output
    assert "new writes: 0" in result.output
    results = read_report(tmp_path / "demo" / "results.csv")
    plan = read_report(tmp_path / "demo" / "plan.csv")
    assert [(r["row"], r["phoneType"]) for r in results] == [(r["row"], r["phoneType"]) for r in plan]
    assert {r["status"] for r in results} == {"ok", "skipped"}
    rerun = read_report(tmp_path / "demo" / "rerun.csv")
    assert {r["action"] for r in rerun} == {"noop", "skip", "create"}
    # The one create left is for a user Graph never knew: waited for, then reported, never written.
    assert [(r["user"], r["status"], r["error"][:15]) for r in rerun if r["action"] == "create"] == [
        ("nestor.wilke@contoso.com", "skipped", "user not found:")
    ]
    # It ends with an audit of the tenant it changed, and the fixes it proposes.
    audit = {r["user"]: r["category"] for r in read_report(tmp_path / "demo" / "audit.csv")}
    assert len(audit) == 16 and audit["diego.siciliani@contoso.com"] == "phone-default"
    assert audit["allan.deyoung@contoso.com"] == "ready" and audit["alex.wilber@contoso.com"] == "phone-only"
    assert read_report(tmp_path / "demo" / "fixes.csv") == [
        {"user": "diego.siciliani@contoso.com", "defaultMethod": "push"},
        {"user": "patti.fernandez@contoso.com", "defaultMethod": "system"}]
    assert (tmp_path / "demo" / "audit.html").exists() and "audit   -> " in result.output


@pytest.mark.parametrize("command", ["plan", "apply", "normalize", "demo"])
def test_every_command_has_help(runner, command):
    result = runner.invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_json_logs_are_one_object_per_event_on_stderr(tmp_path, write_file):
    import json

    from bulkphone.sim import Faults

    tenant = SimTenant(faults=Faults(writes_per_second=4, retry_after=0.3))  # an honest Retry-After
    for i in range(6):
        tenant.add_user(f"user{i}@contoso.com")
    tenant.add_user(ANN, {"mobile": "+1 4255550100", "office": "+1 4255550199"}, default_method="mobile")
    source = write_file("in.csv", "user,mobile\n" + "".join(f"user{i}@contoso.com,+1 425 555 01{i:02d}\n" for i in range(6)) + f"{ANN},\n")
    with serve(tenant) as url:
        result = CliRunner().invoke(
            main,
            ["--log-format", "json", "apply", str(source), "--report", str(tmp_path / "r.csv"), "--graph-url", url,
             "--mode", "sync", "--max-writes-per-second", "50"],
            env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN},
        )
    assert result.exit_code == 1
    events = [json.loads(line) for line in result.stderr.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "run.start" and names[-1] == "run.end"
    assert "throttled" in names and "progress" in names
    failed = [e for e in events if e["event"] == "change.failed"]
    assert len(failed) == 1 and failed[0]["user"] == ANN and "default sign-in method" in failed[0]["error"]
    end = events[-1]
    rows = read_report(tmp_path / "r.csv")
    assert end["statuses"] == {"ok": 6, "failed": 1} == {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed")}


def test_json_logs_report_errors_as_events(tmp_path):
    import json

    result = CliRunner().invoke(main, ["--log-format", "json", "normalize", str(tmp_path / "missing.csv"), "--report", str(tmp_path / "r.csv")])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert json.loads(line)["event"] == "run.error" and "file not found" in json.loads(line)["message"]


def test_normalize_streams_big_files_in_chunks_with_row_numbers_intact(write_file, tmp_path):
    from bulkphone._runs import normalize_file

    lines = "".join(f"user{i}@contoso.com,425 555 {i:04d},\n" for i in range(25))
    source = write_file("in.csv", "user,mobile,office\n" + lines)
    seen = []
    counts = normalize_file(source, tmp_path / "n.csv", default_region="US", progress=seen.append, chunk_rows=10).counts
    rows = read_report(tmp_path / "n.csv")
    assert [int(r["row"]) for r in rows if r["phoneType"] == "mobile"] == list(range(2, 27))
    assert counts == {"ok": 25, "blank": 25}
    assert seen == [10, 20, 25]


def test_normalize_writes_the_same_report_on_one_core_or_several(write_file, tmp_path):
    from bulkphone._runs import normalize_file

    shapes = ["425 555 {i:04d}", "+44 7400 12{i:04d}", "020 7946 {i:04d}", "12", "+999 1", "(425) 555-{i:04d} ext. 7"]
    lines = "".join(
        f"user{i}@contoso.com,{shapes[i % 6].format(i=i)},{'GB' if i % 3 else ('Narnia' if i % 7 == 0 else '')}\n"
        for i in range(60)
    )
    source = write_file("in.csv", "user,mobile,region\n" + lines)
    users = {f"user{i}@contoso.com": "" for i in range(50)}
    one = normalize_file(source, tmp_path / "one.csv", users=users, default_region="US", chunk_rows=7, processes=1).counts
    two = normalize_file(source, tmp_path / "two.csv", users=users, default_region="US", chunk_rows=7, processes=2).counts
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert one == two and set(one) == {"ok", "invalid", "skipped"}
    assert len(read_report(tmp_path / "two.csv")) == 60


def test_check_probes_the_first_user_of_the_input(runner, server, write_file):
    tenant, url = server
    source = write_file("in.csv", f"user,mobile\n,+1 425 555 0100\n{ANN},+1 425 555 0101\n")
    result = run(runner, "check", source, "--graph-url", url)
    assert result.exit_code == 0, result.output
    assert f"read {ANN}'s phone methods" in result.output and "opaque token" in result.output and "token token" not in result.output
    assert tenant.writes == []


def test_plan_reads_a_big_input_in_chunks_on_every_core_with_the_same_cells(write_file, tmp_path, monkeypatch):
    from bulkphone import _cells as cells
    from bulkphone._mapping import IdentityMap

    lines = "".join(f"user{i}@fabrikam.com,425 555 {i:04d},{'+44 20 7946 0' + str(i % 1000).zfill(3) if i % 2 else ''}\n" for i in range(40))
    source = write_file("in.csv", "user,mobile,office\n" + lines)
    identity = IdentityMap(domains={"fabrikam.com": "contoso.com"})
    whole = cells.load_cells(source, default_region="US", identity=identity)
    monkeypatch.setattr(cells, "CHUNK_ROWS", 7)
    chunked = cells.load_cells(source, default_region="US", identity=identity)
    assert chunked == whole and len(whole) == 80
    assert whole[0].user == "user0@contoso.com" and whole[0].source_user == "user0@fabrikam.com"
    assert whole[0].number == "+1 4255550000" and whole[3].number == "+44 2079460001"
