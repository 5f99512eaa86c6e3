"""Reading the secrets a spec names (``passwordFrom``, an environment ``valueFrom``).

Stage: *act* and *observe* (docs/ARCHITECTURE.md): a driver reads a secret when it connects
or starts a replica, never when the spec loads, so a rotated secret is picked up by the next
connection and a spec can be validated where the secret does not exist. Every value read is
remembered by ``redaction.remember_secret``, so it is masked in every log line and text the
controller shows afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from driftmend.errors import ConfigurationError
from driftmend.redaction import SECRET_NAME, remember_secret
from driftmend.spec import EnvValue, SecretRef

# Files written by hand or by ``echo`` end in a newline that is not part of the secret;
# Kubernetes' mounted Secrets do not, so both read the same.
_LINE_ENDS = ("\r\n", "\n")
# A secret file is a password or a DSN, never a blob: a bigger file is the wrong file.
_LARGEST_SECRET = 64 * 1024

Environ = Callable[[str], str | None]


def read_secret(ref: SecretRef, where: str, environ: Environ = os.environ.get) -> str:
    """The secret ``ref`` names. ``where`` names the field for messages
    (``Container/shop: spec.process.env.DSN.valueFrom``); ``environ`` looks up the
    controller's environment variables.

    ``ConfigurationError`` (permanent: retrying cannot help until the operator acts) naming
    the field, the variable or file, and the fix, when the secret cannot be read.
    """
    if ref.env is not None:
        value = environ(ref.env)
        if value is None:
            raise ConfigurationError(
                f"{where}.env names {ref.env}, which is not set in the controller's "
                "environment; export it where driftmend runs (or use file:)"
            )
    else:
        value = _read_file(ref, where)
    remember_secret(value)
    return value


def _read_file(ref: SecretRef, where: str) -> str:
    assert ref.file is not None  # SecretRef holds exactly one of env and file
    path = Path(ref.file)
    try:
        with path.open("rb") as f:
            raw = f.read(_LARGEST_SECRET + 1)
    except OSError as exc:
        raise ConfigurationError(
            f"{where}.file: cannot read {path}: {exc.strerror or exc}; the controller's "
            "user must be able to read it"
        ) from exc
    if len(raw) > _LARGEST_SECRET:
        raise ConfigurationError(
            f"{where}.file: {path} is larger than {_LARGEST_SECRET // 1024} KiB; "
            "a secret file holds one value"
        )
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{where}.file: {path} is not UTF-8 text") from exc
    for end in _LINE_ENDS:
        if text.endswith(end):
            return text[: -len(end)]
    return text


def resolve_env(
    env: Mapping[str, EnvValue], where: str, environ: Environ = os.environ.get
) -> dict[str, str]:
    """A replica's environment from its spec: literal values as they are, ``valueFrom``
    values read now. ``where`` is the env field (``Container/shop: spec.process.env``).

    A literal whose name says secret (``API_TOKEN``) is remembered for masking like a
    ``valueFrom`` one: it should not have been in the spec, and is no less secret for it.
    """
    resolved: dict[str, str] = {}
    for name, value in env.items():
        if isinstance(value, str):
            if SECRET_NAME.search(name):
                remember_secret(value)
            resolved[name] = value
        else:
            resolved[name] = read_secret(value.value_from, f"{where}.{name}.valueFrom", environ)
    return resolved
