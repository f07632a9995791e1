"""The first hour with bulkphone: Excel habits, prefixes people write, and messages that help."""

import csv

import openpyxl
import pytest
from click.testing import CliRunner

import bulkphone
from bulkphone._normalize import normalize_number
from bulkphone.cli import main

ANN = "ann@contoso.com"


def normalize(*args):
    return CliRunner().invoke(main, ["normalize", *map(str, args)])


def rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def workbook(tmp_path):
    book = openpyxl.Workbook()
    book.active.title = "Read me"
    book.active.append(["This workbook lists the pilot group's phones on the next sheet."])
    phones = book.create_sheet("Phones")
    phones.append(["user", "mobile"])
    phones.append([ANN, "+44 7911 123456"])
    path = tmp_path / "phones.xlsx"
    book.save(path)
    return path


@pytest.mark.parametrize("sheet", ["Phones", "phones", "2"])
def test_a_workbook_sheet_is_chosen_by_name_or_position(workbook, tmp_path, sheet):
    done = normalize(workbook, "--sheet", sheet, "--report", tmp_path / "r.csv")
    assert done.exit_code == 0, done.output
    assert [(row["user"], row["phoneNumber"]) for row in rows(tmp_path / "r.csv")] == [(ANN, "+44 7911123456")]


def test_without_the_right_sheet_the_message_lists_the_sheets(workbook, tmp_path):
    first = normalize(workbook, "--report", tmp_path / "r.csv")
    assert first.exit_code == 2
    assert "no user column on sheet 'Read me'" in first.output
    assert "choose the sheet that has them (--sheet; this workbook's sheets: 'Read me', 'Phones')" in first.output
    missing = normalize(workbook, "--sheet", "Sheet9", "--report", tmp_path / "r.csv")
    assert missing.exit_code == 2 and "no sheet 'Sheet9' (this workbook's sheets: 'Read me', 'Phones')" in missing.output
    assert not (tmp_path / "r.csv").exists()


def test_a_csv_has_no_sheets(write_file, tmp_path):
    source = write_file("in.csv", f"user,mobile\n{ANN},+44 7911 123456\n")
    done = normalize(source, "--sheet", "2", "--report", tmp_path / "r.csv")
    assert done.exit_code == 2 and "is not a workbook, so it has no sheets. Fix: leave out --sheet" in done.output


def test_a_job_file_chooses_its_sheet(workbook, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[input]\nfile = "phones.xlsx"\nsheet = 2\n')
    assert bulkphone.load_job(job).sheet == "2"


def test_excel_s_sep_line_names_the_separator_and_is_not_a_row(tmp_path):
    source = tmp_path / "excel.csv"
    source.write_bytes(f"sep=;\r\nuser;mobile;office\r\n{ANN};+44 7911 123456;+44 20 7946 0958\r\n".encode())
    done = normalize(source, "--report", tmp_path / "r.csv")
    assert done.exit_code == 0, done.output
    report = rows(tmp_path / "r.csv")
    assert [(row["row"], row["phoneType"], row["phoneNumber"]) for row in report] == [
        ("2", "mobile", "+44 7911123456"), ("2", "office", "+44 2079460958")]  # row 2, as Excel shows it


@pytest.mark.parametrize("written, region, expected", [
    ("0044 20 7946 0958", "US", "+44 2079460958"),  # 00 wins where the region dials out with 011
    ("011 44 20 7946 0958", "US", "+44 2079460958"),
    ("0044 20 7946 0958", "GB", "+44 2079460958"),
    ("0044 20 7946 0958", "", "+44 2079460958"),
    ("0061 2 9374 4000", "JP", "+61 293744000"),  # Japan dials out with 010
])
def test_a_00_international_prefix_is_read_in_every_region(written, region, expected):
    assert normalize_number(written, region).number == expected


def test_a_00_number_that_is_neither_keeps_the_national_reason():
    assert normalize_number("00 999 123", "US").error == "too short for US (8 digits, needs 10)"
