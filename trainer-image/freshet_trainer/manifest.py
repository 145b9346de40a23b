"""`manifest.json`: what a model was made from, enough to audit it and to retrain it.

The manifest is written next to the model by the run that made it. Besides the
human-readable summary (batches with ETags and row counts, features, classes,
estimator and effective parameters, seed, warm start, holdout, metrics, package
versions) it embeds the run spec itself under `runSpec`: `freshet-reproduce`
rebuilds the run from that spec and the batches that were actually trained on,
so the recipe cannot drift from the summary.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any, Final, Literal

from freshet_contract.result import (
    HoldoutSummary,
    LabelReport,
    QuarantinedBatch,
    ResultModel,
    RunMetrics,
    ValidationReport,
)
from freshet_contract.run import BatchRef, LabelFile, RunSpec
from freshet_contract.vocabulary import ContradictionAction, DriftAction, WindowSelection
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from sklearn.base import BaseEstimator

from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.warmstart import WarmStart

MANIFEST_API_VERSION: Final = "freshet.dev/manifest/v1"
RECORDED_PACKAGES = (
    "freshet-trainer",
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "joblib",
)


def build_manifest(
    spec: RunSpec,
    *,
    model: ResultModel,
    candidate: ModelArtifact,
    estimator: BaseEstimator,
    batches: Sequence[tuple[BatchRef, int]],
    quarantined: Sequence[QuarantinedBatch],
    validation: ValidationReport,
    metrics: RunMetrics,
    holdout: HoldoutSummary,
    warm_start: WarmStart,
    labels: LabelReport | None = None,
    label_files: Sequence[LabelFile] = (),
) -> dict[str, Any]:
    """The manifest document; `batches` are the accepted ones with their row counts.

    With late labels, `data.labelFiles` are the label files the model was
    labeled from (pinned like batches) and `data.labels` the run's watermark,
    cutoff and counts: with the run spec's floor and cutoffs, what
    `freshet-reproduce` needs to label the same rows the same way.
    """
    late = (
        {
            "labelFiles": [ref.model_dump(by_alias=True) for ref in label_files],
            "labels": labels.model_dump(by_alias=True, mode="json") if labels else None,
        }
        if spec.data.labels is not None
        else {}
    )
    return {
        "apiVersion": MANIFEST_API_VERSION,
        "kind": "ModelManifest",
        "runId": spec.run_id,
        "policy": spec.policy.model_dump(by_alias=True),
        "version": spec.output.version,
        "model": {"key": model.model_key, "sha256": model.sha256},
        "data": {
            "format": spec.data.format,
            "label": spec.data.label,
            "batches": [{**ref.model_dump(by_alias=True), "rows": rows} for ref, rows in batches],
            "quarantined": [q.model_dump(by_alias=True, mode="json") for q in quarantined],
            "validation": validation.model_dump(by_alias=True, mode="json"),
            **late,
        },
        "features": {
            "numeric": list(candidate.numeric),
            "categorical": list(candidate.categorical),
        },
        "classes": candidate.classes,
        "estimator": {
            "class": spec.training.estimator.class_name,
            "params": spec.training.estimator.params,
            "effectiveParams": _json_safe(estimator.get_params(deep=False)),
        },
        "seed": spec.training.seed,
        "warmStart": warm_start.to_manifest(),
        "holdout": {
            "fraction": spec.evaluation.holdout_fraction,
            "modelBound": candidate.holdout_bound,
            **holdout.model_dump(by_alias=True),
        },
        "baseline": spec.baseline.model_dump(by_alias=True) if spec.baseline else None,
        "metrics": metrics.model_dump(by_alias=True),
        "packages": package_versions(),
        "runSpec": spec.model_dump(by_alias=True, mode="json"),
    }


def _json_safe(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value if value is None or isinstance(value, str | int | float | bool) else repr(value)
        for name, value in sorted(params.items())
    }


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages that decide what a fit produces."""
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


class _Lenient(BaseModel):
    """Reads only what reproduction needs; the rest of the manifest is for humans."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )


class ManifestModel(_Lenient):
    key: str
    sha256: str


class ManifestBatch(_Lenient):
    key: str
    etag: str
    size: int


class ManifestLabelFile(_Lenient):
    batch: str
    key: str
    etag: str
    size: int


class ManifestData(_Lenient):
    batches: list[ManifestBatch]
    label_files: list[ManifestLabelFile] | None = None
    """Late labels: the label files used (None in manifests without late labels)."""


class Manifest(_Lenient):
    """The parts of `manifest.json` that `freshet-reproduce` uses."""

    api_version: Literal["freshet.dev/manifest/v1"]
    version: str
    model: ManifestModel
    data: ManifestData
    packages: dict[str, str]
    run_spec: RunSpec

    def recipe(self, output_prefix: str) -> RunSpec:
        """The original run spec, on exactly the batches trained on, publishing elsewhere.

        Batches the original run quarantined are left out: they did not shape
        the model, and since then they may have been moved or released. So
        are label files it refused, or that belonged to a refused batch; the
        watermark floor and cutoffs are the original spec's, and the same
        batches give the same watermark, so the same rows mature.
        """
        batches = self.data.batches
        trained = {batch.key for batch in batches}
        spec = self.run_spec
        update: dict[str, Any] = {
            "batches": [BatchRef(key=b.key, etag=b.etag, size=b.size) for b in batches],
            "new_batches": [key for key in spec.data.new_batches if key in trained],
            # The batches are the window the original run chose, and it accepted them:
            # no second choice, and no change of distribution refuses them again.
            "selection": WindowSelection.FULL,
            "max_batches": None,
            "new_data_required": False,
        }
        if spec.data.labels is not None and self.data.label_files is not None:
            files = [
                LabelFile(batch=f.batch, key=f.key, etag=f.etag, size=f.size)
                for f in self.data.label_files
            ]
            update["labels"] = spec.data.labels.model_copy(update={"files": files})
        data = spec.data.model_copy(update=update)
        validation = spec.validation.model_copy(
            update={
                "drift": spec.validation.drift.model_copy(update={"action": DriftAction.IGNORE}),
                "label_contradiction": spec.validation.label_contradiction.model_copy(
                    update={"action": ContradictionAction.ALLOW}
                ),
            }
        )
        output = spec.output.model_copy(
            update={"model_prefix": output_prefix, "result_key": f"{output_prefix}result.json"}
        )
        return spec.model_copy(update={"data": data, "validation": validation, "output": output})
