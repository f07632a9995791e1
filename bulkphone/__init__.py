"""bulkphone: plan and apply phone authentication methods for many Entra ID users.

    import bulkphone
    client = bulkphone.connect(bulkphone.StaticToken(token))
    the_plan = bulkphone.plan("phones.csv", client=client, default_region="US")
    result = bulkphone.apply(the_plan, client=client)
"""

from .auth import ClientSecretToken, StaticToken
from .errors import (
    AmbiguousWriteError,
    AuthError,
    BulkphoneError,
    ForbiddenError,
    GraphError,
    InputError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from .executor import Outcome, RunResult
from .graph import GraphClient
from .model import Action, Mode, PhoneType, Status
from .normalize import normalize_number
from .pipeline import apply, connect, load_cells, plan, read_current
from .planner import Plan, PlanItem, build_plan

__all__ = [
    "Action",
    "AmbiguousWriteError",
    "AuthError",
    "BulkphoneError",
    "ClientSecretToken",
    "ForbiddenError",
    "GraphClient",
    "GraphError",
    "InputError",
    "Mode",
    "NotFoundError",
    "Outcome",
    "PermanentError",
    "PhoneType",
    "Plan",
    "PlanItem",
    "RunResult",
    "StaticToken",
    "Status",
    "ThrottledError",
    "TransientError",
    "apply",
    "build_plan",
    "connect",
    "load_cells",
    "normalize_number",
    "plan",
    "read_current",
]
