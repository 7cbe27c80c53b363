"""A throwaway certificate authority and a server certificate for 127.0.0.1/localhost, for the HTTPS test
servers (git, GitLab, Argo CD, kube-apiserver)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsMaterial", "make_ca", "make_unrelated_ca"]

_CERT_VALIDITY: Final = dt.timedelta(days=30)
_CLOCK_SKEW: Final = dt.timedelta(hours=1)


@dataclass(frozen=True)
class TlsMaterial:
    """PEM files for a test CA and a server certificate it signed (127.0.0.1 + localhost)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_ca(tmpdir: Path | str) -> TlsMaterial:
    """Create a self-signed CA and a server certificate for ``127.0.0.1``/``localhost``."""
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _new_ca("gitops-ci test CA")
    server_key = _new_key()
    server_cert = _issue_server_cert(ca_key, ca_cert, server_key)
    return TlsMaterial(
        ca_file=_write_cert(directory / "ca.pem", ca_cert),
        cert_file=_write_cert(directory / "server.pem", server_cert),
        key_file=_write_key(directory / "server-key.pem", server_key),
    )


def make_unrelated_ca(tmpdir: Path | str) -> Path:
    """Write a CA certificate that did *not* sign any server certificate ("unknown CA" tests)."""
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    _, cert = _new_ca("gitops-ci unrelated CA")
    return _write_cert(directory / "unrelated-ca.pem", cert)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _cert_builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> Any:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _new_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    cert = (
        _cert_builder(_name(common_name), _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    alt_names = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert: x509.Certificate = (
        _cert_builder(_name("localhost"), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(alt_names, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path
