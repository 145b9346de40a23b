"""Batch scoring (``spec.scoring``): the serving model over files, as a Job.

Files that land under ``scoring.prefix`` are scored with the model the policy's
Deployment serves (its pin, else the serving version). The operator writes a
:class:`ScoringSpec` to ``<root>scoring/<runId>/spec.json`` first (the intent,
recorded in the ledger), then creates an Indexed Job named after the run id
(``<policy>-s<hash>``, over the version and the inputs' ETags, so the same work is
never two Jobs). Pod ``i`` of ``shards`` scores the inputs whose position modulo
``shards`` is ``i``: for each it checks the file (present, unchanged, size,
readable, column limit) and its columns (every feature of the model, every id
and passthrough column), predicts with the same function as the model server,
and writes ``<outputPrefix><version>/<key relative to prefix>`` in the input's
format: the id and passthrough columns, ``prediction``, and for classifiers one
``probability_<class>`` column per class. Each pod then writes a
:class:`ShardReport` to ``<root>scoring/<runId>/shard-<i>.json``.

When the Job has completed, the operator writes :class:`ScoringManifest` to
``<outputPrefix><version>/_manifests/<runId>.json`` **last** (model version and
checksum, each input's ETag and rows, each output's key and ETag), quarantines
the refused inputs with their reasons, and records every (input, ETag) as scored
for that version, so scoring the same input with the same version again never
happens, and a new serving version scores everything again into its own folder.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field

from freshet_contract.document import Document
from freshet_contract.result import QuarantinedBatch
from freshet_contract.run import BatchRef, ModelRef, PolicyRef, StoreLocation
from freshet_contract.vocabulary import DataFormat, Lax, NonEmpty

API_VERSION: Final = "freshet.dev/score/v1"
PREDICTION_COLUMN: Final = "prediction"
PROBABILITY_PREFIX: Final = "probability_"
MANIFESTS_FOLDER: Final = "_manifests/"


class ScoringInput(BatchRef):
    output_key: NonEmpty
    """Where the predictions for this input go."""


class ScoringSpec(Document):
    api_version: Literal["freshet.dev/score/v1"] = "freshet.dev/score/v1"
    kind: Literal["ScoringSpec"] = "ScoringSpec"
    run_id: NonEmpty
    policy: PolicyRef
    store: StoreLocation
    model: ModelRef
    format: Lax[DataFormat]
    id_columns: list[NonEmpty] = Field(default_factory=list)
    passthrough_columns: list[NonEmpty] = Field(default_factory=list)
    inputs: list[ScoringInput]
    shards: Annotated[int, Field(ge=1)] = 1
    max_batch_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024
    max_columns: Annotated[int, Field(ge=1)] = 1000


class ScoredInput(Document):
    key: NonEmpty
    etag: NonEmpty
    rows: Annotated[int, Field(ge=0)]
    output_key: NonEmpty
    output_etag: NonEmpty


class ShardReport(Document):
    api_version: Literal["freshet.dev/score/v1"] = "freshet.dev/score/v1"
    kind: Literal["ShardReport"] = "ShardReport"
    run_id: NonEmpty
    index: Annotated[int, Field(ge=0)]
    scored: list[ScoredInput] = Field(default_factory=list)
    refused: list[QuarantinedBatch] = Field(default_factory=list)


class ScoringManifest(Document):
    api_version: Literal["freshet.dev/score/v1"] = "freshet.dev/score/v1"
    kind: Literal["ScoringManifest"] = "ScoringManifest"
    run_id: NonEmpty
    model: ModelRef
    scored: list[ScoredInput]
    refused: list[QuarantinedBatch] = Field(default_factory=list)


def output_key(output_prefix: str, version: str, prefix: str, key: str) -> str:
    return f"{output_prefix}{version}/{key.removeprefix(prefix)}"


def manifest_key(output_prefix: str, version: str, run_id: str) -> str:
    return f"{output_prefix}{version}/{MANIFESTS_FOLDER}{run_id}.json"
