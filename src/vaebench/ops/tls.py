"""Mutual TLS for the team's Dask cluster: a certificate authority of the team's own and the
certificates it signs, so that the scheduler and its workers talk only to holders of one.

A Dask scheduler without TLS runs any code any client on its network sends it, as its user, on
itself and on every worker (`Client.run`). With `tls://` and these files, Dask's own TLS (which
asks every peer for a certificate signed by the CA: `ssl.CERT_REQUIRED`) refuses a client without
one at the handshake. The files are made by `vaebench team up`, readable by their owner only
(0600, in a 0700 folder); a colleague's machine gets the CA and a client pair by the team's own
secure channel. Written with `cryptography`, the library Dask's `Security.temporary()` uses; those
certificates live in memory only, and `dask scheduler` and `dask worker` read files.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 365
CA, MEMBER, CLIENT = "ca", "cluster", "client"  # the CA; the scheduler and workers; the drain


@dataclass(frozen=True)
class Certificates:
    folder: Path

    def cert(self, who: str) -> Path:
        return self.folder / f"{who}.pem"

    def key(self, who: str) -> Path:
        return self.folder / f"{who}-key.pem"

    def cli_args(self) -> list[str]:
        """`dask scheduler` / `dask worker` options for the cluster's own pair."""
        files = {"--tls-ca-file": self.cert(CA), "--tls-cert": self.cert(MEMBER), "--tls-key": self.key(MEMBER)}
        return [part for option, path in files.items() for part in (option, str(path))]

    def client_env(self) -> dict[str, str]:
        """Dask's own configuration, as environment variables, for a client (the drain, a test): no
        secret, only where the files are."""
        return {
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(self.cert(CA)),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(self.cert(CLIENT)),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(self.key(CLIENT)),
        }

    def security(self):
        """The same, as the `distributed.Security` a Python client passes to `Client`."""
        from distributed import Security

        return Security(
            tls_ca_file=str(self.cert(CA)),
            tls_client_cert=str(self.cert(CLIENT)),
            tls_client_key=str(self.key(CLIENT)),
            require_encryption=True,
        )


def make_certificates(folder: Path) -> Certificates:
    """A CA and two pairs it signs (the cluster's, a client's), each file 0600, the folder 0700.
    Kept if already there: a restarted part of the stack must still trust the others."""
    made = Certificates(folder)
    if all(made.cert(w).exists() and made.key(w).exists() for w in (CA, MEMBER, CLIENT)):
        return made
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key = _key()
    ca_cert = _certificate("vaebench team CA", ca_key, ca_key, None, is_ca=True)
    _write(made, CA, ca_cert, ca_key)
    for who in (MEMBER, CLIENT):
        key = _key()
        _write(made, who, _certificate(f"vaebench team {who}", key, ca_key, ca_cert, is_ca=False), key)
    return made


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _certificate(name: str, key, signer, issuer_cert, is_ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:  # the members and clients connect both ways, on loopback or the team's hosts
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.DNSName(name.replace(" ", "-"))]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _write(made: Certificates, who: str, cert, key) -> None:
    from cryptography.hazmat.primitives import serialization

    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(made.key(who), pem_key)
    write_private(made.cert(who), cert.public_bytes(serialization.Encoding.PEM))


def write_private(path: Path, data: str | bytes) -> None:
    """A file only its owner reads, from its first byte (not chmod after writing): the stack's
    keys, passwords and credentials."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb" if isinstance(data, bytes) else "w") as file:
        file.write(data)
