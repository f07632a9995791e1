"""bulkphone: plan and apply phone authentication methods for many Entra ID users.

    import bulkphone
    connection = bulkphone.connect_with(bulkphone.AuthSettings(tenant_id=..., client_id=...))
    the_plan = bulkphone.plan("phones.csv", connection=connection, default_region="US")
    new_hires = bulkphone.plan(bulkphone.FromDirectory(), connection=connection, groups=["New hires"],
                               only_unregistered=True)   # numbers from the directory, for those without MFA
    result = bulkphone.apply(the_plan, connection=connection)

    bulkphone.run_job("jobs/onboarding-import.toml", apply=True)   # what `bulkphone run` does

Everything a caller needs is here; the modules behind it (`bulkphone._*`) are private and
change without notice. The simulated tenant for tests is `bulkphone.sim`.
"""

from ._auth import AuthSettings, StaticToken
from ._directory import FromDirectory, directory_fields
from ._errors import (
    AuthError,
    BulkphoneError,
    ForbiddenError,
    GraphError,
    InputError,
    JournalInUseError,
    PreflightError,
    ThrottledError,
    TransientError,
    UnsafePlanError,
)
from ._executor import Outcome, RunResult
from ._export import ExportResult
from ._jobs import Job, load_job
from ._journal import Journal
from ._mapping import IdentityMap, load_identity_map
from ._model import Action, Category, Mode, PhoneType, Status
from ._normalize import normalize_number
from ._pipeline import (
    Connection,
    apply,
    apply_async,
    audit,
    audit_async,
    check,
    check_async,
    connect,
    connect_with,
    export,
    export_async,
    plan,
    plan_async,
)
from ._planfile import read_plan, write_plan
from ._planner import Plan, PlanItem
from ._audit import AuditResult, AuditRow
from ._runs import (
    ApplyRun,
    AuditRun,
    ExportRun,
    JobRun,
    NormalizeRun,
    PlanRun,
    apply_to_report,
    audit_to_report,
    export_to_report,
    normalize_file,
    plan_to_report,
    run_job,
    run_job_async,
)
from ._safety import SafetyLimits

__all__ = [
    # connecting
    "AuthSettings",
    "Connection",
    "StaticToken",
    "connect",
    "connect_with",
    # one step, in memory
    "apply",
    "apply_async",
    "audit",
    "audit_async",
    "check",
    "check_async",
    "export",
    "export_async",
    "normalize_number",
    "plan",
    "plan_async",
    # a whole command, with its reports
    "ApplyRun",
    "AuditRun",
    "ExportRun",
    "JobRun",
    "NormalizeRun",
    "PlanRun",
    "apply_to_report",
    "audit_to_report",
    "export_to_report",
    "normalize_file",
    "plan_to_report",
    "run_job",
    "run_job_async",
    # what they take and give
    "Action",
    "AuditResult",
    "AuditRow",
    "Category",
    "ExportResult",
    "FromDirectory",
    "IdentityMap",
    "Job",
    "Journal",
    "Mode",
    "Outcome",
    "PhoneType",
    "Plan",
    "PlanItem",
    "RunResult",
    "SafetyLimits",
    "Status",
    "directory_fields",
    "load_identity_map",
    "load_job",
    "read_plan",
    "write_plan",
    # errors a caller meets (Graph's answers to single changes become each row's Outcome)
    "AuthError",
    "BulkphoneError",
    "ForbiddenError",
    "GraphError",
    "InputError",
    "JournalInUseError",
    "PreflightError",
    "ThrottledError",
    "TransientError",
    "UnsafePlanError",
]
