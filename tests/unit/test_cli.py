"""The ``driftmend`` command: exit codes, and one line per problem, never a traceback."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftmend.cli import _settings, build_parser, main
from driftmend.spec import crds_yaml
from driftmend.store import Store

REPO = Path(__file__).resolve().parents[2]
DRIFTMEND = Path(sys.executable).parent / "driftmend"

CONTAINER = """apiVersion: driftmend.dev/v1alpha1
kind: Container
metadata: {name: shop, labels: {app: shop}}
spec: {process: {command: [python3, -m, http.server]}, port: 8000}
"""
POLICY = """apiVersion: driftmend.dev/v1alpha1
kind: HealingPolicy
metadata: {name: crash}
spec:
  selector: {kind: Container, matchLabels: {app: shop}}
  rules:
    - name: restart
      when: [{signal: container.running, value: false, for: 2s}]
      do: [{tool: container_restart}]
      verify: {timeout: 1m}
"""
GOOD = CONTAINER + "---\n" + POLICY


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No DRIFTMEND_* variable of the caller leaks in; main's process-wide setup is undone."""
    import os

    for name in [n for n in os.environ if n.startswith("DRIFTMEND_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    pipe = signal.getsignal(signal.SIGPIPE)
    handlers = list(logging.getLogger().handlers)
    yield
    signal.signal(signal.SIGPIPE, pipe)  # main() sets SIG_DFL: pytest must not die on EPIPE
    logging.getLogger().handlers[:] = handlers


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- validate ----------------------------------------------------------------------------


def test_validate_good_files_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(write(tmp_path / "a.yaml", GOOD)))
    assert (code, out, err) == (0, "ok: 2 document(s) valid, 0 warning(s)\n", "")


def test_validate_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(REPO / "manifests" / "examples"))
    assert code == 0 and out.startswith("ok: ")


# Every kind of bad input from review: (file text, what its one line must say).
BAD = {
    "kind-list": (
        CONTAINER.replace("kind: Container", "kind: [Container]"),
        "kind: must be a string",
    ),
    "kind-map": (CONTAINER.replace("kind: Container", "kind: {a: 1}"), "kind: must be a string"),
    "deep": (
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "YAML: nested deeper than 64 levels at line 1",
    ),
    "duplicate-key": (
        CONTAINER.replace("{name: shop,", "{name: shop, name: other,"),
        "YAML: duplicate key 'name' at line 3",
    ),
    "control-char": (
        CONTAINER.replace("http.server", "http\x07server"),
        "character U+0007 at line 4",
    ),
    "nan-duration": (
        POLICY.replace("for: 2s", "for: .nan"),
        "spec.rules[0].when[0].for: nan is not a duration",
    ),
    "zero-interval": (
        POLICY.replace("timeout: 1m}", "timeout: 1m, interval: 0}"),
        "spec.rules[0].verify.interval: must be more than 0",
    ),
    "bad-value": (
        POLICY.replace("value: false", "value: nope"),
        "spec.rules[0].when[0].value: expected a flag (true or false) or a number, got 'nope'",
    ),
    "unknown-signal": (
        POLICY.replace("container.running", "container.runing"),
        "did you mean container.running",
    ),
    "validator-path": (
        CONTAINER.replace("port: 8000}", "port: 8000, docker: {image: x}}"),
        "spec.docker: docker is set but runtime is process",
    ),
    "missing-field": (
        CONTAINER.replace("command: [python3, -m, http.server]", "cwd: x"),
        "spec.process.command: required field is missing",
    ),
    "extra-field": (
        CONTAINER.replace("port: 8000", "prot: 8000"),
        "spec.prot: unknown field: did you mean port?",
    ),
    "dns-name": (
        CONTAINER.replace("name: shop,", "name: Shop,"),
        "'Shop' is not a valid name: use lowercase",
    ),
    "allowed-tools": (
        GOOD + "  escalate: {allowedTools: [container_restrat]}\n",
        "spec.escalate.allowedTools[0]: unknown tool 'container_restrat'; did you mean container_restart?",
    ),
    "syntax-error": (
        CONTAINER + "---\n" + POLICY.replace("{kind: Container,", "{kind: Container"),
        "document 1 (HealingPolicy/crash): YAML syntax error at line",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_bad_input_is_one_line_per_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, expected = BAD[case]
    path = write(tmp_path / f"{case}.yaml", text)
    code, out, err = run(capsys, "validate", str(path))
    assert code == 1
    assert out == ""
    *problems, summary = err.splitlines()
    assert summary == f"{len(problems)} error(s), 0 warning(s)"
    assert all(line.startswith(f"{path}: document ") for line in problems), problems
    assert [line for line in problems if expected in line], problems
    assert "Traceback" not in err


def test_validate_keeps_the_good_documents_of_a_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "a.yaml", BAD["syntax-error"][0] + "---\n" + CONTAINER.replace("shop", "web")
    )
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1
    assert err.splitlines()[0].startswith(
        f"{path}: document 1 (HealingPolicy/crash): YAML syntax error"
    )
    # The documents before and after the broken one were checked, and are fine.
    assert len(err.splitlines()) == 2


@pytest.mark.parametrize("case", ["deep", "kind-list"])
def test_the_installed_command_never_prints_a_traceback(tmp_path: Path, case: str) -> None:
    path = write(tmp_path / "bad.yaml", BAD[case][0])
    done = subprocess.run(
        [str(DRIFTMEND), "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert BAD[case][1] in done.stderr


def test_validate_empty_inputs_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = write(tmp_path / "empty.yaml", "")
    (tmp_path / "nothing").mkdir()
    code, out, err = run(capsys, "validate", str(empty), str(tmp_path / "nothing"))
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"warning: {tmp_path / 'nothing'}: no .yaml or .yml file in this directory: nothing to check",
        f"warning: {empty}: no documents: the file is empty or holds only comments",
        "ok: 0 document(s) valid, 2 warning(s)",
    ]


def test_validate_a_missing_path_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert err.splitlines() == [
        f"{tmp_path / 'nope.yaml'}: no such file or directory",
        "1 error(s), 0 warning(s)",
    ]


# --- crds, signals -----------------------------------------------------------------------


def test_crds_output_is_the_checked_in_crds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checked_in = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    code, out, _ = run(capsys, "crds")
    assert code == 0
    assert out == "---\n".join(checked_in[name] for name in crds_yaml())
    code, _, _ = run(capsys, "crds", "--write", str(tmp_path / "out"))
    assert code == 0
    assert {p.name: p.read_text() for p in (tmp_path / "out").glob("*.yaml")} == checked_in


def test_signals_lists_one_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "signals", "RedisCache")
    names = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and "redis.up" in names and "container.running" not in names


# --- get ---------------------------------------------------------------------------------


def test_get_on_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "state.db"
    Store(db).close()
    code, out, err = run(capsys, "get", "--db-path", str(db))
    assert code == 0 and err == ""
    assert out.splitlines()[0].split()[:3] == ["KIND", "NAME", "HEALTH"]
    assert len(out.splitlines()) == 1
    code, out, _ = run(capsys, "get", "--db-path", str(db), "-o", "json")
    assert (code, out) == (0, "[]\n")


def test_get_on_a_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "get", "--db-path", str(tmp_path))
    assert (code, out) == (1, "")
    assert (
        err
        == f"driftmend: {tmp_path} is a directory: give the store's file, like {tmp_path / 'driftmend.db'}\n"
    )


def test_get_on_a_file_that_is_not_sqlite_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = write(tmp_path / "bogus.db", "not a database, only words " * 10)
    code, _, err = run(capsys, "get", "--db-path", str(bogus))
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(
        f"driftmend: {bogus} is not a usable driftmend store (file is not a database)"
    )
    assert bogus.read_text().startswith("not a database")  # left as it was


# --- settings ----------------------------------------------------------------------------


def test_a_bad_variable_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTMEND_WORKERS", "abc")
    code, _, err = run(capsys, "get", "--db-path", str(tmp_path / "x.db"))
    assert (code, err) == (2, "driftmend: DRIFTMEND_WORKERS: expected a whole number, got 'abc'\n")


def test_a_bad_flag_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "run", "--once", "--workers", "100", "--http-port", "70000")
    assert code == 2
    assert err.splitlines() == [
        "driftmend: --http-port: must be at most 65535, got 70000",
        "driftmend: --workers: must be at most 64, got 100",
    ]


def test_json_settings_that_are_not_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTMEND_MCP_SERVERS", "[not json")
    code, _, err = run(capsys, "get", "--db-path", str(tmp_path / "x.db"))
    assert (code, err) == (
        2,
        "driftmend: DRIFTMEND_MCP_SERVERS: not valid JSON: give a JSON value\n",
    )


def test_subcommands_that_build_their_own_settings_report_alike(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTMEND_HTTP_PORT", "eighty")
    code, _, err = run(capsys, "mcp", "--transport", "stdio")
    assert (code, err) == (
        2,
        "driftmend: DRIFTMEND_HTTP_PORT: expected a whole number, got 'eighty'\n",
    )


def test_zero_and_false_flags_are_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTMEND_HTTP_PORT", "9999")
    parser = build_parser()
    assert _settings(parser.parse_args(["run", "--http-port", "0"])).http_port == 0
    assert _settings(parser.parse_args(["run"])).http_port == 9999
    # An absent --dry-run leaves the variable in charge; a given one turns it on.
    monkeypatch.setenv("DRIFTMEND_DRY_RUN", "1")
    assert _settings(parser.parse_args(["run"])).dry_run is True
    monkeypatch.setenv("DRIFTMEND_DRY_RUN", "0")
    assert _settings(parser.parse_args(["run"])).dry_run is False
    assert _settings(parser.parse_args(["run", "--dry-run"])).dry_run is True


@pytest.mark.parametrize("period", ["inf", "nan", "soon"])
def test_resync_period_must_be_finite(capsys: pytest.CaptureFixture[str], period: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "--resync-period", period])
    assert exit_.value.code == 2
    assert "is not a number of seconds" in capsys.readouterr().err
