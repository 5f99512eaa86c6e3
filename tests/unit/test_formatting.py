"""The formatting rules (driftmend/formatting.py): each rule, and the script's copy of none.

The script applies the same table (static/js/format.js reads it from the page); when Node is
here, the last test runs that module against Python's answers for the same values.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from driftmend.formatting import (
    FLAGS,
    MISSING,
    UNITS,
    format_value,
    health_label,
    rules,
    signal_units,
    unit_of,
)
from driftmend.model import Health
from driftmend.signals import SIGNALS

FORMAT_JS = Path(__file__).parents[2] / "driftmend/dashboard/static/js/format.js"


def test_missing_and_non_finite_values_read_as_a_dash() -> None:
    assert MISSING == "\u2013"
    for value in (None, math.nan, math.inf, -math.inf):
        assert format_value(value, unit="bytes") == MISSING


def test_flags_read_yes_and_no_whatever_the_unit() -> None:
    assert FLAGS == {"true": "yes", "false": "no"}
    assert format_value(True) == "yes"
    assert format_value(False, unit="bytes") == "no"


def test_text_is_shown_as_it_is() -> None:
    assert format_value("n/a", unit="%") == "n/a"


def test_bytes_step_up_by_1024() -> None:
    assert format_value(0, unit="bytes") == "0 B"
    assert format_value(1023, unit="bytes") == "1023 B"
    assert format_value(1024, unit="bytes") == "1.0 KiB"
    assert format_value(52_000_000, unit="bytes") == "49.6 MiB"
    assert format_value(5 * 1024**3, unit="bytes") == "5.0 GiB"
    assert format_value(3 * 1024**4, unit="bytes") == "3072.0 GiB"  # GiB is the last step


def test_ratios_and_percentages() -> None:
    assert format_value(0.8123, unit="ratio") == "81.2 %"
    assert format_value(3.14159, unit="%") == "3.1 %"
    assert format_value(0.125, unit="share") == "12 %"  # a tie goes to the even digit


def test_seconds_lose_their_decimals_from_ten_on() -> None:
    assert format_value(1.5, unit="s") == "1.50 s"
    assert format_value(12.4, unit="s") == "12 s"
    assert format_value(42.5, unit="s") == "42 s"


def test_durations_turn_into_minutes_at_one() -> None:
    assert format_value(45, unit="duration") == "45.00 s"
    assert format_value(125, unit="duration") == "2.1 min"


def test_rates_keep_six_significant_digits() -> None:
    assert format_value(3, unit="/min") == "3 /min"
    assert format_value(2.5, unit="/min") == "2.5 /min"
    assert format_value(1 / 3, unit="/min") == "0.333333 /min"


def test_plain_numbers_keep_three_significant_digits_never_an_exponent() -> None:
    assert format_value(7) == "7"
    assert format_value(12345.0) == "12345"
    assert format_value(1234.5) == "1230"
    assert format_value(0.0000123456) == "0.0000123"
    assert format_value(2.9996) == "3"
    assert format_value(2.5, unit="no such unit") == "2.5"


def test_a_signal_reads_in_its_catalogue_unit() -> None:
    assert unit_of("redis.memory_used_ratio") == "ratio"  # *_ratio, whatever the catalogue
    assert unit_of("container.memory_bytes") == "bytes"
    assert unit_of("no.such.signal") == ""
    assert format_value(0.5, signal="postgres.connections_used_ratio") == "50.0 %"
    assert signal_units() == {name: unit_of(name) for name in SIGNALS}
    assert set(signal_units().values()) <= set(UNITS)  # every signal unit has a rule


def test_health_labels() -> None:
    assert [h.label for h in Health] == [
        "Healthy",
        "Drifting",
        "Healing",
        "Needs operator",
        "Unknown",
    ]
    assert health_label("needs-operator") == "Needs operator"
    assert health_label("odd") == "odd" and health_label(None) == ""


def test_the_rules_are_plain_json() -> None:
    data = rules()
    assert json.loads(json.dumps(data)) == data
    assert data["health"] == {h.value: h.label for h in Health}
    assert data["units"]["s"] == [
        {"suffix": " s", "below": 10, "multiply": 1.0, "divide": 1.0, "decimals": 2,
         "significant": 3},
        {"suffix": " s", "below": None, "multiply": 1.0, "divide": 1.0, "decimals": 0,
         "significant": 3},
    ]  # fmt: skip


SAMPLES: list[tuple[object, str]] = [
    (value, unit)
    for unit in UNITS
    for value in (
        None, True, False, "text", 0, -0.0, 7, 0.5, 2.5, 42.5, 0.125, 1.005, 9.995, 2.9996,
        1023, 1024, 1536.5, 52_000_000, 5 * 1024**3, 0.8123, 12345.0, 1234.5, 0.0000123456,
        -3.75, 59.999, 125, 1 / 3, 99.95,
    )
]  # fmt: skip


@pytest.mark.skipif(shutil.which("node") is None, reason="no Node.js to run the script")
def test_the_script_reads_every_value_as_python_does(tmp_path: Path) -> None:
    module = tmp_path / "format.mjs"  # .mjs: Node loads it as an ES module, as the browser
    module.write_text(FORMAT_JS.read_text(encoding="utf-8"), encoding="utf-8")
    runner = tmp_path / "run.mjs"
    runner.write_text(
        "import { formatter } from './format.mjs';\n"
        "import { readFileSync } from 'node:fs';\n"
        "const { rules, samples } = JSON.parse(readFileSync(0, 'utf-8'));\n"
        "const { formatValue } = formatter(rules);\n"
        "console.log(JSON.stringify(samples.map(([v, u]) => formatValue(v, u))));\n",
        encoding="utf-8",
    )
    answer = subprocess.run(
        ["node", str(runner)],
        input=json.dumps({"rules": rules(), "samples": SAMPLES}),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    got = json.loads(answer.stdout)
    expected = [format_value(value, unit=unit) for value, unit in SAMPLES]
    mismatches = [
        (value, unit, want, have)
        for (value, unit), want, have in zip(SAMPLES, expected, got, strict=True)
        if want != have
    ]
    assert not mismatches
