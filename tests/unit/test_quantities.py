"""Durations and sizes: what the parsers accept is exactly what the CRD patterns accept."""

from __future__ import annotations

import math
import re

import pytest

from driftmend.quantities import (
    BYTES_PATTERN,
    DURATION_PATTERN,
    POSITIVE_DURATION_PATTERN,
    format_duration,
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


@pytest.mark.parametrize(
    ("text", "size"),
    [("512Mi", 512 * 1024**2), ("64mb", 64 * 1024**2), ("1G", 10**9), ("100", 100), (4096, 4096)],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1.5, -1, "9" * 400 + "t", "1 GiB", True])
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


@pytest.mark.parametrize(
    "text", ["1", "512Mi", "64mb", "1G", "1.5Gi", "10b", "1 G", "G", "1Gx", "-1", "1e3", "1G\n"]
)
def test_size_parser_agrees_with_its_crd_pattern(text: str) -> None:
    matches = re.fullmatch(BYTES_PATTERN, text, re.ASCII) is not None
    try:
        parse_bytes(text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed == matches, text


@pytest.mark.parametrize("seconds", [0.0, 0.5, 1.0, 30.0, 90.0, 600.0, 7200.0, 86400.0])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
