"""Apply a reviewed plan exactly: checksum, drift, nothing else."""

import csv

import pytest
from click.testing import CliRunner

from bulkphone.cli import main
from bulkphone._errors import InputError
from bulkphone._model import Action, Mode
from bulkphone._planfile import read_plan, write_plan
from bulkphone._planner import Plan, PlanItem
from bulkphone.sim import APP_TOKEN, SimTenant, serve

ENV = {"BULKPHONE_ACCESS_TOKEN": APP_TOKEN}


def sample():
    return Plan(
        mode=Mode.UPSERT,
        items=(
            PlanItem(2, "ann@contoso.com", "mobile", Action.UPDATE, number="+1 4255550100", current="+1 4255550000", raw="425 555 0100", region="US"),
            PlanItem(2, "ann@contoso.com", "office", Action.NOOP, note="blank cell"),
            PlanItem(3, "bob@contoso.com", "mobile", Action.SKIP, error="too short for GB (7 digits, needs 9–10)"),
        ),
    )


def test_a_plan_round_trips_through_its_csv(tmp_path):
    write_plan(sample(), tmp_path / "plan.csv")
    assert read_plan(tmp_path / "plan.csv") == sample()


@pytest.mark.parametrize("column, value", [("phoneNumber", "+1 4255559999"), ("action", "delete"), ("user", "eve@contoso.com")])
def test_an_edited_plan_is_refused(tmp_path, column, value):
    path = write_plan(sample(), tmp_path / "plan.csv").path
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[0][column] = value
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(InputError, match="changed after bulkphone made it"):
        read_plan(path)


def test_a_csv_that_is_not_a_plan_says_so(tmp_path):
    path = tmp_path / "input.csv"
    path.write_text("user,mobile\nann@contoso.com,+1 425 555 0100\n")
    with pytest.raises(InputError, match="not a bulkphone plan"):
        read_plan(path)


@pytest.fixture
def tenant_and_url():
    tenant = SimTenant()
    tenant.add_user("ann@contoso.com", {"mobile": "+1 4255550000"})
    tenant.add_user("bob@contoso.com")
    tenant.add_user("cy@contoso.com")
    with serve(tenant) as url:
        yield tenant, url


def make_plan(tmp_path, url):
    source = tmp_path / "in.csv"
    source.write_text("user,mobile\nann@contoso.com,+1 425 555 0100\nbob@contoso.com,+1 425 555 0101\ncy@contoso.com,+1 425 555 0102\n")
    result = CliRunner().invoke(main, ["plan", str(source), "--report", str(tmp_path / "plan.csv"), "--graph-url", url], env=ENV)
    assert result.exit_code == 0, result.output
    return tmp_path / "plan.csv"


def apply_plan(plan, tmp_path, url):
    return CliRunner().invoke(main, ["apply", "--plan", str(plan), "--report", str(tmp_path / "results.csv"), "--graph-url", url], env=ENV)


def test_apply_plan_does_what_was_reviewed(tenant_and_url, tmp_path):
    tenant, url = tenant_and_url
    plan = make_plan(tmp_path, url)
    result = apply_plan(plan, tmp_path, url)
    assert result.exit_code == 0, result.output
    assert tenant.state() == {
        "ann@contoso.com": {"mobile": "+1 4255550100"},
        "bob@contoso.com": {"mobile": "+1 4255550101"},
        "cy@contoso.com": {"mobile": "+1 4255550102"},
    }


def test_users_changed_since_the_plan_are_skipped_and_the_rest_applied(tenant_and_url, tmp_path):
    tenant, url = tenant_and_url
    plan = make_plan(tmp_path, url)
    tenant.users[next(u for u in tenant.users if tenant.users[u].upn == "bob@contoso.com")].methods["mobile"] = "+1 2065550199"
    tenant.users[next(u for u in tenant.users if tenant.users[u].upn == "ann@contoso.com")].methods["mobile"] = "+1 2065550100"
    result = apply_plan(plan, tmp_path, url)
    assert result.exit_code == 1
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        rows = {r["user"]: r for r in csv.DictReader(handle)}
    assert rows["bob@contoso.com"]["status"] == "skipped"
    assert rows["bob@contoso.com"]["error"].startswith("changed since plan: mobile is now +1 2065550199, the plan saw empty")
    assert rows["ann@contoso.com"]["error"].startswith("changed since plan: mobile is now +1 2065550100, the plan saw +1 4255550000")
    assert rows["cy@contoso.com"]["status"] == "ok"
    assert [w["user"] for w in tenant.writes] == ["cy@contoso.com"]


def test_a_reviewed_plan_applied_again_is_already_done_and_exits_0(tenant_and_url, tmp_path):
    tenant, url = tenant_and_url
    plan = make_plan(tmp_path, url)
    assert apply_plan(plan, tmp_path, url).exit_code == 0
    first_results = (tmp_path / "results.csv").read_text()
    writes = len(tenant.writes)
    again = apply_plan(plan, tmp_path, url)
    assert again.exit_code == 0, again.output
    assert len(tenant.writes) == writes  # nothing written the second time
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["action"], r["status"]) for r in rows} == {("noop", "ok")}
    assert all(r["note"].startswith("already as planned") for r in rows)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("results.") and p.name.endswith("Z.csv")]
    assert [p.read_text() for p in kept] == [first_results]  # the real run's report is kept, not overwritten
    assert "the earlier report of that name is kept as " + kept[0].name in again.output


def test_a_user_half_way_to_the_plan_gets_only_what_is_left(tenant_and_url, tmp_path):
    tenant, url = tenant_and_url
    source = tmp_path / "in.csv"
    source.write_text("user,mobile,office\nbob@contoso.com,+1 425 555 0101,+1 206 555 0101\n")
    assert CliRunner().invoke(main, ["plan", str(source), "--report", str(tmp_path / "plan.csv"), "--graph-url", url],
                              env=ENV).exit_code == 0
    bob = next(u for u in tenant.users.values() if u.upn == "bob@contoso.com")
    bob.methods["mobile"] = "+1 4255550101"  # made by an earlier, interrupted apply of this plan
    result = apply_plan(tmp_path / "plan.csv", tmp_path, url)
    assert result.exit_code == 0, result.output
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        rows = {r["phoneType"]: (r["action"], r["status"]) for r in csv.DictReader(handle)}
    assert rows == {"mobile": ("noop", "ok"), "office": ("create", "ok")}
    assert [(w["kind"], w["phoneNumber"]) for w in tenant.writes] == [("create", "+1 2065550101")]


def test_an_edited_plan_file_is_exit_2_and_writes_nothing(tenant_and_url, tmp_path):
    tenant, url = tenant_and_url
    plan = make_plan(tmp_path, url)
    plan.write_text(plan.read_text().replace("+1 4255550101", "+1 4255550666"))
    result = apply_plan(plan, tmp_path, url)
    assert result.exit_code == 2 and "changed after bulkphone made it" in result.output
    assert tenant.writes == []


def test_input_and_plan_together_is_a_usage_error(tenant_and_url, tmp_path):
    _, url = tenant_and_url
    plan = make_plan(tmp_path, url)
    result = CliRunner().invoke(main, ["apply", str(tmp_path / "in.csv"), "--plan", str(plan), "--report", str(tmp_path / "r.csv")], env=ENV)
    assert result.exit_code == 2 and "not both" in result.output
