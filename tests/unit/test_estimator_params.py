"""The operator's estimator table is what scikit-learn says, and the CRD's metric rules agree."""

from __future__ import annotations

import json
import re
from types import ModuleType

from freshet import estimators
from freshet.spec import EstimatorClass
from policies import CRD_PATH

from tests import hack_scripts


def _generator() -> ModuleType:
    return hack_scripts.load("gen-estimator-params")


def test_the_committed_table_is_what_the_script_generates() -> None:
    """Upgrading scikit-learn or the trainer's allow-list needs hack/gen-estimator-params.py."""
    gen = _generator()
    committed = gen.TABLE.read_text()
    assert committed == gen.render(gen.generate()), "run hack/gen-estimator-params.py"
    assert json.loads(committed)["estimators"].keys() == estimators.table().keys()


def test_the_table_covers_exactly_the_crd_enum() -> None:
    assert set(estimators.table()) == {member.value for member in EstimatorClass}


def test_the_crd_metric_rules_name_exactly_the_regressors() -> None:
    regressors = {
        name
        for name, info in estimators.table().items()
        if info.kind is estimators.EstimatorKind.REGRESSOR
    }
    spec_rules = [
        rule["rule"]
        for rule in _crd_spec()["x-kubernetes-validations"]
        if "self.training.estimator.class in" in rule["rule"] and ".metric in" in rule["rule"]
    ]
    assert len(spec_rules) == 2  # gate.metric and monitoring.metric
    for rule in spec_rules:
        named = set(re.findall(r"'(sklearn\.[A-Za-z_.]+)'", rule))
        assert named == regressors, rule


def _crd_spec() -> dict[str, object]:
    import yaml

    crd = yaml.safe_load(CRD_PATH.read_text())
    spec: dict[str, object] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    return spec
