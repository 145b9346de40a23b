"""Faults versus change: a fault refuses a batch, a change of distribution is handled
per drift.action, normal is learned from the data, labels that contradict the
serving model are held, and the window follows a lasting change."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from freshet_contract.run import BatchRef, RunEstimator, RunSpec, RunValidation
from freshet_trainer import contradiction, window
from freshet_trainer.batches import Batch, load_batches
from freshet_trainer.estimators import build_estimator
from freshet_trainer.holdout import row_hashes
from freshet_trainer.metrics import evaluate
from freshet_trainer.store import ObjectNotFound, ObjectStore
from freshet_trainer.train import fit_model
from freshet_trainer.validation import Accepted, Refused, build_reference, validate
from sklearn.base import clone

from .synthetic import classification_frame, encode, run_spec
from .test_malformed_corpus import MemorySource
from .test_train_s3 import put_batch, train


def reference() -> Any:
    frames = [(f"in/ref{seed}.csv", classification_frame(400, seed=seed)) for seed in (1, 2)]
    return build_reference(frames, "y", True)


def drifted() -> pd.DataFrame:
    return classification_frame(400, seed=3).assign(x1=lambda f: f["x1"] + 3.0)


def nulls(frame: pd.DataFrame, column: str, share: float) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[: int(len(frame) * share) - 1, column] = np.nan
    return frame


# (case id, batch, drift.action, released, expected verdict, expected reason, changes)
VERDICTS = [
    ("drift-retrain", drifted(), "Retrain", False, Accepted, None, ["outOfRange", "featureDrift"]),
    ("drift-ignore", drifted(), "Ignore", False, Accepted, None, ["outOfRange", "featureDrift"]),
    (
        "drift-hold",
        drifted(),
        "Hold",
        False,
        Refused,
        "OutOfRangeValues",
        ["outOfRange", "featureDrift"],
    ),
    (
        "drift-hold-released",
        drifted(),
        "Hold",
        True,
        Accepted,
        None,
        ["outOfRange", "featureDrift"],
    ),
    (
        "fault-and-drift-retrain",
        nulls(drifted(), "x2", 0.5),
        "Retrain",
        False,
        Refused,
        "NullFractionExceeded",
        ["outOfRange", "featureDrift"],
    ),
    (
        "fault-released",
        nulls(classification_frame(400, seed=3), "x2", 0.5),
        "Hold",
        True,
        Refused,
        "NullFractionExceeded",
        [],
    ),
    ("clean", classification_frame(400, seed=3), "Hold", False, Accepted, None, []),
]


@pytest.mark.parametrize(
    ("frame", "action", "released", "verdict", "reason", "changes"),
    [case[1:] for case in VERDICTS],
    ids=[case[0] for case in VERDICTS],
)
def test_a_fault_refuses_and_a_change_follows_the_action(
    frame: pd.DataFrame,
    action: str,
    released: bool,
    verdict: type,
    reason: str | None,
    changes: list[str],
) -> None:
    settings = RunValidation.model_validate({"drift": {"action": action}})
    outcome = validate(
        frame,
        label="y",
        classification=True,
        settings=settings,
        reference=reference(),
        released=released,
    )
    assert isinstance(outcome, verdict), getattr(outcome, "message", "")
    if isinstance(outcome, Refused):
        assert outcome.reason == reason
        assert outcome.only_changed is (reason == "OutOfRangeValues")
    assert [c.name for c in outcome.changes] == changes


def census_like(rows: int, seed: int) -> pd.DataFrame:
    """What real census extracts look like: ~10% nulls in a column, ~24% duplicate
    rows, ~14% of labelled rows sharing features with a differently labelled one."""
    rng = np.random.default_rng(seed)
    unique = rows - int(rows * 0.24)
    base = pd.DataFrame(
        {
            "age": rng.integers(17, 90, unique).astype(float),
            "hours": rng.choice([20.0, 40.0, 50.0], unique),
            "job": rng.choice(["a", "b", "c", "d"], unique),
        }
    )
    base["y"] = (base["age"] + rng.normal(0, 15, unique) > 45).astype(int)
    base.loc[rng.random(unique) < 0.10, "job"] = None
    twins = base.sample(int(rows * 0.24), random_state=seed, replace=True).copy()
    flip = rng.random(len(twins)) < 0.3
    twins.loc[flip, "y"] = 1 - twins.loc[flip, "y"]
    return pd.concat([base, twins], ignore_index=True).sample(frac=1, random_state=seed)


def spec_for(keys: list[str], new: list[str], **overrides: Any) -> RunSpec:
    document = run_spec([{"key": k, "etag": f"e-{k}", "size": 1} for k in keys])
    document["data"]["newBatches"] = new
    validation = overrides.pop("validation", {})
    document["data"].update(overrides)
    document["validation"] = validation
    return RunSpec.model_validate(document)


def test_a_first_batch_with_its_usual_nulls_and_duplicates_trains_with_defaults() -> None:
    frame = census_like(2000, seed=1)
    source = MemorySource({"in/first.csv": encode(frame, "csv")})

    learned = load_batches(
        source, spec_for(["in/first.csv"], ["in/first.csv"]), classification=True
    )
    explicit = load_batches(
        source,
        spec_for(["in/first.csv"], ["in/first.csv"], validation={"maxDuplicateFraction": 0.05}),
        classification=True,
    )

    assert [b.status for b in learned.report.batches] == ["Accepted"]
    checks = {c.name: c for c in learned.report.batches[0].checks}
    assert checks["duplicateRows"].value is not None and checks["duplicateRows"].value > 0.2
    assert not checks["nullFraction"].skipped and not checks["conflictingLabels"].skipped
    assert checks["featureDrift"].skipped  # nothing earlier to compare the first data with
    assert [q.reason for q in explicit.quarantined] == ["DuplicateRows"]  # absolute limits stay


def test_a_null_surge_is_still_a_fault() -> None:
    usual = census_like(2000, seed=1)
    surge = nulls(census_like(2000, seed=2), "hours", 0.4)
    source = MemorySource({"in/a.csv": encode(usual, "csv"), "in/b.csv": encode(surge, "csv")})

    loaded = load_batches(
        source,
        spec_for(
            ["in/a.csv", "in/b.csv"], ["in/b.csv"], validation={"drift": {"action": "Retrain"}}
        ),
        classification=True,
    )

    assert [(q.key, q.reason) for q in loaded.quarantined] == [("in/b.csv", "NullFractionExceeded")]


def test_the_reference_moves_to_the_accepted_change() -> None:
    before = classification_frame(400, seed=1)
    after = [classification_frame(400, seed=s).assign(x1=lambda f: f["x1"] + 3.0) for s in (2, 3)]
    source = MemorySource(
        {
            "in/0.csv": encode(before, "csv"),
            "in/1.csv": encode(after[0], "csv"),
            "in/2.csv": encode(after[1], "csv"),
        }
    )
    keys = ["in/0.csv", "in/1.csv", "in/2.csv"]
    hold = {"drift": {"action": "Hold"}}

    locked = load_batches(
        source, spec_for(keys, ["in/2.csv"], validation=hold), classification=True
    )
    moved = load_batches(
        source,
        spec_for(keys, ["in/2.csv"], validation=hold, referenceFrom="in/1.csv"),
        classification=True,
    )

    assert [q.reason for q in locked.quarantined] == ["FeatureDrift"]
    assert [d.columns for d in locked.drift] == [["x1"]]
    assert moved.quarantined == [] and moved.drift == []
    assert moved.report.reference.batches == ["in/1.csv"]


def test_excluded_columns_never_reach_validation_or_the_rows() -> None:
    frame = classification_frame(300, seed=1).assign(
        user_id=[f"u{i}" for i in range(300)], ts=pd.date_range("2026-01-01", periods=300, freq="s")
    )
    source = MemorySource({"in/a.csv": encode(frame, "csv")})

    loaded = load_batches(
        source, spec_for(["in/a.csv"], ["in/a.csv"], exclude=["user_id", "ts"]), classification=True
    )

    (batch,) = loaded.accepted
    assert list(batch.rows.columns) == ["x1", "x2", "color", "y"]
    assert batch.hashes.tolist() == row_hashes(frame.drop(columns=["user_id", "ts"]), "y").tolist()


def _labels(ones: int, zeros: int) -> np.ndarray:
    return np.array(["1"] * ones + ["0"] * zeros)


# (case id, predictions, labels, expected passed, expected skipped)
CONTRADICTIONS = [
    # 94% wrong on balanced labels: far below the 50% chance would give
    ("labels-flipped", _labels(47, 53), np.array(["0"] * 47 + ["1"] * 53), False, False),
    # flipped labels of an imbalanced class: chance is 0.8*0.2 + 0.2*0.8 = 0.32
    ("imbalanced-flipped", _labels(20, 80), np.array(["0"] * 20 + ["1"] * 80), False, False),
    # degraded by a change of concept: right 60% of the time, above chance
    (
        "concept-drifted",
        _labels(50, 50),
        _labels(30, 20).tolist() + _labels(20, 30).tolist(),
        True,
        False,
    ),
    # the class balance moved (80% ones now) and the model still predicts mostly zeros
    (
        "label-rate-shift",
        _labels(20, 80),
        _labels(20, 0).tolist() + _labels(60, 20).tolist(),
        True,
        False,
    ),
    ("too-few-rows", _labels(0, 10), _labels(10, 0), True, True),
]


@pytest.mark.parametrize(
    ("predicted", "truth", "passed", "skipped"),
    [case[1:] for case in CONTRADICTIONS],
    ids=[case[0] for case in CONTRADICTIONS],
)
def test_labels_contradicting_the_model(
    predicted: np.ndarray, truth: Any, passed: bool, skipped: bool
) -> None:
    check = contradiction.judge(np.asarray(predicted), np.asarray(truth), margin=0.1, p=0.01)
    assert (check.passed, check.skipped) == (passed, skipped), check.message


def _batches(frames: list[pd.DataFrame]) -> list[Batch]:
    return [
        Batch(BatchRef(key=f"in/{i:02d}.csv", etag="e", size=1), f, row_hashes(f, "y"))
        for i, f in enumerate(frames)
    ]


_LR = "sklearn.linear_model.LogisticRegression"


def _choose(frames: list[pd.DataFrame]) -> window.Choice:
    batches = _batches(frames)
    estimator = build_estimator(RunEstimator.model_validate({"class": _LR}), seed=0)
    return window.choose(
        batches,
        {batches[-1].ref.key},
        "accuracy",
        fit=lambda rows: fit_model(clone(estimator), rows, "y"),
        measure=lambda model, rows: evaluate(model, rows).get("accuracy"),
    )


def test_a_stationary_stream_keeps_most_of_its_window() -> None:
    """Every candidate scores alike within noise: the longest ones are kept (which of
    the two longest wins is sampling noise; either holds almost all the data)."""
    choice = _choose([classification_frame(500, seed=s) for s in range(6)])
    assert len(choice.batches) >= 5, choice.report.message
    assert [c.batches for c in choice.report.candidates] == [0, 1, 2, 4, 5]


def test_the_window_restarts_at_a_lasting_change() -> None:
    def flipped(seed: int) -> pd.DataFrame:
        return classification_frame(500, seed=seed).assign(y=lambda f: 1 - f["y"])

    before = [classification_frame(500, seed=s) for s in range(6)]
    just_changed = _choose([*before, flipped(10)])
    settled = _choose([*before, flipped(10), flipped(11)])

    assert [b.ref.key for b in just_changed.batches] == ["in/06.csv"], just_changed.report
    assert [b.ref.key for b in settled.batches] == ["in/06.csv", "in/07.csv"], settled.report


def test_a_run_whose_new_batches_were_all_refused_makes_no_model(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = put_batch(store, "in/good.csv", encode(classification_frame(400, seed=1), "csv"))
    bad = put_batch(store, "in/bad.csv", b"x1,x2,color\n1,2,red\n")  # no label column
    spec = run_spec([good, bad], version="v2")
    spec["data"]["newBatches"] = ["in/bad.csv"]
    spec["data"]["newDataRequired"] = True

    code, result, message = train(store, spec, tmp_path, monkeypatch)

    assert code == 0 and result is not None
    assert (result.status, result.reason, result.model) == ("Skipped", "NoNewData", None)
    assert [q.reason for q in result.quarantined] == ["LabelMissing"]
    with pytest.raises(ObjectNotFound):
        store.get_bytes("freshet/ml/demo/models/v2/model.joblib")
    assert message.startswith("Skipped")


def test_a_batch_without_labelled_rows_is_not_judged_for_contradiction() -> None:
    """Late labels: a new batch whose rows have not matured has nothing to contradict
    (and the serving model must not be asked to predict zero rows)."""
    old, new = classification_frame(400, seed=1), classification_frame(400, seed=2).head(0)
    serving = fit_model(
        build_estimator(RunEstimator.model_validate({"class": _LR}), seed=0), old, "y"
    )
    source = MemorySource({"in/a.csv": encode(old, "csv"), "in/b.csv": encode(new, "csv")})
    spec = spec_for(["in/a.csv", "in/b.csv"], ["in/b.csv"])
    loaded = load_batches(source, spec, classification=True)
    pending = Batch(BatchRef(key="in/b.csv", etag="e-in/b.csv", size=1), new, row_hashes(new, "y"))
    batches = [*loaded.accepted, pending]
    loaded = replace(loaded, accepted=batches)

    held = contradiction.hold_contradicted(loaded, spec, serving)

    assert held.accepted == batches and held.quarantined == loaded.quarantined
