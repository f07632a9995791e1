import pandas as pd
import pytest

from bulkphone._errors import InputError
from bulkphone._ingest import TIDY_COLUMNS, read_input, read_users


def test_wide_file_becomes_one_row_per_user_and_type(write_file):
    path = write_file(
        "wide.csv",
        """
        user,mobile,alternateMobile,office,region
        ann@contoso.com,425 555 0100,,425 555 0199,US
        bob@contoso.com,,,020 7946 0958,GB
        """,
    )
    tidy = read_input(path)
    assert list(tidy.columns) == TIDY_COLUMNS
    assert tidy[["row", "user", "phoneType", "raw", "region"]].values.tolist() == [
        [2, "ann@contoso.com", "mobile", "425 555 0100", "US"],
        [2, "ann@contoso.com", "alternateMobile", "", "US"],
        [2, "ann@contoso.com", "office", "425 555 0199", "US"],
        [3, "bob@contoso.com", "mobile", "", "GB"],
        [3, "bob@contoso.com", "alternateMobile", "", "GB"],
        [3, "bob@contoso.com", "office", "020 7946 0958", "GB"],
    ]


def test_long_file_with_aliases_semicolons_and_bom(tmp_path):
    path = tmp_path / "long.csv"
    path.write_bytes(
        "\ufeffUserPrincipalName;PhoneType;PhoneNumber;usageLocation\n"
        "ann@contoso.com;Mobile;0612345678;IT\n"
        "ann@contoso.com;Alternate Mobile;+39 312 345 6789;\n".encode("utf-8")
    )
    tidy = read_input(path)
    assert tidy[["row", "user", "phoneType", "raw", "region"]].values.tolist() == [
        [2, "ann@contoso.com", "mobile", "0612345678", "IT"],
        [3, "ann@contoso.com", "alternateMobile", "+39 312 345 6789", ""],
    ]


@pytest.mark.parametrize(
    "header",
    [
        "upn,MobilePhone,OfficePhone",
        "UserPrincipalName,Mobile,Office Phone",
        "objectId,mobile,businessPhone",
        "USER,MOBILE,OFFICE",
    ],
)
def test_common_header_spellings_are_understood(write_file, header):
    path = write_file("f.csv", f"{header}\nann@contoso.com,+1 425 555 0100,+1 425 555 0199\n")
    tidy = read_input(path)
    assert dict(zip(tidy["phoneType"], tidy["raw"])) == {"mobile": "+1 425 555 0100", "office": "+1 425 555 0199"}


def test_leading_zeros_and_plus_signs_are_kept_as_text(write_file):
    path = write_file("f.csv", "user,mobile\nann@contoso.com,0612345678\nbob@contoso.com,+14255550100\n")
    assert read_input(path)["raw"].tolist() == ["0612345678", "+14255550100"]


def test_unknown_phone_type_is_a_row_error_not_a_crash(write_file):
    path = write_file("f.csv", "user,phoneType,phoneNumber\nann@contoso.com,fax,+1 425 555 0100\n")
    tidy = read_input(path)
    assert tidy["error"].tolist() == ["unknown phoneType 'fax': use mobile, alternateMobile or office"]


def test_row_without_user_is_kept_with_an_error(write_file):
    path = write_file("f.csv", "user,mobile\n,+1 425 555 0100\n")
    assert read_input(path)["error"].tolist() == ["no user on this row: fill in the UPN or object id"]


def test_blank_lines_are_dropped_but_row_numbers_match_the_file(write_file):
    path = write_file("f.csv", "user,mobile\nann@contoso.com,+1 425 555 0100\n,\nbob@contoso.com,+1 425 555 0101\n")
    assert read_input(path)[["row", "user"]].values.tolist() == [[2, "ann@contoso.com"], [4, "bob@contoso.com"]]


def test_xlsx_input(tmp_path):
    path = tmp_path / "phones.xlsx"
    pd.DataFrame({"UPN": ["ann@contoso.com"], "Mobile": ["+1 425 555 0100"], "Office": [4255550199]}).to_excel(
        path, index=False
    )
    tidy = read_input(path)
    assert dict(zip(tidy["phoneType"], tidy["raw"])) == {"mobile": "+1 425 555 0100", "office": "4255550199"}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"", "the file is empty"),
        ("blank-lines.csv", b"\n\n  \n", "the file is empty"),
        ("commas-only.csv", b",,\n,,\n", "the file is empty"),
        ("latin1.csv", "user,mobile\nrené@contoso.com,+1 425 555 0100\n".encode("latin-1"), "not UTF-8"),
        ("binary.csv", b"\x00\x01\x02\x03PK", "binary file"),
        ("nouser.csv", b"name,mobile\nann,+1 425 555 0100\n", "no user column"),
        ("nophones.csv", b"user,department\nann@contoso.com,HR\n", "no phone columns"),
        ("broken.xlsx", b"this is not a workbook", "can't read this workbook"),
        ("old.xls", b"whatever", "old .xls workbooks are not supported"),
        ("twice.csv", b"upn,userPrincipalName,mobile\na,b,+1 425 555 0100\n", "both mean user"),
    ],
)
def test_unreadable_files_name_the_file_the_problem_and_the_fix(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_input(path)
    text = str(caught.value)
    assert str(path) in text
    assert message in text
    assert "Fix:" in text


def test_users_file_gives_regions_keyed_case_insensitively(write_file):
    path = write_file("users.csv", "UserPrincipalName,usageLocation\nAnn@Contoso.com,gb\nbob@contoso.com,\n")
    assert read_users(path) == {"ann@contoso.com": "GB", "bob@contoso.com": ""}


def test_users_file_with_a_bad_region_says_which_row(write_file):
    path = write_file("users.csv", "user,region\nann@contoso.com,Britain\n")
    with pytest.raises(InputError, match=r"row 2: unknown region 'Britain'"):
        read_users(path)
