"""Job files: a run's inputs, sign-in, limits and report folder, kept in version control.

    bulkphone run jobs/tenant-migration.toml           # dry run: writes the plan
    bulkphone run jobs/tenant-migration.toml --apply   # applies it

A job with a [source] table is a tenant-to-tenant migration: it exports the source tenant's
numbers first ([source] is that tenant's sign-in; read permission is enough), maps the users
([mapping]), then plans or applies them in the tenant of [connection].

Paths are relative to the job file. Secrets are never in a job file: name the environment
variables that hold them (`secret_env`, `certificate_password_env`). Unknown keys and wrong
types are errors that name the key and its line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from ._auth import AUTH_MODES, CLIENT_SECRET_ENV, AuthSettings
from ._clouds import CLOUDS
from ._errors import InputError
from ._executor import DEFAULT_CONCURRENCY, DEFAULT_WAIT_FOR_NEW_USERS
from ._files import require_regular_file
from ._model import Mode
from ._safety import DEFAULT_LIMITS
from ._throttle import DEFAULT_WRITES_PER_SECOND

__all__ = ["Job", "Source", "load_job"]


@dataclass(frozen=True)
class _Key:
    kind: type | tuple[type, ...]
    choices: tuple = ()
    path: bool = False


_CONNECTION: dict[str, _Key] = {
        "cloud": _Key(str, tuple(CLOUDS)),
        "graph_url": _Key(str),
        "authority_url": _Key(str),
        "auth": _Key(str, AUTH_MODES),
        "tenant_id": _Key(str),
        "client_id": _Key(str),
        "certificate": _Key(str, path=True),
        "send_x5c": _Key(bool),
        "managed_identity_client_id": _Key(str),
        "federated_token_file": _Key(str, path=True),
        "secret_env": _Key(str),
        "certificate_password_env": _Key(str),
        "token_env": _Key(str),
        "allow_insecure_http": _Key(bool),
}
_SCHEMA: dict[str, dict[str, _Key]] = {
    "job": {"name": _Key(str), "description": _Key(str)},
    "input": {
        "file": _Key(str, path=True),
        "users": _Key(str, path=True),
        "default_region": _Key(str),
        "mode": _Key(str, tuple(m.value for m in Mode)),
    },
    "connection": _CONNECTION,
    "source": {**_CONNECTION, "users": _Key(str, path=True), "include_empty": _Key(bool)},
    "mapping": {"file": _Key(str, path=True), "upn_domains": _Key(list)},
    "limits": {
        "max_writes_per_second": _Key((int, float)),
        "max_concurrency": _Key(int),
        "max_update_percent": _Key((int, float)),
        "max_delete_percent": _Key((int, float)),
        "max_changes": _Key(int),
        "wait_for_new_users": _Key((int, float)),
    },
    "report": {"folder": _Key(str, path=True)},
}
_SECRET_WORDS = re.compile(r"secret$|password$|token$|key$", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """The tenant a migration job exports from."""

    auth: AuthSettings = field(default_factory=AuthSettings)
    cloud: str = "global"
    graph_url: str | None = None
    allow_insecure_http: bool = False
    users: Path | None = None  # None: every user of the tenant
    include_empty: bool = False


@dataclass(frozen=True)
class Job:
    path: Path
    name: str
    file: Path
    report_folder: Path
    users: Path | None = None
    default_region: str | None = None
    mode: str = Mode.UPSERT.value
    cloud: str = "global"
    graph_url: str | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)
    allow_insecure_http: bool = False
    source: Source | None = None
    map_file: Path | None = None
    upn_domains: tuple[str, ...] = ()
    max_writes_per_second: float = DEFAULT_WRITES_PER_SECOND
    max_concurrency: int = DEFAULT_CONCURRENCY
    wait_for_new_users: float = DEFAULT_WAIT_FOR_NEW_USERS
    max_update_percent: float = DEFAULT_LIMITS.max_update_share * 100
    max_delete_percent: float = DEFAULT_LIMITS.max_delete_share * 100
    max_changes: int | None = None


def load_job(path: str | Path) -> Job:
    path = Path(path)
    try:
        require_regular_file(path, "job file")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: can't read the job file ({exc.strerror}). Fix: check the path.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc}). Fix: check the quoting and brackets on that line.") from None
    tables: dict[str, dict[str, object]] = {}
    for table, entries in data.items():
        where = _line(text, None, table)
        if table not in _SCHEMA:
            raise InputError(f"{path}, line {where}: unknown table [{table}]. Known: {', '.join(_SCHEMA)}.")
        if not isinstance(entries, dict):
            raise InputError(f"{path}, line {where}: {table} must be a table ([{table}]).")
        base = path.parent
        tables[table] = {
            key: base / value if _SCHEMA[table][key].path else value
            for key, value in ((key, _check(path, text, table, key, value)) for key, value in entries.items())
        }
    values = {key: value for table in ("job", "input", "connection", "limits", "report") for key, value in tables.get(table, {}).items()}
    source = _source(tables["source"]) if "source" in tables else None
    if "file" not in values and source is None:
        raise InputError(f"{path}: [input] needs file = \"...\" (the CSV or .xlsx to apply), or a [source] tenant to export from.")
    mapping = tables.get("mapping", {})
    domains = mapping.get("upn_domains", [])
    if not all(isinstance(rule, str) for rule in domains):
        raise InputError(f"{path}, line {_line(text, 'mapping', 'upn_domains')}: [mapping] upn_domains must be a list of \"old=new\" strings.")
    report_folder = values.get("folder") or path.parent / "reports" / path.stem
    job_values = {name: values[name] for name in (f.name for f in fields(Job)) if name in values}
    return Job(
        path=path,
        name=str(values.get("name") or path.stem),
        file=values.get("file") or report_folder / "source.csv",
        report_folder=report_folder,
        auth=_auth(values),
        source=source,
        map_file=mapping.get("file"),
        upn_domains=tuple(domains),
        **{k: v for k, v in job_values.items() if k not in ("file", "name", "auth", "source")},
    )


def _auth(values: dict) -> AuthSettings:
    return AuthSettings(**{
        f.name: str(values[key]) if isinstance(values[key], Path) else values[key]
        for f in fields(AuthSettings)
        if (key := _AUTH_KEYS.get(f.name, f.name)) in values
    })


def _source(values: dict) -> Source:
    return Source(auth=_auth(values), **{f.name: values[f.name] for f in fields(Source) if f.name in values and f.name != "auth"})


_AUTH_KEYS = {"mode": "auth"}


def _check(path: Path, text: str, table: str, key: str, value):
    line = _line(text, table, key)
    spec = _SCHEMA[table].get(key)
    if spec is None:
        if _SECRET_WORDS.search(key):
            raise InputError(
                f"{path}, line {line}: [{table}] {key}: never put secrets in a job file. Fix: keep the secret in an "
                f"environment variable and name it, e.g. secret_env = \"{CLIENT_SECRET_ENV}\"."
            )
        known = ", ".join(_SCHEMA[table])
        raise InputError(f"{path}, line {line}: unknown key [{table}] {key}. Known in [{table}]: {known}.")
    if isinstance(value, bool) and spec.kind is not bool or not isinstance(value, spec.kind):
        wanted = spec.kind.__name__ if isinstance(spec.kind, type) else "a number"
        raise InputError(f"{path}, line {line}: [{table}] {key} must be {wanted}, not {type(value).__name__} ({value!r}).")
    if spec.choices and value not in spec.choices:
        raise InputError(f"{path}, line {line}: [{table}] {key} = {value!r}: use one of {', '.join(spec.choices)}.")
    return value


def _line(text: str, table: str | None, key: str) -> int:
    """The line a key (or, with table None, a [table] header) is on, for error messages."""
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.fullmatch(r"\[([^\]]+)\]", stripped)
        if header:
            current = header.group(1).strip()
            if table is None and current == key:
                return number
            continue
        if table is not None and current == table and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    return 0
