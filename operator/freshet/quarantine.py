"""A policy's quarantine/ folder, as people see it: what is held and why, and
putting a batch back.

The operator moves a refused batch to `<root>quarantine/<original key>` and writes
its reason next to it as `<original key>.reason.json` (freshet_contract.layout).
Releasing puts the batch back under its original key (copy, then delete), then
deletes the reason. Each step can be repeated, so releasing twice, or again after
a crash between two steps, ends in the same state. The operator then treats the
batch as pending again; the next run validates it again, so release it after
fixing the data or the policy, not instead of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from freshet_contract.layout import QUARANTINE_REASON_SUFFIX, StateLayout

from freshet.objectstore import ObjectStore


class NotQuarantined(LookupError):
    """Neither a quarantined copy nor a released batch exists under that key."""


@dataclass(frozen=True)
class Held:
    key: str
    """The batch's original key."""
    reason: dict[str, Any]
    """The reason document (`reason`, `message`, the failed checks with their figures)."""

    @property
    def summary(self) -> str:
        reason, message = self.reason.get("reason", "?"), self.reason.get("message", "")
        return f"{reason}: {message}" if message else str(reason)


@dataclass(frozen=True)
class Quarantine:
    store: ObjectStore
    layout: StateLayout

    def original_key(self, key: str) -> str:
        """Accept the original key or the quarantined one."""
        return key.removeprefix(self.layout.quarantine_prefix)

    def held(self) -> list[Held]:
        """Every batch in quarantine with its reason, sorted by key (one listing and
        one read per batch: the listing already says the batch is there)."""
        prefix = self.layout.quarantine_prefix
        keys = sorted(
            o.key.removeprefix(prefix)
            for o in self.store.list(prefix)
            if not o.key.endswith(QUARANTINE_REASON_SUFFIX)
        )
        return [self._held(key) for key in keys]

    def show(self, key: str) -> Held:
        original = self.original_key(key)
        if self.store.etag(self.layout.quarantine_key(original)) is None:
            raise NotQuarantined(f"{original!r} is not in {self.layout.quarantine_prefix}")
        return self._held(original)

    def _held(self, original: str) -> Held:
        reason = self.store.get_json(self.layout.quarantine_reason_key(original))
        return Held(original, reason if isinstance(reason, dict) else {"reason": "(no reason)"})

    def release(self, key: str) -> bool:
        """Put the batch back; True if this call moved it, False if it was already back."""
        original = self.original_key(key)
        held = self.layout.quarantine_key(original)
        moved = False
        if self.store.etag(held) is not None:
            self.store.move(held, original)
            moved = True
        elif self.store.etag(original) is None:
            raise NotQuarantined(
                f"{original!r} is neither in {self.layout.quarantine_prefix} nor back in place"
            )
        self.store.remove(self.layout.quarantine_reason_key(original))
        return moved
