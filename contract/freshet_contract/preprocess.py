"""The preprocessing step between raw batches and training (``spec.preprocess``).

A run with a preprocessing step has two Jobs with one run id: ``<runId>-prep``
then ``<runId>``. The prep Job's pod runs three containers in order:

1. ``freshet-preprocess-inputs`` (the trainer image): downloads the run's batches
   pinned by ETag and validates them as files (present, unchanged, within the size
   limit, readable in ``data.format``, within the column limit). A refused batch is
   not given to the step; it is quarantined with its reason when the run ends.
   The accepted ones are written to ``$FRESHET_INPUT_DIR`` with ``inputs.json``
   (:class:`PreprocessInputs`) next to them.
2. **the user's step** (``spec.preprocess.image``, ``command``, ``args``): reads
   ``$FRESHET_INPUTS``, and for every input writes one prepared file at the same
   relative path under ``$FRESHET_OUTPUT_DIR``, in ``$FRESHET_DATA_FORMAT``, with
   the label column ``$FRESHET_LABEL`` kept. It gets no store credentials and no
   API token: it sees files only. A non-zero exit fails the run.
3. ``freshet-preprocess-publish`` (the trainer image): checks that every output
   exists and parses, uploads each to ``<root>runs/<runId>/prepared/<batch key>``
   and writes :class:`PreparedData` (``manifest.json``) **last**, naming each
   prepared object's ETag, its rows and columns, and the hash of the inputs.

The operator then records the phase in the run intent, rewrites the run spec
with each batch's ``prepared`` object (or ``refused``), and starts the training
Job, which validates and trains on the prepared rows: the policy's schema and
checks apply to what the model sees. A crash anywhere resumes: the prep Job is
created only while the intent says the run is preprocessing, and never twice
(its name is fixed); a manifest present means the step completed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Annotated, Final, Literal

from pydantic import Field

from freshet_contract.document import Document
from freshet_contract.result import QuarantinedBatch
from freshet_contract.run import PreparedRef
from freshet_contract.vocabulary import DataFormat, Lax, NonEmpty

API_VERSION: Final = "freshet.dev/preprocess/v1"
WORK_DIR: Final = "/freshet"
"""An emptyDir shared by the three containers."""
INPUT_DIR: Final = f"{WORK_DIR}/input"
OUTPUT_DIR: Final = f"{WORK_DIR}/output"
INPUTS_FILE: Final = "inputs.json"
PREP_JOB_SUFFIX: Final = "-prep"
"""The prep Job is named ``<runId>-prep`` (a run id is at most 51 characters)."""


class StepInput(Document):
    key: NonEmpty
    """The batch's object key (its identity)."""
    etag: NonEmpty
    path: NonEmpty
    """Relative to $FRESHET_INPUT_DIR; the output goes to the same path under
    $FRESHET_OUTPUT_DIR. Not the key: keys may hold anything, paths are safe."""
    rows: Annotated[int, Field(ge=0)]
    columns: list[str]


class PreprocessInputs(Document):
    """``inputs.json``: what the user's step is given."""

    api_version: Literal["freshet.dev/preprocess/v1"] = "freshet.dev/preprocess/v1"
    kind: Literal["PreprocessInputs"] = "PreprocessInputs"
    run_id: NonEmpty
    format: Lax[DataFormat]
    label: NonEmpty
    inputs: list[StepInput]


class PreparedBatch(Document):
    key: NonEmpty
    etag: NonEmpty
    """The raw batch's identity."""
    prepared: PreparedRef
    rows: Annotated[int, Field(ge=0)]
    columns: list[str]


class PreparedData(Document):
    """``<root>runs/<runId>/prepared/manifest.json``, written last."""

    api_version: Literal["freshet.dev/preprocess/v1"] = "freshet.dev/preprocess/v1"
    kind: Literal["PreparedData"] = "PreparedData"
    run_id: NonEmpty
    input_hash: NonEmpty
    """:func:`input_hash` of the accepted inputs: the manifest belongs to exactly them."""
    batches: list[PreparedBatch]
    refused: list[QuarantinedBatch] = Field(default_factory=list)


def input_hash(inputs: Iterable[tuple[str, str]]) -> str:
    """sha256 over the sorted ``key:etag`` lines of the step's inputs."""
    lines = sorted(f"{key}:{etag}" for key, etag in inputs)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def prep_job_name(run_id: str) -> str:
    return f"{run_id}{PREP_JOB_SUFFIX}"
