"""The first hour with bulkphone: Excel habits, prefixes people write, and messages that help."""

import csv
import os
import signal
import subprocess
import sys

from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

import bulkphone
from bulkphone._normalize import normalize_number
from bulkphone.cli import main
from bulkphone.sim import APP_TOKEN, SimTenant, serve

ANN = "ann@contoso.com"
ROOT = Path(__file__).resolve().parent.parent


def normalize(*args):
    return CliRunner().invoke(main, ["normalize", *map(str, args)])


def rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def workbook(tmp_path):
    book = openpyxl.Workbook()
    book.active.title = "Read me"
    book.active.append(["This workbook lists the pilot group's phones on the next sheet."])
    phones = book.create_sheet("Phones")
    phones.append(["user", "mobile"])
    phones.append([ANN, "+44 7911 123456"])
    path = tmp_path / "phones.xlsx"
    book.save(path)
    return path


@pytest.mark.parametrize("sheet", ["Phones", "phones", "2"])
def test_a_workbook_sheet_is_chosen_by_name_or_position(workbook, tmp_path, sheet):
    done = normalize(workbook, "--sheet", sheet, "--report", tmp_path / "r.csv")
    assert done.exit_code == 0, done.output
    assert [(row["user"], row["phoneNumber"]) for row in rows(tmp_path / "r.csv")] == [(ANN, "+44 7911123456")]


def test_without_the_right_sheet_the_message_lists_the_sheets(workbook, tmp_path):
    first = normalize(workbook, "--report", tmp_path / "r.csv")
    assert first.exit_code == 2
    assert "no user column on sheet 'Read me'" in first.output
    assert "choose the sheet that has them (--sheet; this workbook's sheets: 'Read me', 'Phones')" in first.output
    missing = normalize(workbook, "--sheet", "Sheet9", "--report", tmp_path / "r.csv")
    assert missing.exit_code == 2 and "no sheet 'Sheet9' (this workbook's sheets: 'Read me', 'Phones')" in missing.output
    assert not (tmp_path / "r.csv").exists()


def test_a_csv_has_no_sheets(write_file, tmp_path):
    source = write_file("in.csv", f"user,mobile\n{ANN},+44 7911 123456\n")
    done = normalize(source, "--sheet", "2", "--report", tmp_path / "r.csv")
    assert done.exit_code == 2 and "is not a workbook, so it has no sheets. Fix: leave out --sheet" in done.output


def test_a_job_file_chooses_its_sheet(workbook, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[input]\nfile = "phones.xlsx"\nsheet = 2\n')
    assert bulkphone.load_job(job).sheet == "2"


def test_excel_s_sep_line_names_the_separator_and_is_not_a_row(tmp_path):
    source = tmp_path / "excel.csv"
    source.write_bytes(f"sep=;\r\nuser;mobile;office\r\n{ANN};+44 7911 123456;+44 20 7946 0958\r\n".encode())
    done = normalize(source, "--report", tmp_path / "r.csv")
    assert done.exit_code == 0, done.output
    report = rows(tmp_path / "r.csv")
    assert [(row["row"], row["phoneType"], row["phoneNumber"]) for row in report] == [
        ("2", "mobile", "+44 7911123456"), ("2", "office", "+44 2079460958")]  # row 2, as Excel shows it


@pytest.mark.parametrize("written, region, expected", [
    ("0044 20 7946 0958", "US", "+44 2079460958"),  # 00 wins where the region dials out with 011
    ("011 44 20 7946 0958", "US", "+44 2079460958"),
    ("0044 20 7946 0958", "GB", "+44 2079460958"),
    ("0044 20 7946 0958", "", "+44 2079460958"),
    ("0061 2 9374 4000", "JP", "+61 293744000"),  # Japan dials out with 010
])
def test_a_00_international_prefix_is_read_in_every_region(written, region, expected):
    assert normalize_number(written, region).number == expected


def test_a_00_number_that_is_neither_keeps_the_national_reason():
    assert normalize_number("00 999 123", "US").error == "too short for US (8 digits, needs 10)"


def test_a_header_only_input_is_a_file_to_fix_and_leaves_no_report(write_file, tmp_path):
    source = write_file("in.csv", "user,mobile\n")
    done = normalize(source, "--report", tmp_path / "r.csv")
    assert done.exit_code == 2 and "no data after the header" in done.output
    assert not (tmp_path / "r.csv").exists()


def test_an_apply_that_fails_to_start_leaves_no_journal_behind(write_file, tmp_path):
    source = write_file("in.csv", "name,phone\nann,1\n")
    tenant = SimTenant()
    with serve(tenant) as url:
        done = CliRunner().invoke(main, ["apply", str(source), "--report", str(tmp_path / "r.csv"), "--graph-url", url],
                                  env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})
    assert done.exit_code == 2 and "no user column" in done.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]


def test_a_journal_that_holds_a_run_is_kept(write_file, tmp_path):
    tenant = SimTenant()
    tenant.add_user(ANN)
    source = write_file("in.csv", f"user,mobile\n{ANN},+44 7911 123456\n")
    with serve(tenant) as url:
        done = CliRunner().invoke(main, ["apply", str(source), "--report", str(tmp_path / "r.csv"), "--graph-url", url],
                                  env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})
    assert done.exit_code == 0, done.output
    assert (tmp_path / "r.csv.journal.sqlite").exists()  # --changed-only and resumes need it


def test_commands_that_never_write_do_not_list_a_write_rate():
    for command in ("plan", "check", "export"):
        assert "--max-writes-per-second" not in CliRunner().invoke(main, [command, "--help"]).output
    assert "--max-writes-per-second" in CliRunner().invoke(main, ["apply", "--help"]).output


def test_reads_made_one_by_one_are_not_said_to_be_in_batches():
    from bulkphone.cli import _reads

    assert _reads(14, 0, 0) == "14 reads"
    assert _reads(40, 40, 2) == "40 reads in 2 batches"
    assert _reads(45, 40, 2) == "45 reads (40 in 2 batches)"


def test_a_second_ctrl_c_says_why_it_quits(tmp_path):
    script = """
import asyncio, os, signal, sys
from bulkphone._console import use_human_logs
from bulkphone._runs import run_stoppable

use_human_logs(sys.stderr)

async def start(stop):
    os.kill(os.getpid(), signal.SIGINT)
    await stop.wait()
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(30)

run_stoppable(start)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130
    assert "bulkphone: run.abandoned: second interrupt: quitting at once; run the same command again to resume" in done.stderr


def test_the_demo_runs_from_an_installed_package_in_any_folder(tmp_path):
    """Installed as pyproject.toml says (sample_data inside the package, the report template
    beside the modules), not from a clone: the demo finds its data and writes reports for people."""
    import shutil
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"bulkphone.sample_data": "sample_data"}
    assert "*.csv" in setuptools["package-data"]["bulkphone.sample_data"]
    assert "*.html" in setuptools["package-data"]["bulkphone"]
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "bulkphone", site / "bulkphone", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "sample_data", site / "bulkphone" / "sample_data")
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "bulkphone", "demo"], cwd=elsewhere, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"for people: bulkphone-demo{os.sep}results.html" in done.stdout
    assert {"plan.html", "results.html", "results.summary.json"} <= {p.name for p in (elsewhere / "bulkphone-demo").iterdir()}


def test_the_sandbox_serves_a_seeded_tenant_until_ctrl_c(write_file, tmp_path):
    seed = write_file("seed.csv", f"user,mobile,office\n{ANN},+44 7911 123456,\nbob@contoso.com,N/A,020 7946 0958\n"
                                  "carl@contoso.com,12,\n")
    sandbox = subprocess.Popen([sys.executable, "-m", "bulkphone", "sandbox", "--seed", str(seed), "--default-region", "GB"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = sandbox.stdout.readline()
        url = first.split(" answers at ")[1].split(" ")[0]
        assert url.startswith("http://127.0.0.1:") and "of 3 users" in first
        mine = write_file("mine.csv", f"user,mobile,office\n{ANN},+44 7911 123457,\nbob@contoso.com,,020 7946 0958\n")
        planned = CliRunner().invoke(main, ["plan", str(mine), "--report", str(tmp_path / "plan.csv"), "--graph-url", url,
                                            "--default-region", "GB"],
                                     env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})
        assert planned.exit_code == 0, planned.output
        plan = {(row["user"], row["phoneType"]): (row["action"], row["currentNumber"]) for row in rows(tmp_path / "plan.csv")}
        assert plan == {(ANN, "mobile"): ("update", "+44 7911123456"), (ANN, "office"): ("noop", ""),
                        ("bob@contoso.com", "mobile"): ("noop", ""), ("bob@contoso.com", "office"): ("noop", "+44 2079460958")}
    finally:
        sandbox.send_signal(signal.SIGINT)
        out, err = sandbox.communicate(timeout=30)
    assert sandbox.returncode == 0
    assert "sandbox: stopped after 0 writes; nothing was kept." in out
    assert "left out of the tenant: row 4 carl@contoso.com mobile: too short for GB" in err
