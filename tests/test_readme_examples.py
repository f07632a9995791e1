"""The README's library examples run as written, against a sandbox tenant like the one
`bulkphone sandbox` serves, with the environment the sandbox tells you to set."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bulkphone._demo import sandbox_tenant
from bulkphone.sim import APP_TOKEN, serve

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = (ROOT / "README.md").read_text(encoding="utf-8").split("## Library\n")[1].split("\n## ")[0]
EXAMPLES = re.findall(r"```python\n(.*?)```", LIBRARY, re.DOTALL)


def test_the_library_section_has_its_examples():
    assert len(EXAMPLES) == 3


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_a_readme_example_runs_as_written(number, tmp_path):
    tenant, _ = sandbox_tenant()
    users = sorted(user.upn for user in tenant.users.values())[:6]
    (tmp_path / "phones.csv").write_text(  # your file: some of the tenant's users, new numbers
        "user,mobile\n" + "".join(f"{user},(201) 555-01{i:02d}\n" for i, user in enumerate(users)))
    with serve(tenant) as url:
        done = subprocess.run(
            [sys.executable, "-c", EXAMPLES[number]], cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, "BULKPHONE_ACCESS_TOKEN": APP_TOKEN, "BULKPHONE_GRAPH_URL": url},
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout and done.stderr == ""  # it shows something, and the library printed nothing of its own
