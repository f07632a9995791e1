"""`bulkphone audit` of a 100,000-user tenant: through the registration report, and through each
user's methods (the fallback when the report is refused), side by side in one run.

In-process simulated tenant, 50-100 ms per request, Graph's read limit for a tenant of more
than 500 users (8,000 resource units per 10 s); bulkphone at its defaults. The users: a third
phone-only, a sixth phone-default, a sixth with no MFA, a third ready. Prints users/s for each
source, the reads each made, and the ratio.

    python benchmarks/audit.py [--users 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import bulkphone
from bulkphone.sim import APP_TOKEN, Faults, Principal, SimTenant, SimTransport

REPORT_APP = frozenset({"UserAuthenticationMethod.Read.All", "User.Read.All", "AuditLog.Read.All"})
# The fallback as an admin would grant it: admins told from the directory's role assignments.
METHODS_APP = REPORT_APP - {"AuditLog.Read.All"} | {"RoleManagement.Read.Directory"}


def build_tenant(users: int, permissions: frozenset[str]) -> SimTenant:
    tenant = SimTenant(faults=Faults(latency=0.05, latency_max=0.10, reads_per_second=800, read_window_seconds=10))
    tenant.tokens[APP_TOKEN] = Principal(permissions)
    for i in range(users):
        kind = i % 6
        mobile = {"mobile": f"+44 7911{i:06d}"} if kind in (0, 1, 2, 4) else {}
        others = {2: ["microsoftAuthenticator"], 4: ["fido2"], 5: ["microsoftAuthenticator"]}.get(kind, [])
        # smsSignInState given, as Graph stores it: the sim would otherwise work it out by
        # comparing each mobile with every other user's, a cost of the sim, not of the audit.
        tenant.add_user(f"user{i:06d}@contoso.com", mobile, sms_states={"mobile": "notEnabled"} if mobile else {},
                        default_method="mobile" if mobile else "",
                        other_methods=others, system_preferred=kind == 4, admin=i % 500 == 0,
                        user_type="Guest" if i % 50 == 0 else "Member")
    return tenant


async def audit(tenant: SimTenant, folder: Path) -> tuple[bulkphone.AuditResult, int, float]:
    connection = bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url="https://graph.sim.invalid",
                                   transport=SimTransport(tenant))
    started = time.monotonic()
    with bulkphone.Journal(folder / f"{id(tenant)}.sqlite") as journal:
        result = await bulkphone.audit_async(connection, journal=journal, check_first=True)
    return result, connection.counters.reads, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    print(f"{args.users} users; Graph's read limit (800/s over 10 s); 50-100 ms per request")
    print("| source | users | phone-only | phone-default | no-mfa | ready | unread | reads | seconds | users/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    speeds, found = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for label, permissions in (("registration report", REPORT_APP), ("each user's methods", METHODS_APP)):
            result, reads, seconds = asyncio.run(audit(build_tenant(args.users, permissions), Path(folder)))
            counts = result.counts()
            speeds[label] = len(result.rows) / seconds
            found[label] = {row.user: (row.category, row.admin) for row in result.rows}
            print(f"| {label} | {len(result.rows)} | {counts['phone-only']} | {counts['phone-default']} | "
                  f"{counts['no-mfa']} | {counts['ready']} | {counts['unread']} | {reads} | {seconds:.1f} | "
                  f"{speeds[label]:.0f} |")
    report, methods = speeds["registration report"], speeds["each user's methods"]
    same = found["registration report"] == found["each user's methods"]
    print(f"report / methods: {report / methods:.1f}x the users per second; same category and admin for every user: {same}")

if __name__ == "__main__":
    main()
