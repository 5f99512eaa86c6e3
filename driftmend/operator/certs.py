"""The admission webhook's TLS: a certificate the operator is given, or one it makes itself.

Stage: *spec sources* (the webhook is admission for custom resources; docs/ARCHITECTURE.md).
An API server only calls a webhook over HTTPS, with the CA bundle it is told in the webhook
configuration. Replicas of one operator must present certificates of one CA, since kopf writes
that CA into the one shared configuration: in a cluster they share a Secret mounted as a
directory (``tls.crt``, ``tls.key``, ``ca.crt``, as cert-manager writes it). With no such
directory (a single operator, a laptop, the tests) a self-signed CA and a server certificate
are made here, with ``cryptography``: kopf's own self-signed support goes through ``oscrypto``,
which cannot load the OpenSSL 3 libraries of current distributions.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger("driftmend.operator")

__all__ = ["WebhookCerts", "webhook_certs"]


@dataclass(frozen=True)
class WebhookCerts:
    """Paths of the server certificate, its key and the CA that signed it."""

    certfile: Path
    pkeyfile: Path
    cafile: Path


def _given(folder: Path) -> WebhookCerts | None:
    certs = WebhookCerts(folder / "tls.crt", folder / "tls.key", folder / "ca.crt")
    if all(p.is_file() for p in (certs.certfile, certs.pkeyfile, certs.cafile)):
        return certs
    return None


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _sans(hosts: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def _write(path: Path, data: bytes) -> None:
    """Owner-only, and whole or not at all: a reader never sees half a certificate."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    partial.replace(path)


def _make(folder: Path, hosts: Sequence[str]) -> WebhookCerts:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("driftmend webhook CA"))
        .issuer_name(_name("driftmend webhook CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(_sans(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    certs = WebhookCerts(folder / "tls.crt", folder / "tls.key", folder / "ca.crt")
    pem = serialization.Encoding.PEM
    _write(certs.cafile, ca.public_bytes(pem))
    _write(certs.certfile, cert.public_bytes(pem))
    _write(
        certs.pkeyfile,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return certs


def webhook_certs(given: Path | None, state_dir: Path, hosts: Sequence[str]) -> WebhookCerts:
    """The certificates to serve the webhook with.

    ``given`` (a mounted Secret) wins when it holds all three files; otherwise a fresh
    self-signed pair for ``hosts`` (DNS names or IPs) is made under ``state_dir/webhook``.
    """
    if given is not None:
        found = _given(given)
        if found is not None:
            return found
        if given.is_dir() and any(given.iterdir()):  # a Secret, but not the right one
            raise FileNotFoundError(
                f"{given} must hold tls.crt, tls.key and ca.crt (a kubernetes.io/tls Secret "
                "with its CA, as cert-manager writes it)"
            )
        # An empty folder: the optional Secret is not there. Fine for one replica.
        log.warning(
            "no webhook certificate in %s: serving a self-signed one; with more than one "
            "replica create the Secret driftmend-webhook-tls (README, Run it on Kubernetes)",
            given,
        )
    return _make(state_dir / "webhook", list(hosts) or ["localhost"])
