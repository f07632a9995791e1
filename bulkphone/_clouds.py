"""Graph roots and login authorities of Microsoft's clouds, from one table."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._errors import InputError

__all__ = ["CLOUDS", "Cloud", "check_graph_url", "cloud_named", "origin", "require_tls"]

_API_VERSIONS = ("v1.0", "beta")


@dataclass(frozen=True)
class Cloud:
    name: str
    graph_url: str
    authority: str

    @property
    def scope(self) -> str:
        return f"{self.graph_url}/.default"


CLOUDS = {
    cloud.name: cloud
    for cloud in (
        Cloud("global", "https://graph.microsoft.com", "https://login.microsoftonline.com"),
        Cloud("usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"),
        Cloud("dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"),
        Cloud("china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
    )
}


def cloud_named(name: str) -> Cloud:
    try:
        return CLOUDS[name.lower()]
    except KeyError:
        raise InputError(f"unknown cloud {name!r}: use one of {', '.join(CLOUDS)}") from None


def require_tls(url: str, what: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse a URL the bearer token would cross the network to in clear: plain http is for
    this machine's own loopback (tests, the simulated tenant), or when explicitly allowed."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and (allow_insecure_http or _loopback(parts.hostname or ""))):
        return
    if parts.scheme == "http":
        raise InputError(
            f"{what} {url} is plain http, so the access token would cross the network unencrypted. "
            "Fix: use its https:// address (or {allow_insecure_http} for a test server on a network you trust).",
            settings=("allow_insecure_http",),
        )
    raise InputError(f"{what} {url!r} is not an https:// URL. Fix: give the full address, e.g. https://graph.microsoft.com.")


def check_graph_url(url: str, *, allow_insecure_http: bool = False) -> None:
    """A Graph root the token may go to: https (see require_tls), and the root itself, since
    bulkphone adds the API version."""
    require_tls(url, "the Graph URL", allow_insecure_http=allow_insecure_http)
    parts = urlsplit(url)
    if not parts.hostname:
        raise InputError(f"the Graph URL {url!r} names no host. Fix: give the Graph root, e.g. https://graph.microsoft.com.")
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if last in _API_VERSIONS or parts.query or parts.fragment:
        root = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/').removesuffix(last).rstrip('/')}"
        raise InputError(
            f"the Graph URL {url} goes past Graph's root (bulkphone adds /v1.0 itself). Fix: give the root, {root}."
        )


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in): links are followed only within one origin."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
