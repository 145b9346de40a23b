"""The operator's job in the run contract: building a RunSpec from a policy.

The contract itself (the RunSpec and RunResult models, the bucket layout, the
Job's environment) is the ``freshet_contract`` package, shared with the
trainer; ``contract/README.md`` describes it. What lives here is the mapping
from the typed policy (``freshet.spec.PolicySpec``, whose defaults are the
CRD's) to a run spec. It sends every setting the policy has, and nothing for a
setting the policy leaves unset (``None``): the contract's defaults are the
trainer's for those, so they are not restated here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal

from freshet_contract.layout import StateLayout
from freshet_contract.preprocess import PreparedData, input_hash
from freshet_contract.run import (
    BatchRef,
    Evaluation,
    LabelFile,
    ModelRef,
    PolicyRef,
    Refusal,
    RunColumn,
    RunData,
    RunDrift,
    RunEstimator,
    RunLabelContradiction,
    RunLabels,
    RunOutput,
    RunSpec,
    RunTraining,
    RunValidation,
    StoreLocation,
)
from freshet_contract.scoring import ScoringInput, ScoringSpec, output_key

from freshet.batches import Batch
from freshet.ledger import ModelRef as ModelRefLedger
from freshet.ledger import ScoringIntent
from freshet.spec import DriftAction, LabelsSpec, PolicySpec, ValidationSpec


def run_labels_from_policy(
    labels: LabelsSpec,
    files: list[LabelFile],
    *,
    watermark_floor: datetime | None,
    previous_cutoff: datetime | None,
) -> RunLabels:
    """``spec.data.labels`` with the run's label files and the ledger's event-time marks."""
    return RunLabels(
        id_column=labels.id_column,
        event_time_column=labels.event_time_column,
        delay_seconds=labels.delay_seconds,
        negative_value=labels.negative_value,
        delayed_feedback=labels.delayed_feedback,
        watermark_floor=watermark_floor,
        previous_cutoff=previous_cutoff,
        files=files,
    )


def _fraction(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def run_validation_from_policy(rules: ValidationSpec, drift_action: DriftAction) -> RunValidation:
    """Every knob of ``spec.validation``, as the trainer reads it, with the
    policy's effective drift action (which depends on its mode)."""
    drift = rules.drift
    return RunValidation(
        schema_mode=rules.schema_mode,
        columns=[RunColumn(name=c.name, type=c.type, nullable=c.nullable) for c in rules.columns],
        max_null_fraction=_fraction(rules.max_null_fraction),
        reference_tolerance=float(rules.reference_tolerance),
        allow_extra_columns=rules.allow_extra_columns,
        max_duplicate_fraction=_fraction(rules.max_duplicate_fraction),
        max_conflicting_label_fraction=_fraction(rules.max_conflicting_label_fraction),
        label_values=rules.label_values,
        max_label_rate_shift=float(rules.max_label_rate_shift),
        max_out_of_range_fraction=float(rules.max_out_of_range_fraction),
        drift=RunDrift(
            method=drift.method,
            action=drift_action,
            threshold=_fraction(drift.threshold),
            p_value=float(drift.p_value),
            correction=drift.correction,
        ),
        label_contradiction=RunLabelContradiction(
            action=rules.label_contradiction.action,
            margin=float(rules.label_contradiction.margin),
        ),
        max_batch_bytes=rules.max_batch_size,
        max_columns=rules.max_columns,
    )


def build_run_spec(
    *,
    policy: PolicyRef,
    spec: PolicySpec,
    bucket: str,
    run_id: str,
    version: str,
    window: Sequence[Batch],
    new_batches: Collection[Batch],
    baseline: ModelRef | None,
    previous: ModelRef | None = None,
    labels: RunLabels | None = None,
    reference_from: str | None = None,
    released: Collection[str] = (),
    new_data_required: bool = False,
) -> RunSpec:
    """The run intent for training ``window`` (from ``decisions.runs.select_window``).

    ``new_batches`` are the batches the trigger decided on; only those still in
    the window are listed as new (a window smaller than a burst drops the
    oldest new batches, which is what a sliding window asks for). Write it with
    ``freshet_contract.to_document``.
    """
    layout = StateLayout.for_policy(policy.namespace, policy.name)
    new_keys = {batch.key for batch in new_batches}
    training = spec.training
    return RunSpec(
        run_id=run_id,
        policy=policy,
        store=StoreLocation(bucket=bucket, root=layout.root),
        data=RunData(
            format=spec.data.format,
            label=spec.data.label,
            batches=[BatchRef(key=b.key, etag=b.etag, size=b.size) for b in window],
            new_batches=[b.key for b in window if b.key in new_keys],
            labels=labels,
            exclude=list(spec.data.exclude),
            max_batches=spec.data.window.max_batches if spec.data.window else None,
            selection=spec.window_selection,
            reference_from=reference_from,
            released=sorted(key for key in released if any(b.key == key for b in window)),
            new_data_required=new_data_required,
        ),
        training=RunTraining(
            estimator=RunEstimator(
                class_name=training.estimator.class_.value, params=training.estimator.params
            ),
            seed=training.seed,
            warm_start=training.warm_start,
            max_ensemble_size=training.max_ensemble_size,
        ),
        evaluation=Evaluation(
            metric=spec.gate.metric, holdout_fraction=float(training.holdout_fraction)
        ),
        validation=run_validation_from_policy(spec.validation, spec.drift_action),
        baseline=baseline,
        previous=previous,
        output=RunOutput(
            version=version,
            model_prefix=layout.model_prefix(version),
            result_key=layout.run_result_key(run_id),
        ),
    )


def with_prepared(run_spec: RunSpec, manifest: PreparedData) -> RunSpec | str:
    """The run spec with what the preprocessing run made of each batch: its prepared
    object, or its refusal. A string says why the manifest cannot be the one for this
    run (then the run fails rather than train on something else). Applying it again
    to its own output gives the same spec, so a crash after writing it is harmless."""
    if manifest.run_id != run_spec.run_id:
        return f"the prepared data is for run {manifest.run_id}, not {run_spec.run_id}"
    prepared = {(b.key, b.etag): b for b in manifest.batches}
    refused = {(q.key, q.etag): q for q in manifest.refused}
    if manifest.input_hash != input_hash(prepared):
        return "the prepared data's inputHash does not match the batches it lists"
    batches = []
    for ref in run_spec.data.batches:
        identity = (ref.key, ref.etag)
        if identity in prepared:
            batches.append(
                ref.model_copy(update={"prepared": prepared[identity].prepared, "refused": None})
            )
        elif identity in refused:
            q = refused[identity]
            refusal = Refusal(reason=q.reason, message=q.message, checks=q.checks)
            batches.append(ref.model_copy(update={"prepared": None, "refused": refusal}))
        else:
            return f"the preprocessing run says nothing of batch {ref.key} ({ref.etag})"
    data = run_spec.data.model_copy(update={"batches": batches})
    return run_spec.model_copy(update={"data": data})


def build_scoring_spec(
    *,
    policy: PolicyRef,
    spec: PolicySpec,
    bucket: str,
    intent: ScoringIntent,
    model: ModelRefLedger,
) -> ScoringSpec:
    """What the scoring run's pods do (freshet_contract.scoring), from its intent."""
    scoring = spec.scoring
    assert scoring is not None
    layout = StateLayout.for_policy(policy.namespace, policy.name)
    return ScoringSpec(
        run_id=intent.run_id,
        policy=policy,
        store=StoreLocation(bucket=bucket, root=layout.root),
        model=ModelRef(version=model.version, model_key=model.model_key, sha256=model.sha256),
        format=spec.data.format,
        id_columns=scoring.id_columns,
        passthrough_columns=scoring.passthrough_columns,
        inputs=[
            ScoringInput(
                key=b.key,
                etag=b.etag,
                size=b.size,
                output_key=output_key(scoring.output_prefix, model.version, scoring.prefix, b.key),
            )
            for b in intent.inputs
        ],
        shards=min(scoring.shards, max(1, len(intent.inputs))),
        max_batch_bytes=spec.validation.max_batch_size,
        max_columns=spec.validation.max_columns,
    )
