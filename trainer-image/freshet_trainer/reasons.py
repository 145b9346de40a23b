"""Every CamelCase reason the trainer writes, in one place.

Reasons are part of the contract: the operator branches on them (a data
problem is final for those batches, a refused estimator is a policy error), so
they are enumerated here rather than spelled out at each use.
"""

from __future__ import annotations

from enum import StrEnum


class BatchReason(StrEnum):
    """Why a batch (or a label file) was refused (listed in the result's `quarantined`)."""

    # Reading the object
    NOT_FOUND = "BatchNotFound"
    ETAG_MISMATCH = "ETagMismatch"
    TOO_LARGE = "BatchTooLarge"
    UNPARSABLE = "Unparsable"
    TOO_MANY_COLUMNS = "TooManyColumns"
    INVALID_COLUMN_NAMES = "InvalidColumnNames"
    # Shape and schema
    EMPTY = "EmptyBatch"
    LABEL_MISSING = "LabelMissing"
    NO_FEATURES = "NoFeatures"
    MISSING_COLUMNS = "MissingColumns"
    UNEXPECTED_COLUMNS = "UnexpectedColumns"
    TYPE_MISMATCH = "TypeMismatch"
    # Values
    TOO_MANY_NULLS = "NullFractionExceeded"
    NON_FINITE = "NonFiniteValues"
    OUT_OF_RANGE = "OutOfRangeValues"
    DUPLICATE_ROWS = "DuplicateRows"
    # Labels
    LABEL_ALL_NULL = "LabelAllNull"
    UNKNOWN_LABELS = "UnknownLabels"
    CONFLICTING_LABELS = "ConflictingLabels"
    LABEL_RATE_SHIFT = "LabelRateShift"
    LABELS_CONTRADICT_MODEL = "LabelsContradictModel"
    # Distribution against the reference window
    FEATURE_DRIFT = "FeatureDrift"
    # Late labels (data.labels): feature batches and label files
    ID_COLUMN_MISSING = "IdColumnMissing"
    EVENT_TIME_MISSING = "EventTimeMissing"
    INVALID_EVENT_TIMES = "InvalidEventTimes"
    NULL_IDS = "NullIds"
    DUPLICATE_IDS = "DuplicateIds"
    NULL_LABELS = "NullLabels"
    ID_LABEL_CONFLICT = "IdLabelConflict"


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
    WARM_START_UNSUPPORTED = "WarmStartUnsupported"
    NO_NEW_DATA = "NoNewData"
    """Skipped, not failed: every new batch was refused, nothing new to learn."""


class RunFailed(Exception):
    """A diagnosed problem that ends the run with a `Failed` result carrying `reason`."""

    def __init__(self, reason: RunReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
