#!/usr/bin/env bash
# Debian packages the local node needs (installed system-wide, once): runc (the
# OCI runtime; Debian's crun refuses cgroup v1 hybrid hosts), the CNI plugins
# (bridge, host-local, portmap), iptables and conntrack (kube-proxy), buildah and
# mmdebstrap (images built without a registry: hack/devstack/images.py).
set -euo pipefail
PACKAGES=(runc containernetworking-plugins iptables conntrack buildah mmdebstrap uidmap)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "node packages installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
