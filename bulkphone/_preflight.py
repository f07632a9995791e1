"""Catch setup problems before row 1: read the token's claims, probe one read (which must
reach Graph and be answered like Graph), and refuse masked numbers, with one message that
says how to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._auth import TokenProvider, decode_claims
from ._errors import AuthError, ForbiddenError, GraphError, NotFoundError, PreflightError, ThrottledError, TransientError
from ._graph import GraphClient
from ._normalize import is_masked

__all__ = ["PreflightReport", "READ_PERMISSIONS", "WRITE_PERMISSIONS", "check_directory_permissions", "preflight"]

WRITE_PERMISSIONS = ("UserAuthenticationMethod.ReadWrite.All", "UserAuthMethod-Phone.ReadWrite.All")
# The default method (signInPreferences) is about every kind of method: the phone-only permission doesn't reach it.
SETTINGS_WRITE_PERMISSIONS = ("UserAuthenticationMethod.ReadWrite.All",)
READ_PERMISSIONS = ("UserAuthenticationMethod.Read.All",) + WRITE_PERMISSIONS
# Reading a group's members, and users' phone attributes (beyond the basic profile).
GROUP_PERMISSIONS = ("GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All",
                     "Directory.ReadWrite.All")
PROFILE_PERMISSIONS = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")

_GRANT_APP = (
    "Entra admin center → App registrations → {app} → API permissions → Add a permission → Microsoft Graph → "
    "Application permissions → {permission}, then 'Grant admin consent'"
)
# Probed when no user is known: Graph answers 404 with its own error code, which proves the URL
# is Graph, reachable, and accepts the token.
NOBODY = "00000000-0000-0000-0000-000000000000"
_GRANT_DELEGATED = (
    "add the delegated permission {permission} to {app} with admin consent, and sign in as a user holding the "
    "Authentication Administrator or Privileged Authentication Administrator role"
)


@dataclass
class PreflightReport:
    kind: str  # "application", "delegated" or "opaque" (a token whose claims can't be read)
    granted: list[str] = field(default_factory=list)
    probed_user: str = ""
    notes: list[str] = field(default_factory=list)
    graph_url: str = ""


async def preflight(
    token_provider: TokenProvider, client: GraphClient, *, write: bool, probe_user: str | None = None,
    settings: bool = False,
) -> PreflightReport:
    """Raise PreflightError (or AuthError) if this sign-in can't do the run; else say what was
    checked. `settings`: the run changes default methods or SMS sign-in."""
    token = token_provider.token()
    claims = decode_claims(token)
    needed = (SETTINGS_WRITE_PERMISSIONS if settings else WRITE_PERMISSIONS) if write else READ_PERMISSIONS
    if not claims:
        report = PreflightReport(kind="opaque")
        report.notes.append("the token isn't a JWT, so its permissions can't be read before the run")
    else:
        delegated = "scp" in claims
        granted = sorted(set(claims.get("roles") or []) | set(str(claims.get("scp") or "").split()))
        report = PreflightReport(kind="delegated" if delegated else "application", granted=granted)
        if not set(granted) & set(needed):
            app = claims.get("app_displayname") or claims.get("appid") or "your app"
            how = (_GRANT_DELEGATED if delegated else _GRANT_APP).format(app=app, permission=needed[0])
            raise PreflightError(
                f"the {report.kind} token grants {', '.join(granted) or 'no permissions'}, none of "
                f"{' or '.join(needed)}, which {'apply' if write else 'plan'} needs"
                f"{' for the defaultMethod and smsSignIn columns' if write and settings else ''}. Fix: {how}."
            )
        if delegated:
            report.notes.append(
                "delegated sign-in: Graph may mask numbers for an Authentication Administrator; "
                "an application permission avoids that"
            )
    report.graph_url = client.root
    report.probed_user = probe_user or ""
    try:
        methods = await _probe(client, probe_user or NOBODY)
    except (AuthError, ForbiddenError) as exc:
        raise PreflightError(
            f"reading {probe_user or 'a user'}'s phone methods failed: {exc.message}. Fix: the sign-in needs "
            f"{' or '.join(needed)} (and, for a delegated sign-in, an authentication admin role)"
        ) from None
    except NotFoundError as exc:
        if not exc.code:
            raise _not_graph(client, exc) from None
        if probe_user:
            report.notes.append(f"{probe_user} was not found (404): Graph answered, so the run can start")
        return report
    except (TransientError, ThrottledError) as exc:
        raise PreflightError(
            f"can't reach Graph at {client.root}: {exc.message}. Fix: check {{graph_url}} or {{cloud}}, the network, "
            "and any proxy (HTTPS_PROXY); nothing was read or written",
            settings=("graph_url", "cloud"),
        ) from None
    except GraphError as exc:
        raise _not_graph(client, exc) from None
    if probe_user:
        masked = [m.phone_number for m in methods.values() if is_masked(m.phone_number)]
        if masked:
            raise PreflightError(
                f"Graph returns masked numbers to this sign-in (e.g. {probe_user}: {masked[0]}), so they can't be "
                "compared and bulkphone won't overwrite them. Fix: run with an application permission "
                "({auth} secret, certificate, managed-identity or workload-identity) instead of a delegated sign-in",
                settings=("auth",),
            )
    return report


def check_directory_permissions(token_provider: TokenProvider, *, groups: bool, attributes: bool) -> None:
    """Raise PreflightError before any read if the token's claims lack what reading `groups`' members
    or users' phone `attributes` needs. A token whose claims can't be read is left to Graph's answer."""
    claims = decode_claims(token_provider.token())
    if not claims or not (groups or attributes):
        return
    granted = set(claims.get("roles") or []) | set(str(claims.get("scp") or "").split())
    app = claims.get("app_displayname") or claims.get("appid") or "your app"
    missing = [(needed, why) for needed, why, wanted in (
        (GROUP_PERMISSIONS, "to read the groups' members", groups),
        (PROFILE_PERMISSIONS, "to read users' mobilePhone, businessPhones and usageLocation", attributes),
    ) if wanted and not granted & set(needed)]
    if missing:
        how = "; ".join(f"{needed[0]} (or {needed[1]}) {why}" for needed, why in missing)
        raise PreflightError(f"the token grants {', '.join(sorted(granted)) or 'no permissions'}, but the run needs {how}. "
                             f"Fix: {_GRANT_APP.format(app=app, permission=missing[0][0][0])}.")


async def _probe(client: GraphClient, user: str):
    """One read, and one more after a moment if the first met a transient failure: a setup
    problem must show within seconds, not after a run's worth of retries."""
    try:
        return await client.list_phone_methods(user, retry=False)
    except (TransientError, ThrottledError) as exc:
        await client.policy.clock.sleep(min(client.policy.wait_for(exc, 1), 5.0))
        return await client.list_phone_methods(user, retry=False)


def _not_graph(client: GraphClient, exc: GraphError) -> PreflightError:
    return PreflightError(
        f"{client.root} doesn't answer like Microsoft Graph ({exc.message}). Fix: give Graph's root as "
        "{graph_url} (e.g. https://graph.microsoft.com, without /v1.0) or choose {cloud}; nothing was read or written",
        settings=("graph_url", "cloud"),
    )
