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

from typing import Mapping

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
    """Root of every error bulkphone raises on purpose.

    A message that tells the caller to change a setting names it as `{name}` (the library's
    parameter name, listed in `settings`), so each caller can say it in its own words: the CLI
    its flag, a job run its key (`in_words`). `str(error)` uses the parameter names."""

    def __init__(self, message: str = "", *, settings: tuple[str, ...] = ()) -> None:
        self.settings = settings
        super().__init__(message)

    def in_words(self, words: Mapping[str, str]) -> str:
        """The message with each setting said as `words` says it (its own name when missing)."""
        text = self.args[0] if self.args else ""
        for name in self.settings:
            text = text.replace("{" + name + "}", words.get(name, name))
        return text

    def reworded(self, words: Mapping[str, str]) -> BulkphoneError:
        """The same error, its settings said in `words` for good (a job run says its keys)."""
        error = type(self).__new__(type(self))  # not copy.copy: it calls __init__ with the message alone
        error.__dict__.update(self.__dict__)
        error.args = (self.in_words(words),)
        error.settings = ()
        if isinstance(error, GraphError):
            error.message = error.args[0]
        return error

    def __str__(self) -> str:
        return self.in_words({})


class InputError(BulkphoneError):
    """Input the user must fix; the message names the file, the problem and the fix."""


class JournalInUseError(InputError):
    """Another run (named in the message) is using the journal; two runs at once would write twice."""


class PreflightError(BulkphoneError):
    """Found before row 1: the token lacks a permission, or Graph masks the numbers it returns."""


class UnsafePlanError(BulkphoneError):
    """The plan updates or deletes more than the safety limits allow; nothing was written.

    `problems` says by how much, in words; `exceeded` names the SafetyLimits fields, which the
    message names as settings along with `force` (see BulkphoneError.in_words)."""

    def __init__(self, problems: list[str], exceeded: list[str]) -> None:
        self.problems = problems
        self.exceeded = exceeded
        limits = " or ".join("{" + name + "}" for name in exceeded)
        super().__init__(
            "refusing to apply: the plan " + "; and ".join(problems) + ". Nothing was written. "
            f"Fix: review the plan, then run again with {{force}} or a higher {limits}.",
            settings=("force", *exceeded),
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
