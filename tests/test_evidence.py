"""Issue 12, part 2: reviewed plans people can approve, and evidence that is never destroyed or exposed."""

import csv
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import bulkphone
from bulkphone.cli import main
from bulkphone._errors import InputError, JournalInUseError
from bulkphone._journal import Journal
from bulkphone._report import REPORT_COLUMNS
from bulkphone.sim import APP_TOKEN, Faults, SimTenant, serve
from bulkphone._text import restore

ENV = {"BULKPHONE_ACCESS_TOKEN": APP_TOKEN}


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={**ENV, **(env or {})})


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def tenant_and_url():
    tenant = SimTenant()
    tenant.add_user("ann@contoso.com", {"mobile": "+1 4255550100", "office": "+1 4255550199"})
    tenant.add_user("bob@contoso.com")
    with serve(tenant) as url:
        yield tenant, url


@pytest.fixture
def reviewed(tenant_and_url, write_file, tmp_path):
    """A plan for a change board: ann's office stays (noop), bob gets a mobile."""
    tenant, url = tenant_and_url
    source = write_file("in.csv", "user,mobile,office\nann@contoso.com,+1 425 555 0100,+1 425 555 0199\nbob@contoso.com,+1 425 555 0101,\n")
    result = run("plan", source, "--report", tmp_path / "plan.csv", "--graph-url", url, "--mode", "sync")
    assert result.exit_code == 0, result.output
    checksum = read_rows(tmp_path / "plan.csv")[0]["planChecksum"]
    return tenant, url, tmp_path / "plan.csv", checksum, result.output


def _forge(plan_path, row_user, phone_type, action):
    """Edit one decision and recompute the checksum exactly as the README documents it: SHA-256 of the
    JSON of every row's report columns, as bulkphone reads them (a defusing apostrophe taken off)."""
    rows = read_rows(plan_path)
    columns = list(rows[0])
    for row in rows:
        if (row["user"], row["phoneType"]) == (row_user, phone_type):
            row["action"] = action
    cells = [[restore(row[c]) for c in REPORT_COLUMNS] for row in rows]
    checksum = hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()
    for row in rows:
        row["planChecksum"] = checksum
    with open(plan_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return checksum


def test_the_plan_checksum_is_shown_in_the_output_the_summary_and_the_html(reviewed):
    _, _, plan_path, checksum, output = reviewed
    assert len(checksum) == 64
    assert f"plan checksum: {checksum}" in output and f"--approve {checksum}" in output
    summary = json.loads(plan_path.with_suffix(".summary.json").read_text())
    assert summary["plan_checksum"] == checksum
    assert f'<code id="plan-checksum">{checksum}</code>' in plan_path.with_suffix(".html").read_text()


def test_a_forged_plan_with_a_recomputed_checksum_is_refused(reviewed, tmp_path):
    tenant, url, plan_path, _, _ = reviewed
    _forge(plan_path, "ann@contoso.com", "office", "delete")  # noop -> delete
    result = run("apply", "--plan", plan_path, "--report", tmp_path / "results.csv", "--graph-url", url)
    assert result.exit_code == 2
    assert "signature doesn't check out" in result.output and "Nothing was written" in result.output
    assert tenant.writes == [] and tenant.state()["ann@contoso.com"]["office"] == "+1 4255550199"
    assert not (tmp_path / "results.csv").exists()


def test_approving_a_checksum_refuses_any_other_plan(reviewed, tmp_path):
    tenant, url, plan_path, approved, _ = reviewed
    forged = _forge(plan_path, "ann@contoso.com", "office", "delete")
    result = run("apply", "--plan", plan_path, "--approve", approved, "--report", tmp_path / "results.csv", "--graph-url", url)
    assert result.exit_code == 2
    assert f"this is not the approved plan: its checksum is {forged}, the approved one {approved}" in result.output
    assert tenant.writes == []


def test_a_plan_made_elsewhere_needs_the_approved_checksum(reviewed, tmp_path, monkeypatch):
    tenant, url, plan_path, checksum, _ = reviewed
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "another-machine"))
    refused = run("apply", "--plan", plan_path, "--report", tmp_path / "results.csv", "--graph-url", url)
    assert refused.exit_code == 2 and f"give the checksum your change board approved ({checksum}" in refused.output
    assert tenant.writes == []
    approved = run("apply", "--plan", plan_path, "--approve", checksum.upper(), "--report", tmp_path / "results.csv",
                   "--graph-url", url)
    assert approved.exit_code == 0, approved.output
    assert tenant.state()["bob@contoso.com"] == {"mobile": "+1 4255550101"}
    assert json.loads((tmp_path / "results.summary.json").read_text())["plan_checksum"] == checksum


def test_jobs_on_two_machines_share_a_plan_key(tenant_and_url, write_file, tmp_path, monkeypatch):
    tenant, url = tenant_and_url
    source = write_file("in.csv", "user,mobile\nbob@contoso.com,+1 425 555 0101\n")
    shared = {"BULKPHONE_PLAN_KEY": "a secret both pipelines hold"}
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "planning-machine"))
    assert run("plan", source, "--report", tmp_path / "plan.csv", "--graph-url", url, env=shared).exit_code == 0
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "applying-machine"))
    result = run("apply", "--plan", tmp_path / "plan.csv", "--report", tmp_path / "r.csv", "--graph-url", url, env=shared)
    assert result.exit_code == 0, result.output
    assert tenant.state()["bob@contoso.com"] == {"mobile": "+1 4255550101"}


def test_approve_without_a_plan_is_a_usage_error(write_file, tmp_path):
    source = write_file("in.csv", "user,mobile\nbob@contoso.com,+1 425 555 0101\n")
    result = run("apply", source, "--approve", "0" * 64, "--report", tmp_path / "r.csv")
    assert result.exit_code == 2 and "--approve goes with --plan" in result.output


def test_the_plan_key_file_is_private(reviewed):
    key = Path(os.environ["XDG_CONFIG_HOME"]) / "bulkphone" / "plan.key"
    assert len(key.read_bytes()) == 64
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700


# ---- never destroy input or evidence -------------------------------------------------------------------


SOURCE = "user,mobile\nann@contoso.com,+1 425 555 0100\n"


@pytest.mark.parametrize(
    "command",
    [
        ["normalize", "{in}", "--report", "{in}"],
        ["normalize", "{in}", "--report", "{dotted}"],  # the same file by another spelling
        ["normalize", "{in}", "--report", "{link}"],  # ... or through a symlink
        ["normalize", "{in}", "--report", "{hardlink}"],  # ... or a hard link
        ["plan", "{in}", "--report", "{in}"],
        ["plan", "{html}", "--report", "{html_report}"],  # the plan's HTML page would land on the input
        ["apply", "{in}", "--report", "{in}"],
        ["apply", "{in}", "--report", "{other}", "--journal", "{in}"],
        ["apply", "{in}", "--report", "{users}", "--users", "{users}"],
        ["normalize", "{in}", "--report", "{map}", "--map", "{map}"],
        ["export", "--users", "{users}", "--report", "{users}"],
    ],
)
def test_no_output_may_land_on_an_input(tenant_and_url, tmp_path, command):
    _, url = tenant_and_url
    files = {
        "in": tmp_path / "in.csv", "users": tmp_path / "users.csv", "map": tmp_path / "map.csv",
        "html": tmp_path / "r.html",
    }
    files["in"].write_text(SOURCE)
    files["html"].write_text(SOURCE)
    files["users"].write_text("user\nann@contoso.com\n")
    files["map"].write_text("sourceUser,targetUser\nann@contoso.com,ann@contoso.com\n")
    (tmp_path / "link.csv").symlink_to(files["in"])
    os.link(files["in"], tmp_path / "hard.csv")
    names = {
        "in": files["in"], "dotted": tmp_path / "sub" / ".." / "in.csv", "link": tmp_path / "link.csv",
        "hardlink": tmp_path / "hard.csv", "html": files["html"], "html_report": tmp_path / "r.csv",
        "other": tmp_path / "other.csv", "users": files["users"], "map": files["map"],
    }
    (tmp_path / "sub").mkdir()
    before = {path: path.read_bytes() for path in files.values()}
    args = [part.format(**names) for part in command]
    result = run(*args, "--graph-url", url) if command[0] != "normalize" else run(*args)
    assert result.exit_code == 2, result.output
    assert "writing it would destroy that input" in result.output
    assert {path: path.read_bytes() for path in files.values()} == before


def test_the_library_refuses_to_normalise_a_file_onto_itself(write_file):
    source = write_file("in.csv", SOURCE)
    with pytest.raises(InputError, match="writing it would destroy that input"):
        bulkphone._runs.normalize_file(source, source)
    assert source.read_text() == SOURCE


def test_applying_a_plan_onto_its_own_file_is_refused(reviewed):
    tenant, url, plan_path, checksum, _ = reviewed
    before = plan_path.read_bytes()
    result = run("apply", "--plan", plan_path, "--approve", checksum, "--report", plan_path, "--graph-url", url)
    assert result.exit_code == 2 and plan_path.read_bytes() == before and tenant.writes == []


# ---- one run per journal ------------------------------------------------------------------------------


def test_a_second_run_on_a_journal_in_use_stops_naming_the_holder(tenant_and_url, write_file, tmp_path):
    tenant, url = tenant_and_url
    source = write_file("in.csv", "user,mobile\nbob@contoso.com,+1 425 555 0101\n")
    with Journal(tmp_path / "run.sqlite", purpose="bulkphone apply"):
        result = run("apply", source, "--report", tmp_path / "r.csv", "--journal", tmp_path / "run.sqlite", "--graph-url", url)
        assert result.exit_code == 2
        assert f"another bulkphone run is using this journal (process {os.getpid()} on " in result.output
        assert "bulkphone apply started" in result.output
    assert tenant.writes == [] and not (tmp_path / "r.csv").exists()
    after = run("apply", source, "--report", tmp_path / "r.csv", "--journal", tmp_path / "run.sqlite", "--graph-url", url)
    assert after.exit_code == 0, after.output  # the lock went with the holder
    assert len(tenant.writes) == 1


def test_a_journal_is_held_until_closed_even_within_one_process(tmp_path):
    first = Journal(tmp_path / "j.sqlite")
    with pytest.raises(JournalInUseError):
        Journal(tmp_path / "j.sqlite")
    first.close()
    Journal(tmp_path / "j.sqlite").close()


def test_two_apply_processes_on_one_journal_write_each_change_once(tmp_path):
    tenant = SimTenant(faults=Faults(latency=0.05))
    users = [f"user{i}@contoso.com" for i in range(40)]
    for user in users:
        tenant.add_user(user)
    source = tmp_path / "in.csv"
    source.write_text("user,mobile,office\n" + "".join(f"{u},+1 42555501{i:02d},+1 42555502{i:02d}\n" for i, u in enumerate(users)))
    with serve(tenant) as url:
        command = [sys.executable, "-m", "bulkphone", "apply", str(source), "--graph-url", url, "--journal",
                   str(tmp_path / "shared.sqlite"), "--max-writes-per-second", "40"]
        env = {**os.environ, **ENV}
        first = subprocess.Popen(command + ["--report", str(tmp_path / "first.csv")], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        lock = tmp_path / "shared.sqlite.lock"
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.stat().st_size > 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        second = subprocess.run(command + ["--report", str(tmp_path / "second.csv")], env=env, capture_output=True,
                                text=True, timeout=60)
        first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 2
    assert f"another bulkphone run is using this journal (process {first.pid} on " in second.stderr
    assert len(tenant.writes) == 80  # 40 users x 2 numbers, each written once
    assert tenant.state() == {u: {"mobile": f"+1 42555501{i:02d}", "office": f"+1 42555502{i:02d}"} for i, u in enumerate(users)}


# ---- private files ------------------------------------------------------------------------------------


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_reports_summaries_pages_and_journals_are_readable_by_their_owner_only(tenant_and_url, write_file, tmp_path):
    tenant, url = tenant_and_url
    old = os.umask(0o022)
    try:
        source = write_file("in.csv", "user,mobile\nann@contoso.com,+1 425 555 0100\nbob@contoso.com,+1 425 555 0101\n")
        earlier = tmp_path / "out" / "results.csv"
        earlier.parent.mkdir(mode=0o755)
        earlier.write_text("an earlier report, world-readable\n")
        os.chmod(earlier, 0o644)
        assert run("normalize", source, "--report", tmp_path / "out" / "normalized.csv", "--default-region", "US").exit_code == 0
        assert run("plan", source, "--report", tmp_path / "out" / "plan.csv", "--graph-url", url).exit_code == 0
        assert run("apply", source, "--report", earlier, "--graph-url", url).exit_code == 0
        users = write_file("users.csv", "user\nann@contoso.com\n")
        assert run("export", "--users", users, "--report", tmp_path / "new" / "export.csv", "--graph-url", url).exit_code == 0
    finally:
        os.umask(old)
    kept = [p for p in (tmp_path / "out").iterdir() if re.fullmatch(r"results\.\d{8}T\d{6}Z\.csv", p.name)]
    assert [p.read_text() for p in kept] == ["an earlier report, world-readable\n"]  # kept, not overwritten
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p not in kept)
    assert written == sorted([
        "normalized.csv", "plan.csv", "plan.summary.json", "plan.html", "results.csv", "results.summary.json",
        "results.html", "results.csv.journal.sqlite", "results.csv.journal.sqlite.lock",
    ])  # and no temporary files left behind
    assert {name: _mode(tmp_path / "out" / name) for name in written} == dict.fromkeys(written, 0o600)
    assert _mode(tmp_path / "new" / "export.csv") == 0o600
    assert _mode(tmp_path / "out") == 0o755  # folders stay as the user made them
    assert _mode(tmp_path / "new") == 0o755  # ... or as the user's umask makes them


def test_a_journal_and_its_write_ahead_files_are_private_while_in_use(tmp_path):
    old = os.umask(0o022)
    try:
        with Journal(tmp_path / "j.sqlite") as journal:
            journal.db.execute("INSERT INTO verified VALUES ('ann@contoso.com', 'mobile', '+1 4255550100', 1)")
            files = sorted(tmp_path.iterdir())
            assert [f.name for f in files] == ["j.sqlite", "j.sqlite-shm", "j.sqlite-wal", "j.sqlite.lock"]
            assert {f.name: _mode(f) for f in files} == dict.fromkeys((f.name for f in files), 0o600)
    finally:
        os.umask(old)


def test_without_a_place_for_the_plan_key_the_plan_is_unsigned_and_needs_approval(tenant_and_url, write_file, tmp_path, monkeypatch):
    tenant, url = tenant_and_url
    not_a_folder = tmp_path / "home-is-a-file"  # no key can be made below it, even by root
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(not_a_folder / "config"))
    source = write_file("in.csv", "user,mobile\nbob@contoso.com,+1 425 555 0101\n")
    planned = run("plan", source, "--report", tmp_path / "plan.csv", "--graph-url", url)
    assert planned.exit_code == 0, planned.output
    rows = read_rows(tmp_path / "plan.csv")
    assert {row["planSignature"] for row in rows} == {""}
    unsigned = run("apply", "--plan", tmp_path / "plan.csv", "--report", tmp_path / "r.csv", "--graph-url", url)
    assert unsigned.exit_code == 2 and tenant.writes == []
    approved = run("apply", "--plan", tmp_path / "plan.csv", "--approve", rows[0]["planChecksum"], "--report",
                   tmp_path / "r.csv", "--graph-url", url)
    assert approved.exit_code == 0, approved.output
    assert tenant.state()["bob@contoso.com"] == {"mobile": "+1 4255550101"}
