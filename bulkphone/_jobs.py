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
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, Union

from ._auth import AUTH_MODES, CLIENT_SECRET_ENV, AuthSettings
from ._clouds import CLOUDS
from ._directory import DEFAULT_FIELDS, FromDirectory, directory_fields
from ._errors import InputError
from ._executor import DEFAULT_CONCURRENCY, DEFAULT_WAIT_FOR_NEW_USERS
from ._files import require_regular_file
from ._model import Mode
from ._safety import DEFAULT_LIMITS
from ._throttle import DEFAULT_WRITES_PER_SECOND

__all__ = ["Job", "Source", "load_job"]

# The tables of a job file, each a dataclass: its fields are the keys a table takes, their
# types what each key must hold (Path: a string, relative to the job file; float: any number;
# Literal: one of these). _read_table checks a table against them.
_Cloud = Literal[tuple(CLOUDS)]  # type: ignore[valid-type]
_AuthMode = Literal[tuple(AUTH_MODES)]  # type: ignore[valid-type]
_ModeName = Literal[tuple(mode.value for mode in Mode)]  # type: ignore[valid-type]


@dataclass(frozen=True)
class _JobTable:
    name: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class _InputTable:
    file: Path | None = None
    users: Path | None = None
    default_region: str | None = None
    mode: _ModeName = Mode.UPSERT.value
    sheet: str | int | None = None
    group: list[str] = field(default_factory=list)  # object ids or exact display names; members of any
    from_directory: bool = False  # the input is the users' own mobilePhone and businessPhones, not `file`
    directory_fields: str | None = None  # e.g. "mobilePhone=mobile,businessPhones=office"
    all_users: bool = False  # with from_directory: every user of the tenant
    only_unregistered: bool = False  # leave out users who already have a second factor


@dataclass(frozen=True)
class _ConnectionTable:
    cloud: _Cloud = "global"
    graph_url: str | None = None
    authority_url: str | None = None
    auth: _AuthMode | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    certificate: Path | None = None
    send_x5c: bool = False
    managed_identity_client_id: str | None = None
    federated_token_file: Path | None = None
    secret_env: str = AuthSettings.secret_env
    certificate_password_env: str = AuthSettings.certificate_password_env
    token_env: str = AuthSettings.token_env
    allow_insecure_http: bool = False

    def auth_settings(self) -> AuthSettings:
        return AuthSettings(
            mode=self.auth, tenant_id=self.tenant_id, client_id=self.client_id,
            certificate=str(self.certificate) if self.certificate else None, send_x5c=self.send_x5c,
            managed_identity_client_id=self.managed_identity_client_id,
            federated_token_file=str(self.federated_token_file) if self.federated_token_file else None,
            authority_url=self.authority_url, secret_env=self.secret_env,
            certificate_password_env=self.certificate_password_env, token_env=self.token_env,
        )


@dataclass(frozen=True)
class _SourceTable(_ConnectionTable):
    users: Path | None = None  # None: every user of the tenant
    include_empty: bool = False


@dataclass(frozen=True)
class _MappingTable:
    file: Path | None = None
    upn_domains: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _LimitsTable:
    max_writes_per_second: float = DEFAULT_WRITES_PER_SECOND
    max_concurrency: int = DEFAULT_CONCURRENCY
    max_update_percent: float = DEFAULT_LIMITS.max_update_share * 100
    max_delete_percent: float = DEFAULT_LIMITS.max_delete_share * 100
    max_changes: int | None = None
    wait_for_new_users: float = DEFAULT_WAIT_FOR_NEW_USERS


@dataclass(frozen=True)
class _ReportTable:
    folder: Path | None = None


_TABLES: dict[str, type] = {
    "job": _JobTable, "input": _InputTable, "connection": _ConnectionTable, "source": _SourceTable,
    "mapping": _MappingTable, "limits": _LimitsTable, "report": _ReportTable,
}
_LIST_ITEMS = {"upn_domains": '"old=new" strings', "group": "group names or object ids (strings)"}
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
    file: Path | None  # the input file (None when the input comes from the directory)
    report_folder: Path
    users: Path | None = None
    default_region: str | None = None
    mode: str = Mode.UPSERT.value
    sheet: str | None = None  # a workbook's sheet, by name or 1-based position
    cloud: str = "global"
    graph_url: str | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)
    allow_insecure_http: bool = False
    source: Source | None = None
    map_file: Path | None = None
    upn_domains: tuple[str, ...] = ()
    max_writes_per_second: float = _LimitsTable.max_writes_per_second
    max_concurrency: int = _LimitsTable.max_concurrency
    wait_for_new_users: float = _LimitsTable.wait_for_new_users
    max_update_percent: float = _LimitsTable.max_update_percent
    max_delete_percent: float = _LimitsTable.max_delete_percent
    max_changes: int | None = None
    groups: tuple[str, ...] = ()
    from_directory: FromDirectory | None = None
    only_unregistered: bool = False

    @property
    def input(self) -> Path | FromDirectory:
        """What is planned: the input file, or the directory."""
        return self.from_directory or self.file


def load_job(path: str | Path) -> Job:
    """A job file, checked key by key: an unknown table or key, a wrong type or value, or a
    secret is an InputError naming the key and its line."""
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
    lines = _KeyLines(path, text)
    for name, entries in data.items():
        if name not in _TABLES:
            raise InputError(f"{lines.at(name)}: unknown table [{name}]. Known: {', '.join(_TABLES)}.")
        if not isinstance(entries, dict):
            raise InputError(f"{lines.at(name)}: {name} must be a table ([{name}]).")
    tables = {name: _read_table(name, data.get(name, {}), lines) for name in _TABLES}
    job_table, given, connection = tables["job"], tables["input"], tables["connection"]
    mapping, limits = tables["mapping"], tables["limits"]
    source = _source(tables["source"]) if "source" in data else None
    if given.file is None and source is None and not given.from_directory:
        raise InputError(f"{path}: [input] needs file = \"...\" (the CSV or .xlsx to apply), from_directory = true, "
                         "or a [source] tenant to export from.")
    if given.from_directory and (given.file is not None or source is not None):
        raise InputError(f"{lines.at('input', 'from_directory')}: [input] from_directory = true builds the input from "
                         "the directory; drop file (and [source]), or drop from_directory.")
    if (given.directory_fields or given.all_users) and not given.from_directory:
        raise InputError(f"{lines.at('input')}: [input] directory_fields and all_users go with from_directory = true.")
    directory = None
    if given.from_directory:
        try:
            chosen = directory_fields(given.directory_fields) if given.directory_fields is not None else DEFAULT_FIELDS
        except InputError as exc:
            raise InputError(f"{lines.at('input', 'directory_fields')}: [input] {exc.in_words({'directory_fields': 'directory_fields'})}") from None
        directory = FromDirectory(chosen, everyone=given.all_users)
    report_folder = tables["report"].folder or path.parent / "reports" / path.stem
    return Job(
        path=path,
        name=job_table.name or path.stem,
        file=given.file or (None if directory else report_folder / "source.csv"),
        report_folder=report_folder,
        users=given.users,
        default_region=given.default_region,
        mode=given.mode,
        sheet=None if given.sheet is None else str(given.sheet),
        cloud=connection.cloud,
        graph_url=connection.graph_url,
        auth=connection.auth_settings(),
        allow_insecure_http=connection.allow_insecure_http,
        source=source,
        map_file=mapping.file,
        upn_domains=tuple(mapping.upn_domains),
        groups=tuple(given.group),
        from_directory=directory,
        only_unregistered=given.only_unregistered,
        **{f.name: getattr(limits, f.name) for f in fields(_LimitsTable)},
    )


def _source(table: _SourceTable) -> Source:
    return Source(auth=table.auth_settings(), cloud=table.cloud, graph_url=table.graph_url,
                  allow_insecure_http=table.allow_insecure_http, users=table.users, include_empty=table.include_empty)


def _read_table(name: str, entries: dict, lines: _KeyLines):
    """The table as its dataclass, every value checked against its field's type."""
    kind = _TABLES[name]
    known = {f.name for f in fields(kind)}
    hints = typing.get_type_hints(kind)
    values = {}
    for key, value in entries.items():
        where = lines.at(name, key)
        if key not in known:
            if _SECRET_WORDS.search(key):
                raise InputError(
                    f"{where}: [{name}] {key}: never put secrets in a job file. Fix: keep the secret in an "
                    f"environment variable and name it, e.g. secret_env = \"{CLIENT_SECRET_ENV}\"."
                )
            raise InputError(f"{where}: unknown key [{name}] {key}. Known in [{name}]: {', '.join(f.name for f in fields(kind))}.")
        values[key] = _checked(hints[key], value, f"{where}: [{name}] {key}", lines.path.parent)
    return kind(**values)


def _checked(wanted, value, what: str, base: Path):
    """`value` as the type `wanted` says (a Path relative to `base`), or an InputError."""
    options = [option for option in typing.get_args(wanted) if option is not type(None)] if typing.get_origin(wanted) in (
        Union, types.UnionType) else [wanted]
    for option in options[1:]:  # `str | int`: the first type the value is
        if isinstance(value, option) and not isinstance(value, bool):
            return value
    wanted = options[0]
    if typing.get_origin(wanted) is Literal:
        if value not in typing.get_args(wanted):
            raise InputError(f"{what} = {value!r}: use one of {', '.join(typing.get_args(wanted))}.")
        return value
    if typing.get_origin(wanted) is list:
        if not isinstance(value, list):
            raise InputError(f"{what} must be list, not {type(value).__name__} ({value!r}).")
        if not all(isinstance(item, str) for item in value):
            items = _LIST_ITEMS.get(what.rpartition(" ")[2], "strings")
            raise InputError(f"{what} must be a list of {items}.")
        return value
    expected = {Path: str, float: (int, float)}.get(wanted, wanted)
    if isinstance(value, bool) and wanted is not bool or not isinstance(value, expected):
        name = "a number" if wanted is float else expected.__name__
        raise InputError(f"{what} must be {name}, not {type(value).__name__} ({value!r}).")
    return base / value if wanted is Path else value


class _KeyLines:
    """Where a table or key is written, for messages: `[table]` then `key = ...`, an inline
    table `table = { key = ... }`, or a dotted key `table.key = ...`."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def at(self, table: str, key: str | None = None) -> str:
        number = self._find(table, key)
        return f"{self.path}, line {number}" if number else str(self.path)

    def _find(self, table: str, key: str | None) -> int | None:
        current = None
        own = rf"(?:{re.escape(table)}|\"{re.escape(table)}\")"
        for number, line in enumerate(self.lines, start=1):
            stripped = line.strip()
            header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]\s*(?:#.*)?", stripped)
            if header:
                current = header.group(1).strip('"')
                if key is None and current == table:
                    return number
                continue
            if current is None and re.match(rf"{own}\s*=\s*\{{", stripped):  # an inline table
                if key is None or re.search(rf"[{{,]\s*{re.escape(key)}\s*=", stripped):
                    return number
            if current is None and key is not None and re.match(rf"{own}\.{re.escape(key)}\s*=", stripped):
                return number
            if current == table and key is not None and re.match(rf"{re.escape(key)}\s*=", stripped):
                return number
        return None
