"""A real Kubernetes node for the local stack: kubelet + containerd + runc, with pod
networking on a bridge the stack owns, kube-proxy (iptables) for Services and
CoreDNS for cluster DNS.

Binaries: hack/build-node.sh (kubelet, kube-proxy, containerd, ctr, the runc
shim, CoreDNS, `pause`, `hello`) and Debian's runc, CNI plugins and iptables
(hack/install-debian-packages.sh).

Network: each stack gets a Linux bridge `fr<hash>` and a private /24 of its own
(`network.json`); the bridge's gateway address is the host's face towards the
pods, so the API server, the S3 store and CoreDNS listen there. Pods get routes
to their /24 and to the Service CIDR only (via the gateway), and two FORWARD
rules (mangle table) drop anything crossing between the bridge and another interface: pod
traffic never leaves the bridge. Nothing is masqueraded beyond it either
(kube-proxy only masquerades host-to-Service traffic, onto the bridge).

kube-proxy owns the host's KUBE-* iptables chains, so only one stack on a
machine can run a real node at a time (a lock file in /run says which).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from devstack import certs, controlplane, ociimage, procs

NODE_NAME = "local"
COMPONENTS = ("coredns", "kube-proxy", "kubelet", "containerd")  # stop order
PAUSE_IMAGE = "freshet.local/pause:devstack"
HELLO_IMAGE = "freshet.local/hello:devstack"
RUNC = "/usr/sbin/runc"
CNI_BIN = "/usr/lib/cni"
LOCK = Path("/run/freshet-devstack-real-node.lock")
_SUBNET_BASE = ipaddress.IPv4Network("10.208.0.0/12")  # /24s handed out per stack


def bin_dir() -> Path:
    v = controlplane.versions()
    cache = Path(os.environ.get("FRESHET_CACHE", Path.home() / ".cache" / "freshet"))
    name = (
        f"node-{v['KUBE_VERSION']}-containerd-{v['CONTAINERD_VERSION']}"
        f"-coredns-{v['COREDNS_VERSION']}"
    )
    return cache / name / "bin"


def binary(name: str) -> str:
    path = bin_dir() / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make node` (hack/build-node.sh) first")
    return str(path)


# --- network ----------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    bridge: str
    subnet: str  # e.g. 10.210.17.0/24
    gateway: str  # .1 of the subnet, on the bridge


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _run("ip", "-4", "-o", "addr", "show").stdout + _run("ip", "-4", "route").stdout
    nets = []
    for word in out.split():
        with contextlib.suppress(ValueError):
            if "/" in word or word[:1].isdigit():
                nets.append(ipaddress.ip_network(word, strict=False))
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def create_network(state: Path) -> Network:
    """The stack's bridge with its gateway address, up (idempotent per state dir)."""
    record = state / "network.json"
    if record.exists():
        net = Network(**json.loads(record.read_text()))
        if _run("ip", "link", "show", net.bridge, check=False).returncode == 0:
            return net
    digest = hashlib.sha256(str(state.resolve()).encode()).digest()
    bridge = "fr" + digest[:5].hex()[:10]
    used = _used_networks()
    subnets: list[ipaddress.IPv4Network] = list(_SUBNET_BASE.subnets(new_prefix=24))
    start = int.from_bytes(digest[5:7], "big") % len(subnets)
    for i in range(len(subnets)):
        cand = subnets[(start + i) % len(subnets)]
        if not any(cand.overlaps(u) for u in used if u.prefixlen > 0):
            break
    else:
        raise RuntimeError(f"no free /24 left in {_SUBNET_BASE}")
    gateway = str(cand.network_address + 1)
    net = Network(bridge=bridge, subnet=str(cand), gateway=gateway)
    _run("ip", "link", "add", bridge, "type", "bridge")
    _run("ip", "addr", "add", f"{gateway}/24", "dev", bridge)
    _run("ip", "link", "set", bridge, "up")
    # Keep pod traffic on the bridge: nothing is forwarded between it and any
    # other interface, whatever ip_forward says (the CNI bridge plugin turns it on).
    # In the mangle table, which runs before filter, so no ACCEPT that kube-proxy
    # (or anything else) puts in filter's FORWARD can come first.
    for rule in _forward_rules(net):
        _run("iptables", "-t", "mangle", "-I", "FORWARD", "1", *rule)
    # Host-to-Service traffic (and a pod's before kube-proxy's rules exist) goes
    # to the bridge, never along the default route.
    _run("ip", "route", "replace", controlplane.SERVICE_CIDR, "dev", bridge, "src", gateway)
    state.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(asdict(net)))
    return net


def _forward_rules(net: Network) -> list[list[str]]:
    tag = ["-m", "comment", "--comment", f"freshet-devstack {net.bridge}"]
    return [
        ["-i", net.bridge, "!", "-o", net.bridge, *tag, "-j", "DROP"],
        ["-o", net.bridge, "!", "-i", net.bridge, *tag, "-j", "DROP"],
    ]


def delete_network(state: Path) -> None:
    record = state / "network.json"
    if not record.exists():
        return
    net = Network(**json.loads(record.read_text()))
    for rule in _forward_rules(net):
        while _run("iptables", "-t", "mangle", "-D", "FORWARD", *rule, check=False).returncode == 0:
            pass
    _run("ip", "link", "del", net.bridge, check=False)  # takes its routes along
    record.unlink()


def load_network(state: Path) -> Network | None:
    record = state / "network.json"
    return Network(**json.loads(record.read_text())) if record.exists() else None


# --- images -----------------------------------------------------------------


def image_archive(name: str) -> tuple[str, Path]:
    """(image ref, OCI archive) of one of the built-in images, `pause` or `hello`,
    assembled next to the binaries (once per binary)."""
    ref = {"pause": PAUSE_IMAGE, "hello": HELLO_IMAGE}[name]
    exe = Path(binary(name))
    archive = bin_dir().parent / "images" / f"{name}.tar"
    if not archive.exists() or archive.stat().st_mtime < exe.stat().st_mtime:
        ociimage.write_archive(archive, ref, {f"/{name}": exe}, [f"/{name}"])
    return ref, archive


def import_image(state: Path, archive: Path) -> None:
    """Import an OCI or docker archive into the node's containerd (`k8s.io` namespace)."""
    _run(
        binary("ctr"),
        f"--address={_paths(state)['sock']}",
        "--namespace=k8s.io",
        "images",
        "import",
        "--local",
        str(archive),
    )


def kill_container(state: Path, container_id: str) -> None:
    """SIGKILL a container's process through containerd, as the kernel's OOM killer
    or a crash would end it (kubelet sees it exit and applies the restart policy)."""
    _run(
        binary("ctr"),
        f"--address={_paths(state)['sock']}",
        "--namespace=k8s.io",
        "tasks",
        "kill",
        "--signal=SIGKILL",
        container_id,
    )


def container_pid(state: Path, container_id: str) -> int:
    """The host PID of a container's main process (for /proc readings in benchmarks)."""
    listed = subprocess.run(
        [binary("ctr"), f"--address={_paths(state)['sock']}", "--namespace=k8s.io", "tasks", "ls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listed.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == container_id:
            return int(fields[1])
    raise RuntimeError(f"container {container_id} has no running task")


# --- processes --------------------------------------------------------------


def _paths(state: Path) -> dict[str, Path]:
    root = state / "node"
    sock = root / "containerd" / "containerd.sock"
    if len(str(sock)) > 100:
        raise RuntimeError(f"state dir {state} too long for a unix socket path: {sock}")
    return {
        "root": root,
        "sock": sock,
        "runc_root": root / "runc",
        "kubelet": root / "kubelet",
    }


def check_free(state: Path) -> None:
    """Refuse a second real node on this machine (kube-proxy owns the host's KUBE-* chains)."""
    with contextlib.suppress(OSError, ValueError):
        other = Path(LOCK.read_text().strip())
        if other != state and any(procs.pid_of(c, other) for c in COMPONENTS):
            raise RuntimeError(
                f"a real node of the stack in {other} runs on this machine: stop it first"
            )


def _lock(state: Path) -> None:
    check_free(state)
    LOCK.write_text(str(state))


def start(state: Path, plane: controlplane.ControlPlane, net: Network) -> None:
    """Start containerd, kubelet, kube-proxy and CoreDNS; wait until the node is Ready."""
    state = state.resolve()
    _lock(state)
    p = _paths(state)
    for d in ("containerd", "cni", "pod-logs", "kubelet"):
        (p["root"] / d).mkdir(parents=True, exist_ok=True)
    ca = certs.Authority.load(state / "pki")
    started = time.monotonic()
    _apply_rbac(plane)
    _start_containerd(state, net)
    t_containerd = time.monotonic() - started
    _start_kubelet(state, plane, net, ca)
    _start_kube_proxy(state, plane, net, ca)
    _start_coredns(state, plane, net, ca)
    procs.wait_until(
        lambda: node_ready(plane),
        "kubelet (node Ready)",
        120,
        state / "logs" / "kubelet.log",
        ("kubelet", state),
    )
    print(
        f"real node up in {time.monotonic() - started:.1f}s"
        f" (containerd + images {t_containerd:.1f}s), bridge {net.bridge} {net.subnet}",
        flush=True,
    )


def _start_containerd(state: Path, net: Network) -> None:
    p = _paths(state)
    cdir = p["root"] / "containerd"
    cni_conf = p["root"] / "cni" / "conf"
    cni_conf.mkdir(parents=True, exist_ok=True)
    (cni_conf / "10-devstack.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": f"devstack-{net.bridge}",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": net.bridge,
                        "isGateway": True,
                        "isDefaultGateway": False,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": net.subnet, "gateway": net.gateway}]],
                            # Only the Service CIDR beyond the bridge, via the gateway.
                            "routes": [{"dst": controlplane.SERVICE_CIDR}],
                            "dataDir": str(p["root"] / "cni" / "ipam"),
                        },
                    }
                ],
            },
            indent=2,
        )
    )
    runtime = "plugins.'io.containerd.cri.v1.runtime'"
    config = f"""version = 3
root = "{cdir / "root"}"
state = "{cdir / "state"}"
imports = []
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile"]

[grpc]
  address = "{p["sock"]}"

[ttrpc]
  address = "{p["sock"]}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[{runtime}]
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false

  [{runtime}.containerd]
    default_runtime_name = "runc"

    [{runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [{runtime}.containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{p["runc_root"]}"
        SystemdCgroup = false

  [{runtime}.cni]
    bin_dirs = ["{CNI_BIN}"]
    conf_dir = "{cni_conf}"
    max_conf_num = 1

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.internal.v1.opt']
  path = "{cdir / "opt"}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"

  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
    (cdir / "config.toml").write_text(config)
    procs.start(
        "containerd",
        [binary("containerd"), f"--config={cdir / 'config.toml'}", "--log-level=warn"],
        state,
        # The shim is found on PATH.
        env={"PATH": f"{bin_dir()}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"},
    )
    procs.wait_until(
        lambda: _ctr_ok(state),
        "containerd",
        30,
        state / "logs" / "containerd.log",
        ("containerd", state),
    )
    import_image(state, image_archive("pause")[1])


def _ctr_ok(state: Path) -> bool:
    if not _paths(state)["sock"].exists():
        return False
    r = _run(binary("ctr"), f"--address={_paths(state)['sock']}", "version", check=False)
    return r.returncode == 0


def _start_kubelet(
    state: Path, plane: controlplane.ControlPlane, net: Network, ca: certs.Authority
) -> None:
    p = _paths(state)
    kdir = p["kubelet"]
    client = ca.issue("kubelet", f"system:node:{NODE_NAME}", org="system:nodes")
    serving = ca.issue(
        "kubelet-serving",
        f"system:node:{NODE_NAME}",
        org="system:nodes",
        server_names=[net.gateway, NODE_NAME, "127.0.0.1", "localhost"],
        client=False,
    )
    kubeconfig = state / "kubelet.kubeconfig"
    certs.write_kubeconfig(kubeconfig, plane.server, ca.cert_path, client, "kubelet")
    resolv = p["root"] / "resolv.conf"
    # Pods with dnsPolicy Default get this: the stack's DNS, not the host's.
    resolv.write_text(f"nameserver {net.gateway}\n")
    port, healthz = procs.free_port(net.gateway), procs.free_port()
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{p['sock']}",
        "imageServiceEndpoint": f"unix://{p['sock']}",
        "address": net.gateway,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca.cert_path)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [net.gateway],
        "clusterDomain": "cluster.local",
        "resolvConf": str(resolv),
        "podLogsDir": str(p["root"] / "pod-logs"),
        # A dev machine's disk is what it is: never evict or garbage-collect images.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    (kdir / "config.yaml").write_text(yaml.safe_dump(config))
    procs.start(
        "kubelet",
        [
            binary("kubelet"),
            f"--config={kdir / 'config.yaml'}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={kdir / 'root'}",
            f"--cert-dir={kdir / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={net.gateway}",
            "--v=1",
        ],
        state,
    )


def _start_kube_proxy(
    state: Path, plane: controlplane.ControlPlane, net: Network, ca: certs.Authority
) -> None:
    pair = ca.issue("kube-proxy", "system:kube-proxy")  # bound to system:node-proxier
    kubeconfig = state / "kube-proxy.kubeconfig"
    certs.write_kubeconfig(kubeconfig, plane.server, ca.cert_path, pair, "kube-proxy")
    healthz, metrics = procs.free_port(), procs.free_port()
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": net.subnet,
        "hostnameOverride": NODE_NAME,
        "bindAddress": net.gateway,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        # NodePorts on the bridge address only.
        "nodePortAddresses": [f"{net.gateway}/32"],
        "iptables": {"masqueradeAll": False, "localhostNodePorts": False},
        # Leave the host's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    path = state / "node" / "kube-proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    (state / "node" / "kube-proxy.port").write_text(str(healthz))
    procs.start("kube-proxy", [binary("kube-proxy"), f"--config={path}", "--v=1"], state)


_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "devstack:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "devstack:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "devstack:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "devstack:coredns"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "devstack:apiserver-kubelet-client"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "KUBELET_CLIENT"}
""".replace("KUBELET_CLIENT", controlplane.KUBELET_CLIENT)


def _apply_rbac(plane: controlplane.ControlPlane) -> None:
    subprocess.run(
        [controlplane.binary("kubectl"), f"--kubeconfig={plane.kubeconfig}", "apply", "-f", "-"],
        input=_RBAC,
        text=True,
        check=True,
        capture_output=True,
    )


def _start_coredns(
    state: Path, plane: controlplane.ControlPlane, net: Network, ca: certs.Authority
) -> None:
    pair = ca.issue("coredns", "devstack:coredns")
    kubeconfig = state / "coredns.kubeconfig"
    certs.write_kubeconfig(kubeconfig, plane.server, ca.cert_path, pair, "coredns")
    ready = procs.free_port()
    # No `forward` plugin: names outside the cluster domain are refused, nothing
    # is ever asked of a resolver outside the stack.
    corefile = f""".:53 {{
    bind {net.gateway}
    errors
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} devstack
        pods insecure
        ttl 5
    }}
    cache 5
}}
"""
    path = state / "node" / "Corefile"
    path.write_text(corefile)
    procs.start("coredns", [binary("coredns"), f"-conf={path}"], state, cwd=state / "node")
    procs.wait_until(
        procs.http_ok(f"http://127.0.0.1:{ready}/ready"),
        "CoreDNS",
        60,
        state / "logs" / "coredns.log",
        ("coredns", state),
    )


def node_ready(plane: controlplane.ControlPlane) -> bool:
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(plane.kubeconfig)  # type: ignore[no-untyped-call]
        node = client.CoreV1Api(api).read_node(NODE_NAME)
    except Exception:  # not registered yet
        return False
    conditions = node.status.conditions if node.status is not None else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def running(state: Path) -> bool:
    return procs.pid_of("kubelet", state) is not None


# --- teardown ---------------------------------------------------------------


def stop(state: Path) -> None:
    """Stop the node and clean up after it: containers, shims, mounts, the KUBE-*
    iptables chains. Safe to repeat. The bridge stays (the API server listens on
    it) until `delete_network`, which `devstack.stack.down` calls last."""
    state = state.resolve()
    p = _paths(state)
    for name in ("coredns", "kubelet"):
        procs.stop(name, state)
    had_proxy = procs.stop("kube-proxy", state)
    procs.stop("containerd", state)
    # Containers outlive containerd (each has its shim): kill them through runc's
    # state, then their shims, which serve this stack's containerd socket.
    # The shim keeps runc's state in <Root>/<containerd namespace>.
    for root in p["runc_root"].glob("*") if p["runc_root"].exists() else []:
        ids = _run(RUNC, f"--root={root}", "list", "-q", check=False).stdout.split()
        for cid in ids:
            _run(RUNC, f"--root={root}", "kill", "--all", cid, "KILL", check=False)
        for cid in ids:
            for _ in range(50):
                if _run(RUNC, f"--root={root}", "delete", "--force", cid, check=False).returncode:
                    time.sleep(0.1)
                else:
                    break
    _kill_shims(p["sock"])
    _unmount_under(p["root"])
    if had_proxy or (state / "node" / "kube-proxy.yaml").exists():
        with contextlib.suppress(RuntimeError):
            _run(binary("kube-proxy"), "--cleanup", check=False)
        _remove_kubelet_chains()
    _remove_pod_cgroups(state)
    with contextlib.suppress(OSError):
        if LOCK.read_text().strip() == str(state):
            LOCK.unlink()


def _remove_kubelet_chains() -> None:
    """The chains the kubelet makes in both families (kube-proxy --cleanup leaves them)."""
    for tool in ("iptables", "ip6tables"):
        for hook in ("INPUT", "OUTPUT"):
            while _run(tool, "-D", hook, "-j", "KUBE-FIREWALL", check=False).returncode == 0:
                pass
        for table, chain in (
            ("filter", "KUBE-FIREWALL"),
            ("filter", "KUBE-KUBELET-CANARY"),
            ("nat", "KUBE-KUBELET-CANARY"),
            ("mangle", "KUBE-KUBELET-CANARY"),
            ("mangle", "KUBE-IPTABLES-HINT"),
        ):
            _run(tool, "-t", table, "-F", chain, check=False)
            _run(tool, "-t", table, "-X", chain, check=False)


def _kill_shims(sock: Path) -> None:
    """SIGKILL the runc shims serving this stack's containerd and remove their sockets.

    A shim listens on /run/containerd/s/<sha256 of address/namespace/id> whatever
    containerd's state dir says; a killed one leaves the socket behind.
    """
    needle = f"{sock}".encode()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or b"containerd-shim" not in argv[0] or needle not in argv:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_dir.name), signal.SIGKILL)
        flags = {
            argv[i].decode(): argv[i + 1].decode()
            for i in range(len(argv) - 1)
            if argv[i].startswith(b"-")
        }
        if {"-address", "-namespace", "-id"} <= flags.keys():
            key = f"{flags['-address']}/{flags['-namespace']}/{flags['-id']}"
            digest = hashlib.sha256(key.encode()).hexdigest()
            Path("/run/containerd/s", digest).unlink(missing_ok=True)


def _unmount_under(root: Path) -> None:
    """Unmount everything below `root` (pod volumes, network namespaces, rootfs), deepest first."""
    prefix = str(root.resolve()) + "/"
    for _ in range(3):
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point.startswith(prefix):
                    mounts.append(point)
        if not mounts:
            return
        for point in sorted(set(mounts), key=lambda m: m.count("/"), reverse=True):
            _run("umount", "-l", point, check=False)


def _remove_pod_cgroups(state: Path) -> None:
    """Empty pod cgroups the kubelet left (best effort; the next kubelet would reap them)."""
    del state
    base = Path("/sys/fs/cgroup")
    for controller in base.iterdir() if base.exists() else []:
        kubepods = controller / "kubepods"
        if not kubepods.is_dir():
            continue
        for d in sorted(kubepods.rglob("*"), key=lambda x: len(x.parts), reverse=True):
            if d.is_dir():
                with contextlib.suppress(OSError):
                    d.rmdir()


def clear(state: Path) -> None:
    """Forget the node's data (after `stop`)."""
    shutil.rmtree(state / "node", ignore_errors=True)
