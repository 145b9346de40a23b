"""A real Prometheus server on the stack's bridge that scrapes the stack's pods.

The binary is Debian's `prometheus` package at `PROMETHEUS_DEB_VERSION`
(hack/versions.env), unpacked into the cache by hack/install-prometheus.sh and
never installed. That build has no Kubernetes service discovery, so pods are
discovered by devstack.podsd, a second process that watches pods on the API
server and keeps a file_sd file current with kubernetes_sd-style labels.

The scrape job keeps the pods annotated `prometheus.io/scrape: "true"` (and not
Succeeded/Failed), honours `prometheus.io/path` and `prometheus.io/scheme`,
scrapes `<pod IP>:<container port>` on the bridge as in a cluster, and
labels every series with `namespace`, `pod`, `container` and `app` (the pod's
`app` label, when it has one). Prometheus's own metrics are a second job.

Its URL is recorded in `state/prometheus.json`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from devstack import controlplane, procs

NAME = "prometheus"
SD_NAME = "prometheus-sd"
JOB = "kubernetes-pods"


def install_dir() -> Path:
    version = controlplane.versions()["PROMETHEUS_DEB_VERSION"]
    cache = Path(os.environ.get("FRESHET_CACHE", Path.home() / ".cache" / "freshet"))
    return cache / f"prometheus-{version}"


def binary() -> str:
    path = install_dir() / "usr" / "bin" / "prometheus"
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: run `make prometheus` (hack/install-prometheus.sh) first"
        )
    return str(path)


def _pod_relabeling() -> list[dict[str, Any]]:
    meta = "__meta_kubernetes_pod_"
    return [
        {
            "source_labels": [f"{meta}annotation_prometheus_io_scrape"],
            "action": "keep",
            "regex": "true",
        },
        {"source_labels": [f"{meta}phase"], "action": "drop", "regex": "Succeeded|Failed"},
        {
            "source_labels": [f"{meta}annotation_prometheus_io_path"],
            "regex": "(.+)",
            "target_label": "__metrics_path__",
        },
        {
            "source_labels": [f"{meta}annotation_prometheus_io_scheme"],
            "regex": "(https?)",
            "target_label": "__scheme__",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": [f"{meta}name"], "target_label": "pod"},
        {"source_labels": [f"{meta}container_name"], "target_label": "container"},
        {
            "source_labels": [f"{meta}label_app"],
            "regex": "(.+)",
            "target_label": "app",
        },
    ]


def config(targets_dir: Path, self_address: str, scrape_interval: str) -> dict[str, Any]:
    """The Prometheus configuration (as data; YAML on disk)."""
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [
            {
                "job_name": JOB,
                "file_sd_configs": [
                    # inotify delivers changes at once; the interval is a fallback.
                    {"files": [str(targets_dir / "*.json")], "refresh_interval": "30s"}
                ],
                "relabel_configs": _pod_relabeling(),
            },
            {"job_name": "prometheus", "static_configs": [{"targets": [self_address]}]},
        ],
    }


def start(state: Path, kubeconfig: str, address: str, scrape_interval: str = "1s") -> str:
    """Start pod discovery and Prometheus; wait until Prometheus is ready; return its URL.

    It listens on `address` (the stack bridge's gateway), so the operator's pod
    can query it as it would a Prometheus Service.
    """
    state = state.resolve()
    root = state / "prometheus"
    targets = root / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    pods_file = targets / "pods.json"
    pods_file.unlink(missing_ok=True)
    procs.start(
        SD_NAME,
        [
            sys.executable,
            "-m",
            "devstack.podsd",
            f"--kubeconfig={kubeconfig}",
            f"--out={pods_file}",
        ],
        state,
        env={"PYTHONUNBUFFERED": "1"},
    )
    procs.wait_until(
        pods_file.exists,
        "Prometheus pod discovery",
        30,
        state / "logs" / f"{SD_NAME}.log",
        (SD_NAME, state),
    )

    address = f"{address}:{procs.free_port(address)}"
    config_file = root / "prometheus.yml"
    config_file.write_text(
        yaml.safe_dump(config(targets, address, scrape_interval), sort_keys=False)
    )
    assets = install_dir()
    procs.start(
        NAME,
        [
            binary(),
            f"--config.file={config_file}",
            f"--web.listen-address={address}",
            f"--storage.tsdb.path={root / 'data'}",
            "--storage.tsdb.retention.time=1d",
            "--web.enable-lifecycle",
            # Debian's build serves the web UI from the filesystem: point it at
            # the unpacked package instead of /usr/share and /etc.
            f"--web.local-assets={assets / 'usr/share/prometheus/web'}",
            f"--web.console.templates={assets / 'etc/prometheus/consoles'}",
            f"--web.console.libraries={assets / 'etc/prometheus/console_libraries'}",
            "--log.level=warn",
        ],
        state,
        cwd=root,
    )
    url = f"http://{address}"
    procs.wait_until(
        procs.http_ok(f"{url}/-/ready"),
        "Prometheus",
        60,
        state / "logs" / f"{NAME}.log",
        (NAME, state),
    )
    (state / "prometheus.json").write_text(
        json.dumps({"url": url, "scrape_interval": scrape_interval, "job": JOB})
    )
    return url


def load(state: Path) -> str:
    """The URL of the Prometheus started in `state`."""
    return str(json.loads((state.resolve() / "prometheus.json").read_text())["url"])


def running(state: Path) -> bool:
    state = state.resolve()
    return procs.pid_of(NAME, state) is not None and procs.pid_of(SD_NAME, state) is not None


def stop(state: Path) -> None:
    """Stop Prometheus and its pod discovery (either may already be gone)."""
    state = state.resolve()
    procs.stop(NAME, state)
    procs.stop(SD_NAME, state)
    (state / "prometheus.json").unlink(missing_ok=True)
