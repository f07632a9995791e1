"""Normalising a million messy rows: bulkphone vs the obvious pandas + phonenumbers script.

Generates N realistic messy rows across 16 regions (deterministic seed): every phonenumbers
format, non-breaking spaces, 00 and 011 prefixes, full-width digits, Excel's scientific notation
and eaten +, numbers cut short, (0) trunk prefixes after the country code, extensions in eight
spellings, landlines in the mobile column, rows without a region. Then measures in the
same run, each in its own process: rows/s and peak memory of `bulkphone normalize`, and of the
approach a user writes first (pandas read_csv, then df.apply calling phonenumbers.parse /
is_valid_number / format_number per row and column). Finally compares every value with
phonenumbers' own verdict and lists the differences.

    python benchmarks/normalize.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import phonenumbers

REGIONS = ["US", "GB", "DE", "FR", "IT", "ES", "NL", "CH", "SE", "AU", "JP", "IN", "BR", "MX", "CA", "PL"]
FORMATS = [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
           phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.RFC3966]
PHONE_COLUMNS = ["mobile", "alternateMobile", "office"]


EXTENSIONS = [" ext. {n}", " x{n}", " ext {n}", " extension {n}", " #{n}", ";ext={n}", " Ext.{n}", " X {n}"]


def messy(rng: random.Random, region: str, kind: int) -> str:
    example = phonenumbers.example_number_for_type(region, kind)
    digits = str(example.national_number)
    keep = max(2, len(digits) - 6)
    national = digits[:keep] + "".join(rng.choice("0123456789") for _ in digits[keep:])
    number = phonenumbers.parse(f"+{example.country_code}{national}")
    number.italian_leading_zero = example.italian_leading_zero
    number.number_of_leading_zeros = example.number_of_leading_zeros
    text = phonenumbers.format_number(number, rng.choice(FORMATS))
    roll = rng.random()
    if roll < 0.03:
        text = text.replace(" ", "\u00a0")
    elif roll < 0.05 and text.startswith("+"):
        text = "00" + text[1:].replace("-", " ")
    elif roll < 0.06:
        text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    elif roll < 0.062:
        text = f"{int(national):.7E}".replace("E+0", "E+")  # what Excel does to a long number
    elif roll < 0.065:
        text = text[: len(text) // 2]  # cut short
    elif roll < 0.08 and phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix == "0":
        text = f"+{example.country_code} (0){national}"  # the trunk prefix kept after the country code
    elif roll < 0.09:
        text = f"{example.country_code}{national}"  # Excel ate the +
    elif roll < 0.095 and region in ("US", "CA"):
        text = f"011 {example.country_code} {national}"  # dialled from the US
    return text


def generate(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    switchboards = {r: [messy(rng, r, phonenumbers.PhoneNumberType.FIXED_LINE) for _ in range(300)] for r in REGIONS}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "mobile", "alternateMobile", "office", "region"])
        for i in range(rows):
            region = rng.choice(REGIONS)
            # now and then a landline in the mobile column: a warning, not a rejection
            mobile_kind = phonenumbers.PhoneNumberType.FIXED_LINE if rng.random() < 0.03 else phonenumbers.PhoneNumberType.MOBILE
            mobile = messy(rng, region, mobile_kind) if rng.random() < 0.95 else ""
            alternate = messy(rng, region, phonenumbers.PhoneNumberType.MOBILE) if rng.random() < 0.1 else ""
            office = ""
            if rng.random() < 0.7:  # most office numbers are a site's switchboard, some with an extension
                office = rng.choice(switchboards[region])
                if rng.random() < 0.5:
                    office += rng.choice(EXTENSIONS).format(n=rng.randint(100, 9999))
            writer.writerow([f"user{i}@contoso.com", mobile, alternate, office, region if rng.random() < 0.9 else ""])


OBVIOUS = r'''
import sys, time, resource
import pandas as pd, phonenumbers

def e164(raw, region):
    if not isinstance(raw, str) or not raw:
        return ""
    try:
        number = phonenumbers.parse(raw, region if isinstance(region, str) and region else None)
    except phonenumbers.NumberParseException:
        return "invalid"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

started = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
for column in ("mobile", "alternateMobile", "office"):
    df[column + "_e164"] = df.apply(lambda row: e164(row[column], row["region"] or "US"), axis=1)
df.to_csv(sys.argv[2], index=False)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


LAUNCHER = "import resource, subprocess, sys; subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def measure(command: list[str]) -> tuple[float, float]:
    """Seconds, and the peak resident memory (MiB) of the command's largest process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    return seconds, int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source = folder / "messy.csv"
        generate(source, args.rows)
        bulkphone_out, obvious_out = folder / "bulkphone.csv", folder / "obvious.csv"
        ours_s, ours_mib = measure([sys.executable, "-m", "bulkphone", "normalize", str(source), "--report",
                                    str(bulkphone_out), "--default-region", "US"])
        script = folder / "obvious.py"
        script.write_text(OBVIOUS)
        obvious_s, obvious_mib = measure([sys.executable, str(script), str(source), str(obvious_out)])
        agreement, differences = compare(bulkphone_out, obvious_out)
    print(f"{args.rows:,} rows, {len(REGIONS)} regions, 2 cores")
    print("| approach | seconds | rows/s | peak memory (MiB) |")
    print("|---|---|---|---|")
    print(f"| bulkphone normalize | {ours_s:.1f} | {args.rows / ours_s:,.0f} | {ours_mib:,.0f} |")
    print(f"| pandas + df.apply(phonenumbers) | {obvious_s:.1f} | {args.rows / obvious_s:,.0f} | {obvious_mib:,.0f} |")
    print(f"speed-up: {obvious_s / ours_s:.1f}x; agreement with phonenumbers' verdict: {agreement:.3%} of values")
    for (ours, theirs, why), count in differences.most_common(12):
        print(f"  {count:>7} × bulkphone {ours!r} vs phonenumbers {theirs!r}: {why}")
    return 0


def compare(ours_path: Path, theirs_path: Path) -> tuple[float, Counter]:
    with ours_path.open(newline="", encoding="utf-8") as handle:
        ours = {(r["row"], r["phoneType"]): r for r in csv.DictReader(handle)}
    same = total = 0
    differences: Counter = Counter()
    with theirs_path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            for column in PHONE_COLUMNS:
                mine = ours.get((str(line), column))
                if mine is None:
                    continue
                total += 1
                theirs = row[column + "_e164"]
                mine_value = mine["phoneNumber"].replace(" ", "").split("x")[0] if mine["phoneNumber"] else (
                    "invalid" if mine["status"] == "invalid" else "")
                if mine_value == theirs:
                    same += 1
                else:
                    differences[(mine["phoneNumber"] or mine["error"][:40], theirs, explain(mine, theirs))] += 1
    return same / total, differences


def explain(mine: dict, theirs: str) -> str:
    if "scientific" in mine["error"]:
        return "Excel scientific notation: phonenumbers reads the mangled digits as a number"
    if mine["phoneNumber"] and theirs == "invalid":
        return "bulkphone cleaned it first (e.g. 00 prefix with no region)"
    if not mine["phoneNumber"] and theirs not in ("", "invalid"):
        return "bulkphone rejected what phonenumbers accepted"
    return "other"


if __name__ == "__main__":
    sys.exit(main())
