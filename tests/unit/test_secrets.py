"""Secrets in specs: read from where ``valueFrom`` / ``passwordFrom`` point, never shown.

``redaction.redact_spec`` is what the store, the API, the pages and an LLM prompt see of a
spec; ``drivers.secret_refs`` is the only reader of the secrets themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftmend.drivers.secret_refs import read_secret, resolve_env
from driftmend.errors import ConfigurationError
from driftmend.redaction import REDACTED, redact, redact_spec, remember_secret, shown_spec
from driftmend.spec import Container, EnvVarSource, SecretRef, load_paths
from tests.unit.test_spec import messages, write

SECRET = "hunter2-is-not-a-password"
SPEC = f"""
apiVersion: driftmend.dev/v1alpha1
kind: Container
metadata:
  name: shop
  annotations: {{api-token: {SECRET}}}
spec:
  process:
    command: [python3, app.py, --dsn, "postgresql://shop:{SECRET}@127.0.0.1/shop"]
    env:
      LOG_LEVEL: debug
      UPSTREAM: {SECRET}
      DSN: {{valueFrom: {{env: SHOP_DSN}}}}
      TOKEN: {{valueFrom: {{file: /run/secrets/token}}}}
  port: 8000
"""


def _container(tmp_path: Path, text: str = SPEC) -> Container:
    result = load_paths([write(tmp_path, text)])
    assert result.errors == []
    resource = result.resources[0]
    assert isinstance(resource, Container)
    return resource


def test_a_spec_as_shown_holds_no_secret_but_keeps_its_references(tmp_path: Path) -> None:
    container = _container(tmp_path)
    shown = redact_spec(container.model_dump(mode="json", by_alias=True))
    assert SECRET not in json.dumps(shown)
    env = shown["spec"]["process"]["env"]
    assert env["LOG_LEVEL"] == REDACTED and env["UPSTREAM"] == REDACTED
    assert env["DSN"] == {"valueFrom": {"env": "SHOP_DSN", "file": None}}
    assert env["TOKEN"] == {"valueFrom": {"env": None, "file": "/run/secrets/token"}}
    assert shown["metadata"]["annotations"]["api-token"] == REDACTED
    # Only the password of the DSN goes: the command still says what runs.
    assert shown["spec"]["process"]["command"][:3] == ["python3", "app.py", "--dsn"]
    assert shown["spec"]["process"]["command"][3].startswith("postgresql://shop:")
    assert shown["metadata"]["name"] == "shop"


def test_the_loaded_spec_keeps_the_literal_values_for_the_replica(tmp_path: Path) -> None:
    env = _container(tmp_path).spec.process.env  # type: ignore[union-attr]
    assert env["UPSTREAM"] == SECRET
    assert env["DSN"] == EnvVarSource(value_from=SecretRef(env="SHOP_DSN"))


def test_a_secret_ref_needs_exactly_one_source(tmp_path: Path) -> None:
    both = SPEC.replace("{env: SHOP_DSN}", "{env: SHOP_DSN, file: /x}")
    (out,) = messages(tmp_path, both)
    assert "spec.process.env.DSN" in out and "exactly one of env" in out, out
    neither = SPEC.replace("{env: SHOP_DSN}", "{}")
    (out,) = messages(tmp_path, neither)
    assert "spec.process.env.DSN" in out and "exactly one of env" in out, out


def test_resolve_env_reads_each_value_from_where_it_points(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("file-secret-value\n")
    env = {
        "PLAIN": "x",
        "DSN": EnvVarSource(value_from=SecretRef(env="SHOP_DSN")),
        "TOKEN": EnvVarSource(value_from=SecretRef(file=str(token))),
    }
    got = resolve_env(env, "Container/shop: spec.process.env", {"SHOP_DSN": "env-secret"}.get)
    # The file's final newline is not part of the secret.
    assert got == {"PLAIN": "x", "DSN": "env-secret", "TOKEN": "file-secret-value"}


def test_a_secret_read_is_masked_in_every_text_redacted_afterwards() -> None:
    value = "rotated-7f3a9c1e"
    assert redact(f"connecting with {value}") == f"connecting with {value}"
    read_secret(SecretRef(env="X"), "where", {"X": value}.get)
    assert redact(f"connecting with {value}") == f"connecting with {REDACTED}"


def test_short_values_are_not_remembered_so_logs_keep_their_words() -> None:
    remember_secret("admin")
    assert redact("admin logged in") == "admin logged in"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (SecretRef(env="MISSING_VAR"), "spec.passwordFrom.env names MISSING_VAR, which is not set"),
        (SecretRef(file="/nonexistent/secret"), "spec.passwordFrom.file: cannot read"),
    ],
)
def test_an_unreadable_secret_names_the_field_and_the_fix(ref: SecretRef, expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        read_secret(ref, "PostgresDatabase/db: spec.passwordFrom", {}.get)
    assert str(caught.value).startswith("PostgresDatabase/db: ")
    assert expected in str(caught.value)


def test_a_file_too_big_to_be_a_secret_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (65 * 1024))
    with pytest.raises(ConfigurationError, match="larger than 64 KiB"):
        read_secret(SecretRef(file=str(big)), "Container/shop: spec.process.env.X.valueFrom")


def test_a_misspelt_reference_gets_one_message_about_itself(tmp_path: Path) -> None:
    out = messages(tmp_path, SPEC.replace("{valueFrom: {env: SHOP_DSN}}", "{valueFrm: {env: X}}"))
    assert any(
        "spec.process.env.DSN.valueFrm: unknown field: did you mean valueFrom?" in m for m in out
    ), out
    assert not any("expected a string" in m for m in out), out


def test_a_spec_is_redacted_once_per_model_object(tmp_path: Path) -> None:
    container = _container(tmp_path)
    shown = shown_spec(container)
    assert shown == redact_spec(container.model_dump(mode="json", by_alias=True))
    assert shown_spec(container) is shown  # the pass after does not redact it again
    assert shown_spec(_container(tmp_path)) is not shown  # a reload is a new object
