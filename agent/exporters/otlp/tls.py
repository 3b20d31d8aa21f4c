"""Client-side TLS settings (the collector's ``configtls.ClientConfig`` subset).

One :class:`TLSClientConfig` dataclass serves the gRPC exporters (``otlp``,
``jaeger``) and the HTTP one (``otlphttp``). It turns into an
:class:`ssl.SSLContext` for aiohttp (:meth:`TLSClientConfig.ssl_context`) or
into ``grpc.ChannelCredentials`` (:meth:`TLSClientConfig.grpc_credentials`).

Keys: ``insecure`` (gRPC: plaintext; HTTP: ignored, the URL scheme decides, as
in the collector), ``insecure_skip_verify``, ``ca_file``/``ca_pem``,
``cert_file``/``cert_pem`` and ``key_file``/``key_pem`` (client certificate for
mTLS), ``server_name_override``, ``min_version``/``max_version`` ("1.0".."1.3";
default minimum "1.2"), ``include_system_ca_certs_pool``.

Limits of Python's gRPC (each a clear validation error, see
:func:`grpc_problems`): grpcio cannot disable certificate verification
(``insecure_skip_verify``) nor pin TLS versions; it always negotiates TLS 1.2
or 1.3, so ``min_version`` up to "1.2" is accepted and "1.3" or any
``max_version`` is refused.

Invariants: files are read when the exporter starts (not at config decoding),
so a missing file fails ``start`` with its path in the message; PEM contents
never appear in logs or errors.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["TLSClientConfig", "grpc_problems"]

TLSVersion = Literal["", "1.0", "1.1", "1.2", "1.3"]

_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True, slots=True)
class TLSClientConfig:
    """``tls`` block of a client (exporter).

    Attributes:
        insecure: gRPC only: connect in plaintext (no TLS at all).
        insecure_skip_verify: HTTP only: do not verify the server certificate.
        ca_file: PEM file of the CA(s) that sign the server certificate.
        ca_pem: the same, inline.
        cert_file: client certificate (PEM) for mutual TLS.
        cert_pem: the same, inline.
        key_file: private key of the client certificate (PEM).
        key_pem: the same, inline.
        server_name_override: the name checked in the server certificate (and
            sent as SNI / gRPC authority) instead of the endpoint's host.
        min_version: lowest TLS version accepted (default "1.2").
        max_version: highest TLS version (default: the library's highest).
        include_system_ca_certs_pool: trust the system CAs as well as ``ca_*``.
    """

    insecure: bool = False
    insecure_skip_verify: bool = False
    ca_file: str = ""
    ca_pem: str = ""
    cert_file: str = ""
    cert_pem: str = ""
    key_file: str = ""
    key_pem: str = ""
    server_name_override: str = ""
    min_version: TLSVersion = ""
    max_version: TLSVersion = ""
    include_system_ca_certs_pool: bool = False

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.ca_file and self.ca_pem:
            out.append(("ca_pem", "set either ca_file or ca_pem, not both"))
        if self.cert_file and self.cert_pem:
            out.append(("cert_pem", "set either cert_file or cert_pem, not both"))
        if self.key_file and self.key_pem:
            out.append(("key_pem", "set either key_file or key_pem, not both"))
        has_cert = bool(self.cert_file or self.cert_pem)
        has_key = bool(self.key_file or self.key_pem)
        if has_cert != has_key:
            out.append(("cert_file" if has_key else "key_file",
                        "a client certificate needs both a certificate and a key"))
        lo = _VERSIONS.get(self.min_version or "1.2")
        hi = _VERSIONS.get(self.max_version) if self.max_version else None
        if lo is not None and hi is not None and hi < lo:
            out.append(("max_version", f"max_version {self.max_version} is below min_version "
                                       f"{self.min_version or '1.2'}"))
        return out

    @property
    def has_client_cert(self) -> bool:
        return bool(self.cert_file or self.cert_pem)

    # -- materials ------------------------------------------------------------------
    def _read(self, path: str, inline: str, what: str) -> bytes | None:
        if inline:
            return inline.encode()
        if path:
            try:
                return Path(path).read_bytes()
            except OSError as e:
                raise ValueError(f"tls: cannot read {what} {path!r}: {e.strerror or e}") from None
        return None

    def ca_bytes(self) -> bytes | None:
        return self._read(self.ca_file, self.ca_pem, "ca_file")

    def cert_bytes(self) -> bytes | None:
        return self._read(self.cert_file, self.cert_pem, "cert_file")

    def key_bytes(self) -> bytes | None:
        return self._read(self.key_file, self.key_pem, "key_file")

    # -- HTTP ---------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        """A client context for aiohttp (used for ``https://`` endpoints).

        Raises:
            ValueError: a file cannot be read or holds no valid PEM data.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = _VERSIONS[self.min_version or "1.2"]
        if self.max_version:
            ctx.maximum_version = _VERSIONS[self.max_version]
        ca = self.ca_bytes()
        try:
            if ca is None or self.include_system_ca_certs_pool:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            if ca is not None:
                ctx.load_verify_locations(cadata=ca.decode())
        except (ssl.SSLError, UnicodeDecodeError) as e:
            raise ValueError(f"tls: invalid CA certificate: {e}") from None
        if self.has_client_cert:
            _load_client_cert(ctx, self.cert_file, self.cert_pem, self.key_file, self.key_pem)
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    # -- gRPC ---------------------------------------------------------------------------
    def grpc_credentials(self) -> Any:
        """``grpc.ChannelCredentials`` for a TLS channel.

        Raises:
            ValueError: a file cannot be read.
        """
        import grpc

        ca = self.ca_bytes()
        if ca is not None and self.include_system_ca_certs_pool:
            ca = ca + b"\n" + _system_ca_bundle()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=self.key_bytes(),
                                            certificate_chain=self.cert_bytes())


def grpc_problems(tls: TLSClientConfig) -> list[tuple[str, str]]:
    """What a gRPC exporter cannot honour, as ``(subpath, message)`` validation problems."""
    out: list[tuple[str, str]] = []
    if tls.insecure:
        return out
    if tls.insecure_skip_verify:
        out.append(("insecure_skip_verify", "not supported by the gRPC exporters of otel-sidecar (grpcio cannot "
                                            "skip certificate verification); trust the server with ca_file, or use "
                                            "insecure: true for plaintext"))
    if tls.min_version == "1.3":
        out.append(("min_version", "gRPC in Python negotiates TLS 1.2 or 1.3 and cannot require 1.3; "
                                   "use \"1.2\" or leave it unset"))
    if tls.max_version:
        out.append(("max_version", "gRPC in Python cannot cap the TLS version; leave max_version unset"))
    return out


def _system_ca_bundle() -> bytes:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate:
            try:
                return Path(candidate).read_bytes()
            except OSError:
                continue
    return b""


def _load_client_cert(ctx: ssl.SSLContext, cert_file: str, cert_pem: str, key_file: str, key_pem: str) -> None:
    """Load a client certificate from files or inline PEM (written to a private temp file)."""
    import os
    import tempfile

    temps: list[str] = []
    try:
        def path_of(path: str, pem: str) -> str:
            if path:
                return path
            fd, tmp = tempfile.mkstemp(suffix=".pem")
            temps.append(tmp)
            with os.fdopen(fd, "w") as f:
                f.write(pem)
            return tmp

        try:
            ctx.load_cert_chain(path_of(cert_file, cert_pem), path_of(key_file, key_pem))
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"tls: cannot load the client certificate/key: {e}") from None
    finally:
        for tmp in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
