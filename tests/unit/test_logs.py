"""The log accumulator: every parsed format, levels, bad input, the window, files on disk."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftmend.logs import (
    MAX_LINE_BYTES,
    TAIL_BYTES,
    LogAccumulator,
    is_continuation,
    normalize_level,
    parse_line,
)
from driftmend.model import LogLine

READ_AT = 1_900_000_000.0
T0 = calendar.timegm((2026, 11, 25, 4, 29, 24, 0, 0, 0))  # 2026-11-25 04:29:24 UTC


# --- parse_line: formats -----------------------------------------------------------------


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
def test_sample_app_format(level: str) -> None:
    line = parse_line(f"2026-11-25T04:29:24.123Z {level} shop order 42 placed", READ_AT, "r0")
    assert (line.level, line.message, line.source) == (level, "order 42 placed", "r0")
    assert line.at == pytest.approx(T0 + 0.123)


def test_sample_app_keeps_escaped_newlines_in_the_message() -> None:
    text = "2026-11-25T04:29:24.000Z ERROR shop boom Traceback:\\n  File x"
    line = parse_line(text, READ_AT)
    assert line.message == "boom Traceback:\\n  File x"
    assert line.at == T0


@pytest.mark.parametrize(
    ("word", "level"),
    [
        ("LOG", "INFO"),
        ("INFO", "INFO"),
        ("NOTICE", "INFO"),
        ("WARNING", "WARNING"),
        ("ERROR", "ERROR"),
        ("FATAL", "CRITICAL"),
        ("PANIC", "CRITICAL"),
        ("DEBUG1", "DEBUG"),
    ],
)
def test_postgres_levels(word: str, level: str) -> None:
    text = f'2026-11-25 04:29:24.123 UTC [123] {word}:  relation "orders" does not exist'
    line = parse_line(text, READ_AT)
    assert line.level == level
    assert line.message == 'relation "orders" does not exist'
    assert line.at == pytest.approx(T0 + 0.123)


def test_postgres_numeric_zone() -> None:
    line = parse_line("2026-11-25 06:29:24.000 +02 [9] LOG:  checkpoint starting", READ_AT)
    assert line.at == T0


def test_postgres_detail_takes_the_level_of_its_error() -> None:
    error = parse_line("2026-11-25 04:29:24.123 UTC [1] ERROR:  deadlock detected", READ_AT)
    detail_text = "2026-11-25 04:29:24.123 UTC [1] DETAIL:  Process 1 waits for ShareLock"
    detail = parse_line(detail_text, READ_AT, previous=error)
    assert detail.level == "ERROR"
    assert detail.message.startswith("DETAIL:")
    assert is_continuation(detail_text, error)
    statement = parse_line("\tUPDATE orders SET x = 1", READ_AT, previous=error)
    assert statement.level == "ERROR"


@pytest.mark.parametrize(
    ("mark", "level"), [(".", "DEBUG"), ("-", "DEBUG"), ("*", "INFO"), ("#", "WARNING")]
)
def test_redis_marks(mark: str, level: str) -> None:
    line = parse_line(f"123:M 25 Nov 2026 04:29:24.123 {mark} Ready to accept connections", READ_AT)
    assert line.level == level
    assert line.message == "Ready to accept connections"
    # Redis writes local time without a zone.
    local = time.mktime((2026, 11, 25, 4, 29, 24, 0, 0, -1))
    assert line.at == pytest.approx(local + 0.123)


def test_redis_child_and_replica_roles() -> None:
    assert parse_line("77:C 25 Nov 2026 04:29:24.001 * DB saved on disk", READ_AT).level == "INFO"
    assert parse_line("7:S 1 Jan 2026 00:00:00.000 # Timeout", READ_AT).level == "WARNING"


def test_uvicorn_prefix() -> None:
    line = parse_line('INFO:     127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200 OK', READ_AT)
    assert (line.level, line.at) == ("INFO", READ_AT)
    assert line.message.startswith("127.0.0.1")
    assert parse_line("WARNING:  Invalid HTTP request received.", READ_AT).level == "WARNING"


def test_python_traceback_lines_share_the_error_level() -> None:
    lines = [
        "ERROR:    Exception in ASGI application",
        "Traceback (most recent call last):",
        '  File "/app/shop/main.py", line 12, in checkout',
        "    raise ValueError('bad cart')",
        "ValueError: bad cart",
    ]
    previous: LogLine | None = None
    parsed = []
    for text in lines:
        previous = parse_line(text, READ_AT, previous=previous)
        parsed.append(previous)
    assert [p.level for p in parsed] == ["ERROR"] * 5
    assert [is_continuation(t, parsed[0]) for t in lines[1:]] == [True] * 4


def test_unknown_lines_default_to_info_or_error_by_their_words() -> None:
    assert parse_line("server listening", READ_AT) == LogLine(READ_AT, "INFO", "server listening")
    assert parse_line("something ERROR happened", READ_AT).level == "ERROR"
    assert parse_line("Unhandled Exception in worker", READ_AT).level == "ERROR"
    assert parse_line("Traceback (most recent call last):", READ_AT).level == "ERROR"
    assert parse_line("KeyError: 'x'", READ_AT).level == "ERROR"
    # An exception-looking line after an INFO line is a new event, not a continuation.
    info = LogLine(READ_AT, "INFO", "ok")
    assert not is_continuation("KeyError: 'x'", info)
    assert parse_line("KeyError: 'x'", READ_AT, previous=info).level == "ERROR"
    # An indented line continues whatever came before.
    assert parse_line("   more detail", READ_AT, previous=info).level == "INFO"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00\x01\x02\ufffd\ufffd",
        "2026-13-45T99:99:99.000Z ERROR shop impossible date",
        "2026-11-25 04:29:24.123 UTC [1] BOGUS:  not a level",
        "123:M 31 Feb 2026 04:29:24.123 # impossible but parsed by mktime",
        "123:M 25 Foo 2026 04:29:24.123 # unknown month",
        "x" * 100_000,
    ],
)
def test_garbage_never_raises(text: str) -> None:
    line = parse_line(text, READ_AT, "s")
    assert line.level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    assert line.source == "s"


def test_impossible_date_keeps_the_text() -> None:
    line = parse_line("2026-13-45T99:99:99.000Z ERROR shop impossible", READ_AT)
    assert line.at == READ_AT
    assert line.level == "ERROR"
    assert "impossible" in line.message


def test_normalize_level() -> None:
    assert normalize_level("warn") == "WARNING"
    assert normalize_level(" error ") == "ERROR"
    assert normalize_level("fatal") == "CRITICAL"
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        normalize_level("loud")


# --- the accumulator's window ------------------------------------------------------------


def test_window_is_bounded_and_recent_is_oldest_first() -> None:
    acc = LogAccumulator(max_lines_per_resource=5)
    for i in range(12):
        acc.add("Container/shop", LogLine(float(i), "INFO", f"line {i}"))
    assert [x.message for x in acc.recent("Container/shop")] == [f"line {i}" for i in range(7, 12)]
    assert [x.message for x in acc.recent("Container/shop", limit=2)] == ["line 10", "line 11"]
    assert acc.recent("Container/other") == []


def test_recent_filters_by_min_level() -> None:
    acc = LogAccumulator()
    for i, level in enumerate(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]):
        acc.add("k", LogLine(float(i), level, level.lower()))
    assert [x.level for x in acc.recent("k", min_level="warning")] == [
        "WARNING",
        "ERROR",
        "CRITICAL",
    ]
    assert [x.level for x in acc.recent("k", limit=1, min_level="ERROR")] == ["CRITICAL"]


def test_errors_per_minute_over_a_sliding_minute() -> None:
    acc = LogAccumulator()
    for at in (100.0, 130.0, 150.0, 159.0):
        acc.add("k", LogLine(at, "ERROR", "boom"))
    acc.add("k", LogLine(140.0, "CRITICAL", "worse"))
    acc.add("k", LogLine(145.0, "WARNING", "not counted"))
    assert acc.errors_per_minute("k", 159.0) == 5.0
    assert acc.errors_per_minute("k", 160.0) == 4.0  # 100.0 is exactly a minute old
    assert acc.errors_per_minute("k", 195.0) == 3.0
    assert acc.errors_per_minute("k", 300.0) == 0.0
    assert acc.errors_per_minute("unknown", 159.0) == 0.0


def test_a_traceback_counts_as_one_error_event() -> None:
    acc = LogAccumulator(clock=lambda: 1000.0)
    for text in (
        "ERROR:    Exception in ASGI application",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "ValueError: bad",
    ):
        acc.add_text("k", text)
    assert len(acc.recent("k", min_level="ERROR")) == 4
    assert acc.errors_per_minute("k", 1000.0) == 1.0


def test_search_filters_and_limits() -> None:
    acc = LogAccumulator()
    acc.add("Container/shop", LogLine(1.0, "INFO", "GET /cart"))
    acc.add("Container/shop", LogLine(3.0, "ERROR", "Cart service timeout"))
    acc.add("PostgresDatabase/db", LogLine(2.0, "ERROR", "too many clients"))
    acc.add("PostgresDatabase/db", LogLine(4.0, "INFO", "checkpoint"))
    assert [k for k, _ in acc.search(min_level="error")] == [
        "Container/shop",
        "PostgresDatabase/db",
    ][::-1]
    assert [x.message for _, x in acc.search(text="CART")] == ["GET /cart", "Cart service timeout"]
    assert [x.message for _, x in acc.search(key="PostgresDatabase/db", since=3.0)] == [
        "checkpoint"
    ]
    assert [x.at for _, x in acc.search(limit=2)] == [3.0, 4.0]
    assert acc.search(key="nope") == []


# --- following files ---------------------------------------------------------------------


@pytest.fixture
def acc() -> Iterator[LogAccumulator]:
    """An accumulator whose open files are closed even when the test fails."""
    accumulator = LogAccumulator(max_lines_per_resource=10_000, clock=lambda: READ_AT)
    yield accumulator
    accumulator.close()


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


async def test_follow_a_file_with_partial_lines(tmp_path: Path, acc: LogAccumulator) -> None:
    log = tmp_path / "replica-0.log"
    acc.attach("Container/shop", log, "replica-0")
    await acc.poll()  # missing file: nothing, no error
    _append(log, b"2026-11-25T04:29:24.000Z INFO shop one\n2026-11-25T04:29:25.000Z ERR")
    await acc.poll()
    assert [x.message for x in acc.recent("Container/shop")] == ["one"]
    _append(log, b"OR shop two\n")
    await acc.poll()
    lines = acc.recent("Container/shop")
    assert [(x.level, x.message, x.source) for x in lines] == [
        ("INFO", "one", "replica-0"),
        ("ERROR", "two", "replica-0"),
    ]
    acc.attach("Container/shop", log, "replica-0")  # idempotent: nothing is read twice
    await acc.poll()
    assert len(acc.recent("Container/shop")) == 2


async def test_attach_to_an_existing_file_reads_only_its_tail(
    tmp_path: Path, acc: LogAccumulator
) -> None:
    log = tmp_path / "big.log"
    line = b"x" * 99 + b"\n"
    log.write_bytes(line * (2 * TAIL_BYTES // len(line)) + b"last line\n")
    acc.attach("k", log)
    await acc.poll()
    got = acc.recent("k", limit=10_000)
    assert got[-1].message == "last line"
    assert all(x.message in ("x" * 99, "last line") for x in got)  # no half line at the cut
    assert len(got) <= TAIL_BYTES // len(line) + 1


async def test_truncation_starts_again_from_the_top(tmp_path: Path, acc: LogAccumulator) -> None:
    log = tmp_path / "t.log"
    log.write_bytes(b"")
    acc.attach("k", log)
    _append(log, b"first line that is fairly long\nsecond line that is fairly long\n")
    await acc.poll()
    log.write_bytes(b"after truncate\n")  # shorter than what was read
    await acc.poll()
    assert [x.message for x in acc.recent("k")][-1] == "after truncate"
    assert len(acc.recent("k")) == 3


async def test_rotation_finishes_the_old_file_then_follows_the_new(
    tmp_path: Path, acc: LogAccumulator
) -> None:
    log = tmp_path / "r.log"
    log.write_bytes(b"")
    acc.attach("k", log)
    _append(log, b"before rotation\n")
    await acc.poll()
    _append(log, b"written just before the move\n")
    os.rename(log, tmp_path / "r.log.1")
    _append(log, b"in the new file\n")
    await acc.poll()
    assert [x.message for x in acc.recent("k")] == [
        "before rotation",
        "written just before the move",
        "in the new file",
    ]
    _append(log, b"more\n")
    await acc.poll()
    assert acc.recent("k")[-1].message == "more"


async def test_binary_garbage_and_endless_lines_never_raise(
    tmp_path: Path, acc: LogAccumulator
) -> None:
    log = tmp_path / "bin.log"
    log.write_bytes(b"")
    acc.attach("k", log)
    _append(log, b"\xff\xfe\x00\x80 bad bytes\r\n" + b"y" * (MAX_LINE_BYTES + 10))
    await acc.poll()
    got = acc.recent("k")
    assert got[0].message == "\ufffd\ufffd\x00\ufffd bad bytes"
    assert got[1].message == "y" * MAX_LINE_BYTES  # cut, the rest waits for its newline


async def test_a_deleted_file_is_not_an_error(tmp_path: Path, acc: LogAccumulator) -> None:
    log = tmp_path / "gone.log"
    log.write_bytes(b"one\n")
    acc.attach("k", log)
    await acc.poll()
    log.unlink()
    await acc.poll()
    log.write_bytes(b"two\n")
    await acc.poll()
    assert [x.message for x in acc.recent("k")] == ["one", "two"]
    acc.detach(log)
    assert acc.attached() == []


async def test_one_file_feeds_every_resource_attached_to_it(
    tmp_path: Path, acc: LogAccumulator
) -> None:
    log = tmp_path / "replica-0.log"
    log.write_bytes(b"2026-11-25 04:29:24.123 UTC [7] FATAL:  too many clients already\n")
    acc.attach("Container/postgres", log, "postgres")
    await acc.poll()
    # The database attaches the same file later: it still sees what was read before.
    acc.attach("PostgresDatabase/db", log, "postgres")
    _append(log, b"2026-11-25 04:29:25.000 UTC [7] LOG:  checkpoint starting\n")
    await acc.poll()
    for key in ("Container/postgres", "PostgresDatabase/db"):
        assert [x.level for x in acc.recent(key)] == ["CRITICAL", "INFO"]
        assert acc.errors_per_minute(key, T0 + 30) == 1.0
    acc.detach(log, "Container/postgres")
    _append(log, b"2026-11-25 04:29:26.000 UTC [7] LOG:  more\n")
    await acc.poll()
    assert len(acc.recent("Container/postgres")) == 2
    assert len(acc.recent("PostgresDatabase/db")) == 3
    assert acc.attached() == [str(log)]


async def test_close_then_poll_resumes_where_it_stopped(
    tmp_path: Path, acc: LogAccumulator
) -> None:
    log = tmp_path / "resume.log"
    log.write_bytes(b"one\n")
    acc.attach("k", log)
    await acc.poll()
    acc.close()
    _append(log, b"two\n")
    await acc.poll()
    assert [x.message for x in acc.recent("k")] == ["one", "two"]


async def test_a_cancelled_run_closes_its_files(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"2026-11-25T04:29:24.000Z ERROR shop boom\n")
    acc = LogAccumulator()
    acc.attach("k", log)
    task = asyncio.create_task(acc.run(interval=60))
    await asyncio.sleep(0)  # one step: the task polls once, then sleeps
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [x.message for x in acc.recent("k")] == ["boom"]
    # No file is left open for the garbage collector (filterwarnings=error would catch it).
    assert all(f.handle is None for f in acc._followers.values())


def test_secrets_are_redacted_as_lines_come_in() -> None:
    # Every reader (store, dashboard, MCP tools, prompts) gets the accumulator's lines, so
    # the credentials are taken out here, once.
    acc = LogAccumulator(clock=lambda: 1000.0)
    acc.add_text("Container/shop", "ERROR connect postgresql://shop:hunter2@db:5432/shop failed")
    acc.add(
        "Container/shop", LogLine(1000.0, "INFO", "Authorization: Bearer abcdefghijklmnop12345")
    )
    messages = [line.message for line in acc.recent("Container/shop")]
    assert not any("hunter2" in m or "abcdefghijklmnop12345" in m for m in messages), messages
    assert "postgresql://shop:[REDACTED]@db:5432/shop" in messages[0]
    assert [line for _, line in acc.search("hunter2")] == []


def test_a_private_key_is_hidden_whole_though_it_comes_line_by_line() -> None:
    acc = LogAccumulator(clock=lambda: 1000.0)
    body = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"]
    for text in ["INFO loading key", "-----BEGIN PRIVATE KEY-----", *body,
                 "-----END PRIVATE KEY-----", "INFO key loaded"]:  # fmt: skip
        acc.add_text("Container/shop", text)
    messages = [line.message for line in acc.recent("Container/shop")]
    assert not any(part in m for m in messages for part in body), messages
    assert messages[0].endswith("loading key")
    assert messages[-1].endswith("key loaded")  # the lines after the key are kept
