"""--changed-only: a second scheduled run reads and writes only what changed, and ends in the same state."""

import pytest
from conftest import make_connection

import bulkphone
from bulkphone._journal import Journal
from bulkphone._model import Action, Status

USERS = [f"user{i:02d}@contoso.com" for i in range(40)]


def write_input(path, numbers):
    path.write_text("user,mobile,office\n" + "".join(f"{u},{numbers[u]},\n" for u in USERS))
    return path


def test_a_second_run_reads_and_writes_only_what_changed(tenant, clock, tmp_path):
    for user in USERS:
        tenant.add_user(user)
    numbers = {u: f"+1 42555501{i:02d}" for i, u in enumerate(USERS)}
    source = write_input(tmp_path / "in.csv", numbers)
    with Journal(tmp_path / "j.sqlite") as journal:
        first = bulkphone.apply(source, connection=make_connection(tenant, clock), journal=journal, changed_only=True)
        assert first.plan.counts()["create"] == 40

        numbers[USERS[3]] = "+1 4255559903"
        numbers[USERS[7]] = "+1 4255559907"
        write_input(source, numbers)
        connection = make_connection(tenant, clock)
        second = bulkphone.apply(source, connection=connection, journal=journal, changed_only=True)
        reads_changed_only = connection.counters.reads

        full = make_connection(tenant, clock)
        third = bulkphone.apply(source, connection=full, journal=journal)

    assert second.plan.counts()["update"] == 2 and len(tenant.writes) == 42
    assert reads_changed_only == 2 + 2  # the two changed users' plan reads, and their SMS state after the update
    assert full.counters.reads == 40
    assert third.plan.write_count == 0
    assert tenant.state() == {u: {"mobile": n} for u, n in numbers.items()}
    unchanged = [i for i in second.plan.items if i.note.startswith("unchanged since the last verified run")]
    assert len(unchanged) == 38 and all(second.outcome(i).status is Status.OK for i in unchanged)


def test_changed_only_needs_a_journal(tenant, clock, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("user,mobile\nann@contoso.com,+1 425 555 0100\n")
    with pytest.raises(bulkphone.InputError, match="needs the run journal"):
        bulkphone.apply(source, connection=make_connection(tenant, clock), changed_only=True)


def test_create_only_never_records_a_number_it_did_not_set(tenant, clock, tmp_path):
    tenant.add_user("ann@contoso.com", {"mobile": "+1 4255550000"})
    source = tmp_path / "in.csv"
    source.write_text("user,mobile\nann@contoso.com,+1 425 555 0100\n")
    with Journal(tmp_path / "j.sqlite") as journal:
        bulkphone.apply(source, connection=make_connection(tenant, clock), journal=journal, mode="create-only")
        assert journal.verified() == {}
        again = bulkphone.apply(source, connection=make_connection(tenant, clock), journal=journal, mode="create-only", changed_only=True)
    assert again.plan.items[0].action is Action.NOOP and again.plan.items[0].current == "+1 4255550000"
