#!/usr/bin/env bash
# Debian packages the local stack and the tests need (installed system-wide,
# once): runc (the OCI runtime; Debian's crun refuses cgroup v1 hybrid hosts), the
# CNI plugins (bridge, host-local, portmap), iptables and conntrack (kube-proxy),
# buildah and mmdebstrap (images built without a registry: hack/devstack/images.py),
# and lua5.1 (the interpreter Argo CD's health checks are written for: docs/gitops).
set -euo pipefail
PACKAGES=(runc containernetworking-plugins iptables conntrack buildah mmdebstrap uidmap lua5.1 chromium chromium-driver fonts-dejavu-core)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "Debian packages installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
