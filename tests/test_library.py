"""bulkphone as a library someone else builds on: it never prints, and each run counts its own work."""

import subprocess
import sys

from conftest import make_connection

import bulkphone

ANN = "ann@contoso.com"


def test_the_library_prints_nothing_even_when_changes_fail(write_file):
    # In a fresh interpreter: pytest's own log capture would hide logging's last-resort handler.
    source = write_file("in.csv", f"user,mobile\n{ANN},\n")
    script = f"""
import bulkphone
from bulkphone.sim import APP_TOKEN, SimTenant, SimTransport
tenant = SimTenant()
tenant.add_user("{ANN}", {{"mobile": "+1 4255550100", "office": "+1 4255550199"}}, default_method="mobile")
connection = bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url="https://graph.test", transport=SimTransport(tenant))
result = bulkphone.apply({str(source)!r}, connection=connection, mode="sync")
assert result.outcomes[(2, "mobile")].status.value == "failed"  # a change.failed warning was emitted
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_each_run_counts_its_own_requests(tenant, clock, write_file):
    tenant.add_user(ANN)
    tenant.add_user("bob@contoso.com")
    source = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\nbob@contoso.com,+1 425 555 0101\n")
    connection = make_connection(tenant, clock)  # one Connection for every run, as the README shows
    plan = bulkphone.plan(source, connection=connection)
    assert (connection.counters.reads, connection.counters.writes) == (2, 0)
    first = bulkphone.apply(plan, connection=connection)
    assert (first.stats["reads"], first.stats["writes"]) == (0, 2)
    again = bulkphone.apply(source, connection=connection)
    assert (again.stats["reads"], again.stats["writes"], again.stats["retries"]) == (2, 0, 0)  # not 4 reads, 2 writes
