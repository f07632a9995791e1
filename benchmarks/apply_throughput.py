"""How close does `apply` get to the tenant's write ceiling, compared with the usual admin loop?

Against the simulated tenant on a real loopback socket (write ceiling, 50-100 ms latency,
~3% injected faults: 429s, 503s, connections dropped before and after writes):

1. bulkphone apply on N users: achieved writes/s as a fraction of the ceiling, duplicate or
   unneeded writes (target 0), exact final state.
2. The same kind of work done the way admins do it today, in the same run: one user at a
   time, GET then POST, honouring Retry-After, retrying failures blindly.
3. Kill and resume: SIGKILL `bulkphone apply` at ~40% of its writes, run it again, check the
   final state and that the report has every row once.

    python benchmarks/apply_throughput.py [--users 3000] [--ceiling 40] [--sequential-users 150]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import bulkphone
from bulkphone.sim import APP_TOKEN, Faults, SimTenant, serve

FAULT_SHARE = 0.0075  # each of four kinds: ~3% of requests in all


def faults(ceiling: float, seed: int) -> Faults:
    return Faults(
        error_429=FAULT_SHARE,
        error_503=FAULT_SHARE,
        drop_before=FAULT_SHARE,
        drop_after=FAULT_SHARE,
        latency=0.05,
        latency_max=0.10,
        writes_per_second=ceiling,
        window_seconds=1.0,
        seed=seed,
    )


def populate(tenant: SimTenant, prefix: str, count: int) -> dict[str, dict[str, str]]:
    """Users with a mix of work: creates, updates, and a quarter with an office number too."""
    desired = {}
    for i in range(count):
        upn = f"{prefix}{i:05d}@contoso.com"
        current = {"mobile": f"+1 2065{i:06d}"} if i % 3 == 0 else {}
        tenant.add_user(upn, current)
        desired[upn] = {"mobile": f"+1 4255{i:06d}"}
        if i % 4 == 0:
            desired[upn]["office"] = f"+1 3605{i:06d}"
    return desired


def write_input(desired: dict[str, dict[str, str]], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "mobile", "office"])
        for upn, numbers in desired.items():
            writer.writerow([upn, numbers["mobile"], numbers.get("office", "")])
    return path


def expected_state(tenant: SimTenant, desired: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {upn: {**tenant_state, **desired[upn]} for upn, tenant_state in tenant.state().items() if upn in desired}


def planned_writes(desired) -> int:
    return sum(len(numbers) for numbers in desired.values())


def run_bulkphone(url: str, source: Path, ceiling: float, concurrency: int) -> bulkphone.RunResult:
    connection = bulkphone.connect(
        bulkphone.StaticToken(APP_TOKEN), graph_url=url, max_writes_per_second=ceiling, max_concurrency=concurrency
    )
    return bulkphone.apply(source, connection=connection)


def run_sequential(url: str, desired: dict[str, dict[str, str]]) -> tuple[int, float, int]:
    """The admin loop of today: per user GET, then POST or PATCH; Retry-After honoured; failures retried blindly."""
    ids = {t.value: t.method_id for t in bulkphone.PhoneType}
    writes = failures = 0
    started = time.monotonic()
    with httpx.Client(base_url=f"{url}/v1.0", headers={"Authorization": f"Bearer {APP_TOKEN}"}, timeout=30) as http:

        def call(method, path, **kwargs):
            for _ in range(8):
                try:
                    response = http.request(method, path, **kwargs)
                except httpx.TransportError:
                    time.sleep(1)
                    continue
                if response.status_code == 429:
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status_code >= 500:
                    time.sleep(1)
                    continue
                return response
            return None

        for upn, numbers in desired.items():
            listing = call("GET", f"/users/{upn}/authentication/phoneMethods")
            current = {m["phoneType"]: m["phoneNumber"] for m in (listing.json()["value"] if listing else [])}
            for phone_type, number in numbers.items():
                if current.get(phone_type) == number:
                    continue
                body = {"phoneNumber": number, "phoneType": phone_type}
                if phone_type in current:
                    response = call("PATCH", f"/users/{upn}/authentication/phoneMethods/{ids[phone_type]}", json=body)
                else:
                    response = call("POST", f"/users/{upn}/authentication/phoneMethods", json=body)
                writes += 1
                failures += response is None or response.status_code >= 400
    return writes, time.monotonic() - started, failures


def kill_and_resume(ceiling: float, users: int, concurrency: int, folder: Path) -> dict:
    tenant = SimTenant(faults=faults(ceiling, seed=23))
    desired = populate(tenant, "k", users)
    expected = expected_state(tenant, desired)
    source = write_input(desired, folder / "kill.csv")
    report = folder / "kill-results.csv"
    total = planned_writes(desired)
    env = {**os.environ, "BULKPHONE_ACCESS_TOKEN": APP_TOKEN}
    with serve(tenant) as url:
        command = [sys.executable, "-m", "bulkphone", "apply", str(source), "--report", str(report), "--graph-url", url,
                   "--max-writes-per-second", str(ceiling), "--max-concurrency", str(concurrency), "--force"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(tenant.writes) < 0.4 * total and process.poll() is None:
            time.sleep(0.05)
        process.kill()
        process.wait()
        killed_at = len(tenant.writes)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True)
    with report.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [(r["row"], r["phoneType"]) for r in rows]
    return {
        "killed_at": killed_at,
        "total": total,
        "rerun_exit": rerun.returncode,
        "rerun_says": rerun.stdout.strip().splitlines()[-1] if rerun.stdout.strip() else rerun.stderr.strip()[-300:],
        "state_exact": tenant.state() == expected,
        "writes": len(tenant.writes),
        "rows": len(rows),
        "rows_once": len(keys) == len(set(keys)) == 2 * users,
        "ok_rows": sum(r["status"] == "ok" for r in rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--sequential-users", type=int, default=150)
    parser.add_argument("--ceiling", type=float, default=40.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-kill", action="store_true")
    args = parser.parse_args()

    tenant = SimTenant(faults=faults(args.ceiling, seed=7))
    desired = populate(tenant, "u", args.users)
    sequential_desired = populate(tenant, "s", args.sequential_users)
    expected = expected_state(tenant, desired)
    expected_sequential = expected_state(tenant, sequential_desired)
    total = planned_writes(desired)
    with tempfile.TemporaryDirectory() as folder, serve(tenant) as url:
        folder = Path(folder)
        source = write_input(desired, folder / "in.csv")
        started = time.monotonic()
        result = run_bulkphone(url, source, args.ceiling, args.concurrency)
        wall = time.monotonic() - started
        bulk_writes = len(tenant.writes)
        injected = dict(tenant.injected)
        rate_limited = tenant.rate_limited
        seq_writes, seq_seconds, seq_failures = run_sequential(url, sequential_desired)
        state = tenant.state()
        kill = None if args.skip_kill else kill_and_resume(args.ceiling, max(300, args.users // 2), args.concurrency, folder)

    apply_seconds = result.stats["seconds"]
    achieved = bulk_writes / apply_seconds
    sequential_rate = seq_writes / seq_seconds
    exact = {u: state[u] for u in expected} == expected
    print(f"simulated tenant: write ceiling {args.ceiling:g}/s, latency 50-100 ms, ~{4 * FAULT_SHARE:.0%} injected faults, loopback HTTP")
    print()
    print("| run | users | writes | seconds | writes/s | fraction of ceiling |")
    print("|---|---|---|---|---|---|")
    print(f"| bulkphone apply (concurrency {args.concurrency}) | {args.users} | {bulk_writes} | {apply_seconds:.1f} | {achieved:.1f} | {achieved / args.ceiling:.2f} |")
    print(f"| sequential GET-then-write loop | {args.sequential_users} | {seq_writes} | {seq_seconds:.1f} | {sequential_rate:.1f} | {sequential_rate / args.ceiling:.2f} |")
    print()
    print(f"bulkphone vs sequential loop: {achieved / sequential_rate:.1f}x the writes per second")
    print(f"bulkphone wall time incl. planning ({result.stats['batches']} $batch reads): {wall:.1f}s")
    print(f"planned writes {total}, landed {bulk_writes}: duplicate or unneeded writes = {bulk_writes - total}")
    print(f"final state exact: {exact}; rows ok: {sum(o.status.value == 'ok' for o in result.outcomes.values())}/{len(result.outcomes)}")
    print(f"faults survived by bulkphone: {injected}; 429 for going over the ceiling: {rate_limited}; "
          f"reconciled after lost responses: {result.stats['reconciled']}; retries: {result.stats['retries']}")
    sequential_exact = {u: state[u] for u in expected_sequential} == expected_sequential
    print(f"sequential loop: {seq_failures} writes failed after its retries; final state exact: {sequential_exact}")
    if kill:
        print()
        print(f"kill and resume ({kill['total']} writes planned): SIGKILL after {kill['killed_at']} writes; rerun exit {kill['rerun_exit']}: {kill['rerun_says']}")
        print(f"  final state exact: {kill['state_exact']}; writes landed in all: {kill['writes']} (duplicates {kill['writes'] - kill['total']}); "
              f"report rows {kill['rows']}, each row once: {kill['rows_once']}, ok: {kill['ok_rows']}")
    failed = not exact or bulk_writes != total or (kill and not (kill["state_exact"] and kill["rows_once"] and kill["writes"] == kill["total"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
