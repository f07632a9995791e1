"""Issue 12, part 1: nothing is deleted that the input did not clearly ask to delete.

Each test runs the real command against the simulated tenant and asserts what a person would
check afterwards: the tenant still holds the numbers, the report says which row to fix and why,
and the exit code tells the scheduler so.
"""

import csv
import zipfile

import openpyxl
import pytest
from click.testing import CliRunner

import bulkphone
from bulkphone.cli import main
from bulkphone._report import result_rows
from bulkphone.sim import APP_TOKEN, SimTenant, serve

ENV = {"BULKPHONE_ACCESS_TOKEN": APP_TOKEN}
NUMBERS = {"mobile": "+1 4255550100", "office": "+1 4255550199"}
USERS = [f"user{i}@contoso.com" for i in range(1, 8)]


@pytest.fixture
def tenant_and_url():
    tenant = SimTenant()
    for user in USERS:
        tenant.add_user(user, dict(NUMBERS))
    with serve(tenant) as url:
        yield tenant, url


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env=ENV)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sync(source, tmp_path, url, *extra, report="results.csv"):
    return run("apply", source, "--report", tmp_path / report, "--graph-url", url, "--mode", "sync", "--force", *extra)


def test_a_row_with_fewer_fields_than_the_header_is_a_row_to_fix_not_a_delete(tenant_and_url, write_file, tmp_path):
    tenant, url = tenant_and_url
    source = write_file(
        "in.csv",
        "user,mobile,office\n"
        "user1@contoso.com,+1 425 555 0100,+1 425 555 0199\n"
        "user5@contoso.com\n"  # the example of the issue: the user alone under three columns
        "user2@contoso.com,+1 425 555 0100\n"  # short by one field, in the middle of the file
        "user3@contoso.com,+1 425 555 0100,+1 425 555 0199\n"
        "user4@contoso.com,,\n",  # a real blank row: this one does delete
    )
    result = sync(source, tmp_path, url)
    assert result.exit_code == 1, result.output
    state = tenant.state()
    assert state["user5@contoso.com"] == NUMBERS and state["user2@contoso.com"] == NUMBERS
    assert state["user4@contoso.com"] == {}
    rows = {(r["user"], r["phoneType"]): r for r in read_rows(tmp_path / "results.csv")}
    for user, fields in (("user5@contoso.com", 1), ("user2@contoso.com", 2)):
        for phone_type in ("mobile", "office"):
            row = rows[(user, phone_type)]
            assert (row["action"], row["status"]) == ("skip", "skipped")
            assert row["error"].startswith(f"this row has {fields} of the header's 3 fields")
            assert "a missing field is not a blank" in row["error"]
    assert {r["row"] for r in rows.values() if r["user"] == "user2@contoso.com"} == {"4"}
    assert [w["kind"] for w in tenant.writes] == ["delete", "delete"]


def test_a_row_with_more_fields_than_the_header_is_a_row_to_fix(tenant_and_url, write_file, tmp_path):
    tenant, url = tenant_and_url
    source = write_file(
        "in.csv",
        "user,mobile,office\n"
        "user1@contoso.com,+1 425,555 0100,\n"  # an unquoted comma shifted the columns; the last one is empty
        "user2@contoso.com,,,,\n"  # even empty extra fields say the row isn't what the header says
        "user3@contoso.com,+1 425 555 0100,\n",
    )
    result = sync(source, tmp_path, url)
    assert result.exit_code == 1
    state = tenant.state()
    assert state["user1@contoso.com"] == NUMBERS and state["user2@contoso.com"] == NUMBERS
    assert tenant.writes == [{"kind": "delete", "user": "user3@contoso.com", "phoneType": "office", "phoneNumber": "+1 4255550199"}]
    errors = {(r["user"], r["phoneType"]): r["error"] for r in read_rows(tmp_path / "results.csv")}
    assert errors[("user1@contoso.com", "office")].startswith("this row has 4 fields but the header has 3")
    assert errors[("user2@contoso.com", "mobile")].startswith("this row has 5 fields but the header has 3")


@pytest.mark.parametrize("mode", ["sync", "upsert"])
def test_changed_only_with_a_user_on_two_rows_never_flips_the_number(tenant_and_url, write_file, tmp_path, mode):
    tenant, url = tenant_and_url
    source = write_file("in.csv", "user,mobile\nuser1@contoso.com,+1 425 555 0111\nuser1@contoso.com,\n")
    journal = tmp_path / "runs.sqlite"
    for attempt in range(3):
        result = run("apply", source, "--report", tmp_path / f"run{attempt}.csv", "--graph-url", url, "--mode", mode,
                     "--changed-only", "--journal", journal)
        assert result.exit_code == 1, result.output
        assert tenant.writes == [] and tenant.state()["user1@contoso.com"] == NUMBERS
        rows = read_rows(tmp_path / f"run{attempt}.csv")
        assert [(r["action"], r["status"]) for r in rows] == [("skip", "skipped"), ("skip", "skipped")]
        assert all(r["error"].startswith("conflict: rows 2 and 3 leave this user's mobile empty") for r in rows)


PLACEHOLDERS = [
    # the lists: those treated as blank before, and those that weren't
    "-", "N/A", "n/a", "null", "None", "nan", "\u200b", "\ufeff", "#N/A", "--", "TBD", "0",
    # neighbours
    "NULL", "n.a.", "—", "?", "000", "unknown", "\u200b\u200b", " - ", "#n/a",
]


@pytest.mark.parametrize("text", PLACEHOLDERS)
def test_a_placeholder_never_deletes_in_sync_mode(tenant, connection, write_file, text):
    tenant.add_user("ann@contoso.com", dict(NUMBERS))
    source = write_file("in.csv", f"user,mobile,office\nann@contoso.com,{text},+1 425 555 0199\n")
    result = bulkphone.apply(source, connection=connection, mode="sync")
    assert tenant.state()["ann@contoso.com"] == NUMBERS and tenant.writes == []
    mobile = next(r for r in result_rows(result) if r["phoneType"] == "mobile")
    assert (mobile["action"], mobile["status"]) == ("skip", "skipped")
    assert mobile["error"].startswith("placeholder ") and mobile["error"].endswith(
        " in sync mode: leave the cell empty to delete, or fill in a number"
    )


@pytest.mark.parametrize("text", ["-", "N/A", "#N/A", "TBD", "0", "\u200b"])
@pytest.mark.parametrize("mode", ["upsert", "create-only"])
def test_outside_sync_a_placeholder_means_no_number_and_leaves_the_type_alone(tenant, connection, write_file, text, mode):
    tenant.add_user("ann@contoso.com", dict(NUMBERS))
    source = write_file("in.csv", f"user,mobile,office\nann@contoso.com,{text},\n")
    rows = result_rows(bulkphone.apply(source, connection=connection, mode=mode))
    assert tenant.state()["ann@contoso.com"] == NUMBERS and tenant.writes == []
    mobile = next(r for r in rows if r["phoneType"] == "mobile")
    assert (mobile["action"], mobile["status"], mobile["error"]) == ("noop", "ok", "")
    assert mobile["note"].startswith("placeholder ") and "read as no number" in mobile["note"]


def test_an_invalid_number_beside_a_blank_row_of_the_same_user_deletes_nothing(tenant_and_url, write_file, tmp_path):
    tenant, url = tenant_and_url
    source = write_file("in.csv", "user,mobile\nuser1@contoso.com,+1 425 555\nuser1@contoso.com,\n")
    result = sync(source, tmp_path, url)
    assert result.exit_code == 1
    assert tenant.writes == [] and tenant.state()["user1@contoso.com"] == NUMBERS
    rows = read_rows(tmp_path / "results.csv")
    assert [(r["row"], r["action"]) for r in rows] == [("2", "skip"), ("3", "skip")]
    assert rows[0]["error"].startswith("too short")  # the invalid row keeps its own reason
    assert rows[1]["error"].startswith("conflict: rows 2 and 3 leave this user's mobile empty")


def _workbook(path, rows):
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)  # openpyxl saves formulas without a value, as scripts do
    return path


def test_an_xlsx_formula_without_a_saved_value_is_a_row_to_fix_not_a_delete(tenant_and_url, tmp_path):
    tenant, url = tenant_and_url
    source = _workbook(tmp_path / "in.xlsx", [
        ["user", "mobile", "office", "department"],
        ["user1@contoso.com", '=VLOOKUP(A2,Sheet2!A:B,2,FALSE)', "+1 425 555 0199", "=1+1"],  # the formula's cell only
        ['=LOWER("USER2@CONTOSO.COM")', "", ""],  # a formula as the user: the whole row
        ["user3@contoso.com", "", "+1 425 555 0199"],  # a real blank: deletes
    ])
    result = sync(source, tmp_path, url)
    assert result.exit_code == 1, result.output
    state = tenant.state()
    assert state["user1@contoso.com"] == NUMBERS and state["user2@contoso.com"] == NUMBERS
    assert state["user3@contoso.com"] == {"office": "+1 4255550199"}
    rows = {(r["row"], r["phoneType"]): r for r in read_rows(tmp_path / "results.csv")}
    assert rows[("2", "mobile")]["error"].startswith("the cell B2 holds a formula (=VLOOKUP(A2,Sheet2!A:B,2,FALSE)) with no saved value")
    assert rows[("2", "office")]["action"] == "noop"  # the unrelated `department` formula spoils nothing
    assert all(rows[("3", t)]["error"].startswith("the cell A3 holds a formula") for t in ("mobile", "office"))


def _edited_sheet(made, path, old: bytes, new: bytes):
    """A copy of a workbook whose sheet XML has `old` replaced by `new` (cells as Excel itself saves them)."""
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(path, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert old in data
                data = data.replace(old, new)
            out.writestr(item, data)
    return path


def test_an_xlsx_formula_with_a_saved_value_uses_that_value(tenant, connection, tmp_path):
    made = _workbook(tmp_path / "made.xlsx", [["user", "mobile"], ["ann@contoso.com", '="+1 425 555 0111"']])
    saved = _edited_sheet(made, tmp_path / "saved.xlsx", b'<c r="B2"><f>"+1 425 555 0111"</f><v /></c>',
                          b'<c r="B2" t="str"><f>"+1 425 555 0111"</f><v>+1 425 555 0111</v></c>')
    tenant.add_user("ann@contoso.com", dict(NUMBERS))
    bulkphone.apply(saved, connection=connection, mode="sync")
    assert tenant.state()["ann@contoso.com"] == {"mobile": "+1 4255550111", "office": "+1 4255550199"}


def test_an_xlsx_error_value_is_a_placeholder_not_a_blank(tenant, connection, tmp_path):
    made = _workbook(tmp_path / "made.xlsx", [["user", "mobile"], ["ann@contoso.com", "x"]])
    # a lookup that found nothing: #N/A, saved as an error cell (pandas used to read it as empty)
    error = _edited_sheet(made, tmp_path / "error.xlsx", b'<c r="B2" t="inlineStr"><is><t>x</t></is></c>',
                          b'<c r="B2" t="e"><v>#N/A</v></c>')
    tenant.add_user("ann@contoso.com", dict(NUMBERS))
    rows = result_rows(bulkphone.apply(error, connection=connection, mode="sync"))
    assert tenant.state()["ann@contoso.com"] == NUMBERS
    assert rows[0]["error"] == "placeholder '#N/A' in sync mode: leave the cell empty to delete, or fill in a number"


def test_a_map_or_users_file_with_a_short_row_is_refused_whole(tenant_and_url, write_file, tmp_path):
    tenant, url = tenant_and_url
    source = write_file("in.csv", "user,mobile\nuser1@fabrikam.com,+1 425 555 0100\n")
    mapping = write_file("map.csv", "sourceUser,targetUser\nuser1@fabrikam.com\n")  # would map the user to no one
    result = run("plan", source, "--report", tmp_path / "plan.csv", "--graph-url", url, "--map", mapping)
    assert result.exit_code == 2
    assert "map.csv, row 2: this row has 1 of the header's 2 fields (targetUser missing)" in result.output
