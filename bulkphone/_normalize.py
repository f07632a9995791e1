"""Turn a number as people write it into Graph's `+<cc> <number>[x<ext>]`, or say why not."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from ._model import DEFAULT_METHOD, SMS_SIGN_IN
from ._numbering import classify, national_number
from ._text import clip

__all__ = [
    "PLACEHOLDER_WORDS",
    "Normalized",
    "Normalizer",
    "canonical",
    "extension_problem",
    "is_masked",
    "normalize_number",
    "normalize_region",
    "normalize_setting",
    "placeholder",
]

MASKED = re.compile(r"[Xx*•]{2,}")
INTERNATIONAL_SIMPLE = re.compile(r"^\+\d[\d .\-]*$")
NATIONAL_SIMPLE = re.compile(r"^\(?\d[\d ().\-/]*$")
EXTENSION = re.compile(r"^(.*?\d) ?(?:ext\.?|extension|x) ?(\d{1,6})$", re.IGNORECASE)
SEPARATORS = dict.fromkeys(map(ord, "+ ().-/"), None)  # all the simple shapes above allow
SCIENTIFIC = re.compile(r"^\+?\d(?:[.,]\d+)?[eE]\+?\d+$")
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)

NO_REGION = "no region: write the number with +<country code>, add a region column, or give a default region"
# Graph takes an extension only on an office phone (Entra "phone authentication options").
EXTENSION_ONLY_OFFICE = (
    "Graph supports extensions only on office phones ({number}): put this number in the office column, "
    "or drop the extension (x{extension})"
)

_TYPE_NAMES = {value: name.lower() for name, value in vars(PhoneNumberType).items() if name.isupper()}


class Normalized(NamedTuple):
    """The outcome for one raw value: a number, a reason it has none, or no number at all (an
    empty cell, or a placeholder such as `N/A`, which says so in `placeholder`). (A tuple: a
    big file makes millions of them.)"""

    number: str = ""
    region: str = ""
    number_type: str = ""
    error: str = ""
    placeholder: str = ""  # the placeholder as written ("N/A", "-", "0"), or "" for a number or an empty cell

    @property
    def blank(self) -> bool:
        return not self.number and not self.error


def extension_problem(number: str, phone_type: str) -> str:
    """Why `number` (Graph's format) can't be this phone type's, or ""."""
    _, _, extension = number.partition("x")
    if extension and phone_type != "office":
        return EXTENSION_ONLY_OFFICE.format(number=number, extension=extension)
    return ""


# Text that stands for "no number": no digits and either no letters at all (`-`, `--`, `.`, `?`)
# or one of these words once everything but letters is dropped (`N/A` and `#N/A` -> `na`);
# or only zeros (`0`, `000`); or only invisible characters (zero-width space, BOM).
PLACEHOLDER_WORDS = frozenset({
    "na", "nan", "none", "null", "nil", "tbd", "tba", "tbc", "unknown", "notapplicable", "notavailable",
    "empty", "blank", "missing", "nophone", "nonumber", "notset", "undefined",
})


def placeholder(text: str) -> bool:
    """Whether a cleaned, non-empty cell is a placeholder for "no number" (see PLACEHOLDER_WORDS)."""
    letters = "".join(character for character in text.lower() if character.isalpha())
    digits = "".join(character for character in text if character.isdigit())
    if digits:
        return not letters and not digits.strip("0")
    return not letters or letters in PLACEHOLDER_WORDS


def normalize_region(value: str | None) -> tuple[str, str]:
    """Return (region, error) for a user-supplied two-letter region code."""
    region = (value or "").strip().upper()
    if not region:
        return "", ""
    if region in phonenumbers.SUPPORTED_REGIONS:
        return region, ""
    return "", f"unknown region {value.strip()!r}: use a two-letter ISO code such as GB or US"


def is_masked(value: str) -> bool:
    """Graph masks numbers for some delegated callers, e.g. `+1 XXXXXXXX00`."""
    return bool(MASKED.search(value or ""))


def canonical(value: str) -> str:
    """The comparable form of a number Graph already stores (legacy shapes included)."""
    value = (value or "").strip()
    if not value or is_masked(value):
        return value
    result = normalize_number(value, "")
    return result.number or value


_SETTING_VALUES = {
    DEFAULT_METHOD: ("sms", "voiceMobile", "voiceAlternateMobile", "voiceOffice", "push", "oath", "system"),
    SMS_SIGN_IN: ("enabled", "disabled"),
}


def normalize_setting(kind: str, raw: str) -> tuple[str, str]:
    """(the value as Graph spells it, "") or ("", why not) for a defaultMethod or smsSignIn cell;
    ("", "") for a blank one, which leaves the setting alone."""
    text = " ".join(str(raw or "").split())
    if not text:
        return "", ""
    allowed = _SETTING_VALUES[kind]
    spelled = {value.lower(): value for value in allowed}.get(text.lower())
    if spelled is None:
        return "", f"{kind} {clip(text, 40)!r} isn't a value it takes: use one of {', '.join(allowed)} (or leave it empty)"
    return spelled, ""


def normalize_number(raw: str | None, region: str) -> Normalized:
    text = _clean(raw)
    if not text:
        if raw is not None and str(raw).strip():
            return Normalized(placeholder=_invisible(str(raw)))
        return Normalized()
    if SCIENTIFIC.match(text):
        return Normalized(
            error=f"Excel scientific notation lost digits ({clip(text, 40)}): format the column as text and export again"
        )
    if text.startswith("=") and len(text) > 1:
        return Normalized(error=f"a spreadsheet formula, not a number ({clip(text, 40)}): put the number itself in the "
                                "cell (in Excel: copy the column, paste as values) and export again")
    if text[:4].lower() == "tel:":
        text = text[4:]
    # A valid number is never a placeholder, so the common case pays nothing for the check.
    found = _fast(text, region) if len(text) <= 60 else None
    if found is not None:
        return found
    if placeholder(text):
        return Normalized(placeholder=text)
    return _full(text, region)


def _full(text: str, region: str) -> Normalized:
    """phonenumbers.parse and validation, with a reason for every failure.

    `00` is the international prefix in most of the world, so a number written `0044 …` in a
    region that dials out with another prefix (the US's 011) is read as international when
    reading it nationally gives no valid number."""
    if text.startswith("00"):
        national = _parsed(text, region) if region else None
        if national is not None and national.number:
            return national
        international = _parsed("+" + text[2:], "")
        return international if international.number or national is None else national
    return _parsed(text, region)


def _parsed(text: str, region: str) -> Normalized:
    if not region and not text.startswith("+"):
        return Normalized(error=NO_REGION)
    try:
        parsed = phonenumbers.parse(text, region or None)
    except NumberParseException as exc:
        return Normalized(error=_parse_error_reason(exc, text, region))
    return _validate(parsed, region)


def _clean(raw: str | None) -> str:
    if raw is None:
        return ""
    text = str(raw)
    if not text.isascii():
        # NFKC folds full-width digits and the many non-breaking spaces into ASCII.
        text = unicodedata.normalize("NFKC", text).translate(INVISIBLE)
    return " ".join(text.split())


def _invisible(raw: str) -> str:
    """A cell of invisible characters only, named so a person can see it (`U+200B`)."""
    return " ".join(f"U+{ord(character):04X}" for character in raw.strip()[:8])


def _parse_error_reason(exc: NumberParseException, text: str, region: str) -> str:
    kind = exc.error_type
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        if text.startswith("+"):
            digits = re.sub(r"\D", "", text)[:3]
            return f"country code {digits} does not exist: check the digits after +"
        return NO_REGION
    if kind in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
        return f"too short{_for(region)}"
    if kind == NumberParseException.TOO_LONG:
        return f"too long{_for(region)}"
    return f"not a phone number ({clip(text, 80)!r})"


def _for(region: str) -> str:
    return f" for {region}" if region else ""


def _validate(parsed: phonenumbers.PhoneNumber, given_region: str) -> Normalized:
    if parsed.country_code not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        return Normalized(error=f"country code {parsed.country_code} does not exist: check the digits after +")
    national = phonenumbers.national_significant_number(parsed)
    region, number_type = classify(parsed.country_code, national)
    if number_type != PhoneNumberType.UNKNOWN:
        return _number(parsed.country_code, national, parsed.extension or "", region, number_type)
    region = region or _main_region(parsed.country_code) or given_region
    return Normalized(error=_invalid_reason(parsed, national, region))


def _valid(country_code: int, national: str, extension: str) -> Normalized | None:
    region, number_type = classify(country_code, national)
    if number_type == PhoneNumberType.UNKNOWN:
        return None
    return _number(country_code, national, extension, region, number_type)


def _number(country_code: int, national: str, extension: str, region: str, number_type: int) -> Normalized:
    number = f"+{country_code} {national}" + (f"x{extension}" if extension else "")
    return Normalized(number=number, region=region, number_type=_TYPE_NAMES[number_type])


def _fast(text: str, region: str) -> Normalized | None:
    """The common shapes - `+<cc>` or national digits with spaces, dashes, dots or brackets,
    maybe `ext. 123` or `x123` - without phonenumbers.parse, which is most of the cost.

    Only a valid number is taken; anything else (an invalid number, an international prefix,
    an unusual character) goes the full way, so results and messages stay exactly the same."""
    extension = ""
    found = EXTENSION.match(text) if "x" in text or "X" in text else None
    if found:
        text, extension = found.groups()
    if text.startswith("+"):
        if not INTERNATIONAL_SIMPLE.match(text):
            return None
        digits = text.translate(SEPARATORS)
        # phonenumbers reads the country code as the shortest prefix that is one; none starts with 0.
        if len(digits) <= 2 or digits[0] == "0":
            return None
        for length in (1, 2, 3):
            if int(digits[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                parsed = national_number(digits[length:], country_code=int(digits[:length]))
                break
        else:
            return None
    elif region and NATIONAL_SIMPLE.match(text):
        parsed = national_number(text.translate(SEPARATORS), written_in=region)
    else:
        return None
    return _valid(*parsed, extension) if parsed is not None else None


def _main_region(country_code: int) -> str:
    return phonenumbers.region_code_for_country_code(country_code) if country_code else ""


def _invalid_reason(parsed: phonenumbers.PhoneNumber, national: str, region: str) -> str:
    lengths = _subscriber_lengths(region)
    digits = len(national)
    if lengths and digits < lengths[0]:
        word = "too short"
    elif lengths and digits > lengths[-1]:
        word = "too long"
    else:
        return f"not a valid number for {region} (+{parsed.country_code} {national}): check the digits"
    return f"{word} for {region} ({digits} digits, needs {_describe(lengths)})"


@cache
def _subscriber_lengths(region: str) -> list[int]:
    """Lengths of real subscriber numbers (fixed line and mobile), not short codes."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
    if metadata is None:
        return []
    lengths: set[int] = set()
    for desc in (metadata.fixed_line, metadata.mobile):
        if desc is not None and desc.possible_length:
            lengths.update(n for n in desc.possible_length if n > 0)
    return sorted(lengths)


def _describe(lengths: list[int]) -> str:
    if len(lengths) > 1 and lengths == list(range(lengths[0], lengths[-1] + 1)):
        return f"{lengths[0]}–{lengths[-1]}"
    return " or ".join(str(n) for n in lengths)


class Normalizer:
    """normalize_number with a memory: big files repeat values (a site's switchboard, a
    shared desk), so each distinct (value, region) is worked out once. The memory is bounded
    so it stays flat on a huge file; repeats cluster within a chunk anyway."""

    def __init__(self, max_cache: int = 200_000) -> None:
        self.cache: dict[tuple[str, str], Normalized] = {}
        self.max_cache = max_cache

    def __call__(self, raw: str, region: str) -> Normalized:
        key = (raw, region)
        known = self.cache.get(key)
        if known is None:
            if len(self.cache) >= self.max_cache:
                self.cache.clear()
            known = self.cache[key] = normalize_number(raw, region)
        return known
