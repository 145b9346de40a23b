"""TrainingPolicySets decided (freshet.policysets): segments from generators, the
child each segment gets, when it is applied again, what is pruned, and the shared
Deployment's segment models."""

from __future__ import annotations

import json
from typing import Any

from freshet import names, policysets
from freshet.policysets import SetSpec
from freshet.spec import PolicySpec
from policies import minimal_spec

OWNER = {"metadata": {"name": "speech", "namespace": "ml", "uid": "set-uid"}}


def set_spec(**changes: Any) -> SetSpec:
    template = minimal_spec("Dynamic")
    template["data"]["prefix"] = "users/{{segment}}/"
    doc = {
        "template": {"metadata": {"labels": {"team": "voice"}}, "spec": template},
        "generators": [{"list": ["carol"]}, {"folders": {"prefix": "users/"}}],
        **changes,
    }
    return SetSpec.model_validate(doc)


def test_segments_are_the_list_and_the_folders_with_objects() -> None:
    keys = [
        "users/alice/b0.csv",
        "users/alice/b1.csv",
        "users/bob/x/b.csv",
        "users/top.csv",
        "users/Not_A_Label/b.csv",
        "other/zed/b.csv",
    ]
    wanted, skipped = policysets.segments(set_spec(), {"users/": keys})
    assert wanted == ["alice", "bob", "carol"]
    assert skipped == ["Not_A_Label"]


def test_a_child_is_the_template_with_its_segment_owned_by_the_set() -> None:
    child = policysets.render(OWNER, set_spec(**{"global": {"policyRef": {"name": "g"}}}), "alice")
    meta = child["metadata"]
    assert meta["name"] == "speech-alice" and meta["namespace"] == "ml"
    assert meta["labels"] == {
        "team": "voice",
        "freshet.dev/policy-set": "speech",
        "freshet.dev/segment": "alice",
        "app.kubernetes.io/managed-by": "freshet",
    }
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "TrainingPolicySet",
        "set-uid",
        True,
    )
    assert child["spec"]["data"]["prefix"] == "users/alice/"
    assert child["spec"]["baselineFrom"] == {"policyRef": {"name": "g"}}
    PolicySpec.model_validate(child["spec"])  # what the operator will read back
    assert child["apiVersion"] == names.API_VERSION and child["kind"] == names.KIND


def test_a_child_is_applied_again_only_when_what_it_is_made_from_changes() -> None:
    child = policysets.render(OWNER, set_spec(), "alice")
    assert policysets.needs_apply(child, None)
    assert not policysets.needs_apply(child, child)
    changed = set_spec()
    changed.template.spec["gate"] = {"metric": "f1"}
    assert policysets.needs_apply(policysets.render(OWNER, changed, "alice"), child)
    assert (
        policysets.rendered_hash(child)
        == child["metadata"]["annotations"][policysets.HASH_ANNOTATION]
    )


def test_pruning_and_long_names() -> None:
    existing = {"speech-alice": "alice", "speech-bob": "bob"}
    assert policysets.to_prune(existing, ["alice"], prune=True) == ["speech-bob"]
    assert policysets.to_prune(existing, ["alice"], prune=False) == []
    long = policysets.child_name("s" * 250, "alice")
    assert len(long) <= 253 and long.endswith("-alice")
    assert long != policysets.child_name("s" * 249 + "t", "alice")


def test_the_shared_deployment_holds_each_promoted_segments_model() -> None:
    children = [
        {
            "metadata": {"labels": {policysets.SEGMENT_LABEL: "alice"}},
            "status": {"serving": {"version": "v2", "modelKey": "k/a", "sha256": "a" * 64}},
        },
        {"metadata": {"labels": {policysets.SEGMENT_LABEL: "bob"}}, "status": {}},
    ]
    models = policysets.segment_models(children)
    assert models == {"alice": {"version": "v2", "key": "k/a", "sha256": "a" * 64}}
    patch = policysets.serving_patch("server", "main", models)
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    (env,) = container["env"]
    assert env["name"] == "FRESHET_SEGMENT_MODELS" and json.loads(env["value"]) == models
    deployment = {"spec": {"template": {"spec": {"containers": [container]}}}}
    assert policysets.served_models(deployment, "main") == env["value"]
    assert policysets.served_models(deployment, "other") is None
