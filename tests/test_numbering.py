"""The fast path must give exactly what phonenumbers gives: checked here in every region."""

import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from bulkphone._normalize import _fast, _full
from bulkphone._numbering import classify, national_number

TYPES = [t for name, t in vars(PhoneNumberType).items() if name.isupper() and t != PhoneNumberType.UNKNOWN]
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


def examples(region: str):
    """Each type's example number of the region, and neighbours of it: other last digits, a
    digit more, a digit fewer - valid, invalid and other-region numbers alike."""
    rng = random.Random(region)
    for number_type in TYPES:
        example = phonenumbers.example_number_for_type(region, number_type)
        if example is None:
            continue
        national = phonenumbers.national_significant_number(example)
        variants = {national, national + str(rng.randrange(10)), national[:-1]}
        variants |= {national[:-3] + f"{rng.randrange(1000):03d}" for _ in range(4)}
        for digits in variants:
            if len(digits) >= 2:
                yield example.country_code, digits


CASES = [(region, cc, digits) for region in REGIONS for cc, digits in examples(region)]


def test_the_cases_cover_every_region_and_both_verdicts():
    assert {region for region, _, _ in CASES} >= set(REGIONS) - {"AQ", "BV"}
    verdicts = {phonenumbers.is_valid_number(phonenumbers.parse(f"+{cc}{d}")) for _, cc, d in CASES[:500]}
    assert verdicts == {True, False}


@pytest.mark.parametrize("region", REGIONS)
def test_classify_agrees_with_phonenumbers(region):
    for _, cc, digits in (case for case in CASES if case[0] == region):
        number = phonenumbers.PhoneNumber(country_code=cc, national_number=int(digits))
        if digits.startswith("0"):
            number = phonenumbers.parse(f"+{cc}{digits}")
            digits = phonenumbers.national_significant_number(number)
        found_region, found_type = classify(cc, digits)
        assert found_type == phonenumbers.number_type(number), (cc, digits)
        assert found_region == (phonenumbers.region_code_for_number(number) or ""), (cc, digits)


def written_ways(region: str, cc: int, digits: str):
    """The ways people write a number: every phonenumbers format, and with extensions."""
    try:
        number = phonenumbers.parse(f"+{cc}{digits}")
    except phonenumbers.NumberParseException:
        return
    for style in (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL):
        text = phonenumbers.format_number(number, style)
        yield text
        yield text + " ext. 123"
        yield text + "x42"
    yield phonenumbers.format_out_of_country_calling_number(number, region)
    yield digits
    yield "0" + digits
    yield str(cc) + digits


@pytest.mark.parametrize("region", REGIONS)
def test_the_fast_path_gives_what_the_full_path_gives(region):
    taken = 0
    for _, cc, digits in (case for case in CASES if case[0] == region):
        for text in written_ways(region, cc, digits):
            for given_region in (region, "US", "GB", ""):
                fast = _fast(text, given_region)
                if fast is not None:
                    taken += 1
                    assert fast == _full(text, given_region), (text, given_region)
    assert taken > 0


def test_the_fast_path_takes_the_common_shapes():
    assert _fast("+44 7400 123456", "").number == "+44 7400123456"
    assert _fast("(201) 555-0123", "US").number == "+1 2015550123"
    assert _fast("030/1234567", "DE").number == "+49 301234567"
    assert _fast("+1 201-555-0123 ext. 55", "").number == "+1 2015550123x55"
    assert _fast("02 1234 5678", "IT").number == "+39 0212345678"


@settings(max_examples=400, deadline=None)
@given(
    region=st.sampled_from(REGIONS),
    digits=st.text("0123456789", min_size=2, max_size=16),
    plus=st.booleans(),
    separator=st.sampled_from(["", " ", "-", ".", "/"]),
    extension=st.sampled_from(["", " ext. 7", "x12", " extension 9", " EXT 1234"]),
)
def test_the_fast_path_never_differs_on_any_digits(region, digits, plus, separator, extension):
    middle = len(digits) // 2
    text = ("+" if plus else "") + digits[:middle] + separator + digits[middle:] + extension
    fast = _fast(text, region)
    assert fast is None or fast == _full(text, region)


@pytest.mark.parametrize("region", REGIONS)
def test_national_number_is_what_phonenumbers_parses(region):
    compared = 0
    for _, cc, digits in (case for case in CASES if case[0] == region):
        for text, kwargs, parse_args in (
            (digits, {"country_code": cc}, (f"+{cc}{digits}", None)),
            ("0" + digits, {"country_code": cc}, (f"+{cc}0{digits}", None)),
            (digits, {"written_in": region}, (digits, region)),
            ("0" + digits, {"written_in": region}, ("0" + digits, region)),
            ("8" + digits, {"written_in": region}, ("8" + digits, region)),
        ):
            ours = national_number(text, **kwargs)
            if ours is None:
                continue
            compared += 1
            parsed = phonenumbers.parse(*parse_args)
            assert ours == (parsed.country_code, phonenumbers.national_significant_number(parsed)), (text, kwargs)
    transforms = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix_transform_rule
    assert compared > 0 or transforms  # a region with a transform rule always takes the full path
