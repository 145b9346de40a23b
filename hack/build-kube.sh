#!/usr/bin/env bash
# Build the pinned Kubernetes control-plane binaries and etcd from their official
# Go modules into a cache outside the repository. Re-running is a no-op once the
# binaries exist, so `make test` on a warm machine pays nothing here.
#
# k8s.io/kubernetes replaces its staging modules with local paths, so it cannot be
# `go install`ed directly: lib/kube-wrapper.sh builds it from a throwaway wrapper
# module (shared with build-node.sh). etcd's server module has the same problem
# and gets the same treatment here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib/kube-wrapper.sh
source "$here/lib/kube-wrapper.sh"

cache="${FRESHET_CACHE:-$HOME/.cache/freshet}"
bindir="$cache/kube-$KUBE_VERSION-etcd-$ETCD_VERSION/bin"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$cache/go/mod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$cache/go/build}"
export GOFLAGS="-buildvcs=false -mod=mod"
export CGO_ENABLED=0

want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm)
missing=0
for b in "${want[@]}"; do [[ -x "$bindir/$b" ]] || missing=1; done
if [[ $missing == 0 ]]; then
  echo "kube binaries cached in $bindir"
  exit 0
fi

start=$(date +%s)
mkdir -p "$bindir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- Kubernetes -------------------------------------------------------------
if [[ ! -x "$bindir/kube-apiserver" || ! -x "$bindir/kubectl" ]]; then
  kube_build "$work/kube" "$bindir" kube-apiserver kube-controller-manager kube-scheduler kubectl
fi

# --- helm -------------------------------------------------------------------
# Helm has no replace directives, so a plain `go install` works.
if [[ ! -x "$bindir/helm" ]]; then
  echo "building helm $HELM_VERSION..."
  GOBIN="$bindir" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi

# --- etcd -------------------------------------------------------------------
if [[ ! -x "$bindir/etcd" ]]; then
mkdir -p "$work/etcd"
cd "$work/etcd"
go mod init freshet.local/etcdbuild >/dev/null 2>&1
go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
for m in api/v3 client/pkg/v3 client/v3 pkg/v3 etcdctl/v3 etcdutl/v3 tests/v3 server/v3; do
  go mod edit -replace="go.etcd.io/etcd/$m=go.etcd.io/etcd/$m@$ETCD_VERSION"
done
echo "resolving etcd $ETCD_VERSION modules..."
go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
echo "building etcd..."
go build -trimpath -ldflags "-s -w" -o "$bindir/etcd" go.etcd.io/etcd/server/v3
fi

end=$(date +%s)
echo "built kube $KUBE_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION into $bindir in $((end - start))s"
