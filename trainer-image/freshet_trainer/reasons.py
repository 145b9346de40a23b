"""Every CamelCase reason the trainer writes, in one place.

Reasons are part of the contract: the operator branches on them (a data
problem is final for those batches, a refused estimator is a policy error), so
they are enumerated here rather than spelled out at each use.
"""

from __future__ import annotations

from enum import StrEnum


class BatchReason(StrEnum):
    """Why a batch was refused (listed in the result's `quarantined`)."""

    NOT_FOUND = "BatchNotFound"
    ETAG_MISMATCH = "ETagMismatch"
    UNPARSABLE = "Unparsable"
    EMPTY = "EmptyBatch"
    LABEL_MISSING = "LabelMissing"
    NO_FEATURES = "NoFeatures"
    LABEL_ALL_NULL = "LabelAllNull"
    TOO_MANY_NULLS = "NullFractionExceeded"


class RunReason(StrEnum):
    """Why a run as a whole failed (the result's `reason` when status is Failed)."""

    ESTIMATOR_NOT_ALLOWED = "EstimatorNotAllowed"
    INVALID_ESTIMATOR_PARAMS = "InvalidEstimatorParams"
    BASELINE_NOT_FOUND = "BaselineNotFound"
    CHECKSUM_MISMATCH = "ChecksumMismatch"
    BASELINE_UNUSABLE = "BaselineUnusable"
    NO_TRAINING_DATA = "NoTrainingData"
    NOT_ENOUGH_ROWS = "NotEnoughRows"
    TRAINING_FAILED = "TrainingFailed"


class RunFailed(Exception):
    """A diagnosed problem that ends the run with a `Failed` result carrying `reason`."""

    def __init__(self, reason: RunReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
