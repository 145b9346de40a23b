"""The one prediction path (freshet_trainer.predict): the server's column-by-column
frame is what the model's own feature conversion gives, and the class is the most
probable one, as `predict` says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from freshet_contract.run import RunEstimator
from freshet_trainer import predict as predict_module
from freshet_trainer import serve
from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.estimators import build_estimator
from freshet_trainer.predict import Predictor, columns_of, predict, predict_features, rows_frame
from freshet_trainer.train import fit_model
from prometheus_client import CollectorRegistry, Histogram

from .synthetic import classification_frame, regression_frame

ROWS = [
    {"x1": 0.5, "x2": -1, "color": "red"},
    {"x1": None, "x2": 2.5, "color": None},
    {"x1": -2.0, "x2": 1.0, "color": "violet", "y": 1},
]


@pytest.mark.parametrize(
    "estimator",
    [
        "sklearn.linear_model.LogisticRegression",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.RandomForestClassifier",
    ],
)
def test_rows_frame_and_one_estimator_call_agree_with_predict(estimator: str) -> None:
    spec = RunEstimator.model_validate({"class": estimator})
    model = fit_model(build_estimator(spec, 0), classification_frame(300, seed=4), "y")
    fast = rows_frame(model, ROWS)
    slow = model.features(pd.DataFrame.from_records(ROWS))
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
    made = predict_features(model, fast)
    assert made.probabilities is not None
    assert list(made.labels) == list(model.pipeline.predict(slow))
    assert np.allclose(made.probabilities, model.pipeline.predict_proba(slow))
    assert list(predict(model, pd.DataFrame.from_records(ROWS)).labels) == list(made.labels)


def test_a_value_that_is_not_a_number_names_its_column() -> None:
    spec = RunEstimator.model_validate({"class": "sklearn.linear_model.LogisticRegression"})
    model = fit_model(build_estimator(spec, 0), classification_frame(100, seed=5), "y")
    with pytest.raises(ValueError, match="column 'x1' must be numeric"):
        rows_frame(model, [{"x1": "lots", "x2": 1.0, "color": "red"}])


HOSTILE = [
    {"x1": 0.5, "x2": -1, "color": "red"},
    {"x1": None, "x2": 2.5, "color": None},  # missing number and category: imputed
    {"x1": -2.0, "x2": 1.0, "color": "violet", "y": 1},  # unknown category, label ignored
    {"x1": 1e9, "x2": True, "color": "blue"},
    {"x1": 3, "x2": None, "color": float("nan")},
    {"x1": 0.0, "x2": 0.0, "color": "green"},
]


def frame_of(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The rows as a file would give them to the pipeline: a missing cell is NaN."""
    frame = pd.DataFrame.from_records(rows).drop(columns="y", errors="ignore")
    return frame.astype({"x1": float, "x2": float, "color": object}).where(frame.notna(), np.nan)


def fitted(estimator: str, frame: pd.DataFrame | None = None) -> ModelArtifact:
    spec = RunEstimator.model_validate({"class": estimator})
    train = classification_frame(300, seed=4) if frame is None else frame
    return fit_model(build_estimator(spec, 0), train, "y")


@pytest.mark.parametrize(
    "estimator",
    [
        "sklearn.linear_model.LogisticRegression",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.linear_model.SGDClassifier",  # no predict_proba: predict
    ],
)
def test_the_servers_path_gives_exactly_what_the_pipeline_gives(estimator: str) -> None:
    model = fitted(estimator)
    predictor = Predictor(model)
    assert predictor.compiled is not None  # the fast path is the one under test
    slow = frame_of(HOSTILE)
    made = predictor.rows(HOSTILE)
    assert made.labels.tolist() == model.pipeline.predict(slow).tolist()
    if hasattr(model.pipeline, "predict_proba"):
        assert made.probabilities is not None
        assert np.array_equal(made.probabilities, model.pipeline.predict_proba(slow))
    else:
        assert made.probabilities is None
    encoded = model.pipeline[:-1].transform(slow)
    assert np.array_equal(predictor.encode(columns_of(model, HOSTILE), len(HOSTILE)), encoded)


def test_a_regressor_predicts_its_values_exactly() -> None:
    spec = RunEstimator.model_validate({"class": "sklearn.linear_model.Ridge"})
    model = fit_model(build_estimator(spec, 0), regression_frame(200, seed=3), "y")
    predictor = Predictor(model)
    assert predictor.compiled is not None
    rows = [{"x1": 0.3, "kind": "a"}, {"x1": None, "kind": None}, {"x1": -1, "kind": "zz"}]
    frame = pd.DataFrame({"x1": [0.3, np.nan, -1.0], "kind": ["a", np.nan, "zz"]})
    made = predictor.rows(rows)
    assert made.probabilities is None
    assert np.array_equal(made.labels, model.pipeline.predict(frame))


def test_a_rows_prediction_does_not_depend_on_the_other_rows_of_its_request() -> None:
    """A null category is imputed as a file's empty cell is, also when the request's
    column holds nothing else (pandas would keep None there, which the imputer does
    not take for missing)."""
    model = fitted("sklearn.linear_model.LogisticRegression")
    alone = {"x1": 0.5, "x2": -1.0, "color": None}
    together = [alone, {"x1": 0.1, "x2": 0.2, "color": "green"}]
    for predictor_path in (
        Predictor(model).rows,
        lambda rows: predict_features(model, rows_frame(model, rows)),
    ):
        one = predictor_path([alone])
        two = predictor_path(together)
        assert one.probabilities is not None and two.probabilities is not None
        assert np.array_equal(one.probabilities[0], two.probabilities[0])
    imputed = pd.DataFrame({"x1": [0.5], "x2": [-1.0], "color": ["red"]})  # most frequent
    assert np.array_equal(
        Predictor(model).rows([alone]).probabilities, model.pipeline.predict_proba(imputed)
    )


def test_random_rows_encode_as_the_pipeline_encodes_them() -> None:
    model = fitted("sklearn.ensemble.HistGradientBoostingClassifier")
    rng = np.random.default_rng(9)
    rows = [
        {
            "x1": None if rng.random() < 0.1 else float(rng.normal() * 10),
            "x2": None if rng.random() < 0.1 else int(rng.integers(-5, 5)),
            "color": rng.choice(["red", "green", "blue", "teal", None]),
        }
        for _ in range(500)
    ]
    predictor = Predictor(model)
    expected = model.pipeline[:-1].transform(frame_of(rows))
    assert np.array_equal(predictor.encode(columns_of(model, rows), len(rows)), expected)


def test_infinity_is_refused_on_both_paths() -> None:
    model = fitted("sklearn.linear_model.LogisticRegression")
    rows = [{"x1": float("inf"), "x2": 1.0, "color": "red"}]
    with pytest.raises(ValueError, match="infinity"):
        Predictor(model).rows(rows)
    with pytest.raises(ValueError, match="infinity"):
        predict_features(model, rows_frame(model, rows))


def test_preprocessing_of_another_shape_uses_the_pipeline() -> None:
    """Sparse output (many categories, an estimator that takes sparse input) is not
    compiled; the predictions are the pipeline's all the same."""
    rng = np.random.default_rng(2)
    train = classification_frame(400, seed=6).assign(
        color=[f"c{i}" for i in rng.integers(0, 60, size=400)]
    )
    model = fitted("sklearn.linear_model.LogisticRegression", train)
    assert model.pipeline[0].sparse_output_
    predictor = Predictor(model)
    assert predictor.compiled is None
    made = predictor.rows(HOSTILE)
    assert np.array_equal(made.probabilities, model.pipeline.predict_proba(frame_of(HOSTILE)))


def test_a_compiled_path_that_disagrees_on_the_probe_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = fitted("sklearn.linear_model.LogisticRegression")
    compiled = predict_module._compile(model)
    assert compiled is not None
    wrong = dataclasses.replace(compiled, means=compiled.means + 1e-9)
    monkeypatch.setattr(predict_module, "_compile", lambda _: wrong)
    assert Predictor(model).compiled is None


def test_metrics_are_observed_in_bulk_as_one_by_one() -> None:
    buckets = (0.1, 0.25, 0.5, 0.75, 0.9)
    values = np.array([0.0, 0.1, 0.1000001, 0.25, 0.5, 0.5, 0.7, 0.9, 0.95, 1.0, -3.0, 7.0])
    registries = [CollectorRegistry(), CollectorRegistry()]
    one, bulk = (
        Histogram("h", "h", ["v"], buckets=buckets, registry=r).labels("v1") for r in registries
    )
    for value in values.tolist():
        one.observe(value)
    serve._observe_all(bulk, values)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        (metric,) = registry.collect()
        return {
            (s.name, s.labels.get("le", "")): s.value
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    expected, got = samples(registries[0]), samples(registries[1])
    assert got.pop(("h_sum", "")) == pytest.approx(expected.pop(("h_sum", "")), abs=1e-12)
    assert got == expected
    assert expected[("h_bucket", "0.1")] == 3  # 0.0, 0.1 and -3.0: a bound is inclusive
