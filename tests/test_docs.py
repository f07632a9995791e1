"""The README and the code tell the same story."""

import re
from pathlib import Path

import bulkphone
from bulkphone.cli import main
from bulkphone._clouds import cloud_named
from bulkphone._report import NORMALIZE_COLUMNS, REPORT_COLUMNS

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


def test_readme_lists_every_placeholder_word():
    from bulkphone._normalize import PLACEHOLDER_WORDS

    section = README[README.index("### What counts as blank"):README.index("### Numbers")]
    spelled = re.sub(r"[^a-z]", "", section.lower())
    assert [word for word in sorted(PLACEHOLDER_WORDS) if word not in spelled] == []


def test_docs_name_modules_and_functions_that_exist():
    import importlib

    named = set()
    for doc in (ROOT / "docs").glob("*.md"):
        # Docs name a private module by its plain name: `planner.build_plan` is bulkphone/_planner.py.
        for module, attribute in re.findall(r"`(?:bulkphone/)?([a-z_]+)(?:\.py)?(?:\.([A-Za-z_][A-Za-z_.]*))?`", doc.read_text()):
            module = module if module.startswith("_") or not (ROOT / "bulkphone" / f"_{module}.py").exists() else f"_{module}"
            if (ROOT / "bulkphone" / f"{module}.py").exists() or (ROOT / "bulkphone" / module).is_dir():
                named.add((module, attribute))
    assert len(named) > 30
    for module, attribute in sorted(named):
        target = importlib.import_module(f"bulkphone.{module}")
        for part in filter(None, attribute.split(".")):
            assert hasattr(target, part), f"docs name {module}.{attribute}, which doesn't exist"
            target = getattr(target, part)
