"""Job files: parsing, every error message, and runs against the simulated tenant."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkphone.cli import main
from bulkphone._errors import InputError
from bulkphone._jobs import load_job
from bulkphone.sim import APP_TOKEN, SimTenant, serve

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["tenant-migration", "dry-run-report", "onboarding-import"])
def test_shipped_examples_load_and_point_at_real_files(name):
    job = load_job(ROOT / "jobs" / f"{name}.toml")
    assert job.file.exists()
    assert job.users is None or job.users.exists()
    assert job.auth.tenant_id and job.auth.client_id


def test_the_migration_example_exports_from_one_tenant_and_maps_into_another():
    job = load_job(ROOT / "jobs" / "tenant-to-tenant.toml")
    assert job.source is not None and job.source.auth.tenant_id != job.auth.tenant_id
    assert job.source.auth.secret_env == "FABRIKAM_CLIENT_SECRET" and job.auth.secret_env == "CONTOSO_CLIENT_SECRET"
    assert job.map_file.exists() and job.upn_domains == ("fabrikam.com=contoso.com",)
    assert job.file == job.report_folder / "source.csv"  # the export is the run's input


def write_job(tmp_path, text):
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ('[input]\nfile = "a.csv"\nmod = "sync"\n', "line 3: unknown key [input] mod. Known in [input]: file, users"),
        ('[input]\nfile = "a.csv"\n\n[limits]\nmax_concurrency = "16"\n', "line 5: [limits] max_concurrency must be int, not str ('16')"),
        ('[input]\nfile = "a.csv"\n[limits]\nmax_writes_per_second = true\n', "line 4: [limits] max_writes_per_second must be a number, not bool"),
        ('[input]\nfile = "a.csv"\nmode = "merge"\n', "line 3: [input] mode = 'merge': use one of upsert, create-only, sync"),
        ('[input]\nfile = "a.csv"\n[inputs]\nx = 1\n', "line 3: unknown table [inputs]"),
        ('[input]\nfile = "a.csv"\n[connection]\nclient_secret = "hunter2"\n', "line 4: [connection] client_secret: never put secrets in a job file"),
        ('[input]\nusers = "u.csv"\n', "[input] needs file ="),
        ('[input\nfile = "a.csv"\n', "not valid TOML"),
        ('[source]\nauth = "token"\n[mapping]\nupn_domains = "a.com=b.com"\n', "line 4: [mapping] upn_domains must be list, not str"),
        ('[source]\nauth = "token"\n[mapping]\nupn_domains = [1]\n', "line 4: [mapping] upn_domains must be a list of \"old=new\" strings"),
        ('[source]\npassword = "x"\n', "line 2: [source] password: never put secrets in a job file"),
        ('[connection]\nauth = "kerberos"\n[input]\nfile = "a.csv"\n', "line 2: [connection] auth = 'kerberos': use one of secret"),
        # inline tables and dotted keys are found too (they used to be "line 0")
        ('input = { file = "a.csv" }\n\nlimits = { max_changes = "10" }\n', "line 3: [limits] max_changes must be int, not str"),
        ('input = { file = "a.csv", mod = "sync" }\n', "line 1: unknown key [input] mod"),
        ('input.file = "a.csv"\n# a comment\nlimits.max_concurrency = 1.5\n', "line 3: [limits] max_concurrency must be int, not float"),
        ('input = { file = "a.csv" }\nreports = { folder = "r" }\n', "line 2: unknown table [reports]"),
        # the directory as the source
        ('[input]\nfrom_directory = true\nfile = "in.csv"\n', "line 2: [input] from_directory = true builds the input"),
        ('[input]\nfile = "in.csv"\nall_users = true\n', "directory_fields and all_users go with from_directory"),
        ('[input]\nfrom_directory = true\ndirectory_fields = "fax=office"\n', "line 3: [input] directory_fields: 'fax=office'"),
        ('[input]\nfile = "in.csv"\ngroup = "New hires"\n', "line 3: [input] group must be list"),
        ('[input]\nfile = "in.csv"\ngroup = [7]\n', "group must be a list of group names or object ids"),
    ],
)
def test_job_file_errors_name_the_key_and_the_line(tmp_path, text, message):
    with pytest.raises(InputError) as caught:
        load_job(write_job(tmp_path, text))
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_paths_are_relative_to_the_job_file(tmp_path):
    job = load_job(write_job(tmp_path, '[input]\nfile = "data/in.csv"\n[report]\nfolder = "out"\n'))
    assert job.file == tmp_path / "data" / "in.csv" and job.report_folder == tmp_path / "out"


@pytest.fixture
def sim_job(tmp_path):
    tenant = SimTenant.from_json(ROOT / "bulkphone" / "sim" / "demo_tenant.json")
    with serve(tenant) as url:
        path = write_job(tmp_path, f"""
[job]
name = "test run"
[input]
file = "{ROOT / 'sample_data' / 'phones.csv'}"
users = "{ROOT / 'sample_data' / 'directory.csv'}"
[connection]
auth = "token"
graph_url = "{url}"
[limits]
max_writes_per_second = 100
wait_for_new_users = 3
[report]
folder = "reports"
""")
        yield tenant, path


def test_run_is_a_dry_run_unless_asked_to_apply(sim_job, tmp_path):
    tenant, job = sim_job
    runner = CliRunner()
    env = {"BULKPHONE_ACCESS_TOKEN": APP_TOKEN}
    dry = runner.invoke(main, ["run", str(job)], env=env)
    assert dry.exit_code == 1, dry.output  # the sample has rows to fix
    assert tenant.writes == []
    assert {p.name for p in (tmp_path / "reports").iterdir()} == {"plan.csv", "plan.summary.json", "plan.html"}

    applied = runner.invoke(main, ["run", str(job), "--apply"], env=env)
    assert applied.exit_code == 1, applied.output
    assert len(tenant.writes) == 17  # 15 numbers, a default method and an SMS sign-in
    assert (tmp_path / "reports" / "results.csv").exists() and (tmp_path / "reports" / "results.html").exists()

    again = runner.invoke(main, ["run", str(job), "--apply"], env=env)
    assert again.exit_code == 1 and len(tenant.writes) == 17


def test_a_job_is_told_the_secret_variable_it_names(tmp_path):
    path = write_job(tmp_path, f"""
[input]
file = "{ROOT / 'sample_data' / 'phones.csv'}"
[connection]
auth = "secret"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "00000000-0000-0000-0000-000000000001"
secret_env = "CHANGEBOARD_APP_SECRET"
[report]
folder = "reports"
""")
    result = CliRunner().invoke(main, ["run", str(path)], env={"CHANGEBOARD_APP_SECRET": "", "BULKPHONE_CLIENT_SECRET": "ignored"})
    assert result.exit_code == 2
    assert "CHANGEBOARD_APP_SECRET" in result.output and "BULKPHONE_CLIENT_SECRET" not in result.output


def test_the_new_hires_example_plans_a_group_from_the_directory():
    job = load_job(ROOT / "jobs" / "new-hires-nightly.toml")
    assert job.file is None and job.groups == ("New hires",) and job.only_unregistered
    assert job.from_directory.fields == (("mobilePhone", "mobile"), ("businessPhones", "office"))
    assert job.input is job.from_directory and job.mode == "create-only"
