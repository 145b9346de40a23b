"""Write operator/freshet/estimator_params.json: the trainer's estimators, for the operator.

The operator image carries no scikit-learn, yet it should refuse a policy whose
estimator parameters the trainer would refuse, before any Job exists. So this
script, run with scikit-learn installed (the repository's virtualenv), records
for every class of the trainer's allow-list (freshet_trainer.estimators) its
constructor parameters (``get_params()``) and whether it is a classifier or a
regressor. tests/unit/test_estimator_params.py checks the committed table
equals what this script generates, so the two cannot drift apart.

    python hack/gen-estimator-params.py           # rewrite the table
    python hack/gen-estimator-params.py --check   # exit 1 when it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "operator" / "freshet" / "estimator_params.json"


def generate() -> dict[str, Any]:
    """The table, from the installed scikit-learn and the trainer's allow-list."""
    sys.path.insert(0, str(REPO / "trainer-image"))
    import sklearn
    from freshet_trainer.estimators import ALLOWED_ESTIMATORS
    from sklearn.base import is_classifier, is_regressor

    estimators: dict[str, Any] = {}
    for name in sorted(ALLOWED_ESTIMATORS):
        instance = ALLOWED_ESTIMATORS[name]()
        if is_classifier(instance):
            kind = "classifier"
        elif is_regressor(instance):
            kind = "regressor"
        else:  # the trainer only knows these two
            raise SystemExit(f"{name} is neither a classifier nor a regressor")
        estimators[name] = {"kind": kind, "params": sorted(instance.get_params(deep=False))}
    return {"scikitLearnVersion": sklearn.__version__, "estimators": estimators}


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render(generate())
    if "--check" in argv:
        if TABLE.read_text() != text:
            print(f"{TABLE.relative_to(REPO)} is stale: run hack/gen-estimator-params.py")
            return 1
        return 0
    TABLE.write_text(text)
    print(f"wrote {TABLE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
