"""The README and the code tell the same story."""

import re
from pathlib import Path

import bulkphone
from bulkphone.cli import main
from bulkphone.clouds import cloud_named
from bulkphone.report import NORMALIZE_COLUMNS, REPORT_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command_exactly():
    commands = re.findall(r"```bash\n(python3 -m venv[^\n]+)\n```", README)
    assert len(commands) == 2
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_readme_lists_the_report_columns():
    assert ",".join(REPORT_COLUMNS) in README
    assert ",".join(NORMALIZE_COLUMNS) in README


def test_readme_documents_every_command():
    for name in main.commands:
        assert f"bulkphone {name}" in README


def test_exported_members_exist():
    for name in bulkphone.__all__:
        assert hasattr(bulkphone, name), name
    assert len(set(bulkphone.__all__)) == len(bulkphone.__all__)


def test_clouds_come_from_one_table():
    assert cloud_named("usgov").graph_url == "https://graph.microsoft.us"
    assert cloud_named("China").scope == "https://microsoftgraph.chinacloudapi.cn/.default"
