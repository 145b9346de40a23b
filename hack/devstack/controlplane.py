"""The local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler, built from the pinned Go modules (hack/build-kube.sh) and
started on the stack bridge's gateway address (see devstack.node) with generated
certificates and RBAC.

Ports are chosen at start; everything a client needs is written into the
stack's state directory: `kubeconfig` (cluster admin) and `controlplane.json`.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path

from devstack import certs, procs

_HACK = Path(__file__).resolve().parent.parent
COMPONENTS = ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
SERVICE_CIDR = "10.96.0.0/16"


def versions() -> dict[str, str]:
    """The pinned versions from hack/versions.env."""
    out: dict[str, str] = {}
    for raw in (_HACK / "versions.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def bin_dir() -> Path:
    v = versions()
    cache = Path(os.environ.get("FRESHET_CACHE", Path.home() / ".cache" / "freshet"))
    return cache / f"kube-{v['KUBE_VERSION']}-etcd-{v['ETCD_VERSION']}" / "bin"


def binary(name: str) -> str:
    path = bin_dir() / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make kube` (hack/build-kube.sh) first")
    return str(path)


@dataclass(frozen=True)
class ControlPlane:
    server: str  # https://127.0.0.1:<port>
    kubeconfig: str
    ca: str
    etcd: str


KUBELET_CLIENT = "kube-apiserver-kubelet-client"  # the API server's user towards kubelets


def start(state: Path, address: str) -> ControlPlane:
    """Generate credentials, start the four components, wait until each is healthy.

    `address` is where the API server listens and what it advertises (the
    `kubernetes` Service's endpoint): the stack bridge's gateway, so pods reach
    it too. The API server gets a client certificate for the kubelet (`logs`,
    `exec`) and checks the kubelet's serving certificate against the stack's CA.
    """
    state.mkdir(parents=True, exist_ok=True)
    pki = state / "pki"
    ca = certs.Authority(pki)
    sa_key, sa_pub = certs.service_account_keys(pki)

    etcd_port, peer_port, api_port = procs.free_port(), procs.free_port(), procs.free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    server = f"https://{address}:{api_port}"

    procs.start(
        "etcd",
        [
            binary("etcd"),
            "--name=devstack",
            f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=devstack={peer_url}",
            "--listen-metrics-urls=",
            # A throwaway cluster on one disk: durability per write buys nothing here
            # and costs most of the API server's write latency.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        state,
    )
    procs.wait_until(
        procs.http_ok(f"{etcd_url}/health"),
        "etcd",
        30,
        state / "logs" / "etcd.log",
        ("etcd", state),
    )

    serving = ca.issue(
        "apiserver",
        "kube-apiserver",
        server_names=[
            address,
            "127.0.0.1",
            "localhost",
            "10.96.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        client=False,
    )
    procs.start(
        "kube-apiserver",
        [
            binary("kube-apiserver"),
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--secure-port={api_port}",
            f"--etcd-servers={etcd_url}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.cert_path}",
            # Without a request-header CA the controllers log an error per sync;
            # nothing proxies to this server, so allow no front-proxy name at all.
            f"--requestheader-client-ca-file={ca.cert_path}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--authorization-mode=Node,RBAC",
            "--anonymous-auth=true",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            *_kubelet_client_flags(ca),
            "--profiling=false",
            "--v=1",
        ],
        state,
    )
    ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    procs.wait_until(
        procs.http_ok(f"{server}/readyz", ctx),
        "kube-apiserver",
        90,
        state / "logs" / "kube-apiserver.log",
        ("kube-apiserver", state),
    )

    admin = ca.issue("admin", "freshet-admin", org="system:masters")
    kubeconfig = state / "kubeconfig"
    certs.write_kubeconfig(kubeconfig, server, ca.cert_path, admin, "admin")

    cm_port = _start_component(
        state,
        ca,
        server,
        "kube-controller-manager",
        identity="system:kube-controller-manager",
        flags=[
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={ca.cert_path}",
            f"--cluster-signing-cert-file={ca.cert_path}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # More parallel garbage collection, so owned objects go promptly in tests.
            "--concurrent-gc-syncs=10",
        ],
    )
    sched_port = _start_component(
        state, ca, server, "kube-scheduler", identity="system:kube-scheduler", flags=[]
    )
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # self-signed serving certs of the components
    for name, port in (("kube-controller-manager", cm_port), ("kube-scheduler", sched_port)):
        procs.wait_until(
            procs.http_ok(f"https://127.0.0.1:{port}/healthz", insecure),
            name,
            60,
            state / "logs" / f"{name}.log",
            (name, state),
        )

    plane = ControlPlane(
        server=server, kubeconfig=str(kubeconfig), ca=str(ca.cert_path), etcd=etcd_url
    )
    (state / "controlplane.json").write_text(json.dumps(asdict(plane)))
    return plane


def _kubelet_client_flags(ca: certs.Authority) -> list[str]:
    pair = ca.issue("apiserver-kubelet-client", KUBELET_CLIENT)
    return [
        f"--kubelet-client-certificate={pair.cert}",
        f"--kubelet-client-key={pair.key}",
        f"--kubelet-certificate-authority={ca.cert_path}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def _start_component(
    state: Path,
    ca: certs.Authority,
    server: str,
    name: str,
    *,
    identity: str,
    flags: list[str],
) -> int:
    """Start a controller-manager-like component with its own client certificate.

    Returns its secure port, whose /healthz tells when it is up.
    """
    short = name.removeprefix("kube-")
    pair = ca.issue(short, identity)
    kubeconfig = state / f"{short}.kubeconfig"
    certs.write_kubeconfig(kubeconfig, server, ca.cert_path, pair, short)
    port = procs.free_port()
    procs.start(
        name,
        [
            binary(name),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={state / short}",
            "--leader-elect=false",
            "--v=1",
            *flags,
        ],
        state,
    )
    return port


def load(state: Path) -> ControlPlane:
    return ControlPlane(**json.loads((state / "controlplane.json").read_text()))


def stop(state: Path) -> None:
    """Stop in reverse start order so no component logs errors about a missing peer."""
    for name in COMPONENTS:
        procs.stop(name, state)
