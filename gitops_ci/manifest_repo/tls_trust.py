"""The CAs the API transport trusts: --ca-file, else the system's, read from its hashed CA directory.

`ssl.create_default_context()` parses the system's whole CA bundle (about 140 certificates, 20–25 ms) on the
way to the first request of every API deploy; OpenSSL reads a hashed directory (`<subject hash>.0`, kept by
update-ca-certificates) one certificate at a time, as a verification needs it. A CA the bundle holds and the
directory does not (appended to the bundle by hand, as images often do) finds no issuer there: the
connection is then made again with every default (`widened`). An SSL_CERT_FILE other than the system's own
bundle is loaded as a whole, as it would be.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path

_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")
# No issuer found, or the chain's root not trusted: what a wider store may cure (a wrong name or date never)
_UNTRUSTED_ISSUER = frozenset({2, 19, 20})


class Trust:
    """The TLS context of every connection to GitLab, widened at most once."""

    def __init__(
        self, ca_file: str | None, system_directory: str | None = None, system_bundle: str | None = None
    ) -> None:
        self._ca_file, self._directory, self._bundle = ca_file, system_directory, system_bundle
        self._context: ssl.SSLContext | None = None
        self.lazy = False  # the context reads the system's CA directory alone

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = self._first()
        return self._context

    def widened(self, err: BaseException) -> bool:
        """True when `err` is a verification against the system's CA directory alone that failed: from now on
        the context trusts every default CA, and the connection is worth making again."""
        if not self.lazy or not isinstance(err, ssl.SSLCertVerificationError):
            return False
        if err.verify_code not in _UNTRUSTED_ISSUER:
            return False
        self.lazy, self._context = False, ssl.create_default_context()
        return True

    def _first(self) -> ssl.SSLContext:
        if self._ca_file is not None:
            return ssl.create_default_context(cafile=self._ca_file)
        defaults = ssl.get_default_verify_paths()
        directory = self._directory or defaults.capath
        bundle = os.path.realpath(self._bundle or defaults.openssl_cafile)
        if directory and _holds_the_bundle(directory, bundle):
            self.lazy = True
            return ssl.create_default_context(capath=directory)
        return ssl.create_default_context()


def _holds_the_bundle(directory: str, system_bundle: str) -> bool:
    """As far as two stats tell: SSL_CERT_FILE unset or naming the system's bundle, the directory hashed, and
    the bundle not changed after it (a CA appended to the bundle by hand leaves the directory as it was;
    update-ca-certificates rewrites both)."""
    named = os.environ.get("SSL_CERT_FILE")
    if named is not None and os.path.realpath(named) != system_bundle:
        return False
    bundle = Path(system_bundle)
    try:
        if bundle.exists() and bundle.stat().st_mtime > Path(directory).stat().st_mtime:
            return False
    except OSError:
        return False
    return _hashed(directory)


def _hashed(directory: str) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(_HASHED_NAME.fullmatch(entry.name) for entry in entries)
    except OSError:
        return False
