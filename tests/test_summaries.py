"""summary.json and report.html: the numbers equal the CSV's, and a real browser shows them."""

import csv
import json
import os
import shutil
import subprocess
from collections import Counter

import pytest
from click.testing import CliRunner

from bulkphone.cli import main
from bulkphone.sim import APP_TOKEN, SimTenant, serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENANT = os.path.join(ROOT, "bulkphone", "sim", "demo_tenant.json")
PHONES = os.path.join(ROOT, "sample_data", "phones.csv")
DIRECTORY = os.path.join(ROOT, "sample_data", "directory.csv")


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("summaries")
    tenant = SimTenant.from_json(TENANT)
    with serve(tenant) as url:
        result = CliRunner().invoke(
            main,
            ["apply", PHONES, "--users", DIRECTORY, "--report", str(tmp_path / "results.csv"), "--graph-url", url,
             "--wait-for-new-users", "3"],
            env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN},
        )
    assert result.exit_code == 1, result.output  # the sample has rows to fix
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    summary = json.loads((tmp_path / "results.summary.json").read_text(encoding="utf-8"))
    return rows, summary, tmp_path / "results.html"


def test_summary_numbers_equal_the_csv(applied):
    rows, summary, _ = applied
    assert summary["rows"] == len(rows) == 54
    assert summary["actions"] == dict(Counter(r["action"] for r in rows))
    assert summary["statuses"] == dict(Counter(r["status"] for r in rows))
    errors = Counter(r["error"] for r in rows if r["error"])
    assert summary["errors"] == dict(errors)
    assert summary["warnings"] == dict(Counter(r["warning"] for r in rows if r["warning"]))
    assert summary["rows_by_error"]["too short for GB (7 digits, needs 9–10)"] == [9]
    assert summary["stats"]["writes"] >= 15 and summary["settings"]["mode"] == "upsert"


def test_html_is_self_contained(applied):
    _, _, page = applied
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text.replace("http://127.0.0.1", "") and "https://" not in text
    assert 'id="total-ok">ok<b>44</b>' in text


def browser():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not browser() and os.environ.get("CI") != "true", reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_real_browser_renders_the_report(applied, tmp_path):
    rows, summary, page = applied
    assert browser(), "CI must have chromium: .ci/run installs it"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    subprocess.run([browser(), *flags, f"--screenshot={shot}", "--window-size=1200,1400", page.as_uri()],
                   check=True, capture_output=True, timeout=90)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    dom = subprocess.run([browser(), *flags, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True, timeout=90).stdout
    assert f'id="total-ok">ok<b>{summary["statuses"]["ok"]}</b>' in dom
    assert f'id="total-skipped">skipped<b>{summary["statuses"]["skipped"]}</b>' in dom
    assert "too short for GB (7 digits, needs 9–10)" in dom
    assert 'data-name="create">15<' in dom  # 14 numbers and one user Graph never knew
