"""pytest fixtures for the sync contract servers (Argo CD, Flux receiver, kube-apiserver).

Use them from a test module with ``from servers.sync_fixtures import *`` or list this module in
``pytest_plugins``.  Every server is function-scoped and already started; credentials are
attributes (``argocd_server.admin_token``, ``argocd_server.webhook_secret``,
``flux_receiver.receivers[0].token``, ``kube_api.token``).  ``branch_heads`` is the
``HeadResolver`` all three share: set ``branch_heads["main"] = sha`` after a push.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from servers.argo_status import BranchHeads
from servers.argocd_api import ArgoCDServer
from servers.flux_receiver import FluxReceiverServer, Receiver, ResourceRef
from servers.kube_api import KubeAPIServer

__all__ = ["TLSMaterial", "argocd_server", "branch_heads", "flux_receiver", "kube_api", "loopback_tls"]


@dataclass(frozen=True)
class TLSMaterial:
    ca_file: Path  # hand to clients (kubernetes ``ssl_ca_cert``, requests ``verify``)
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _issue_loopback_tls(directory: Path) -> TLSMaterial:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sync-contract-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server-key.pem",
    )
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return TLSMaterial(ca_file, cert_file, key_file)


@pytest.fixture(scope="session")
def loopback_tls(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return _issue_loopback_tls(tmp_path_factory.mktemp("loopback-tls"))


@pytest.fixture
def branch_heads() -> BranchHeads:
    return BranchHeads()


@pytest.fixture
def argocd_server(branch_heads: BranchHeads) -> Iterator[ArgoCDServer]:
    """Plain HTTP, like ``argocd-server --insecure`` behind an ingress."""
    with ArgoCDServer(head=branch_heads, webhook_secret=secrets.token_hex(16)) as server:
        yield server


@pytest.fixture
def flux_receiver() -> Iterator[FluxReceiverServer]:
    """A ``gitlab`` receiver in flux-system asking for GitRepository + Kustomization flux-system."""
    receiver = Receiver(
        name="gitlab-receiver",
        token=FluxReceiverServer.new_token(),
        resources=(
            ResourceRef("GitRepository", "flux-system"),
            ResourceRef("Kustomization", "flux-system", api_version="kustomize.toolkit.fluxcd.io/v1"),
        ),
    )
    with FluxReceiverServer(receivers=[receiver]) as server:
        yield server


@pytest.fixture
def kube_api(branch_heads: BranchHeads, loopback_tls: TLSMaterial) -> Iterator[KubeAPIServer]:
    """HTTPS like a real apiserver; trust ``loopback_tls.ca_file``."""
    with KubeAPIServer(head=branch_heads, ssl_context=loopback_tls.server_context()) as server:
        yield server
