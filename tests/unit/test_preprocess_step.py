"""A run with a preprocessing step (spec.preprocess): its prep Job, what its manifest
does to the run spec, and the step's rules from the intent to the training Job,
including the crash points between them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freshet import transitions
from freshet.batches import Batch
from freshet.decisions import step
from freshet.jobs import build_job, build_prep_job
from freshet.ledger import Ledger
from freshet.runspec import build_run_spec, with_prepared
from freshet.snapshot import JobView, Snapshot
from freshet.spec import PolicySpec
from freshet.store_config import StoreConfig
from freshet_contract.preprocess import PreparedBatch, PreparedData, input_hash
from freshet_contract.result import Check, QuarantinedBatch
from freshet_contract.run import PolicyRef, PreparedRef, RunSpec
from policies import a_snapshot, minimal_spec

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
A = Batch("in/a.csv", "ea", 10, NOW - timedelta(minutes=5))
B = Batch("in/b.csv", "eb", 10, NOW - timedelta(minutes=4))
STEP = {"image": "features:1", "command": ["python", "/prep.py"], "args": ["--fast"]}
STORE = StoreConfig("store", "s3.local:9000", "ml", False, None, "AKIA", "SECRET")


def spec(**changes: Any) -> PolicySpec:
    doc = minimal_spec("Dynamic")
    doc["trigger"] = {"onArrival": {"minBatches": 1, "quietSeconds": 1}}
    doc["preprocess"] = STEP
    doc.update(changes)
    return PolicySpec.model_validate(doc)


def run_spec() -> RunSpec:
    return build_run_spec(
        policy=PolicyRef(namespace="ml", name="spam", uid="uid-1", generation=1),
        spec=spec(),
        bucket="ml",
        run_id="spam-0123456789",
        version="v1",
        window=[A, B],
        new_batches=[A, B],
        baseline=None,
    )


def test_the_prep_job_runs_inputs_then_the_step_then_publish() -> None:
    job = build_prep_job(spec(), run_spec(), STORE)
    assert job["metadata"]["name"] == "spam-0123456789-prep"
    assert job["metadata"]["labels"]["freshet.dev/step"] == "preprocess"
    assert job["metadata"]["labels"]["freshet.dev/run-id"] == "spam-0123456789"
    pod = job["spec"]["template"]["spec"]
    inputs, user = pod["initContainers"]
    (publish,) = pod["containers"]
    assert inputs["command"] == ["freshet-preprocess-inputs"]
    assert (user["image"], user["command"], user["args"]) == (
        "features:1",
        ["python", "/prep.py"],
        ["--fast"],
    )
    assert publish["command"] == ["freshet-preprocess-publish"]
    assert inputs["image"] == publish["image"] == "freshet-trainer:dev"
    # The user's code sees files, never the store's credentials or the bucket.
    user_env = {e["name"]: e.get("value") for e in user["env"]}
    assert user_env == {
        "FRESHET_INPUT_DIR": "/freshet/input",
        "FRESHET_OUTPUT_DIR": "/freshet/output",
        "FRESHET_INPUTS": "/freshet/input/inputs.json",
        "FRESHET_DATA_FORMAT": "csv",
        "FRESHET_LABEL": "y",
    }
    for container in (inputs, publish):
        names = {e["name"] for e in container["env"]}
        assert {"AWS_ACCESS_KEY_ID", "FRESHET_RUN_SPEC_KEY", "FRESHET_INPUT_DIR"} <= names
        secret = next(e for e in container["env"] if e["name"] == "AWS_SECRET_ACCESS_KEY")
        assert "valueFrom" in secret  # never inline
    for container in (inputs, user, publish):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "work", "mountPath": "/freshet"} in container["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "work", "emptyDir": {}} in pod["volumes"]
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    # The training Job is what it was without a step: no step label, no work volume.
    training = build_job(spec(), run_spec(), STORE)
    assert "freshet.dev/step" not in training["metadata"]["labels"]
    assert "initContainers" not in training["spec"]["template"]["spec"]


def prepared(batches: list[Batch], refused: tuple[Batch, ...] = ()) -> PreparedData:
    check = Check(name="readable", code="Unparsable", passed=False, message="NUL byte")
    return PreparedData(
        run_id="spam-0123456789",
        input_hash=input_hash((b.key, b.etag) for b in batches),
        batches=[
            PreparedBatch(
                key=b.key,
                etag=b.etag,
                rows=5,
                columns=["x", "y"],
                prepared=PreparedRef(key=f"p/{b.key}", etag=f"p{b.etag}", size=9),
            )
            for b in batches
        ],
        refused=[
            QuarantinedBatch(key=b.key, etag=b.etag, reason="Unparsable", checks=[check])
            for b in refused
        ],
    )


def replace_run(manifest: PreparedData, run_id: str) -> PreparedData:
    return manifest.model_copy(update={"run_id": run_id})


def test_the_manifest_names_each_batchs_prepared_object_or_refusal() -> None:
    made = with_prepared(run_spec(), prepared([A], refused=(B,)))
    assert isinstance(made, RunSpec)
    a, b = made.data.batches
    assert (a.key, a.prepared and a.prepared.key, a.refused) == ("in/a.csv", "p/in/a.csv", None)
    assert b.prepared is None and b.refused is not None and b.refused.reason == "Unparsable"
    assert with_prepared(made, prepared([A], refused=(B,))) == made  # again: the same spec


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        (replace_run(prepared([A, B]), "other-run"), "is for run other-run"),
        (prepared([A]), "says nothing of batch in/b.csv"),
        (prepared([A, B]).model_copy(update={"input_hash": "0" * 64}), "inputHash"),
    ],
)  # fmt: skip
def test_a_manifest_for_other_inputs_is_refused(manifest: PreparedData, problem: str) -> None:
    made = with_prepared(run_spec(), manifest)
    assert isinstance(made, str) and problem in made


def snapshot(**changes: Any) -> Snapshot:
    snap: Snapshot = a_snapshot(NOW, spec(), batches=(A, B))
    return replace(snap, **changes)


def test_from_the_intent_through_the_prep_job_to_training() -> None:
    planned = step.plan(snapshot())
    assert isinstance(planned, step.Start)
    assert planned.intent.phase == "Preprocessing"
    book = transitions.started(Ledger(), planned.intent, NOW)
    manifest = prepared([A, B]).model_copy(update={"run_id": planned.intent.run_id})
    in_flight = snapshot(ledger=book, run_spec=planned.run_spec)

    # A crash after the intent, before the prep Job: replay the prep Job.
    assert step.track(in_flight) == step.Replay(planned.run_spec, preprocess=True)
    assert isinstance(step.track(replace(in_flight, run_spec=None)), step.Lost)
    running = step.track(replace(in_flight, prep_job=JobView(None, "")))
    assert isinstance(running, step.Running) and running.reason == "Preprocessing"
    failed = step.track(replace(in_flight, prep_job=JobView("failed", "container step exited 3")))
    assert isinstance(failed, step.PreprocessFailed) and "exited 3" in failed.message
    missing = step.track(
        replace(
            in_flight,
            prep_job=JobView("succeeded", ""),
            prepared_error="manifest.json was not written",
        )
    )
    assert isinstance(missing, step.PreprocessFailed) and "not written" in missing.message
    done = step.track(replace(in_flight, prep_job=JobView("succeeded", ""), prepared=manifest))
    assert isinstance(done, step.Prepared) and (done.batches, done.refused) == (2, 0)
    assert all(b.prepared is not None for b in done.run_spec.data.batches)

    # Recorded as training: the prep Job is never asked for again, even if it is gone;
    # a missing training Job is replayed from the rewritten spec.
    training = replace(in_flight, ledger=transitions.preprocessed(book), run_spec=done.run_spec)
    assert step.track(training) == step.Replay(done.run_spec)
    assert isinstance(step.track(replace(training, job=JobView(None, ""))), step.Running)


def test_a_run_without_a_step_starts_in_training() -> None:
    doc = minimal_spec("Dynamic")
    doc["trigger"] = {"onArrival": {"minBatches": 1, "quietSeconds": 1}}
    planned = step.plan(snapshot(spec=PolicySpec.model_validate(doc)))
    assert isinstance(planned, step.Start) and planned.intent.phase == "Training"


def test_the_step_is_part_of_what_the_model_is_made_from() -> None:
    changed = spec(preprocess={**STEP, "args": ["--slow"]})
    assert changed.training_hash() != spec().training_hash()
    resources = spec(preprocess={**STEP, "resources": {"limits": {"cpu": "2"}}})
    assert resources.training_hash() == spec().training_hash()
