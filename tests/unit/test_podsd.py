"""devstack.podsd turns pods into file_sd target groups with kubernetes_sd-style labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack import podsd


def pod(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "web-1",
            "uid": "u1",
            "labels": {"app": "web", "pod-template-hash": "abc"},
            "annotations": annotations,
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "controller": True}],
        },
        "spec": {
            "nodeName": "local",
            "containers": [
                {
                    "name": "app",
                    "image": "img",
                    "ports": [
                        {"name": "other", "containerPort": 9000},
                        {"name": "metrics", "containerPort": 8080},
                    ],
                }
            ],
        },
        "status": {
            "podIP": "10.208.0.7",
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_port_by_number_name_or_first() -> None:
    by_number = podsd.target_group(pod({"prometheus.io/port": "8080"}))
    by_name = podsd.target_group(pod({"prometheus.io/port": "metrics"}))
    first = podsd.target_group(pod({}))
    assert by_number is not None and by_name is not None and first is not None
    assert by_number["targets"] == by_name["targets"] == ["10.208.0.7:8080"]
    assert by_name["labels"]["__meta_kubernetes_pod_container_port_name"] == "metrics"
    assert first["targets"] == ["10.208.0.7:9000"]


def test_kubernetes_sd_labels() -> None:
    group = podsd.target_group(pod({"prometheus.io/scrape": "true"}))
    assert group is not None
    labels = group["labels"]
    m = "__meta_kubernetes_"
    assert labels[f"{m}namespace"] == "ns"
    assert labels[f"{m}pod_name"] == "web-1"
    assert labels[f"{m}pod_container_name"] == "app"
    assert labels[f"{m}pod_label_app"] == "web"
    assert labels[f"{m}pod_label_pod_template_hash"] == "abc"
    assert labels[f"{m}pod_annotation_prometheus_io_scrape"] == "true"
    assert labels[f"{m}pod_annotationpresent_prometheus_io_scrape"] == "true"
    assert labels[f"{m}pod_ready"] == "true"
    assert labels[f"{m}pod_controller_kind"] == "ReplicaSet"


def test_unreachable_pods_are_left_out() -> None:
    assert podsd.target_group(pod({"prometheus.io/port": "7777"})) is None  # no such port
    no_ports = pod({})
    no_ports["spec"]["containers"][0]["ports"] = []
    assert podsd.target_group(no_ports) is None
    no_ip = pod({})
    no_ip["status"].pop("podIP")
    assert podsd.target_group(no_ip) is None


def test_write_atomically_only_on_change(tmp_path: Path) -> None:
    out = tmp_path / "pods.json"
    groups = podsd.target_groups([pod({})])
    assert podsd.write_atomically(out, groups)
    assert not podsd.write_atomically(out, groups)
    assert json.loads(out.read_text()) == groups
    assert [p.name for p in tmp_path.iterdir()] == ["pods.json"]
