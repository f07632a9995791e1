"""summary.json and report.html: the numbers equal the CSV's, and a real browser shows them."""

import csv
import json
import os
import shutil
import subprocess
from collections import Counter

import pytest
from click.testing import CliRunner

import jwt

from bulkphone.cli import main
from bulkphone.sim import Principal, SimTenant, serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENANT = os.path.join(ROOT, "bulkphone", "sim", "demo_tenant.json")
PHONES = os.path.join(ROOT, "sample_data", "phones.csv")
DIRECTORY = os.path.join(ROOT, "sample_data", "directory.csv")
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
# An app token as Entra issues it (unsigned here): it names the tenant, which the report shows.
TOKEN = jwt.encode({"tid": TENANT_ID, "roles": ["UserAuthenticationMethod.ReadWrite.All"]}, "a key nobody checks: the simulated tenant reads the claims", algorithm="HS256")


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("summaries")
    tenant = SimTenant.from_json(TENANT)
    tenant.tokens[TOKEN] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All"}))
    with serve(tenant) as url:
        result = CliRunner().invoke(
            main,
            ["apply", PHONES, "--users", DIRECTORY, "--report", str(tmp_path / "results.csv"), "--graph-url", url,
             "--wait-for-new-users", "3"],
            env={"BULKPHONE_ACCESS_TOKEN": TOKEN},
        )
    assert result.exit_code == 1, result.output  # the sample has rows to fix
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    summary = json.loads((tmp_path / "results.summary.json").read_text(encoding="utf-8"))
    return rows, summary, tmp_path / "results.html"


def test_summary_numbers_equal_the_csv(applied):
    rows, summary, _ = applied
    assert summary["rows"] == len(rows) == 90  # 18 input rows, 5 cells each (3 numbers, 2 settings)
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
    assert 'id="total-ok">ok<b>76</b>' in text


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
    assert f'id="total-needs-a-person">skipped, needs a person<b>{summary["skipped_needs_a_person"]}</b>' in dom
    # What a change board signs: when, which tenant, which plan, and every change, open on the page.
    assert summary["run"]["started_utc"] in dom and summary["run"]["started_utc"].endswith(" UTC")
    assert f'<b id="tenant">{TENANT_ID}</b> (users at contoso.com)' in dom
    assert f'<code id="plan-checksum">{summary["plan_checksum"]}</code>' in dom and len(summary["plan_checksum"]) == 64
    changes = dom[dom.index('<table id="changes">'):]
    assert "<details" not in changes[:changes.index("</table>")]
    for change in summary["changes"][:3]:
        assert f'<td>{change["user"]}</td><td>{change["phoneType"]}</td><td>{change["action"]}</td>' in changes
    assert "too short for GB (7 digits, needs 9–10)" in dom
    assert 'data-name="create">15<' in dom  # 14 numbers and one user Graph never knew


def test_the_summary_says_when_where_and_what_changed(applied):
    rows, summary, _ = applied
    assert summary["run"]["tenant_id"] == TENANT_ID and summary["run"]["users_domain"] == "contoso.com"
    assert summary["run"]["graph_url"].startswith("http://127.0.0.1:")
    assert len(summary["changes"]) == sum(1 for row in rows if row["action"] in ("create", "update", "delete"))
    update = next(change for change in summary["changes"] if change["action"] == "update")
    row = next(r for r in rows if r["row"] == str(update["row"]) and r["phoneType"] == update["phoneType"])
    assert (update["old"], update["new"], update["status"]) == (row["currentNumber"], row["phoneNumber"], row["status"])
    assert update["old"] and update["new"] and update["old"] != update["new"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert summary["skipped_needs_a_person"] == sum(1 for r in skipped if r["error"]) > 0
    assert summary["skipped_on_purpose"] == sum(1 for r in skipped if not r["error"])
    assert summary["skipped_needs_a_person"] + summary["skipped_on_purpose"] == summary["statuses"]["skipped"]
