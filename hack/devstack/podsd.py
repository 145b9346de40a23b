"""Pod discovery for the devstack Prometheus, as a file_sd target file.

Debian's Prometheus is built without Kubernetes service discovery (client-go is
not packaged there), so this process plays `kubernetes_sd_configs` with
`role: pod`: it lists and watches pods on the stack's API server and rewrites a
file_sd JSON file on every change (atomically; Prometheus picks it up through
inotify, so a new pod is a target within a scrape interval or two).

The labels are the ones `kubernetes_sd_configs` would attach
(`__meta_kubernetes_namespace`, `__meta_kubernetes_pod_name`,
`__meta_kubernetes_pod_label_<name>`, `__meta_kubernetes_pod_annotation_<name>`,
`__meta_kubernetes_pod_container_*`, ...), so the relabeling in
prometheus.py reads like a real cluster's, and the target is the pod's own
address, <podIP>:<containerPort>, on the stack's bridge. Where kubernetes_sd
emits one target per declared container port, this emits one per pod, for the
port the pod asks to be scraped on (`prometheus.io/port`, a containerPort number
or a port name; else the first declared port). (Picking the port by annotation
needs a comparison of two labels, which RE2 relabeling cannot express; here it
is plain Python.)

Run: `python -m devstack.podsd --kubeconfig K --out DIR/pods.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("devstack.podsd")

PORT_ANNOTATION = "prometheus.io/port"
META = "__meta_kubernetes_"
WATCH_SECONDS = 30

JSON = dict[str, Any]


def sanitize(name: str) -> str:
    """A Kubernetes label or annotation name as a Prometheus label name part,
    the way kubernetes_sd does it (every invalid character becomes `_`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _scrape_port(pod: JSON) -> tuple[JSON, JSON] | None:
    """(container, port) to scrape: the one `prometheus.io/port` names, else the first."""
    meta = pod.get("metadata") or {}
    wanted = str((meta.get("annotations") or {}).get(PORT_ANNOTATION, "")).strip()
    first: tuple[JSON, JSON] | None = None
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if first is None:
                first = (container, port)
            if wanted and wanted in (str(port.get("containerPort")), str(port.get("name", ""))):
                return container, port
    return None if wanted else first


def target_group(pod: JSON) -> JSON | None:
    """The file_sd target group for one pod (API JSON), or None if it cannot be scraped."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    ip = status.get("podIP")
    chosen = _scrape_port(pod)
    if not ip or chosen is None:
        return None
    container, port = chosen
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    out: dict[str, str] = {
        f"{META}namespace": str(meta.get("namespace", "")),
        f"{META}pod_name": str(meta.get("name", "")),
        f"{META}pod_uid": str(meta.get("uid", "")),
        f"{META}pod_ip": str(ip),
        f"{META}pod_host_ip": str(status.get("hostIP") or ""),
        f"{META}pod_node_name": str(spec.get("nodeName") or ""),
        f"{META}pod_phase": str(status.get("phase") or ""),
        f"{META}pod_ready": "true" if ready else "false",
        f"{META}pod_container_init": "false",
        f"{META}pod_container_name": str(container.get("name", "")),
        f"{META}pod_container_image": str(container.get("image", "")),
        f"{META}pod_container_port_name": str(port.get("name", "")),
        f"{META}pod_container_port_number": str(port.get("containerPort", "")),
        f"{META}pod_container_port_protocol": str(port.get("protocol") or "TCP"),
    }
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            out[f"{META}pod_controller_kind"] = str(owner.get("kind", ""))
            out[f"{META}pod_controller_name"] = str(owner.get("name", ""))
    for kind, values in (("label", labels), ("annotation", annotations)):
        for key, value in values.items():
            out[f"{META}pod_{kind}_{sanitize(key)}"] = str(value)
            out[f"{META}pod_{kind}present_{sanitize(key)}"] = "true"
    return {"targets": [f"{ip}:{port.get('containerPort')}"], "labels": out}


def target_groups(pods: Iterable[JSON]) -> list[JSON]:
    """Target groups for every scrapeable pod, in a stable order."""
    groups = [g for g in map(target_group, pods) if g is not None]
    return sorted(
        groups, key=lambda g: (g["labels"][f"{META}namespace"], g["labels"][f"{META}pod_name"])
    )


def write_atomically(out: Path, groups: list[JSON]) -> bool:
    """Replace `out` with `groups` if they differ from what it holds; whether it changed."""
    text = json.dumps(groups, indent=1, sort_keys=True)
    try:
        if out.read_text() == text:
            return False
    except OSError:
        pass
    # The temporary name must not match the `*.json` glob Prometheus reads.
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    return True


def run(kubeconfig: str, out: Path) -> None:
    """List and watch pods forever, keeping `out` in step; re-list after any error."""
    from kubernetes import client, config, watch

    # kubernetes.config and kubernetes.watch are unannotated.
    api_client = config.new_client_from_config(kubeconfig)  # type: ignore[no-untyped-call]
    core = client.CoreV1Api(api_client)
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        pods: dict[str, JSON] = {}
        try:
            listed = core.list_pod_for_all_namespaces()
            for pod in listed.items:
                raw = api_client.sanitize_for_serialization(pod)
                pods[raw["metadata"]["uid"]] = raw
            write_atomically(out, target_groups(pods.values()))
            version = listed.metadata.resource_version if listed.metadata else None
            expired = False
            while not expired:
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    core.list_pod_for_all_namespaces,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                )
                for event in stream:
                    if event["type"] == "ERROR":
                        expired = True  # e.g. 410 Gone: our resourceVersion is too old
                        break
                    raw = api_client.sanitize_for_serialization(event["object"])
                    version = raw["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED":
                        pods.pop(raw["metadata"]["uid"], None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        pods[raw["metadata"]["uid"]] = raw
                    if write_atomically(out, target_groups(pods.values())):
                        log.info("targets: %d pods", len(pods))
        except Exception as e:  # API server restarting, watch expired, ...
            log.warning("pod watch failed, re-listing: %s", e)
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack.podsd", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--out", type=Path, required=True, help="file_sd JSON file to keep current")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(args.kubeconfig, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
