"""Where freshet keeps a policy's state in its bucket (see contract/README.md).

Everything lives under one *state root* per policy, ``freshet/<namespace>/<name>/``,
so a policy's whole record can be listed, copied or deleted by prefix, and two
policies (even with the same name in different namespaces) never share a key.
Pure string building: no store access here.
"""

from __future__ import annotations

from dataclasses import dataclass

from freshet.spec import STATE_ROOT_PREFIX


@dataclass(frozen=True, slots=True)
class StateLayout:
    """Object keys of one policy's runs, models, ledger and quarantine."""

    root: str
    """``freshet/<namespace>/<name>/``, with the trailing slash."""

    @classmethod
    def for_policy(cls, namespace: str, name: str) -> StateLayout:
        return cls(root=f"{STATE_ROOT_PREFIX}{namespace}/{name}/")

    def run_prefix(self, run_id: str) -> str:
        return f"{self.root}runs/{run_id}/"

    def run_spec_key(self, run_id: str) -> str:
        """The run intent, written before the run's Job is created."""
        return f"{self.run_prefix(run_id)}spec.json"

    def run_result_key(self, run_id: str) -> str:
        """Written by the trainer as its last step."""
        return f"{self.run_prefix(run_id)}result.json"

    def model_prefix(self, version: str) -> str:
        return f"{self.root}models/{version}/"

    @property
    def ledger_key(self) -> str:
        """The operator's durable record of consumed batches, models and runs."""
        return f"{self.root}ledger.json"

    def quarantine_key(self, batch_key: str) -> str:
        """Where a refused batch is moved, keeping its original key for release."""
        return f"{self.root}quarantine/{batch_key}"

    def quarantine_reason_key(self, batch_key: str) -> str:
        return f"{self.quarantine_key(batch_key)}.reason.json"
