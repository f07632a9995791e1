"""Refuse a plan that would change too much at once, unless the admin says --force.

Like octodns's TooMuchChange: the share of existing numbers a plan updates or deletes is
compared with a limit, but only when enough numbers exist for a share to mean something;
an absolute `max_changes` caps every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import UnsafePlanError
from ._model import Action
from ._planner import Plan

__all__ = ["DEFAULT_LIMITS", "SafetyLimits", "check_safety"]


@dataclass(frozen=True)
class SafetyLimits:
    max_update_share: float = 0.30
    max_delete_share: float = 0.10
    max_changes: int | None = None
    min_existing: int = 10  # below this many existing numbers the shares aren't checked


DEFAULT_LIMITS = SafetyLimits()  # the CLI's and job files' defaults come from here


def check_safety(plan: Plan, limits: SafetyLimits) -> None:
    """Raise UnsafePlanError naming the limit and by how much the plan exceeds it."""
    counts = plan.counts()
    existing = sum(1 for item in plan.items if item.current)
    writes = plan.write_count
    problems, exceeded = [], []
    if limits.max_changes is not None and writes > limits.max_changes:
        problems.append(f"makes {writes} changes, {writes - limits.max_changes} over the limit of {limits.max_changes}")
        exceeded.append("max_changes")
    if existing >= limits.min_existing:
        for action, limit, setting in (
            (Action.UPDATE, limits.max_update_share, "max_update_share"),
            (Action.DELETE, limits.max_delete_share, "max_delete_share"),
        ):
            share = counts[action.value] / existing
            if share > limit:
                problems.append(
                    f"{action.value}s {counts[action.value]} of {existing} existing numbers ({share:.0%}), "
                    f"above the {limit:.0%} limit on {action.value}s"
                )
                exceeded.append(setting)
    if problems:
        raise UnsafePlanError(problems, exceeded)
