"""Where freshet keeps a policy's state in its bucket (``contract/README.md``).

Everything lives under one *state root* per policy, ``freshet/<namespace>/<name>/``,
so a policy's whole record can be listed, copied or deleted by prefix, and two
policies (even with the same name in different namespaces) never share a key.
The operator writes run specs, the ledger and quarantine; the trainer writes
results and models and releases quarantined batches (``kubectl freshet quarantine``):
both compute the same keys from here. Pure string building: no store access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

STATE_ROOT_PREFIX: Final = "freshet/"
"""Key prefix under which freshet keeps its own state; data prefixes must avoid it."""

MODEL_FILE: Final = "model.joblib"
MODEL_CHECKSUM_FILE: Final = "model.sha256"
"""The hex sha256 of the model file, with a newline."""
MANIFEST_FILE: Final = "manifest.json"
QUARANTINE_REASON_SUFFIX: Final = ".reason.json"
"""Appended to a quarantined batch's key for its reason document."""


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

    def prepared_prefix(self, run_id: str) -> str:
        """The preprocessing step's output (``spec.preprocess``), one object per batch."""
        return f"{self.run_prefix(run_id)}prepared/"

    def prepared_manifest_key(self, run_id: str) -> str:
        """Written last by the preprocessing run: its presence means it completed."""
        return f"{self.prepared_prefix(run_id)}{MANIFEST_FILE}"

    def scoring_prefix(self, run_id: str) -> str:
        """A batch scoring run's spec and shard reports (freshet_contract.scoring)."""
        return f"{self.root}scoring/{run_id}/"

    def scoring_spec_key(self, run_id: str) -> str:
        return f"{self.scoring_prefix(run_id)}spec.json"

    def shard_report_key(self, run_id: str, index: int) -> str:
        return f"{self.scoring_prefix(run_id)}shard-{index}.json"

    def model_prefix(self, version: str) -> str:
        return f"{self.root}models/{version}/"

    @property
    def ledger_key(self) -> str:
        """The operator's durable record of consumed batches, models and runs."""
        return f"{self.root}ledger.json"

    @property
    def quarantine_prefix(self) -> str:
        return f"{self.root}quarantine/"

    def quarantine_key(self, batch_key: str) -> str:
        """Where a refused batch is moved, keeping its original key for release."""
        return f"{self.quarantine_prefix}{batch_key}"

    def quarantine_reason_key(self, batch_key: str) -> str:
        return f"{self.quarantine_key(batch_key)}{QUARANTINE_REASON_SUFFIX}"


def model_key(model_prefix: str) -> str:
    """The artifact under a model's prefix (``RunOutput.model_prefix``)."""
    return f"{model_prefix}{MODEL_FILE}"


def model_checksum_key(model_prefix: str) -> str:
    return f"{model_prefix}{MODEL_CHECKSUM_FILE}"


def manifest_key(model_prefix: str) -> str:
    """What the model was made from (``freshet-reproduce`` input)."""
    return f"{model_prefix}{MANIFEST_FILE}"
