#!/usr/bin/env bash
# Build the pinned Kubernetes control-plane binaries and etcd from their official
# Go modules into a cache outside the repository. Re-running is a no-op once the
# binaries exist, so `make test` on a warm machine pays nothing here.
#
# k8s.io/kubernetes replaces its staging modules with local paths, so it cannot be
# `go install`ed directly: we build it from a throwaway wrapper module that pins
# every staging module to its published v0.X.Y twin. etcd's server module has the
# same problem and gets the same treatment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

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
staging_minor="v0.${KUBE_VERSION#v1.}"
mkdir -p "$work/kube"
cd "$work/kube"
go mod init freshet.local/kubebuild >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
# Read the staging list from the pinned release's own go.mod, so a version bump
# that adds a staging module needs no edit here.
go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
kmod="$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod"
for m in $(awk '/^replace|^\t?k8s.io\/[a-z0-9-]+ => \.\/staging/ {print $1}' "$kmod" | grep '^k8s.io/'); do
  go mod edit -replace="$m=$m@$staging_minor"
done
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION"
  ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
  ldflags+=" -X $pkg.gitTreeState=clean"
done
cat > tools.go <<'GO'
//go:build tools

package tools
GO
echo "resolving Kubernetes $KUBE_VERSION modules..."
go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" \
       "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBE_VERSION" \
       "k8s.io/kubernetes/cmd/kube-scheduler@$KUBE_VERSION" \
       "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION"
echo "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl..."
go build -trimpath -ldflags "$ldflags" -o "$bindir/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl
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
