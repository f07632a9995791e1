"""What a second scheduled run costs with and without --changed-only.

A first run provisions N users; then 1% of the input changes; the second run is done twice,
side by side on identical tenants: plain (reads every user) and --changed-only (reads only the
changed ones). In-process simulated tenant with 50-100 ms latency per request.

    python benchmarks/changed_only.py [--users 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bulkphone
from bulkphone._journal import Journal
from bulkphone.sim import APP_TOKEN, Faults, SimTenant, SimTransport


def tenant_for(users: list[str]) -> SimTenant:
    tenant = SimTenant(faults=Faults(latency=0.05, latency_max=0.10))
    for user in users:
        tenant.add_user(user)
    return tenant


def write_input(path: Path, numbers: dict[str, str]) -> Path:
    path.write_text("user,mobile\n" + "".join(f"{u},{n}\n" for u, n in numbers.items()))
    return path


def apply(tenant, source, journal, changed_only):
    connection = bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url="https://graph.sim.invalid",
                                   transport=SimTransport(tenant), max_writes_per_second=200, max_concurrency=32)
    started = time.monotonic()
    result = bulkphone.apply(source, connection=connection, journal=journal, changed_only=changed_only)
    return result, connection.counters, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    args = parser.parse_args()
    users = [f"user{i:05d}@contoso.com" for i in range(args.users)]
    numbers = {u: f"+1 4255{i:06d}" for i, u in enumerate(users)}
    changed = users[:: 100]
    print(f"{args.users} users; second run after {len(changed)} numbers changed in the input")
    print("| second run | reads | writes | seconds | state exact |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for changed_only in (False, True):
            tenant = tenant_for(users)
            source = write_input(Path(folder) / f"in-{changed_only}.csv", dict(numbers))
            with Journal(Path(folder) / f"journal-{changed_only}.sqlite") as journal:
                apply(tenant, source, journal, changed_only=True)
                second = dict(numbers, **{u: f"+1 3605{i:06d}" for i, u in enumerate(changed)})
                write_input(source, second)
                result, counters, seconds = apply(tenant, source, journal, changed_only=changed_only)
            exact = tenant.state() == {u: {"mobile": n} for u, n in second.items()}
            label = "--changed-only" if changed_only else "plain apply (reads every user)"
            print(f"| {label} | {counters.reads} | {counters.writes} | {seconds:.1f} | {exact} |")


if __name__ == "__main__":
    main()
