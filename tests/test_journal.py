"""The run journal, and resuming after a crash at any point."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import make_connection

import bulkphone
from bulkphone._executor import Outcome
from bulkphone._journal import Journal, RunRecorder, run_key
from bulkphone._model import Action, Mode, Status
from bulkphone._planner import Plan, PlanItem
from bulkphone._report import result_rows
from bulkphone.sim import APP_TOKEN, Faults, SimTenant, serve


def sample_plan():
    return Plan(
        mode=Mode.UPSERT,
        items=(
            PlanItem(2, "ann@contoso.com", "mobile", Action.CREATE, number="+1 4255550100"),
            PlanItem(2, "ann@contoso.com", "office", Action.NOOP),
            PlanItem(3, "bob@contoso.com", "mobile", Action.UPDATE, number="+1 4255550101", current="+1 4255550000"),
        ),
    )


def test_journal_keeps_the_plan_and_each_outcome(tmp_path):
    plan = sample_plan()
    with Journal(tmp_path / "j.sqlite") as journal:
        run_id = journal.begin("k", plan)
        recorder = journal.recorder(run_id, plan)
        recorder.started(plan.items[0])
        recorder.finished(plan.items[0], Outcome(Status.OK, attempts=2, sms_sign_in_state="notEnabled"))
        recorder.started(plan.items[2])
    with Journal(tmp_path / "j.sqlite") as journal:
        resumed = journal.resume("k")
        assert resumed.plan == plan
        assert resumed.done == {(2, "mobile"): Outcome(Status.OK, attempts=2, sms_sign_in_state="notEnabled")}
        assert resumed.in_doubt == {(3, "mobile")}
        assert journal.resume("other") is None
        journal.finish(resumed.run_id)
        assert journal.resume("k") is None
        assert journal.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_run_key_depends_on_every_part():
    assert run_key(b"a", "US") == run_key(b"a", "US")
    assert run_key(b"a", "US") != run_key(b"a", "GB")
    assert run_key(b"ab", "") != run_key(b"a", "b")


def test_unwritable_journal_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(bulkphone.InputError, match="can't open the run journal"):
        Journal(tmp_path / "file" / "j.sqlite")


class Crash(BaseException):
    """Stands in for SIGKILL: nothing after it runs, nothing is cleaned up."""


def crashing_recorder(at: str, after: int):
    calls = {"started": 0, "finished": 0}

    class Crashing(RunRecorder):
        def started(self, item):
            super().started(item)
            calls["started"] += 1
            if at == "after-started" and calls["started"] == after:
                raise Crash

        def finished(self, item, outcome):
            calls["finished"] += 1
            if at == "before-finished" and calls["finished"] == after:
                raise Crash  # the write landed, the journal never heard
            super().finished(item, outcome)
            if at == "after-finished" and calls["finished"] == after:
                raise Crash

    return Crashing


@pytest.mark.parametrize("at", ["after-started", "before-finished", "after-finished"])
@pytest.mark.parametrize("after", [1, 7, 23])
def test_resume_after_a_crash_writes_each_change_exactly_once(tenant, clock, write_file, tmp_path, monkeypatch, at, after):
    users = [f"user{i:02d}@contoso.com" for i in range(15)]
    for i, user in enumerate(users):
        tenant.add_user(user, {"office": "+1 4255559999"} if i % 3 == 0 else {})
    source = write_file(
        "in.csv",
        "user,mobile,alternateMobile,office\n"
        + "".join(f"{u},+1 425 555 01{i:02d},,+1 425 555 02{i:02d}\n" for i, u in enumerate(users)),
    )
    connection = make_connection(tenant, clock, max_concurrency=4)
    journal_path = tmp_path / "run.journal.sqlite"
    monkeypatch.setattr(Journal, "recorder", lambda self, run_id, plan: crashing_recorder(at, after)(self, run_id, plan.items))
    with pytest.raises(Crash), Journal(journal_path) as journal:
        bulkphone.apply(source, connection=connection, journal=journal)
    writes_before = len(tenant.writes)
    monkeypatch.undo()

    with Journal(journal_path) as journal:
        result = bulkphone.apply(source, connection=connection, journal=journal)
        assert journal.db.execute("SELECT COUNT(*) FROM runs WHERE finished IS NULL").fetchone() == (0,)
    expected = {u: {"mobile": f"+1 42555501{i:02d}", "office": f"+1 42555502{i:02d}"} for i, u in enumerate(users)}
    assert tenant.state() == expected
    assert len(tenant.writes) == 30  # every planned change landed exactly once, across both runs
    assert writes_before < 30
    # Other workers may finish what they had in flight before the crash takes them down.
    least = {"after-finished": after, "before-finished": after - 1}.get(at, max(0, after - 4))
    assert least <= result.stats["resumed"] <= after + 4
    rows = result_rows(result)
    assert sorted((r["row"], r["phoneType"]) for r in rows) == sorted((row, t) for row in range(2, 17) for t in ("mobile", "alternateMobile", "office"))
    assert {r["status"] for r in rows} == {"ok"}
    assert sum(r["action"] in ("create", "update") for r in rows) == 30


def test_a_finished_run_is_not_resumed_and_a_second_apply_writes_nothing(tenant, connection, write_file, tmp_path):
    tenant.add_user("ann@contoso.com")
    source = write_file("in.csv", "user,mobile\nann@contoso.com,+1 425 555 0100\n")
    with Journal(tmp_path / "j.sqlite") as journal:
        first = bulkphone.apply(source, connection=connection, journal=journal)
        second = bulkphone.apply(source, connection=connection, journal=journal)
    assert first.plan.write_count == 1 and second.plan.write_count == 0
    assert second.stats["resumed"] == 0
    assert len(tenant.writes) == 1


def read_rows(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def apply_command(source, report, url):
    env = {**os.environ, "BULKPHONE_ACCESS_TOKEN": APP_TOKEN, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "bulkphone", "apply", str(source), "--report", str(report), "--graph-url", url]
    return command, env


def big_input(tenant, tmp_path, count=80):
    users = [f"user{i:03d}@contoso.com" for i in range(count)]
    for user in users:
        tenant.add_user(user)
    source = tmp_path / "in.csv"
    source.write_text("user,mobile\n" + "".join(f"{u},+1 425 555 {i:04d}\n" for i, u in enumerate(users)))
    return source, {u: {"mobile": f"+1 425555{i:04d}"} for i, u in enumerate(users)}


def wait_for_writes(tenant, count, process, timeout=30):
    deadline = time.monotonic() + timeout
    while len(tenant.writes) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def test_sigkill_mid_apply_then_rerun_resumes(tmp_path):
    tenant = SimTenant(faults=Faults(latency=0.01, drop_after=0.05, seed=5))
    source, expected = big_input(tenant, tmp_path)
    report = tmp_path / "results.csv"
    with serve(tenant) as url:
        command, env = apply_command(source, report, url)
        process = subprocess.Popen(command + ["--max-writes-per-second", "40"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_writes(tenant, 32, process)
        process.kill()
        process.wait(timeout=10)
        killed_at = len(tenant.writes)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert 0 < killed_at < 80
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed a killed run" in rerun.stdout
    assert tenant.state() == expected
    assert len(tenant.writes) == 80
    rows = read_rows(report)
    assert sorted(int(r["row"]) for r in rows) == list(range(2, 82))
    assert {(r["action"], r["status"]) for r in rows} == {("create", "ok")}


def test_sigterm_stops_cleanly_with_a_report_and_the_next_apply_finishes(tmp_path):
    tenant = SimTenant(faults=Faults(latency=0.01))
    source, expected = big_input(tenant, tmp_path)
    report = tmp_path / "results.csv"
    with serve(tenant) as url:
        command, env = apply_command(source, report, url)
        process = subprocess.Popen(command + ["--max-writes-per-second", "40"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_writes(tenant, 20, process)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        stopped_at = len(tenant.writes)
        rows = read_rows(report)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "resume" in err
    assert len(rows) == 80
    done = [r for r in rows if r["status"] == "ok"]
    assert len(done) == stopped_at < 80
    assert all("resume" in r["error"] for r in rows if r["status"] == "skipped")
    assert rerun.returncode == 0, rerun.stderr
    assert tenant.state() == expected and len(tenant.writes) == 80
