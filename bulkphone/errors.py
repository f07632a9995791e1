"""One exception tree for everything bulkphone raises.

    BulkphoneError
    ├── InputError            a file or option the user must fix
    │   └── JournalInUseError another run holds the journal (one run per journal at a time)
    ├── PreflightError        the sign-in can't do this run (missing permission, masked numbers)
    ├── UnsafePlanError       the plan changes more than the safety limits allow (needs --force)
    └── GraphError            Graph answered with an error, or did not answer
        ├── AuthError         401: the token is missing, expired or for the wrong audience
        ├── ForbiddenError    403: the token lacks a permission or role
        ├── NotFoundError     404: user (or method) not found
        ├── ThrottledError    429: wait Retry-After seconds
        ├── TransientError    5xx or a connection that failed before the request was sent
        ├── AmbiguousWriteError  a write whose outcome is unknown (no or a 5xx response)
        ├── ConflictError     409 (phoneNumberNotUnique): the write was refused, yet is typically saved
        └── PermanentError    any other 4xx: the request itself is wrong
"""

from __future__ import annotations

__all__ = [
    "AmbiguousWriteError",
    "AuthError",
    "BulkphoneError",
    "ConflictError",
    "ForbiddenError",
    "GraphError",
    "InputError",
    "JournalInUseError",
    "NotFoundError",
    "PermanentError",
    "PreflightError",
    "ThrottledError",
    "TransientError",
    "UnsafePlanError",
]


class BulkphoneError(Exception):
    """Root of every error bulkphone raises on purpose."""


class InputError(BulkphoneError):
    """Input the user must fix; the message names the file, the problem and the fix."""


class JournalInUseError(InputError):
    """Another run (named in the message) is using the journal; two runs at once would write twice."""


class PreflightError(BulkphoneError):
    """Found before row 1: the token lacks a permission, or Graph masks the numbers it returns."""


class UnsafePlanError(BulkphoneError):
    """The plan updates or deletes more than the safety limits allow; nothing was written.

    `problems` says by how much, in words; `exceeded` names the SafetyLimits fields, so a
    caller can name its own setting (a CLI flag, a job-file key)."""

    def __init__(self, problems: list[str], exceeded: list[str]) -> None:
        self.problems = problems
        self.exceeded = exceeded
        super().__init__(
            "refusing to apply: the plan " + "; and ".join(problems) + ". Nothing was written. "
            "Fix: review the plan, then apply it with higher limits, or without them once you are sure."
        )


class GraphError(BulkphoneError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        request_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after


class AuthError(GraphError):
    pass


class ForbiddenError(GraphError):
    pass


class NotFoundError(GraphError):
    pass


class ThrottledError(GraphError):
    pass


class TransientError(GraphError):
    pass


class AmbiguousWriteError(GraphError):
    """The write may or may not have been applied: re-read before writing again."""


class ConflictError(GraphError):
    """409 on a phone write: another user has the number. Graph typically saved it anyway, so
    the outcome is settled by reading the user back, not by writing again."""


class PermanentError(GraphError):
    pass
