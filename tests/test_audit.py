"""bulkphone audit (issue 18): who is locked out when Microsoft-provided SMS and voice stop,
through the registration report and through each user's methods, against the simulated tenant."""

import asyncio
import csv
import os
import subprocess

import pytest
from click.testing import CliRunner

import bulkphone
from bulkphone.cli import main
from bulkphone.sim import APP_TOKEN, Principal, SimTenant, serve

from test_summaries import browser

EVERYTHING = frozenset({"UserAuthenticationMethod.ReadWrite.All", "User.Read.All", "GroupMember.Read.All",
                        "AuditLog.Read.All"})
WITHOUT_REPORT = EVERYTHING - {"AuditLog.Read.All"}
EXPECTED = {
    "phil": "phone-only", "ada": "phone-only", "gus": "phone-only",
    "dan": "phone-default", "fay": "phone-default",
    "nia": "no-mfa", "eli": "no-mfa",
    "ray": "ready", "sam": "ready", "kim": "ready",
}


def build(tenant: SimTenant) -> SimTenant:
    add = tenant.add_user
    add("phil@contoso.com", {"mobile": "+44 7911123456"}, default_method="mobile")
    add("ada@contoso.com", {"office": "+1 4255550100"}, default_method="office", admin=True)
    add("gus@fabrikam.com", {"mobile": "+33 612345678"}, user_type="Guest")
    add("dan@contoso.com", {"mobile": "+44 7911000001"}, default_method="mobile", other_methods=["microsoftAuthenticator"])
    add("fay@contoso.com", {"mobile": "+44 7911000002"}, default_method="voiceMobile", other_methods=["fido2"])
    add("nia@contoso.com")
    add("eli@contoso.com", other_methods=["email"])
    add("ray@contoso.com", other_methods=["microsoftAuthenticator"], default_method="push")
    add("sam@contoso.com", {"mobile": "+44 7911000003"}, default_method="mobile", other_methods=["fido2"],
        system_preferred=True)
    add("kim@contoso.com", {"mobile": "+44 7911000004"}, default_method="push", other_methods=["microsoftAuthenticator"])
    return tenant


@pytest.fixture
def audited(tmp_path):
    tenant = build(SimTenant())
    tenant.tokens[APP_TOKEN] = Principal(EVERYTHING)
    tenant.tokens["no-report"] = Principal(WITHOUT_REPORT)
    with serve(tenant) as url:
        yield tenant, url


def audit(url, tmp_path, *args, token=APP_TOKEN, name="audit.csv"):
    result = CliRunner().invoke(main, ["audit", "--report", str(tmp_path / name), "--graph-url", url, *map(str, args)],
                                env={"BULKPHONE_ACCESS_TOKEN": token})
    rows = read(tmp_path / name) if (tmp_path / name).exists() else []
    return result, rows


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def categories(rows):
    return {row["user"].split("@")[0]: row["category"] for row in rows}


def test_the_report_and_the_fallback_give_the_same_categories_every_user_once(audited, tmp_path):
    tenant, url = audited
    by_report, report_rows = audit(url, tmp_path, name="report.csv")
    assert by_report.exit_code == 0, by_report.output
    assert "read from the registration report" in by_report.output
    by_methods, methods_rows = audit(url, tmp_path, token="no-report", name="methods.csv")
    assert by_methods.exit_code == 0, by_methods.output
    assert "the registration report wasn't used (the app lacks AuditLog.Read.All" in by_methods.output
    assert categories(report_rows) == categories(methods_rows) == EXPECTED
    assert sorted(row["user"] for row in report_rows) == sorted(user.upn for user in tenant.users.values())
    report, methods = ({row["user"]: row for row in rows} for rows in (report_rows, methods_rows))
    # What each source says, and what it doesn't: never guessed.
    assert report["ada@contoso.com"]["isAdmin"] == "yes" and methods["ada@contoso.com"]["isAdmin"] == ""
    assert report["gus@fabrikam.com"]["isGuest"] == methods["gus@fabrikam.com"]["isGuest"] == "yes"
    assert report["phil@contoso.com"]["phoneNumbers"] == "not read"
    assert methods["phil@contoso.com"]["phoneNumbers"] == "mobile=+44 7911123456"
    assert report["gus@fabrikam.com"]["blockedFrom"] == "2027-07-01"  # external users: 1 July 2027
    assert report["phil@contoso.com"]["blockedFrom"] == "2027-02-01"
    assert report["ada@contoso.com"]["blockedFrom"].startswith("2027-02-01 (2027-07-01 for a Global Administrator)")
    assert report["dan@contoso.com"]["proposedDefault"] == "push" and report["fay@contoso.com"]["proposedDefault"] == "system"
    assert "signs in with sms by default" in report["dan@contoso.com"]["reason"]
    assert tenant.writes == []


def test_the_fallback_tells_admins_from_the_directorys_role_assignments(audited, tmp_path):
    tenant, url = audited
    rob = tenant.add_user("rob@contoso.com", {"mobile": "+44 7911000005"}, default_method="mobile")
    tenant.add_group("Helpdesk admins", [tenant.add_group("Tier 1", [rob])], admin=True)  # a role through a group
    tenant.tokens["roles"] = Principal(WITHOUT_REPORT | {"RoleManagement.Read.Directory"})
    by_report, report_rows = audit(url, tmp_path, name="report.csv")
    by_roles, role_rows = audit(url, tmp_path, token="roles", name="roles.csv")
    assert by_roles.exit_code == 0, by_roles.output
    assert "admin isn't known" not in by_roles.output
    admins = {row["user"].split("@")[0]: row["isAdmin"] for row in role_rows}
    assert admins == {row["user"].split("@")[0]: row["isAdmin"] for row in report_rows}
    assert {user for user, said in admins.items() if said == "yes"} == {"ada", "rob"} and set(admins.values()) == {"yes", "no"}
    rows = {row["user"]: row for row in role_rows}
    assert rows["rob@contoso.com"]["blockedFrom"].startswith("2027-02-01 (2027-07-01 for a Global Administrator)")
    assert "admins are those the directory's role assignments name" in (tmp_path / "roles.html").read_text()
    # Without the permission, no one is said to be an admin or not, and the audit says why.
    unknown, unknown_rows = audit(url, tmp_path, token="no-report", name="unknown.csv")
    assert {row["isAdmin"] for row in unknown_rows} == {""}
    assert "who is an admin isn't known: reading the directory's role assignments was refused" in unknown.output
    assert "RoleManagement.Read.Directory" in unknown.output


def test_without_the_licence_the_audit_says_so_and_reads_the_methods(audited, tmp_path):
    tenant, url = audited
    tenant.premium = False
    result, rows = audit(url, tmp_path)
    assert result.exit_code == 0, result.output
    assert "the tenant has no Entra ID P1/P2 licence, which the report needs" in result.output
    assert categories(rows) == EXPECTED and {row["source"] for row in rows} == {"methods"}


def test_with_neither_source_allowed_the_audit_stops_with_exit_2_naming_the_permissions(audited, tmp_path):
    tenant, url = audited
    tenant.tokens["phones-only"] = Principal(frozenset({"UserAuthMethod-Phone.ReadWrite.All", "User.Read.All"}))
    result, rows = audit(url, tmp_path, token="phones-only")
    assert result.exit_code == 2
    assert "AuditLog.Read.All" in result.output and "UserAuthenticationMethod.Read.All" in result.output
    assert "Fix:" in result.output and rows == []


def test_a_user_that_cant_be_found_is_unread_and_exit_1(audited, tmp_path, write_file):
    tenant, url = audited
    users = write_file("users.csv", "user\nphil@contoso.com\nnobody@contoso.com\n")
    result, rows = audit(url, tmp_path, "--users", users)
    assert result.exit_code == 1 and "1 users couldn't be read, e.g. nobody@contoso.com" in result.output
    assert categories(rows) == {"phil": "phone-only", "nobody": "unread"}


def test_a_group_is_audited_by_its_members(audited, tmp_path):
    tenant, url = audited
    people = {user.upn.split("@")[0]: user for user in tenant.users.values()}
    inner = tenant.add_group("Sales (Paris)", [people["dan"], "a-device"])
    tenant.add_group("Sales", [people["phil"], inner])
    result, rows = audit(url, tmp_path, "--group", "Sales")
    assert result.exit_code == 0, result.output
    assert categories(rows) == {"phil": "phone-only", "dan": "phone-default"}


def test_the_proposed_fixes_applied_move_the_defaults_and_a_second_audit_shows_them_ready(audited, tmp_path):
    tenant, url = audited
    first, _ = audit(url, tmp_path, "--propose", tmp_path / "fixes.csv", "--needs-passkey", tmp_path / "campaign.csv")
    assert first.exit_code == 0, first.output
    assert read(tmp_path / "fixes.csv") == [{"user": "dan@contoso.com", "defaultMethod": "push"},
                                            {"user": "fay@contoso.com", "defaultMethod": "system"}]
    campaign = {row["user"].split("@")[0]: row["category"] for row in read(tmp_path / "campaign.csv")}
    assert campaign == {"phil": "phone-only", "ada": "phone-only", "gus": "phone-only", "nia": "no-mfa", "eli": "no-mfa"}
    applied = CliRunner().invoke(main, ["apply", str(tmp_path / "fixes.csv"), "--report", str(tmp_path / "results.csv"),
                                        "--graph-url", url], env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})
    assert applied.exit_code == 0, applied.output
    second, rows = audit(url, tmp_path, name="audit-after.csv")
    assert second.exit_code == 0
    after = categories(rows)
    assert after["dan"] == after["fay"] == "ready"
    assert {user: category for user, category in after.items() if user not in ("dan", "fay")} == {
        user: category for user, category in EXPECTED.items() if user not in ("dan", "fay")}


def test_a_killed_audit_resumes_where_it_stopped(tmp_path, clock):
    from conftest import make_connection

    tenant = SimTenant(clock=clock)
    tenant.tokens[APP_TOKEN] = Principal(WITHOUT_REPORT)  # the fallback reads in slices: the longer path
    for i in range(450):
        tenant.add_user(f"user{i:03d}@contoso.com", {"mobile": f"+44 7911{i:06d}"} if i % 2 else {})
    journal_path = tmp_path / "audit.journal.sqlite"

    async def run(stop_after: int | None):
        stop = asyncio.Event()

        def progress(done, total):
            if stop_after is not None and done >= stop_after:
                stop.set()

        with bulkphone.Journal(journal_path) as journal:
            connection = make_connection(tenant, clock)
            result = await bulkphone.audit_async(connection, journal=journal, progress=progress, stop=stop)
            return result, connection.counters.reads

    killed, _ = asyncio.run(run(stop_after=200))
    assert killed.stopped and 0 < len(killed.rows) < 450
    resumed, reads = asyncio.run(run(stop_after=None))
    assert not resumed.stopped and resumed.resumed_users == len(killed.rows)
    assert sorted(row.user for row in resumed.rows) == sorted(u.upn for u in tenant.users.values())  # each once
    assert reads < 450  # the users read before the kill aren't read again
    assert resumed.counts()["phone-only"] == 225 and resumed.counts()["no-mfa"] == 225


def test_numbers_graph_masks_are_marked_never_guessed(audited, tmp_path):
    tenant, url = audited
    tenant.tokens["admin"] = Principal(WITHOUT_REPORT, delegated=True, upn="someone@contoso.com")
    result, rows = audit(url, tmp_path, token="admin")
    phil = next(row for row in rows if row["user"] == "phil@contoso.com")
    assert phil["phoneNumbers"] == "mobile=masked" and phil["category"] == "phone-only"


@pytest.mark.skipif(not browser() and os.environ.get("CI") != "true", reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_real_browser_renders_the_audit_page(audited, tmp_path):
    tenant, url = audited
    result, rows = audit(url, tmp_path, "--propose", tmp_path / "fixes.csv")
    assert result.exit_code == 0
    page = tmp_path / "audit.html"
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "https://" not in text
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "audit.png"
    subprocess.run([browser(), *flags, f"--screenshot={shot}", "--window-size=1200,1400", page.as_uri()],
                   check=True, capture_output=True, timeout=90)
    assert shot.stat().st_size > 20_000
    dom = subprocess.run([browser(), *flags, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
                         timeout=90).stdout
    assert 'id="total-phone-only">phone-only<b>3</b>' in dom and 'id="total-phone-default">phone-default<b>2</b>' in dom
    assert 'id="total-no-mfa">no MFA<b>2</b>' in dom and 'id="total-ready">ready<b>3</b>' in dom
    assert "From 2027-02-01" in dom and "2027-07-01 for Global Administrators and external users" in dom
    admins = dom[dom.index('id="phone-only-admins"'):]
    assert "<td>ada@contoso.com</td>" in admins[:admins.index("</table>")]
    assert dom.index('id="phone-only-admins"') < dom.index('id="phone-only-users"')  # admins first
    assert 'data-name="phone-only">3<' in dom  # the chart
    assert "1 to push, 1 to system" in dom
