"""Durations and sizes: what the parsers accept is exactly what the CRD patterns accept."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftmend.quantities import (
    BYTES_PATTERN,
    DURATION_PATTERN,
    POSITIVE_DURATION_PATTERN,
    format_bytes,
    format_duration,
    human_bytes,
    parse_bytes,
    parse_duration,
    parse_positive_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30.0), ("30", 30.0), ("1.5m", 90.0), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_durations_with_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan", "inf", ".inf"])
def test_non_finite_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [" 30s", "30 s", "30s\n", "3O s", "-1s", "1e3s", "٣s", True, [1]])
def test_malformed_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="30s, 5m or 500ms"):
        parse_duration(bad)


def test_bare_numbers_are_whole_seconds() -> None:
    """A bare number is int-or-string's integer: 5 and 5.0 pass, 0.5 needs a unit."""
    assert parse_duration(5) == 5.0
    assert parse_duration(5.0) == 5.0
    with pytest.raises(ValueError, match="whole seconds"):
        parse_duration(0.5)
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-1)


def test_huge_durations_are_refused_not_overflowed() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration(10**400)
    with pytest.raises(ValueError, match="too long"):
        parse_duration("9" * 400 + "d")


@pytest.mark.parametrize("zero", [0, 0.0, "0", "0s", "0.0ms", "000"])
def test_positive_durations_refuse_every_zero(zero: object) -> None:
    assert parse_duration(zero) == 0.0
    with pytest.raises(ValueError, match="more than 0"):
        parse_positive_duration(zero)


KI, MI, GI = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512Mi", 512 * MI), ("1Ki", KI), ("2Ti", 2 * 1024**4), ("1Pi", 1024**5),
        ("1Ei", 1024**6), ("1k", 1000), ("500M", 500 * 10**6), ("1G", 10**9),
        ("1T", 10**12), ("1P", 10**15), ("1E", 10**18),
        # Redis' spelling, any case, powers of 1024 as Redis and Docker read it.
        ("64mb", 64 * MI), ("64MB", 64 * MI), ("64Mb", 64 * MI), ("8kb", 8 * KI),
        ("1gb", GI), ("1GB", GI),
        ("100", 100), ("0", 0), ("1.0", 1), (4096, 4096), (4096.0, 4096),
        ("1.5Gi", GI + GI // 2), ("0.125Ki", 128), ("2.750Mi", 2 * MI + 3 * MI // 4),
        ("1.5k", 1500), ("1.234M", 1_234_000), ("1.5000G", 1_500_000_000), ("0.5gb", GI // 2),
    ],
)  # fmt: skip
def test_sizes(text: object, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize(
    ("bad", "fix"),
    [
        ("512m", "a lowercase m means milli in Kubernetes and mega elsewhere; did you mean 512Mi?"),
        ("512K", "did you mean 512Ki or 512k?"),
        ("2g", "did you mean 2Gi or 2G?"),
        ("2t", "did you mean 2Ti or 2T?"),
        ("512mi", "did you mean 512Mi?"),
        ("512MI", "did you mean 512Mi?"),
        ("1gI", "did you mean 1Gi?"),
        ("512MiB", "did you mean 512Mi?"),
        ("4kib", "did you mean 4Ki?"),
        ("512B", "a bare number is already bytes; did you mean 512?"),
        ("512b", "did you mean 512?"),
        ("1tb", "did you mean 1Ti or 1T?"),
        ("1.1Gi", "not a whole number of bytes"),
        ("1.0625Gi", "at most three decimals"),
        ("1.5", "a bare number means whole bytes"),
        ("1.2345k", "at most three decimals"),
    ],
)
def test_ambiguous_sizes_are_refused_with_the_fix(bad: str, fix: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_bytes(bad)
    assert fix in str(refused.value)


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, 1.5, -1, 10**19, "1 GiB", "1 G", " 1G", "1G\n", "٣Mi", True, None, [1]],
)
def test_bad_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_bytes(bad)


SAMPLES = [
    "0", "00", "1", "30s", "0s", "0.5s", "0.0s", "500ms", "1.5m", "2h", "1d", "10.05ms",
    "s", "", "1.s", ".5s", "1,5s", "1 s", " 1s", "1s\n", "1w", "1S", "-1s", "٣s", "1e3",
]  # fmt: skip


@pytest.mark.parametrize("text", SAMPLES)
def test_duration_parsers_agree_with_their_crd_patterns(text: str) -> None:
    """The API server checks the pattern; the controller parses: both must say the same."""
    for pattern, parse in (
        (DURATION_PATTERN, parse_duration),
        (POSITIVE_DURATION_PATTERN, parse_positive_duration),
    ):
        matches = re.fullmatch(pattern, text, re.ASCII) is not None
        try:
            parse(text)
            parsed = True
        except ValueError:
            parsed = False
        assert parsed == matches, (pattern, text)


SIZE_SAMPLES = [
    "1", "0", "00", "1.0", "1.00", "1.5", "512Mi", "64mb", "64MB", "64mB", "64Mb", "1G", "1.5Gi",
    "0.5Ki", "0.125Ki", "0.0625Ki", "1.1Gi", "1.375Ti", "2.5000Pi", "1.5Ei", "1k", "1.999k",
    "1.9999k", "1.99990k", "1.123456M", "1K", "1m", "1g", "1t", "1p", "1e", "1P", "1E",
    "1mi", "1MI", "1mI", "1MiB", "1KiB", "1kib", "1b", "1B", "10b", "1kb", "1KB", "1gb",
    "1tb", "1TB", "1pb", "1 G", "G", "Mi", ".5Gi", "1.Gi", "1Gx", "-1", "+1", "1e3", "1G\n",
    "٣Mi", "1,5Gi", "", "1Mii",
]  # fmt: skip


def _parses(text: str) -> bool:
    try:
        parse_bytes(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("text", SIZE_SAMPLES)
def test_size_parser_agrees_with_its_crd_pattern(text: str) -> None:
    """No flags: the pattern must read the same in Python's re as in RE2 and ECMAScript."""
    assert _parses(text) == (re.fullmatch(BYTES_PATTERN, text) is not None), text


_UNITS = [
    *("", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"),
    *("kb", "KB", "Kb", "kB", "mb", "MB", "gb", "GB", "gB", "tb", "TB", "pb"),
    *("K", "m", "g", "t", "p", "e", "b", "B", "i", "ki", "mi", "MI", "mI", "KiB", "MiB", "kib"),
]  # fmt: skip
# Eighths (whole bytes with a binary unit) and near misses (.0625 has four decimals).
_FRACTIONS = [
    *(".5", ".25", ".75", ".125", ".375", ".625", ".875", ".0625", ".1", ".2"),
    *(".1234", ".5000", ".750", "."),
]
# Built like a size (digits, a fraction, a unit), so most draws are near the pattern's edges:
# eighths and not, three decimals and four, trailing zeros, every unit and its misspellings;
# then some noise around it (signs, spaces, a newline, another script's digit).
_SIZE_LIKE = st.builds(
    lambda before, whole, fraction, unit, after: f"{before}{whole}{fraction}{unit}{after}",
    st.sampled_from(["", " ", "+", "-", "."] + [""] * 15),
    st.from_regex(r"[0-9]{0,3}", fullmatch=True),
    st.one_of(
        st.just(""),
        st.sampled_from(_FRACTIONS),
        st.from_regex(r"\.[0-9]{1,6}", fullmatch=True),
    ),
    st.one_of(st.sampled_from(_UNITS), st.text(alphabet="kKmMgGiIbBeE", max_size=3)),
    st.sampled_from([" ", "\n", "٣", "x", "0"] + [""] * 15),
)


@settings(max_examples=3000, deadline=None, derandomize=True, database=None)
@given(st.one_of(_SIZE_LIKE, st.text(max_size=12)))
def test_size_pattern_accepts_exactly_what_the_parser_accepts(text: str) -> None:
    """For any string: the CRD's pattern matches it exactly when ``parse_bytes`` takes it."""
    assert _parses(text) == (re.fullmatch(BYTES_PATTERN, text) is not None), text


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_format_bytes_round_trips_in_every_reader(size: int) -> None:
    """What we write back is read as the same bytes by us and by Kubernetes (and is short)."""
    from driftmend.drivers.kubernetes.quantities import memory_quantity, parse_quantity

    text = format_bytes(size)
    assert parse_bytes(text) == size
    assert re.fullmatch(BYTES_PATTERN, text)
    assert len(text) <= len(str(size))
    if size < 2**53:  # parse_quantity is in floats: exact below 2**53
        assert parse_quantity(text) == size
    assert parse_bytes(memory_quantity(size)) == size
    human = human_bytes(size)
    assert human.startswith("~") or parse_bytes(human) == size


@pytest.mark.parametrize("seconds", [0.0, 0.5, 1.0, 30.0, 90.0, 600.0, 7200.0, 86400.0])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
