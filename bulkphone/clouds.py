"""Graph roots and login authorities of Microsoft's clouds, from one table."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

__all__ = ["CLOUDS", "Cloud", "cloud_named"]


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
