#!/usr/bin/env bash
# Build the real node's binaries into a cache outside the repository: kubelet and
# kube-proxy (from k8s.io/kubernetes, with the wrapper module shared with
# build-kube.sh), containerd + ctr + containerd-shim-runc-v2, CoreDNS, and two
# tiny static programs kept in hack/: `pause` (the pod sandbox image's only
# file) and `hello` (the test image). Re-running is a no-op once they exist.
# runc, the CNI plugins and iptables come from Debian (install-debian-packages.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib/kube-wrapper.sh
source "$here/lib/kube-wrapper.sh"

cache="${FRESHET_CACHE:-$HOME/.cache/freshet}"
bindir="$cache/node-$KUBE_VERSION-containerd-$CONTAINERD_VERSION-coredns-$COREDNS_VERSION/bin"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$cache/go/mod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$cache/go/build}"
export GOFLAGS="-buildvcs=false -mod=mod"
export CGO_ENABLED=0

# pause and hello are rebuilt when their source changes: the stamp is their hash.
src_hash="$(cat "$here"/pause/* "$here"/hello/* | sha256sum | cut -c1-16)"
want=(kubelet kube-proxy containerd ctr containerd-shim-runc-v2 coredns pause hello)
missing=0
for b in "${want[@]}"; do [[ -x "$bindir/$b" ]] || missing=1; done
[[ "$(cat "$bindir/.src-hash" 2>/dev/null)" == "$src_hash" ]] || missing=1
if [[ $missing == 0 ]]; then
  echo "node binaries cached in $bindir"
  exit 0
fi

start=$(date +%s)
mkdir -p "$bindir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
t() { echo "  $1: $(($(date +%s) - $2))s"; }

# --- tiny static programs ---------------------------------------------------
s=$(date +%s)
for p in pause hello; do
  (cd "$here/$p" && go build -trimpath -ldflags "-s -w" -o "$bindir/$p" .)
done
echo "$src_hash" > "$bindir/.src-hash"
t "pause, hello" "$s"

# --- kubelet, kube-proxy ----------------------------------------------------
if [[ ! -x "$bindir/kubelet" || ! -x "$bindir/kube-proxy" ]]; then
  s=$(date +%s)
  kube_build "$work/kube" "$bindir" kubelet kube-proxy
  t "kubelet, kube-proxy" "$s"
fi

# --- containerd -------------------------------------------------------------
# No replace directives: plain `go install` (CGO_ENABLED=0 drops btrfs only).
if [[ ! -x "$bindir/containerd" || ! -x "$bindir/ctr" || ! -x "$bindir/containerd-shim-runc-v2" ]]; then
  s=$(date +%s)
  echo "building containerd $CONTAINERD_VERSION..."
  GOBIN="$bindir" go install -trimpath -ldflags "-s -w" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  t "containerd, ctr, shim" "$s"
fi

# --- CoreDNS ----------------------------------------------------------------
if [[ ! -x "$bindir/coredns" ]]; then
  s=$(date +%s)
  echo "building CoreDNS $COREDNS_VERSION..."
  # No replace directives in its go.mod: a plain `go install` works.
  GOBIN="$bindir" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  t "coredns" "$s"
fi

end=$(date +%s)
echo "built node binaries (kubelet/kube-proxy $KUBE_VERSION, containerd $CONTAINERD_VERSION, coredns $COREDNS_VERSION) into $bindir in $((end - start))s"
