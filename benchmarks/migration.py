"""A tenant-to-tenant migration end to end, twice, against two simulated tenants at once.

The source tenant has N users (every one a mobile, a third an alternate, a quarter an office
number, 2% none); the target has the same people under another domain and no methods. Run 1:
export every source user (listing 999 a page), map the domain, apply into the target. Then 1%
of the source's numbers change and 1% more users join; run 2 does the same again with
--changed-only, as the scheduled migration job does. In-process simulated tenants, 50-100 ms
latency per request, target write ceiling 40/s; the command-line tool's own code paths
(export, identity map, plan, apply with journal) through the library.

    python benchmarks/migration.py [--users 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bulkphone
from bulkphone._export import EXPORT_COLUMNS
from bulkphone._report import write_csv
from bulkphone.sim import APP_TOKEN, Faults, Principal, SimTenant, SimTransport

LATENCY = Faults(latency=0.05, latency_max=0.10)


def tenants(count: int) -> tuple[SimTenant, SimTenant]:
    source = SimTenant(faults=LATENCY, tokens={APP_TOKEN: Principal(frozenset({"UserAuthenticationMethod.Read.All", "User.Read.All"}))})
    target = SimTenant(faults=Faults(latency=0.05, latency_max=0.10, writes_per_second=40))
    for i in range(count):
        add(source, target, i)
    return source, target


def add(source: SimTenant, target: SimTenant, i: int) -> None:
    methods = {}
    if i % 50 != 7:
        methods["mobile"] = f"+1 425{2000000 + i:07d}"
        if i % 3 == 0:
            methods["alternateMobile"] = f"+44 74001{i:05d}"
        if i % 4 == 0:
            methods["office"] = f"+1 206555{i % 10000:04d}"
    source.add_user(f"user{i}@fabrikam.com", methods)
    target.add_user(f"user{i}@contoso.com")


def connect(tenant: SimTenant, url: str) -> bulkphone.Connection:
    return bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url=url, transport=SimTransport(tenant),
                             max_writes_per_second=40, max_concurrency=32)


def migrate(source, target, folder: Path, run: int, identity) -> dict:
    exporter, writer = connect(source, "https://source.sim.invalid"), connect(target, "https://target.sim.invalid")
    started = time.monotonic()
    with bulkphone.Journal(folder / "export.sqlite") as journal:
        exported = bulkphone.export(exporter, journal=journal)
    export_seconds = time.monotonic() - started
    csv_path = folder / f"source-{run}.csv"
    write_csv([row.csv_row() for row in exported.exported()], csv_path, EXPORT_COLUMNS)
    started = time.monotonic()
    with bulkphone.Journal(folder / "apply.sqlite") as journal:
        result = bulkphone.apply(csv_path, connection=writer, journal=journal, identity=identity, changed_only=True)
    return {
        "listed": exported.counts()["listed"],
        "export reads": exporter.counters.reads,
        "export s": export_seconds,
        "target reads": writer.counters.reads,
        "writes": writer.counters.writes,
        "apply s": time.monotonic() - started,
        "ok": sum(1 for item in result.plan.items if result.outcome(item).status.value in ("ok", "skipped")),
        "rows": len(result.plan.items),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    args = parser.parse_args()
    source, target = tenants(args.users)
    identity = bulkphone.load_identity_map(None, ["fabrikam.com=contoso.com"])
    print(f"{args.users} source users; run 2 after 1% of numbers changed and 1% more users joined")
    print("| run | users listed | export reads | export s | target reads | target writes | apply s | rows ok | target = mapped source |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for run in (1, 2):
            if run == 2:
                for i in range(0, args.users, 100):
                    user = next(u for u in source.users.values() if u.upn == f"user{i}@fabrikam.com")
                    if "mobile" in user.methods:
                        user.methods["mobile"] = f"+1 360{2000000 + i:07d}"
                for i in range(args.users, args.users + args.users // 100):
                    add(source, target, i)
            figures = migrate(source, target, folder, run, identity)
            expected = {upn.replace("@fabrikam.com", "@contoso.com"): methods for upn, methods in source.state().items()}
            print(f"| {run} | {figures['listed']} | {figures['export reads']} | {figures['export s']:.1f} | "
                  f"{figures['target reads']} | {figures['writes']} | {figures['apply s']:.1f} | "
                  f"{figures['ok']}/{figures['rows']} | {target.state() == expected} |")


if __name__ == "__main__":
    main()
