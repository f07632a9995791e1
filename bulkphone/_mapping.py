"""Identity mapping for tenant-to-tenant moves: source users -> target users, at ingest.

A map file (`sourceUser,targetUser`) names users one by one; `--upn-domain old=new` rules
rewrite the UPN's domain. The map file wins; a blank targetUser deliberately maps a user to
nobody. A user neither names is reported (a row to fix), never silently dropped or written
under its source name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ._errors import InputError
from ._model import user_key
from ._ingest import read_table
from ._text import clip

__all__ = ["IdentityMap", "load_identity_map"]


@dataclass(frozen=True)
class IdentityMap:
    users: Mapping[str, str] = field(default_factory=dict)  # lower-cased source user -> target ("" = nobody)
    domains: Mapping[str, str] = field(default_factory=dict)  # lower-cased old domain -> new domain
    source: str = ""  # the map file, named in messages

    def target(self, user: str) -> tuple[str, str]:
        """(target user, "") or ("", why there is none)."""
        key = user_key(user)
        if key in self.users:
            if self.users[key]:
                return self.users[key], ""
            return "", f"{user} maps to no one in {self.source}: left out on purpose"
        local, at, domain = user.strip().rpartition("@")
        if at and domain.lower() in self.domains:
            return f"{local}@{self.domains[domain.lower()]}", ""
        rule = f"a UPN-domain rule for {domain}" if at and domain else "a UPN-domain rule"
        fix = f"add it to {self.source} or {rule}" if self.source else f"add {rule}, or map it in a map file"
        return "", f"no target user for {user}: {fix}"

    def describe(self) -> str:
        """What the mapping is, for run keys and summaries."""
        return repr((sorted(self.users.items()), sorted(self.domains.items())))


def load_identity_map(map_file: str | Path | None = None, upn_domains: Iterable[str] = ()) -> IdentityMap | None:
    """The mapping from a map file and/or `old=new` domain rules; None when neither is given."""
    upn_domains = list(upn_domains)
    if map_file is None and not upn_domains:
        return None
    domains: dict[str, str] = {}
    for rule in upn_domains:
        old, equals, new = rule.partition("=")
        old, new = old.strip().lstrip("@").lower(), new.strip().lstrip("@")
        if not equals or not old or not new or "@" in old + new:
            raise InputError(f"{{upn_domains}} {rule!r}: write it as old.example=new.example", settings=("upn_domains",))
        domains[old] = new
    users = _read_map(Path(map_file)) if map_file is not None else {}
    return IdentityMap(users=users, domains=domains, source=str(map_file) if map_file is not None else "")


def _read_map(path: Path) -> dict[str, str]:
    table = read_table(path)
    names = {name.strip().lower(): position for position, name in enumerate(table.header)}
    if "sourceuser" not in names or "targetuser" not in names:
        raise InputError(
            f"{path}: a map file needs the columns sourceUser and targetUser (found: {clip(', '.join(table.header), 200) or 'none'}). "
            "Fix: name the columns sourceUser,targetUser."
        )
    users: dict[str, str] = {}
    frame = table.frame
    for line, source, target in zip(frame.index, frame[names["sourceuser"]], frame[names["targetuser"]]):
        key = user_key(source)
        if not key:
            continue
        if key in users and users[key] != target.strip():
            raise InputError(f"{path}, row {line}: {source.strip()} is mapped twice, to different users. Fix: keep one.")
        users[key] = target.strip()
    return users
