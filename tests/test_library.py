"""bulkphone as a library someone else builds on: it never prints, and each run counts its own work."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import make_connection

import bulkphone
from bulkphone.cli import main
from bulkphone.sim import APP_TOKEN, Principal, SimTenant, serve

ANN = "ann@contoso.com"


def test_the_library_prints_nothing_even_when_changes_fail(write_file):
    # In a fresh interpreter: pytest's own log capture would hide logging's last-resort handler.
    source = write_file("in.csv", f"user,mobile\n{ANN},\n")
    script = f"""
import bulkphone
from bulkphone.sim import APP_TOKEN, SimTenant, SimTransport
tenant = SimTenant()
tenant.add_user("{ANN}", {{"mobile": "+1 4255550100", "office": "+1 4255550199"}}, default_method="mobile")
connection = bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url="https://graph.test", transport=SimTransport(tenant))
result = bulkphone.apply({str(source)!r}, connection=connection, mode="sync")
assert result.outcomes[(2, "mobile")].status.value == "failed"  # a change.failed warning was emitted
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_each_run_counts_its_own_requests(tenant, clock, write_file):
    tenant.add_user(ANN)
    tenant.add_user("bob@contoso.com")
    source = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\nbob@contoso.com,+1 425 555 0101\n")
    connection = make_connection(tenant, clock)  # one Connection for every run, as the README shows
    plan = bulkphone.plan(source, connection=connection)
    assert (connection.counters.reads, connection.counters.writes) == (2, 0)
    first = bulkphone.apply(plan, connection=connection)
    assert (first.stats["reads"], first.stats["writes"]) == (0, 2)
    again = bulkphone.apply(source, connection=connection)
    assert (again.stats["reads"], again.stats["writes"], again.stats["retries"]) == (2, 0, 0)  # not 4 reads, 2 writes


def write_job(tmp_path, url, extra=""):
    source = tmp_path / "in.csv"
    source.write_text(f"user,mobile\n{ANN},+1 425 555 0100\nbob@contoso.com,+44 7911 123456\n")
    job = tmp_path / "job.toml"
    job.write_text(f'[input]\nfile = "in.csv"\n[connection]\nauth = "token"\ngraph_url = "{url}"\n{extra}'
                   '[report]\nfolder = "reports"\n')
    return job


def test_a_job_file_runs_through_the_library_with_its_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("BULKPHONE_ACCESS_TOKEN", APP_TOKEN)
    tenant = SimTenant()
    tenant.add_user(ANN)
    tenant.add_user("bob@contoso.com")
    with serve(tenant) as url:
        job = write_job(tmp_path, url, "[limits]\nmax_update_percent = 100\n")
        dry = bulkphone.run_job(job)
        assert isinstance(dry.run, bulkphone.PlanRun) and dry.export is None
        assert [row["action"] for row in dry.run.rows] == ["create", "create"] and tenant.writes == []
        applied = bulkphone.run_job(job, apply=True)
    assert isinstance(applied.run, bulkphone.ApplyRun) and not applied.run.needs_a_person
    assert applied.run.summary["statuses"] == {"ok": 2}
    assert tenant.state() == {ANN: {"mobile": "+1 4255550100"}, "bob@contoso.com": {"mobile": "+44 7911123456"}}
    reports = tmp_path / "reports"
    assert json.loads((reports / "results.summary.json").read_text())["statuses"] == {"ok": 2}
    assert (reports / "plan.html").exists() and (reports / "results.html").exists()


def test_a_migration_job_exports_then_applies_through_the_library(tmp_path, monkeypatch):
    monkeypatch.setenv("BULKPHONE_ACCESS_TOKEN", APP_TOKEN)
    reader = Principal(frozenset({"UserAuthenticationMethod.Read.All", "User.Read.All"}))
    source, target = SimTenant(tokens={APP_TOKEN: reader}), SimTenant()
    source.add_user("ann@fabrikam.com", {"mobile": "+1 4255550100"})
    target.add_user(ANN)
    with serve(source) as source_url, serve(target) as target_url:
        job = tmp_path / "job.toml"
        job.write_text(f'[source]\ngraph_url = "{source_url}"\nauth = "token"\n[mapping]\n'
                       f'upn_domains = ["fabrikam.com=contoso.com"]\n[connection]\ngraph_url = "{target_url}"\n'
                       'auth = "token"\n[report]\nfolder = "reports"\n')
        done = bulkphone.run_job(job, apply=True, force=True)
    assert done.export.counts["with numbers"] == 1 and done.export.report == tmp_path / "reports" / "source.csv"
    assert target.state() == {ANN: {"mobile": "+1 4255550100"}} and source.writes == []


def test_a_job_is_told_its_own_keys_in_every_message(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[input]\nfile = "in.csv"\n[connection]\nauth = "secret"\n')
    (tmp_path / "in.csv").write_text(f"user,mobile\n{ANN},+1 425 555 0100\n")
    with pytest.raises(bulkphone.InputError) as missing:
        bulkphone.run_job(job)
    assert str(missing.value) == f"missing credentials: give the tenant id (tenant_id in [connection] of {job})"
    cli = CliRunner().invoke(main, ["plan", str(tmp_path / "in.csv"), "--report", str(tmp_path / "r.csv"), "--auth", "secret"])
    assert "missing credentials: give the tenant id (--tenant-id (or BULKPHONE_TENANT_ID))" in cli.output


def test_a_job_hears_which_source_setting_points_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("BULKPHONE_ACCESS_TOKEN", APP_TOKEN)
    job = tmp_path / "job.toml"
    job.write_text('[source]\ngraph_url = "http://127.0.0.1:9"\nauth = "token"\n[connection]\n'
                   'graph_url = "http://127.0.0.1:9"\nauth = "token"\n[report]\nfolder = "reports"\n')
    with pytest.raises(bulkphone.PreflightError) as unreachable:
        bulkphone.run_job(job)
    assert f"Fix: check graph_url in [source] of {job} or cloud in [source] of {job}, the network" in str(unreachable.value)


def test_a_library_caller_is_told_the_parameter_names(write_file, tmp_path):
    source = write_file("in.csv", f"user,mobile\n{ANN},425 555 0100\n")
    with pytest.raises(bulkphone.InputError, match=r"^default_region: unknown region 'ZZ'"):
        bulkphone.normalize_file(source, tmp_path / "r.csv", default_region="ZZ")


def test_the_command_line_says_why_a_run_stops_as_it_happens(tmp_path):
    tenant = SimTenant()
    tenant.tokens["reader"] = Principal(frozenset({"UserAuthenticationMethod.Read.All"}))
    for i in range(5):
        tenant.add_user(f"u{i}@contoso.com")
    source = tmp_path / "in.csv"
    source.write_text("user,mobile\n" + "".join(f"u{i}@contoso.com,+1 425 555 01{i:02d}\n" for i in range(5)))
    with serve(tenant) as url:
        done = CliRunner().invoke(main, ["apply", str(source), "--report", str(tmp_path / "r.csv"), "--graph-url", url,
                                         "--max-concurrency", "1"], env={"BULKPHONE_ACCESS_TOKEN": "reader"})
    assert done.exit_code == 2, done.output
    assert "bulkphone: run.stopping: reason=" in done.output and tenant.writes == []


def test_the_plain_functions_show_their_whole_signature():
    import inspect

    for plain, twin in ((bulkphone.plan, bulkphone.plan_async), (bulkphone.apply, bulkphone.apply_async),
                        (bulkphone.export, bulkphone.export_async), (bulkphone.check, bulkphone.check_async)):
        assert inspect.signature(plain) == inspect.signature(twin) and plain.__doc__ == twin.__doc__
        assert "**" not in str(inspect.signature(plain)) and plain.__name__ == twin.__name__.removesuffix("_async")


def test_settings_that_only_shape_planning_are_refused_for_a_plan(tenant, clock, write_file):
    tenant.add_user(ANN)
    connection = make_connection(tenant, clock)
    plan = bulkphone.plan(write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n"), connection=connection)
    with pytest.raises(bulkphone.InputError, match=r"^default_region, mode: these shape planning an input file"):
        bulkphone.apply(plan, connection=connection, default_region="US", mode="sync")
    assert tenant.writes == []
