"""Environment variable names the operator sets on pods and the trainer image reads.

A name misspelt on one side is a pod that cannot start (or, for an optional
variable, a setting silently lost), so both sides take the names from here.
"""

from __future__ import annotations

from typing import Final

# The training Job (`freshet-train`) and `freshet-reproduce` read the same store
# variables.
RUN_SPEC_KEY: Final = "FRESHET_RUN_SPEC_KEY"
"""Object key of the run's spec.json."""
S3_ENDPOINT: Final = "FRESHET_S3_ENDPOINT"
"""``host:port`` or URL of the S3 endpoint."""
S3_SECURE: Final = "FRESHET_S3_SECURE"
"""``true``/``false``."""
S3_BUCKET: Final = "FRESHET_S3_BUCKET"
S3_REGION: Final = "FRESHET_S3_REGION"
"""Optional."""
ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
"""From the store Secret (``secretKeyRef``), never inline."""
SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
TERMINATION_LOG: Final = "FRESHET_TERMINATION_LOG"
"""Optional: where the one-line summary goes instead of /dev/termination-log."""

# The serving container (`freshet-serve`): the model the operator promoted.
MODEL_VERSION: Final = "FRESHET_MODEL_VERSION"
MODEL_KEY: Final = "FRESHET_MODEL_KEY"
MODEL_SHA256: Final = "FRESHET_MODEL_SHA256"
SEGMENT_MODELS: Final = "FRESHET_SEGMENT_MODELS"
"""JSON {segment: {"version", "key", "sha256"}}: the models of a TrainingPolicySet's
segments, next to the global model above (their fallback)."""

# The preprocessing step (spec.preprocess): the user's container sees files, not the
# store (freshet_contract.preprocess).
INPUT_DIR: Final = "FRESHET_INPUT_DIR"
"""Directory holding the accepted raw batches and `inputs.json`."""
OUTPUT_DIR: Final = "FRESHET_OUTPUT_DIR"
"""Directory the step writes one prepared file per input to, at the same relative path."""
INPUTS: Final = "FRESHET_INPUTS"
"""Path of `inputs.json` (PreprocessInputs)."""
DATA_FORMAT: Final = "FRESHET_DATA_FORMAT"
"""csv, jsonl or parquet: the format of the inputs, and of the outputs the step writes."""
LABEL: Final = "FRESHET_LABEL"
"""The label column, which the outputs must keep."""

# Batch scoring (spec.scoring): `freshet-score` in each pod of the Indexed Job.
SCORING_SPEC_KEY: Final = "FRESHET_SCORING_SPEC_KEY"
"""Object key of the scoring run's spec.json."""
COMPLETION_INDEX: Final = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes on an Indexed Job's pods: which shard this pod scores."""
