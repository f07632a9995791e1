"""Safety limits: at, below and above each, and nothing written when refused."""

import pytest
from click.testing import CliRunner

from bulkphone.cli import main
from bulkphone._errors import UnsafePlanError
from bulkphone._model import Action, Mode
from bulkphone._planner import Plan, PlanItem
from bulkphone._safety import SafetyLimits, check_safety
from bulkphone.sim import APP_TOKEN, SimTenant, serve


def plan_with(existing, updates=0, deletes=0, creates=0):
    """`existing` numbers in all; of those `updates` updated and `deletes` deleted; plus `creates` new ones."""
    items, row = [], 2
    for kind, count in ((Action.UPDATE, updates), (Action.DELETE, deletes), (Action.NOOP, existing - updates - deletes)):
        for _ in range(count):
            items.append(PlanItem(row, f"u{row}@contoso.com", "mobile", kind, number="+1 4255550100", current="+1 4255550000"))
            row += 1
    for _ in range(creates):
        items.append(PlanItem(row, f"u{row}@contoso.com", "mobile", Action.CREATE, number="+1 4255550100"))
        row += 1
    return Plan(mode=Mode.SYNC, items=tuple(items))


LIMITS = SafetyLimits(max_update_share=0.30, max_delete_share=0.10, max_changes=50)


@pytest.mark.parametrize(
    "plan, refusal",
    [
        (plan_with(existing=100, updates=29), None),
        (plan_with(existing=100, updates=30), None),
        (plan_with(existing=100, updates=31), r"updates 31 of 100 existing numbers \(31%\), above the 30% limit on updates"),
        (plan_with(existing=100, deletes=9), None),
        (plan_with(existing=100, deletes=10), None),
        (plan_with(existing=100, deletes=11), r"deletes 11 of 100 existing numbers \(11%\), above the 10% limit on deletes"),
        (plan_with(existing=0, creates=49), None),
        (plan_with(existing=0, creates=50), None),
        (plan_with(existing=0, creates=51), r"makes 51 changes, 1 over the limit of 50"),
    ],
    ids=["updates-below", "updates-at", "updates-above", "deletes-below", "deletes-at", "deletes-above",
         "changes-below", "changes-at", "changes-above"],
)
def test_each_limit_below_at_and_above(plan, refusal):
    if refusal is None:
        check_safety(plan, LIMITS)
    else:
        with pytest.raises(UnsafePlanError, match=refusal):
            check_safety(plan, LIMITS)


def test_small_tenants_are_not_held_to_shares():
    check_safety(plan_with(existing=9, updates=9), LIMITS)
    with pytest.raises(UnsafePlanError):
        check_safety(plan_with(existing=10, updates=10), LIMITS)


def test_every_exceeded_limit_is_named():
    with pytest.raises(UnsafePlanError) as caught:
        check_safety(plan_with(existing=100, updates=40, deletes=20), SafetyLimits(max_changes=10))
    message = str(caught.value)
    assert "makes 60 changes, 50 over the limit of 10" in message
    assert "updates 40 of 100" in message and "deletes 20 of 100" in message
    assert "Nothing was written" in message and "--" not in message  # no CLI flag in the library's words
    assert caught.value.exceeded == ["max_changes", "max_update_share", "max_delete_share"]


@pytest.fixture
def busy_tenant(tmp_path):
    tenant = SimTenant()
    lines = ["user,mobile"]
    for i in range(20):
        user = f"user{i}@contoso.com"
        tenant.add_user(user, {"mobile": f"+1 42555500{i:02d}"})
        lines.append(f"{user},+1 425 555 01{i:02d}" if i < 8 else f"{user},+1 425 555 00{i:02d}")
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    with serve(tenant) as url:
        yield tenant, url, source


def test_apply_refuses_with_exit_3_and_writes_nothing(busy_tenant, tmp_path):
    tenant, url, source = busy_tenant
    args = ["apply", str(source), "--report", str(tmp_path / "r.csv"), "--graph-url", url]
    refused = CliRunner().invoke(main, args, env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})
    assert refused.exit_code == 3
    assert "updates 8 of 20 existing numbers (40%), above the 30% limit" in refused.output
    assert "run again with --force or a higher --max-update-percent" in refused.output
    assert tenant.writes == []
    forced = CliRunner().invoke(main, args + ["--force"], env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})
    assert forced.exit_code == 0, forced.output
    assert len(tenant.writes) == 8


def test_a_higher_limit_lets_it_through(busy_tenant, tmp_path):
    tenant, url, source = busy_tenant
    args = ["apply", str(source), "--report", str(tmp_path / "r.csv"), "--graph-url", url, "--max-update-percent", "40"]
    assert CliRunner().invoke(main, args, env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN}).exit_code == 0
    assert len(tenant.writes) == 8


def test_a_job_is_told_its_own_keys_not_the_flags(busy_tenant, tmp_path):
    tenant, url, source = busy_tenant
    job = tmp_path / "job.toml"
    job.write_text(f"""
[input]
file = "{source}"
[connection]
auth = "token"
graph_url = "{url}"
[report]
folder = "reports"
""")
    refused = CliRunner().invoke(main, ["run", str(job), "--apply"], env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN})
    assert refused.exit_code == 3
    assert f"run again with --force or a higher max_update_percent in [limits] of {job}" in refused.output
    assert "--max-update-percent" not in refused.output and tenant.writes == []
