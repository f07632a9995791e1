"""Azure Automation Python 3.10+ runbook: run a bulkphone job with the account's managed identity.

Setup (README "Deployment"): enable the Automation account's system-assigned identity, grant
its service principal the Graph application permission UserAuthenticationMethod.ReadWrite.All,
import the bulkphone wheel and its dependencies as Python packages, and upload the job file and
input next to the runbook (or to a storage mount). Azure Automation sets IDENTITY_ENDPOINT and
IDENTITY_HEADER, which msal's managed-identity client uses.
"""

import subprocess
import sys

# The job file says auth = "managed-identity"; exit code 0/1 ends the job as completed,
# 2 or 3 fail it so the account's alerts fire.
completed = subprocess.run(
    [sys.executable, "-m", "bulkphone", "--log-format", "json", "run", "onboarding.toml", "--apply"],
    check=False,
)
if completed.returncode not in (0, 1):
    raise SystemExit(completed.returncode)
