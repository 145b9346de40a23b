"""`freshet-quarantine`: list a policy's quarantined batches, and release one.

The operator moves a refused batch to `<root>quarantine/<original key>` and
writes its reason next to it as `<original key>.reason.json` (the layout of
freshet_contract/layout.py, with `<root>` = `freshet/<namespace>/<policy>/`).
Releasing puts the batch back under its original key, then deletes the
quarantined copy, then the reason. Each step can be repeated, so releasing
twice, or again after a crash between two steps, ends in the same state:
the batch under its original key and nothing left in quarantine/.

The operator treats a batch it recorded as quarantined as pending again once
the batch is back under the policy's prefix and gone from quarantine/; the
next run validates it again, so release it after fixing the data or the
policy, not instead of it.

Store access comes from the same environment as the trainer's
(FRESHET_S3_ENDPOINT, FRESHET_S3_BUCKET, AWS_ACCESS_KEY_ID, ...).

    freshet-quarantine --policy ml/spam-filter list
    freshet-quarantine --policy ml/spam-filter release spam/incoming/2026-11-27T07-00.csv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from freshet_contract.layout import QUARANTINE_REASON_SUFFIX, StateLayout
from minio.error import S3Error

from freshet_trainer.store import ObjectStore, StoreConfig, StoreConfigError

REASON_SUFFIX: Final = QUARANTINE_REASON_SUFFIX


class NotQuarantined(LookupError):
    """Neither a quarantined copy nor a released batch exists under that key."""


@dataclass(frozen=True)
class Quarantine:
    """One policy's quarantine/ folder."""

    store: ObjectStore
    root: str

    @classmethod
    def for_policy(cls, store: ObjectStore, namespace: str, name: str) -> Quarantine:
        return cls(store, StateLayout.for_policy(namespace, name).root)

    @property
    def prefix(self) -> str:
        return StateLayout(self.root).quarantine_prefix

    def original_key(self, key: str) -> str:
        """Accept the original key or the quarantined one."""
        return key.removeprefix(self.prefix)

    def held(self) -> list[tuple[str, str]]:
        """(original key, one-line reason) of every batch in quarantine, sorted by key."""
        entries = []
        for key in sorted(self.store.list_keys(self.prefix)):
            if key.endswith(REASON_SUFFIX):
                continue
            entries.append((key.removeprefix(self.prefix), self._reason(key)))
        return entries

    def _reason(self, held_key: str) -> str:
        try:
            document = json.loads(self.store.get_bytes(held_key + REASON_SUFFIX))
        except (LookupError, ValueError):
            return "(no reason document)"
        reason, message = document.get("reason", "?"), document.get("message", "")
        return f"{reason}: {message}" if message else str(reason)

    def release(self, key: str) -> bool:
        """Put the batch back; True if this call moved it, False if it was already back."""
        original = self.original_key(key)
        held = self.prefix + original
        moved = False
        if self.store.exists(held):
            self.store.copy(held, original)
            self.store.remove(held)
            moved = True
        elif not self.store.exists(original):
            raise NotQuarantined(f"{original!r} is neither in {self.prefix} nor back in place")
        self.store.remove(held + REASON_SUFFIX)
        return moved


def main(argv: Sequence[str] | None = None) -> int:
    """Console script: 0 on success, 1 on a store or usage problem, 2 if nothing to release."""
    parser = argparse.ArgumentParser(
        prog="freshet-quarantine", description="List or release quarantined batches."
    )
    parser.add_argument("--policy", required=True, metavar="NAMESPACE/NAME")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="quarantined batches with their reasons")
    release = commands.add_parser("release", help="put a batch back under its original key")
    release.add_argument("key", help="the batch's original key (or its quarantine/ key)")
    args = parser.parse_args(argv)
    namespace, _, name = args.policy.partition("/")
    if not namespace or not name or "/" in name:
        parser.error("--policy must be NAMESPACE/NAME")
    try:
        quarantine = Quarantine.for_policy(
            ObjectStore(StoreConfig.from_env(os.environ)), namespace, name
        )
        if args.command == "list":
            for key, reason in quarantine.held():
                print(f"{key}\t{reason}")
            return 0
        moved = quarantine.release(args.key)
    except NotQuarantined as error:
        print(f"freshet-quarantine: {error}", file=sys.stderr)
        return 2
    except (StoreConfigError, S3Error) as error:
        print(f"freshet-quarantine: {error}", file=sys.stderr)
        return 1
    original = quarantine.original_key(args.key)
    print(f"released {original}" if moved else f"{original} was already released")
    return 0


if __name__ == "__main__":
    sys.exit(main())
