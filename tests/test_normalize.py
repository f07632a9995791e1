import re

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkphone._normalize import NO_REGION, canonical, is_masked, normalize_number

GRAPH_FORMAT = re.compile(r"^\+\d{1,3} \d+(x\d+)?$")


@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("+1 425 555 0100", "", "+1 4255550100"),
        ("(425) 555-0100", "US", "+1 4255550100"),
        ("+1 (425) 555-0100", "", "+1 4255550100"),
        ("425.555.0100", "US", "+1 4255550100"),
        ("425-555-0100 x12", "US", "+1 4255550100x12"),
        ("425-555-0100 ext. 12", "US", "+1 4255550100x12"),
        ("425-555-0100 extension 12", "US", "+1 4255550100x12"),
        ("425-555-0100 #12", "US", "+1 4255550100x12"),
        ("+1 425 555 0100;ext=12", "", "+1 4255550100x12"),
        ("tel:+1-425-555-0100;ext=12", "", "+1 4255550100x12"),
        ("0044 20 7946 0958", "", "+44 2079460958"),
        ("0044 20 7946 0958", "GB", "+44 2079460958"),
        ("011 44 20 7946 0958", "US", "+44 2079460958"),
        ("+44 (0)20 7946 0958", "", "+44 2079460958"),
        ("020 7946 0958", "GB", "+44 2079460958"),
        ("07400 123456", "GB", "+44 7400123456"),
        ("06 1234 5678", "IT", "+39 0612345678"),
        ("+39 06 1234 5678", "", "+39 0612345678"),
        ("01512 3456789", "DE", "+49 15123456789"),
        ("06 12 34 56 78", "FR", "+33 612345678"),
        ("090-1234-5678", "JP", "+81 9012345678"),
        ("＋８１ ９０ １２３４ ５６７８", "", "+81 9012345678"),
        ("+44\u00a07400\u00a0123456", "", "+44 7400123456"),
        ("\ufeff+44 7400 123456", "", "+44 7400123456"),
        ("+91 74104 10123 x 42", "", "+91 7410410123x42"),
    ],
)
def test_formats_people_write_become_graph_format(raw, region, expected):
    result = normalize_number(raw, region)
    assert result.error == ""
    assert result.number == expected
    assert GRAPH_FORMAT.match(result.number)


@pytest.mark.parametrize(
    "raw, region, reason",
    [
        ("020 7946", "GB", "too short for GB (7 digits, needs 9–10)"),
        ("4255550", "US", "too short for US (7 digits, needs 10)"),
        ("+1 425 555 01001", "", "too long for US (11 digits, needs 10)"),
        ("+999 1234567", "", "country code 999 does not exist"),
        ("4255550100", "", NO_REGION),
        ("4.2555501E+09", "US", "Excel scientific notation lost digits"),
        ('=CONCAT("+1 425", "555 0100")', "US", "a spreadsheet formula, not a number"),
        ("=4255550100", "US", "a spreadsheet formula, not a number (=4255550100)"),
        ("call me", "US", "not a phone number"),
        ("+44 1632 960000", "", "not a valid number for GB"),
    ],
)
def test_numbers_that_cannot_be_sent_say_why(raw, region, reason):
    result = normalize_number(raw, region)
    assert result.number == ""
    assert reason in result.error


@pytest.mark.parametrize("raw", ["", "   ", None, "nan", "N/A"])
def test_blank_values_are_blank_not_errors(raw):
    result = normalize_number(raw, "US")
    assert result.blank


def test_number_type_is_reported_for_warnings():
    assert normalize_number("+44 121 234 5678", "").number_type == "fixed_line"
    assert normalize_number("+44 7400 123456", "").number_type == "mobile"


def test_canonical_makes_legacy_stored_values_comparable():
    assert canonical("+1 (425) 555-0100") == "+1 4255550100"
    assert canonical("+1 4255550100") == "+1 4255550100"
    assert canonical("+1 XXXXXXXX00") == "+1 XXXXXXXX00"


def test_masked_values_are_detected():
    assert is_masked("+1 XXXXXXXX00")
    assert not is_masked("+1 4255550100")


REGIONS = sorted(["US", "GB", "DE", "FR", "IT", "IN", "AU", "JP", "BR", "NL", "ES", "MX", "CH", "SE", "PL", "ZA"])
FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
]
TYPES = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]


@settings(max_examples=300, deadline=None)
@given(
    region=st.sampled_from(REGIONS),
    number_format=st.sampled_from(FORMATS),
    number_type=st.sampled_from(TYPES),
    last_digits=st.integers(min_value=0, max_value=99),
    extension=st.one_of(st.none(), st.integers(min_value=1, max_value=99999)),
)
def test_any_valid_number_formatted_any_way_normalises_back(region, number_format, number_type, last_digits, extension):
    example = phonenumbers.example_number_for_type(region, number_type)
    national = str(example.national_number)
    candidate = phonenumbers.parse(f"+{example.country_code}{national[:-2]}{last_digits:02d}")
    if not phonenumbers.is_valid_number(candidate):
        candidate = example
    if number_format == phonenumbers.PhoneNumberFormat.E164:
        extension = None  # E.164 has no way to write an extension
    if extension is not None:
        candidate.extension = str(extension)
    expected = f"+{candidate.country_code} {phonenumbers.national_significant_number(candidate)}"
    if extension is not None:
        expected += f"x{extension}"
    written = phonenumbers.format_number(candidate, number_format)
    result = normalize_number(written, region)
    assert result.number == expected, (written, result)
    assert GRAPH_FORMAT.match(result.number)


def test_the_normalizer_remembers_each_distinct_value_within_its_bound():
    from bulkphone._normalize import Normalizer

    pairs = [("(425) 555-01%02d" % (i % 37), "US") for i in range(300)] + [("06 1234 5678", "IT"), ("020 7946", "GB"), ("", "US")]
    expected = [normalize_number(raw, region) for raw, region in pairs]
    remembering = Normalizer()
    assert [remembering(raw, region) for raw, region in pairs] == expected
    assert len(remembering.cache) == 37 + 3
    bounded = Normalizer(max_cache=10)
    assert [bounded(raw, region) for raw, region in pairs] == expected
    assert len(bounded.cache) <= 10


def corpus():
    import csv
    from pathlib import Path

    path = Path(__file__).parent / "corpus" / "normalize.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return [pytest.param(row, id=f"{row['case']}: {row['raw']!r}") for row in csv.DictReader(handle)]


@pytest.mark.parametrize("case", corpus())
def test_corpus(case):
    from bulkphone._normalize import extension_problem, normalize_region

    region, _ = normalize_region(case["region"])
    result = normalize_number(case["raw"], region)
    # A number is checked for the column it is in: extensions only on office phones.
    error = result.error or extension_problem(result.number, case["phoneType"] or "mobile")
    number = "" if error else result.number
    if case["expected"]:
        assert (number, error) == (case["expected"], "")
        assert GRAPH_FORMAT.match(number)
    else:
        assert number == "" and case["reason"] in error
