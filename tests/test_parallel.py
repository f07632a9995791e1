"""Worker processes that work on every OS: spawn where fork isn't safe (Windows, macOS, or a
running event loop), forced here so CI on Linux takes the spawn path too."""

import asyncio

import pytest
from conftest import make_connection

import bulkphone
from bulkphone import _cells as cells, _parallel as parallel
from bulkphone._runs import normalize_file


def test_fork_only_outside_an_event_loop():
    assert parallel.start_method() == "fork"  # the CI machine is Linux

    async def inside():
        return parallel.start_method()

    assert asyncio.run(inside()) == "spawn"


@pytest.fixture
def spawn_only(monkeypatch):
    monkeypatch.setattr(parallel, "start_method", lambda: "spawn")


def test_normalise_through_spawned_workers_gives_the_same_report(spawn_only, write_file, tmp_path):
    source = write_file("in.csv", "user,mobile,region\n" + "".join(
        f"user{i}@contoso.com,{'020 7946 %04d' % i if i % 2 else '12'},GB\n" for i in range(30)
    ))
    one = normalize_file(source, tmp_path / "one.csv", chunk_rows=7, processes=1).counts
    spawned = normalize_file(source, tmp_path / "spawned.csv", chunk_rows=7, processes=2).counts
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "spawned.csv").read_bytes()
    assert one == spawned == {"ok": 15, "invalid": 15}


def test_plan_reads_a_many_chunk_input_with_spawned_workers(tenant, clock, write_file, monkeypatch):
    monkeypatch.setattr(cells, "CHUNK_ROWS", 5)  # several chunks: the worker processes are used
    users = [f"user{i}@contoso.com" for i in range(12)]
    for user in users:
        tenant.add_user(user)
    source = write_file("in.csv", "user,mobile\n" + "".join(f"{u},+1 425 555 01{i:02d}\n" for i, u in enumerate(users)))
    plan = bulkphone.plan(source, connection=make_connection(tenant, clock))  # inside a running loop: spawn
    assert [(item.row, item.action.value, item.number) for item in plan.items] == [
        (i + 2, "create", f"+1 42555501{i:02d}") for i in range(12)
    ]
