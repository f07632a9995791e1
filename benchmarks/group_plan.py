"""Planning a 20,000-member nested group from the directory (issue 17's target: under a minute).

A simulated tenant of 25,000 users: a group "All new hires" holds 20 groups of 1,000 users
each (one of them nested a level deeper) and some devices; 5,000 users are in no group. Each
member has a national mobilePhone (GB, US or FR) and a usageLocation; a third also an office
number. Graph's read limit for a tenant of more than 500 users (8,000 resource units per 10 s)
and 50-100 ms per request; bulkphone at its defaults. Two runs side by side:

    plan --from-directory --group "All new hires"
    plan --from-directory --group "All new hires" --only-unregistered   (registration report too)

    python benchmarks/group_plan.py [--members 20000]
"""

from __future__ import annotations

import argparse
import time

import bulkphone
from bulkphone.sim import APP_TOKEN, Faults, Principal, SimTenant, SimTransport

REGIONS = [("GB", "07911 {:06d}", "020 7946 {:04d}"), ("US", "(425) 555-{:04d}", "(206) 555-{:04d}"),
           ("FR", "06 12 {:06d}", "01 42 {:06d}")]


def build_tenant(members: int) -> SimTenant:
    tenant = SimTenant(faults=Faults(latency=0.05, latency_max=0.10, reads_per_second=800, read_window_seconds=10))
    tenant.tokens[APP_TOKEN] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All", "GroupMember.Read.All",
                                                    "User.Read.All", "AuditLog.Read.All"}))
    groups, size = [], 1000
    for start in range(0, members, size):
        people = []
        for i in range(start, min(start + size, members)):
            region, mobile, office = REGIONS[i % 3]
            people.append(tenant.add_user(
                f"hire{i:06d}@contoso.com", {"mobile": "+44 7400000001"} if i % 10 == 0 else {},
                mobile_phone=mobile.format(i % 10_000 if region == "US" else i), usage_location=region,
                business_phones=[office.format(i % 10_000)] if i % 3 == 0 else [],
                other_methods=["microsoftAuthenticator"] if i % 4 == 0 else []))
        groups.append(tenant.add_group(f"New hires {start // size}", people + [f"device-{start}"]))
    deeper = tenant.add_group("New hires, nested deeper", [groups.pop()])
    tenant.add_group("All new hires", groups + [deeper])
    for i in range(members // 4):
        tenant.add_user(f"staff{i:06d}@contoso.com", mobile_phone="07911 000000", usage_location="GB")
    return tenant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    args = parser.parse_args()
    print(f"{args.members} members in nested groups; Graph's read limit (800/s over 10 s); 50-100 ms per request")
    print("| run | rows | actions | reads | seconds |")
    print("|---|---|---|---|---|")
    for only_unregistered in (False, True):
        tenant = build_tenant(args.members)
        connection = bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url="https://graph.sim.invalid",
                                       transport=SimTransport(tenant))
        started = time.monotonic()
        plan = bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["All new hires"],
                              only_unregistered=only_unregistered, check_first=True)
        seconds = time.monotonic() - started
        counts = plan.counts()
        users = {item.user for item in plan.items}
        assert len(users) == args.members and not any(user.startswith("staff") for user in users)
        assert tenant.write_count() == 0
        label = "--only-unregistered" if only_unregistered else "--from-directory --group"
        actions = ", ".join(f"{action} {count}" for action, count in counts.items() if count)
        print(f"| {label} | {len(plan.items)} | {actions} | {connection.counters.reads} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
