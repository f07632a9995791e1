"""phonenumbers' numbering-plan metadata with its patterns compiled once, for the fast path.

phonenumbers looks every pattern up by its text on each call and, for a country code shared by
several regions (+1, +44, +7...), runs the whole type check once per region; on a million
numbers that is most of the normalisation time. The functions here answer the questions the
fast path asks - a number's region and type, what parsing makes of a string of digits - from
the same metadata, step for step as phonenumbers does, so they give exactly its answers
(tests/test_numbering.py checks them against phonenumbers in every region). Where phonenumbers
would take a road they don't follow (an international prefix, a prefix transform rule) they
answer None, and the caller asks phonenumbers itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Callable

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType

__all__ = ["classify", "national_number"]

# (possible lengths, empty when any length of the general description will do; fullmatch)
_Matcher = tuple[frozenset[int], Callable[[str], "re.Match[str] | None"]]

# The order phonenumbers' _number_type_helper tries the special types in: the first match wins.
_SPECIAL_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


@dataclass(frozen=True)
class _Region:
    code: str
    country_code: int
    leading_digits: re.Pattern[str] | None
    general: _Matcher | None
    special: tuple[tuple[frozenset[int], Callable[[str], "re.Match[str] | None"], int], ...]
    fixed_line: _Matcher | None
    mobile: _Matcher | None
    same_mobile_and_fixed_line: bool
    national_prefix: re.Pattern[str] | None
    prefix_transform: bool
    international_prefix: re.Pattern[str] | None
    lengths: tuple[int, ...]
    local_only_lengths: frozenset[int]

    def number_type(self, national: str) -> int:
        """phonenumbers' _number_type_helper."""
        if not _matches(self.general, national):
            return PhoneNumberType.UNKNOWN
        length = len(national)
        for lengths, fullmatch, number_type in self.special:
            if (not lengths or length in lengths) and fullmatch(national):
                return number_type
        if _matches(self.fixed_line, national):
            if self.same_mobile_and_fixed_line or _matches(self.mobile, national):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        if not self.same_mobile_and_fixed_line and _matches(self.mobile, national):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN

    def strip_national_prefix(self, digits: str) -> str | None:
        """phonenumbers' _maybe_strip_national_prefix_carrier_code followed by parse's check
        that what is left has a possible length; None where a transform rule would apply."""
        if self.national_prefix is None:
            return digits
        found = self.national_prefix.match(digits)
        if not found:
            return digits
        if self.prefix_transform:
            return None
        stripped = digits[found.end() :]
        general = self.general[1] if self.general is not None else None
        if general is not None and general(digits) and not general(stripped):
            return digits
        if self.length_verdict(stripped) in ("too short", "local only", "invalid"):
            return digits
        return stripped

    def length_verdict(self, national: str) -> str:
        """phonenumbers' _test_number_length against the general description."""
        if not self.lengths or self.lengths[0] == -1:
            return "invalid"
        length = len(national)
        if length in self.local_only_lengths:
            return "local only"
        if length == self.lengths[0]:
            return "possible"
        if length < self.lengths[0]:
            return "too short"
        if length > self.lengths[-1]:
            return "too long"
        return "possible" if length in self.lengths[1:] else "invalid"


def _matches(matcher: _Matcher | None, national: str) -> bool:
    if matcher is None:
        return False
    lengths, fullmatch = matcher
    return (not lengths or len(national) in lengths) and fullmatch(national) is not None


def _matcher(desc) -> _Matcher | None:
    # A type with no numbers at all has the one possible length -1: it can never match.
    if desc is None or not desc.national_number_pattern or tuple(desc.possible_length or ()) == (-1,):
        return None
    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern).fullmatch


def _compile(code: str, metadata: PhoneMetadata) -> _Region:
    special = tuple(
        (*matcher, number_type)
        for name, number_type in _SPECIAL_TYPES
        if (matcher := _matcher(getattr(metadata, name))) is not None
    )
    general = metadata.general_desc
    return _Region(
        code=code,
        country_code=metadata.country_code,
        leading_digits=re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None,
        general=_matcher(general),
        special=special,
        fixed_line=_matcher(metadata.fixed_line),
        mobile=_matcher(metadata.mobile),
        same_mobile_and_fixed_line=bool(metadata.same_mobile_and_fixed_line_pattern),
        national_prefix=re.compile(metadata.national_prefix_for_parsing) if metadata.national_prefix_for_parsing else None,
        prefix_transform=bool(metadata.national_prefix_transform_rule),
        international_prefix=re.compile(metadata.international_prefix) if metadata.international_prefix else None,
        lengths=tuple(general.possible_length or ()),
        local_only_lengths=frozenset(general.possible_length_local_only or ()),
    )


def _region(code: str, country_code: int) -> _Region | None:
    if code == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return _non_geographic(country_code)
    return _geographic(code)


@cache
def _geographic(code: str) -> _Region | None:
    metadata = PhoneMetadata.metadata_for_region(code, None)
    return _compile(code, metadata) if metadata is not None else None


@cache
def _non_geographic(country_code: int) -> _Region | None:
    metadata = PhoneMetadata.metadata_for_nongeo_region(country_code, None)
    return _compile(phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY, metadata) if metadata is not None else None


@cache
def _regions(country_code: int) -> tuple[_Region, ...]:
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    return tuple(region for code in codes if (region := _region(code, country_code)) is not None)


def classify(country_code: int, national: str) -> tuple[str, int]:
    """(region, PhoneNumberType) of `+country_code national`, `national` being the national
    significant number: what phonenumbers' region_code_for_number ("" for its None) and
    number_type say. The type is UNKNOWN exactly when phonenumbers calls the number invalid."""
    regions = _regions(country_code)
    if not regions:
        return "", PhoneNumberType.UNKNOWN
    if len(regions) == 1:
        return regions[0].code, regions[0].number_type(national)
    for region in regions:
        if region.leading_digits is not None:
            if region.leading_digits.match(national):
                return region.code, region.number_type(national)
            continue
        number_type = region.number_type(national)
        if number_type != PhoneNumberType.UNKNOWN:
            return region.code, number_type
    return "", PhoneNumberType.UNKNOWN


def national_number(digits: str, *, country_code: int = 0, written_in: str = "") -> tuple[int, str] | None:
    """(country code, national significant number) that phonenumbers.parse makes of ASCII
    `digits`: either the digits after `+country_code`, or a number written nationally in the
    region `written_in`.

    None when parse would do more than this follows - an international prefix or the country
    code at the start of a national number, a prefix transform rule, a length it refuses - so
    the caller asks phonenumbers itself."""
    if written_in:
        region = _geographic(written_in)
        if region is None or digits.startswith(str(region.country_code)):
            return None
        if region.international_prefix is not None and region.international_prefix.match(digits):
            return None
    else:
        region = _region(phonenumbers.region_code_for_country_code(country_code), country_code)
        if region is None:
            return None
    national = region.strip_national_prefix(digits)
    if national is None or not 2 <= len(national) <= 17:
        return None
    return region.country_code, national
