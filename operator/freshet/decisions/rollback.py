"""Which version should serve? Rollback targets and user pins, decided purely.

A rollback is a pointer switch, never a retrain: the Deployment goes back to
the newest version that was promoted before the failing one and has not itself
been rejected since. A version that was rolled back is rejected for good: it is
never promoted again, and only a run on new data can produce a successor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    version: str | None
    reason: str
    message: str


def rollback_target(
    serving: str, previous: Sequence[str], rejected: frozenset[str] | set[str]
) -> Target:
    """The version to go back to from ``serving``; ``previous`` is newest first."""
    for version in previous:
        if version != serving and version not in rejected:
            return Target(version, "RolledBack", f"{serving} -> {version}")
    return Target(
        None,
        "NoRollbackTarget",
        f"{serving} is failing but no earlier good version is left to roll back to",
    )


def pinned_target(pinned: str, known: Sequence[str], rejected: frozenset[str] | set[str]) -> Target:
    """Honour a user's pin (spec.serving.pinnedVersion) when it names a usable model.

    A pin is an explicit human decision, so it may name a version the analysis
    rejected; it may not name a version freshet never produced.
    """
    if pinned not in known:
        return Target(
            None,
            "PinnedVersionUnknown",
            f"spec.serving.pinnedVersion {pinned!r} is not a model of this policy "
            f"(known: {', '.join(known) or 'none'})",
        )
    note = " (rejected earlier by monitoring)" if pinned in rejected else ""
    return Target(pinned, "Pinned", f"pinned to {pinned} by spec.serving.pinnedVersion{note}")
