"""Reports: one CSV row per (input row, phone type), so every input row is accounted for."""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import string
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from ._executor import RunResult
from ._files import private_file, write_private
from ._model import AUDIT_CATEGORIES, PASSKEY_PUSH_SINCE, SMS_VOICE_CUTOFF, SMS_VOICE_CUTOFF_LATE, Status
from ._planner import Plan, placeholder_note
from ._text import defuse_row

__all__ = [
    "NORMALIZE_COLUMNS",
    "REPORT_COLUMNS",
    "audit_summary",
    "has_problems",
    "csv_text",
    "new_report",
    "normalize_row",
    "plan_rows",
    "result_rows",
    "summarize",
    "summary",
    "write_audit_html",
    "write_csv",
    "write_html",
    "write_summary",
]

ALREADY_AS_PLANNED = "already as planned: Graph holds what the plan wanted (it was applied before); nothing written"
REPORT_COLUMNS = [
    "row",
    "user",
    "phoneType",
    "action",
    "status",
    "phoneNumber",
    "currentNumber",
    "error",
    "warning",
    "note",
    "raw",
    "region",
    "attempts",
    "httpStatus",
    "requestId",
    "smsSignInState",
    "reconciled",
    "sourceUser",
]
NORMALIZE_COLUMNS = [
    "row",
    "user",
    "phoneType",
    "raw",
    "region",
    "phoneNumber",
    "status",
    "error",
    "warning",
    "note",
    "numberRegion",
    "numberType",
    "sourceUser",
]


def plan_rows(plan: Plan) -> list[dict]:
    return [_plan_row(item) for item in plan.items]


def result_rows(result: RunResult) -> list[dict]:
    rows = []
    for item in result.plan.items:
        outcome = result.outcome(item)
        row = _plan_row(item)
        row.update(
            status=outcome.status.value,
            error=outcome.error or item.error,
            warning=outcome.warning,
            attempts=outcome.attempts or "",
            httpStatus=outcome.http_status or "",
            requestId=outcome.request_id,
            smsSignInState=outcome.sms_sign_in_state,
            reconciled="yes" if outcome.reconciled else "",
        )
        if outcome.already_done:
            row.update(action="noop", note=ALREADY_AS_PLANNED)
        rows.append(row)
    return rows


def normalize_row(
    row, user, phone_type, raw, region, number, number_region, number_type, error, warning, excluded, unchanged, source_user,
    placeholder,
) -> tuple:
    """One normalize report row, in NORMALIZE_COLUMNS order, from a cell's fields (a tuple:
    a big file has millions of them)."""
    note = excluded
    if excluded:
        status = Status.SKIPPED.value
    elif error:
        status = "invalid"
    else:
        status = Status.OK.value if number else "blank"
        if placeholder:
            note = placeholder_note(placeholder)
    return row, user, phone_type, raw, region, number, status, error, warning, note, number_region, number_type, source_user


def has_problems(rows: Iterable[dict]) -> bool:
    """A row failed, or was skipped for a reason someone must fix (exit code 1)."""
    return any(row["status"] in ("failed", "invalid") or (row["status"] == "skipped" and row["error"]) for row in rows)


def summarize(rows: Iterable[dict]) -> dict[str, Counter]:
    rows = list(rows)
    return {
        "action": Counter(row["action"] for row in rows if "action" in row),
        "status": Counter(row["status"] for row in rows),
    }


def write_csv(rows: Iterable[dict], path: str | Path, columns: list[str] = REPORT_COLUMNS) -> Path:
    with new_report(path, columns) as handle:
        csv.writer(handle).writerows(defuse_row([row.get(column, "") for column in columns]) for row in rows)
    return Path(path)


@contextlib.contextmanager
def new_report(path: str | Path, columns: list[str]) -> Iterator[TextIO]:
    """A report file with its header written, open for the rows (a big one: in pieces). It is
    private to its owner and appears only once complete (see _files.py)."""
    with private_file(path) as handle:
        csv.writer(handle).writerow(defuse_row(columns))
        yield handle


def csv_text(rows: Iterable[tuple]) -> str:
    """Rows as CSV text, the same way write_csv writes them (formula-like cells defused)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(map(defuse_row, rows))
    return buffer.getvalue()


def _plan_row(item) -> dict:
    return {
        "row": item.row,
        "user": item.user,
        "phoneType": item.phone_type,
        "action": item.action.value,
        "status": item.status.value,
        "phoneNumber": item.number,
        "currentNumber": item.current,
        "error": item.error,
        "warning": item.warning,
        "note": item.note,
        "raw": item.raw,
        "region": item.region,
        "attempts": "",
        "httpStatus": "",
        "requestId": "",
        "smsSignInState": "",
        "reconciled": "",
        "sourceUser": item.source_user,
    }


def summary(rows: list[dict], *, command: str, settings: dict, stats: dict | None = None, plan_checksum: str = "",
            run: dict | None = None) -> dict:
    """The numbers of a run, for summary.json and report.html; they equal the CSV's.

    `plan_checksum` is the plan's SHA-256 (_planfile.py): the value a change board
    approves, and `apply --plan ... --approve` checks. `run` says when and where (times,
    tenant, Graph). Every change is listed (user, type, old -> new, status), and skipped rows
    are told apart: left out on purpose, or needing a person."""
    failures: dict[str, list] = {}
    warnings: dict[str, list] = {}
    for row in rows:
        if row["error"] and (row["status"] in ("failed", "invalid") or row["status"] == "skipped"):
            failures.setdefault(row["error"], []).append(row["row"])
        if row.get("warning"):
            warnings.setdefault(row["warning"], []).append(row["row"])
    counted = summarize(rows)
    return {
        "command": command,
        "plan_checksum": plan_checksum,
        "rows": len(rows),
        "input_rows": len({row["row"] for row in rows}),
        "actions": dict(counted["action"]),
        "statuses": dict(counted["status"]),
        "errors": {reason: len(where) for reason, where in failures.items()},
        "warnings": {reason: len(where) for reason, where in warnings.items()},
        "rows_by_error": failures,
        "rows_by_warning": warnings,
        "skipped_on_purpose": sum(1 for row in rows if row["status"] == "skipped" and not row["error"]),
        "skipped_needs_a_person": sum(1 for row in rows if row["status"] == "skipped" and row["error"]),
        "run": run or {},
        "changes": [
            {"row": row["row"], "user": row["user"], "phoneType": row["phoneType"], "action": row["action"],
             "old": row.get("currentNumber", ""), "new": row.get("phoneNumber", ""), "status": row["status"],
             "error": row["error"]}
            for row in rows if row.get("action") in _CHANGES
        ],
        "stats": stats or {},
        "settings": settings,
    }


_CHANGES = ("create", "update", "delete")
CHANGES_SHOWN = 2_000  # changes listed open on the page; more fold away
CHANGES_ON_PAGE = 50_000  # beyond these the CSV has them


def write_summary(summary_data: dict, path: str | Path) -> Path:
    return write_private(path, json.dumps(summary_data, indent=2, default=str))


_COLORS = {
    "create": "#2e7d32", "update": "#1565c0", "delete": "#c62828", "noop": "#9e9e9e", "skip": "#ef6c00",
    "ok": "#2e7d32", "planned": "#1565c0", "failed": "#c62828", "skipped": "#ef6c00",
    "phone-only": "#c62828", "phone-default": "#ef6c00", "no-mfa": "#6a1b9a", "ready": "#2e7d32", "unread": "#9e9e9e",
}


# The page's layout and style (report.html); write_html fills in the escaped figures.
_PAGE = string.Template(Path(__file__).with_name("report.html").read_text(encoding="utf-8"))


def _bars(title: str, counts: dict) -> str:
    """A bar chart drawn in SVG on the page itself: no script, no image from anywhere."""
    e = html.escape
    total = max(sum(counts.values()), 1)
    width, y, parts = 560, 0, []
    for name, count in counts.items():
        length = max(2, int(360 * count / total)) if count else 0
        color = _COLORS.get(name, "#607d8b")
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="13">{e(name)}</text>'
            f'<rect x="110" y="{y + 3}" width="{length}" height="16" fill="{color}"></rect>'
            f'<text x="{118 + length}" y="{y + 16}" font-size="13" class="count" data-name="{e(name)}">{count}</text>'
        )
        y += 24
    return (f'<figure><figcaption>{e(title)}</figcaption>'
            f'<svg role="img" aria-label="{e(title)}" width="{width}" height="{y + 4}">{"".join(parts)}</svg></figure>')


def _when_and_where(s: dict) -> str:
    """The line a change board reads first: when, which tenant, which Graph, which command."""
    e, run = html.escape, s.get("run", {})
    if not run:
        return ""
    tenant = run.get("tenant_id") or "not known (the token doesn't say)"
    domain = f" (users at {e(run['users_domain'])})" if run.get("users_domain") else ""
    job = f' · job <b>{e(str(s["settings"]["job"]))}</b>' if s["settings"].get("job") else ""
    return (f'<p class="run" id="run">Run <b id="run-time">{e(run.get("started_utc", ""))}</b> '
            f'(local time {e(run.get("started_local", ""))}) · tenant <b id="tenant">{e(tenant)}</b>{domain} · '
            f'Graph <code>{e(run.get("graph_url", ""))}</code> · command <b>{e(s["command"])}</b>{job}</p>')


def _table(pairs: dict) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs.items())


def write_html(summary_data: dict, path: str | Path) -> Path:
    """A self-contained page (no scripts, fonts or images from the network) a manager can read."""
    e = html.escape
    s = summary_data

    def grouped(title: str, groups: dict, css: str) -> str:
        if not groups:
            return f"<h2>{e(title)}</h2><p>None.</p>"
        items = "".join(
            f'<tr class="{css}"><td>{e(reason)}</td><td class="n">{len(where)}</td>'
            f'<td>{e(", ".join(str(r) for r in sorted(set(where), key=int)[:50]))}{" …" if len(set(where)) > 50 else ""}</td></tr>'
            for reason, where in sorted(groups.items(), key=lambda pair: -len(pair[1]))
        )
        return (f"<h2>{e(title)}</h2><table><thead><tr><th>reason</th><th>rows</th><th>input rows to fix</th></tr></thead>"
                f"<tbody>{items}</tbody></table>")

    def approval(checksum: str) -> str:
        if not checksum:
            return ""
        if s["command"] != "plan":
            return (f'<p class="checksum">Checksum (SHA-256) of the plan applied: '
                    f'<code id="plan-checksum">{e(checksum)}</code></p>')
        return (f'<p class="checksum">Plan checksum (SHA-256): <code id="plan-checksum">{e(checksum)}</code><br>'
                f"Approve this plan by this value; it is applied only with "
                f"<code>bulkphone apply --plan PLAN.csv --approve {e(checksum)}</code> (or by whoever made it).</p>")

    def changes(listed: list[dict]) -> str:
        if not listed:
            return "<h2>Changes</h2><p>None.</p>"

        def lines(entries: list[dict]) -> str:
            return "".join(
                f'<tr class="{e(c["status"])}"><td class="n">{e(str(c["row"]))}</td><td>{e(c["user"])}</td><td>{e(c["phoneType"])}</td>'
                f'<td>{e(c["action"])}</td><td>{e(c["old"]) or "—"}</td><td>{e(c["new"]) or "—"}</td>'
                f'<td>{e(c["status"])}</td><td>{e(c["error"])}</td></tr>' for c in entries)

        head = ("<thead><tr><th>row</th><th>user</th><th>type</th><th>action</th><th>old</th><th>new</th><th>status</th>"
                "<th>reason</th></tr></thead>")
        shown, folded = listed[:CHANGES_SHOWN], listed[CHANGES_SHOWN:CHANGES_ON_PAGE]
        page = f'<h2>Changes ({len(listed)})</h2><table id="changes">{head}<tbody>{lines(shown)}</tbody></table>'
        if folded:
            page += (f"<details><summary>{len(folded)} more changes</summary><table>{head}<tbody>{lines(folded)}"
                     "</tbody></table></details>")
        if len(listed) > CHANGES_ON_PAGE:
            page += f"<p>… and {len(listed) - CHANGES_ON_PAGE} more: the report CSV lists every one.</p>"
        return page

    failed = s["statuses"].get("failed", 0)
    skipped_with_reason = sum(s["errors"].values()) - failed
    page = _PAGE.substitute(
        command=e(s["command"]),
        input_rows=s["input_rows"],
        rows=s["rows"],
        approval=approval(s.get("plan_checksum", "")),
        when_and_where=_when_and_where(s),
        changes=changes(s.get("changes", [])),
        ok=s["statuses"].get("ok", 0),
        planned=s["statuses"].get("planned", 0),
        failed=failed,
        on_purpose=s.get("skipped_on_purpose", 0),
        needs_a_person=s.get("skipped_needs_a_person", 0),
        warnings=sum(s["warnings"].values()),
        action_bars=_bars("actions", s["actions"]),
        outcome_bars=_bars("outcomes", s["statuses"]),
        rows_to_fix=grouped(f"Rows to fix ({failed} failed, {skipped_with_reason} skipped for a reason)",
                            s["rows_by_error"], "failure"),
        warning_rows=grouped("Warnings (done, but look)", s["rows_by_warning"], "warning"),
        stats=_table(s["stats"]) or "<tr><td>no requests made</td></tr>",
        settings=_table(s["settings"]),
    )
    return write_private(path, page)


AUDIT_LISTED = 2_000  # users listed open in a table of the audit page; the CSV has every one
_AUDIT_PAGE = string.Template(Path(__file__).with_name("audit.html").read_text(encoding="utf-8"))


def audit_summary(rows: list[dict], *, settings: dict, source: str, fallback_reason: str = "", admins_unknown: str = "",
                  run: dict | None = None, stats: dict | None = None) -> dict:
    """The numbers of an audit, for AUDIT.summary.json and AUDIT.html; they equal the CSV's."""
    def count(where) -> dict[str, int]:
        counted = Counter(row["category"] for row in rows if where(row))
        return {category: counted.get(category, 0) for category in AUDIT_CATEGORIES}

    return {
        "command": "audit",
        "users": len(rows),
        "categories": count(lambda row: True),
        "admins": count(lambda row: row["isAdmin"] == "yes"),
        "guests": count(lambda row: row["isGuest"] == "yes"),
        "phone_only_admins": [row["user"] for row in rows if row["category"] == "phone-only" and row["isAdmin"] == "yes"],
        "phone_only": [row["user"] for row in rows if row["category"] == "phone-only"],
        "unread": [{"user": row["user"], "reason": row["reason"]} for row in rows if row["category"] == "unread"],
        "proposed_defaults": dict(Counter(row["proposedDefault"] for row in rows if row["proposedDefault"])),
        "dates": {"passkeys_prompted_from": PASSKEY_PUSH_SINCE, "sms_voice_stop": SMS_VOICE_CUTOFF,
                  "sms_voice_stop_global_admins_and_guests": SMS_VOICE_CUTOFF_LATE},
        "source": source,
        "fallback_reason": fallback_reason,
        "admins_unknown": admins_unknown,
        "run": run or {},
        "stats": stats or {},
        "settings": settings,
    }


def write_audit_html(summary_data: dict, path: str | Path) -> Path:
    """The audit for people: the dates, counts per category with a chart, phone-only admins
    first, admins and guests per category, the fixes proposed, and who couldn't be read."""
    e, s = html.escape, summary_data
    categories = s["categories"]

    def users_table(title: str, element_id: str, users: list[str], empty: str) -> str:
        if not users:
            return f"<h2>{e(title)}</h2><p id=\"{element_id}\">{e(empty)}</p>"
        shown = "".join(f"<tr><td>{e(user)}</td></tr>" for user in users[:AUDIT_LISTED])
        more = f"<p>… and {len(users) - AUDIT_LISTED} more: the audit CSV lists every one.</p>" if len(users) > AUDIT_LISTED else ""
        return f'<h2>{e(title)} ({len(users)})</h2><table id="{element_id}"><tbody>{shown}</tbody></table>{more}'

    source = ("Read from Graph's registration report (userRegistrationDetails)." if s["source"] == "registration report"
              else f"Read from each user's methods: the registration report wasn't used ({e(s['fallback_reason'])}); "
                   + (f"who is an admin isn't known ({e(s['admins_unknown'])})." if s["admins_unknown"] else
                      "admins are those the directory's role assignments name."))
    fixes = s["proposed_defaults"]
    fixes_text = (", ".join(f"{count} to {e(default)}" for default, count in fixes.items()) if fixes else "none")
    unread = "".join(f"<tr><td>{e(item['user'])}</td><td>{e(item['reason'])}</td></tr>" for item in s["unread"][:AUDIT_LISTED])
    page = _AUDIT_PAGE.substitute(
        users=s["users"],
        at_risk=categories["phone-only"] + categories["phone-default"] + categories["no-mfa"],
        when_and_where=_when_and_where(s),
        passkeys_from=e(s["dates"]["passkeys_prompted_from"]),
        cutoff=e(s["dates"]["sms_voice_stop"]),
        cutoff_late=e(s["dates"]["sms_voice_stop_global_admins_and_guests"]),
        source=source,
        phone_only=categories["phone-only"],
        phone_default=categories["phone-default"],
        no_mfa=categories["no-mfa"],
        ready=categories["ready"],
        unread=categories["unread"],
        category_bars=_bars("users by category", categories),
        admins_first=users_table("Phone-only admins, first", "phone-only-admins", s["phone_only_admins"],
                                 "No admin signs in with SMS or voice only."),
        by_category="".join(f'<tr><td>{e(c)}</td><td class="n">{categories[c]}</td><td class="n">{s["admins"][c]}</td>'
                            f'<td class="n">{s["guests"][c]}</td></tr>' for c in AUDIT_CATEGORIES),
        fixes=(f"<h2>Fixes bulkphone can make</h2><p id=\"fixes\">Default method moved off SMS/voice: {fixes_text} "
               "(written by <code>--propose FIXES.csv</code>, applied through plan, review and apply).</p>"),
        phone_only_users=users_table("Phone-only users (need a passkey)", "phone-only-users", s["phone_only"], "None."),
        unread_users=(f'<h2>Couldn\'t be read ({len(s["unread"])})</h2><table id="unread"><tbody>{unread}</tbody></table>'
                      if s["unread"] else ""),
        stats=_table(s["stats"]) or "<tr><td>no requests made</td></tr>",
        settings=_table(s["settings"]),
    )
    return write_private(path, page)
