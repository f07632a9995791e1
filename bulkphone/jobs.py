"""Job files: a run's inputs, sign-in, limits and report folder, kept in version control.

    bulkphone run jobs/tenant-migration.toml           # dry run: writes the plan
    bulkphone run jobs/tenant-migration.toml --apply   # applies it

Paths are relative to the job file. Secrets are never in a job file: name the environment
variables that hold them (`secret_env`, `certificate_password_env`). Unknown keys and wrong
types are errors that name the key and its line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .auth import AUTH_MODES, CERTIFICATE_PASSWORD_ENV, CLIENT_SECRET_ENV, AuthSettings
from .clouds import CLOUDS
from .errors import InputError
from .model import Mode

__all__ = ["Job", "load_job"]


@dataclass(frozen=True)
class _Key:
    kind: type | tuple[type, ...]
    choices: tuple = ()
    path: bool = False


_SCHEMA: dict[str, dict[str, _Key]] = {
    "job": {"name": _Key(str), "description": _Key(str)},
    "input": {
        "file": _Key(str, path=True),
        "users": _Key(str, path=True),
        "default_region": _Key(str),
        "mode": _Key(str, tuple(m.value for m in Mode)),
    },
    "connection": {
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
    },
    "limits": {
        "max_writes_per_second": _Key((int, float)),
        "max_concurrency": _Key(int),
        "max_update_percent": _Key((int, float)),
        "max_delete_percent": _Key((int, float)),
        "max_changes": _Key(int),
    },
    "report": {"folder": _Key(str, path=True)},
}
_SECRET_WORDS = re.compile(r"secret$|password$|token$|key$", re.IGNORECASE)


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
    secret_env: str = CLIENT_SECRET_ENV
    certificate_password_env: str = CERTIFICATE_PASSWORD_ENV
    max_writes_per_second: float = 15.0
    max_concurrency: int = 16
    max_update_percent: float = 30.0
    max_delete_percent: float = 10.0
    max_changes: int | None = None


def load_job(path: str | Path) -> Job:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: can't read the job file ({exc.strerror}). Fix: check the path.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc}). Fix: check the quoting and brackets on that line.") from None
    values: dict[str, object] = {}
    for table, entries in data.items():
        where = _line(text, None, table)
        if table not in _SCHEMA:
            raise InputError(f"{path}, line {where}: unknown table [{table}]. Known: {', '.join(_SCHEMA)}.")
        if not isinstance(entries, dict):
            raise InputError(f"{path}, line {where}: {table} must be a table ([{table}]).")
        for key, value in entries.items():
            values[key] = _check(path, text, table, key, value)
    if "file" not in values:
        raise InputError(f"{path}: [input] needs file = \"...\" (the CSV or .xlsx to apply).")
    base = path.parent
    resolved = {k: (base / v) if _SCHEMA_PATHS.get(k) and isinstance(v, str) else v for k, v in values.items()}
    auth = AuthSettings(**{
        f.name: str(resolved[key]) if isinstance(resolved[key], Path) else resolved[key]
        for f in fields(AuthSettings)
        if (key := _AUTH_KEYS.get(f.name, f.name)) in resolved
    })
    job_values = {name: resolved[name] for name in (f.name for f in fields(Job)) if name in resolved}
    return Job(
        path=path,
        name=str(values.get("name") or path.stem),
        file=resolved["file"],
        report_folder=resolved.get("folder") or base / "reports" / path.stem,
        auth=auth,
        **{k: v for k, v in job_values.items() if k not in ("file", "name", "auth")},
    )


_SCHEMA_PATHS = {key: spec.path for table in _SCHEMA.values() for key, spec in table.items()}
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
