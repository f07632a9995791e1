"""What can be checked here of the deployment recipes (no Docker engine, no cluster, no Azure):
their structure, and that the image's install and default command work outside Docker."""

import py_compile
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "jobs" / "deploy"


def test_dockerfile_is_slim_non_root_and_holds_no_secret():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert not re.search(r"^ENV .*(SECRET|PASSWORD|ACCESS_TOKEN)", text, re.M | re.I)
    assert 'ENTRYPOINT ["bulkphone"]' in text
    for copied in re.findall(r"^COPY (?:--chown=\S+ )?(\S+)", text, re.M):
        assert (ROOT / copied).exists(), copied
    assert ".venv/" in (ROOT / ".dockerignore").read_text()


def test_kubernetes_cronjob_runs_one_job_at_a_time_as_non_root_with_workload_identity():
    account, cronjob = yaml.safe_load_all((DEPLOY / "kubernetes-cronjob.yaml").read_text())
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"]
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    assert container["args"][:1] == ["run"] and "--apply" in container["args"]


def test_github_workflow_signs_in_with_oidc_and_keeps_the_reports():
    workflow = yaml.safe_load((DEPLOY / "github-actions-schedule.yml").read_text())
    assert workflow["permissions"]["id-token"] == "write"
    steps = workflow["jobs"]["plan"]["steps"]
    assert any("bulkphone --log-format json run" in step.get("run", "") for step in steps)
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in steps)


def test_automation_runbook_compiles():
    py_compile.compile(str(DEPLOY / "azure-automation-runbook.py"), doraise=True)
