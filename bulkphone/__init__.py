"""bulkphone: plan and apply phone authentication methods for many Entra ID users.

    import bulkphone
    connection = bulkphone.connect(bulkphone.StaticToken(token))
    the_plan = bulkphone.plan("phones.csv", connection=connection, default_region="US")
    result = bulkphone.apply(the_plan, connection=connection)
"""

from .auth import AuthSettings, StaticToken, token_provider
from .errors import (
    AmbiguousWriteError,
    AuthError,
    BulkphoneError,
    ForbiddenError,
    GraphError,
    InputError,
    NotFoundError,
    PermanentError,
    PreflightError,
    ThrottledError,
    TransientError,
    UnsafePlanError,
)
from .executor import Outcome, RunResult
from .graph import GraphClient
from .journal import Journal
from .model import Action, Mode, PhoneType, Status
from .normalize import normalize_number
from .export import EXPORT_COLUMNS, ExportResult
from .mapping import IdentityMap, load_identity_map
from .cells import load_cells
from .pipeline import (
    Connection,
    apply,
    apply_async,
    check,
    check_async,
    connect,
    export,
    export_async,
    plan,
    plan_async,
    read_current,
)
from .planfile import read_plan, write_plan
from .planner import Plan, PlanItem, build_plan
from .runs import (
    ApplyRun,
    ExportRun,
    JobRun,
    PlanRun,
    apply_to_report,
    export_to_report,
    normalize_file,
    plan_to_report,
    run_job,
    run_job_async,
)
from .safety import SafetyLimits

__all__ = [
    "Action",
    "ApplyRun",
    "ExportRun",
    "JobRun",
    "PlanRun",
    "apply_to_report",
    "export_to_report",
    "plan_to_report",
    "run_job",
    "run_job_async",
    "AmbiguousWriteError",
    "AuthError",
    "AuthSettings",
    "BulkphoneError",
    "Connection",
    "EXPORT_COLUMNS",
    "ExportResult",
    "ForbiddenError",
    "GraphClient",
    "GraphError",
    "IdentityMap",
    "InputError",
    "Journal",
    "Mode",
    "NotFoundError",
    "Outcome",
    "PermanentError",
    "PreflightError",
    "PhoneType",
    "Plan",
    "PlanItem",
    "RunResult",
    "SafetyLimits",
    "StaticToken",
    "Status",
    "ThrottledError",
    "TransientError",
    "UnsafePlanError",
    "apply",
    "apply_async",
    "build_plan",
    "check",
    "check_async",
    "connect",
    "export",
    "export_async",
    "load_cells",
    "load_identity_map",
    "normalize_file",
    "normalize_number",
    "plan",
    "plan_async",
    "read_current",
    "read_plan",
    "token_provider",
    "write_plan",
]
