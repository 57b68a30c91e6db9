"""OTLP endpoint rules: signal paths for HTTP, TLS and plaintext rules for gRPC."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

from sfumato import ConfigError

__all__ = ["DEFAULT_GRPC", "DEFAULT_HTTP", "grpc_target", "http_signal_url", "is_loopback"]

DEFAULT_GRPC = "http://localhost:4317"
DEFAULT_HTTP = "http://localhost:4318"
_SIGNAL_PATH = re.compile(r"/v1/(traces|metrics|logs)/?$")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_signal_url(endpoint: str, signal: str) -> str:
    """The URL for ``signal``: a base URL gets ``/v1/<signal>`` appended; a URL that already
    ends in ``/v1/<any signal>`` gets that signal swapped in."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"expected an http:// or https:// URL for OTLP/HTTP, got {endpoint!r}")
    path = parts.path
    if _SIGNAL_PATH.search(path):
        path = _SIGNAL_PATH.sub(f"/v1/{signal}", path)
    else:
        path = path.rstrip("/") + f"/v1/{signal}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def grpc_target(endpoint: str, insecure: bool) -> tuple[str, bool]:
    """(endpoint, insecure) for the gRPC exporter.

    ``https://`` means TLS with certificate verification. ``http://`` or no scheme means
    plaintext, which is allowed to a loopback host, and elsewhere only with ``insecure = true``.
    """
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if parts.scheme not in ("", "http", "https", "grpc", "grpcs"):
        raise ConfigError(f"expected a host:port or http(s):// URL for OTLP/gRPC, got {endpoint!r}")
    if not parts.hostname:
        raise ConfigError(f"no host in OTLP endpoint {endpoint!r}")
    if parts.scheme in ("https", "grpcs"):
        plaintext = False
    elif parts.scheme in ("http", "grpc"):
        plaintext = True
    else:
        plaintext = insecure
    if plaintext and not insecure and not is_loopback(parts.hostname):
        raise ConfigError(
            f"plaintext gRPC to non-loopback host {parts.hostname!r}: use an https:// endpoint, "
            "or set insecure = true to send unencrypted"
        )
    port = f":{parts.port}" if parts.port else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}{port}", plaintext
